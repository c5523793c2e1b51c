/**
 * The reference box: one WebSocket to the bridge, reconnected with back-off;
 * runs the commands it is sent (./commands) and answers each with an ack,
 * streamed output and one result, which it keeps until the bridge's receipt
 * (and sends again after a reconnect). See docs/bridge-protocol.md.
 */
import { EventEmitter } from "node:events";
import os from "node:os";
import WebSocket from "ws";
import {
  CLOSE_CODES,
  encodeFrame,
  FINAL_CLOSE_CODES,
  FrameError,
  HARDWARE_ID_HEADER,
  parseBridgeFrame,
  PROTOCOL_VERSIONS,
  type BoxFrame,
  type BridgeFrame,
  type CommandFrame,
  type MetricSample,
  type ResultFrame,
  type WelcomeFrame,
} from "../bridge/protocol.ts";
import { TokenBucket } from "../bridge/token-bucket.ts";
import { backoffDelay, DEFAULT_BACKOFF, type BackoffOptions } from "./backoff.ts";
import { COMMAND_HANDLERS } from "./commands/index.ts";
import { AGENT_VERSION, boxArch, boxOs } from "./commands/system.ts";
import { CommandError, type CommandHandler, type CommandOutcome } from "./commands/types.ts";
import { OutputGatherer } from "./output.ts";

export interface BoxLog {
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

export const SILENT_LOG: BoxLog = { info() {}, warn() {}, error() {} };

export interface BoxClientOptions {
  /** The bridge, e.g. ws://127.0.0.1:3000/bridge */
  url: string;
  key: string;
  hardwareId: string;
  /** Real path of the folder file commands and bash.exec are confined to. */
  root: string;
  handlers?: Readonly<Record<string, CommandHandler>>;
  backoff?: BackoffOptions;
  /** A connection that lasted this long resets the back-off. */
  stableAfterMs?: number;
  metrics?: () => MetricSample[];
  log?: BoxLog;
  /** How long output is gathered before it is sent. */
  outputFlushMs?: number;
  /** Protocol versions offered in `hello` (tests offer others). */
  protocols?: number[];
}

/** Why the client stopped for good (it never stops by itself otherwise). */
export interface BoxStop {
  reason: "stopped" | "refused" | "closed";
  status?: number;
  code?: number;
  error?: string;
  message: string;
}

interface Running {
  controller: AbortController;
  output: OutputGatherer;
}

const MAX_OUTBOX_BYTES = 4 * 1024 * 1024;
const FINISHED_IDS_KEPT = 2_048;

export interface BoxClientEvents {
  welcome: [WelcomeFrame];
  frame: [BridgeFrame];
  sent: [BoxFrame];
  disconnected: [{ code: number; reason: string }];
  stopped: [BoxStop];
}

export class BoxClient extends EventEmitter<BoxClientEvents> {
  private readonly options: Required<Omit<BoxClientOptions, "metrics">> & Pick<BoxClientOptions, "metrics">;
  private ws: WebSocket | null = null;
  private welcome: WelcomeFrame | null = null;
  private attempt = 0;
  private connectedAt = 0;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private heartbeatTimer: NodeJS.Timeout | null = null;
  private drainTimer: NodeJS.Timeout | null = null;
  private bucket: TokenBucket | null = null;
  private outbox: string[] = [];
  private outboxBytes = 0;
  private readonly running = new Map<string, Running>();
  /** Results not yet confirmed by a receipt. */
  private readonly unconfirmed = new Map<string, ResultFrame>();
  private readonly finished = new Set<string>();
  private stopResult: BoxStop | null = null;
  readonly done: Promise<BoxStop>;
  private resolveDone!: (stop: BoxStop) => void;

  constructor(options: BoxClientOptions) {
    super();
    this.options = {
      handlers: COMMAND_HANDLERS,
      backoff: DEFAULT_BACKOFF,
      stableAfterMs: 10_000,
      log: SILENT_LOG,
      outputFlushMs: 25,
      protocols: [...PROTOCOL_VERSIONS],
      ...options,
    };
    this.done = new Promise((resolve) => (this.resolveDone = resolve));
  }

  /** The current welcome, while connected. */
  get session(): WelcomeFrame | null {
    return this.welcome;
  }

  start(): this {
    this.connect();
    return this;
  }

  /** Closes the connection and stops reconnecting; running commands are abandoned. */
  async stop(): Promise<BoxStop> {
    this.finish({ reason: "stopped", message: "stopped" });
    return this.done;
  }

  /** Drops the connection without a close frame, as a crash or a network cut would (tests). */
  dropConnection(): void {
    this.ws?.terminate();
  }

  private finish(stop: BoxStop): void {
    if (this.stopResult !== null) return;
    this.stopResult = stop;
    this.clearTimers();
    if (this.reconnectTimer !== null) clearTimeout(this.reconnectTimer);
    for (const { controller } of this.running.values()) controller.abort();
    const ws = this.ws;
    this.ws = null;
    if (ws !== null && ws.readyState === WebSocket.OPEN) ws.close(CLOSE_CODES.normal, "box stopping");
    else ws?.terminate();
    this.emit("stopped", stop);
    this.resolveDone(stop);
  }

