/**
 * The boxes part of the world: a box of organization A created by its owner
 * (keys issued, one rotated), connected through the bridge's functions, with
 * commands sent by the member (one answered, one queued) and metric samples.
 */
import { connect, createBox, sendCommand } from "../boxes.ts";
import type { Client } from "../db.ts";
import { asUser } from "../identity.ts";
import type { World } from "./index.ts";

export async function addBoxRows(client: Client, world: World): Promise<void> {
  const box = await createBox(client, { ...world.owner, organizationId: world.organizationId });
  await asUser(client, world.owner, (asOwner) => asOwner.query("select app_public.create_box_key($1, 'spare')", [box.id]));
  const { seq } = await connect(client, box);
  const answered = await sendCommand(client, world.member, box, "system.ping");
  await sendCommand(client, world.member, box, "system.status");
  await client.query("select app_private.bridge_claim_commands($1, $2, 1)", [box.id, seq]);
  await client.query(
    `select * from app_private.bridge_record_results(array[$1]::uuid[], array[$2]::uuid[], '{t}', array['{"pong": true}']::jsonb[],
       '{null}', '{null}', '{null}')`,
    [box.id, answered],
  );
  await client.query(
    "select app_private.bridge_record_metrics(array[$1, $1]::uuid[], '{null,null}', '{cpu.percent,memory.used_percent}', '{12.5,40}', '{null,null}')",
    [box.id],
  );
  await asUser(client, world.owner, (asOwner) => asOwner.query("select app_public.rotate_box_key($1)", [box.keyId]));
}
