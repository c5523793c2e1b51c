/**
 * Cron jobs in the database: the SQL grammar agrees with src/schedules/cron.ts
 * case for case, and an invalid schedule, zone or action is refused at insert
 * and update with a clear message.
 */
import { describe, expect, test } from "@jest/globals";
import { cronScheduleProblem, isIanaTimeZone } from "../../../src/schedules/cron.ts";
import { asRoot, expectError, type Client } from "../../helpers/db.ts";
import { asUser, createUser, type TestUser } from "../../helpers/identity.ts";
import { ACCEPTED, REFUSED } from "../../schedules/cron-cases.ts";

async function sqlProblem(client: Client, schedule: string): Promise<string | null> {
  const { rows } = await client.query<{ problem: string | null }>("select app_hidden.cron_schedule_problem($1) as problem", [schedule]);
  return rows[0]?.problem ?? null;
}

function insertJob(client: Client, user: TestUser, fields: { schedule?: string; timezone?: string; action?: string; payload?: object; task?: string | null }) {
  return client.query<{ id: string; next_run_at: Date | null }>(
    `insert into app_public.cronjobs (organization_id, name, schedule, timezone, action, task, payload)
     values ($1, 'job', $2, $3, $4, $5, $6) returning id, next_run_at`,
    [
      user.organizationId,
      fields.schedule ?? "*/15 * * * *",
      fields.timezone ?? "UTC",
      fields.action ?? "webhook",
      fields.task === undefined ? "ping" : fields.task,
      JSON.stringify(fields.payload ?? { url: "https://hooks.example.test/x" }),
    ],
  );
}

