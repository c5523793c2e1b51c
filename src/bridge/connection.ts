/**
 * One box's WebSocket: the hello/welcome exchange, every frame it sends
 * (validated, rate-limited), and delivery of its queued commands. Small on
 * purpose (a few numbers and references per connection); the database is
 * reached through the batching store, never once per heartbeat.
 */
import type WebSocket from "ws";
import type { BridgeConfig } from "../config.ts";
import type { Logger } from "../logger.ts";
import {
  CLOSE_CODES,
  encodeFrame,
  FrameError,
  MAX_BATCH_SIZE,
  negotiateVersion,
  parseBoxFrame,
  type BoxFrame,
  type BridgeFrame,
  type CommandFrame,
  type ErrorCode,
  type HelloFrame,
} from "./protocol.ts";
import type { Authenticated, BridgeStore, ClaimedCommand } from "./store.ts";
import { TokenBucket } from "./token-bucket.ts";

/** What a connection needs from the bridge that holds it. */
export interface ConnectionHost {
  readonly config: BridgeConfig;
  readonly store: BridgeStore;
  readonly instanceId: string;
  readonly logger: Logger;
  /** The connection said hello and the database accepted it: hold it (closing an older one). */
  adopt(connection: BoxConnection): void;
  /** The connection closed. */
  release(connection: BoxConnection): void;
  /** Commands just sent: their deadlines. */
  watchDeadlines(commands: ClaimedCommand[]): void;
  forgetDeadline(commandId: string): void;
}

type State = "hello" | "welcoming" | "ready" | "closed";

export class BoxConnection {
  readonly ws: WebSocket;
  readonly auth: Authenticated;
  readonly ip: string | null;
  private readonly host: ConnectionHost;
  private state: State = "hello";
  /** The database knows this connection as the box's current one (bridge_box_connected said yes). */
  private announced = false;
  /** performance.now() of the last frame or pong. */
  lastSeen: number;
  /** Date.now() of the last frame or pong, for last_seen_at. */
  lastSeenAt: number;
  private readonly bucket: TokenBucket;
  private violations = 0;
  private violationWindowStart = 0;
  private helloTimer: NodeJS.Timeout | null;
  private claiming = false;
  private claimAgain = false;

  constructor(host: ConnectionHost, ws: WebSocket, auth: Authenticated, ip: string | null) {
    this.host = host;
    this.ws = ws;
    this.auth = auth;
    this.ip = ip;
    this.lastSeen = performance.now();
    this.lastSeenAt = Date.now();
    this.bucket = new TokenBucket(host.config.framesPerMinute, 60_000);
    this.helloTimer = setTimeout(() => this.close(CLOSE_CODES.helloTimeout, "no hello in time"), host.config.helloTimeoutMs);
    ws.on("message", (data, isBinary) => this.onMessage(data as Buffer, isBinary));
    ws.on("pong", () => this.touch());
    ws.on("close", () => this.onClose());
    ws.on("error", (error) => host.logger.debug({ err: error, boxId: auth.boxId }, "box socket error"));
  }

  get boxId(): string {
    return this.auth.boxId;
  }

  get seq(): string {
    return this.auth.seq;
  }

  get isReady(): boolean {
    return this.state === "ready";
  }

  /** Is this connection newer than `other`? */
  isNewerThan(other: BoxConnection): boolean {
    return BigInt(this.seq) > BigInt(other.seq);
  }

  private touch(): void {
    this.lastSeen = performance.now();
    this.lastSeenAt = Date.now();
  }

  /** Sends a frame, unless the box is not reading fast enough: then it is disconnected. */
  send(frame: BridgeFrame): boolean {
    if (this.state === "closed" || this.ws.readyState !== this.ws.OPEN) return false;
    if (this.ws.bufferedAmount > this.host.config.maxBufferedBytes) {
      this.host.logger.warn({ boxId: this.boxId, buffered: this.ws.bufferedAmount }, "slow consumer: disconnecting");
      this.close(CLOSE_CODES.slowConsumer, "too much waiting to be sent", true);
      return false;
    }
    this.ws.send(encodeFrame(frame));
    return true;
  }

