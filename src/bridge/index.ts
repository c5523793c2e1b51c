/**
 * The box bridge at `/bridge` (docs/bridge-protocol.md): checks a box's key
 * before the upgrade, holds one connection per box, delivers commands as the
 * database announces them, keeps presence, and times out what it sent.
 *
 *   upgrade.ts         what a box must present, and the refusals
 *   connection.ts      one box's socket: frames, hello/welcome, delivery
 *   store.ts           the database (batched)
 *   wakeups.ts         LISTEN agentplane_bridge: queued commands, cancels, revoked keys, deleted boxes
 *   redis-presence.ts  with REDIS_URL: where each box is connected, and kicks between instances
 */
import { randomUUID } from "node:crypto";
import type { IncomingMessage } from "node:http";
import { hostname } from "node:os";
import type { Duplex } from "node:stream";
import type { Pool } from "pg";
import { WebSocketServer } from "ws";
import type { Config } from "../config.ts";
import type { Logger } from "../logger.ts";
import { clientIp, requestSource, trustedProxies } from "../server/request-settings.ts";
import { BoxConnection, type ConnectionHost } from "./connection.ts";
import { CLOSE_CODES } from "./protocol.ts";
import { RedisPresence, type RemoteMessage } from "./redis-presence.ts";
import { BridgeStore, type ClaimedCommand, type InstanceInfo } from "./store.ts";
import { readCredentials, refusalOf, UNAVAILABLE, type Refusal } from "./upgrade.ts";
import { listenForWakeups, type Wakeup, type WakeupListener } from "./wakeups.ts";

export const BRIDGE_PATH = "/bridge";

export interface Bridge {
  readonly instanceId: string;
  handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void;
  /** How many boxes this instance holds. */
  connectionCount(): number;
  stop(): Promise<void>;
}

