/** Deletes login attempts older than 7 days (crontab: hourly). */
import { purgeTask } from "./purge.ts";

export const purge_login_attempts = purgeTask("app_private.purge_login_attempts");
