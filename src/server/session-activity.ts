/**
 * Keeps `last_used_at` of sessions (and `last_active_at` of their users) up to
 * date without a write per request: each token hash is passed to
 * `app_private.touch_session` at most once a minute by this process, and SQL
 * writes at most once a minute per session whatever the number of processes.
 * Forged tokens match no session and write nothing.
 */
import type { Pool } from "pg";
import type { Logger } from "../logger.ts";

export interface SessionActivity {
  /** Notes that a request carried this token hash; returns at once. */
  seen(tokenHash: string): void;
}

export interface SessionActivityOptions {
  intervalMs?: number;
  /** How many token hashes to remember before starting afresh. */
  maxTracked?: number;
}

export function createSessionActivity(
  ownerPool: Pool,
  logger: Logger,
  { intervalMs = 60_000, maxTracked = 10_000 }: SessionActivityOptions = {},
): SessionActivity {
  const lastTouched = new Map<string, number>();
  return {
    seen(tokenHash) {
      const now = Date.now();
      const last = lastTouched.get(tokenHash);
      if (last !== undefined && now - last < intervalMs) return;
      if (lastTouched.size >= maxTracked) lastTouched.clear();
      lastTouched.set(tokenHash, now);
      ownerPool.query("select app_private.touch_session($1)", [tokenHash]).catch((error: unknown) => {
        logger.warn({ err: error }, "could not record session activity");
      });
    },
  };
}
