/**
 * Every graphile-worker task, by identifier. One file per task in this folder;
 * the crontab at the repository root schedules the recurring ones.
 */
import type { TaskList } from "graphile-worker";
import { alertsSweep } from "./alerts_sweep.ts";
import { boxTasks } from "./boxes.ts";
import type { TaskContext } from "./context.ts";
import { cronjobDeliver } from "./cronjob_deliver.ts";
import { cronjobExecutionsPurge } from "./cronjob_executions_purge.ts";
import { cronjobRun } from "./cronjob_run.ts";
import { notificationDeliver } from "./notification_deliver.ts";
import { purge_expired_invitations } from "./purge_expired_invitations.ts";
import { purge_login_attempts } from "./purge_login_attempts.ts";
import { purge_sessions } from "./purge_sessions.ts";

/** Tasks that need the configuration (the encryption key, delivery limits) get it from `context`. */
export function createTaskList(context: TaskContext): TaskList {
  return {
    purge_sessions,
    purge_login_attempts,
    purge_expired_invitations,
    ...boxTasks,
    alerts_sweep: alertsSweep(context),
    cronjob_deliver: cronjobDeliver(context),
    cronjob_executions_purge: cronjobExecutionsPurge,
    cronjob_run: cronjobRun(context),
    notification_deliver: notificationDeliver(context),
  };
}
