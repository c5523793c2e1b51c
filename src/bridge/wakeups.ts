/**
 * LISTEN agentplane_bridge: what the database tells every bridge instance
 * (triggers in migrations/committed/000003-boxes-and-the-bridge.sql). Sent on commit, so a wake-up
 * never comes before the row it is about is visible. One connection, taken
 * again after a loss; `onReconnect` lets the bridge catch up on whatever it
 * may have missed meanwhile.
 */
import type { Pool, PoolClient } from "pg";
import type { Logger } from "../logger.ts";

export const BRIDGE_CHANNEL = "agentplane_bridge";

export type Wakeup =
  | { k: "queued"; b: string }
  | { k: "cancel"; b: string; c: string; r: "canceled" | "timed_out" }
  | { k: "revoked"; b: string; key: string }
  | { k: "deleted"; b: string };

export interface WakeupListener {
  close(): Promise<void>;
}

function parse(payload: string | undefined): Wakeup | null {
  try {
    const value = JSON.parse(payload ?? "") as Partial<Wakeup>;
    return typeof value === "object" && value !== null && typeof value.k === "string" && typeof value.b === "string"
      ? (value as Wakeup)
      : null;
  } catch {
    return null;
  }
}

export async function listenForWakeups(options: {
  pool: Pool;
  logger: Logger;
  onWakeup: (wakeup: Wakeup) => void;
  onReconnect: () => void;
  retryMs?: number;
}): Promise<WakeupListener> {
  const { pool, logger, onWakeup, onReconnect, retryMs = 1_000 } = options;
  let client: PoolClient | null = null;
  let closed = false;
  let retryTimer: NodeJS.Timeout | null = null;

  const connect = async (): Promise<void> => {
    const next = await pool.connect();
    next.on("notification", (message) => {
      if (message.channel !== BRIDGE_CHANNEL) return;
      const wakeup = parse(message.payload);
      if (wakeup === null) logger.warn({ payload: message.payload }, "unreadable bridge notification");
      else onWakeup(wakeup);
    });
    next.on("error", (error) => {
      if (client !== next) return;
      logger.warn({ err: error }, "lost the LISTEN connection; reconnecting");
      client = null;
      next.release(error);
      scheduleRetry();
    });
    await next.query(`listen ${BRIDGE_CHANNEL}`);
    client = next;
  };

  const scheduleRetry = () => {
    if (closed || retryTimer !== null) return;
    retryTimer = setTimeout(() => {
      retryTimer = null;
      connect().then(
        () => {
          logger.info("LISTEN connection restored");
          onReconnect();
        },
        (error: unknown) => {
          logger.warn({ err: error }, "could not restore the LISTEN connection");
          scheduleRetry();
        },
      );
    }, retryMs);
  };

  await connect();
  return {
    async close() {
      closed = true;
      if (retryTimer !== null) clearTimeout(retryTimer);
      const current = client;
      client = null;
      if (current !== null) {
        await current.query(`unlisten ${BRIDGE_CHANNEL}`).catch(() => undefined);
        current.release();
      }
    },
  };
}
