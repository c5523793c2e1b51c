/**
 * Every graphile-worker task, by identifier. One file per task in this folder;
 * the crontab at the repository root schedules the recurring ones.
 */
import type { TaskList } from "graphile-worker";
import { boxTasks } from "./boxes.ts";
import { purge_expired_invitations } from "./purge_expired_invitations.ts";
import { purge_login_attempts } from "./purge_login_attempts.ts";
import { purge_sessions } from "./purge_sessions.ts";

export const taskList: TaskList = {
  purge_sessions,
  purge_login_attempts,
  purge_expired_invitations,
  ...boxTasks,
};
