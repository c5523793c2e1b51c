import pg from "pg";
import { databaseSessionSettings, type Config, type DatabaseConfig } from "../config.ts";
import type { Logger } from "../logger.ts";

export interface Pools {
  /** The owner: worker, bridge and trusted `app_private` functions. */
  ownerPool: pg.Pool;
  /** The authenticator: GraphQL requests, each `set role` to the visitor. */
  authPool: pg.Pool;
  end(): Promise<void>;
}

/** `-c name=value …`: settings every session of a pool starts with. */
function sessionOptions(settings: Record<string, string>): string {
  return Object.entries(settings)
    .map(([name, value]) => `-c ${name}=${value.replace(/[\\ ]/g, (c) => `\\${c}`)}`)
    .join(" ");
}

function pool(connectionString: string, max: number, name: string, logger: Logger, options: string): pg.Pool {
  const created = new pg.Pool({ connectionString, max, application_name: `agentplane ${name}`, options });
  // A connection lost while idle or checked out (database restart) must not crash the process.
  const onError = (error: Error) => logger.warn({ err: error, pool: name }, "database connection lost");
  created.on("error", onError);
  created.on("connect", (client) => client.on("error", onError));
  return created;
}

export function createPools(database: DatabaseConfig, config: Config, logger: Logger): Pools {
  const options = sessionOptions(databaseSessionSettings(config));
  const ownerPool = pool(database.ownerUrl, config.workerConcurrency + 10, "owner", logger, options);
  const authPool = pool(database.authUrl, 20, "api", logger, options);
  return {
    ownerPool,
    authPool,
    async end() {
      await Promise.all([ownerPool.end(), authPool.end()]);
    },
  };
}
