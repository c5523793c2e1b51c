/**
 * `alerts_sweep` (crontab, every minute): agents whose heartbeat is
 * AGENT_OFFLINE_AFTER_INTERVALS intervals late become `inactive`, and every
 * `offline` alert rule opens or resolves its alerts.
 */
import type { Task } from "graphile-worker";
import type { TaskContext } from "./context.ts";

export function alertsSweep({ config }: TaskContext): Task {
  return async (_payload, helpers) => {
    await helpers.query("select app_private.sweep_alerts($1)", [config.schedules.agentOfflineAfterIntervals]);
  };
}
