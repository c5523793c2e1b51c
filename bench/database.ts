/**
 * A fresh database for one benchmark run (on ROOT_DATABASE_URL's server, or an
 * embedded PostgreSQL), migrated like the tests' and dropped at the end.
 */
import type { Logger } from "../src/logger.ts";
import { createScratchDatabase, dropScratchDatabase } from "../test/setup/scratch-database.ts";
import type { TestDatabase } from "../test/setup/test-database.ts";

export type BenchDatabase = TestDatabase & { drop(): Promise<void> };

export async function createBenchDatabase(logger: Logger): Promise<BenchDatabase> {
  const scratch = await createScratchDatabase("bench", process.env.ROOT_DATABASE_URL, logger);
  return { ...scratch.testDatabase, drop: () => dropScratchDatabase(scratch) };
}
