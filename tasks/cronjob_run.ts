/**
 * `cronjob_run` { cronjobId, revision, plannedAt | dueAt }: one job per cron
 * job (job key `cronjob:<id>`). A planning job (plannedAt, queued by the
 * cron job's trigger) computes the first run after the change; a due job
 * (dueAt, queued by the previous run at that time) runs it. Either way the
 * next time is computed here with cron-parser, in the job's zone, and
 * app_private.run_cronjob does the rest under the cron job's row lock: it
 * drops the call when the cron job changed since, records the due run once,
 * starts it (or skips it, when missed and the policy says so) and queues
 * this job again for the next time. Times are the database's clock.
 */
import type { Task } from "graphile-worker";
import { InvalidScheduleError, nextRunAfter } from "../src/schedules/cron.ts";
import { optionalPayloadString, payloadString, type TaskContext } from "./context.ts";

interface CronjobRow {
  schedule: string;
  timezone: string;
  revision: number;
  enabled: boolean;
  now: Date;
}

export function cronjobRun({ config }: TaskContext): Task {
  return async (payload, helpers) => {
    const cronjobId = payloadString(payload, "cronjobId");
    const revision = (payload as { revision?: unknown }).revision;
    if (typeof revision !== "number") throw new Error("payload.revision must be a number");
    const dueAt = optionalPayloadString(payload, "dueAt");
    const plannedAt = optionalPayloadString(payload, "plannedAt");

    const { rows } = await helpers.query<CronjobRow>(
      "select schedule, timezone, revision, enabled, clock_timestamp() as now from app_public.cronjobs where id = $1",
      [cronjobId],
    );
    const job = rows[0];
    if (job === undefined || !job.enabled || job.revision !== revision) return; // deleted, disabled or changed since

    let due: Date | null;
    let next: Date;
    try {
      due = dueAt !== null ? new Date(dueAt) : nextRunAfter(job.schedule, job.timezone, new Date(plannedAt ?? job.now));
      if (dueAt === null && due > job.now) {
        next = due;
        due = null;
      } else {
        next = nextRunAfter(job.schedule, job.timezone, due > job.now ? due : job.now);
      }
    } catch (error) {
      // The database accepted it; only a zone unknown to this Node's ICU gets here. Retrying will not help.
      if (error instanceof InvalidScheduleError) {
        helpers.logger.error(`cron job ${cronjobId} cannot be scheduled: ${error.message}`);
        return;
      }
      throw error;
    }
    const missed = due !== null && job.now.getTime() - due.getTime() > config.schedules.missedAfterMs;
    await helpers.query("select app_private.run_cronjob($1, $2, $3, $4, $5)", [cronjobId, revision, due, next, missed]);
  };
}
