/**
 * The bridge benchmark: a real agentplane process (API + bridge, as
 * `npm start --only api,bridge` in production mode) and, in the same run, a
 * bare `ws` echo server as the baseline.
 *
 *   connections   BENCH_BOXES boxes (5,000) held at once: time to connect them,
 *                 resident memory per connection
 *   round trip    sendBoxCommand (GraphQL over HTTP) → bridge → box → ack and
 *                 result → result stored → receipt at the box: p50/p99, one at
 *                 a time (BENCH_ROUND_TRIPS), then BENCH_CONCURRENCY at once
 *                 for BENCH_SECONDS: commands/s
 *   baseline      the same loops over the echo server: a frame out and back
 */
import { execFile, spawn } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import path from "node:path";
import { promisify } from "node:util";
import pg from "pg";
import WebSocket from "ws";
import { HARDWARE_ID_HEADER } from "../src/bridge/protocol.ts";
import { PROJECT_ROOT } from "../src/paths.ts";
import { freePort } from "../test/helpers/net.ts";
import { startProcess, type AgentplaneProcess } from "../test/helpers/process.ts";
import { ms, percentile, residentBytes, type BenchContext, type BenchPart } from "./part.ts";

function setting(name: string, fallback: number): number {
  const value = Number(process.env[name] ?? fallback);
  if (!Number.isInteger(value) || value < 1) throw new Error(`${name} must be a whole number >= 1`);
  return value;
}

const BOXES = setting("BENCH_BOXES", 5_000);
const ROUND_TRIPS = setting("BENCH_ROUND_TRIPS", 1_000);
const CONCURRENCY = setting("BENCH_CONCURRENCY", 32);
const SECONDS = setting("BENCH_SECONDS", 10);
/** Connections opened at once while filling up. */
const OPENING = 200;

interface Box {
  id: string;
  key: string;
}

interface Loop {
  /** Milliseconds of each iteration. */
  times: number[];
  perSecond: number;
}

interface Side {
  connectSeconds: number;
  bytesPerConnection: number;
  sequential: Loop;
  concurrent: Loop;
}

/** Runs `iteration` `count` times one after the other. */
async function sequentialLoop(count: number, iteration: (index: number) => Promise<void>): Promise<Loop> {
  const times: number[] = [];
  const started = performance.now();
  for (let i = 0; i < count; i++) {
    const t0 = performance.now();
    await iteration(i);
    times.push(performance.now() - t0);
  }
  return { times, perSecond: (count * 1_000) / (performance.now() - started) };
}

/** `lanes` loops at once for `seconds`; each lane runs `iteration(lane)`. */
async function concurrentLoop(lanes: number, seconds: number, iteration: (lane: number) => Promise<void>): Promise<Loop> {
  const times: number[] = [];
  const started = performance.now();
  const deadline = started + seconds * 1_000;
  await Promise.all(
    Array.from({ length: lanes }, async (_, lane) => {
      while (performance.now() < deadline) {
        const t0 = performance.now();
        await iteration(lane);
        times.push(performance.now() - t0);
      }
    }),
  );
  return { times, perSecond: (times.length * 1_000) / (performance.now() - started) };
}

/** Opens `count` connections, OPENING at a time; `open(i)` resolves once connection i is usable. */
async function openAll<T>(count: number, open: (index: number) => Promise<T>): Promise<{ items: T[]; seconds: number }> {
  const items: T[] = new Array(count);
  const started = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(OPENING, count) }, async () => {
      while (next < count) {
        const index = next++;
        items[index] = await open(index);
      }
    }),
  );
  return { items, seconds: (performance.now() - started) / 1_000 };
}

async function settle(): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, 2_000));
}

/** A user, an organization allowed BOXES boxes, and the boxes with their keys. */
async function createBoxes(rootUrl: string, count: number): Promise<{ token: string; boxes: Box[] }> {
  const client = new pg.Client({ connectionString: rootUrl });
  await client.connect();
  try {
    await client.query("begin");
    const registered = await client.query<{ user_id: string; token: string }>(
      "select user_id, token from app_public.register($1, 'bench password 123', $2, 'Bench')",
      [`bench-${randomUUID()}@example.com`, `bench_${randomUUID().slice(0, 8)}`],
    );
    const user = registered.rows[0];
    if (user === undefined) throw new Error("register returned nothing");
    const organization = await client.query<{ id: string }>(
      "select organization_id as id from app_public.organization_memberships where user_id = $1",
      [user.user_id],
    );
    const organizationId = organization.rows[0]?.id;
    await client.query("update app_public.organization_limits set max_boxes = $2 where organization_id = $1", [organizationId, count]);
    await client.query(
      "insert into app_public.boxes (organization_id, name) select $1, 'bench-' || i from generate_series(1, $2) i",
      [organizationId, count],
    );
    const keys = await client.query<{ id: string; key: string }>(
      `select b.id, (app_private.issue_box_key(b.id, 'bench', null, null)).api_key as key
       from app_public.boxes b where b.organization_id = $1 order by b.name`,
      [organizationId],
    );
    await client.query("commit");
    return { token: user.token, boxes: keys.rows };
  } finally {
    await client.end();
  }
}

