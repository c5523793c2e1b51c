/**
 * The HTTP server: PostGraphile (when the API part runs), health checks, and
 * one WebSocket upgrade dispatcher shared by GraphQL subscriptions and the
 * box bridge. grafserv is told not to install its own upgrade handler, which
 * would destroy every upgrade that is not for `/graphql`.
 */
import { createServer, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import type { Duplex } from "node:stream";
import express from "express";
import type { Pool } from "pg";
import { postgraphile, type PostGraphileInstance } from "postgraphile";
import { grafserv } from "postgraphile/grafserv/express/v4";
import { BRIDGE_PATH, refuseUpgrade, type Bridge } from "../bridge/index.ts";
import type { Config } from "../config.ts";
import type { Logger } from "../logger.ts";
import { MIGRATIONS_FOLDER } from "../paths.ts";
import { healthz, latestMigrationHash, readyz } from "./health.ts";
import { GRAPHQL_PATH, makePreset } from "./preset.ts";
import { trustedProxies } from "./request-settings.ts";
import { createSessionActivity } from "./session-activity.ts";

export interface HttpServer {
  /** Base URL, e.g. http://127.0.0.1:3000 */
  url: string;
  port: number;
  /** Stops accepting, lets requests in flight finish, then closes WebSockets. */
  close(): Promise<void>;
}

export interface HttpServerOptions {
  config: Config;
  logger: Logger;
  ownerPool: Pool;
  /** Present when the API part runs. */
  authPool: Pool | null;
  /** Present when the bridge part runs. */
  bridge: Bridge | null;
  /** Overrides config.port (tests pass 0 for a free port). */
  port?: number;
}

function pathOf(request: IncomingMessage): string {
  return new URL(request.url ?? "/", "http://localhost").pathname;
}

export async function startHttpServer(options: HttpServerOptions): Promise<HttpServer> {
  const { config, logger, ownerPool, authPool, bridge } = options;
  const app = express();
  app.disable("x-powered-by");
  app.set("trust proxy", trustedProxies(config) || false);
  const server = createServer(app);

  app.get("/healthz", healthz);
  app.get("/readyz", readyz(ownerPool, await latestMigrationHash(MIGRATIONS_FOLDER)));

  let pgl: PostGraphileInstance | null = null;
  let preset: GraphileConfig.Preset | null = null;
  let graphqlUpgrade: ((req: IncomingMessage, socket: Duplex, head: Buffer) => void) | null = null;
  if (authPool !== null) {
    const sessionActivity = createSessionActivity(ownerPool, logger);
    preset = makePreset({ config, authPool, sessionActivity });
    pgl = postgraphile(preset);
    // Build the schema before listening: ready means able to answer, not about to.
    await pgl.getSchema();
    const serv = pgl.createServ(grafserv);
    await serv.addTo(app, server, false);
    graphqlUpgrade = await serv.getUpgradeHandler();
  }

  const upgradedSockets = new Set<Duplex>();
  server.on("upgrade", (request: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on("error", (error) => logger.debug({ err: error }, "upgrade socket error"));
    upgradedSockets.add(socket);
    socket.once("close", () => upgradedSockets.delete(socket));
    const path = pathOf(request);
    if (path === GRAPHQL_PATH && graphqlUpgrade !== null) {
      graphqlUpgrade(request, socket, head);
    } else if (path === BRIDGE_PATH && bridge !== null) {
      bridge.handleUpgrade(request, socket, head);
    } else {
      refuseUpgrade(socket, 404, "Not Found", { error: "NOT_FOUND", message: `no WebSocket endpoint at ${path}` });
    }
  });

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? config.port, config.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const host = config.host === "0.0.0.0" || config.host === "::" ? "localhost" : config.host;
  const url = `http://${host.includes(":") ? `[${host}]` : host}:${port}`;

  return {
    url,
    port,
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      await bridge?.stop();
      // WebSockets first: a GraphQL subscription still running would keep PostGraphile from releasing.
      for (const socket of upgradedSockets) socket.destroy();
      await pgl?.release();
      // PostGraphile leaves services built on our own pool to us: this frees the subscriptions' LISTEN client.
      for (const service of preset?.pgServices ?? []) await service.release?.();
      server.closeIdleConnections();
      await closed;
    },
  };
}
