/**
 * A real graphile-worker (this project's tasks and crontab) against this
 * run's database, configured like a test server (`env` adds settings).
 */
import type { Runner } from "graphile-worker";
import type { Config } from "../../src/config.ts";
import { createPools, type Pools } from "../../src/db/pools.ts";
import { createLogger } from "../../src/logger.ts";
import { startWorker } from "../../src/worker/index.ts";
import { testDatabase } from "../setup/test-database.ts";
import { testConfig } from "./server.ts";

export interface TestWorker {
  runner: Runner;
  pools: Pools;
  config: Config;
  stop(): Promise<void>;
}

export async function startTestWorker(env: Record<string, string> = {}): Promise<TestWorker> {
  const config = testConfig(env);
  const logger = createLogger(config.logLevel);
  const pools = createPools(testDatabase().database, config, logger);
  const runner = await startWorker({ config, logger, ownerPool: pools.ownerPool });
  return {
    runner,
    pools,
    config,
    async stop() {
      await runner.stop();
      await pools.end();
    },
  };
}
