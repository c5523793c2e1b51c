/**
 * A fresh database for one run, built by the migrations (current migration
 * included): the tests' (global-setup.ts) and the benchmarks' (bench/). It
 * lives on the given server, or, with none, on an embedded PostgreSQL started
 * in a temporary folder for this run only. Roles are named after the kind of
 * run (agentplane_test_owner, …) so that a run never changes a development
 * role's password.
 */
import { randomBytes } from "node:crypto";
import { chmod, mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { databaseOf, withDatabase } from "../../src/config.ts";
import { startEmbeddedPostgres } from "../../src/db/embedded.ts";
import { migrateDatabase } from "../../src/db/migrate.ts";
import { dropDatabase, setupDatabase } from "../../src/db/setup.ts";
import type { Logger } from "../../src/logger.ts";
import { freePort } from "../helpers/net.ts";
import type { TestDatabase } from "./test-database.ts";

export interface ScratchDatabase {
  testDatabase: TestDatabase;
  /** Stops the embedded server, if one was started. */
  stopEmbedded: (() => Promise<void>) | null;
}

function asRole(rootUrl: string, role: string, password: string, database: string): string {
  const url = new URL(withDatabase(rootUrl, database));
  url.username = role;
  url.password = password;
  return url.toString();
}

async function server(rootUrl: string | undefined, kind: string, logger: Logger) {
  if (rootUrl) return { rootUrl, stopEmbedded: null };
  const dataDir = await mkdtemp(path.join(tmpdir(), `agentplane-${kind}-`));
  // The embedded server may run as the `postgres` system user: let it reach the folder.
  await chmod(dataDir, 0o755);
  const embedded = await startEmbeddedPostgres({ dataDir, port: await freePort(), logger, persistent: false });
  return { rootUrl: embedded.database.rootUrl, stopEmbedded: embedded.stop };
}

export async function createScratchDatabase(kind: "test" | "bench", rootUrl: string | undefined, logger: Logger): Promise<ScratchDatabase> {
  const { rootUrl: root, stopEmbedded } = await server(rootUrl, kind, logger);
  const name = `agentplane_${kind}_${randomBytes(5).toString("hex")}`;
  const password = `agentplane_${kind}`;
  const testDatabase: TestDatabase = {
    database: {
      rootUrl: root,
      ownerUrl: asRole(root, `agentplane_${kind}_owner`, password, name),
      authUrl: asRole(root, `agentplane_${kind}_authenticator`, password, name),
      shadowUrl: null,
    },
    visitorRole: `agentplane_${kind}_visitor`,
    rootDatabaseUrl: withDatabase(root, name),
  };
  await setupDatabase(testDatabase.database, testDatabase.visitorRole, logger);
  await migrateDatabase(testDatabase.database, testDatabase.visitorRole, logger, { includeCurrent: true });
  return { testDatabase, stopEmbedded };
}

/** Drops the database and stops its embedded server, if any. */
export async function dropScratchDatabase({ testDatabase, stopEmbedded }: ScratchDatabase): Promise<void> {
  const { database } = testDatabase;
  await dropDatabase(database.rootUrl, databaseOf(database.ownerUrl));
  await stopEmbedded?.();
}