  private clearTimers(): void {
    if (this.heartbeatTimer !== null) clearInterval(this.heartbeatTimer);
    if (this.drainTimer !== null) clearTimeout(this.drainTimer);
    this.heartbeatTimer = this.drainTimer = null;
  }

  private connect(): void {
    if (this.stopResult !== null) return;
    const { log, url, key, hardwareId } = this.options;
    const ws = new WebSocket(url, {
      headers: { authorization: `Bearer ${key}`, [HARDWARE_ID_HEADER]: hardwareId },
      handshakeTimeout: 10_000,
      perMessageDeflate: false,
    });
    this.ws = ws;
    ws.on("unexpected-response", (_request, response) => {
      let body = "";
      response.setEncoding("utf8");
      response.on("data", (chunk: string) => (body += chunk.slice(0, 4_096)));
      response.on("end", () => {
        const status = response.statusCode ?? 0;
        let error = "HTTP_" + status;
        let message = body;
        try {
          const parsed = JSON.parse(body) as { error?: string; message?: string };
          error = parsed.error ?? error;
          message = parsed.message ?? message;
        } catch {
          // Not JSON: keep the text.
        }
        ws.terminate();
        if (status === 401 || status === 403) {
          log.error(`the bridge refused this box (HTTP ${status} ${error}): ${message}`);
          this.finish({ reason: "refused", status, error, message });
        } else {
          log.warn(`the bridge answered HTTP ${status} ${error}: ${message}`);
          this.scheduleReconnect();
        }
      });
    });
    ws.on("open", () => {
      this.connectedAt = performance.now();
      const hello: BoxFrame = {
        type: "hello",
        protocols: this.options.protocols,
        agent_version: AGENT_VERSION,
        hostname: os.hostname().slice(0, 255),
        capabilities: Object.keys(this.options.handlers),
      };
      const boxOsName = boxOs();
      const arch = boxArch();
      if (boxOsName !== undefined) hello.os = boxOsName;
      if (arch !== undefined) hello.arch = arch;
      this.write(hello);
    });
    ws.on("message", (data, isBinary) => {
      if (isBinary) return this.write({ type: "error", code: "INVALID_FRAME", message: "binary frames are not used" });
      let frame: BridgeFrame;
      try {
        frame = parseBridgeFrame(data.toString());
      } catch (error) {
        if (!(error instanceof FrameError)) throw error;
        log.warn(`refused a frame from the bridge: ${error.message}`);
        const reply: BoxFrame = { type: "error", code: error.code, message: error.message };
        if (error.id !== undefined) reply.id = error.id;
        return this.write(reply);
      }
      this.emit("frame", frame);
      this.onFrame(frame);
    });
    ws.on("close", (code, reasonBuffer) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.welcome = null;
      this.clearTimers();
      const reason = reasonBuffer.toString();
      this.emit("disconnected", { code, reason });
      if (FINAL_CLOSE_CODES.has(code)) {
        const why =
          code === CLOSE_CODES.replaced
            ? "another connection of this box took over (is the same key running elsewhere?)"
            : code === CLOSE_CODES.unauthorized
              ? "the key was revoked or expired, or the box deleted"
              : "the bridge speaks no protocol version this client knows";
        log.error(`the bridge closed the connection (${code}): ${why}`);
        return this.finish({ reason: "closed", code, message: why });
      }
      if (this.stopResult === null) log.warn(`disconnected (${code}${reason ? ` ${reason}` : ""}); reconnecting`);
      this.scheduleReconnect();
    });
    ws.on("error", (error) => {
      // "close" follows; a failed handshake without a response lands here only.
      if (ws.readyState !== WebSocket.OPEN) log.warn(`could not connect to ${url}: ${error.message}`);
    });
  }

