/**
 * `npm run db:seed`: development data, idempotent (running it again reuses
 * what exists), never in production. Each module adds a seeder to `seeders`;
 * they run in order in one transaction, each receiving what the earlier ones
 * made (the admin user and the development organization come first), and
 * return the credentials they generated, which are printed once.
 */
import type { Pool, PoolClient } from "pg";
import { ConfigError, type Config } from "../config.ts";
import { seedBoxes } from "./boxes.ts";
import { seedIdentity } from "./identity.ts";

export interface SeedContext {
  /** The owner connection, inside the seed's transaction. */
  client: PoolClient;
  /** The platform admin (set by the identity seeder). */
  adminUserId: string;
  /** The development organization, owned by the admin (set by the identity seeder). */
  organizationId: string;
}

/** What a seeder reports: labelled values to print, e.g. ["admin password", "…"]. */
export type SeedOutput = Array<[label: string, value: string]>;

export type Seeder = (context: SeedContext) => Promise<SeedOutput>;

/** Seeders after the identity one, in order (the bridge adds a development box here). */
export const seeders: Seeder[] = [seedBoxes];

/** Runs every seeder in one transaction and returns everything they report; refuses in production. */
export async function seed(config: Config, ownerPool: Pool): Promise<SeedOutput> {
  if (config.isProduction) throw new ConfigError("refusing to seed development data with NODE_ENV=production");
  const client = await ownerPool.connect();
  try {
    await client.query("begin");
    const identity = await seedIdentity(client);
    const context: SeedContext = { client, ...identity.context };
    const output = [...identity.output];
    for (const seeder of seeders) output.push(...(await seeder(context)));
    await client.query("commit");
    return output;
  } catch (error) {
    await client.query("rollback");
    throw error;
  } finally {
    client.release();
  }
}