  private sendError(code: ErrorCode, message: string, id?: string, retryAfterSeconds?: number): void {
    const frame: BridgeFrame = { type: "error", code, message };
    if (id !== undefined) frame.id = id;
    if (retryAfterSeconds !== undefined) frame.retry_after_seconds = retryAfterSeconds;
    this.send(frame);
  }

  /** Closes with a code; `now` also drops the socket (for a peer that may not answer). */
  close(code: number, reason: string, now = false): void {
    if (this.ws.readyState === this.ws.OPEN) this.ws.close(code, reason);
    if (now) this.ws.terminate();
    else setTimeout(() => this.ws.terminate(), 1_000).unref();
  }

  /** A refused frame; too many in a minute close the connection. */
  private violation(): void {
    const now = performance.now();
    if (now - this.violationWindowStart > 60_000) {
      this.violationWindowStart = now;
      this.violations = 0;
    }
    this.violations += 1;
    if (this.violations > this.host.config.maxViolations) {
      this.host.logger.warn({ boxId: this.boxId }, "too many refused frames: closing with 1008");
      this.close(CLOSE_CODES.policyViolation, "too many refused frames");
    }
  }

  private onMessage(data: Buffer, isBinary: boolean): void {
    this.touch();
    if (this.state === "closed") return;
    if (!this.bucket.take()) {
      this.sendError(
        "RATE_LIMIT_EXCEEDED",
        `more than ${this.host.config.framesPerMinute} frames a minute: this frame was dropped`,
        undefined,
        Math.max(1, Math.ceil(this.bucket.waitMs() / 1_000)),
      );
      return this.violation();
    }
    if (isBinary) {
      this.sendError("INVALID_FRAME", "binary frames are not used: send JSON text frames");
      return this.violation();
    }
    let frame: BoxFrame;
    try {
      frame = parseBoxFrame(data.toString("utf8"));
    } catch (error) {
      if (!(error instanceof FrameError)) throw error;
      this.sendError(error.code, error.message, error.id);
      return this.violation();
    }
    if (this.state !== "ready") {
      if (frame.type === "hello" && this.state === "hello") return void this.onHello(frame);
      this.sendError("HELLO_REQUIRED", "send hello first and wait for welcome");
      return this.violation();
    }
    this.onFrame(frame);
  }

  private onFrame(frame: BoxFrame): void {
    const { store } = this.host;
    switch (frame.type) {
      case "hello":
        this.sendError("INVALID_FRAME", "hello was already received on this connection");
        return this.violation();
      case "heartbeat":
        for (const sample of frame.metrics ?? []) void store.metrics.add({ boxId: this.boxId, sample }).catch((error: unknown) => this.fail("metrics", error));
        return;
      case "ack":
        void store.inbound.add({ kind: "ack", boxId: this.boxId, id: frame.id }).catch((error: unknown) => this.fail("ack", error));
        return;
      case "output":
        void store.inbound.add({ kind: "output", boxId: this.boxId, frame }).catch((error: unknown) => this.fail("output", error));
        return;
      case "result":
        this.host.forgetDeadline(frame.id);
        store.inbound.add({ kind: "result", boxId: this.boxId, frame }).then(
          (recorded) => {
            if (recorded?.status == null) this.sendError("NOT_FOUND", "this box has no such command", frame.id);
            else this.send({ type: "receipt", id: frame.id, recorded: recorded.recorded, status: recorded.status });
          },
          (error: unknown) => {
            this.fail("result", error);
            // No receipt: the box keeps the result and sends it again (later, or after reconnecting).
            this.sendError("INTERNAL_ERROR", "the result could not be stored: send it again later", frame.id);
          },
        );
        return;
      case "error":
        this.host.logger.info({ boxId: this.boxId, code: frame.code, message: frame.message, id: frame.id }, "the box reported an error");
        return;
    }
  }

