/**
 * The identity part of the development seed: a platform admin with a fresh
 * password and session on every run, and an enterprise-plan organization
 * `development` that the admin owns.
 */
import { randomBytes } from "node:crypto";
import type { PoolClient } from "pg";
import type { SeedOutput } from "./index.ts";

export const ADMIN_EMAIL = "admin@agentplane.local";
export const ADMIN_USERNAME = "admin";
export const DEVELOPMENT_ORGANIZATION = "development";

export async function seedIdentity(
  client: PoolClient,
): Promise<{ context: { adminUserId: string; organizationId: string }; output: SeedOutput }> {
  const password = randomBytes(12).toString("base64url");
  const existing = await client.query<{ id: string }>("select id from app_public.users where email = $1", [ADMIN_EMAIL]);
  let adminUserId = existing.rows[0]?.id;
  if (adminUserId === undefined) {
    const registered = await client.query<{ user_id: string }>(
      "select user_id from app_public.register($1, $2, $3, 'Admin')",
      [ADMIN_EMAIL, password, ADMIN_USERNAME],
    );
    adminUserId = registered.rows[0]?.user_id ?? "";
  } else {
    await client.query("select app_private.set_password($1, $2)", [adminUserId, password]);
  }
  await client.query("update app_public.users set is_admin = true, is_active = true where id = $1", [adminUserId]);

  let organization = await client.query<{ id: string }>("select id from app_public.organizations where slug = $1", [
    DEVELOPMENT_ORGANIZATION,
  ]);
  if (organization.rows[0] === undefined) {
    organization = await client.query<{ id: string }>(
      "select id from app_private.create_organization($1, 'Development', $2)",
      [DEVELOPMENT_ORGANIZATION, adminUserId],
    );
  }
  const organizationId = organization.rows[0]?.id ?? "";
  await client.query(
    `insert into app_public.organization_memberships (organization_id, user_id, role) values ($1, $2, 'owner')
     on conflict (organization_id, user_id) do update set role = 'owner'`,
    [organizationId, adminUserId],
  );
  await client.query("update app_public.organizations set plan = 'enterprise' where id = $1", [organizationId]);
  const session = await client.query<{ token: string }>("select token from app_private.create_session($1)", [adminUserId]);

  return {
    context: { adminUserId, organizationId },
    output: [
      ["admin email", ADMIN_EMAIL],
      ["admin password", password],
      ["admin token", session.rows[0]?.token ?? ""],
      ["organization", `${DEVELOPMENT_ORGANIZATION} (${organizationId})`],
    ],
  };
}
