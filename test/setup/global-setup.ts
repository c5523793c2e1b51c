/**
 * One fresh database per test run, built by the migrations (current.sql
 * included). It lives on ROOT_DATABASE_URL's server (TEST_ROOT_DATABASE_URL
 * wins if both are set), or, with neither, on an embedded PostgreSQL started
 * in a temporary folder for this run only.
 */
import { randomBytes } from "node:crypto";
import { chmod, mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { asRole, withDatabase } from "../../src/config.ts";
import { startEmbeddedPostgres } from "../../src/db/embedded.ts";
import { migrateDatabase } from "../../src/db/migrate.ts";
import { setupDatabase } from "../../src/db/setup.ts";
import { createLogger } from "../../src/logger.ts";
import { freePort } from "../helpers/net.ts";
import { publishTestDatabase, type TestDatabase } from "./test-database.ts";

export interface GlobalState {
  testDatabase: TestDatabase;
  stopEmbedded: (() => Promise<void>) | null;
}

declare global {
  var agentplaneTestState: GlobalState | undefined;
}

/** Test roles have their own names so that a run never changes a development role's password. */
const TEST_ROLE_PASSWORD = "agentplane_test";


export default async function globalSetup(): Promise<void> {
  const logger = createLogger(process.env.TEST_LOG_LEVEL ?? "warn");
  const { rootUrl, stopEmbedded } = await testServer();
  const name = `agentplane_test_${randomBytes(5).toString("hex")}`;
  const testDatabase: TestDatabase = {
    database: {
      rootUrl,
      ownerUrl: asRole(rootUrl, "agentplane_test_owner", TEST_ROLE_PASSWORD, name),
      authUrl: asRole(rootUrl, "agentplane_test_authenticator", TEST_ROLE_PASSWORD, name),
      shadowUrl: null,
    },
    visitorRole: "agentplane_test_visitor",
    rootDatabaseUrl: withDatabase(rootUrl, name),
  };
  await setupDatabase(testDatabase.database, testDatabase.visitorRole, logger);
  await migrateDatabase(testDatabase.database, testDatabase.visitorRole, logger, { includeCurrent: true });
  publishTestDatabase(testDatabase);
  globalThis.agentplaneTestState = { testDatabase, stopEmbedded };
}

async function testServer(): Promise<{ rootUrl: string; stopEmbedded: (() => Promise<void>) | null }> {
  const configured = process.env.TEST_ROOT_DATABASE_URL || process.env.ROOT_DATABASE_URL;
  if (configured) return { rootUrl: configured, stopEmbedded: null };
  const dataDir = await mkdtemp(path.join(tmpdir(), "agentplane-test-"));
  // The embedded server may run as the `postgres` system user: let it reach the folder.
  await chmod(dataDir, 0o755);
  const logger = createLogger(process.env.TEST_LOG_LEVEL ?? "warn");
  const embedded = await startEmbeddedPostgres({ dataDir, port: await freePort(), logger, persistent: false });
  return { rootUrl: embedded.database.rootUrl, stopEmbedded: embedded.stop };
}
