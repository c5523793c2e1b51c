/**
 * The box protocol (docs/bridge-protocol.md), shared by the bridge and the
 * reference box client: frame types, error and close codes, and strict
 * validation. Every frame is a JSON object with a `type`; a frame with an
 * unknown type, a missing or mistyped field, or a field the type does not
 * define is refused with a `FrameError` naming what is wrong.
 */

/** The protocol versions this code speaks; the highest one both sides know is used. */
export const PROTOCOL_VERSIONS = [1] as const;
export const PROTOCOL_VERSION = 1;

/** Request headers of the upgrade. The key is only ever read from `Authorization`. */
export const HARDWARE_ID_HEADER = "x-box-hardware-id";

/** At most this many commands in one `batch` frame. */
export const MAX_BATCH_SIZE = 10;

/** A box key: `box_` then 43 base64url characters (32 random bytes). */
export const BOX_KEY_PATTERN = /^box_[A-Za-z0-9_-]{43}$/;
/** What a hardware id may look like: 1 to 128 printable ASCII characters without spaces. */
export const HARDWARE_ID_PATTERN = /^[\x21-\x7e]{1,128}$/;

export const ERROR_CODES = [
  // A command's result
  "UNKNOWN_COMMAND",
  "INVALID_PARAMS",
  "PERMISSION_DENIED",
  "NOT_FOUND",
  "TIMEOUT",
  "EXEC_ERROR",
  "CANCELED",
  "INTERNAL_ERROR",
  // The connection
  "PROTOCOL_VERSION_MISMATCH",
  "RATE_LIMIT_EXCEEDED",
  "INVALID_FRAME",
  "HELLO_REQUIRED",
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

/** WebSocket close codes the bridge uses (1000-1011 are the standard ones). */
export const CLOSE_CODES = {
  normal: 1000,
  /** The bridge is shutting down: reconnect (to another instance) with back-off. */
  goingAway: 1001,
  /** Repeated invalid frames or rate-limit abuse. */
  policyViolation: 1008,
  /** A frame over the size limit (sent by the WebSocket layer itself). */
  messageTooBig: 1009,
  internalError: 1011,
  /** A newer connection for the same box took over: do not reconnect. */
  replaced: 4000,
  /** The key was revoked or expired, or the box deleted, while connected: do not reconnect. */
  unauthorized: 4001,
  /** No protocol version in common: do not reconnect with this client. */
  protocolVersionMismatch: 4002,
  /** Nothing was received for two heartbeat intervals. */
  heartbeatTimeout: 4003,
  /** The box read too slowly: too much was waiting to be sent to it. */
  slowConsumer: 4004,
  /** No `hello` within the allowed time after the upgrade. */
  helloTimeout: 4005,
} as const;

/** Close codes after which a box must not reconnect with the same key. */
export const FINAL_CLOSE_CODES: ReadonlySet<number> = new Set([
  CLOSE_CODES.replaced,
  CLOSE_CODES.unauthorized,
  CLOSE_CODES.protocolVersionMismatch,
]);

export const COMMAND_STATUSES = [
  "queued",
  "sent",
  "acked",
  "succeeded",
  "failed",
  "timed_out",
  "expired",
  "canceled",
] as const;
export type CommandStatus = (typeof COMMAND_STATUSES)[number];

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };
export type JsonObject = { [key: string]: JsonValue };

// ---------------------------------------------------------------- box → bridge

export interface HelloFrame {
  type: "hello";
  /** Every protocol version the box speaks. */
  protocols: number[];
  agent_version?: string;
  hostname?: string;
  os?: "linux" | "windows" | "darwin";
  arch?: "amd64" | "arm64";
  /** Command types the box handles, e.g. `bash.exec`. */
  capabilities?: string[];
}

export interface MetricSample {
  name: string;
  value: number;
  agent_id?: string;
  labels?: Record<string, string>;
}

export interface HeartbeatFrame {
  type: "heartbeat";
  metrics?: MetricSample[];
}

