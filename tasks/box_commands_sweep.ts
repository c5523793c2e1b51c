/**
 * `box_commands_sweep` (crontab, every minute): marks commands in flight past
 * their deadline `timed_out` and queued ones past expires_at `expired`. The
 * bridge times out what it sent as each deadline passes; this catches the
 * rest (a bridge that died, a box that never came back).
 */
import type { Task } from "graphile-worker";
import { unlessSchemaMissing } from "./schema.ts";

export const boxCommandsSweep: Task = async (_payload, helpers) => {
  await unlessSchemaMissing(helpers, async () => {
    const { rows } = await helpers.query<{ timed_out: number; expired: number }>("select * from app_private.sweep_box_commands()");
    const { timed_out: timedOut = 0, expired = 0 } = rows[0] ?? {};
    if (timedOut + expired > 0) helpers.logger.info(`box commands: ${timedOut} timed out, ${expired} expired`);
  });
};
