/**
 * system.ping and system.status, and the metrics a heartbeat carries.
 */
import os from "node:os";
import type { MetricSample } from "../../bridge/protocol.ts";
import { onlyParams, type CommandHandler } from "./types.ts";

export const AGENT_VERSION = "0.1.0";

export function boxOs(): "linux" | "windows" | "darwin" | undefined {
  const platform = os.platform();
  if (platform === "linux" || platform === "darwin") return platform;
  return platform === "win32" ? "windows" : undefined;
}

export function boxArch(): "amd64" | "arm64" | undefined {
  const arch = os.arch();
  if (arch === "x64") return "amd64";
  return arch === "arm64" ? "arm64" : undefined;
}

export const systemPing: CommandHandler = async ({ payload }) => {
  onlyParams(payload, []);
  return { success: true, response: { pong: true, time: new Date().toISOString() } };
};

export const systemStatus: CommandHandler = async ({ payload }) => {
  onlyParams(payload, []);
  const [load1, load5, load15] = os.loadavg();
  return {
    success: true,
    response: {
      hostname: os.hostname(),
      os: boxOs() ?? os.platform(),
      arch: boxArch() ?? os.arch(),
      agent_version: AGENT_VERSION,
      uptime_seconds: Math.round(os.uptime()),
      load: [load1 ?? 0, load5 ?? 0, load15 ?? 0],
      cpus: os.cpus().length,
      memory: { total_bytes: os.totalmem(), free_bytes: os.freemem() },
    },
  };
};

/** CPU use since the previous call, from the kernel's per-CPU counters. */
function cpuSampler(): () => number {
  const totals = () =>
    os.cpus().reduce(
      (sum, cpu) => {
        const busy = cpu.times.user + cpu.times.nice + cpu.times.sys + cpu.times.irq;
        return { busy: sum.busy + busy, all: sum.all + busy + cpu.times.idle };
      },
      { busy: 0, all: 0 },
    );
  let previous = totals();
  return () => {
    const current = totals();
    const all = current.all - previous.all;
    const percent = all > 0 ? (100 * (current.busy - previous.busy)) / all : 0;
    previous = current;
    return Math.round(percent * 10) / 10;
  };
}

/** The metrics the reference box reports with each heartbeat. */
export function heartbeatMetrics(): () => MetricSample[] {
  const cpu = cpuSampler();
  return () => [
    { name: "cpu.percent", value: cpu() },
    { name: "memory.used_percent", value: Math.round((1000 * (os.totalmem() - os.freemem())) / os.totalmem()) / 10 },
    { name: "load.1m", value: os.loadavg()[0] ?? 0 },
  ];
}
