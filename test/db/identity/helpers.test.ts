/**
 * The identity contract other modules build on: who is asking
 * (current_user_id, current_session_id), their organizations by role, and
 * write_audit_log.
 */
import { describe, expect, test } from "@jest/globals";
import { asRoot, expectError } from "../../helpers/db.ts";
import { asUser, createUser } from "../../helpers/identity.ts";
import type { Client } from "../../helpers/db.ts";

/** Calls write_audit_log and reads back the entry it wrote. */
async function audit(client: Client, args: string, values: unknown[]) {
  const { rows } = await client.query<{ id: string }>(`select app_private.write_audit_log(${args}) as id`, values);
  return (await client.query("select * from app_public.audit_log where id = $1", [rows[0]?.id])).rows[0];
}

describe("the identity helpers", () => {
  test("current_user_id and current_session_id come from the bearer token's hash", async () => {
    await asRoot(async (client) => {
      const user = await createUser(client);
      const signedIn = await asUser(client, user, async () =>
        (await client.query("select app_public.current_user_id() as user_id, app_public.current_session_id() as session_id")).rows[0],
      );
      expect(signedIn).toEqual({ user_id: user.id, session_id: user.sessionId });
      const anonymous = await asUser(client, null, async () =>
        (await client.query("select app_public.current_user_id() as user_id, app_public.current_session_id() as session_id")).rows[0],
      );
      expect(anonymous).toEqual({ user_id: null, session_id: null });
    });
  });

  test("current_user_organization_ids lists every organization; the app_hidden one filters by minimum role", async () => {
    await asRoot(async (client) => {
      const owner = await createUser(client);
      const viewer = await createUser(client);
      await client.query(
        "insert into app_public.organization_memberships (organization_id, user_id, role) values ($1, $2, 'viewer')",
        [owner.organizationId, viewer.id],
      );
      const ids = (sql: string) =>
        asUser(client, viewer, async () => (await client.query(sql)).rows.map((row) => row.id as string).sort());
      expect(await ids("select app_public.current_user_organization_ids() as id")).toEqual(
        [owner.organizationId, viewer.organizationId].sort(),
      );
      expect(await ids("select app_hidden.current_user_organization_ids('viewer') as id")).toEqual(
        [owner.organizationId, viewer.organizationId].sort(),
      );
      expect(await ids("select app_hidden.current_user_organization_ids('member') as id")).toEqual([viewer.organizationId]);
      expect(await ids("select app_hidden.current_user_organization_ids('owner') as id")).toEqual([viewer.organizationId]);
      expect(await ids("select app_hidden.current_user_organization_ids('no such role') as id")).toEqual([]);
    });
  });

  test("write_audit_log names the signed-in user, else the system, and records the request's address", async () => {
    await asRoot(async (client) => {
      const user = await createUser(client);
      const systemEntry = await audit(client, "$1, 'box.created', 'box', 'b1', '{\"name\": \"x\"}'", [user.organizationId]);
      expect(systemEntry).toMatchObject({ actor_type: "system", actor_id: null, action: "box.created", target_id: "b1", details: { name: "x" } });

      await client.query("select set_config('agentplane.token_hash', encode(digest($1, 'sha256'), 'hex'), true)", [user.token]);
      await client.query("select set_config('agentplane.ip', '203.0.113.7', true), set_config('agentplane.user_agent', 'tests', true)");
      const userEntry = await audit(client, "$1, 'box.deleted', 'box', 'b1'", [user.organizationId]);
      expect(userEntry).toMatchObject({ actor_type: "user", actor_id: user.id, ip: "203.0.113.7", user_agent: "tests", details: {} });
    });
  });

  test("a trusted service names its actor with agentplane.actor_type and agentplane.actor_id", async () => {
    await asRoot(async (client) => {
      const user = await createUser(client);
      await client.query("select set_config('agentplane.token_hash', '', true)");
      const boxId = "5f0c2a8e-6d0e-4a57-9a8c-3e1f5b2d7c11";
      await client.query("select set_config('agentplane.actor_type', 'box', true), set_config('agentplane.actor_id', $1, true)", [boxId]);
      const entry = await audit(client, "$1, 'box.connected', 'box', $2", [user.organizationId, boxId]);
      expect(entry).toMatchObject({ actor_type: "box", actor_id: boxId });
    });
  });

  test("the visitor cannot call write_audit_log nor read app_private", async () => {
    await asRoot(async (client) => {
      const user = await createUser(client);
      await asUser(client, user, async () => {
        const error = await expectError(client, "select app_private.write_audit_log($1, 'x.y', 'x', null)", [user.organizationId]);
        expect(error.code).toBe("42501");
        expect((await expectError(client, "select * from app_private.sessions")).code).toBe("42501");
      });
    });
  });
});
