/**
 * A fresh database for one benchmark run, migrated like the tests' (current
 * migration included), on ROOT_DATABASE_URL's server or, without it, on an
 * embedded PostgreSQL in a temporary folder; dropped at the end.
 */
import { randomBytes } from "node:crypto";
import { chmod, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { withDatabase, type DatabaseConfig } from "../src/config.ts";
import { startEmbeddedPostgres } from "../src/db/embedded.ts";
import { migrateDatabase } from "../src/db/migrate.ts";
import { dropDatabase, setupDatabase } from "../src/db/setup.ts";
import type { Logger } from "../src/logger.ts";
import { freePort } from "../test/helpers/net.ts";

export interface BenchDatabase {
  database: DatabaseConfig & { rootUrl: string };
  visitorRole: string;
  /** The superuser, connected to the bench database. */
  rootDatabaseUrl: string;
  drop(): Promise<void>;
}

const PASSWORD = "agentplane_bench";

function asRole(rootUrl: string, role: string, database: string): string {
  const url = new URL(withDatabase(rootUrl, database));
  url.username = role;
  url.password = PASSWORD;
  return url.toString();
}

export async function createBenchDatabase(logger: Logger): Promise<BenchDatabase> {
  let rootUrl = process.env.ROOT_DATABASE_URL || null;
  let stopEmbedded: (() => Promise<void>) | null = null;
  let dataDir: string | null = null;
  if (rootUrl === null) {
    dataDir = await mkdtemp(path.join(tmpdir(), "agentplane-bench-"));
    await chmod(dataDir, 0o755);
    const embedded = await startEmbeddedPostgres({ dataDir, port: await freePort(), logger, persistent: false });
    rootUrl = embedded.database.rootUrl;
    stopEmbedded = embedded.stop;
  }
  const name = `agentplane_bench_${randomBytes(4).toString("hex")}`;
  const database = {
    rootUrl,
    ownerUrl: asRole(rootUrl, "agentplane_bench_owner", name),
    authUrl: asRole(rootUrl, "agentplane_bench_authenticator", name),
    shadowUrl: null,
  };
  const visitorRole = "agentplane_bench_visitor";
  await setupDatabase(database, visitorRole, logger);
  await migrateDatabase(database, visitorRole, logger, { includeCurrent: true });
  return {
    database,
    visitorRole,
    rootDatabaseUrl: withDatabase(rootUrl, name),
    async drop() {
      await dropDatabase(database.rootUrl, name);
      await stopEmbedded?.();
      if (dataDir !== null) await rm(dataDir, { recursive: true, force: true });
    },
  };
}
