/**
 * Identity through GraphQL on a real server: register → login → query with
 * the token → logout; lockout-proof batching; WebSocket authorization;
 * organizations and invitations; session activity and lifetime.
 */
import { afterAll, beforeAll, describe, expect, test } from "@jest/globals";
import WebSocket from "ws";
import { LOGIN_FAILED_MESSAGE } from "../../src/server/login-failure.ts";
import { pool } from "../helpers/db.ts";
import { uniqueSuffix } from "../helpers/identity.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";

let server: TestServer;
const createdUserIds: string[] = [];

interface Registered {
  email: string;
  password: string;
  token: string;
  userId: string;
}

const REGISTER = `mutation ($email: String!, $password: String!) {
  register(input: { email: $email, password: $password }) { result { token userId expiresAt } }
}`;
const LOGIN = `mutation ($who: String!, $password: String!) {
  login(input: { usernameOrEmail: $who, password: $password }) { result { token userId expiresAt } }
}`;
const ME = "{ currentUser { rowId email } currentSession { sessionId } }";

async function register(): Promise<Registered> {
  const email = `gql-${uniqueSuffix()}@example.com`;
  const password = `password-${uniqueSuffix()}`;
  const response = await server.graphql<{ register: { result: { token: string; userId: string } } }>(REGISTER, { email, password });
  expect(response.errors).toBeUndefined();
  const result = response.data?.register.result;
  if (result === undefined) throw new Error("register failed");
  createdUserIds.push(result.userId);
  return { email, password, token: result.token, userId: result.userId };
}

beforeAll(async () => {
  server = await startTestServer();
});

afterAll(async () => {
  await server.close();
  const root = pool("root");
  await root.query(
    `delete from app_public.organizations where id in (
       select organization_id from app_public.organization_memberships where user_id = any($1) and role = 'owner')`,
    [createdUserIds],
  );
  await root.query("delete from app_public.users where id = any($1)", [createdUserIds]);
});

