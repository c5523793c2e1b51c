/** What a benchmark part gets, and what it is. */
import type { Logger } from "../src/logger.ts";
import type { BenchDatabase } from "./database.ts";

export interface BenchContext {
  db: BenchDatabase;
  logger: Logger;
  /** Progress, on stderr. */
  note(line: string): void;
  /** A table of results, on stdout. */
  table(title: string, rows: Array<[label: string, value: string]>): void;
}

export interface BenchPart {
  name: string;
  run(context: BenchContext): Promise<void>;
}

/** The p-th percentile (0–100) of some numbers. */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] as number;
}

/** Resident memory of a process, in bytes (Linux /proc). */
export async function residentBytes(pid: number): Promise<number> {
  const { readFile } = await import("node:fs/promises");
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  const kilobytes = Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? Number.NaN);
  return kilobytes * 1024;
}

export function ms(value: number): string {
  return `${value.toFixed(2)} ms`;
}
