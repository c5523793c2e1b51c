/**
 * `npm run bench [-- part ...]`: runs every part of the benchmark (each
 * `bench/<part>.ts`, whose default export resolves to one line of results)
 * on a database of its own, and prints one line per part. Timing targets live
 * here, never in the tests. Figures and how to read them: docs/performance.md.
 */
import "../src/env.ts";
import { readdir } from "node:fs/promises";
import path from "node:path";

export type BenchPart = () => Promise<string>;

const folder = import.meta.dirname;
const wanted = process.argv.slice(2);
const parts = (await readdir(folder))
  .filter((file) => file.endsWith(".ts") && file !== "index.ts")
  .map((file) => path.basename(file, ".ts"))
  .filter((name) => wanted.length === 0 || wanted.includes(name))
  .sort();
if (parts.length === 0) {
  process.stderr.write(`bench: no part named ${wanted.join(", ")}\n`);
  process.exit(1);
}
let failed = false;
for (const name of parts) {
  const { default: part } = (await import(path.join(folder, `${name}.ts`))) as { default: BenchPart };
  const started = performance.now();
  try {
    const line = await part();
    process.stdout.write(`${name}: ${line} (${((performance.now() - started) / 1000).toFixed(0)} s)\n`);
  } catch (error) {
    failed = true;
    process.stdout.write(`${name}: failed: ${(error as Error).stack ?? String(error)}\n`);
  }
}
process.exit(failed ? 1 : 0);
