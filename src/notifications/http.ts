/**
 * Outbound HTTP for deliveries (webhooks, Slack, Telegram, cloud agents):
 * one POST with a time-out, classified so that the caller knows whether a
 * retry can help.
 */
import { assertPublicHost } from "./address-guard.ts";

/** A delivery that did not succeed. `permanent` failures are not retried (a 4xx other than 408/425/429). */
export class DeliveryError extends Error {
  readonly permanent: boolean;
  constructor(message: string, options: { permanent: boolean; cause?: unknown }) {
    super(message, { cause: options.cause });
    this.name = "DeliveryError";
    this.permanent = options.permanent;
  }
}

export interface PostResult {
  status: number;
  /** The response body, cut to 2 KiB. */
  body: string;
}

const RETRYABLE_4XX = new Set([408, 425, 429]);
const MAX_BODY_CHARS = 2048;

/** The URL without user info, query or fragment: safe to log and to store in an error. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    return `${parsed.protocol}//${parsed.host}${parsed.pathname.replace(/\/bot[^/]+/, "/bot***")}`;
  } catch {
    return "(invalid URL)";
  }
}

/**
 * POSTs `body` to `url`. Resolves on a 2xx; otherwise throws a DeliveryError
 * whose message names the status (or the network error) and never the URL's
 * secrets. `displayUrl` is what the error shows instead of the URL.
 */
export async function postJson(
  url: string,
  body: string,
  options: { headers?: Record<string, string>; timeoutMs: number; displayUrl?: string; allowPrivateNetworks: boolean },
): Promise<PostResult> {
  const shown = options.displayUrl ?? redactUrl(url);
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch (error) {
    throw new DeliveryError(`invalid URL ${shown}`, { permanent: true, cause: error });
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
    throw new DeliveryError(`${shown}: only http and https URLs are allowed`, { permanent: true });
  }
  if (!options.allowPrivateNetworks) await assertPublicHost(parsed.hostname);
  let response: Response;
  try {
    response = await fetch(parsed, {
      method: "POST",
      headers: { "content-type": "application/json", "user-agent": "agentplane", ...options.headers },
      body,
      redirect: "manual",
      signal: AbortSignal.timeout(options.timeoutMs),
    });
  } catch (error) {
    const reason = (error as { name?: unknown }).name === "TimeoutError" ? `no answer within ${options.timeoutMs} ms` : describe(error);
    throw new DeliveryError(`POST ${shown}: ${reason}`, { permanent: false, cause: error });
  }
  const text = (await response.text().catch(() => "")).slice(0, MAX_BODY_CHARS);
  if (response.status >= 200 && response.status < 300) return { status: response.status, body: text };
  const permanent = response.status < 500 && !RETRYABLE_4XX.has(response.status);
  throw new DeliveryError(`POST ${shown}: HTTP ${response.status}${text ? ` ${text.slice(0, 200)}` : ""}`, { permanent });
}

/** fetch's errors come from another realm in some hosts: read them by shape, not by class. */
function describe(error: unknown): string {
  const { message, cause } = (error ?? {}) as { message?: unknown; cause?: { message?: unknown } };
  if (typeof message !== "string") return String(error);
  return typeof cause?.message === "string" ? `${message}: ${cause.message}` : message;
}
