/**
 * The box bridge at `/bridge`. Until box keys exist, it refuses every
 * connection before the upgrade with a plain HTTP answer.
 */
import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import type { Logger } from "../logger.ts";

export const BRIDGE_PATH = "/bridge";

export interface Bridge {
  handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void;
  stop(): Promise<void>;
}

/** Writes a complete HTTP response on a socket that asked to upgrade, then closes it. */
export function refuseUpgrade(socket: Duplex, status: number, reason: string, body: object): void {
  const json = JSON.stringify(body);
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\n` +
      "Connection: close\r\n" +
      "Content-Type: application/json\r\n" +
      `Content-Length: ${Buffer.byteLength(json)}\r\n` +
      "\r\n" +
      json,
  );
}

export function createBridge(logger: Logger): Bridge {
  return {
    handleUpgrade(request, socket) {
      logger.info({ ip: request.socket.remoteAddress }, "bridge connection refused: boxes are not enabled yet");
      refuseUpgrade(socket, 503, "Service Unavailable", { error: "BRIDGE_UNAVAILABLE", message: "box connections are not enabled yet" });
    },
    async stop() {},
  };
}