export interface AckFrame {
  type: "ack";
  id: string;
}

export interface OutputFrame {
  type: "output";
  id: string;
  /** 0, 1, 2, … per command, across both streams. */
  seq: number;
  stream: "stdout" | "stderr";
  data: string;
}

export interface ResultFrame {
  type: "result";
  id: string;
  success: boolean;
  response?: JsonValue;
  error?: string;
  error_code?: ErrorCode;
  exit_code?: number;
}

export interface ErrorFrame {
  type: "error";
  code: ErrorCode;
  message: string;
  /** The command the error is about, if any. */
  id?: string;
  /** With RATE_LIMIT_EXCEEDED: when sending may resume. */
  retry_after_seconds?: number;
}

export type BoxFrame = HelloFrame | HeartbeatFrame | AckFrame | OutputFrame | ResultFrame | ErrorFrame;

// ---------------------------------------------------------------- bridge → box

export interface WelcomeFrame {
  type: "welcome";
  protocol: number;
  box_id: string;
  /** This connection's number; a higher one is a newer connection. */
  connection_id: string;
  heartbeat_interval_ms: number;
  max_frame_bytes: number;
  max_batch_size: number;
  limits: { frames_per_minute: number };
  server_time: string;
}

export interface CommandFrame {
  type: "command";
  id: string;
  command_type: string;
  payload: JsonObject;
  /** The bridge marks the command `timed_out` this long after `sent_at`. */
  timeout_ms: number;
  sent_at: string;
}

export interface BatchFrame {
  type: "batch";
  commands: CommandFrame[];
}

export interface CancelFrame {
  type: "cancel";
  id: string;
  reason: "canceled" | "timed_out";
}

export interface ReceiptFrame {
  type: "receipt";
  id: string;
  /** True when this result was recorded; false for a duplicate or a late one. */
  recorded: boolean;
  /** The command's status after the result (its terminal state). */
  status: CommandStatus;
}

export type BridgeFrame = WelcomeFrame | CommandFrame | BatchFrame | CancelFrame | ReceiptFrame | ErrorFrame;

// ---------------------------------------------------------------- validation

/** Why a frame was refused; `code` is what goes back in the error frame. */
export class FrameError extends Error {
  readonly code: ErrorCode;
  readonly id: string | undefined;
  constructor(message: string, code: ErrorCode = "INVALID_FRAME", id?: string) {
    super(message);
    this.code = code;
    this.id = id;
  }
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const METRIC_NAME = /^[a-z][a-z0-9_.]{0,62}$/;
const COMMAND_TYPE = /^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$/;
const LABEL_KEY = /^[a-z][a-z0-9_]{0,31}$/;

/** Limits inside frames (the frame as a whole is bounded by `max_frame_bytes`). */
export const FIELD_LIMITS = {
  shortText: 255,
  errorText: 65_536,
  metricsPerHeartbeat: 100,
  labelsPerMetric: 16,
  capabilities: 64,
} as const;

type Fields = Record<string, unknown>;

function fail(message: string, id?: string): never {
  throw new FrameError(message, "INVALID_FRAME", id);
}

function objectOf(value: unknown, what: string): Fields {
  if (typeof value !== "object" || value === null || Array.isArray(value)) fail(`${what} must be a JSON object`);
  return value as Fields;
}

function onlyKeys(fields: Fields, allowed: readonly string[], what: string): void {
  for (const key of Object.keys(fields)) {
    if (!allowed.includes(key)) fail(`${what} has an unknown field "${key}"`);
  }
}

function text(fields: Fields, key: string, what: string, max: number, pattern?: RegExp): string {
  const value = fields[key];
  if (typeof value !== "string") fail(`${what}.${key} must be a string`);
  if (value.length > max) fail(`${what}.${key} is longer than ${max} characters`);
  if (pattern !== undefined && !pattern.test(value)) fail(`${what}.${key} is malformed`);
  return value;
}

function optionalText(fields: Fields, key: string, what: string, max: number, pattern?: RegExp): string | undefined {
  return fields[key] === undefined ? undefined : text(fields, key, what, max, pattern);
}

function integer(fields: Fields, key: string, what: string, min: number, max: number): number {
  const value = fields[key];
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
    fail(`${what}.${key} must be a whole number from ${min} to ${max}`);
  }
  return value;
}

