/**
 * A token bucket: `capacity` tokens, refilled continuously at `capacity` per
 * `periodMs`. Used for the bridge's frames-per-minute limit, and by the
 * reference box to stay under it.
 */
export class TokenBucket {
  private readonly capacity: number;
  private readonly refillPerMs: number;
  private tokens: number;
  private updatedAt: number;

  constructor(capacity: number, periodMs: number, now: number = performance.now()) {
    this.capacity = capacity;
    this.refillPerMs = capacity / periodMs;
    this.tokens = capacity;
    this.updatedAt = now;
  }

  private refill(now: number): void {
    this.tokens = Math.min(this.capacity, this.tokens + (now - this.updatedAt) * this.refillPerMs);
    this.updatedAt = now;
  }

  /** Takes one token if there is one. */
  take(now: number = performance.now()): boolean {
    this.refill(now);
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  /** How long until a token is available (0 if one is). */
  waitMs(now: number = performance.now()): number {
    this.refill(now);
    return this.tokens >= 1 ? 0 : Math.ceil((1 - this.tokens) / this.refillPerMs);
  }

  /** Empties the bucket for `ms` (the other side said to wait). */
  pause(ms: number, now: number = performance.now()): void {
    this.refill(now);
    this.tokens = -ms * this.refillPerMs;
  }
}
