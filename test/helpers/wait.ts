/**
 * Waiting in tests without sleeping: `Waiters` wakes whoever waits when
 * something may have happened (a frame came, a socket closed); `eventually`
 * polls a condition.
 */
export class Waiters {
  private readonly waiting = new Set<() => void>();

  /** Something may have changed: every waiter checks again. */
  notify(): void {
    for (const wake of [...this.waiting]) wake();
  }

  /**
   * Resolves with the first value `check` returns that is not undefined (now
   * or after a later notify); rejects with what `check` throws, or after
   * `timeoutMs` with `describe()`.
   */
  until<T>(check: () => T | undefined, timeoutMs: number, describe: () => string): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const attempt = () => {
        try {
          const value = check();
          if (value === undefined) return;
          done();
          resolve(value);
        } catch (error) {
          done();
          reject(error);
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`${describe()} (waited ${timeoutMs} ms)`));
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        this.waiting.delete(attempt);
      };
      this.waiting.add(attempt);
      attempt();
    });
  }
}

/** Waits until `check` returns something other than undefined/false, polling. */
export async function eventually<T>(check: () => Promise<T | undefined | false>, timeoutMs = 10_000, everyMs = 25): Promise<T> {
  const started = performance.now();
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (performance.now() - started > timeoutMs) throw new Error(`not true within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}
