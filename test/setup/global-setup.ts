/**
 * One fresh database per test run, built by the migrations (current.sql
 * included). It lives on ROOT_DATABASE_URL's server (TEST_ROOT_DATABASE_URL
 * wins if both are set), or, with neither, on an embedded PostgreSQL started
 * in a temporary folder for this run only (see scratch-database.ts).
 */
import { createLogger } from "../../src/logger.ts";
import { createScratchDatabase, type ScratchDatabase } from "./scratch-database.ts";
import { publishTestDatabase } from "./test-database.ts";

declare global {
  var agentplaneTestState: ScratchDatabase | undefined;
}

export default async function globalSetup(): Promise<void> {
  const logger = createLogger(process.env.TEST_LOG_LEVEL ?? "warn");
  const scratch = await createScratchDatabase("test", process.env.TEST_ROOT_DATABASE_URL || process.env.ROOT_DATABASE_URL, logger);
  publishTestDatabase(scratch.testDatabase);
  globalThis.agentplaneTestState = scratch;
}
