/**
 * Reconnection delays: exponential with jitter. Attempt n waits between half
 * and all of min(maxMs, initialMs × 2^n), at random: 0.5–1 s, 1–2 s, 2–4 s, …
 * up to 15–30 s by default, so that boxes dropped together do not return together.
 */
export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { initialMs: 1_000, maxMs: 30_000 };

export function backoffCeiling(attempt: number, { initialMs, maxMs }: BackoffOptions): number {
  return Math.min(maxMs, initialMs * 2 ** Math.min(attempt, 30));
}

export function backoffDelay(attempt: number, options: BackoffOptions, random: () => number = Math.random): number {
  return Math.round(backoffCeiling(attempt, options) * (0.5 + random() / 2));
}
