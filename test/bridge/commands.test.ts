/**
 * Commands through the real bridge: GraphQL → database → bridge → box →
 * result stored; offline queues, time-outs, cancel, duplicate and late
 * results, redelivery, slow consumers, rate limits, and tenancy.
 */
import { mkdtemp, realpath, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "@jest/globals";
import { CLOSE_CODES, type CommandFrame } from "../../src/bridge/protocol.ts";
import { BoxClient } from "../../src/box/client.ts";
import { cancelCommand, getCommand, sendBoxCommand, sendOk, type CommandRow } from "../helpers/box-api.ts";
import { bridgeUrl, openBoxSocket, type BoxSocket } from "../helpers/box-socket.ts";
import { eventually } from "../helpers/wait.ts";
import { allowBoxes, createCommittedBox, type TestBox } from "../helpers/boxes.ts";
import { pool } from "../helpers/db.ts";
import { createCommittedUser, removeUser, type TestUser } from "../helpers/identity.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";

// Hooks inside the describe run before the pools are closed (test/setup/after-env.ts).
describe("commands through the bridge", () => {
  let server: TestServer;
  let url: string;
  let owner: TestUser;
  let outsider: TestUser;
  let root: string;
  const clients: BoxClient[] = [];

  beforeAll(async () => {
    server = await startTestServer({
      env: {
        BRIDGE_HEARTBEAT_INTERVAL_MS: "1000",
        BRIDGE_PRESENCE_FLUSH_MS: "200",
        BRIDGE_MAX_BUFFERED_BYTES: "65536",
        BOX_COMMANDS_PER_MINUTE: "40",
      },
    });
    url = bridgeUrl(server.url);
    owner = await createCommittedUser();
    outsider = await createCommittedUser();
    await allowBoxes(owner.organizationId, 50);
    root = await realpath(await mkdtemp(path.join(tmpdir(), "agentplane-box-root-")));
  });

  afterAll(async () => {
    await Promise.all(clients.map((client) => client.stop()));
    await server.close();
    await removeUser(owner);
    await removeUser(outsider);
    await rm(root, { recursive: true, force: true });
  });

  async function referenceBox(box: TestBox): Promise<BoxClient> {
    const client = new BoxClient({ url, key: box.apiKey, hardwareId: `hw-${box.id}`, root, backoff: { initialMs: 50, maxMs: 200 } });
    clients.push(client);
    client.start();
    await new Promise((resolve) => client.once("welcome", resolve));
    return client;
  }

  async function rawBox(box: TestBox): Promise<BoxSocket> {
    const socket = await openBoxSocket(url, { key: box.apiKey, hardwareId: `hw-${box.id}` });
    await socket.hello();
    return socket;
  }

  /** The next command sent to a raw box, alone or in a batch. */
  async function nextCommands(socket: BoxSocket): Promise<CommandFrame[]> {
    const frame = await Promise.race([socket.next("command"), socket.next("batch")]);
    return frame.type === "batch" ? frame.commands : [frame];
  }

  function finished(id: string, token = owner.token): Promise<CommandRow> {
    return eventually(async () => {
      const command = await getCommand(server, token, id);
      return command !== null && !["queued", "sent", "acked"].includes(command.status) ? command : undefined;
    });
  }

  test("an online box gets a command at once and its result is stored", async () => {
    const box = await createCommittedBox(owner);
    await referenceBox(box);
    const id = await sendOk(server, owner.token, box.id, "system.ping");
    const command = await finished(id);
    expect(command).toMatchObject({ status: "succeeded", errorCode: null, deliveryCount: 1, response: { pong: true } });
  });

  test("bash.exec streams its output into the command; file commands stay inside the root", async () => {
    const box = await createCommittedBox(owner);
    await referenceBox(box);
    const exec = await sendOk(server, owner.token, box.id, "bash.exec", {
      command: "for i in 1 2 3; do echo line$i; sleep 0.05; done; echo oops >&2; exit 4",
      timeout_ms: 5_000,
    });
    expect(await finished(exec)).toMatchObject({
      status: "failed",
      errorCode: "EXEC_ERROR",
      exitCode: 4,
      stdout: "line1\nline2\nline3\n",
      stderr: "oops\n",
    });
    const write = await sendOk(server, owner.token, box.id, "file.write", { path: "notes/a.txt", content: "hi", create_dirs: true });
    expect(await finished(write)).toMatchObject({ status: "succeeded", response: { size: 2 } });
    const read = await sendOk(server, owner.token, box.id, "file.read", { path: "notes/a.txt" });
    expect(await finished(read)).toMatchObject({ status: "succeeded", response: { content: "hi" } });
    const escape = await sendOk(server, owner.token, box.id, "file.read", { path: "../../etc/passwd" });
    expect(await finished(escape)).toMatchObject({ status: "failed", errorCode: "PERMISSION_DENIED" });
    const unknown = await sendOk(server, owner.token, box.id, "browser.navigate", { url: "https://example.com" });
    expect(await finished(unknown)).toMatchObject({ status: "failed", errorCode: "UNKNOWN_COMMAND" });
  });

  test("commands sent while the box is offline arrive in order, in batches of 10, when it connects", async () => {
    const box = await createCommittedBox(owner);
    const ids: string[] = [];
    for (let i = 0; i < 13; i++) ids.push(await sendOk(server, owner.token, box.id, "system.ping", { n: i }));
    const socket = await rawBox(box);
    const first = await nextCommands(socket);
    const second = await nextCommands(socket);
    expect(first).toHaveLength(10);
    expect([...first, ...second].map((command) => command.id)).toEqual(ids);
    for (const command of [...first, ...second]) {
      socket.send({ type: "ack", id: command.id });
      socket.send({ type: "result", id: command.id, success: true, response: { n: command.payload.n } });
    }
    for (const [index, id] of ids.entries()) expect(await finished(id)).toMatchObject({ status: "succeeded", response: { n: index } });
    socket.close();
  });

  test("no result within the time-out: timed_out, the box is told to stop, and a late result changes nothing", async () => {
    const box = await createCommittedBox(owner);
    const socket = await rawBox(box);
    const id = await sendOk(server, owner.token, box.id, "system.status", {}, 300);
    const [command] = await nextCommands(socket);
    socket.send({ type: "ack", id });
    expect(command?.timeout_ms).toBe(300);
    expect(await socket.next("cancel", 5_000)).toEqual({ type: "cancel", id, reason: "timed_out" });
    expect(await finished(id)).toMatchObject({ status: "timed_out", errorCode: "TIMEOUT" });
    socket.send({ type: "result", id, success: true });
    expect(await socket.next("receipt")).toEqual({ type: "receipt", id, recorded: false, status: "timed_out" });
    socket.close();
  });

  test("cancel stops a running command on the box; its result comes too late", async () => {
    const box = await createCommittedBox(owner);
    const client = await referenceBox(box);
    const id = await sendOk(server, owner.token, box.id, "bash.exec", { command: "sleep 20", timeout_ms: 30_000 });
    await eventually(async () => (await getCommand(server, owner.token, id))?.status === "acked");
    const receipts: unknown[] = [];
    client.on("frame", (frame) => frame.type === "receipt" && receipts.push(frame));
    const canceled = await cancelCommand(server, owner.token, id);
    expect(canceled.data?.cancelBoxCommand?.result).toMatchObject({ status: "canceled", errorCode: "CANCELED" });
    await eventually(async () => receipts.length > 0 && receipts);
    expect(receipts).toEqual([{ type: "receipt", id, recorded: false, status: "canceled" }]);
    expect(await getCommand(server, owner.token, id)).toMatchObject({ status: "canceled", error: "canceled by a user" });
  });

  test("a duplicate result gets a receipt but is not recorded twice", async () => {
    const box = await createCommittedBox(owner);
    const socket = await rawBox(box);
    const id = await sendOk(server, owner.token, box.id, "system.ping");
    await nextCommands(socket);
    socket.send({ type: "result", id, success: true, response: { first: true } });
    socket.send({ type: "result", id, success: false, error_code: "EXEC_ERROR", response: { second: true } });
    expect(await socket.next("receipt")).toEqual({ type: "receipt", id, recorded: true, status: "succeeded" });
    expect(await socket.next("receipt")).toEqual({ type: "receipt", id, recorded: false, status: "succeeded" });
    expect(await getCommand(server, owner.token, id)).toMatchObject({ status: "succeeded", response: { first: true } });
    const { rows } = await pool("root").query("select count(*)::int as n from app_public.box_commands where box_id = $1", [box.id]);
    expect(rows[0].n).toBe(1);
    socket.close();
  });

  test("a command sent but not acknowledged when the connection drops is sent again on the next one", async () => {
    const box = await createCommittedBox(owner);
    const first = await rawBox(box);
    const id = await sendOk(server, owner.token, box.id, "system.ping");
    await nextCommands(first);
    first.ws.terminate();
    await eventually(async () => (await getCommand(server, owner.token, id))?.status === "queued");
    const second = await rawBox(box);
    const [again] = await nextCommands(second);
    expect(again?.id).toBe(id);
    second.send({ type: "ack", id });
    second.send({ type: "result", id, success: true });
    expect(await finished(id)).toMatchObject({ status: "succeeded", deliveryCount: 2 });
    second.close();
  });

  test("a command whose wake-up was missed is delivered at the next presence flush", async () => {
    const box = await createCommittedBox(owner);
    const socket = await rawBox(box);
    const client = await pool("root").connect();
    let id: string;
    try {
      // Triggers off: the row is written without its NOTIFY, as if the wake-up had been lost.
      await client.query("begin");
      await client.query("set local session_replication_role = replica");
      const { rows } = await client.query("select id from app_private.queue_box_command($1, 'system.ping', '{}', 'system')", [box.id]);
      id = rows[0].id;
      await client.query("commit");
    } finally {
      client.release();
    }
    const [command] = await nextCommands(socket);
    expect(command?.id).toBe(id);
    socket.close();
  });

  test("a box that does not read what it is sent is disconnected (4004), not allowed to grow memory", async () => {
    const box = await createCommittedBox(owner);
    const socket = await rawBox(box);
    // The box stops reading; large commands pile up on the bridge's side.
    (socket.ws as unknown as { _socket: { pause(): void } })._socket.pause();
    const padding = "x".repeat(200_000);
    for (let i = 0; i < 40; i++) {
      await pool("root").query("select app_private.queue_box_command($1, 'file.write', $2, 'system')", [
        box.id,
        JSON.stringify({ path: `f${i}`, content: padding }),
      ]);
    }
    await eventually(async () => {
      const { rows } = await pool("root").query("select status from app_public.boxes where id = $1", [box.id]);
      return rows[0].status === "offline";
    }, 20_000);
    (socket.ws as unknown as { _socket: { resume(): void } })._socket.resume();
    // The close frame waits behind everything the box did not read: it usually sees the connection drop (1006).
    expect([CLOSE_CODES.slowConsumer, 1006]).toContain((await socket.closed).code);
    expect(server.bridge.connectionCount()).toBeLessThan(10);
  }, 30_000);

  test("sendBoxCommand beyond the per-box rate limit fails with RATE_LIMIT_EXCEEDED details", async () => {
    const box = await createCommittedBox(owner);
    for (let i = 0; i < 40; i++) await sendOk(server, owner.token, box.id, "system.ping");
    const response = await sendBoxCommand(server, owner.token, box.id, "system.ping");
    expect(response.errors?.[0]?.message).toMatch(/rate limit exceeded: at most 40 commands a minute per box/);
    expect(response.errors?.[0]?.extensions).toMatchObject({ code: "RATEL", retry_after_seconds: expect.any(Number) });
  });

  test("another organization can neither see nor command the box", async () => {
    const box = await createCommittedBox(owner);
    const id = await sendOk(server, owner.token, box.id, "system.ping");
    const send = await sendBoxCommand(server, outsider.token, box.id, "bash.exec", { command: "id" });
    expect(send.errors?.[0]?.extensions).toMatchObject({ code: "NTFND" });
    expect((await cancelCommand(server, outsider.token, id)).errors?.[0]?.extensions).toMatchObject({ code: "NTFND" });
    expect(await getCommand(server, outsider.token, id)).toBeNull();
    const boxes = await server.graphql<{ boxes: { nodes: Array<{ rowId: string }> } }>(
      "{ boxes { nodes { rowId } } }",
      {},
      { token: outsider.token },
    );
    expect(boxes.data?.boxes.nodes.map((node) => node.rowId)).not.toContain(box.id);
    expect(await getCommand(server, owner.token, id)).toMatchObject({ status: "queued" });
    const { rows } = await pool("root").query("select count(*)::int as n from app_public.box_commands where box_id = $1", [box.id]);
    expect(rows[0].n).toBe(1);
  });
});
