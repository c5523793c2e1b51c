/**
 * Committed rows for tests that run a worker or a server (which cannot see a
 * test's open transaction): an organization's user, SQL run as that user in a
 * transaction that commits, and cron jobs. Clean up with removeUser.
 */
import { pool, type Client } from "./db.ts";
import { asUser, type TestUser } from "./identity.ts";
import { TEST_ENCRYPTION_KEY } from "./server.ts";

/** Runs fn as `user` (visitor role and token) in a transaction that commits. */
export async function committedAs<T>(user: TestUser, fn: (client: Client) => Promise<T>): Promise<T> {
  const client = await pool("root").connect();
  try {
    await client.query("begin");
    const result = await asUser(client, user, () => fn(client));
    await client.query("commit");
    return result;
  } catch (error) {
    await client.query("rollback");
    throw error;
  } finally {
    client.release();
  }
}

/** Runs one statement as root, committed, and returns its rows. */
export async function rootQuery<T extends Record<string, unknown> = Record<string, unknown>>(sql: string, values: unknown[] = []): Promise<T[]> {
  return (await pool("root").query<T>(sql, values)).rows;
}

/** A new webhook signing secret for the user's organization (the user must be an owner or admin). */
export async function rotateSigningSecret(user: TestUser): Promise<string> {
  return committedAs(user, async (client) => {
    const { rows } = await client.query<{ secret: string }>("select app_hidden.rotate_webhook_signing_secret($1, $2) as secret", [
      user.organizationId,
      TEST_ENCRYPTION_KEY,
    ]);
    return rows[0]!.secret;
  });
}

export interface CronjobFields {
  name?: string;
  schedule?: string;
  timezone?: string;
  action?: string;
  task?: string | null;
  payload?: Record<string, unknown>;
  agent_id?: string | null;
  box_id?: string | null;
  catch_up_policy?: string;
  enabled?: boolean;
}

/** A committed cron job of the user's organization (inserted as root). */
export async function insertCronjob(
  user: TestUser,
  fields: CronjobFields,
): Promise<{ id: string; revision: number; schedule: string; timezone: string }> {
  const columns = {
    organization_id: user.organizationId,
    name: "job",
    schedule: "* * * * *",
    timezone: "UTC",
    action: "webhook",
    task: "ping",
    payload: {},
    ...fields,
  };
  const names = Object.keys(columns);
  const values = Object.values(columns).map((value) => (typeof value === "object" && value !== null ? JSON.stringify(value) : value));
  const rows = await rootQuery<{ id: string; revision: number; schedule: string; timezone: string }>(
    `insert into app_public.cronjobs (${names.join(", ")}) values (${names.map((_, i) => `$${i + 1}`).join(", ")})
     returning id, revision, schedule, timezone`,
    values,
  );
  return rows[0]!;
}

/**
 * Queues the cron job's worker job as the scheduler would have: planned at
 * `plannedAt` (a past change: downtime since), or due at `dueAt`.
 */
export async function queueCronjobRun(
  cronjob: { id: string; revision: number; schedule: string; timezone: string },
  when: { plannedAt: Date } | { dueAt: Date },
  options: { jobKey?: string | null } = {},
): Promise<void> {
  const payload = {
    cronjobId: cronjob.id,
    revision: cronjob.revision,
    schedule: cronjob.schedule,
    timezone: cronjob.timezone,
    ...("dueAt" in when ? { dueAt: when.dueAt.toISOString() } : { plannedAt: when.plannedAt.toISOString() }),
  };
  await rootQuery("select graphile_worker.add_job('cronjob_run', $1::json, run_at := $2, job_key := $3, max_attempts := 10)", [
    JSON.stringify(payload),
    "dueAt" in when ? when.dueAt : new Date(),
    options.jobKey === undefined ? `cronjob:${cronjob.id}` : options.jobKey,
  ]);
}
