/**
 * Every graphile-worker task, by identifier. One file per task in this folder;
 * the crontab at the repository root schedules the recurring ones.
 */
import type { TaskList } from "graphile-worker";
import { alertsSweep } from "./alerts_sweep.ts";
import type { TaskContext } from "./context.ts";
import { cronjobDeliver } from "./cronjob_deliver.ts";
import { cronjobExecutionsPurge } from "./cronjob_executions_purge.ts";
import { cronjobRun } from "./cronjob_run.ts";
import { notificationDeliver } from "./notification_deliver.ts";

export function createTaskList(context: TaskContext): TaskList {
  return {
    alerts_sweep: alertsSweep(context),
    cronjob_deliver: cronjobDeliver(context),
    cronjob_executions_purge: cronjobExecutionsPurge,
    cronjob_run: cronjobRun(context),
    notification_deliver: notificationDeliver(context),
  };
}
