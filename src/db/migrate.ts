/**
 * Migrations: graphile-migrate with the settings in `.gmrc`, connection
 * strings and placeholders filled in from the configuration; then
 * graphile-worker's own schema, so that no runtime role has to create it.
 */
import { readFile } from "node:fs/promises";
import path from "node:path";
import { Logger as MigrateLogger } from "@graphile/logger";
import { commit, migrate, watch, type Settings } from "graphile-migrate";
// graphile-migrate keeps its pools open for 200 ms after use, and exits the
// process if one of them loses its connection: release them when done.
import { clearAllPools } from "graphile-migrate/dist/pgReal.js";
import { Logger as WorkerLogger, runMigrations as installWorkerSchema } from "graphile-worker";
import JSON5 from "json5";
import type { DatabaseConfig } from "../config.ts";
import { graphileLogFactory, type Logger } from "../logger.ts";
import { MIGRATIONS_FOLDER, PROJECT_ROOT } from "../paths.ts";

export async function migrationSettings(database: DatabaseConfig, visitorRole: string, logger: Logger): Promise<Settings> {
  const gmrc = JSON5.parse<Settings>(await readFile(path.join(PROJECT_ROOT, ".gmrc"), "utf8"));
  return {
    ...gmrc,
    connectionString: database.ownerUrl,
    ...(database.rootUrl === null ? {} : { rootConnectionString: database.rootUrl }),
    ...(database.shadowUrl === null ? {} : { shadowConnectionString: database.shadowUrl }),
    migrationsFolder: MIGRATIONS_FOLDER,
    placeholders: { ...gmrc.placeholders, ":DATABASE_VISITOR": visitorRole },
    logger: new MigrateLogger(graphileLogFactory(logger.child({ part: "migrate" }))),
  };
}

export interface MigrateOptions {
  /** Also run `current.sql` (development and tests): what `graphile-migrate watch --once` does. */
  includeCurrent: boolean;
}

/** Brings the database to the latest migration; safe to run concurrently (graphile-migrate locks). */
export async function migrateDatabase(
  database: DatabaseConfig,
  visitorRole: string,
  logger: Logger,
  options: MigrateOptions,
): Promise<void> {
  const settings = await migrationSettings(database, visitorRole, logger);
  try {
    await migrate(settings);
    if (options.includeCurrent) await watch(settings, true);
  } finally {
    clearAllPools();
  }
  await installWorkerSchema({
    connectionString: database.ownerUrl,
    logger: new WorkerLogger(graphileLogFactory(logger.child({ part: "worker" }))),
  });
}

/** `graphile-migrate commit`: turns current.sql into the next committed migration. */
export async function commitMigration(database: DatabaseConfig, visitorRole: string, logger: Logger, message: string) {
  await commit(await migrationSettings(database, visitorRole, logger), message);
}
