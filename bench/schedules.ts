/**
 * The schedules part of `npm run bench`: BENCH_CRONJOBS (10,000) cron jobs
 * due in the same minute, run by one worker process (WORKER_CONCURRENCY, as
 * configured) — how late each run starts (started_at - scheduled_for, p50 and
 * p99) and how many start per second — beside graphile-worker's own add→start
 * throughput for as many no-op jobs, measured in the same run on the same
 * database with the same worker settings, as a ratio.
 *
 * The cron jobs are `webhook` jobs posting to a local receiver, so each run
 * also queues its delivery; runs are measured when they start (the execution
 * row), deliveries are not part of the figure. See docs/performance.md.
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import type { Runner, Task } from "graphile-worker";
import { loadConfig } from "../src/config.ts";
import { createPools, type Pools } from "../src/db/pools.ts";
import { startWorker } from "../src/worker/index.ts";
import { createTaskList } from "../tasks/index.ts";
import { ms, percentile, type BenchContext, type BenchPart } from "./part.ts";

const COUNT = Number(process.env.BENCH_CRONJOBS ?? 10_000);
const sleep = (milliseconds: number) => new Promise((resolve) => setTimeout(resolve, milliseconds));

async function waitUntil(probe: () => Promise<boolean>, what: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`);
    await sleep(100);
  }
}

async function count(pools: Pools, sql: string, values: unknown[] = []): Promise<number> {
  const { rows } = await pools.ownerPool.query<{ n: number }>(sql, values);
  return rows[0]?.n ?? 0;
}

interface CronFigures {
  planningPerSecond: number;
  lateness: number[];
  perSecond: number;
}

/** COUNT cron jobs every minute, inserted at once: planned by the worker, then all due at the next minute. */
async function cronRun(pools: Pools, startRunner: () => Promise<Runner>, organizationId: string, hookUrl: string): Promise<{ figures: CronFigures; runner: Runner }> {
  // Insert early in a minute, so that planning is done before the next one begins.
  while (new Date().getUTCSeconds() > 15) await sleep(250);
  const { rows } = await pools.ownerPool.query<{ due: Date }>(
    `with inserted as (
       insert into app_public.cronjobs (organization_id, name, schedule, action, task, payload)
       select $1, 'bench ' || i, '* * * * *', 'webhook', 'tick', jsonb_build_object('url', $2::text)
       from generate_series(1, $3) i
       returning created_at
     )
     select date_trunc('minute', max(created_at)) + interval '1 minute' as due from inserted`,
    [organizationId, hookUrl, COUNT],
  );
  const due = rows[0]!.due;
  const planningStarted = performance.now();
  const runner = await startRunner();
  await waitUntil(
    async () => (await count(pools, "select count(*)::int as n from app_public.cronjobs where next_run_at = $1", [due])) === COUNT,
    "planning",
    120_000,
  );
  const planningPerSecond = COUNT / ((performance.now() - planningStarted) / 1_000);
  if (Date.now() >= due.getTime()) throw new Error("planning did not finish before the runs were due: lower BENCH_CRONJOBS");
  await waitUntil(
    async () => (await count(pools, "select count(*)::int as n from app_public.cronjob_executions where scheduled_for = $1", [due])) === COUNT,
    "the runs",
    Math.max(120_000, due.getTime() - Date.now() + 120_000),
  );
  const { rows: executions } = await pools.ownerPool.query<{ lateness_ms: number }>(
    "select extract(epoch from started_at - scheduled_for) * 1000 as lateness_ms from app_public.cronjob_executions where scheduled_for = $1",
    [due],
  );
  const lateness = executions.map((row) => Number(row.lateness_ms));
  const lastStart = Math.max(...lateness);
  return { figures: { planningPerSecond, lateness, perSecond: COUNT / (lastStart / 1_000) }, runner };
}

