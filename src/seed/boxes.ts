/**
 * The boxes part of the development seed: a box `development-box` in the
 * development organization, with a fresh key on every run (the previous
 * seed keys are revoked: a key is only ever shown once).
 */
import type { SeedContext, SeedOutput } from "./index.ts";

export const DEVELOPMENT_BOX = "development-box";
const SEED_KEY_NAME = "seed";

export async function seedBoxes({ client, organizationId, adminUserId }: SeedContext): Promise<SeedOutput> {
  let box = await client.query<{ id: string }>("select id from app_public.boxes where organization_id = $1 and name = $2", [
    organizationId,
    DEVELOPMENT_BOX,
  ]);
  if (box.rows[0] === undefined) {
    box = await client.query<{ id: string }>(
      "insert into app_public.boxes (organization_id, name, created_by) values ($1, $2, $3) returning id",
      [organizationId, DEVELOPMENT_BOX, adminUserId],
    );
  }
  const boxId = box.rows[0]?.id ?? "";
  await client.query(
    "update app_public.box_api_keys set revoked_at = now() where box_id = $1 and name = $2 and revoked_at is null",
    [boxId, SEED_KEY_NAME],
  );
  const issued = await client.query<{ api_key: string }>("select api_key from app_private.issue_box_key($1, $2, null, $3)", [
    boxId,
    SEED_KEY_NAME,
    adminUserId,
  ]);
  const key = issued.rows[0]?.api_key ?? "";
  return [
    ["box", `${DEVELOPMENT_BOX} (${boxId})`],
    ["box key", key],
    ["run the box", `npm run box -- --url ws://127.0.0.1:3000/bridge --key ${key}`],
  ];
}
