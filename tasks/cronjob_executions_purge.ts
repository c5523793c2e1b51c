/** `cronjob_executions_purge` (crontab, daily): deletes executions older than 90 days, in batches. */
import type { Task } from "graphile-worker";

const BATCH = 10_000;

export const cronjobExecutionsPurge: Task = async (_payload, helpers) => {
  let total = 0;
  for (;;) {
    const { rows } = await helpers.query<{ deleted: number }>("select app_private.purge_cronjob_executions($1) as deleted", [BATCH]);
    const deleted = rows[0]?.deleted ?? 0;
    total += deleted;
    if (deleted < BATCH) break;
  }
  if (total > 0) helpers.logger.info(`deleted ${total} cron job executions older than 90 days`);
};
