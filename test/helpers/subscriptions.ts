/**
 * A minimal graphql-transport-ws client for tests: one subscription per
 * connection, its results collected as they come.
 */
import WebSocket from "ws";
import { Waiters } from "./wait.ts";

export interface SubscriptionResult<T> {
  data?: T | null;
  errors?: Array<{ message: string; extensions?: Record<string, unknown> }>;
}

export interface TestSubscription<T> {
  results: Array<SubscriptionResult<T>>;
  /** Resolves when the server completes the subscription (or the socket closes). */
  completed: Promise<void>;
  /** Waits until `count` results have come. */
  waitFor(count: number, timeoutMs?: number): Promise<Array<SubscriptionResult<T>>>;
  close(): void;
}

export async function subscribe<T>(
  httpUrl: string,
  query: string,
  variables: Record<string, unknown>,
  token?: string,
): Promise<TestSubscription<T>> {
  const ws = new WebSocket(`${httpUrl.replace(/^http/, "ws")}/graphql`, "graphql-transport-ws");
  const results: Array<SubscriptionResult<T>> = [];
  const waiters = new Waiters();
  let markCompleted: () => void = () => undefined;
  const completed = new Promise<void>((resolve) => (markCompleted = resolve));
  const wake = () => waiters.notify();
  await new Promise<void>((resolve, reject) => {
    ws.once("error", reject);
    ws.on("open", () => ws.send(JSON.stringify({ type: "connection_init", payload: token === undefined ? {} : { authorization: `Bearer ${token}` } })));
    ws.on("message", (data: Buffer) => {
      const message = JSON.parse(data.toString()) as { type: string; payload?: unknown };
      if (message.type === "connection_ack") {
        ws.send(JSON.stringify({ id: "1", type: "subscribe", payload: { query, variables } }));
        resolve();
      } else if (message.type === "next") {
        results.push(message.payload as SubscriptionResult<T>);
      } else if (message.type === "error") {
        results.push({ errors: message.payload as SubscriptionResult<T>["errors"] });
        markCompleted();
      } else if (message.type === "complete") {
        markCompleted();
      } else if (message.type === "ping") {
        ws.send(JSON.stringify({ type: "pong" }));
      }
      wake();
    });
    ws.on("close", () => {
      markCompleted();
      wake();
    });
  });
  return {
    results,
    completed,
    waitFor(count, timeoutMs = 10_000) {
      return waiters.until(
        () => (results.length >= count ? results : undefined),
        timeoutMs,
        () => `only ${results.length} of ${count} results: ${JSON.stringify(results)}`,
      );
    },
    close() {
      ws.close();
    },
  };
}
