/**
 * agentplane: `node src/main.ts [--only api|bridge|worker]`.
 *
 * By default one process runs the GraphQL API, the box bridge and the worker.
 * SIGTERM/SIGINT drain the parts in order and exit 0.
 */
import "./env.ts";
import { parseArgs } from "node:util";
import { startBridge } from "./bridge/index.ts";
import { ConfigError, loadConfig, orExitOnConfigError, type Config } from "./config.ts";
import { migrateDatabase } from "./db/migrate.ts";
import { openDatabase } from "./db/open.ts";
import { createPools } from "./db/pools.ts";
import { createLogger, type Logger } from "./logger.ts";
import { startHttpServer } from "./server/index.ts";
import { startWorker } from "./worker/index.ts";

const PARTS = ["api", "bridge", "worker"] as const;
type Part = (typeof PARTS)[number];

function parseParts(argv: string[]): Part[] {
  const { values } = parseArgs({ args: argv, options: { only: { type: "string" } } });
  if (values.only === undefined) return [...PARTS];
  const only = values.only.split(",").map((part) => part.trim());
  const unknown = only.filter((part) => !(PARTS as readonly string[]).includes(part));
  if (unknown.length > 0) throw new ConfigError(`--only takes ${PARTS.join(", ")} (got "${unknown.join(", ")}")`);
  return only as Part[];
}

async function start(config: Config, parts: Part[], logger: Logger) {
  const startedAt = performance.now();
  const db = await openDatabase(config, logger);
  const stops: Array<{ name: string; stop: () => Promise<void> }> = [{ name: "database", stop: db.close }];
  const shutdown = async () => {
    for (const { name, stop } of stops.reverse()) {
      try {
        await stop();
      } catch (error) {
        logger.warn({ err: error, part: name }, "error while stopping");
      }
    }
  };
  try {
    if (config.migrateOnStart) {
      await migrateDatabase(db.database, config.visitorRole, logger, { includeCurrent: false });
    }
    const pools = createPools(db.database, config, logger);
    stops.push({ name: "pools", stop: pools.end });
    if (parts.includes("worker")) {
      const runner = await startWorker({ config, logger: logger.child({ part: "worker" }), ownerPool: pools.ownerPool });
      stops.push({ name: "worker", stop: () => runner.stop() });
    }
    if (parts.includes("api") || parts.includes("bridge")) {
      const bridge = parts.includes("bridge")
        ? await startBridge({ config, logger: logger.child({ part: "bridge" }), ownerPool: pools.ownerPool })
        : null;
      if (bridge !== null) stops.push({ name: "bridge", stop: () => bridge.stop() });
      const http = await startHttpServer({
        config,
        logger: logger.child({ part: "http" }),
        ownerPool: pools.ownerPool,
        authPool: parts.includes("api") ? pools.authPool : null,
        bridge,
      });
      stops.push({ name: "http", stop: http.close });
      logger.info(
        {
          graphql: parts.includes("api") ? `${http.url}/graphql` : undefined,
          graphiql: parts.includes("api") && !config.isProduction ? `${http.url}/graphiql` : undefined,
          bridge: parts.includes("bridge") ? `${http.url.replace(/^http/, "ws")}/bridge` : undefined,
          health: `${http.url}/readyz`,
        },
        "agentplane is listening",
      );
    }
  } catch (error) {
    await shutdown();
    throw error;
  }
  logger.info({ parts, embeddedDatabase: db.embedded, startupMs: Math.round(performance.now() - startedAt) }, "started");
  return shutdown;
}

async function main() {
  const config = orExitOnConfigError(() => loadConfig());
  const parts = orExitOnConfigError(() => parseParts(process.argv.slice(2)));
  const logger = createLogger(config.logLevel);
  // Handle signals from the start: one arriving while the parts start (or just
  // after "started" is logged) must drain them, not kill the process.
  let stopRequested: NodeJS.Signals | null = null;
  let onSignal = (signal: NodeJS.Signals) => {
    stopRequested ??= signal;
  };
  process.on("SIGTERM", (signal) => onSignal(signal));
  process.on("SIGINT", (signal) => onSignal(signal));
  let shutdown: () => Promise<void>;
  try {
    shutdown = await start(config, parts, logger);
  } catch (error) {
    logger.fatal({ err: error }, "could not start");
    process.exit(1);
  }
  let stopping = false;
  onSignal = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, "shutting down");
    const timer = setTimeout(() => {
      logger.warn({ timeoutMs: config.shutdownTimeoutMs }, "shutdown took too long; exiting anyway");
      process.exit(1);
    }, config.shutdownTimeoutMs);
    timer.unref();
    void shutdown().then(() => {
      logger.info("stopped");
      // pino writes asynchronously: let the last lines out before exiting.
      logger.flush(() => process.exit(0));
    });
  };
  if (stopRequested !== null) onSignal(stopRequested);
}

await main();
