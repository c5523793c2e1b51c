/**
 * Sessions are checked on every request: expired, revoked and forged tokens
 * are anonymous; logout and logoutEverywhere revoke; last_used_at is written
 * at most once a minute.
 */
import { randomBytes } from "node:crypto";
import { describe, expect, test } from "@jest/globals";
import { asRoot, type Client } from "../../helpers/db.ts";
import { asUser, createUser } from "../../helpers/identity.ts";

async function currentUserId(client: Client, token: string | null): Promise<string | null> {
  return asUser(client, token === null ? null : { token }, async () =>
    (await client.query<{ id: string | null }>("select app_public.current_user_id() as id")).rows[0]?.id ?? null,
  );
}

async function newSession(client: Client, userId: string): Promise<string> {
  const { rows } = await client.query<{ token: string }>("select token from app_private.create_session($1)", [userId]);
  return rows[0]?.token ?? "";
}

describe("sessions", () => {
  test("an expired session is anonymous", async () => {
    await asRoot(async (client) => {
      const user = await createUser(client);
      expect(await currentUserId(client, user.token)).toBe(user.id);
      await client.query("update app_private.sessions set expires_at = now() where id = $1", [user.sessionId]);
      expect(await currentUserId(client, user.token)).toBeNull();
    });
  });

  test("logout revokes this session only; then the token is anonymous", async () => {
    await asRoot(async (client) => {
      const user = await createUser(client);
      const other = await newSession(client, user.id);
      expect(await asUser(client, user, async () => (await client.query("select app_public.logout() as ok")).rows[0]?.ok)).toBe(true);
      expect(await currentUserId(client, user.token)).toBeNull();
      expect(await currentUserId(client, other)).toBe(user.id);
      expect(await asUser(client, user, async () => (await client.query("select app_public.logout() as ok")).rows[0]?.ok)).toBe(false);
      const { rows } = await client.query("select revoked_at is not null as revoked from app_private.sessions where id = $1", [user.sessionId]);
      expect(rows[0]?.revoked).toBe(true);
    });
  });

  test("logoutEverywhere revokes every session of the user, and nobody else's", async () => {
    await asRoot(async (client) => {
      const user = await createUser(client);
      const bystander = await createUser(client);
      const second = await newSession(client, user.id);
      const ended = await asUser(client, user, async () => (await client.query("select app_public.logout_everywhere() as n")).rows[0]?.n);
      expect(ended).toBe(2);
      expect(await currentUserId(client, user.token)).toBeNull();
      expect(await currentUserId(client, second)).toBeNull();
      expect(await currentUserId(client, bystander.token)).toBe(bystander.id);
    });
  });

  test("forged tokens are anonymous: random ones, a hash sent as the token, another user's id", async () => {
    await asRoot(async (client) => {
      const user = await createUser(client);
      const storedHash = (await client.query("select token_hash from app_private.sessions where id = $1", [user.sessionId])).rows[0]
        ?.token_hash as string;
      for (const forged of [`ses_${randomBytes(32).toString("hex")}`, storedHash, `ses_${storedHash}`, user.id, "", "ses_"]) {
        expect(await currentUserId(client, forged)).toBeNull();
      }
      const raw = await asUser(client, null, async () => {
        await client.query("select set_config('agentplane.token_hash', 'not hex at all', true)");
        return (await client.query("select app_public.current_user_id() as id")).rows[0]?.id;
      });
      expect(raw).toBeNull();
    });
  });

  test("a session lasts agentplane.session_lifetime, 7 days when unset", async () => {
    await asRoot(async (client) => {
      const user = await createUser(client);
      const lifetime = async () =>
        (await client.query("select expires_at - now() as lifetime from app_private.create_session($1)", [user.id])).rows[0]?.lifetime;
      expect(await lifetime()).toMatchObject({ days: 7 });
      await client.query("select set_config('agentplane.session_lifetime', '2 hours', true)");
      expect(await lifetime()).toMatchObject({ hours: 2 });
    });
  });

  test("currentSession describes this session, never its token", async () => {
    await asRoot(async (client) => {
      const user = await createUser(client);
      const session = await asUser(client, user, async () => (await client.query("select * from app_public.current_session()")).rows[0]);
      expect(Object.keys(session ?? {}).sort()).toEqual(["created_at", "expires_at", "ip", "last_used_at", "session_id", "user_agent"]);
      expect(session?.session_id).toBe(user.sessionId);
      const anonymous = await asUser(client, null, async () => (await client.query("select * from app_public.current_session()")).rows[0]);
      expect(anonymous?.session_id ?? null).toBeNull();
    });
  });

  test("touch_session writes last_used_at at most once a minute, and never for revoked or unknown tokens", async () => {
    await asRoot(async (client) => {
      const user = await createUser(client);
      const hash = (await client.query("select token_hash from app_private.sessions where id = $1", [user.sessionId])).rows[0]?.token_hash;
      const lastUsed = async () =>
        (await client.query("select last_used_at, (select last_active_at from app_public.users where id = $2) as active from app_private.sessions where id = $1", [user.sessionId, user.id])).rows[0];
      await client.query(
        "update app_private.sessions set last_used_at = now() - interval '30 seconds' where id = $1",
        [user.sessionId],
      );
      const recent = await lastUsed();
      await client.query("select app_private.touch_session($1)", [hash]);
      expect(await lastUsed()).toEqual(recent);

      await client.query("update app_private.sessions set last_used_at = now() - interval '2 minutes' where id = $1", [user.sessionId]);
      await client.query("update app_public.users set last_active_at = null where id = $1", [user.id]);
      await client.query("select app_private.touch_session($1)", [hash]);
      const touched = await lastUsed();
      expect(touched?.last_used_at.getTime()).toBeGreaterThan((recent?.last_used_at as Date).getTime());
      expect(touched?.active).toEqual(touched?.last_used_at);

      await client.query("update app_private.sessions set last_used_at = now() - interval '2 minutes', revoked_at = now() where id = $1", [user.sessionId]);
      const revoked = await lastUsed();
      await client.query("select app_private.touch_session($1)", [hash]);
      await client.query("select app_private.touch_session($1)", ["0".repeat(64)]);
      expect(await lastUsed()).toEqual(revoked);
    });
  });
});
