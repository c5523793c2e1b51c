/**
 * Organizations and their members: who may rename, delete, change roles and
 * remove; the last owner stays; limits and subscriptions belong to the system;
 * the audit log records it all and shows it to owners and admins only.
 */
import { describe, expect, test } from "@jest/globals";
import { asRoot, expectError, pool, type Client } from "../../helpers/db.ts";
import { asUser, createCommittedUser, createUser, removeUser, type TestUser } from "../../helpers/identity.ts";

type Role = "owner" | "admin" | "member" | "viewer";

/** A user with `role` in `organizationId`. */
async function memberOf(client: Client, organizationId: string, role: Role): Promise<TestUser> {
  const user = await createUser(client);
  await client.query(
    "insert into app_public.organization_memberships (organization_id, user_id, role) values ($1, $2, $3)",
    [organizationId, user.id, role],
  );
  return user;
}

/** An admin, a member and a viewer of `organizationId`. */
async function staffOf(client: Client, organizationId: string): Promise<[TestUser, TestUser, TestUser]> {
  return [
    await memberOf(client, organizationId, "admin"),
    await memberOf(client, organizationId, "member"),
    await memberOf(client, organizationId, "viewer"),
  ];
}

async function roleOf(client: Client, organizationId: string, user: TestUser): Promise<string | null> {
  const { rows } = await client.query("select role from app_public.organization_memberships where organization_id = $1 and user_id = $2", [
    organizationId,
    user.id,
  ]);
  return rows[0]?.role ?? null;
}

async function auditActions(client: Client, organizationId: string | null, targetId?: string): Promise<string[]> {
  const { rows } = await client.query(
    `select action from app_public.audit_log
      where organization_id is not distinct from $1 and ($2::text is null or target_id = $2)
      order by created_at, action`,
    [organizationId, targetId ?? null],
  );
  return rows.map((row) => row.action as string);
}

