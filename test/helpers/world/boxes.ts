/**
 * The boxes part of the world: a box of organization A created by its owner
 * (keys issued, one rotated), connected through the bridge's functions, with
 * commands sent by the member (one answered, one queued) and metric samples.
 */
import { createHash, randomUUID } from "node:crypto";
import type { Client } from "../db.ts";
import { asUser, uniqueSuffix } from "../identity.ts";
import type { World } from "./index.ts";

export function sha256(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

export async function addBoxRows(client: Client, world: World): Promise<void> {
  const issued = await asUser(client, world.owner, async (asOwner) => {
    const { rows } = await asOwner.query<{ box_id: string; key_id: string; api_key: string }>(
      "select box_id, key_id, api_key from app_public.create_box($1, $2)",
      [world.organizationId, `world-box-${uniqueSuffix()}`],
    );
    const created = rows[0];
    if (created === undefined) throw new Error("create_box returned nothing");
    await asOwner.query("select app_public.rotate_box_key($1)", [created.key_id]);
    return created;
  });

  const instanceId = randomUUID();
  const { rows } = await client.query<{ connection_seq: string; key_id: string }>(
    "select connection_seq, key_id from app_private.bridge_authenticate($1, $2, '192.0.2.1')",
    [sha256(issued.api_key), `world-hw-${uniqueSuffix()}`],
  );
  const seq = rows[0]?.connection_seq;
  await client.query("select * from app_private.bridge_heartbeat($1, 'world', 1, 30000, '{}', '{}', '{}')", [instanceId]);
  await client.query(
    "select app_private.bridge_box_connected($1, $2, $3, $4, '192.0.2.1', 'world-host', 'linux', 'amd64', '1.0.0', '{system.ping}')",
    [issued.box_id, seq, instanceId, issued.key_id],
  );

  const sent = await asUser(client, world.member, async (asMember) => {
    const first = await asMember.query<{ id: string }>("select id from app_public.send_box_command($1, 'system.ping')", [issued.box_id]);
    await asMember.query("select id from app_public.send_box_command($1, 'system.status')", [issued.box_id]);
    return first.rows[0]?.id;
  });
  await client.query("select app_private.bridge_claim_commands($1, $2, 1)", [issued.box_id, seq]);
  await client.query(
    `select * from app_private.bridge_record_results(array[$1]::uuid[], array[$2]::uuid[], '{t}', array['{"pong": true}']::jsonb[],
       '{null}', '{null}', '{null}')`,
    [issued.box_id, sent],
  );
  await client.query(
    "select app_private.bridge_record_metrics(array[$1, $1]::uuid[], '{null,null}', '{cpu.percent,memory.used_percent}', '{12.5,40}', '{null,null}')",
    [issued.box_id],
  );
}