/** Writes a complete HTTP response on a socket that asked to upgrade, then closes it. */
export function refuseUpgrade(socket: Duplex, status: number, reason: string, body: object, headers: Record<string, string> = {}): void {
  const json = JSON.stringify(body);
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\n` +
      "Connection: close\r\n" +
      "Content-Type: application/json\r\n" +
      Object.entries(headers).map(([name, value]) => `${name}: ${value}\r\n`).join("") +
      `Content-Length: ${Buffer.byteLength(json)}\r\n` +
      "\r\n" +
      json,
  );
}

function refuse(socket: Duplex, refusal: Refusal): void {
  const headers: Record<string, string> = refusal.status === 401 ? { "WWW-Authenticate": 'Bearer realm="agentplane-bridge"' } : {};
  refuseUpgrade(socket, refusal.status, refusal.reason, { error: refusal.error, message: refusal.message }, headers);
}

export interface BridgeOptions {
  config: Config;
  logger: Logger;
  ownerPool: Pool;
}

class BridgeServer implements Bridge, ConnectionHost {
  readonly instanceId = randomUUID();
  readonly config: Config["bridge"];
  readonly store: BridgeStore;
  readonly logger: Logger;
  private readonly appConfig: Config;
  private readonly pool: Pool;
  private readonly wss: WebSocketServer;
  /** The connection holding each box (after hello). */
  private readonly connections = new Map<string, BoxConnection>();
  /** Deadline timers of the commands this instance sent. */
  private readonly deadlines = new Map<string, NodeJS.Timeout>();
  private readonly instance: InstanceInfo;
  private wakeups: WakeupListener | null = null;
  private redis: RedisPresence | null = null;
  private timers: NodeJS.Timeout[] = [];
  private stopping = false;
  /** Registered, listening, and (with REDIS_URL) connected to Redis: boxes are let in. */
  private active = false;
  /** A presence flush is running (a slow database must not pile them up). */
  private flushing = false;

  constructor({ config, logger, ownerPool }: BridgeOptions) {
    this.appConfig = config;
    this.pool = ownerPool;
    this.config = config.bridge;
    this.logger = logger;
    this.store = new BridgeStore(ownerPool);
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: this.config.maxFrameBytes,
      perMessageDeflate: false,
      clientTracking: false,
    });
    this.instance = { id: this.instanceId, hostname: hostname(), pid: process.pid, heartbeatIntervalMs: this.config.heartbeatIntervalMs };
  }

  async start(): Promise<void> {
    this.timers.push(
      setInterval(() => this.checkLiveness(), this.config.heartbeatIntervalMs),
      setInterval(() => void this.flushPresence(), this.config.presenceFlushMs),
    );
    for (const timer of this.timers) timer.unref();
    try {
      await this.activate();
    } catch (error) {
      // A database without the boxes migration yet (an older schema): refuse boxes until it has it.
      if ((error as { code?: string }).code !== "42883") {
        await this.stop();
        throw error;
      }
      this.logger.warn("the database has no box bridge functions yet (migration pending): refusing boxes until it has");
    }
  }

  private async activate(): Promise<void> {
    await this.store.heartbeat(this.instance, []);
    this.wakeups ??= await listenForWakeups({
      pool: this.pool,
      logger: this.logger,
      onWakeup: (wakeup) => this.onWakeup(wakeup),
      onReconnect: () => this.deliverToAll(),
    });
    if (this.appConfig.redisUrl !== null && this.redis === null) {
      this.redis = await RedisPresence.start({
        url: this.appConfig.redisUrl,
        prefix: this.appConfig.redisKeyPrefix,
        instanceId: this.instanceId,
        ttlMs: 3 * this.config.presenceFlushMs,
        logger: this.logger,
        onMessage: (message) => this.onRemoteMessage(message),
      });
    }
    this.active = true;
    this.logger.info({ instanceId: this.instanceId, redis: this.redis !== null }, "bridge started");
  }

  connectionCount(): number {
    return this.connections.size;
  }

  handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void {
    if (this.stopping || !this.active) return refuse(socket, UNAVAILABLE);
    const credentials = readCredentials(request.headers);
    if ("status" in credentials) {
      this.logger.info({ ip: request.socket.remoteAddress, error: credentials.error }, "box refused before the upgrade");
      return refuse(socket, credentials);
    }
    const ip = clientIp(requestSource(request), trustedProxies(this.appConfig)) ?? null;
    this.store.authenticate(credentials.keyHash, credentials.hardwareId, ip).then(
      (auth) => {
        if (auth.outcome !== "ok") {
          this.logger.info({ ip, outcome: auth.outcome }, "box refused before the upgrade");
          return refuse(socket, refusalOf(auth.outcome));
        }
        if (this.stopping) return refuse(socket, UNAVAILABLE);
        if (socket.destroyed) return;
        this.wss.handleUpgrade(request, socket, head, (ws) => {
          new BoxConnection(this, ws, auth, ip);
        });
      },
      (error: unknown) => {
        this.logger.error({ err: error }, "could not check a box key");
        refuse(socket, UNAVAILABLE);
      },
    );
  }

  // ------------------------------------------------------------ ConnectionHost

  adopt(connection: BoxConnection): void {
    const existing = this.connections.get(connection.boxId);
    if (existing !== undefined && existing !== connection) {
      if (existing.isNewerThan(connection)) {
        connection.close(CLOSE_CODES.replaced, "a newer connection of this box took over");
        return;
      }
      existing.close(CLOSE_CODES.replaced, "a newer connection of this box took over");
    }
    this.connections.set(connection.boxId, connection);
    void this.redis?.claim(connection.boxId, connection.seq).catch((error: unknown) => this.logger.warn({ err: error }, "redis presence"));
  }

  release(connection: BoxConnection): void {
    if (this.connections.get(connection.boxId) !== connection) return;
    this.connections.delete(connection.boxId);
    void this.redis?.release(connection.boxId, connection.seq).catch((error: unknown) => this.logger.warn({ err: error }, "redis presence"));
  }

  watchDeadlines(commands: ClaimedCommand[]): void {
    for (const command of commands) {
      this.forgetDeadline(command.id);
      // A little after the deadline, so that the database (its own clock) agrees it has passed.
      const delay = Math.max(0, command.deadline_at.getTime() - Date.now()) + 50;
      const timer = setTimeout(() => {
        this.deadlines.delete(command.id);
        this.store.timeouts.add(command.id).catch((error: unknown) => this.logger.error({ err: error }, "could not time out a command"));
      }, delay);
      timer.unref();
      this.deadlines.set(command.id, timer);
    }
  }

  forgetDeadline(commandId: string): void {
    const timer = this.deadlines.get(commandId);
    if (timer === undefined) return;
    clearTimeout(timer);
    this.deadlines.delete(commandId);
  }

  // ------------------------------------------------------------ events

  private onWakeup(wakeup: Wakeup): void {
    const connection = this.connections.get(wakeup.b);
    if (wakeup.k === "cancel") this.forgetDeadline(wakeup.c);
    if (connection === undefined || !connection.isReady) return;
    switch (wakeup.k) {
      case "queued":
        void connection.deliver();
        return;
      case "cancel":
        connection.send({ type: "cancel", id: wakeup.c, reason: wakeup.r });
        return;
      case "revoked":
        if (connection.auth.keyId === wakeup.key) connection.close(CLOSE_CODES.unauthorized, "the key was revoked");
        return;
      case "deleted":
        connection.close(CLOSE_CODES.unauthorized, "the box was deleted");
        return;
    }
  }

  private onRemoteMessage(message: RemoteMessage): void {
    if (message.t !== "kick") return;
    const connection = this.connections.get(message.b);
    if (connection !== undefined && BigInt(connection.seq) < BigInt(message.s)) {
      connection.close(CLOSE_CODES.replaced, "a newer connection of this box took over");
    }
  }

  /** After a lost LISTEN connection: notifications may have been missed. */
  private deliverToAll(): void {
    for (const connection of this.connections.values()) void connection.deliver();
  }

  /** Pings every box; closes those silent for two intervals. */
  private checkLiveness(): void {
    const limit = performance.now() - 2 * this.config.heartbeatIntervalMs;
    for (const connection of this.connections.values()) {
      if (connection.lastSeen < limit) {
        this.logger.info({ boxId: connection.boxId }, "box silent for two heartbeat intervals: disconnecting");
        connection.close(CLOSE_CODES.heartbeatTimeout, "no sign of life for two heartbeat intervals", true);
      } else if (connection.ws.readyState === connection.ws.OPEN) {
        connection.ws.ping();
      }
    }
  }

  /**
   * One statement for every box's last_seen_at and this instance's heartbeat; closes what the
   * database says must close, and delivers to boxes with commands waiting (a missed wake-up).
   */
  private async flushPresence(): Promise<void> {
    if (this.flushing) return;
    this.flushing = true;
    try {
      if (this.active) await this.writePresence();
      else await this.activate().catch(() => undefined);
    } finally {
      this.flushing = false;
    }
  }

  private async writePresence(): Promise<void> {
    const held = [...this.connections.values()].filter((c) => c.isReady);
    try {
      const notices = await this.store.heartbeat(
        this.instance,
        held.map((c) => ({ boxId: c.boxId, seq: c.seq, seenAt: new Date(c.lastSeenAt) })),
      );
      for (const { boxId, seq, reason } of notices) {
        const connection = this.connections.get(boxId);
        if (connection === undefined || connection.seq !== seq) continue;
        if (reason === "queued") void connection.deliver();
        else if (reason === "replaced") connection.close(CLOSE_CODES.replaced, "a newer connection of this box took over");
        else connection.close(CLOSE_CODES.unauthorized, "the key no longer opens this box");
      }
      await this.redis?.refresh(held.map((c) => ({ boxId: c.boxId, seq: c.seq })));
    } catch (error) {
      this.logger.warn({ err: error }, "presence flush failed");
    }
  }

  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    for (const timer of this.timers) clearInterval(timer);
    for (const timer of this.deadlines.values()) clearTimeout(timer);
    this.deadlines.clear();
    for (const connection of this.connections.values()) {
      connection.forgetAnnouncement();
      connection.close(CLOSE_CODES.goingAway, "the bridge is shutting down");
    }
    // What boxes sent before the close is stored; then every box this instance held goes offline at once.
    await Promise.allSettled([this.store.inbound.drain(), this.store.metrics.drain(), this.store.timeouts.drain()]);
    await this.store.stopped(this.instanceId).catch((error: unknown) => this.logger.warn({ err: error }, "could not mark boxes offline"));
    await this.wakeups?.close();
    await this.redis?.close();
    this.logger.info({ instanceId: this.instanceId }, "bridge stopped");
  }
}

/** Starts the bridge: registers the instance, listens for wake-ups, connects to Redis if configured. */
export async function startBridge(options: BridgeOptions): Promise<Bridge> {
  const bridge = new BridgeServer(options);
  await bridge.start();
  return bridge;
}
