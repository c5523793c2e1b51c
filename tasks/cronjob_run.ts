/**
 * `cronjob_run` { cronjobId, revision, schedule, timezone, plannedAt | dueAt }:
 * one job per cron job (job key `cronjob:<id>`). A planning job (plannedAt,
 * queued by the cron job's trigger when a revision starts) computes the first
 * run after the change; a due job (dueAt, queued by the previous run for that
 * time) runs it. Either way the next time is computed here with cron-parser,
 * in the job's zone, from the schedule of the revision the payload names, and
 * app_private.run_cronjob does the rest under the cron job's row lock: it
 * drops the call when the cron job is gone, disabled or at another revision,
 * records the due run once, starts it (or skips it, when missed and the
 * policy says so) and queues this job again for the next time.
 *
 * "Now" is this process's clock; a skew with the database's only moves a run
 * by one hop (a run that looks early is re-queued for its time, which has come).
 */
import type { Task } from "graphile-worker";
import { InvalidScheduleError, nextRunAfter } from "../src/schedules/cron.ts";
import { optionalPayloadString, payloadString, type TaskContext } from "./context.ts";

export function cronjobRun({ config }: TaskContext): Task {
  return async (payload, helpers) => {
    const cronjobId = payloadString(payload, "cronjobId");
    const schedule = payloadString(payload, "schedule");
    const timezone = payloadString(payload, "timezone");
    const revision = (payload as { revision?: unknown }).revision;
    if (typeof revision !== "number") throw new Error("payload.revision must be a number");
    const dueAt = optionalPayloadString(payload, "dueAt");
    const plannedAt = optionalPayloadString(payload, "plannedAt");
    const now = new Date();

    let due: Date | null;
    let next: Date;
    try {
      due = dueAt !== null ? new Date(dueAt) : nextRunAfter(schedule, timezone, plannedAt === null ? now : new Date(plannedAt));
      if (dueAt === null && due > now) {
        next = due;
        due = null;
      } else {
        next = nextRunAfter(schedule, timezone, due > now ? due : now);
      }
    } catch (error) {
      // The database accepted it; only a zone unknown to this Node's ICU gets here. Retrying will not help.
      if (error instanceof InvalidScheduleError) {
        helpers.logger.error(`cron job ${cronjobId} cannot be scheduled: ${error.message}`);
        return;
      }
      throw error;
    }
    const missed = due !== null && now.getTime() - due.getTime() > config.schedules.missedAfterMs;
    await helpers.query("select app_private.run_cronjob($1, $2, $3, $4, $5)", [cronjobId, revision, due, next, missed]);
  };
}
