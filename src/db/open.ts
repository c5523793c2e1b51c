/**
 * The database this process uses: the configured one, or, with no
 * DATABASE_URL, the embedded PostgreSQL (started, set up and ready to migrate).
 */
import type { Config, DatabaseConfig } from "../config.ts";
import type { Logger } from "../logger.ts";
import { startEmbeddedPostgres } from "./embedded.ts";
import { setupDatabase } from "./setup.ts";

export interface OpenDatabase {
  database: DatabaseConfig;
  embedded: boolean;
  /** Stops the embedded server; nothing for a configured one. */
  close(): Promise<void>;
}

export async function openDatabase(config: Config, logger: Logger): Promise<OpenDatabase> {
  if (config.database !== null) {
    return { database: config.database, embedded: false, close: async () => {} };
  }
  const embedded = await startEmbeddedPostgres({ dataDir: config.dataDir, port: config.embeddedPgPort, logger });
  try {
    await setupDatabase(embedded.database, config.visitorRole, logger);
  } catch (error) {
    await embedded.stop();
    throw error;
  }
  return { database: embedded.database, embedded: true, close: embedded.stop };
}