  private scheduleReconnect(): void {
    if (this.stopResult !== null || this.reconnectTimer !== null) return;
    if (this.connectedAt > 0 && performance.now() - this.connectedAt >= this.options.stableAfterMs) this.attempt = 0;
    this.connectedAt = 0;
    const delay = backoffDelay(this.attempt, this.options.backoff);
    this.attempt += 1;
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      this.connect();
    }, delay);
  }

  private onFrame(frame: BridgeFrame): void {
    switch (frame.type) {
      case "welcome":
        return this.onWelcome(frame);
      case "command":
        return this.onCommand(frame);
      case "batch":
        for (const command of frame.commands) this.onCommand(command);
        return;
      case "cancel":
        this.running.get(frame.id)?.controller.abort();
        return;
      case "receipt":
        this.unconfirmed.delete(frame.id);
        this.remember(frame.id);
        return;
      case "error": {
        this.options.log.warn(`the bridge reported ${frame.code}: ${frame.message}`);
        if (frame.code === "RATE_LIMIT_EXCEEDED") this.bucket?.pause((frame.retry_after_seconds ?? 1) * 1_000);
        // A result the bridge could not store: offer it again a little later.
        const result = frame.code === "INTERNAL_ERROR" && frame.id !== undefined ? this.unconfirmed.get(frame.id) : undefined;
        if (result !== undefined) setTimeout(() => this.unconfirmed.has(result.id) && this.welcome !== null && this.send(result), 1_000).unref();
        return;
      }
    }
  }

  private onWelcome(welcome: WelcomeFrame): void {
    this.welcome = welcome;
    this.options.log.info(`connected as box ${welcome.box_id} (protocol ${welcome.protocol}, connection ${welcome.connection_id})`);
    // Stay a little under the bridge's limit so that clock differences never trip it.
    this.bucket = new TokenBucket(Math.max(1, Math.floor(welcome.limits.frames_per_minute * 0.9)), 60_000);
    this.heartbeatTimer = setInterval(() => this.heartbeat(), welcome.heartbeat_interval_ms);
    this.heartbeatTimer.unref();
    this.emit("welcome", welcome);
    // What waited for the connection goes first, in order (output before its result), then every
    // result the bridge has not confirmed (a duplicate only gets a receipt with recorded: false).
    for (const result of this.unconfirmed.values()) this.enqueue(encodeFrame(result));
    this.drain();
  }

  private heartbeat(): void {
    const frame: BoxFrame = { type: "heartbeat" };
    const metrics = this.options.metrics?.();
    if (metrics !== undefined && metrics.length > 0) frame.metrics = metrics;
    this.send(frame);
  }

  private remember(id: string): void {
    this.finished.add(id);
    if (this.finished.size > FINISHED_IDS_KEPT) {
      const oldest = this.finished.values().next().value;
      if (oldest !== undefined) this.finished.delete(oldest);
    }
  }

  private onCommand(command: CommandFrame): void {
    const { id } = command;
    // A command delivered again (after a reconnect) is the same command: never run twice.
    if (this.running.has(id)) return this.send({ type: "ack", id });
    const result = this.unconfirmed.get(id);
    if (result !== undefined) {
      this.send({ type: "ack", id });
      return this.send(result);
    }
    if (this.finished.has(id)) return;
    this.send({ type: "ack", id });
    const controller = new AbortController();
    const output = new OutputGatherer(id, this.options.outputFlushMs, (frame) => this.send(frame));
    this.running.set(id, { controller, output });
    void this.run(command, controller.signal, output).then((outcome) => {
      output.flush();
      this.running.delete(id);
      const frame: ResultFrame = { type: "result", id, ...outcome };
      this.unconfirmed.set(id, frame);
      this.send(frame);
    });
  }

  private async run(command: CommandFrame, signal: AbortSignal, output: OutputGatherer): Promise<CommandOutcome> {
    const handler = Object.hasOwn(this.options.handlers, command.command_type)
      ? this.options.handlers[command.command_type]
      : undefined;
    if (handler === undefined) {
      return { success: false, error_code: "UNKNOWN_COMMAND", error: `this box does not handle ${command.command_type}` };
    }
    try {
      return await handler({
        id: command.id,
        payload: command.payload,
        signal,
        root: this.options.root,
        output: (stream, data) => output.write(stream, data),
      });
    } catch (error) {
      if (error instanceof CommandError) return { success: false, error_code: error.code, error: error.message };
      this.options.log.error(`${command.command_type} failed: ${(error as Error).stack ?? String(error)}`);
      return { success: false, error_code: "INTERNAL_ERROR", error: (error as Error).message };
    }
  }

  /** Frames before the welcome wait in the outbox; after it, they go out as the rate limit allows. */
  private send(frame: BoxFrame): void {
    this.emit("sent", frame);
    this.enqueue(encodeFrame(frame));
    this.drain();
  }

  private enqueue(data: string): void {
    if (this.outboxBytes + data.length > MAX_OUTBOX_BYTES) {
      this.options.log.warn("the outbox is full: dropping a frame (results are kept and sent after reconnecting)");
      return;
    }
    this.outbox.push(data);
    this.outboxBytes += data.length;
  }

  private drain(): void {
    if (this.welcome === null || this.ws === null || this.drainTimer !== null) return;
    while (this.outbox.length > 0) {
      const wait = this.bucket?.waitMs() ?? 0;
      if (wait > 0) {
        this.drainTimer = setTimeout(() => {
          this.drainTimer = null;
          this.drain();
        }, wait);
        return;
      }
      this.bucket?.take();
      const data = this.outbox.shift() as string;
      this.outboxBytes -= data.length;
      this.ws.send(data);
    }
  }

  /** Sends a frame at once, bypassing the outbox (hello; tests that misbehave on purpose). */
  write(frame: BoxFrame | string): void {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(typeof frame === "string" ? frame : encodeFrame(frame));
  }
}
