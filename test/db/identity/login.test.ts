/**
 * Signing in: the same answer for an unknown account and a wrong password,
 * every attempt recorded, lockout after 5 failures, one attempt per request,
 * bcrypt with cost 10.
 */
import { describe, expect, test } from "@jest/globals";
import { asRoot, expectError, type Client } from "../../helpers/db.ts";
import { asUser, createUser, type TestUser } from "../../helpers/identity.ts";

interface Credentials {
  user_id: string;
  session_id: string;
  token: string;
  expires_at: Date;
}

/** One login, as its own anonymous request; null when refused. */
async function login(client: Client, identifier: string, password: string, extra: Record<string, string> = {}) {
  return asUser(
    client,
    null,
    async () => {
      const { rows } = await client.query<Credentials>("select * from app_public.login($1, $2) where token is not null", [
        identifier,
        password,
      ]);
      return rows[0] ?? null;
    },
    extra,
  );
}

async function failWrongPassword(client: Client, user: TestUser, times: number) {
  for (let i = 0; i < times; i += 1) expect(await login(client, user.email, "wrong password")).toBeNull();
}

async function lockState(client: Client, user: TestUser) {
  const { rows } = await client.query<{ failed_attempts: number; locked: boolean }>(
    "select failed_attempts, coalesce(locked_until > now(), false) as locked from app_private.user_secrets where user_id = $1",
    [user.id],
  );
  return rows[0];
}

describe("login", () => {
  test("the right password, by email (any case) or username, opens a session whose token is stored only hashed", async () => {
    await asRoot(async (client) => {
      const user = await createUser(client);
      const byEmail = await login(client, user.email.toUpperCase(), user.password);
      const byUsername = await login(client, user.username, user.password);
      expect(byEmail).toMatchObject({ user_id: user.id, token: expect.stringMatching(/^ses_[0-9a-f]{64}$/) });
      expect(byUsername?.token).not.toBe(byEmail?.token);
      const signedIn = await asUser(client, { token: byEmail?.token ?? "" }, async () =>
        (await client.query("select app_public.current_user_id() as id")).rows[0]?.id,
      );
      expect(signedIn).toBe(user.id);
      const stored = await client.query("select to_jsonb(s)::text as row from app_private.sessions s where user_id = $1", [user.id]);
      expect(stored.rows).toHaveLength(3);
      for (const { row } of stored.rows) expect(row).not.toContain(byEmail?.token.slice(4));
    });
  });

  test("an unknown account and a wrong password get the same answer, and both attempts are recorded", async () => {
    await asRoot(async (client) => {
      const user = await createUser(client);
      const settings = { "agentplane.ip": "198.51.100.4", "agentplane.user_agent": "login-test" };
      expect(await login(client, user.email, "not the password", settings)).toBeNull();
      expect(await login(client, `nobody-${user.username}@example.com`, "not the password", settings)).toBeNull();
      const attempts = await client.query(
        `select identifier, user_id, success, host(ip) as ip, user_agent from app_private.login_attempts
          where identifier in ($1, $2) order by user_id nulls last`,
        [user.email, `nobody-${user.username}@example.com`],
      );
      expect(attempts.rows).toEqual([
        { identifier: user.email, user_id: user.id, success: false, ip: "198.51.100.4", user_agent: "login-test" },
        { identifier: `nobody-${user.username}@example.com`, user_id: null, success: false, ip: "198.51.100.4", user_agent: "login-test" },
      ]);
    });
  });

  test("5 failures in a row lock the account for 15 minutes, even against the right password", async () => {
    await asRoot(async (client) => {
      const user = await createUser(client);
      await failWrongPassword(client, user, 4);
      expect(await lockState(client, user)).toEqual({ failed_attempts: 4, locked: false });
      await failWrongPassword(client, user, 1);
      expect(await lockState(client, user)).toEqual({ failed_attempts: 0, locked: true });
      const { rows } = await client.query(
        "select locked_until - now() as remaining from app_private.user_secrets where user_id = $1",
        [user.id],
      );
      expect(rows[0]?.remaining).toMatchObject({ minutes: 15 });
      expect(await login(client, user.email, user.password)).toBeNull();

      await client.query("update app_private.user_secrets set locked_until = now() - interval '1 second' where user_id = $1", [user.id]);
      expect(await login(client, user.email, user.password)).not.toBeNull();
      expect(await lockState(client, user)).toEqual({ failed_attempts: 0, locked: false });
    });
  });

  test("a success resets the count of failures", async () => {
    await asRoot(async (client) => {
      const user = await createUser(client);
      await failWrongPassword(client, user, 4);
      expect(await login(client, user.username, user.password)).not.toBeNull();
      await failWrongPassword(client, user, 4);
      expect(await lockState(client, user)).toEqual({ failed_attempts: 4, locked: false });
    });
  });

  test("one attempt per request: a second login in the same request is refused, even with the right password", async () => {
    await asRoot(async (client) => {
      const user = await createUser(client);
      await asUser(client, null, async () => {
        const first = await client.query("select token from app_public.login($1, 'wrong password')", [user.email]);
        expect(first.rows[0]?.token).toBeNull();
        const second = await expectError(client, "select app_public.login($1, $2)", [user.email, user.password]);
        expect(second).toMatchObject({ code: "LOGIN", message: "only one sign-in attempt is allowed per request" });
      });
      const attempts = await client.query("select count(*)::int as count from app_private.login_attempts where user_id = $1", [user.id]);
      expect(attempts.rows[0]?.count).toBe(1);
    });
  });

  test("a disabled account cannot sign in, and its sessions stop working", async () => {
    await asRoot(async (client) => {
      const user = await createUser(client);
      await client.query("update app_public.users set is_active = false where id = $1", [user.id]);
      expect(await login(client, user.email, user.password)).toBeNull();
      const current = await asUser(client, user, async () => (await client.query("select app_public.current_user_id() as id")).rows[0]?.id);
      expect(current).toBeNull();
    });
  });

  test("passwords are bcrypt hashes with cost 10, at least 8 characters and at most 72 bytes", async () => {
    await asRoot(async (client) => {
      const user = await createUser(client);
      const { rows } = await client.query("select password_hash from app_private.user_secrets where user_id = $1", [user.id]);
      expect(rows[0]?.password_hash).toMatch(/^\$2a\$10\$.{53}$/);
      const short = await expectError(client, "select app_public.register('short@example.com', '1234567')");
      expect(short).toMatchObject({ code: "WEAKP", message: "passwords must be at least 8 characters long" });
      const long = await expectError(client, "select app_public.register('long@example.com', $1)", ["é".repeat(37)]);
      expect(long).toMatchObject({ code: "WEAKP" });
    });
  });

  test("register refuses an email address or username already in use, whatever the case", async () => {
    await asRoot(async (client) => {
      const user = await createUser(client);
      const email = await expectError(client, "select app_public.register($1, 'long enough password')", [user.email.toUpperCase()]);
      expect(email).toMatchObject({ code: "NUNIQ", message: "an account with this email address already exists" });
      const username = await expectError(client, "select app_public.register('other@example.com', 'long enough password', $1)", [
        user.username.toUpperCase(),
      ]);
      expect(username).toMatchObject({ code: "NUNIQ", message: "this username is taken" });
    });
  });
});