/** A box connection that answers every command at once (ack + result) and reports receipts. */
function boxSocket(url: string, box: Box, onCommand: (id: string) => void, onReceipt: (id: string) => void): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, {
      headers: { authorization: `Bearer ${box.key}`, [HARDWARE_ID_HEADER]: `bench-${box.id}` },
      perMessageDeflate: false,
    });
    ws.once("error", reject);
    ws.once("open", () => ws.send(JSON.stringify({ type: "hello", protocols: [1] })));
    ws.on("message", (data: Buffer) => {
      const frame = JSON.parse(data.toString()) as { type: string; id?: string; commands?: Array<{ id: string }> };
      if (frame.type === "welcome") return resolve(ws);
      const commands = frame.type === "command" ? [frame as { id: string }] : frame.type === "batch" ? (frame.commands ?? []) : [];
      for (const { id } of commands) {
        onCommand(id);
        ws.send(JSON.stringify({ type: "ack", id }));
        ws.send(JSON.stringify({ type: "result", id, success: true, response: { ok: true } }));
      }
      if (frame.type === "receipt" && frame.id !== undefined) onReceipt(frame.id);
    });
  });
}

/** Rendezvous of command ids: whichever side comes first waits for the other. */
class Arrivals {
  private readonly seen = new Map<string, number>();
  private readonly waiting = new Map<string, (at: number) => void>();

  arrived(id: string): void {
    const at = performance.now();
    const waiter = this.waiting.get(id);
    if (waiter === undefined) this.seen.set(id, at);
    else {
      this.waiting.delete(id);
      waiter(at);
    }
  }

  wait(id: string): Promise<number> {
    const at = this.seen.get(id);
    if (at !== undefined) {
      this.seen.delete(id);
      return Promise.resolve(at);
    }
    return new Promise((resolve) => this.waiting.set(id, resolve));
  }
}

async function benchBridge(context: BenchContext): Promise<Side & { deliveries: number[] }> {
  const { db, note } = context;
  note(`creating ${BOXES} boxes`);
  const { token, boxes } = await createBoxes(db.rootDatabaseUrl, BOXES);
  const port = await freePort();
  const proc: AgentplaneProcess = startProcess({
    NODE_ENV: "production",
    DATABASE_URL: db.database.ownerUrl,
    AUTH_DATABASE_URL: db.database.authUrl,
    DATABASE_VISITOR: db.visitorRole,
    MIGRATE_ON_START: "false",
    PORT: String(port),
    // Production mode wants a key for channel secrets; the benchmark stores none.
    ENCRYPTION_KEY: randomBytes(32).toString("base64"),
    // The benchmark measures the bridge: the command rate limits (which would stop it at 100 a minute) are off.
    BOX_COMMANDS_PER_MINUTE: "0",
    ORGANIZATION_COMMANDS_PER_HOUR: "0",
    BRIDGE_FRAMES_PER_MINUTE: "10000000",
  }, ["--only", "api,bridge"]);
  try {
    await proc.waitForLog((line) => line.msg === "agentplane is listening");
    const pid = proc.child.pid as number;
    const bridgeUrl = `ws://127.0.0.1:${port}/bridge`;
    const graphqlUrl = `http://127.0.0.1:${port}/graphql`;
    const commands = new Arrivals();
    const receipts = new Arrivals();
    const send = async (boxId: string): Promise<string> => {
      const response = await fetch(graphqlUrl, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
        body: JSON.stringify({
          query: "mutation ($boxId: UUID!) { sendBoxCommand(input: { boxId: $boxId, commandType: \"system.ping\" }) { result { rowId } } }",
          variables: { boxId },
        }),
      });
      const body = (await response.json()) as { data?: { sendBoxCommand?: { result: { rowId: string } } }; errors?: unknown };
      const id = body.data?.sendBoxCommand?.result.rowId;
      if (id === undefined) throw new Error(`sendBoxCommand: ${JSON.stringify(body.errors)}`);
      return id;
    };
    const deliveries: number[] = [];
    const roundTrip = async (box: Box) => {
      const t0 = performance.now();
      const id = await send(box.id);
      deliveries.push((await commands.wait(id)) - t0);
      await receipts.wait(id);
    };

    // Warm up the API and the bridge, then measure the process before the boxes connect.
    const first = await boxSocket(bridgeUrl, boxes[0] as Box, (id) => commands.arrived(id), (id) => receipts.arrived(id));
    for (let i = 0; i < 50; i++) await roundTrip(boxes[0] as Box);
    first.close();
    await settle();
    const before = await residentBytes(pid);
    note(`connecting ${BOXES} boxes`);
    const { items: sockets, seconds } = await openAll(BOXES, (index) =>
      boxSocket(bridgeUrl, boxes[index] as Box, (id) => commands.arrived(id), (id) => receipts.arrived(id)),
    );
    await settle();
    const after = await residentBytes(pid);
    note(`${ROUND_TRIPS} round trips, one at a time`);
    deliveries.length = 0;
    const sequential = await sequentialLoop(ROUND_TRIPS, (i) => roundTrip(boxes[i % BOXES] as Box));
    const sequentialDeliveries = deliveries.splice(0);
    note(`${CONCURRENCY} at once for ${SECONDS} s`);
    const concurrent = await concurrentLoop(CONCURRENCY, SECONDS, (lane) => roundTrip(boxes[lane % BOXES] as Box));
    for (const socket of sockets) socket.terminate();
    return { connectSeconds: seconds, bytesPerConnection: (after - before) / BOXES, sequential, concurrent, deliveries: sequentialDeliveries };
  } finally {
    await proc.stop();
  }
}

