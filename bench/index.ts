/**
 * `npm run bench [-- part …]`: every benchmark part in bench/ (or those
 * named), on a fresh database dropped at the end, figures printed as tables.
 * Timing targets live here, never in the tests. A part is a `BenchPart`;
 * adding one is one line in PARTS.
 */
import "../src/env.ts";
import { createLogger } from "../src/logger.ts";
import { bridgeBench } from "./bridge.ts";
import { createBenchDatabase } from "./database.ts";
import type { BenchPart } from "./part.ts";
import { schedulesBench } from "./schedules.ts";

const PARTS: BenchPart[] = [bridgeBench, schedulesBench];

async function main() {
  const wanted = process.argv.slice(2);
  const unknown = wanted.filter((name) => !PARTS.some((part) => part.name === name));
  if (unknown.length > 0) {
    process.stderr.write(`bench: unknown part(s) ${unknown.join(", ")}; known: ${PARTS.map((part) => part.name).join(", ")}\n`);
    process.exit(1);
  }
  const logger = createLogger(process.env.LOG_LEVEL ?? "warn");
  const db = await createBenchDatabase(logger);
  try {
    for (const part of PARTS) {
      if (wanted.length > 0 && !wanted.includes(part.name)) continue;
      process.stdout.write(`\n## ${part.name}\n`);
      await part.run({
        db,
        logger,
        note: (line) => process.stderr.write(`  … ${line}\n`),
        table: (title, rows) => {
          const width = Math.max(...rows.map(([label]) => label.length));
          process.stdout.write(`\n${title}\n`);
          for (const [label, value] of rows) process.stdout.write(`  ${label.padEnd(width)}  ${value}\n`);
        },
      });
    }
  } finally {
    await db.drop();
  }
}

await main();
