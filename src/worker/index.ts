/**
 * graphile-worker, in process: the task list from `tasks/` and the crontab
 * kept at the repository root. Jobs run as the owner.
 */
import { readFile } from "node:fs/promises";
import path from "node:path";
import { Logger as WorkerLogger, run, type Runner, type TaskList } from "graphile-worker";
import type { Pool } from "pg";
import { createTaskList } from "../../tasks/index.ts";
import type { Config } from "../config.ts";
import { graphileLogFactory, type Logger } from "../logger.ts";
import { PROJECT_ROOT } from "../paths.ts";

export const CRONTAB_FILE = path.join(PROJECT_ROOT, "crontab");

export interface WorkerOptions {
  config: Config;
  logger: Logger;
  ownerPool: Pool;
  /** Tasks instead of tasks/ (the benchmark adds its own); with them, no crontab. */
  taskList?: TaskList;
}

export async function startWorker(options: WorkerOptions): Promise<Runner> {
  const { config, logger, ownerPool } = options;
  return run({
    pgPool: ownerPool,
    taskList: options.taskList ?? createTaskList({ config, logger }),
    crontab: options.taskList === undefined ? await readFile(CRONTAB_FILE, "utf8") : "",
    concurrency: config.workerConcurrency,
    noHandleSignals: true,
    pollInterval: 1_000,
    preset: {
      worker: {
        // Fetch (and lock) a few jobs per query and complete them in batches: a burst
        // of due cron jobs costs far fewer round trips (see docs/performance.md).
        localQueue: { size: config.workerConcurrency * 4 },
        completeJobBatchDelay: 0,
      },
    },
    logger: new WorkerLogger(graphileLogFactory(logger)),
  });
}
