import pg from "pg";
import type { Config, DatabaseConfig } from "../config.ts";
import type { Logger } from "../logger.ts";

export interface Pools {
  /** The owner: worker, bridge and trusted `app_private` functions. */
  ownerPool: pg.Pool;
  /** The authenticator: GraphQL requests, each `set role` to the visitor. */
  authPool: pg.Pool;
  end(): Promise<void>;
}

function pool(connectionString: string, max: number, name: string, logger: Logger): pg.Pool {
  const created = new pg.Pool({ connectionString, max, application_name: `agentplane ${name}` });
  // A connection lost while idle or checked out (database restart) must not crash the process.
  const onError = (error: Error) => logger.warn({ err: error, pool: name }, "database connection lost");
  created.on("error", onError);
  created.on("connect", (client) => client.on("error", onError));
  return created;
}

export function createPools(database: DatabaseConfig, config: Config, logger: Logger): Pools {
  const ownerPool = pool(database.ownerUrl, config.workerConcurrency + 10, "owner", logger);
  const authPool = pool(database.authUrl, 20, "api", logger);
  return {
    ownerPool,
    authPool,
    async end() {
      await Promise.all([ownerPool.end(), authPool.end()]);
    },
  };
}
