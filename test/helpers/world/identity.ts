/**
 * The identity part of the world: organization A with an owner, an admin, a
 * member and a viewer (each also owns a personal organization), a pending
 * invitation, a subscription, a plan change (new limits) and the audit log
 * entries all of that writes.
 */
import type { Client } from "../db.ts";
import { asUser, createUser, uniqueSuffix } from "../identity.ts";
import type { World } from "./index.ts";

/** Creates organization A (the owner's personal organization) and its members. */
export async function createWorld(client: Client): Promise<World> {
  const owner = await createUser(client, { name: "World owner" });
  const [admin, member, viewer] = [
    await createUser(client, { name: "World admin" }),
    await createUser(client, { name: "World member" }),
    await createUser(client, { name: "World viewer" }),
  ];
  const organizationId = owner.organizationId;
  for (const [user, role] of [[admin, "admin"], [member, "member"], [viewer, "viewer"]] as const) {
    await client.query(
      "insert into app_public.organization_memberships (organization_id, user_id, role) values ($1, $2, $3)",
      [organizationId, user.id, role],
    );
  }
  return { organizationId, owner, admin, member, viewer };
}

/** Identity rows beyond the members: an invitation, a subscription, limits changed by a plan. */
export async function addIdentityRows(client: Client, world: World): Promise<void> {
  await asUser(client, world.owner, (asOwner) =>
    asOwner.query("select app_public.invite_to_organization($1, $2, 'member')", [
      world.organizationId,
      `invitee-${uniqueSuffix()}@example.com`,
    ]),
  );
  await client.query(
    `insert into app_public.subscriptions (organization_id, stripe_customer_id, stripe_subscription_id, status, current_period_end)
     values ($1, $2, $3, 'active', now() + interval '30 days')`,
    [world.organizationId, `cus_${uniqueSuffix()}`, `sub_${uniqueSuffix()}`],
  );
  await client.query("update app_public.organizations set plan = 'professional' where id = $1", [world.organizationId]);
}