describe("cron schedules in SQL", () => {
  test("the SQL grammar gives the same answer as the TypeScript one, message for message", async () => {
    await asRoot(async (client) => {
      for (const schedule of ACCEPTED) expect([schedule, await sqlProblem(client, schedule)]).toEqual([schedule, null]);
      for (const [schedule, problem] of REFUSED) expect([schedule, await sqlProblem(client, schedule)]).toEqual([schedule, problem]);
      // A few more, compared directly.
      for (const schedule of ["1-5/2,*/20 0 * * *", "0 0 1-7 * 1", "* * * dec-jan *", "7 7 7 7 7", "59 23 31 12 6", "00 00 01 01 00"]) {
        expect([schedule, await sqlProblem(client, schedule)]).toEqual([schedule, cronScheduleProblem(schedule)]);
      }
    });
  });

  test("every time zone the database accepts is one the scheduler (Node) can use", async () => {
    await asRoot(async (client) => {
      const { rows } = await client.query<{ name: string }>("select name from app_private.time_zone_names");
      expect(rows.length).toBeGreaterThan(300);
      expect(rows.map((row) => row.name).filter((name) => !isIanaTimeZone(name))).toEqual([]);
      const check = async (zone: string) =>
        (await client.query<{ ok: boolean }>("select app_private.is_iana_time_zone($1) as ok", [zone])).rows[0]?.ok;
      expect(await check("Europe/Berlin")).toBe(true);
      for (const zone of ["PST", "UTC+3", "posix/Europe/Berlin", "Mars/Olympus_Mons", "localtime"]) expect(await check(zone)).toBe(false);
    });
  });

  test("an invalid schedule or zone is refused at insert and at update, with a clear message", async () => {
    await asRoot(async (client) => {
      const user = await createUser(client);
      await asUser(client, user, async () => {
        const seedRegexWouldRefuse = await insertJob(client, user, { schedule: "*/15 * * * *" });
        expect(seedRegexWouldRefuse.rows).toHaveLength(1);
        const refused = await expectError(
          client,
          `insert into app_public.cronjobs (organization_id, name, schedule, action, payload)
           values ($1, 'job', '61 * * * *', 'webhook', '{"url": "https://hooks.example.test/x"}')`,
          [user.organizationId],
        );
        expect(refused.code).toBe("22023");
        expect(refused.message).toBe('invalid cron schedule "61 * * * *": minute: 61 is outside 0-59');
        expect(refused.hint).toMatch(/five fields/);
        const zone = await expectError(client, "update app_public.cronjobs set timezone = 'Mars/Olympus_Mons' where id = $1", [
          seedRegexWouldRefuse.rows[0]!.id,
        ]);
        expect(zone.message).toBe('unknown time zone "Mars/Olympus_Mons"');
        const update = await expectError(client, "update app_public.cronjobs set schedule = '0 0 L * *' where id = $1", [
          seedRegexWouldRefuse.rows[0]!.id,
        ]);
        expect(update.message).toBe('invalid cron schedule "0 0 L * *": day of month: "L" is not a number');
      });
    });
  });

  test("an action without what it needs is refused", async () => {
    await asRoot(async (client) => {
      const user = await createUser(client);
      await asUser(client, user, async () => {
        const cases: Array<[string, string]> = [
          [
            `insert into app_public.cronjobs (organization_id, name, schedule, action, payload) values ($1, 'x', '* * * * *', 'webhook', '{"url": "ftp://x"}')`,
            "a webhook cron job needs payload.url, an http(s) URL",
          ],
          [
            `insert into app_public.cronjobs (organization_id, name, schedule, action, task) values ($1, 'x', '* * * * *', 'run_bash_command', 'uptime')`,
            "a run_bash_command cron job needs a box (box_id) and the command (task)",
          ],
          [
            `insert into app_public.cronjobs (organization_id, name, schedule, action, task) values ($1, 'x', '* * * * *', 'run_agent_conversation', 'hi')`,
            "a run_agent_conversation cron job needs an agent (agent_id) and a task",
          ],
          [
            `insert into app_public.cronjobs (organization_id, name, schedule, action, task) values ($1, 'x', '* * * * *', 'create_agent_with_task', 'hi')`,
            "a create_agent_with_task cron job needs an agent or a box, and a task",
          ],
        ];
        for (const [sql, message] of cases) expect((await expectError(client, sql, [user.organizationId])).message).toBe(message);
      });
    });
  });

  test("a new or changed schedule gets a new revision, no stale next run, and a planning job; disabling removes the job", async () => {
    await asRoot(async (client) => {
      const user = await createUser(client);
      const job = (await insertJob(client, user, {})).rows[0]!;
      expect(job.next_run_at).toBeNull();
      const workerJob = async () =>
        (
          await client.query<{ payload: { cronjobId: string; revision: number; plannedAt: string }; run_at: Date }>(
            "select payload, run_at from graphile_worker._private_jobs where key = $1",
            [`cronjob:${job.id}`],
          )
        ).rows;
      const [planned] = await workerJob();
      expect(planned?.payload).toMatchObject({ cronjobId: job.id, revision: 1 });

      await client.query("update app_public.cronjobs set next_run_at = now() + interval '1 hour' where id = $1", [job.id]);
      await client.query("update app_public.cronjobs set name = 'renamed' where id = $1", [job.id]);
      let row = (await client.query("select revision, next_run_at from app_public.cronjobs where id = $1", [job.id])).rows[0];
      expect(row.revision).toBe(1);
      expect(row.next_run_at).not.toBeNull();

      await client.query("update app_public.cronjobs set schedule = '0 9 * * mon-fri' where id = $1", [job.id]);
      row = (await client.query("select revision, next_run_at from app_public.cronjobs where id = $1", [job.id])).rows[0];
      expect(row).toEqual({ revision: 2, next_run_at: null });
      expect((await workerJob())[0]?.payload.revision).toBe(2);

      await client.query("update app_public.cronjobs set enabled = false where id = $1", [job.id]);
      expect(await workerJob()).toEqual([]);
      await client.query("update app_public.cronjobs set enabled = true where id = $1", [job.id]);
      expect((await workerJob())[0]?.payload.revision).toBe(4);
      await client.query("delete from app_public.cronjobs where id = $1", [job.id]);
      expect(await workerJob()).toEqual([]);
    });
  });
});