function oneOf<T extends string>(fields: Fields, key: string, what: string, allowed: readonly T[]): T {
  const value = fields[key];
  if (typeof value !== "string" || !(allowed as readonly string[]).includes(value)) {
    fail(`${what}.${key} must be one of ${allowed.join(", ")}`);
  }
  return value as T;
}

function optionalOneOf<T extends string>(fields: Fields, key: string, what: string, allowed: readonly T[]): T | undefined {
  return fields[key] === undefined ? undefined : oneOf(fields, key, what, allowed);
}

function uuid(fields: Fields, key: string, what: string): string {
  return text(fields, key, what, 36, UUID).toLowerCase();
}

function list(fields: Fields, key: string, what: string, min: number, max: number): unknown[] {
  const value = fields[key];
  if (!Array.isArray(value) || value.length < min || value.length > max) {
    fail(`${what}.${key} must be a list of ${min} to ${max} items`);
  }
  return value;
}

function assign<T extends object, K extends string, V>(target: T, key: K, value: V | undefined): T & { [P in K]?: V } {
  if (value !== undefined) (target as Record<string, unknown>)[key] = value;
  return target as T & { [P in K]?: V };
}

function parseHello(fields: Fields): HelloFrame {
  onlyKeys(fields, ["type", "protocols", "agent_version", "hostname", "os", "arch", "capabilities"], "hello");
  const protocols = list(fields, "protocols", "hello", 1, 16).map((version) => {
    if (typeof version !== "number" || !Number.isInteger(version) || version < 1) fail("hello.protocols must hold whole numbers");
    return version;
  });
  const frame: HelloFrame = { type: "hello", protocols };
  assign(frame, "agent_version", optionalText(fields, "agent_version", "hello", 64));
  assign(frame, "hostname", optionalText(fields, "hostname", "hello", FIELD_LIMITS.shortText));
  assign(frame, "os", optionalOneOf(fields, "os", "hello", ["linux", "windows", "darwin"] as const));
  assign(frame, "arch", optionalOneOf(fields, "arch", "hello", ["amd64", "arm64"] as const));
  if (fields.capabilities !== undefined) {
    frame.capabilities = list(fields, "capabilities", "hello", 0, FIELD_LIMITS.capabilities).map((capability) => {
      if (typeof capability !== "string" || !COMMAND_TYPE.test(capability) || capability.length > 64) {
        fail("hello.capabilities must hold command types such as bash.exec");
      }
      return capability;
    });
  }
  return frame;
}

function parseMetric(value: unknown): MetricSample {
  const fields = objectOf(value, "a metric");
  onlyKeys(fields, ["name", "value", "agent_id", "labels"], "metric");
  const sample: MetricSample = {
    name: text(fields, "name", "metric", 63, METRIC_NAME),
    value: finiteNumber(fields.value, "metric.value"),
  };
  if (fields.agent_id !== undefined) sample.agent_id = uuid(fields, "agent_id", "metric");
  if (fields.labels !== undefined) {
    const labels = objectOf(fields.labels, "metric.labels");
    const entries = Object.entries(labels);
    if (entries.length > FIELD_LIMITS.labelsPerMetric) fail(`metric.labels has more than ${FIELD_LIMITS.labelsPerMetric} entries`);
    for (const [key, label] of entries) {
      if (!LABEL_KEY.test(key)) fail(`metric.labels key "${key}" is malformed`);
      if (typeof label !== "string" || label.length > 128) fail(`metric.labels.${key} must be a string of at most 128 characters`);
    }
    sample.labels = labels as Record<string, string>;
  }
  return sample;
}

