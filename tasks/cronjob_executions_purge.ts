/** `cronjob_executions_purge` (crontab, daily): deletes executions older than 90 days, in batches. */
import { purgeTask } from "./purge.ts";

export const cronjobExecutionsPurge = purgeTask("app_private.purge_cronjob_executions");
