/**
 * What a box must present before its WebSocket upgrade completes: the key in
 * `Authorization: Bearer box_…` (never the query string) and its hardware id
 * in `X-Box-Hardware-Id`. Refusals are plain HTTP answers (see refuseUpgrade).
 */
import type { IncomingHttpHeaders } from "node:http";
import { bearerToken, tokenHash } from "../server/request-settings.ts";
import { BOX_KEY_PATTERN, HARDWARE_ID_HEADER, HARDWARE_ID_PATTERN } from "./protocol.ts";
import type { AuthOutcome } from "./store.ts";

export interface Refusal {
  status: number;
  reason: string;
  error: string;
  message: string;
}

export type Credentials = { keyHash: string; hardwareId: string } | Refusal;

const UNAUTHORIZED: Refusal = {
  status: 401,
  reason: "Unauthorized",
  error: "UNAUTHORIZED",
  message: "a valid box key is required in the Authorization header (Bearer box_…); it may be unknown, revoked or expired",
};

export function readCredentials(headers: IncomingHttpHeaders): Credentials {
  const authorization = headers.authorization;
  const key = bearerToken(typeof authorization === "string" ? authorization : undefined);
  if (key === undefined || !BOX_KEY_PATTERN.test(key)) return UNAUTHORIZED;
  const hardwareId = headers[HARDWARE_ID_HEADER];
  if (typeof hardwareId !== "string" || !HARDWARE_ID_PATTERN.test(hardwareId)) {
    return {
      status: 401,
      reason: "Unauthorized",
      error: "HARDWARE_ID_REQUIRED",
      message: "the X-Box-Hardware-Id header is required: 1 to 128 printable characters without spaces",
    };
  }
  return { keyHash: tokenHash(key), hardwareId };
}

export function refusalOf(outcome: Exclude<AuthOutcome, "ok">): Refusal {
  switch (outcome) {
    case "unauthorized":
      return UNAUTHORIZED;
    case "hardware_id_mismatch":
      return {
        status: 403,
        reason: "Forbidden",
        error: "HARDWARE_ID_MISMATCH",
        message: "this box is bound to another hardware id (delete the box and create a new one to move it)",
      };
    case "hardware_id_in_use":
      return { status: 403, reason: "Forbidden", error: "HARDWARE_ID_IN_USE", message: "another box is bound to this hardware id" };
  }
}

export const UNAVAILABLE: Refusal = {
  status: 503,
  reason: "Service Unavailable",
  error: "BRIDGE_UNAVAILABLE",
  message: "the bridge is shutting down or cannot reach its database: retry later",
};