function finiteNumber(value: unknown, what: string): number {
  if (typeof value !== "number" || !Number.isFinite(value)) fail(`${what} must be a finite number`);
  return value;
}

function parseHeartbeat(fields: Fields): HeartbeatFrame {
  onlyKeys(fields, ["type", "metrics"], "heartbeat");
  const frame: HeartbeatFrame = { type: "heartbeat" };
  if (fields.metrics !== undefined) {
    frame.metrics = list(fields, "metrics", "heartbeat", 0, FIELD_LIMITS.metricsPerHeartbeat).map(parseMetric);
  }
  return frame;
}

function parseAck(fields: Fields): AckFrame {
  onlyKeys(fields, ["type", "id"], "ack");
  return { type: "ack", id: uuid(fields, "id", "ack") };
}

function parseOutput(fields: Fields): OutputFrame {
  onlyKeys(fields, ["type", "id", "seq", "stream", "data"], "output");
  const id = uuid(fields, "id", "output");
  return {
    type: "output",
    id,
    seq: integer(fields, "seq", "output", 0, 2 ** 31 - 1),
    stream: oneOf(fields, "stream", "output", ["stdout", "stderr"] as const),
    data: text(fields, "data", "output", Number.MAX_SAFE_INTEGER),
  };
}

function parseResult(fields: Fields): ResultFrame {
  onlyKeys(fields, ["type", "id", "success", "response", "error", "error_code", "exit_code"], "result");
  const id = uuid(fields, "id", "result");
  if (typeof fields.success !== "boolean") fail("result.success must be true or false", id);
  const frame: ResultFrame = { type: "result", id, success: fields.success };
  if (fields.response !== undefined) frame.response = fields.response as JsonValue;
  assign(frame, "error", optionalText(fields, "error", "result", FIELD_LIMITS.errorText));
  assign(frame, "error_code", optionalOneOf(fields, "error_code", "result", ERROR_CODES));
  if (fields.exit_code !== undefined) frame.exit_code = integer(fields, "exit_code", "result", -(2 ** 31), 2 ** 31 - 1);
  return frame;
}

function parseError(fields: Fields): ErrorFrame {
  onlyKeys(fields, ["type", "code", "message", "id", "retry_after_seconds"], "error");
  const frame: ErrorFrame = {
    type: "error",
    code: oneOf(fields, "code", "error", ERROR_CODES),
    message: text(fields, "message", "error", FIELD_LIMITS.errorText),
  };
  if (fields.id !== undefined) frame.id = uuid(fields, "id", "error");
  if (fields.retry_after_seconds !== undefined) {
    frame.retry_after_seconds = integer(fields, "retry_after_seconds", "error", 0, 86_400);
  }
  return frame;
}

function parseWelcome(fields: Fields): WelcomeFrame {
  onlyKeys(
    fields,
    ["type", "protocol", "box_id", "connection_id", "heartbeat_interval_ms", "max_frame_bytes", "max_batch_size", "limits", "server_time"],
    "welcome",
  );
  const limits = objectOf(fields.limits, "welcome.limits");
  onlyKeys(limits, ["frames_per_minute"], "welcome.limits");
  return {
    type: "welcome",
    protocol: integer(fields, "protocol", "welcome", 1, 1_000),
    box_id: uuid(fields, "box_id", "welcome"),
    connection_id: text(fields, "connection_id", "welcome", 32, /^\d+$/),
    heartbeat_interval_ms: integer(fields, "heartbeat_interval_ms", "welcome", 1, 3_600_000),
    max_frame_bytes: integer(fields, "max_frame_bytes", "welcome", 1_024, 2 ** 31 - 1),
    max_batch_size: integer(fields, "max_batch_size", "welcome", 1, 1_000),
    limits: { frames_per_minute: integer(limits, "frames_per_minute", "welcome.limits", 1, 1_000_000_000) },
    server_time: text(fields, "server_time", "welcome", 64),
  };
}