async function benchEcho(context: BenchContext): Promise<Side> {
  const server = spawn(process.execPath, [path.join(PROJECT_ROOT, "bench/echo-server.ts")], { stdio: ["ignore", "pipe", "inherit"] });
  try {
    const port = await new Promise<number>((resolve) => server.stdout.once("data", (chunk: Buffer) => resolve(Number(chunk.toString().trim()))));
    const url = `ws://127.0.0.1:${port}`;
    const echoes = new Arrivals();
    const open = () =>
      new Promise<WebSocket>((resolve, reject) => {
        const ws = new WebSocket(url, { perMessageDeflate: false });
        ws.once("error", reject);
        ws.once("open", () => resolve(ws));
        ws.on("message", (data: Buffer) => echoes.arrived((JSON.parse(data.toString()) as { id: string }).id));
      });
    const roundTrip = async (ws: WebSocket) => {
      const id = randomUUID();
      ws.send(JSON.stringify({ type: "command", id, command_type: "system.ping", payload: {}, timeout_ms: 60_000, sent_at: new Date().toISOString() }));
      await echoes.wait(id);
    };
    const warm = await open();
    for (let i = 0; i < 50; i++) await roundTrip(warm);
    await settle();
    const before = await residentBytes(server.pid as number);
    context.note(`echo server: connecting ${BOXES}`);
    const { items: sockets, seconds } = await openAll(BOXES, () => open());
    await settle();
    const after = await residentBytes(server.pid as number);
    const sequential = await sequentialLoop(ROUND_TRIPS, (i) => roundTrip(sockets[i % BOXES] as WebSocket));
    const concurrent = await concurrentLoop(CONCURRENCY, SECONDS, (lane) => roundTrip(sockets[lane % BOXES] as WebSocket));
    for (const socket of [...sockets, warm]) socket.terminate();
    return { connectSeconds: seconds, bytesPerConnection: (after - before) / BOXES, sequential, concurrent };
  } finally {
    server.kill("SIGTERM");
  }
}

export const bridgeBench: BenchPart = {
  name: "bridge",
  async run(context) {
    const limit = (await promisify(execFile)("sh", ["-c", "ulimit -n"])).stdout.trim();
    const bridge = await benchBridge(context);
    const echo = await benchEcho(context);
    const kb = (bytes: number) => `${(bytes / 1024).toFixed(1)} KiB`;
    const loopRows = (label: string, loop: Loop, baseline: Loop): Array<[string, string]> => [
      [`${label} p50`, `${ms(percentile(loop.times, 50))}  (echo ${ms(percentile(baseline.times, 50))}, ×${(percentile(loop.times, 50) / percentile(baseline.times, 50)).toFixed(1)})`],
      [`${label} p99`, `${ms(percentile(loop.times, 99))}  (echo ${ms(percentile(baseline.times, 99))}, ×${(percentile(loop.times, 99) / percentile(baseline.times, 99)).toFixed(1)})`],
      [`${label} per second`, `${loop.perSecond.toFixed(0)}  (echo ${baseline.perSecond.toFixed(0)}, ×${(baseline.perSecond / loop.perSecond).toFixed(1)} fewer)`],
    ];
    context.table(`connections (open files limit ${limit})`, [
      ["boxes held by one process", `${BOXES}`],
      ["time to connect them", `${bridge.connectSeconds.toFixed(1)} s (${(BOXES / bridge.connectSeconds).toFixed(0)}/s; echo ${echo.connectSeconds.toFixed(1)} s)`],
      ["memory per connection", `${kb(bridge.bytesPerConnection)}  (echo ${kb(echo.bytesPerConnection)}, ×${(bridge.bytesPerConnection / echo.bytesPerConnection).toFixed(1)})`],
    ]);
    context.table(`command round trip: API → box → result stored (${ROUND_TRIPS} one at a time; ${CONCURRENCY} at once for ${SECONDS} s)`, [
      ["API → box (command received), one at a time, p50", ms(percentile(bridge.deliveries, 50))],
      ["API → box (command received), one at a time, p99", ms(percentile(bridge.deliveries, 99))],
      ...loopRows("one at a time", bridge.sequential, echo.sequential),
      ...loopRows(`${CONCURRENCY} at once`, bridge.concurrent, echo.concurrent),
    ]);
  },
};
