/**
 * What a GraphQL request (HTTP or WebSocket) runs with in PostgreSQL: the
 * visitor role and a statement timeout. Who may see which row is decided by
 * row-level security from these settings, never here.
 */
import type { IncomingHttpHeaders } from "node:http";
import type { Config } from "../config.ts";

export type PgSettings = Record<string, string>;

export function requestPgSettings(
  config: Config,
  _headers: IncomingHttpHeaders,
  _connectionParams: Record<string, unknown> | undefined,
): PgSettings {
  return {
    role: config.visitorRole,
    statement_timeout: `${config.statementTimeoutMs}ms`,
  };
}
