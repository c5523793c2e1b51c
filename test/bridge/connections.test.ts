/**
 * The bridge's connections, on a real server with real WebSockets: who gets
 * in before the upgrade, hardware binding, hello/welcome, one connection per
 * box, liveness, revocation, and frames that break the rules.
 */
import { afterAll, beforeAll, describe, expect, test } from "@jest/globals";
import WebSocket from "ws";
import { CLOSE_CODES } from "../../src/bridge/protocol.ts";
import { allowBoxes, createCommittedBox, type TestBox } from "../helpers/boxes.ts";
import { bridgeUrl, openBoxSocket, refusal } from "../helpers/box-socket.ts";
import { eventually } from "../helpers/wait.ts";
import { pool } from "../helpers/db.ts";
import { createCommittedUser, removeUser, type TestUser } from "../helpers/identity.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";

// Hooks inside the describe run before the pools are closed (test/setup/after-env.ts).
describe("the bridge", () => {
  let server: TestServer;
  let url: string;
  let owner: TestUser;

  beforeAll(async () => {
    server = await startTestServer({
      env: {
        BRIDGE_HEARTBEAT_INTERVAL_MS: "200",
        BRIDGE_PRESENCE_FLUSH_MS: "100",
        BRIDGE_HELLO_TIMEOUT_MS: "400",
        BRIDGE_MAX_FRAME_BYTES: "16384",
        BRIDGE_FRAMES_PER_MINUTE: "30",
        BRIDGE_MAX_VIOLATIONS: "5",
      },
    });
    url = bridgeUrl(server.url);
    owner = await createCommittedUser();
    await allowBoxes(owner.organizationId, 50);
  });

  afterAll(async () => {
    await server.close();
    await removeUser(owner);
  });

  async function newBox(): Promise<TestBox> {
    return createCommittedBox(owner);
  }

  async function boxRow(id: string): Promise<{ status: string; hardware_id: string | null; last_seen_at: Date | null }> {
    const { rows } = await pool("root").query("select status, hardware_id, last_seen_at from app_public.boxes where id = $1", [id]);
    return rows[0];
  }

  describe("before the upgrade", () => {
    test("no key, a malformed or unknown key: 401 UNAUTHORIZED with WWW-Authenticate, no upgrade", async () => {
      for (const key of [undefined, "not-a-key", "box_" + "A".repeat(43)]) {
        const refused = await refusal(url, { key, hardwareId: "hw-x" });
        expect(refused.status).toBe(401);
        expect(refused.body.error).toBe("UNAUTHORIZED");
        expect(refused.headers["www-authenticate"]).toMatch(/^Bearer/);
      }
    });

    test("a key in the query string is ignored", async () => {
      const box = await newBox();
      const refused = await refusal(`${url}?key=${box.apiKey}&token=${box.apiKey}`, { hardwareId: "hw-query" });
      expect(refused.status).toBe(401);
      expect((await boxRow(box.id)).hardware_id).toBeNull();
    });

    test("a missing or malformed hardware id: 401 HARDWARE_ID_REQUIRED", async () => {
      const box = await newBox();
      expect((await refusal(url, { key: box.apiKey })).body.error).toBe("HARDWARE_ID_REQUIRED");
      expect((await refusal(url, { key: box.apiKey, hardwareId: "has space" })).body.error).toBe("HARDWARE_ID_REQUIRED");
    });

    test("revoked, expired, and rotated-past-grace keys: 401", async () => {
      const root = pool("root");
      const revoked = await newBox();
      await root.query("update app_public.box_api_keys set revoked_at = now() where id = $1", [revoked.keyId]);
      const expired = await newBox();
      await root.query("update app_public.box_api_keys set expires_at = now() - interval '1 second' where id = $1", [expired.keyId]);
      const rotated = await newBox();
      const { rows } = await root.query(
        `select api_key from app_private.issue_box_key($1, 'new', null, null)`,
        [rotated.id],
      );
      await root.query("update app_public.box_api_keys set expires_at = now() - interval '1 second', replaced_by = (select id from app_public.box_api_keys where box_id = $1 and name = 'new') where id = $2", [
        rotated.id,
        rotated.keyId,
      ]);
      for (const key of [revoked.apiKey, expired.apiKey, rotated.apiKey]) {
        const refused = await refusal(url, { key, hardwareId: `hw-${key.slice(4, 12)}` });
        expect(refused.status).toBe(401);
        expect(refused.body.error).toBe("UNAUTHORIZED");
      }
      const socket = await openBoxSocket(url, { key: rows[0].api_key, hardwareId: "hw-rotated" });
      expect((await socket.hello()).box_id).toBe(rotated.id);
      socket.close();
    });

    test("the hardware id is bound on first connect; another one is refused with 403", async () => {
      const box = await newBox();
      const first = await openBoxSocket(url, { key: box.apiKey, hardwareId: "machine-1" });
      await first.hello();
      first.close();
      expect((await boxRow(box.id)).hardware_id).toBe("machine-1");
      const refused = await refusal(url, { key: box.apiKey, hardwareId: "machine-2" });
      expect(refused.status).toBe(403);
      expect(refused.body.error).toBe("HARDWARE_ID_MISMATCH");
      const other = await newBox();
      expect((await refusal(url, { key: other.apiKey, hardwareId: "machine-1" })).body.error).toBe("HARDWARE_ID_IN_USE");
    });
  });

  describe("the connection", () => {
    test("hello gets a welcome with the limits; the box goes online, then offline when it leaves", async () => {
      const box = await newBox();
      const socket = await openBoxSocket(url, { key: box.apiKey, hardwareId: `hw-${box.id}` });
      const welcome = await socket.hello([1, 7]);
      expect(welcome).toMatchObject({
        protocol: 1,
        box_id: box.id,
        heartbeat_interval_ms: 200,
        max_frame_bytes: 16_384,
        max_batch_size: 10,
        limits: { frames_per_minute: 30 },
      });
      expect(await boxRow(box.id)).toMatchObject({ status: "online" });
      socket.close();
      await eventually(async () => (await boxRow(box.id)).status === "offline");
    });

    test("no common protocol version: an error frame, then close 4002", async () => {
      const box = await newBox();
      const socket = await openBoxSocket(url, { key: box.apiKey, hardwareId: `hw-${box.id}` });
      socket.send({ type: "hello", protocols: [2, 3] });
      expect(await socket.next("error")).toMatchObject({ code: "PROTOCOL_VERSION_MISMATCH" });
      expect((await socket.closed).code).toBe(CLOSE_CODES.protocolVersionMismatch);
      expect((await boxRow(box.id)).status).toBe("pending");
    });

    test("frames before hello get HELLO_REQUIRED; no hello in time closes with 4005", async () => {
      const box = await newBox();
      const socket = await openBoxSocket(url, { key: box.apiKey, hardwareId: `hw-${box.id}` });
      socket.send({ type: "heartbeat" });
      expect(await socket.next("error")).toMatchObject({ code: "HELLO_REQUIRED" });
      expect((await socket.closed).code).toBe(CLOSE_CODES.helloTimeout);
    });

    test("a new connection replaces the old one (4000), and the old one's close leaves the box online", async () => {
      const box = await newBox();
      const first = await openBoxSocket(url, { key: box.apiKey, hardwareId: `hw-${box.id}` });
      await first.hello();
      const second = await openBoxSocket(url, { key: box.apiKey, hardwareId: `hw-${box.id}` });
      const welcome = await second.hello();
      expect((await first.closed).code).toBe(CLOSE_CODES.replaced);
      // Several presence flushes later, the box is still online: the old close changed nothing.
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect((await boxRow(box.id)).status).toBe("online");
      expect(BigInt(welcome.connection_id)).toBeGreaterThan(0n);
      second.close();
      await eventually(async () => (await boxRow(box.id)).status === "offline");
    });

    test("connection races: of several opened at once, the newest wins and the box ends online", async () => {
      const box = await newBox();
      const sockets = await Promise.all(Array.from({ length: 5 }, () => openBoxSocket(url, { key: box.apiKey, hardwareId: `hw-${box.id}` })));
      const hellos = await Promise.allSettled(sockets.map((socket) => socket.hello()));
      const welcomed = hellos.flatMap((hello, index) => (hello.status === "fulfilled" ? [{ index, seq: BigInt(hello.value.connection_id) }] : []));
      const newest = welcomed.reduce((a, b) => (a.seq > b.seq ? a : b));
      const open = await eventually(async () => {
        const states = sockets.map((socket) => socket.ws.readyState);
        return states.filter((state) => state === WebSocket.OPEN).length === 1 ? states : undefined;
      });
      expect(open[newest.index]).toBe(WebSocket.OPEN);
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect((await boxRow(box.id)).status).toBe("online");
      for (const socket of sockets) socket.close();
      await eventually(async () => (await boxRow(box.id)).status === "offline");
    });

    test("a silent box (no pongs, no frames) is closed after two heartbeat intervals and marked offline", async () => {
      const box = await newBox();
      const socket = await openBoxSocket(url, { key: box.apiKey, hardwareId: `hw-${box.id}`, autoPong: false });
      await socket.hello();
      const started = performance.now();
      await socket.closed;
      expect(performance.now() - started).toBeGreaterThanOrEqual(350);
      await eventually(async () => (await boxRow(box.id)).status === "offline");
    });

    test("a box that answers pings stays connected, and last_seen_at moves", async () => {
      const box = await newBox();
      const socket = await openBoxSocket(url, { key: box.apiKey, hardwareId: `hw-${box.id}` });
      await socket.hello();
      const before = (await boxRow(box.id)).last_seen_at as Date;
      await new Promise((resolve) => setTimeout(resolve, 700));
      expect(socket.ws.readyState).toBe(WebSocket.OPEN);
      const after = (await boxRow(box.id)).last_seen_at as Date;
      expect(after.getTime()).toBeGreaterThan(before.getTime());
      socket.close();
    });

    test("revoking the key or deleting the box disconnects it (4001)", async () => {
      const revoked = await newBox();
      const deleted = await newBox();
      const a = await openBoxSocket(url, { key: revoked.apiKey, hardwareId: `hw-${revoked.id}` });
      const b = await openBoxSocket(url, { key: deleted.apiKey, hardwareId: `hw-${deleted.id}` });
      await Promise.all([a.hello(), b.hello()]);
      await pool("root").query("update app_public.box_api_keys set revoked_at = now() where id = $1", [revoked.keyId]);
      await pool("root").query("delete from app_public.boxes where id = $1", [deleted.id]);
      expect((await a.closed).code).toBe(CLOSE_CODES.unauthorized);
      expect((await b.closed).code).toBe(CLOSE_CODES.unauthorized);
    });
  });

  describe("frames", () => {
    test("malformed frames get error frames and change nothing; the connection carries on", async () => {
      const box = await newBox();
      const socket = await openBoxSocket(url, { key: box.apiKey, hardwareId: `hw-${box.id}` });
      await socket.hello();
      socket.send("{not json");
      expect(await socket.next("error")).toMatchObject({ code: "INVALID_FRAME", message: expect.stringMatching(/not valid JSON/) });
      socket.send({ type: "result", id: "42", success: true });
      expect(await socket.next("error")).toMatchObject({ code: "INVALID_FRAME", message: expect.stringMatching(/malformed/) });
      socket.ws.send(Buffer.from([1, 2, 3]));
      expect(await socket.next("error")).toMatchObject({ code: "INVALID_FRAME", message: expect.stringMatching(/binary/) });
      socket.send({ type: "result", id: crypto.randomUUID(), success: true });
      expect(await socket.next("error")).toMatchObject({ code: "NOT_FOUND" });
      socket.send({ type: "heartbeat", metrics: [{ name: "cpu.percent", value: 3 }] });
      await eventually(async () => {
        const { rows } = await pool("root").query("select value from app_public.metric_samples where box_id = $1", [box.id]);
        return rows.length === 1 && rows[0].value === 3;
      });
      expect(socket.ws.readyState).toBe(WebSocket.OPEN);
      socket.close();
    });

    test("repeated bad frames close the connection with 1008", async () => {
      const box = await newBox();
      const socket = await openBoxSocket(url, { key: box.apiKey, hardwareId: `hw-${box.id}` });
      await socket.hello();
      for (let i = 0; i < 8; i++) socket.send({ type: "nonsense" });
      expect((await socket.closed).code).toBe(CLOSE_CODES.policyViolation);
    });

    test("a frame over the size limit closes the connection with 1009", async () => {
      const box = await newBox();
      const socket = await openBoxSocket(url, { key: box.apiKey, hardwareId: `hw-${box.id}` });
      await socket.hello();
      socket.send({ type: "heartbeat", metrics: [], padding: "x".repeat(20_000) });
      expect((await socket.closed).code).toBe(CLOSE_CODES.messageTooBig);
    });

    test("more frames a minute than allowed: RATE_LIMIT_EXCEEDED with retry_after_seconds, then 1008", async () => {
      const box = await newBox();
      const socket = await openBoxSocket(url, { key: box.apiKey, hardwareId: `hw-${box.id}` });
      await socket.hello();
      for (let i = 0; i < 30; i++) socket.send({ type: "heartbeat" });
      const limited = await socket.next("error");
      expect(limited).toMatchObject({ code: "RATE_LIMIT_EXCEEDED" });
      expect(limited.retry_after_seconds).toBeGreaterThanOrEqual(1);
      expect(limited.retry_after_seconds).toBeLessThanOrEqual(60);
      for (let i = 0; i < 10; i++) socket.send({ type: "heartbeat" });
      expect((await socket.closed).code).toBe(CLOSE_CODES.policyViolation);
    });
  });
});

