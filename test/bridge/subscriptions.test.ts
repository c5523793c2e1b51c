/**
 * Waiting for boxes over GraphQL subscriptions: a command's updates until it
 * ends, a box's presence and command events; and nothing for anyone outside
 * the box's organization.
 */
import { afterAll, beforeAll, describe, expect, test } from "@jest/globals";
import { sendOk } from "../helpers/box-api.ts";
import { bridgeUrl, openBoxSocket } from "../helpers/box-socket.ts";
import { allowBoxes, createCommittedBox } from "../helpers/boxes.ts";
import { pool } from "../helpers/db.ts";
import { createCommittedUser, removeUser, type TestUser } from "../helpers/identity.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { subscribe } from "../helpers/subscriptions.ts";

interface CommandUpdate {
  boxCommandUpdated: { boxCommand: { rowId: string; status: string; stdout: string | null } | null } | null;
}

interface BoxEvents {
  boxEvents: { event: string; box: { rowId: string; status: string } | null; boxCommand: { rowId: string; status: string } | null } | null;
}

const COMMAND_UPDATES = "subscription ($id: UUID!) { boxCommandUpdated(id: $id) { boxCommand { rowId status stdout } } }";
const BOX_EVENTS = "subscription ($boxId: UUID!) { boxEvents(boxId: $boxId) { event box { rowId status } boxCommand { rowId status } } }";

describe("box subscriptions", () => {
  let server: TestServer;
  let owner: TestUser;
  let outsider: TestUser;

  beforeAll(async () => {
    server = await startTestServer({ env: { BRIDGE_PRESENCE_FLUSH_MS: "200" } });
    owner = await createCommittedUser();
    outsider = await createCommittedUser();
    await allowBoxes(owner.organizationId, 10);
  });

  afterAll(async () => {
    await server.close();
    await removeUser(owner);
    await removeUser(outsider);
  });

  test("a client waits for a command: its state at once, each change, and the end", async () => {
    const box = await createCommittedBox(owner);
    const id = await sendOk(server, owner.token, box.id, "bash.exec", { command: "echo hi" });
    const updates = await subscribe<CommandUpdate>(server.url, COMMAND_UPDATES, { id }, owner.token);
    await updates.waitFor(1);
    expect(updates.results[0]?.data?.boxCommandUpdated?.boxCommand).toMatchObject({ rowId: id, status: "queued" });

    const socket = await openBoxSocket(bridgeUrl(server.url), { key: box.apiKey, hardwareId: `hw-${box.id}` });
    await socket.hello();
    await socket.next("command");
    socket.send({ type: "ack", id });
    socket.send({ type: "output", id, seq: 0, stream: "stdout", data: "hi\n" });
    socket.send({ type: "result", id, success: true, exit_code: 0 });
    await updates.completed;
    const statuses = updates.results.map((result) => result.data?.boxCommandUpdated?.boxCommand?.status);
    expect(statuses[0]).toBe("queued");
    expect(statuses.at(-1)).toBe("succeeded");
    expect(statuses).toEqual(expect.arrayContaining(["sent"]));
    expect(updates.results.at(-1)?.data?.boxCommandUpdated?.boxCommand?.stdout).toBe("hi\n");
    socket.close();
  });

  test("a command that has already ended: one update, then the end", async () => {
    const box = await createCommittedBox(owner);
    const id = await sendOk(server, owner.token, box.id, "system.ping");
    await pool("root").query("update app_public.box_commands set status = 'canceled', finished_at = now() where id = $1", [id]);
    const updates = await subscribe<CommandUpdate>(server.url, COMMAND_UPDATES, { id }, owner.token);
    await updates.completed;
    expect(updates.results.map((result) => result.data?.boxCommandUpdated?.boxCommand?.status)).toEqual(["canceled"]);
  });

  test("box events: presence and commands", async () => {
    const box = await createCommittedBox(owner);
    const events = await subscribe<BoxEvents>(server.url, BOX_EVENTS, { boxId: box.id }, owner.token);
    // The subscription is listening once the server has answered a first operation on it; give LISTEN a moment.
    await new Promise((resolve) => setTimeout(resolve, 200));
    const socket = await openBoxSocket(bridgeUrl(server.url), { key: box.apiKey, hardwareId: `hw-${box.id}` });
    await socket.hello();
    const id = await sendOk(server, owner.token, box.id, "system.ping");
    await events.waitFor(3);
    const seen = events.results.map((result) => result.data?.boxEvents);
    expect(seen[0]).toMatchObject({ event: "presence", box: { rowId: box.id, status: "online" }, boxCommand: null });
    // Each event is read again when it is delivered: the command is as it is then (already sent).
    expect(seen).toEqual(expect.arrayContaining([expect.objectContaining({ event: "command", boxCommand: expect.objectContaining({ rowId: id }) })]));
    socket.close();
    // Left open on purpose: the server must still close promptly with subscriptions running.
  });

  test("another organization's user cannot subscribe to the box or its commands, and sees none of their events", async () => {
    const box = await createCommittedBox(owner);
    const id = await sendOk(server, owner.token, box.id, "system.ping");
    const boxEvents = await subscribe<BoxEvents>(server.url, BOX_EVENTS, { boxId: box.id }, outsider.token);
    const commandUpdates = await subscribe<CommandUpdate>(server.url, COMMAND_UPDATES, { id }, outsider.token);
    const anonymous = await subscribe<CommandUpdate>(server.url, COMMAND_UPDATES, { id });
    for (const subscription of [boxEvents, commandUpdates, anonymous]) {
      await subscription.waitFor(1);
      await subscription.completed;
    }
    expect(boxEvents.results).toEqual([expect.objectContaining({ errors: [expect.objectContaining({ message: "box not found" })] })]);
    expect(commandUpdates.results).toEqual([expect.objectContaining({ errors: [expect.objectContaining({ message: "box command not found" })] })]);
    expect(anonymous.results).toEqual([expect.objectContaining({ errors: [expect.objectContaining({ message: "box command not found" })] })]);
    // And the box's activity reaches none of them.
    await sendOk(server, owner.token, box.id, "system.ping");
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect([boxEvents, commandUpdates, anonymous].map((subscription) => subscription.results.length)).toEqual([1, 1, 1]);
  });
});
