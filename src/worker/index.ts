/**
 * graphile-worker, in process: the task list from `tasks/` and the crontab
 * kept at the repository root. Jobs run as the owner.
 */
import { readFile } from "node:fs/promises";
import path from "node:path";
import { Logger as WorkerLogger, run, type Runner } from "graphile-worker";
import type { Pool } from "pg";
import { createTaskList } from "../../tasks/index.ts";
import type { Config } from "../config.ts";
import { graphileLogFactory, type Logger } from "../logger.ts";
import { PROJECT_ROOT } from "../paths.ts";

export const CRONTAB_FILE = path.join(PROJECT_ROOT, "crontab");

export async function startWorker(options: { config: Config; logger: Logger; ownerPool: Pool }): Promise<Runner> {
  const { config, logger, ownerPool } = options;
  return run({
    pgPool: ownerPool,
    taskList: createTaskList({ config, logger }),
    crontab: await readFile(CRONTAB_FILE, "utf8"),
    concurrency: config.workerConcurrency,
    noHandleSignals: true,
    pollInterval: 1_000,
    logger: new WorkerLogger(graphileLogFactory(logger)),
  });
}