  private fail(what: string, error: unknown): void {
    this.host.logger.error({ err: error, boxId: this.boxId }, `could not store a box's ${what}`);
  }

  private async onHello(hello: HelloFrame): Promise<void> {
    if (this.helloTimer !== null) clearTimeout(this.helloTimer);
    this.helloTimer = null;
    const version = negotiateVersion(hello.protocols);
    if (version === null) {
      this.sendError("PROTOCOL_VERSION_MISMATCH", "this bridge speaks protocol version 1 only");
      return this.close(CLOSE_CODES.protocolVersionMismatch, "no protocol version in common");
    }
    this.state = "welcoming";
    let accepted: boolean;
    try {
      accepted = await this.host.store.connected(this.auth, this.host.instanceId, this.ip, {
        hostname: hello.hostname ?? null,
        os: hello.os ?? null,
        arch: hello.arch ?? null,
        agentVersion: hello.agent_version ?? null,
        capabilities: hello.capabilities ?? null,
      });
    } catch (error) {
      this.host.logger.error({ err: error, boxId: this.boxId }, "could not record a box's connection");
      return this.close(CLOSE_CODES.internalError, "internal error");
    }
    if (!accepted) return this.close(CLOSE_CODES.replaced, "a newer connection of this box took over");
    this.announced = true;
    if (this.ws.readyState !== this.ws.OPEN) {
      // It closed while the database answered: the close handler ran before we knew to report it.
      void this.host.store.disconnected(this.boxId, this.seq).catch((error: unknown) => this.fail("disconnection", error));
      return;
    }
    this.state = "ready";
    this.host.adopt(this);
    const { config } = this.host;
    this.send({
      type: "welcome",
      protocol: version,
      box_id: this.boxId,
      connection_id: this.seq,
      heartbeat_interval_ms: config.heartbeatIntervalMs,
      max_frame_bytes: config.maxFrameBytes,
      max_batch_size: MAX_BATCH_SIZE,
      limits: { frames_per_minute: config.framesPerMinute },
      server_time: new Date().toISOString(),
    });
    await this.deliver();
  }

  /** Sends the box's queued commands, oldest first, in batches; one claim at a time per connection. */
  async deliver(): Promise<void> {
    if (this.state !== "ready") return;
    if (this.claiming) {
      this.claimAgain = true;
      return;
    }
    this.claiming = true;
    try {
      do {
        this.claimAgain = false;
        const commands = await this.host.store.claim(this.boxId, this.seq, MAX_BATCH_SIZE);
        if (commands.length === 0) continue;
        // Claimed and then closed: the close puts them back in the queue (bridge_box_disconnected).
        if (this.state !== "ready") break;
        const frames: CommandFrame[] = commands.map((command) => ({
          type: "command",
          id: command.id,
          command_type: command.command_type,
          payload: command.payload,
          timeout_ms: command.timeout_ms,
          sent_at: command.sent_at.toISOString(),
        }));
        this.send(frames.length === 1 ? (frames[0] as CommandFrame) : { type: "batch", commands: frames });
        this.host.watchDeadlines(commands);
        if (commands.length === MAX_BATCH_SIZE) this.claimAgain = true;
      } while (this.claimAgain && this.state === "ready");
    } catch (error) {
      this.host.logger.error({ err: error, boxId: this.boxId }, "could not deliver a box's commands");
    } finally {
      this.claiming = false;
    }
  }

  private onClose(): void {
    if (this.helloTimer !== null) clearTimeout(this.helloTimer);
    this.helloTimer = null;
    const wasAnnounced = this.announced;
    this.state = "closed";
    this.host.release(this);
    if (wasAnnounced) {
      void this.host.store.disconnected(this.boxId, this.seq).catch((error: unknown) => this.fail("disconnection", error));
    }
  }

  /** The bridge is stopping: it reports every box offline at once, not one by one. */
  forgetAnnouncement(): void {
    this.announced = false;
  }
}
