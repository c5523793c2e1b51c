/**
 * Which errors reach GraphQL clients. Grafserv hides every error it does not
 * know to be safe behind "An error occurred (logged with hash …)". Errors that
 * SQL raises on purpose are safe, and clients need them: their message and
 * SQLSTATE (as `extensions.code`) are shown when the SQLSTATE is
 *
 * - one of ours: five capital letters, e.g. `raise exception '…' using errcode = 'DNIED'`
 *   (LOGIN, CREDS, WEAKP, NUNIQ, DNIED, NTFND, EXPRD, OWNER so far);
 * - `P0001`, a plain `raise exception`;
 * - class 22 (invalid data) or 23 (constraint violations);
 * - `42501`, insufficient privilege (row-level security refused a write).
 *
 * A JSON object in the error's DETAIL (e.g. `{"retry_after_seconds": 12}` with
 * RATEL) is added to the extensions.
 *
 * Anything else (a bug, a lost connection) stays masked and is logged.
 */
import { GraphQLError } from "postgraphile/graphql";
import { defaultMaskError } from "postgraphile/grafserv";

const SAFE_SQLSTATE = /^(?:[A-Z]{5}|P0001|22...|23...|42501)$/;

function sqlState(error: unknown): string | undefined {
  if (typeof error !== "object" || error === null) return undefined;
  const code = (error as { code?: unknown }).code;
  return typeof code === "string" ? code : undefined;
}

/** The fields of a JSON object in DETAIL, if that is what it holds. */
function detailFields(error: unknown): Record<string, unknown> {
  const detail = (error as { detail?: unknown } | null)?.detail;
  if (typeof detail !== "string" || !detail.startsWith("{")) return {};
  try {
    const parsed: unknown = JSON.parse(detail);
    return typeof parsed === "object" && parsed !== null && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

export function maskError(error: GraphQLError): GraphQLError {
  const code = sqlState(error.originalError);
  if (code !== undefined && SAFE_SQLSTATE.test(code)) {
    return new GraphQLError(error.originalError?.message ?? error.message, {
      nodes: error.nodes,
      source: error.source,
      positions: error.positions,
      path: error.path,
      originalError: error.originalError,
      extensions: { ...detailFields(error.originalError), code },
    });
  }
  return defaultMaskError(error);
}
