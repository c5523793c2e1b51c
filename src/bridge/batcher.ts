/**
 * Natural batching: items added while a flush is running wait for it and go
 * together in the next one. An idle bridge writes each item at once (no added
 * latency); a busy one writes many per database round trip.
 */
export class Batcher<T, R> {
  private readonly flushItems: (items: T[]) => Promise<R[]>;
  private readonly maxBatch: number;
  private waiting: Array<{ item: T; resolve: (result: R) => void; reject: (error: unknown) => void }> = [];
  private running: Promise<void> | null = null;

  /** `flush` gets the items in the order they were added and returns one result per item. */
  constructor(flush: (items: T[]) => Promise<R[]>, maxBatch = 1_000) {
    this.flushItems = flush;
    this.maxBatch = maxBatch;
  }

  add(item: T): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.waiting.push({ item, resolve, reject });
      this.running ??= this.run();
    });
  }

  /** Resolves once everything added so far has been flushed. */
  async drain(): Promise<void> {
    while (this.running !== null) await this.running;
  }

  private async run(): Promise<void> {
    // Let the current tick add what it has before the first flush.
    await Promise.resolve();
    while (this.waiting.length > 0) {
      const batch = this.waiting.splice(0, this.maxBatch);
      try {
        const results = await this.flushItems(batch.map((entry) => entry.item));
        batch.forEach((entry, index) => entry.resolve(results[index] as R));
      } catch (error) {
        for (const entry of batch) entry.reject(error);
      }
    }
    this.running = null;
  }
}
