/**
 * What a command handler of the reference box gets and gives back.
 */
import type { ErrorCode, JsonObject, JsonValue } from "../../bridge/protocol.ts";

export interface CommandContext {
  id: string;
  payload: JsonObject;
  /** Aborted on `cancel` (reason "canceled") or when the client stops. */
  signal: AbortSignal;
  /** The folder file commands and bash.exec are confined to (a real path). */
  root: string;
  /** Streams a chunk of output; the client gathers chunks into `output` frames. */
  output(stream: "stdout" | "stderr", data: string): void;
}

export interface CommandOutcome {
  success: boolean;
  response?: JsonValue;
  error?: string;
  error_code?: ErrorCode;
  exit_code?: number;
}

export type CommandHandler = (context: CommandContext) => Promise<CommandOutcome>;

/** A failure with a protocol error code; the client turns it into a failed result. */
export class CommandError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string) {
    super(message);
    this.code = code;
  }
}

/** Payload readers: a missing or mistyped field is INVALID_PARAMS. */
export function stringParam(payload: JsonObject, key: string, options: { optional: true }): string | undefined;
export function stringParam(payload: JsonObject, key: string, options?: { optional?: false }): string;
export function stringParam(payload: JsonObject, key: string, options: { optional?: boolean } = {}): string | undefined {
  const value = payload[key];
  if (value === undefined && options.optional) return undefined;
  if (typeof value !== "string") throw new CommandError("INVALID_PARAMS", `payload.${key} must be a string`);
  return value;
}

export function integerParam(payload: JsonObject, key: string, fallback: number, min: number, max: number): number {
  const value = payload[key];
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
    throw new CommandError("INVALID_PARAMS", `payload.${key} must be a whole number from ${min} to ${max}`);
  }
  return value;
}

export function onlyParams(payload: JsonObject, allowed: readonly string[]): void {
  for (const key of Object.keys(payload)) {
    if (!allowed.includes(key)) throw new CommandError("INVALID_PARAMS", `payload has an unknown field "${key}"`);
  }
}
