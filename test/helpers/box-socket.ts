/**
 * A raw box connection for tests that misbehave on purpose or watch single
 * frames: it speaks the protocol only as far as the test tells it to.
 *
 *   const box = await openBoxSocket(url, { key, hardwareId })   // refused → throws BoxRefused
 *   await box.hello()                                          // → the welcome frame
 *   box.send({...}); await box.next("receipt"); await box.closed
 */
import WebSocket from "ws";
import { HARDWARE_ID_HEADER, parseBridgeFrame, type BridgeFrame } from "../../src/bridge/protocol.ts";
import { Waiters } from "./wait.ts";

export class BoxRefused extends Error {
  readonly status: number;
  readonly body: { error?: string; message?: string };
  readonly headers: Record<string, string | string[] | undefined>;
  constructor(status: number, body: { error?: string; message?: string }, headers: Record<string, string | string[] | undefined>) {
    super(`refused with ${status} ${body.error}`);
    this.status = status;
    this.body = body;
    this.headers = headers;
  }
}

export interface BoxSocket {
  ws: WebSocket;
  frames: BridgeFrame[];
  send(frame: unknown): void;
  hello(protocols?: number[]): Promise<Extract<BridgeFrame, { type: "welcome" }>>;
  /** The next frame of this type not yet taken (frames that came earlier count). */
  next<T extends BridgeFrame["type"]>(type: T, timeoutMs?: number): Promise<Extract<BridgeFrame, { type: T }>>;
  closed: Promise<{ code: number; reason: string }>;
  close(): void;
}

export function bridgeUrl(httpUrl: string): string {
  return `${httpUrl.replace(/^http/, "ws")}/bridge`;
}

export function openBoxSocket(
  url: string,
  options: { key?: string; hardwareId?: string; headers?: Record<string, string>; autoPong?: boolean } = {},
): Promise<BoxSocket> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.key !== undefined) headers.authorization = `Bearer ${options.key}`;
  if (options.hardwareId !== undefined) headers[HARDWARE_ID_HEADER] = options.hardwareId;
  const ws = new WebSocket(url, { headers, autoPong: options.autoPong ?? true, maxPayload: 64 * 1024 * 1024 });
  const frames: BridgeFrame[] = [];
  const taken = new Set<BridgeFrame>();
  const waiters = new Waiters();
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    ws.on("close", (code, reason) => {
      resolve({ code, reason: reason.toString() });
      waiters.notify();
    }),
  );
  ws.on("message", (data) => {
    frames.push(parseBridgeFrame(data.toString()));
    waiters.notify();
  });
  const socket: BoxSocket = {
    ws,
    frames,
    closed,
    send(frame) {
      ws.send(typeof frame === "string" ? frame : JSON.stringify(frame));
    },
    async hello(protocols = [1]) {
      socket.send({ type: "hello", protocols, hostname: "test-box", os: "linux", arch: "amd64", agent_version: "test" });
      return socket.next("welcome");
    },
    next<T extends BridgeFrame["type"]>(type: T, timeoutMs = 10_000) {
      return waiters.until<Extract<BridgeFrame, { type: T }>>(
        () => {
          const frame = frames.find((f) => f.type === type && !taken.has(f));
          if (frame !== undefined) {
            taken.add(frame);
            return frame as Extract<BridgeFrame, { type: T }>;
          }
          if (ws.readyState === WebSocket.CLOSED) throw new Error(`closed before a ${type} frame; frames: ${JSON.stringify(frames)}`);
          return undefined;
        },
        timeoutMs,
        () => `no ${type} frame; frames: ${JSON.stringify(frames)}`,
      );
    },
    close() {
      ws.close();
    },
  };
  return new Promise((resolve, reject) => {
    ws.once("open", () => resolve(socket));
    ws.once("unexpected-response", (_request, response) => {
      let body = "";
      response.on("data", (chunk: Buffer) => (body += chunk.toString()));
      response.on("end", () => reject(new BoxRefused(response.statusCode ?? 0, JSON.parse(body || "{}"), response.headers)));
    });
    ws.once("error", (error) => reject(error));
  });
}

/** Expects the upgrade to be refused; returns the refusal. */
export async function refusal(url: string, options: Parameters<typeof openBoxSocket>[1]): Promise<BoxRefused> {
  try {
    const socket = await openBoxSocket(url, options);
    socket.close();
  } catch (error) {
    if (error instanceof BoxRefused) return error;
    throw error;
  }
  throw new Error("the upgrade was accepted");
}
