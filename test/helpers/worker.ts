/**
 * graphile-worker in tests: a real worker (this project's tasks and crontab)
 * against this run's database, configured like a test server (`env` adds
 * settings); and one job run on demand.
 */
import { Logger, runOnce, type Runner, type TaskList } from "graphile-worker";
import type { Pool } from "pg";
import type { Config } from "../../src/config.ts";
import { createPools, type Pools } from "../../src/db/pools.ts";
import { createLogger } from "../../src/logger.ts";
import { startWorker } from "../../src/worker/index.ts";
import { testDatabase } from "../setup/test-database.ts";
import { testConfig } from "./server.ts";
import { eventually } from "./wait.ts";

export interface TestWorker {
  runner: Runner;
  pools: Pools;
  config: Config;
  stop(): Promise<void>;
}

export async function startTestWorker(env: Record<string, string> = {}): Promise<TestWorker> {
  const config = testConfig(env);
  const logger = createLogger(config.logLevel);
  const pools = createPools(testDatabase().database, config, logger);
  const runner = await startWorker({ config, logger, ownerPool: pools.ownerPool });
  return {
    runner,
    pools,
    config,
    async stop() {
      await runner.stop();
      await pools.end();
    },
  };
}

const silent = new Logger(() => () => undefined);

/**
 * Adds a job (one attempt), runs the worker once, and resolves once the job is
 * done; rejects with its error if it failed. Test files share one database, so
 * another file's worker may be the one that runs it: hence the wait until it
 * has left the queue.
 */
export async function runJob(pgPool: Pool, taskList: TaskList, task: string, payload: Record<string, unknown> = {}): Promise<void> {
  const { rows } = await pgPool.query<{ id: string }>(
    "select id from graphile_worker.add_job($1, $2::json, max_attempts := 1)",
    [task, JSON.stringify(payload)],
  );
  const jobId = rows[0]?.id;
  await runOnce({ pgPool, taskList, logger: silent });
  await eventually(async () => {
    const { rows: left } = await pgPool.query<{ last_error: string | null }>(
      "select last_error from graphile_worker.jobs where id = $1",
      [jobId],
    );
    if (left.length === 0) return true;
    if (left[0]?.last_error) throw new Error(`job ${task} failed: ${left[0].last_error}`);
    return undefined;
  });
}
