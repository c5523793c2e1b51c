/**
 * Boxes for tests: create one as a user, and play the bridge's part in SQL.
 *
 *   createBox(client, user)                  a box of the user's organization, with its key (in the caller's transaction)
 *   createCommittedBox(user)                 the same, committed (server tests)
 *   authenticate(client, key, hardwareId)    what the bridge does before the upgrade
 *   connect(client, box, options)            authenticate + hello: the box is online on a (fake) bridge instance
 */
import { createHash, randomUUID } from "node:crypto";
import { pool, type Client } from "./db.ts";
import { asUser, uniqueSuffix, type TestUser } from "./identity.ts";

/** Lets an organization have up to `max` boxes (the starter plan allows one), committed. */
export async function allowBoxes(organizationId: string, max: number): Promise<void> {
  await pool("root").query("update app_public.organization_limits set max_boxes = $2 where organization_id = $1", [organizationId, max]);
}

export interface TestBox {
  id: string;
  keyId: string;
  apiKey: string;
  organizationId: string;
}

export function sha256(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

export async function createBox(client: Client, user: TestUser, name = `box-${uniqueSuffix()}`): Promise<TestBox> {
  return asUser(client, user, async (asOwner) => {
    const { rows } = await asOwner.query<{ box_id: string; key_id: string; api_key: string }>(
      "select box_id, key_id, api_key from app_public.create_box($1, $2)",
      [user.organizationId, name],
    );
    const row = rows[0];
    if (row === undefined) throw new Error("create_box returned nothing");
    return { id: row.box_id, keyId: row.key_id, apiKey: row.api_key, organizationId: user.organizationId };
  });
}

/** A committed box (its organization goes with removeUser). */
export async function createCommittedBox(user: TestUser, name?: string): Promise<TestBox> {
  const client = await pool("root").connect();
  try {
    await client.query("begin");
    const box = await createBox(client, user, name);
    await client.query("commit");
    return box;
  } catch (error) {
    await client.query("rollback");
    throw error;
  } finally {
    client.release();
  }
}

export interface Authentication {
  outcome: string;
  box_id: string | null;
  key_id: string | null;
  connection_seq: string | null;
}

export async function authenticate(client: Client, apiKey: string, hardwareId: string): Promise<Authentication> {
  const { rows } = await client.query<Authentication>(
    "select outcome, box_id, key_id, connection_seq from app_private.bridge_authenticate($1, $2, '192.0.2.7')",
    [sha256(apiKey), hardwareId],
  );
  return rows[0] as Authentication;
}

export interface Connection {
  seq: string;
  instanceId: string;
  accepted: boolean;
}

/** Authenticates and says hello on a bridge instance (a new one unless given). */
export async function connect(
  client: Client,
  box: TestBox,
  options: { hardwareId?: string; instanceId?: string; heartbeatIntervalMs?: number } = {},
): Promise<Connection> {
  const instanceId = options.instanceId ?? randomUUID();
  const auth = await authenticate(client, box.apiKey, options.hardwareId ?? `hw-${box.id}`);
  if (auth.outcome !== "ok" || auth.connection_seq === null) throw new Error(`authentication: ${auth.outcome}`);
  await client.query("select * from app_private.bridge_heartbeat($1, 'test', 1, $2, '{}', '{}', '{}')", [
    instanceId,
    options.heartbeatIntervalMs ?? 30_000,
  ]);
  return { seq: auth.connection_seq, instanceId, accepted: await hello(client, box, auth.connection_seq, instanceId) };
}

export async function hello(client: Client, box: TestBox, seq: string, instanceId: string): Promise<boolean> {
  const { rows } = await client.query<{ accepted: boolean }>(
    "select app_private.bridge_box_connected($1, $2, $3, $4, '192.0.2.7', 'host', 'linux', 'amd64', '1.0', '{}') as accepted",
    [box.id, seq, instanceId, box.keyId],
  );
  return rows[0]?.accepted ?? false;
}

/** Sends a command as `user` through the API function; returns its id. */
export async function sendCommand(
  client: Client,
  user: TestUser,
  box: Pick<TestBox, "id">,
  commandType = "system.ping",
  payload: Record<string, unknown> = {},
): Promise<string> {
  return asUser(client, user, async (asMember) => {
    const { rows } = await asMember.query<{ id: string }>("select id from app_public.send_box_command($1, $2, $3)", [
      box.id,
      commandType,
      JSON.stringify(payload),
    ]);
    return rows[0]?.id as string;
  });
}

export async function commandStatus(client: Client, id: string): Promise<Record<string, unknown>> {
  const { rows } = await client.query("select * from app_public.box_commands where id = $1", [id]);
  return rows[0] as Record<string, unknown>;
}