describe("organizations", () => {
  test("createOrganization makes the caller its owner, on the starter plan's limits, and audits it", async () => {
    await asRoot(async (client) => {
      const user = await createUser(client);
      const organization = await asUser(client, user, async () =>
        (await client.query("select * from app_public.create_organization('Acme Robotics')")).rows[0],
      );
      expect(organization).toMatchObject({ slug: "acme-robotics", name: "Acme Robotics", plan: "starter" });
      expect(await roleOf(client, organization.id, user)).toBe("owner");
      const limits = await client.query("select max_boxes, max_agents_per_box from app_public.organization_limits where organization_id = $1", [
        organization.id,
      ]);
      expect(limits.rows[0]).toEqual({ max_boxes: 1, max_agents_per_box: 5 });
      const entries = await client.query("select action, actor_type, actor_id from app_public.audit_log where organization_id = $1 order by action", [
        organization.id,
      ]);
      expect(entries.rows).toEqual([
        { action: "membership.created", actor_type: "user", actor_id: user.id },
        { action: "organization.created", actor_type: "user", actor_id: user.id },
      ]);
      const anonymous = await asUser(client, null, () => expectError(client, "select app_public.create_organization('Nope')"));
      expect(anonymous).toMatchObject({ code: "LOGIN" });
      const taken = await asUser(client, user, () => expectError(client, "select app_public.create_organization('Again', 'acme-robotics')"));
      expect(taken).toMatchObject({ code: "NUNIQ" });
    });
  });

  test("register's personal organization is audited as the new user's doing", async () => {
    await asRoot(async (client) => {
      const user = await createUser(client);
      const entries = await client.query("select action, actor_type, actor_id from app_public.audit_log where organization_id = $1 order by action", [
        user.organizationId,
      ]);
      expect(entries.rows).toEqual([
        { action: "membership.created", actor_type: "user", actor_id: user.id },
        { action: "organization.created", actor_type: "user", actor_id: user.id },
      ]);
      const after = await client.query("select current_setting('agentplane.token_hash', true) as hash");
      expect(after.rows[0]?.hash ?? "").toBe("");
    });
  });

  test("only owners rename or delete an organization", async () => {
    await asRoot(async (client) => {
      const owner = await createUser(client);
      const organizationId = owner.organizationId;
      const admin = await memberOf(client, organizationId, "admin");
      const rename = (user: TestUser, name: string) =>
        asUser(client, user, async () => (await client.query("update app_public.organizations set name = $2 where id = $1", [organizationId, name])).rowCount);
      const remove = (user: TestUser) =>
        asUser(client, user, async () => (await client.query("delete from app_public.organizations where id = $1", [organizationId])).rowCount);
      expect(await rename(admin, "Admin's name")).toBe(0);
      expect(await remove(admin)).toBe(0);
      expect(await rename(owner, "Owner's name")).toBe(1);
      expect(await auditActions(client, organizationId)).toContain("organization.updated");
      const plan = await asUser(client, owner, () =>
        expectError(client, "update app_public.organizations set plan = 'enterprise' where id = $1", [organizationId]),
      );
      expect(plan.code).toBe("42501");

      expect(await remove(owner)).toBe(1);
      const left = await client.query(
        `select (select count(*) from app_public.organization_memberships where organization_id = $1)::int as memberships,
                (select count(*) from app_public.organization_limits where organization_id = $1)::int as limits`,
        [organizationId],
      );
      expect(left.rows[0]).toEqual({ memberships: 0, limits: 0 });
      const deletion = await client.query(
        "select organization_id, actor_id, details->>'name' as name from app_public.audit_log where action = 'organization.deleted' and target_id = $1",
        [organizationId],
      );
      expect(deletion.rows).toEqual([{ organization_id: null, actor_id: owner.id, name: "Owner's name" }]);
    });
  });

  test("the last owner can neither leave, be demoted nor be removed; with a second owner they can", async () => {
    await asRoot(async (client) => {
      const owner = await createUser(client);
      const organizationId = owner.organizationId;
      const lastOwner = { code: "OWNER", message: expect.stringContaining("an organization needs an owner") };
      await asUser(client, owner, async () => {
        expect(await expectError(client, "select app_public.leave_organization($1)", [organizationId])).toMatchObject(lastOwner);
        expect(
          await expectError(client, "select app_public.change_organization_member_role($1, $2, 'admin')", [organizationId, owner.id]),
        ).toMatchObject(lastOwner);
        expect(await expectError(client, "select app_public.remove_organization_member($1, $2)", [organizationId, owner.id])).toMatchObject(
          lastOwner,
        );
      });
      expect(await roleOf(client, organizationId, owner)).toBe("owner");

      const second = await memberOf(client, organizationId, "admin");
      await asUser(client, owner, () => client.query("select app_public.change_organization_member_role($1, $2, 'owner')", [organizationId, second.id]));
      await asUser(client, owner, () => client.query("select app_public.change_organization_member_role($1, $2, 'member')", [organizationId, owner.id]));
      expect(await roleOf(client, organizationId, owner)).toBe("member");
      await asUser(client, owner, () => client.query("select app_public.leave_organization($1)", [organizationId]));
      expect(await roleOf(client, organizationId, owner)).toBeNull();
      expect(await asUser(client, second, () => expectError(client, "select app_public.leave_organization($1)", [organizationId]))).toMatchObject(
        lastOwner,
      );
    });
  });

  test("two owners demoting each other at the same time cannot leave the organization without one", async () => {
    const [first, second] = [await createCommittedUser(), await createCommittedUser()];
    const organizationId = first.organizationId;
    const [one, two] = [await pool("root").connect(), await pool("root").connect()];
    try {
      await one.query("insert into app_public.organization_memberships (organization_id, user_id, role) values ($1, $2, 'owner')", [
        organizationId,
        second.id,
      ]);
      const demote = "update app_public.organization_memberships set role = 'admin' where organization_id = $1 and user_id = $2";
      await one.query("begin");
      await one.query(demote, [organizationId, first.id]);
      await two.query("begin");
      const racing = two.query(demote, [organizationId, second.id]).then(
        () => null,
        (error: { code?: string }) => error.code,
      );
      // The second transaction waits for the first (it locks the organization) before it checks for an owner.
      for (let i = 0; i < 100; i += 1) {
        const { rows } = await pool("root").query(
          "select count(*)::int as waiting from pg_stat_activity where wait_event_type = 'Lock' and query like 'update app_public.organization_memberships%'",
        );
        if (rows[0]?.waiting === 1) break;
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      await one.query("commit");
      expect(await racing).toBe("OWNER");
      await two.query("rollback");
      const owners = await pool("root").query(
        "select count(*)::int as owners from app_public.organization_memberships where organization_id = $1 and role = 'owner'",
        [organizationId],
      );
      expect(owners.rows[0]?.owners).toBe(1);
    } finally {
      one.release();
      two.release();
      await removeUser(second);
      await removeUser(first);
    }
  });

  test("admins manage members but not owners; members and viewers manage nobody", async () => {
    await asRoot(async (client) => {
      const owner = await createUser(client);
      const organizationId = owner.organizationId;
      const [admin, member, viewer] = await staffOf(client, organizationId);
      const change = (actor: TestUser, target: TestUser, role: Role) =>
        asUser(client, actor, () =>
          expectError(client, "select app_public.change_organization_member_role($1, $2, $3)", [organizationId, target.id, role]),
        ).catch(() => null);
      const denied = { code: "DNIED" };

      expect(await change(member, viewer, "admin")).toMatchObject(denied);
      expect(await change(viewer, member, "viewer")).toMatchObject(denied);
      expect(await change(admin, owner, "member")).toMatchObject(denied);
      expect(await change(admin, member, "owner")).toMatchObject({ code: "42501" });
      expect(await change(admin, admin, "owner")).toMatchObject({ code: "42501" });
      expect(await roleOf(client, organizationId, member)).toBe("member");

      await asUser(client, admin, () => client.query("select app_public.change_organization_member_role($1, $2, 'viewer')", [organizationId, member.id]));
      expect(await roleOf(client, organizationId, member)).toBe("viewer");
      const changes = await client.query(
        "select details from app_public.audit_log where action = 'membership.updated' and organization_id = $1",
        [organizationId],
      );
      expect(changes.rows).toEqual([{ details: { changes: { role: { from: "member", to: "viewer" } } } }]);

      const remove = (actor: TestUser, target: TestUser) =>
        asUser(client, actor, () => expectError(client, "select app_public.remove_organization_member($1, $2)", [organizationId, target.id]));
      expect(await remove(viewer, member)).toMatchObject(denied);
      expect(await remove(admin, owner)).toMatchObject(denied);
      await asUser(client, admin, () => client.query("select app_public.remove_organization_member($1, $2)", [organizationId, member.id]));
      expect(await roleOf(client, organizationId, member)).toBeNull();
      await asUser(client, viewer, () => client.query("select app_public.leave_organization($1)", [organizationId]));
      expect(await roleOf(client, organizationId, viewer)).toBeNull();
      expect(await auditActions(client, organizationId)).toEqual(expect.arrayContaining(["membership.deleted", "membership.updated"]));
    });
  });

  test("limits and subscriptions are written only by the system; a new plan brings its limits", async () => {
    await asRoot(async (client) => {
      const owner = await createUser(client);
      const organizationId = owner.organizationId;
      await asUser(client, owner, async () => {
        for (const sql of [
          "update app_public.organization_limits set max_boxes = 1000 where organization_id = $1",
          "delete from app_public.organization_limits where organization_id = $1",
          "insert into app_public.subscriptions (organization_id, status) values ($1, 'active')",
          "update app_public.subscriptions set status = 'active' where organization_id = $1",
        ]) {
          expect((await expectError(client, sql, [organizationId])).code).toBe("42501");
        }
      });
      await client.query("update app_public.organizations set plan = 'enterprise' where id = $1", [organizationId]);
      const limits = await client.query("select max_boxes, max_concurrent_sandboxes from app_public.organization_limits where organization_id = $1", [
        organizationId,
      ]);
      expect(limits.rows[0]).toEqual({ max_boxes: 100, max_concurrent_sandboxes: 25 });
      const audit = await client.query(
        "select actor_type, details from app_public.audit_log where action = 'limits.updated' and organization_id = $1",
        [organizationId],
      );
      expect(audit.rows[0]).toMatchObject({ actor_type: "system", details: { changes: { max_boxes: { from: 1, to: 100 } } } });
    });
  });

  test("subscriptions are read by owners; the audit log by owners and admins; neither can be changed", async () => {
    await asRoot(async (client) => {
      const owner = await createUser(client);
      const organizationId = owner.organizationId;
      const [admin, member, viewer] = await staffOf(client, organizationId);
      await client.query("insert into app_public.subscriptions (organization_id, status) values ($1, 'trialing')", [organizationId]);
      const count = (user: TestUser, table: string) =>
        asUser(client, user, async () =>
          (await client.query(`select count(*)::int as count from app_public.${table} where organization_id = $1`, [organizationId])).rows[0]?.count,
        );
      expect([await count(owner, "subscriptions"), await count(admin, "subscriptions"), await count(member, "subscriptions")]).toEqual([1, 0, 0]);
      expect(await count(owner, "audit_log")).toBeGreaterThan(0);
      expect(await count(admin, "audit_log")).toBeGreaterThan(0);
      expect([await count(member, "audit_log"), await count(viewer, "audit_log")]).toEqual([0, 0]);
      expect(await count(viewer, "organization_limits")).toBe(1);
      await asUser(client, owner, async () => {
        expect((await expectError(client, "update app_public.audit_log set action = 'x.y' where organization_id = $1", [organizationId])).code).toBe(
          "42501",
        );
        expect((await expectError(client, "delete from app_public.audit_log where organization_id = $1", [organizationId])).code).toBe("42501");
      });
    });
  });

  test("users see themselves and the members of their organizations, and change only their own profile", async () => {
    await asRoot(async (client) => {
      const owner = await createUser(client);
      const colleague = await memberOf(client, owner.organizationId, "viewer");
      const stranger = await createUser(client);
      const visible = await asUser(client, colleague, async () =>
        (await client.query("select id from app_public.users where id = any($1)", [[owner.id, colleague.id, stranger.id]])).rows.map((r) => r.id),
      );
      expect(visible.sort()).toEqual([owner.id, colleague.id].sort());
      await asUser(client, colleague, async () => {
        expect((await client.query("update app_public.users set name = 'Mallory' where id = $1", [owner.id])).rowCount).toBe(0);
        expect((await client.query("update app_public.users set name = 'Me' where id = $1", [colleague.id])).rowCount).toBe(1);
        expect((await expectError(client, "update app_public.users set is_admin = true where id = $1", [colleague.id])).code).toBe("42501");
        expect((await expectError(client, "update app_public.users set email = 'x@example.com' where id = $1", [colleague.id])).code).toBe("42501");
      });
    });
  });
});
