/**
 * The database of this test run, created by the global set-up and described
 * to every test worker through one environment variable.
 */
import type { DatabaseConfig } from "../../src/config.ts";

export interface TestDatabase {
  database: DatabaseConfig & { rootUrl: string };
  visitorRole: string;
  /** The superuser connection to this run's database (bypasses RLS). */
  rootDatabaseUrl: string;
}

const ENV_KEY = "AGENTPLANE_TEST_DATABASE";

export function publishTestDatabase(testDatabase: TestDatabase): void {
  process.env[ENV_KEY] = JSON.stringify(testDatabase);
}

export function testDatabase(): TestDatabase {
  const json = process.env[ENV_KEY];
  if (json === undefined) throw new Error(`${ENV_KEY} is unset: run the tests with npm test`);
  return JSON.parse(json) as TestDatabase;
}
