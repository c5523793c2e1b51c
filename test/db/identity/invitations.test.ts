/**
 * Invitations: sent by admins (owners for owners), accepted once, by the
 * invited address, before they expire; tokens stored only hashed.
 */
import { randomBytes } from "node:crypto";
import { describe, expect, test } from "@jest/globals";
import { asRoot, expectError, type Client } from "../../helpers/db.ts";
import { asUser, createUser, type TestUser } from "../../helpers/identity.ts";

async function invite(client: Client, inviter: TestUser, organizationId: string, email: string, role = "member") {
  return asUser(client, inviter, async () => {
    const { rows } = await client.query<{ invitation_id: string; token: string }>(
      "select * from app_public.invite_to_organization($1, $2, $3)",
      [organizationId, email, role],
    );
    return rows[0] ?? { invitation_id: "", token: "" };
  });
}

function accept(client: Client, user: TestUser, token: string) {
  return asUser(client, user, () => client.query("select * from app_public.accept_invitation($1)", [token]));
}

function acceptError(client: Client, user: TestUser, token: string) {
  return asUser(client, user, () => expectError(client, "select app_public.accept_invitation($1)", [token]));
}

describe("invitations", () => {
  test("the invited address accepts once and joins with the role; the token is stored only hashed", async () => {
    await asRoot(async (client) => {
      const owner = await createUser(client);
      const invitee = await createUser(client);
      const { invitation_id, token } = await invite(client, owner, owner.organizationId, invitee.email.toUpperCase(), "admin");
      expect(token).toMatch(/^inv_[0-9a-f]{64}$/);
      const stored = await client.query("select to_jsonb(i)::text as row from app_public.organization_invitations i where id = $1", [invitation_id]);
      expect(stored.rows[0]?.row).not.toContain(token.slice(4));

      const { rows } = await accept(client, invitee, token);
      expect(rows[0]).toMatchObject({ organization_id: owner.organizationId, user_id: invitee.id, role: "admin" });
      expect(await acceptError(client, invitee, token)).toMatchObject({
        code: "NTFND",
        message: "this invitation does not exist or has already been used",
      });
      const actions = await client.query(
        "select action, actor_id from app_public.audit_log where organization_id = $1 and action like 'invitation.%' order by created_at, action",
        [owner.organizationId],
      );
      expect(actions.rows).toEqual([
        { action: "invitation.created", actor_id: owner.id },
        { action: "invitation.updated", actor_id: invitee.id },
      ]);
      const details = await client.query("select details::text from app_public.audit_log where target_id = $1", [invitation_id]);
      for (const row of details.rows) expect(row.details).not.toMatch(/token|hash/);
    });
  });

  test("nobody else can use it: another user, a forged token, an expired or revoked invitation", async () => {
    await asRoot(async (client) => {
      const owner = await createUser(client);
      const invitee = await createUser(client);
      const intruder = await createUser(client);
      const { invitation_id, token } = await invite(client, owner, owner.organizationId, invitee.email);

      expect(await acceptError(client, intruder, token)).toMatchObject({ code: "DNIED", message: "this invitation was sent to another email address" });
      expect(await acceptError(client, invitee, `inv_${randomBytes(32).toString("hex")}`)).toMatchObject({ code: "NTFND" });
      expect(await asUser(client, null, () => expectError(client, "select app_public.accept_invitation($1)", [token]))).toMatchObject({ code: "LOGIN" });

      await client.query("update app_public.organization_invitations set expires_at = now() - interval '1 second' where id = $1", [invitation_id]);
      expect(await acceptError(client, invitee, token)).toMatchObject({ code: "EXPRD" });

      const renewed = await invite(client, owner, owner.organizationId, invitee.email);
      expect(await acceptError(client, invitee, token)).toMatchObject({ code: "NTFND" });
      const revoked = await asUser(client, owner, async () =>
        (await client.query("delete from app_public.organization_invitations where id = $1", [renewed.invitation_id])).rowCount,
      );
      expect(revoked).toBe(1);
      expect(await acceptError(client, invitee, renewed.token)).toMatchObject({ code: "NTFND" });
      const members = await client.query("select count(*)::int as count from app_public.organization_memberships where organization_id = $1", [
        owner.organizationId,
      ]);
      expect(members.rows[0]?.count).toBe(1);
    });
  });

  test("admins and owners invite; only owners invite owners; members, viewers and outsiders cannot", async () => {
    await asRoot(async (client) => {
      const owner = await createUser(client);
      const organizationId = owner.organizationId;
      const users: Record<string, TestUser> = {};
      for (const role of ["admin", "member", "viewer"]) {
        users[role] = await createUser(client);
        await client.query("insert into app_public.organization_memberships (organization_id, user_id, role) values ($1, $2, $3)", [
          organizationId,
          users[role]?.id,
          role,
        ]);
      }
      const outsider = await createUser(client);
      const inviteError = (user: TestUser | undefined, role: string) =>
        asUser(client, user ?? null, () =>
          expectError(client, "select app_public.invite_to_organization($1, 'someone@example.com', $2)", [organizationId, role]),
        );
      for (const user of [users.member, users.viewer, outsider]) expect(await inviteError(user, "viewer")).toMatchObject({ code: "DNIED" });
      expect(await inviteError(users.admin, "owner")).toMatchObject({ code: "DNIED", message: "only owners can invite owners" });
      expect(await invite(client, users.admin as TestUser, organizationId, "someone@example.com", "admin")).toMatchObject({ token: expect.any(String) });
      expect(await invite(client, owner, organizationId, "boss@example.com", "owner")).toMatchObject({ token: expect.any(String) });
      expect(await inviteError(owner, "nonsense")).toMatchObject({ code: "23514" });
      const member = users.member as TestUser;
      expect(
        await asUser(client, owner, () =>
          expectError(client, "select app_public.invite_to_organization($1, $2)", [organizationId, member.email]),
        ),
      ).toMatchObject({ code: "NUNIQ", message: "this person is already a member" });
      const seen = (user: TestUser | undefined) =>
        asUser(client, user ?? null, async () =>
          (await client.query("select count(*)::int as count from app_public.organization_invitations where organization_id = $1", [organizationId])).rows[0]?.count,
        );
      expect([await seen(owner), await seen(users.admin), await seen(users.member), await seen(outsider)]).toEqual([2, 2, 0, 0]);
    });
  });

  test("the invitation's token hash cannot be read by anybody through the visitor role", async () => {
    await asRoot(async (client) => {
      const owner = await createUser(client);
      await invite(client, owner, owner.organizationId, "someone@example.com");
      const error = await asUser(client, owner, () => expectError(client, "select token_hash from app_public.organization_invitations"));
      expect(error.code).toBe("42501");
    });
  });
});
