/**
 * `npm run box`: the reference box as its own process, against a real server.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, realpath, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "@jest/globals";
import { PROJECT_ROOT } from "../../src/paths.ts";
import { getCommand, sendOk } from "../helpers/box-api.ts";
import { bridgeUrl } from "../helpers/box-socket.ts";
import { eventually } from "../helpers/wait.ts";
import { allowBoxes, createCommittedBox } from "../helpers/boxes.ts";
import { pool } from "../helpers/db.ts";
import { createCommittedUser, removeUser, type TestUser } from "../helpers/identity.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";

interface BoxProcess {
  child: ChildProcess;
  stderr(): string;
  exited: Promise<number | null>;
}

function runBox(args: string[]): BoxProcess {
  const child = spawn(process.execPath, [path.join(PROJECT_ROOT, "src/box/cli.ts"), ...args], {
    cwd: PROJECT_ROOT,
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr?.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once("close", (code) => resolve(code)));
  return { child, stderr: () => stderr, exited };
}

describe("npm run box", () => {
  let server: TestServer;
  let owner: TestUser;
  let base: string;
  const running: ChildProcess[] = [];

  beforeAll(async () => {
    server = await startTestServer();
    owner = await createCommittedUser();
    await allowBoxes(owner.organizationId, 10);
    base = await realpath(await mkdtemp(path.join(tmpdir(), "agentplane-box-cli-")));
  });

  afterAll(async () => {
    for (const child of running) child.kill("SIGKILL");
    await server.close();
    await removeUser(owner);
    await rm(base, { recursive: true, force: true });
  });

  test("connects with its key, runs commands in its root folder, refuses to leave it, and stops on SIGINT", async () => {
    const box = await createCommittedBox(owner);
    const root = path.join(base, "root");
    await writeFile(path.join(base, "secret.txt"), "outside");
    const proc = runBox(["--url", bridgeUrl(server.url), "--key", box.apiKey, "--root", root, "--hardware-id", `cli-${box.id}`]);
    running.push(proc.child);
    await eventually(async () => proc.stderr().includes(`connected as box ${box.id}`));

    const exec = await sendOk(server, owner.token, box.id, "bash.exec", { command: "echo $PWD; echo to-stderr >&2", timeout_ms: 5_000 });
    const escape = await sendOk(server, owner.token, box.id, "file.read", { path: "../secret.txt" });
    const status = await sendOk(server, owner.token, box.id, "system.status");
    const done = async (id: string) => {
      const command = await getCommand(server, owner.token, id);
      return command !== null && !["queued", "sent", "acked"].includes(command.status) ? command : undefined;
    };
    expect(await eventually(() => done(exec))).toMatchObject({ status: "succeeded", stdout: `${root}\n`, stderr: "to-stderr\n", exitCode: 0 });
    expect(await eventually(() => done(escape))).toMatchObject({ status: "failed", errorCode: "PERMISSION_DENIED" });
    expect(await eventually(() => done(status))).toMatchObject({ status: "succeeded", response: expect.objectContaining({ cpus: expect.any(Number) }) });

    proc.child.kill("SIGINT");
    expect(await proc.exited).toBe(0);
  });

  test("a refused key: a clear message and exit code 2, no retrying", async () => {
    const box = await createCommittedBox(owner);
    await pool("root").query("update app_public.box_api_keys set revoked_at = now() where id = $1", [box.keyId]);
    const proc = runBox(["--url", bridgeUrl(server.url), "--key", box.apiKey, "--root", path.join(base, "refused")]);
    running.push(proc.child);
    expect(await proc.exited).toBe(2);
    expect(proc.stderr()).toMatch(/the bridge refused this box \(HTTP 401 UNAUTHORIZED\)/);
    expect(proc.stderr()).toMatch(/check the key: it may be mistyped, revoked or expired/);
  });

  test("bad arguments stop it with a usage line; a key in the URL is refused", async () => {
    const missing = runBox(["--url", bridgeUrl(server.url)]);
    expect(await missing.exited).toBe(1);
    expect(missing.stderr()).toMatch(/--key must be a box key/);
    const box = await createCommittedBox(owner);
    const inUrl = runBox(["--url", `${bridgeUrl(server.url)}?key=${box.apiKey}`, "--key", box.apiKey]);
    expect(await inUrl.exited).toBe(1);
    expect(inUrl.stderr()).toMatch(/must not carry a query string/);
  });
});
