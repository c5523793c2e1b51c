/**
 * Real bridge processes (`node src/main.ts`): two instances sharing the work
 * through a real Redis; a bridge killed with commands in flight (nothing
 * lost, nothing stuck); the crash sweep.
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, realpath, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "@jest/globals";
import { Redis } from "ioredis";
import { CLOSE_CODES } from "../../src/bridge/protocol.ts";
import { BoxClient } from "../../src/box/client.ts";
import { openBoxSocket } from "../helpers/box-socket.ts";
import { eventually } from "../helpers/wait.ts";
import { allowBoxes, createCommittedBox, type TestBox } from "../helpers/boxes.ts";
import { pool } from "../helpers/db.ts";
import { createCommittedUser, removeUser, type TestUser } from "../helpers/identity.ts";
import { freePort } from "../helpers/net.ts";
import { startProcess, type AgentplaneProcess } from "../helpers/process.ts";
import { testDatabase } from "../setup/test-database.ts";

const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";

interface Running {
  proc: AgentplaneProcess;
  url: string;
  instanceId: string;
}

describe("bridge processes", () => {
  const running = new Set<AgentplaneProcess>();
  const clients: BoxClient[] = [];
  let owner: TestUser;
  let root: string;
  let redis: Redis;
  const prefix = `agentplane-test-${randomBytes(4).toString("hex")}:`;

  beforeAll(async () => {
    owner = await createCommittedUser();
    await allowBoxes(owner.organizationId, 20);
    root = await realpath(await mkdtemp(path.join(tmpdir(), "agentplane-box-root-")));
    redis = new Redis(REDIS_URL);
  });

  afterAll(async () => {
    await Promise.all(clients.map((client) => client.stop()));
    await Promise.all([...running].map((proc) => proc.stop("SIGKILL")));
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length > 0) await redis.del(...keys);
    redis.disconnect();
    await removeUser(owner);
    await rm(root, { recursive: true, force: true });
  });

  async function start(parts: string, env: Record<string, string> = {}, port?: number): Promise<Running> {
    const { database, visitorRole } = testDatabase();
    const proc = startProcess(
      {
        DATABASE_URL: database.ownerUrl,
        AUTH_DATABASE_URL: database.authUrl,
        DATABASE_VISITOR: visitorRole,
        PORT: String(port ?? (await freePort())),
        BRIDGE_HEARTBEAT_INTERVAL_MS: "300",
        BRIDGE_PRESENCE_FLUSH_MS: "200",
        ...env,
      },
      ["--only", parts],
    );
    running.add(proc);
    const listening = await proc.waitForLog((line) => line.msg === "agentplane is listening");
    const started = parts.includes("bridge") ? await proc.waitForLog((line) => line.msg === "bridge started") : { instanceId: "" };
    return { proc, url: String(listening.bridge ?? listening.graphql).replace(/\/(bridge|graphql)$/, ""), instanceId: String(started.instanceId) };
  }

  function referenceBox(box: TestBox, bridgeUrl: string): BoxClient {
    const client = new BoxClient({
      url: bridgeUrl,
      key: box.apiKey,
      hardwareId: `hw-${box.id}`,
      root,
      backoff: { initialMs: 50, maxMs: 300 },
    });
    clients.push(client);
    return client.start();
  }

  async function graphql(httpUrl: string, query: string, variables: Record<string, unknown>) {
    const response = await fetch(`${httpUrl.replace(/^ws/, "http")}/graphql`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${owner.token}` },
      body: JSON.stringify({ query, variables }),
    });
    return (await response.json()) as { data?: Record<string, { result: { rowId: string } }>; errors?: unknown[] };
  }

  async function send(httpUrl: string, boxId: string, commandType: string, payload: Record<string, unknown>): Promise<string> {
    const response = await graphql(
      httpUrl,
      `mutation ($boxId: UUID!, $commandType: String!, $payload: JSON) {
         sendBoxCommand(input: { boxId: $boxId, commandType: $commandType, payload: $payload }) { result { rowId } } }`,
      { boxId, commandType, payload },
    );
    const id = response.data?.sendBoxCommand?.result.rowId;
    if (id === undefined) throw new Error(JSON.stringify(response.errors));
    return id;
  }

  async function statuses(ids: string[]): Promise<string[]> {
    const { rows } = await pool("root").query<{ id: string; status: string }>(
      "select id, status from app_public.box_commands where id = any($1)",
      [ids],
    );
    const byId = new Map(rows.map((row) => [row.id, row.status]));
    return ids.map((id) => byId.get(id) ?? "missing");
  }

  test("two instances with Redis: a command written through one reaches the box on the other; a new connection on one closes the old one on the other at once", async () => {
    const redisEnv = { REDIS_URL, REDIS_KEY_PREFIX: prefix, BRIDGE_PRESENCE_FLUSH_MS: "60000" };
    const api = await start("api,bridge", redisEnv);
    const other = await start("bridge", redisEnv);
    const box = await createCommittedBox(owner);

    const client = referenceBox(box, `${other.url.replace(/^http/, "ws")}/bridge`);
    await new Promise((resolve) => client.once("welcome", resolve));
    expect(await redis.get(`${prefix}box:${box.id}`)).toMatch(new RegExp(`^${other.instanceId} \\d+$`));

    const id = await send(api.url, box.id, "bash.exec", { command: "echo routed" });
    await eventually(async () => (await statuses([id]))[0] === "succeeded");
    const { rows } = await pool("root").query("select stdout from app_public.box_commands where id = $1", [id]);
    expect(rows[0].stdout).toBe("routed\n");

    // The same box connects to the first instance: the second closes its connection at once (Redis), not at its next flush (60 s).
    const closed = new Promise<number>((resolve) => client.once("disconnected", ({ code }) => resolve(code)));
    const takeover = await openBoxSocket(`${api.url.replace(/^http/, "ws")}/bridge`, { key: box.apiKey, hardwareId: `hw-${box.id}` });
    const started = performance.now();
    await takeover.hello();
    expect(await closed).toBe(CLOSE_CODES.replaced);
    expect(performance.now() - started).toBeLessThan(5_000);
    expect(await redis.get(`${prefix}box:${box.id}`)).toMatch(new RegExp(`^${api.instanceId} `));
    takeover.close();
    await api.proc.stop();
    await other.proc.stop();
  }, 60_000);

  test("a bridge killed with commands in flight: the box reconnects to the next one, nothing is lost and nothing stuck", async () => {
    const port = await freePort();
    const first = await start("api,bridge", {}, port);
    const box = await createCommittedBox(owner);
    const client = referenceBox(box, `${first.url.replace(/^http/, "ws")}/bridge`);
    await new Promise((resolve) => client.once("welcome", resolve));

    // Running when the bridge dies (their results come after), and queued behind them.
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push(await send(first.url, box.id, "bash.exec", { command: `sleep 0.6; echo slow${i}` }));
    await eventually(async () => (await statuses(ids)).every((status) => status === "acked"));
    first.proc.child.kill("SIGKILL");
    await first.proc.exited;
    const offlineQueue = await pool("root").query<{ id: string }>(
      "select id from app_private.queue_box_command($1, 'system.ping', '{}', 'system')",
      [box.id],
    );
    ids.push(offlineQueue.rows[0]?.id as string);

    await start("api,bridge", {}, port);
    await eventually(async () => (await statuses(ids)).every((status) => status === "succeeded"), 20_000);
    const { rows } = await pool("root").query<{ stdout: string }>(
      "select stdout from app_public.box_commands where id = any($1) and command_type = 'bash.exec' order by stdout",
      [ids],
    );
    expect(rows.map((row) => row.stdout)).toEqual(["slow0\n", "slow1\n", "slow2\n"]);
  }, 60_000);

  test("after a bridge crash, the worker's sweep marks the boxes it held offline", async () => {
    const bridge = await start("bridge", { BRIDGE_HEARTBEAT_INTERVAL_MS: "200" });
    const box = await createCommittedBox(owner);
    const socket = await openBoxSocket(`${bridge.url.replace(/^http/, "ws")}/bridge`, { key: box.apiKey, hardwareId: `hw-${box.id}` });
    await socket.hello();
    bridge.proc.child.kill("SIGKILL");
    await bridge.proc.exited;
    const { rows } = await pool("root").query("select status from app_public.boxes where id = $1", [box.id]);
    expect(rows[0].status).toBe("online");

    const worker = startProcess(
      {
        DATABASE_URL: testDatabase().database.ownerUrl,
        AUTH_DATABASE_URL: testDatabase().database.authUrl,
        DATABASE_VISITOR: testDatabase().visitorRole,
      },
      ["--only", "worker"],
    );
    running.add(worker);
    await worker.waitForLog((line) => line.msg === "started");
    // Three heartbeat intervals (600 ms) after the crash, the sweep (every minute; here asked for now) finds the instance dead.
    await new Promise((resolve) => setTimeout(resolve, 700));
    await pool("owner").query("select graphile_worker.add_job('box_presence_sweep')");
    await eventually(async () => {
      const result = await pool("root").query("select status from app_public.boxes where id = $1", [box.id]);
      return result.rows[0].status === "offline";
    });
    await worker.stop();
  }, 60_000);
});
