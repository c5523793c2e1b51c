/**
 * `box_presence_sweep` (crontab, every minute): boxes held by a bridge
 * instance that stopped sending heartbeats (three of its intervals) go
 * offline, and what was sent to them unacknowledged goes back to their queue.
 */
import type { Task } from "graphile-worker";
import { unlessSchemaMissing } from "./schema.ts";

export const boxPresenceSweep: Task = async (_payload, helpers) => {
  await unlessSchemaMissing(helpers, async () => {
    const { rows } = await helpers.query<{ dead_instances: number; offline_boxes: number }>(
      "select * from app_private.sweep_box_presence()",
    );
    const { dead_instances: dead = 0, offline_boxes: offline = 0 } = rows[0] ?? {};
    if (dead + offline > 0) helpers.logger.info(`box presence: ${dead} dead bridge instance(s), ${offline} box(es) marked offline`);
  });
};
