/**
 * What a GraphQL request (HTTP or WebSocket operation) runs with in
 * PostgreSQL: the visitor role, a statement timeout, and who is asking —
 * the SHA-256 of the bearer token, a request id, the client's address and
 * User-Agent. Who may see which row is decided by row-level security from
 * these settings, never here: SQL decides what a token hash means
 * (`app_public.current_session_id()` looks it up among sessions).
 */
import { createHash, randomUUID } from "node:crypto";
import type { IncomingHttpHeaders, IncomingMessage } from "node:http";
import { isIP } from "node:net";
import type { Config } from "../config.ts";

export type PgSettings = Record<string, string>;

/** What one request brings: the HTTP request (or the WebSocket's upgrade request) and its connection parameters. */
export interface RequestSource {
  headers: IncomingHttpHeaders;
  /** The TCP peer's address. */
  remoteAddress?: string | undefined;
  /** graphql-ws connection parameters, keys lower-cased (WebSocket operations only). */
  connectionParams?: Record<string, unknown> | undefined;
}

const USER_AGENT_MAX = 512;
const BEARER = /^Bearer\s+(\S+)\s*$/i;

/** Hex SHA-256 of a token, as `app_private.sha256_hex` stores it. */
export function tokenHash(token: string): string {
  return createHash("sha256").update(token, "utf8").digest("hex");
}

function firstString(value: unknown): string | undefined {
  if (typeof value === "string") return value;
  if (Array.isArray(value) && typeof value[0] === "string") return value[0];
  return undefined;
}

/** The token of an `Authorization: Bearer <token>` value; undefined for anything else. */
export function bearerToken(authorization: string | undefined): string | undefined {
  return authorization === undefined ? undefined : BEARER.exec(authorization)?.[1];
}

/**
 * The client's address: the TCP peer, or, behind `trustedProxies` proxies,
 * the address the outermost trusted proxy saw (counted from the right of
 * X-Forwarded-For, as Express's `trust proxy` does).
 */
export function clientIp(source: RequestSource, trustedProxies: number): string | undefined {
  let address = source.remoteAddress;
  const forwarded = firstString(source.headers["x-forwarded-for"]);
  if (trustedProxies > 0 && forwarded !== undefined) {
    const hops = forwarded.split(",").map((hop) => hop.trim()).filter((hop) => hop !== "");
    address = hops[Math.max(hops.length - trustedProxies, 0)] ?? address;
  }
  if (address === undefined) return undefined;
  const unmapped = address.startsWith("::ffff:") && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
  return isIP(unmapped) === 0 ? undefined : unmapped;
}

/** How many proxies in front of the server are trusted to set X-Forwarded-For (as `trust proxy` in src/server/index.ts). */
export function trustedProxies(config: Config): number {
  return config.isProduction ? 1 : 0;
}

/** The settings of one request; its bearer token (HTTP header or `authorization` connection parameter) becomes `agentplane.token_hash`. */
export function requestPgSettings(config: Config, source: RequestSource): PgSettings {
  const settings: PgSettings = {
    role: config.visitorRole,
    statement_timeout: `${config.statementTimeoutMs}ms`,
    "agentplane.request_id": randomUUID(),
    "agentplane.session_lifetime": `${config.sessionLifetimeHours} hours`,
  };
  const authorization =
    firstString(source.connectionParams?.authorization) ?? firstString(source.headers.authorization);
  const token = bearerToken(authorization);
  if (token !== undefined) settings["agentplane.token_hash"] = tokenHash(token);
  const ip = clientIp(source, trustedProxies(config));
  if (ip !== undefined) settings["agentplane.ip"] = ip;
  const userAgent = firstString(source.headers["user-agent"]);
  if (userAgent) settings["agentplane.user_agent"] = userAgent.slice(0, USER_AGENT_MAX);
  return settings;
}

/** The parts of an HTTP request (or a WebSocket's upgrade request) that `requestPgSettings` reads. */
export function requestSource(
  request: IncomingMessage | undefined,
  connectionParams?: Record<string, unknown>,
): RequestSource {
  return { headers: request?.headers ?? {}, remoteAddress: request?.socket?.remoteAddress, connectionParams };
}
