/**
 * A real agentplane HTTP server (API and bridge, optionally the worker) on a
 * free port, against this run's database, and a GraphQL-over-HTTP client.
 */
import type { Runner } from "graphile-worker";
import { startBridge, type Bridge } from "../../src/bridge/index.ts";
import { loadConfig, type Config } from "../../src/config.ts";
import { createPools, type Pools } from "../../src/db/pools.ts";
import { createLogger } from "../../src/logger.ts";
import { startHttpServer } from "../../src/server/index.ts";
import { startWorker } from "../../src/worker/index.ts";
import { testDatabase } from "../setup/test-database.ts";

export interface GraphQLResponse<TData = Record<string, unknown>> {
  status: number;
  data?: TData | null;
  errors?: Array<{ message: string; extensions?: Record<string, unknown> }>;
}

export interface TestServer {
  url: string;
  config: Config;
  pools: Pools;
  bridge: Bridge;
  graphql<TData = Record<string, unknown>>(
    query: string,
    variables?: Record<string, unknown>,
    options?: { token?: string; headers?: Record<string, string> },
  ): Promise<GraphQLResponse<TData>>;
  close(): Promise<void>;
}

/** The encryption key of every test run (ENCRYPTION_KEY): SQL tests pass it where the server would. */
export const TEST_ENCRYPTION_KEY = "test-encryption-key-0123456789-abcdefghij";

/** The environment a test server is configured from; `env` adds or overrides variables. */
export function testConfig(env: Record<string, string> = {}): Config {
  const { database, visitorRole } = testDatabase();
  return loadConfig({
    NODE_ENV: "test",
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? "silent",
    DATABASE_URL: database.ownerUrl,
    AUTH_DATABASE_URL: database.authUrl,
    DATABASE_VISITOR: visitorRole,
    MIGRATE_ON_START: "false",
    ENCRYPTION_KEY: TEST_ENCRYPTION_KEY,
    ...env,
  });
}

export async function startTestServer(
  options: { worker?: boolean; env?: Record<string, string> } = {},
): Promise<TestServer> {
  const config = testConfig(options.env);
  const logger = createLogger(config.logLevel);
  const pools = createPools(testDatabase().database, config, logger);
  const runner: Runner | null = options.worker ? await startWorker({ config, logger, ownerPool: pools.ownerPool }) : null;
  const bridge = await startBridge({ config, logger, ownerPool: pools.ownerPool });
  const http = await startHttpServer({
    config,
    logger,
    ownerPool: pools.ownerPool,
    authPool: pools.authPool,
    bridge,
    port: 0,
  });
  return {
    url: http.url,
    config,
    pools,
    bridge,
    async graphql(query, variables = {}, { token, headers = {} } = {}) {
      const response = await fetch(`${http.url}/graphql`, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          accept: "application/graphql-response+json, application/json",
          ...(token === undefined ? {} : { authorization: `Bearer ${token}` }),
          ...headers,
        },
        body: JSON.stringify({ query, variables }),
      });
      const body = (await response.json()) as Omit<GraphQLResponse, "status">;
      return { status: response.status, ...body } as GraphQLResponse<never>;
    },
    async close() {
      await http.close();
      await runner?.stop();
      await pools.end();
    },
  };
}