function parseCommand(value: unknown): CommandFrame {
  const fields = objectOf(value, "a command");
  onlyKeys(fields, ["type", "id", "command_type", "payload", "timeout_ms", "sent_at"], "command");
  if (fields.type !== "command") fail('command.type must be "command"');
  return {
    type: "command",
    id: uuid(fields, "id", "command"),
    command_type: text(fields, "command_type", "command", 128, COMMAND_TYPE),
    payload: objectOf(fields.payload, "command.payload") as JsonObject,
    timeout_ms: integer(fields, "timeout_ms", "command", 1, 2 ** 31 - 1),
    sent_at: text(fields, "sent_at", "command", 64),
  };
}

function parseBatch(fields: Fields): BatchFrame {
  onlyKeys(fields, ["type", "commands"], "batch");
  return { type: "batch", commands: list(fields, "commands", "batch", 1, MAX_BATCH_SIZE).map(parseCommand) };
}

function parseCancel(fields: Fields): CancelFrame {
  onlyKeys(fields, ["type", "id", "reason"], "cancel");
  return {
    type: "cancel",
    id: uuid(fields, "id", "cancel"),
    reason: oneOf(fields, "reason", "cancel", ["canceled", "timed_out"] as const),
  };
}

function parseReceipt(fields: Fields): ReceiptFrame {
  onlyKeys(fields, ["type", "id", "recorded", "status"], "receipt");
  if (typeof fields.recorded !== "boolean") fail("receipt.recorded must be true or false");
  return {
    type: "receipt",
    id: uuid(fields, "id", "receipt"),
    recorded: fields.recorded,
    status: oneOf(fields, "status", "receipt", COMMAND_STATUSES),
  };
}

const BOX_FRAME_PARSERS: Record<BoxFrame["type"], (fields: Fields) => BoxFrame> = {
  hello: parseHello,
  heartbeat: parseHeartbeat,
  ack: parseAck,
  output: parseOutput,
  result: parseResult,
  error: parseError,
};

const BRIDGE_FRAME_PARSERS: Record<BridgeFrame["type"], (fields: Fields) => BridgeFrame> = {
  welcome: parseWelcome,
  command: (fields) => parseCommand(fields),
  batch: parseBatch,
  cancel: parseCancel,
  receipt: parseReceipt,
  error: parseError,
};

function parseWith<T>(data: string, parsers: Record<string, (fields: Fields) => T>): T {
  let value: unknown;
  try {
    value = JSON.parse(data);
  } catch {
    fail("the frame is not valid JSON");
  }
  const fields = objectOf(value, "a frame");
  const type = fields.type;
  if (typeof type !== "string") fail("a frame needs a string field type");
  const parser = Object.hasOwn(parsers, type) ? parsers[type] : undefined;
  if (parser === undefined) fail(`unknown frame type "${type.slice(0, 64)}"`);
  try {
    return parser(fields);
  } catch (error) {
    // Name the command, when the frame had a well-formed id, so the box can tell which one failed.
    if (error instanceof FrameError && error.id === undefined && typeof fields.id === "string" && UUID.test(fields.id)) {
      throw new FrameError(error.message, error.code, fields.id.toLowerCase());
    }
    throw error;
  }
}

/** Parses and validates a text frame sent by a box; throws `FrameError`. */
export function parseBoxFrame(data: string): BoxFrame {
  return parseWith(data, BOX_FRAME_PARSERS);
}

/** Parses and validates a text frame sent by the bridge; throws `FrameError`. */
export function parseBridgeFrame(data: string): BridgeFrame {
  return parseWith(data, BRIDGE_FRAME_PARSERS);
}

/** The highest version both sides speak, or null. */
export function negotiateVersion(offered: readonly number[], supported: readonly number[] = PROTOCOL_VERSIONS): number | null {
  const common = offered.filter((version) => supported.includes(version));
  return common.length === 0 ? null : Math.max(...common);
}

export function encodeFrame(frame: BoxFrame | BridgeFrame): string {
  return JSON.stringify(frame);
}