/** COUNT no-op jobs added at once, all to run at the same second: how late each starts, how many start per second. */
async function rawRun(pools: Pools, starts: number[]): Promise<{ lateness: number[]; perSecond: number }> {
  const runAt = new Date(Math.ceil((Date.now() + 3_000) / 1_000) * 1_000);
  for (let first = 0; first < COUNT; first += 1_000) {
    await pools.ownerPool.query(
      `select graphile_worker.add_jobs(array(
         select row('bench_noop', '{}'::json, null, $1::timestamptz, null, null, null, null)::graphile_worker.job_spec
         from generate_series(1, $2)))`,
      [runAt, Math.min(1_000, COUNT - first)],
    );
  }
  await waitUntil(async () => starts.length >= COUNT, "the no-op jobs", 300_000);
  const lateness = starts.map((start) => start - runAt.getTime());
  return { lateness, perSecond: COUNT / (Math.max(...lateness) / 1_000) };
}

async function run({ db, logger, note, table }: BenchContext): Promise<void> {
  const config = loadConfig({
    NODE_ENV: "test",
    LOG_LEVEL: "warn",
    DATABASE_URL: db.database.ownerUrl,
    AUTH_DATABASE_URL: db.database.authUrl,
    DATABASE_VISITOR: db.visitorRole,
    MIGRATE_ON_START: "false",
    ENCRYPTION_KEY: "bench-encryption-key-0123456789-abcdefghij",
    ...(process.env.WORKER_CONCURRENCY ? { WORKER_CONCURRENCY: process.env.WORKER_CONCURRENCY } : {}),
  });
  const pools = createPools(db.database, config, logger);
  const hook = createServer((_request, response) => response.end("ok"));
  await new Promise<void>((resolve) => hook.listen(0, "127.0.0.1", resolve));
  const starts: number[] = [];
  const noop: Task = async () => {
    starts.push(Date.now());
  };
  const startRunner = () =>
    startWorker({ config, logger, ownerPool: pools.ownerPool, taskList: { ...createTaskList({ config, logger }), bench_noop: noop } });
  let runner: Runner | null = null;
  try {
    const { rows } = await pools.ownerPool.query<{ user_id: string }>("select user_id from app_public.register('bench@example.test', 'bench-password')");
    const organizationId = await pools.ownerPool
      .query<{ organization_id: string }>("select organization_id from app_public.organization_memberships where user_id = $1", [rows[0]!.user_id])
      .then((result) => result.rows[0]!.organization_id);
    note(`inserting ${COUNT} cron jobs early in a minute, then waiting for them to be due`);
    const cron = await cronRun(pools, startRunner, organizationId, `http://127.0.0.1:${(hook.address() as AddressInfo).port}/tick`);
    runner = cron.runner;
    // Before the raw part: no next-minute runs, no deliveries left in the queue.
    await pools.ownerPool.query("delete from graphile_worker._private_jobs where key like 'cronjob:%'");
    await waitUntil(
      async () => (await count(pools, "select count(*)::int as n from graphile_worker.jobs where run_at <= now()")) === 0,
      "the deliveries to drain",
      300_000,
    );
    note(`graphile-worker alone: ${COUNT} no-op jobs`);
    const raw = await rawRun(pools, starts);
    const c = cron.figures;
    const seconds = (value: number) => `${(value / 1_000).toFixed(2)} s`;
    table(`${COUNT} cron jobs due in the same minute (worker concurrency ${config.workerConcurrency})`, [
      ["lateness p50 / p99", `${seconds(percentile(c.lateness, 50))} / ${seconds(percentile(c.lateness, 99))}`],
      ["executions/s", `${Math.round(c.perSecond)}`],
      ["planning (creation → next_run_at)", `${Math.round(c.planningPerSecond)}/s`],
    ]);
    table(`graphile-worker alone, ${COUNT} no-op jobs added at once for the same second`, [
      ["add → start p50 / p99", `${ms(percentile(raw.lateness, 50))} / ${ms(percentile(raw.lateness, 99))}`],
      ["jobs/s", `${Math.round(raw.perSecond)}`],
    ]);
    table("scheduler over graphile-worker", [["executions/s ÷ jobs/s", (c.perSecond / raw.perSecond).toFixed(2)]]);
  } finally {
    await runner?.stop();
    hook.close();
    await pools.end();
  }
}

export const schedulesBench: BenchPart = { name: "schedules", run };
