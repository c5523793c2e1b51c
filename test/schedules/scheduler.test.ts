/**
 * The scheduler, with real graphile-workers: next runs computed with
 * cron-parser on creation and on change, due runs started at their time and
 * never twice (two workers, duplicate jobs), catch-up after downtime, and
 * the webhook and cloud-agent actions end to end (signature verified).
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "@jest/globals";
import { nextRunAfter } from "../../src/schedules/cron.ts";
import { SIGNATURE_HEADER, TIMESTAMP_HEADER, verifyWebhook } from "../../src/schedules/signing.ts";
import { insertCronjob, queueCronjobRun, rootQuery, rotateSigningSecret } from "../helpers/committed.ts";
import { createCommittedUser, removeUser, type TestUser } from "../helpers/identity.ts";
import { startHttpReceiver, type HttpReceiver, type ReceivedRequest } from "../helpers/receivers.ts";
import { eventually } from "../helpers/wait.ts";
import { startTestWorker, type TestWorker } from "../helpers/worker.ts";

let user: TestUser;
let secret: string;
let receiver: HttpReceiver;
const workers: TestWorker[] = [];

/** Failing paths answer 500 once, then 200; `/gone` always 404. */
const failedOnce = new Set<string>();

// Inside one describe: the hooks run before the shared pools are closed (test/setup/after-env.ts).
describe("the scheduler", () => {
  beforeAll(async () => {
    user = await createCommittedUser();
    secret = await rotateSigningSecret(user);
    receiver = await startHttpReceiver((request) => {
      if (request.path === "/gone") return { status: 404, body: "no such hook" };
      if (request.path.startsWith("/flaky") && !failedOnce.has(request.path)) {
        failedOnce.add(request.path);
        return { status: 500, body: "try again" };
      }
      return { status: 200, body: JSON.stringify({ received: true }) };
    });
  });

  afterEach(async () => {
    await Promise.all(workers.splice(0).map((worker) => worker.stop()));
    await rootQuery("delete from app_public.cronjobs where organization_id = $1", [user.organizationId]);
  });

  afterAll(async () => {
    await receiver.close();
    await removeUser(user);
  });

  async function worker(env: Record<string, string> = {}): Promise<TestWorker> {
    const started = await startTestWorker({ DELIVERY_MAX_ATTEMPTS: "3", ...env });
    workers.push(started);
    return started;
  }

  function cronjobRow(id: string) {
    return rootQuery<{ next_run_at: Date | null; last_run_at: Date | null; revision: number; created_at: Date }>(
      "select next_run_at, last_run_at, revision, created_at from app_public.cronjobs where id = $1",
      [id],
    ).then((rows) => rows[0]!);
  }

  function executionsOf(id: string) {
    return rootQuery<{ id: string; status: string; scheduled_for: Date; started_at: Date; attempts: number; output: string | null; error: string | null }>(
      "select id, status, scheduled_for, started_at, attempts, output, error from app_public.cronjob_executions where cronjob_id = $1 order by scheduled_for",
      [id],
    );
  }

  function queuedJob(id: string) {
    return rootQuery<{ run_at: Date; payload: Record<string, unknown> }>("select run_at, payload from graphile_worker._private_jobs where key = $1", [
      `cronjob:${id}`,
    ]).then((rows) => rows[0]);
  }

  function verified(request: ReceivedRequest) {
    return verifyWebhook({
      secret,
      body: request.body,
      timestamp: request.headers[TIMESTAMP_HEADER] as string | undefined,
      signature: request.headers[SIGNATURE_HEADER] as string | undefined,
    });
  }

  describe("next_run_at", () => {
    test("is computed with cron-parser in the job's zone when the job is created, and again at once when it changes", async () => {
      await worker();
      const job = await insertCronjob(user, { schedule: "30 2 * * *", timezone: "America/New_York", payload: { url: `${receiver.url}/x` } });
      const planned = await eventually(async () => (await cronjobRow(job.id)).next_run_at ?? undefined, 15_000);
      const { created_at } = await cronjobRow(job.id);
      expect(planned).toEqual(nextRunAfter("30 2 * * *", "America/New_York", created_at));
      expect((await queuedJob(job.id))?.run_at).toEqual(planned);

      const before = new Date();
      await rootQuery("update app_public.cronjobs set schedule = '*/15 * * * *', timezone = 'Asia/Kolkata' where id = $1", [job.id]);
      const after = new Date();
      const replanned = await eventually(async () => {
        const row = await cronjobRow(job.id);
        return row.revision === 2 && row.next_run_at !== null ? row : undefined;
      }, 15_000);
      // Planned from the time of the change (the two differ only if a quarter hour began during the update).
      expect([nextRunAfter("*/15 * * * *", "Asia/Kolkata", before), nextRunAfter("*/15 * * * *", "Asia/Kolkata", after)]).toContainEqual(replanned.next_run_at);
      expect(await queuedJob(job.id)).toMatchObject({ run_at: replanned.next_run_at, payload: { revision: 2 } });

      await rootQuery("update app_public.cronjobs set enabled = false where id = $1", [job.id]);
      expect(await cronjobRow(job.id)).toMatchObject({ next_run_at: null });
      expect(await queuedJob(job.id)).toBeUndefined();
    });
  });

  describe("a due run", () => {
    test("starts at its time (not at a minute tick), runs once, and plans the next; the receiver verifies the signature", async () => {
      const job = await insertCronjob(user, {
        name: "ping",
        schedule: "*/5 * * * *",
        payload: { url: `${receiver.url}/ping`, body: { hello: "world" } },
      });
      const dueAt = new Date(Date.now() + 1_500);
      await queueCronjobRun(job, { dueAt });
      await worker();
      const ping = await eventually(async () => receiver.requests.find((r) => r.path === "/ping"), 15_000);
      expect(verified(ping)).toEqual({ ok: true });
      expect(ping.headers["agentplane-event"]).toBe("cronjob.run");
      const body = JSON.parse(ping.body) as Record<string, unknown>;
      expect(body).toMatchObject({ event: "cronjob.run", cronjob: { id: job.id, name: "ping" }, task: "ping", body: { hello: "world" } });
      expect(new Date(body.scheduled_for as string)).toEqual(dueAt);

      const [execution] = await eventually(async () => {
        const rows = await executionsOf(job.id);
        return rows[0]?.status === "success" ? rows : undefined;
      }, 15_000);
      expect(execution).toMatchObject({ scheduled_for: dueAt, attempts: 1, output: '{"received":true}' });
      expect(execution!.started_at.getTime()).toBeGreaterThanOrEqual(dueAt.getTime());
      expect(execution!.started_at.getTime() - dueAt.getTime()).toBeLessThan(10_000);
      expect(ping.headers["agentplane-delivery"]).toBe(execution!.id);
      const row = await cronjobRow(job.id);
      expect(row.next_run_at).toEqual(nextRunAfter("*/5 * * * *", "UTC", execution!.started_at));
      expect((await queuedJob(job.id))?.run_at).toEqual(row.next_run_at);
    });

    test("never runs twice, with two workers and duplicate jobs for the same time", async () => {
      const plannedAt = new Date(Date.now() - 70_000);
      const jobs = [];
      for (let i = 0; i < 12; i++) {
        jobs.push(await insertCronjob(user, { name: `dup-${i}`, schedule: "* * * * *", payload: { url: `${receiver.url}/dup/${i}` } }));
      }
      for (const job of jobs) {
        await queueCronjobRun(job, { plannedAt });
        // Two more copies of the same job without a key: as if two schedulers had queued it.
        await queueCronjobRun(job, { plannedAt }, { jobKey: null });
        await queueCronjobRun(job, { plannedAt }, { jobKey: null });
      }
      await Promise.all([worker({ CRON_MISSED_AFTER_MS: "300000" }), worker({ CRON_MISSED_AFTER_MS: "300000" })]);
      const due = nextRunAfter("* * * * *", "UTC", plannedAt);
      for (const job of jobs) {
        const executions = await eventually(async () => {
          const rows = await executionsOf(job.id);
          return rows.length > 0 && rows.every((r) => r.status === "success") ? rows : undefined;
        }, 15_000);
        expect(executions.map((e) => e.scheduled_for)).toEqual([due]);
      }
      await eventually(async () => {
        const pending = await rootQuery("select 1 from graphile_worker.jobs where task_identifier in ('cronjob_run', 'cronjob_deliver') and run_at <= now()");
        return pending.length === 0 ? true : undefined;
      }, 15_000);
      for (let i = 0; i < jobs.length; i++) {
        expect(receiver.requests.filter((r) => r.path === `/dup/${i}`)).toHaveLength(1);
        expect((await executionsOf(jobs[i]!.id)).length).toBe(1);
      }
    });
  });

  describe("catch-up after downtime", () => {
    test("run_once runs once for everything missed; skip records one skipped run; both wait for the next time", async () => {
      const downSince = new Date(Date.now() - 10 * 60_000);
      const once = await insertCronjob(user, { name: "once", schedule: "* * * * *", catch_up_policy: "run_once", payload: { url: `${receiver.url}/once` } });
      const skip = await insertCronjob(user, { name: "skip", schedule: "* * * * *", catch_up_policy: "skip", payload: { url: `${receiver.url}/skip` } });
      await queueCronjobRun(once, { plannedAt: downSince });
      await queueCronjobRun(skip, { dueAt: nextRunAfter("* * * * *", "UTC", downSince) });
      await worker();
      const ran = await eventually(async () => {
        const rows = await executionsOf(once.id);
        return rows[0]?.status === "success" ? rows : undefined;
      }, 15_000);
      expect(ran).toHaveLength(1);
      expect(ran[0]!.scheduled_for).toEqual(nextRunAfter("* * * * *", "UTC", downSince));
      const skipped = await eventually(async () => {
        const rows = await executionsOf(skip.id);
        return rows.length > 0 ? rows : undefined;
      }, 15_000);
      expect(skipped).toHaveLength(1);
      expect(skipped[0]).toMatchObject({ status: "skipped", error: expect.stringMatching(/^missed by \d+ s \(catch-up policy skip\)$/) });
      expect(receiver.requests.filter((r) => r.path === "/skip")).toEqual([]);
      for (const job of [once, skip]) {
        const row = await cronjobRow(job.id);
        expect(row.next_run_at!.getTime()).toBeGreaterThan(Date.now() - 5_000);
      }
    });
  });

  describe("delivery", () => {
    test("a failed POST is retried (graphile-worker back-off), each attempt counted, until it succeeds", async () => {
      const job = await insertCronjob(user, { name: "flaky", schedule: "0 0 1 1 *", payload: { url: `${receiver.url}/flaky/1` } });
      await queueCronjobRun(job, { dueAt: new Date() });
      await worker();
      const [execution] = await eventually(async () => {
        const rows = await executionsOf(job.id);
        return rows[0]?.status === "success" ? rows : undefined;
      }, 20_000);
      expect(execution).toMatchObject({ attempts: 2, error: null });
      const attempts = receiver.requests.filter((r) => r.path === "/flaky/1");
      expect(attempts.map((r) => verified(r).ok)).toEqual([true, true]);
      expect(attempts[0]!.headers["agentplane-delivery"]).toBe(attempts[1]!.headers["agentplane-delivery"]);
    });

    test("a refusal that retrying cannot fix fails the execution at once", async () => {
      const job = await insertCronjob(user, { name: "gone", schedule: "0 0 1 1 *", payload: { url: `${receiver.url}/gone` } });
      await queueCronjobRun(job, { dueAt: new Date() });
      await worker();
      const [execution] = await eventually(async () => {
        const rows = await executionsOf(job.id);
        return rows[0]?.status === "failure" ? rows : undefined;
      }, 15_000);
      expect(execution).toMatchObject({ attempts: 1, error: `POST ${receiver.url}/gone: HTTP 404 no such hook` });
    });

    test("a cloud agent gets its task as a signed POST to its webhook URL", async () => {
      const [agent] = await rootQuery<{ id: string }>(
        "insert into app_public.agents (organization_id, name, webhook_url) values ($1, 'cloud', $2) returning id",
        [user.organizationId, `${receiver.url}/agent`],
      );
      const job = await insertCronjob(user, {
        name: "digest", action: "run_agent_conversation", agent_id: agent!.id, task: "Write the daily digest", payload: { audience: "team" },
      });
      await queueCronjobRun(job, { dueAt: new Date() });
      await worker();
      const request = await eventually(async () => receiver.requests.find((r) => r.path === "/agent"), 15_000);
      expect(verified(request)).toEqual({ ok: true });
      expect(request.headers["agentplane-event"]).toBe("agent.task");
      expect(JSON.parse(request.body)).toMatchObject({
        event: "agent.task", agent_id: agent!.id, mode: "conversation", task: "Write the daily digest", payload: { audience: "team" },
      });
      await eventually(async () => ((await executionsOf(job.id))[0]?.status === "success" ? true : undefined), 15_000);
    });
  });
});
