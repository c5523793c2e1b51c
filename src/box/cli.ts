/**
 * The reference box: `npm run box -- --url ws://127.0.0.1:3000/bridge --key box_…`
 *
 *   --url URL            the bridge (or BOX_URL)
 *   --key KEY            the box key (or BOX_KEY, which keeps it out of the process list)
 *   --hardware-id ID     this machine's id (or BOX_HARDWARE_ID; default /etc/machine-id)
 *   --root DIR           the folder file commands and bash.exec are confined to (default ./box-root)
 *
 * Exits 0 on SIGINT/SIGTERM, 2 when the bridge refuses the key or closes for good.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { mkdir, realpath } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { BOX_KEY_PATTERN, HARDWARE_ID_PATTERN } from "../bridge/protocol.ts";
import { BoxClient, type BoxLog } from "./client.ts";
import { heartbeatMetrics } from "./commands/system.ts";

function defaultHardwareId(): string {
  try {
    const machineId = readFileSync("/etc/machine-id", "utf8").trim();
    if (HARDWARE_ID_PATTERN.test(machineId)) return machineId;
  } catch {
    // No machine id on this system.
  }
  return "host-" + createHash("sha256").update(os.hostname()).digest("hex").slice(0, 32);
}

function usage(message: string): never {
  process.stderr.write(`box: ${message}\nusage: npm run box -- --url ws://host:port/bridge --key box_… [--root DIR] [--hardware-id ID]\n`);
  process.exit(1);
}

const stderrLog: BoxLog = {
  info: (message) => process.stderr.write(`${new Date().toISOString()} ${message}\n`),
  warn: (message) => process.stderr.write(`${new Date().toISOString()} warning: ${message}\n`),
  error: (message) => process.stderr.write(`${new Date().toISOString()} error: ${message}\n`),
};

async function main() {
  const { values } = parseArgs({
    options: {
      url: { type: "string" },
      key: { type: "string" },
      "hardware-id": { type: "string" },
      root: { type: "string" },
    },
  });
  const url = values.url ?? process.env.BOX_URL;
  const key = values.key ?? process.env.BOX_KEY;
  const hardwareId = values["hardware-id"] ?? process.env.BOX_HARDWARE_ID ?? defaultHardwareId();
  if (url === undefined || !/^wss?:\/\//.test(url)) usage("--url must be a ws:// or wss:// URL");
  if (key === undefined || !BOX_KEY_PATTERN.test(key)) usage("--key must be a box key (box_ and 43 characters)");
  if (!HARDWARE_ID_PATTERN.test(hardwareId)) usage("--hardware-id must be 1 to 128 printable characters without spaces");
  if (new URL(url).search !== "") usage("--url must not carry a query string: the key travels in a header");
  const rootFolder = path.resolve(values.root ?? "box-root");
  await mkdir(rootFolder, { recursive: true });

  const client = new BoxClient({ url, key, hardwareId, root: await realpath(rootFolder), log: stderrLog, metrics: heartbeatMetrics() });
  stderrLog.info(`box connecting to ${url} (hardware id ${hardwareId}, root ${rootFolder})`);
  client.start();
  const onSignal = () => void client.stop();
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  const stop = await client.done;
  if (stop.reason === "refused" && stop.status === 401 && stop.error === "UNAUTHORIZED") {
    stderrLog.error("check the key: it may be mistyped, revoked or expired (rotate it with rotateBoxKey to get a new one)");
  }
  process.exit(stop.reason === "stopped" ? 0 : 2);
}

await main();
