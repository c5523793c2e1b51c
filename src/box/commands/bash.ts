/**
 * bash.exec: runs a shell command in the root folder (or `cwd` inside it),
 * streams its output, and kills it — with every process it started — when its
 * own time-out passes or the command is canceled.
 */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { existingInside } from "../confine.ts";
import { CommandError, integerParam, onlyParams, stringParam, type CommandHandler } from "./types.ts";

export const DEFAULT_EXEC_TIMEOUT_MS = 30_000;
export const MAX_EXEC_TIMEOUT_MS = 24 * 3_600_000;

const SHELL = existsSync("/bin/bash") ? "/bin/bash" : "/bin/sh";

function envParam(value: unknown): Record<string, string> {
  if (value === undefined) return {};
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new CommandError("INVALID_PARAMS", "payload.env must be an object of strings");
  }
  for (const [key, entry] of Object.entries(value)) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key) || typeof entry !== "string") {
      throw new CommandError("INVALID_PARAMS", `payload.env.${key} must be a string with a valid variable name`);
    }
  }
  return value as Record<string, string>;
}

export const bashExec: CommandHandler = async ({ payload, root, signal, output }) => {
  onlyParams(payload, ["command", "cwd", "env", "timeout_ms"]);
  const command = stringParam(payload, "command");
  const cwdParam = stringParam(payload, "cwd", { optional: true });
  const env = envParam(payload.env);
  const timeoutMs = integerParam(payload, "timeout_ms", DEFAULT_EXEC_TIMEOUT_MS, 1, MAX_EXEC_TIMEOUT_MS);
  const cwd = cwdParam === undefined ? root : await existingInside(root, cwdParam);
  if (signal.aborted) throw new CommandError("CANCELED", "canceled before it started");

  const startedAt = performance.now();
  const child = spawn(SHELL, ["-c", command], {
    cwd,
    env: { ...process.env, ...env },
    // Its own process group, so that a time-out or cancel kills what it started too.
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stopReason: "timeout" | "canceled" | null = null;
  const killGroup = () => {
    try {
      if (child.pid !== undefined) process.kill(-child.pid, "SIGKILL");
    } catch {
      // Already gone.
    }
  };
  const stop = (reason: "timeout" | "canceled") => {
    stopReason ??= reason;
    killGroup();
  };
  const timer = setTimeout(() => stop("timeout"), timeoutMs);
  const onAbort = () => stop("canceled");
  signal.addEventListener("abort", onAbort, { once: true });
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => output("stdout", chunk));
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => output("stderr", chunk));

  const { code, signalName } = await new Promise<{ code: number | null; signalName: string | null }>((resolve, reject) => {
    child.once("error", reject);
    child.once("close", (exitCode, exitSignal) => resolve({ code: exitCode, signalName: exitSignal }));
  }).finally(() => {
    clearTimeout(timer);
    signal.removeEventListener("abort", onAbort);
  });
  const durationMs = Math.round(performance.now() - startedAt);
  const response = { exit_code: code, signal: signalName, duration_ms: durationMs };
  if (stopReason === "timeout") {
    return { success: false, error_code: "TIMEOUT", error: `timed out after ${timeoutMs} ms`, response };
  }
  if (stopReason === "canceled") return { success: false, error_code: "CANCELED", error: "canceled", response };
  if (code === 0) return { success: true, exit_code: 0, response };
  return {
    success: false,
    error_code: "EXEC_ERROR",
    error: code === null ? `killed by ${signalName}` : `exited with code ${code}`,
    ...(code === null ? {} : { exit_code: code }),
    response,
  };
};