describe("identity over GraphQL", () => {
  test("register → login → query with the token → logout → the token is anonymous", async () => {
    const user = await register();
    const login = await server.graphql<{ login: { result: { token: string; userId: string } } }>(LOGIN, {
      who: user.email,
      password: user.password,
    });
    const token = login.data?.login.result.token ?? "";
    expect(token).toMatch(/^ses_/);
    const me = await server.graphql<{ currentUser: { rowId: string; email: string } }>(ME, {}, { token });
    expect(me.data?.currentUser).toEqual({ rowId: user.userId, email: user.email });

    const logout = await server.graphql<{ logout: { result: boolean } }>("mutation { logout(input: {}) { result } }", {}, { token });
    expect(logout.data?.logout.result).toBe(true);
    const after = await server.graphql(ME, {}, { token });
    expect(after).toEqual({ status: 200, data: { currentUser: null, currentSession: null } });
    // The register session still works: logout ended only its own session.
    expect((await server.graphql<{ currentUser: { email: string } }>(ME, {}, { token: user.token })).data?.currentUser?.email).toBe(user.email);
  });

  test("a forged or malformed token is anonymous, not an error", async () => {
    for (const headers of [{ authorization: "Bearer ses_forged" }, { authorization: "Basic Zm9vOmJhcg==" }, { authorization: "Bearer" }]) {
      expect(await server.graphql(ME, {}, { headers })).toEqual({ status: 200, data: { currentUser: null, currentSession: null } });
    }
  });

  test("an unknown account and a wrong password get the same error", async () => {
    const user = await register();
    const wrongPassword = await server.graphql(LOGIN, { who: user.email, password: "not the password" });
    const unknownAccount = await server.graphql(LOGIN, { who: `nobody-${user.email}`, password: "not the password" });
    expect(wrongPassword.errors?.[0]).toMatchObject({ message: LOGIN_FAILED_MESSAGE, extensions: { code: "LOGIN_FAILED" } });
    expect(unknownAccount.errors).toEqual(wrongPassword.errors);
    expect(unknownAccount.data).toEqual(wrongPassword.data);
  });

  test("aliases in one request make one attempt: six guesses cannot get past the lockout", async () => {
    const user = await register();
    const guesses = ["a", "b", "c", "d", "e", "f"]
      .map((alias, i) => `${alias}: login(input: { usernameOrEmail: $who, password: "guess ${i}" }) { result { token } }`)
      .join("\n");
    const response = await server.graphql(`mutation ($who: String!) { ${guesses} }`, { who: user.email });
    expect(response.errors?.map((error) => error.extensions?.code)).toEqual(["LOGIN_FAILED", "LOGIN", "LOGIN", "LOGIN", "LOGIN", "LOGIN"]);
    const { rows } = await pool("root").query(
      "select count(*)::int as attempts, (select failed_attempts from app_private.user_secrets where user_id = $1) as failures from app_private.login_attempts where user_id = $1",
      [user.userId],
    );
    expect(rows[0]).toEqual({ attempts: 1, failures: 1 });
  });

  test("WebSocket operations are authorized by the authorization connection parameter", async () => {
    const user = await register();
    const ask = (connectionParams: Record<string, string>) =>
      new Promise<unknown>((resolve, reject) => {
        const ws = new WebSocket(`${server.url.replace(/^http/, "ws")}/graphql`, "graphql-transport-ws");
        ws.on("open", () => ws.send(JSON.stringify({ type: "connection_init", payload: connectionParams })));
        ws.on("message", (data: Buffer) => {
          const message = JSON.parse(data.toString()) as { type: string; payload?: unknown };
          if (message.type === "connection_ack") {
            ws.send(JSON.stringify({ id: "1", type: "subscribe", payload: { query: "{ currentUser { email } }" } }));
          } else if (message.type === "next") {
            resolve(message.payload);
            ws.close();
          }
        });
        ws.on("error", reject);
      });
    expect(await ask({ authorization: `Bearer ${user.token}` })).toEqual({ data: { currentUser: { email: user.email } } });
    expect(await ask({})).toEqual({ data: { currentUser: null } });
  });

  test("a request with a token keeps the session's last_used_at current", async () => {
    const user = await register();
    const root = pool("root");
    await root.query("update app_private.sessions set last_used_at = now() - interval '1 hour' where user_id = $1", [user.userId]);
    await server.graphql(ME, {}, { token: user.token });
    let lastUsedAgo = Infinity;
    for (let i = 0; i < 50 && lastUsedAgo > 60; i += 1) {
      const { rows } = await root.query<{ ago: number }>(
        "select extract(epoch from now() - last_used_at)::float as ago from app_private.sessions where user_id = $1",
        [user.userId],
      );
      lastUsedAgo = rows[0]?.ago ?? Infinity;
      if (lastUsedAgo > 60) await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(lastUsedAgo).toBeLessThan(60);
  });

  test("organizations: create, invite, accept, change a role, read the audit log, remove", async () => {
    const owner = await register();
    const invitee = await register();
    const created = await server.graphql<{ createOrganization: { result: { rowId: string; slug: string } } }>(
      `mutation { createOrganization(input: { name: "Robots Inc", slug: "robots-${uniqueSuffix()}" }) { result { rowId slug } } }`,
      {},
      { token: owner.token },
    );
    const organizationId = created.data?.createOrganization.result.rowId ?? "";
    expect(organizationId).not.toBe("");

    const invited = await server.graphql<{ inviteToOrganization: { result: { token: string } } }>(
      `mutation ($org: UUID!, $email: String!) { inviteToOrganization(input: { organizationId: $org, email: $email, role: "admin" }) { result { token expiresAt } } }`,
      { org: organizationId, email: invitee.email },
      { token: owner.token },
    );
    const invitationToken = invited.data?.inviteToOrganization.result.token ?? "";
    const ACCEPT = `mutation ($token: String!) { acceptInvitation(input: { token: $token }) { result { role organization { slug } } } }`;
    const stolen = await server.graphql(ACCEPT, { token: invitationToken }, { token: owner.token });
    expect(stolen.errors?.[0]).toMatchObject({ message: "this invitation was sent to another email address", extensions: { code: "DNIED" } });
    const accepted = await server.graphql(ACCEPT, { token: invitationToken }, { token: invitee.token });
    expect(accepted.data).toEqual({
      acceptInvitation: { result: { role: "admin", organization: { slug: created.data?.createOrganization.result.slug } } },
    });

    const demoted = await server.graphql(
      `mutation ($org: UUID!, $user: UUID!) { changeOrganizationMemberRole(input: { organizationId: $org, userId: $user, role: "viewer" }) { result { role } } }`,
      { org: organizationId, user: invitee.userId },
      { token: owner.token },
    );
    expect(demoted.data).toEqual({ changeOrganizationMemberRole: { result: { role: "viewer" } } });

    const AUDIT = `query ($org: UUID!) { organization(rowId: $org) { auditLogs(orderBy: CREATED_AT_ASC) { nodes { action actorType } } } }`;
    const audit = await server.graphql<{ organization: { auditLogs: { nodes: Array<{ action: string }> } } }>(
      AUDIT,
      { org: organizationId },
      { token: owner.token },
    );
    expect(audit.data?.organization.auditLogs.nodes.map((node) => node.action)).toEqual(
      expect.arrayContaining(["organization.created", "invitation.created", "membership.created", "membership.updated"]),
    );
    const asViewer = await server.graphql<{ organization: { auditLogs: { nodes: unknown[] } } }>(AUDIT, { org: organizationId }, { token: invitee.token });
    expect(asViewer.data?.organization.auditLogs.nodes).toEqual([]);

    const removed = await server.graphql(
      `mutation ($org: UUID!, $user: UUID!) { removeOrganizationMember(input: { organizationId: $org, userId: $user }) { result } }`,
      { org: organizationId, user: invitee.userId },
      { token: owner.token },
    );
    expect(removed.data).toEqual({ removeOrganizationMember: { result: true } });
    const gone = await server.graphql(`query ($org: UUID!) { organization(rowId: $org) { rowId } }`, { org: organizationId }, { token: invitee.token });
    expect(gone.data).toEqual({ organization: null });
  });

  test("SESSION_LIFETIME_HOURS sets how long new sessions last", async () => {
    const user = await register();
    const shortLived = await startTestServer({ env: { SESSION_LIFETIME_HOURS: "1" } });
    try {
      const login = await shortLived.graphql<{ login: { result: { expiresAt: string } } }>(LOGIN, { who: user.email, password: user.password });
      const lifetimeMs = Date.parse(login.data?.login.result.expiresAt ?? "") - Date.now();
      expect(lifetimeMs).toBeGreaterThan(55 * 60_000);
      expect(lifetimeMs).toBeLessThanOrEqual(60 * 60_000);
    } finally {
      await shortLived.close();
    }
  });
});
