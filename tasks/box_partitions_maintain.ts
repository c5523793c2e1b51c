/**
 * `box_partitions_maintain` (crontab, hourly; idempotent): creates the
 * partitions of box_commands (monthly, 3 ahead) and metric_samples (daily, 7
 * ahead), and drops those past retention: box commands after
 * `box_commands_months` (3), metric samples after `metric_samples_days` (7).
 */
import type { Task } from "graphile-worker";
import { unlessSchemaMissing } from "./schema.ts";

function wholeNumber(payload: unknown, key: string, fallback: number): number {
  const value = (payload as Record<string, unknown> | null)?.[key];
  if (value === undefined || value === null) return fallback;
  if (typeof value !== "number" || !Number.isInteger(value) || value < 1) throw new Error(`payload.${key} must be a whole number >= 1`);
  return value;
}

export const boxPartitionsMaintain: Task = async (payload, helpers) => {
  const plans = [
    { table: "app_public.box_commands", unit: "month", ahead: 3, keep: wholeNumber(payload, "box_commands_months", 3) },
    { table: "app_public.metric_samples", unit: "day", ahead: 7, keep: wholeNumber(payload, "metric_samples_days", 7) },
  ];
  await unlessSchemaMissing(helpers, async () => {
    for (const { table, unit, ahead, keep } of plans) {
      const { rows } = await helpers.query<{ action: string; partition_name: string }>(
        "select * from app_private.maintain_partitions($1::regclass, $2, $3, $4)",
        [table, unit, ahead, keep],
      );
      for (const { action, partition_name: name } of rows) helpers.logger.info(`${action} partition ${name}`);
    }
  });
};
