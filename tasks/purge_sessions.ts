/** Deletes sessions 7 days after they expired or were revoked (crontab: hourly). */
import { purgeTask } from "./purge.ts";

export const purge_sessions = purgeTask("app_private.purge_sessions");
