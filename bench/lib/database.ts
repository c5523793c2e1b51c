/**
 * A database for one benchmark part: created fresh (roles of its own), migrated
 * with the current migration, dropped afterwards. On ROOT_DATABASE_URL's
 * server, or on an embedded PostgreSQL in a temporary folder when it is unset.
 */
import { randomBytes } from "node:crypto";
import { chmod, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { asRole, type DatabaseConfig } from "../../src/config.ts";
import { startEmbeddedPostgres } from "../../src/db/embedded.ts";
import { migrateDatabase } from "../../src/db/migrate.ts";
import { dropDatabase, setupDatabase } from "../../src/db/setup.ts";
import { createLogger } from "../../src/logger.ts";
import { freePort } from "../../test/helpers/net.ts";

export interface BenchDatabase {
  database: DatabaseConfig & { rootUrl: string };
  visitorRole: string;
}

const PASSWORD = "agentplane_bench";


export async function withBenchDatabase<T>(fn: (db: BenchDatabase) => Promise<T>): Promise<T> {
  const logger = createLogger("warn");
  let rootUrl = process.env.ROOT_DATABASE_URL;
  let stopEmbedded: (() => Promise<void>) | null = null;
  let dataDir: string | null = null;
  if (!rootUrl) {
    dataDir = await mkdtemp(path.join(tmpdir(), "agentplane-bench-"));
    await chmod(dataDir, 0o755);
    const embedded = await startEmbeddedPostgres({ dataDir, port: await freePort(), logger, persistent: false });
    rootUrl = embedded.database.rootUrl;
    stopEmbedded = embedded.stop;
  }
  const name = `agentplane_bench_${randomBytes(4).toString("hex")}`;
  const db: BenchDatabase = {
    database: {
      rootUrl,
      ownerUrl: asRole(rootUrl, "agentplane_bench_owner", PASSWORD, name),
      authUrl: asRole(rootUrl, "agentplane_bench_authenticator", PASSWORD, name),
      shadowUrl: null,
    },
    visitorRole: "agentplane_bench_visitor",
  };
  try {
    await setupDatabase(db.database, db.visitorRole, logger);
    await migrateDatabase(db.database, db.visitorRole, logger, { includeCurrent: true });
    return await fn(db);
  } finally {
    await dropDatabase(rootUrl, name).catch(() => undefined);
    await stopEmbedded?.();
    if (dataDir !== null) await rm(dataDir, { recursive: true, force: true });
  }
}
