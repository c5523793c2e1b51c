/**
 * Identity retention: sessions 7 days after expiry or revocation, login
 * attempts after 7 days, expired invitations; scheduled by the crontab and
 * idempotent.
 */
import { readFile } from "node:fs/promises";
import { describe, expect, test } from "@jest/globals";
import { parseCrontab } from "graphile-worker";
import { CRONTAB_FILE } from "../../src/worker/index.ts";
import { purge_sessions } from "../../tasks/purge_sessions.ts";
import { asRoot, pool, type Client } from "../helpers/db.ts";
import { createCommittedUser, createUser, removeUser } from "../helpers/identity.ts";
import { runJob } from "../helpers/worker.ts";


async function sessionIds(client: Client, userId: string): Promise<string[]> {
  const { rows } = await client.query("select id from app_private.sessions where user_id = $1 order by id", [userId]);
  return rows.map((row) => row.id as string);
}

/** Adds sessions to a user: [id, expires_at offset, revoked_at offset | null]. */
async function addSessions(client: Client, userId: string, sessions: Array<[label: string, expires: string, revoked: string | null]>) {
  const ids: Record<string, string> = {};
  for (const [label, expires, revoked] of sessions) {
    const { rows } = await client.query(
      `insert into app_private.sessions (user_id, token_hash, expires_at, revoked_at)
       values ($1, encode(gen_random_bytes(32), 'hex'), now() + $2::interval, now() + $3::interval) returning id`,
      [userId, expires, revoked],
    );
    ids[label] = rows[0]?.id;
  }
  return ids;
}

describe("identity retention", () => {
  test("the crontab schedules every identity purge task", async () => {
    const scheduled = parseCrontab(await readFile(CRONTAB_FILE, "utf8")).map((item) => item.task);
    expect(scheduled).toEqual(expect.arrayContaining(["purge_sessions", "purge_login_attempts", "purge_expired_invitations"]));
  });

  test("purge_sessions deletes sessions 7 days after expiry or revocation, and nothing else", async () => {
    await asRoot(async (client) => {
      const user = await createUser(client);
      const ids = await addSessions(client, user.id, [
        ["expired 8 days ago", "-8 days", null],
        ["expired 6 days ago", "-6 days", null],
        ["revoked 8 days ago", "1 day", "-8 days"],
        ["revoked 1 day ago", "1 day", "-1 day"],
      ]);
      expect((await client.query("select app_private.purge_sessions() as n")).rows[0]?.n).toBe(2);
      expect((await client.query("select app_private.purge_sessions() as n")).rows[0]?.n).toBe(0);
      expect(await sessionIds(client, user.id)).toEqual(
        [user.sessionId, ids["expired 6 days ago"], ids["revoked 1 day ago"]].sort(),
      );
    });
  });

  test("purge_login_attempts deletes attempts older than 7 days; purge_expired_invitations deletes expired invitations", async () => {
    await asRoot(async (client) => {
      const user = await createUser(client);
      await client.query(
        `insert into app_private.login_attempts (identifier, attempted_at)
         values ($1, now() - interval '8 days'), ($1, now() - interval '6 days')`,
        [user.email],
      );
      expect((await client.query("select app_private.purge_login_attempts() as n")).rows[0]?.n).toBe(1);
      const left = await client.query("select count(*)::int as n from app_private.login_attempts where identifier = $1", [user.email]);
      expect(left.rows[0]?.n).toBe(1);

      await client.query(
        `insert into app_public.organization_invitations (organization_id, email, token_hash, expires_at)
         values ($1, 'old@example.com', encode(gen_random_bytes(32), 'hex'), now() - interval '1 minute'),
                ($1, 'new@example.com', encode(gen_random_bytes(32), 'hex'), now() + interval '1 day')`,
        [user.organizationId],
      );
      expect((await client.query("select app_private.purge_expired_invitations() as n")).rows[0]?.n).toBe(1);
      const invitations = await client.query("select email from app_public.organization_invitations where organization_id = $1", [
        user.organizationId,
      ]);
      expect(invitations.rows).toEqual([{ email: "new@example.com" }]);
    });
  });

  test("purge_sessions runs in graphile-worker, and a second run finds nothing to do", async () => {
    const user = await createCommittedUser();
    const owner = await pool("owner").connect();
    try {
      await addSessions(owner, user.id, [["old", "-30 days", null]]);
      for (let run = 0; run < 2; run += 1) {
        await runJob(pool("owner"), { purge_sessions }, "purge_sessions");
        expect(await sessionIds(owner, user.id)).toEqual([user.sessionId]);
      }
    } finally {
      owner.release();
      await removeUser(user);
    }
  });
});
