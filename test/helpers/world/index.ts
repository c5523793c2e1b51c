/**
 * The world: organization A with rows in every `app_public` table, built
 * inside the caller's (root) transaction. The tenancy walker
 * (test/db/tenancy.test.ts) proves that nobody outside A can see or change
 * them, and fails for any table the world leaves empty: every module adds a
 * builder here for its tables (identity.ts, boxes.ts, schedules.ts).
 */
import type { Client } from "../db.ts";
import type { TestUser } from "../identity.ts";
import { addBoxRows } from "./boxes.ts";
import { addIdentityRows, createWorld } from "./identity.ts";
import { addScheduleRows } from "./schedules.ts";

export interface World {
  /** Organization A. */
  organizationId: string;
  owner: TestUser;
  admin: TestUser;
  member: TestUser;
  viewer: TestUser;
}

/** Adds one module's rows for organization A (and its users). */
export type WorldBuilder = (client: Client, world: World) => Promise<void>;

/** Every module's builder, in the order their tables depend on each other. */
export const worldBuilders: WorldBuilder[] = [addIdentityRows, addBoxRows, addScheduleRows];

/**
 * Tables whose rows are meant to be readable by everybody (a public catalog).
 * The walker still proves that outsiders cannot change them.
 */
export const publicTables: ReadonlySet<string> = new Set<string>(["agent_types"]);

export async function buildWorld(client: Client): Promise<World> {
  const world = await createWorld(client);
  for (const build of worldBuilders) await build(client, world);
  return world;
}
