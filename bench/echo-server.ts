/**
 * The baseline of the bridge benchmark: a bare `ws` server with the bridge's
 * settings that echoes every message. `node bench/echo-server.ts` prints its
 * port on the first line of stdout.
 */
import { WebSocketServer } from "ws";

const server = new WebSocketServer({ host: "127.0.0.1", port: 0, maxPayload: 1_048_576, perMessageDeflate: false, clientTracking: false });
server.on("connection", (ws) => {
  ws.on("message", (data, isBinary) => ws.send(data, { binary: isBinary }));
});
server.on("listening", () => {
  const address = server.address();
  process.stdout.write(`${typeof address === "object" && address !== null ? address.port : 0}\n`);
});
process.on("SIGTERM", () => server.close(() => process.exit(0)));
