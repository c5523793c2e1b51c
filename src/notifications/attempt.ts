/**
 * One attempt of a delivery that graphile-worker retries: send, record the
 * outcome, and throw (so that the worker retries, with its exponential
 * back-off) only when another attempt can still help.
 */
import { DeliveryError } from "./http.ts";

export interface AttemptOptions<T> {
  /** This attempt's number, from 1 (graphile-worker's job.attempts). */
  attempt: number;
  maxAttempts: number;
  send(): Promise<T>;
  /** Stores the outcome: delivered, or the error and whether this was the last try. */
  record(outcome: { delivered: true; result: T } | { delivered: false; error: string; giveUp: boolean }): Promise<void>;
}

export type AttemptOutcome = "delivered" | "retrying" | "gave up";

export async function attemptDelivery<T>(options: AttemptOptions<T>): Promise<AttemptOutcome> {
  let result: T;
  try {
    result = await options.send();
  } catch (error) {
    const permanent = error instanceof DeliveryError && error.permanent;
    const giveUp = permanent || options.attempt >= options.maxAttempts;
    const message = error instanceof Error ? error.message : String(error);
    await options.record({ delivered: false, error: message, giveUp });
    if (giveUp) return "gave up";
    throw new Error(`delivery attempt ${options.attempt} of ${options.maxAttempts} failed: ${message}`, { cause: error });
  }
  await options.record({ delivered: true, result });
  return "delivered";
}
