/** Deletes organization invitations once they have expired (crontab: hourly). */
import { purgeTask } from "./purge.ts";

export const purge_expired_invitations = purgeTask("app_private.purge_expired_invitations");
