/**
 * Signed webhooks. Every POST agentplane sends to a customer's URL (a cron
 * job's `webhook` action, a cloud agent's task, a webhook notification
 * channel) carries:
 *
 *   agentplane-timestamp: <unix seconds when it was signed>
 *   agentplane-signature: v1=<hex HMAC-SHA256(secret, "<timestamp>.<raw body>")>[,v1=<…>]
 *
 * The secret is the organization's webhook signing secret (`whsec_…`), or a
 * webhook channel's own secret. While a rotated secret is still in its grace
 * period, one `v1=` signature per valid secret is sent: a receiver accepts the
 * request when any of them matches. Receivers verify with `verifyWebhook`
 * (or the same three steps in any language, see docs/schedules.md): recompute
 * the HMAC over the timestamp, a dot and the raw body; compare in constant
 * time; refuse timestamps too far from their clock (replays).
 */
import { createHmac, timingSafeEqual } from "node:crypto";

export const TIMESTAMP_HEADER = "agentplane-timestamp";
export const SIGNATURE_HEADER = "agentplane-signature";
/** How far a receiver's clock and the timestamp may differ by default, in seconds. */
export const DEFAULT_TOLERANCE_SECONDS = 300;

function hmac(secret: string, timestamp: number, body: string): string {
  return createHmac("sha256", secret).update(`${timestamp}.${body}`).digest("hex");
}

/** The two headers for `body`, signed with each of `secrets` (the current one first). */
export function signWebhook(
  secrets: readonly string[],
  body: string,
  now: Date = new Date(),
): Record<typeof TIMESTAMP_HEADER | typeof SIGNATURE_HEADER, string> {
  if (secrets.length === 0) throw new Error("signWebhook needs at least one secret");
  const timestamp = Math.floor(now.getTime() / 1000);
  return {
    [TIMESTAMP_HEADER]: String(timestamp),
    [SIGNATURE_HEADER]: secrets.map((secret) => `v1=${hmac(secret, timestamp, body)}`).join(","),
  };
}

export type VerifyResult = { ok: true } | { ok: false; reason: string };

/**
 * Checks a received webhook: `body` must be the raw request body, exactly as
 * received (before any JSON parsing), and the headers as sent.
 */
export function verifyWebhook(options: {
  secret: string;
  body: string;
  timestamp: string | undefined;
  signature: string | undefined;
  toleranceSeconds?: number;
  now?: Date;
}): VerifyResult {
  const { secret, body, timestamp, signature, toleranceSeconds = DEFAULT_TOLERANCE_SECONDS, now = new Date() } = options;
  if (timestamp === undefined || !/^\d{1,12}$/.test(timestamp)) return { ok: false, reason: "missing or malformed timestamp" };
  if (signature === undefined || signature === "") return { ok: false, reason: "missing signature" };
  const age = Math.abs(now.getTime() / 1000 - Number(timestamp));
  if (age > toleranceSeconds) return { ok: false, reason: `timestamp is ${Math.round(age)} s away from now` };
  const expected = Buffer.from(hmac(secret, Number(timestamp), body), "hex");
  const matches = signature.split(",").some((entry) => {
    const [version, hex = ""] = entry.trim().split("=", 2);
    if (version !== "v1" || !/^[0-9a-f]{64}$/.test(hex)) return false;
    return timingSafeEqual(Buffer.from(hex, "hex"), expected);
  });
  return matches ? { ok: true } : { ok: false, reason: "no signature matches" };
}
