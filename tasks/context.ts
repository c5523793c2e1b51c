/**
 * What tasks get besides their payload: the configuration (delivery limits,
 * the encryption key) and the worker's logger.
 */
import type { Config } from "../src/config.ts";
import type { Logger } from "../src/logger.ts";

export interface TaskContext {
  config: Config;
  logger: Logger;
}

/** A payload field that must be a non-empty string; a malformed payload is a bug, so it throws. */
export function payloadString(payload: unknown, key: string): string {
  const value = (payload as Record<string, unknown> | null)?.[key];
  if (typeof value !== "string" || value === "") throw new Error(`payload.${key} must be a non-empty string`);
  return value;
}

/** An optional string field of a payload. */
export function optionalPayloadString(payload: unknown, key: string): string | null {
  const value = (payload as Record<string, unknown> | null)?.[key];
  if (value === undefined || value === null) return null;
  if (typeof value !== "string") throw new Error(`payload.${key} must be a string`);
  return value;
}
