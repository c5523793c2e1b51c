/**
 * The reference box's command handlers, called directly: file confinement
 * (absolute paths, `..`, symbolic links leading out) and bash.exec.
 */
import { mkdir, mkdtemp, readFile, realpath, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "@jest/globals";
import type { JsonObject } from "../../src/bridge/protocol.ts";
import { COMMAND_HANDLERS } from "../../src/box/commands/index.ts";
import { CommandError, type CommandOutcome } from "../../src/box/commands/types.ts";

let base: string;
let root: string;
let outside: string;

beforeAll(async () => {
  base = await realpath(await mkdtemp(path.join(tmpdir(), "agentplane-box-")));
  root = path.join(base, "root");
  outside = path.join(base, "outside");
  await mkdir(path.join(root, "docs"), { recursive: true });
  await mkdir(outside);
  await writeFile(path.join(root, "docs", "a.txt"), "hello");
  await writeFile(path.join(outside, "secret.txt"), "top secret");
  await symlink(outside, path.join(root, "escape"));
  await symlink(path.join(outside, "secret.txt"), path.join(root, "secret-link"));
  await symlink(path.join(root, "docs", "a.txt"), path.join(root, "inner-link"));
});

afterAll(async () => {
  await rm(base, { recursive: true, force: true });
});

async function run(type: string, payload: JsonObject, signal = new AbortController().signal) {
  const chunks: Array<[string, string]> = [];
  const handler = COMMAND_HANDLERS[type];
  if (handler === undefined) throw new Error(`no handler ${type}`);
  try {
    const outcome = await handler({ id: "x", payload, signal, root, output: (stream, data) => chunks.push([stream, data]) });
    return { outcome, chunks };
  } catch (error) {
    if (!(error instanceof CommandError)) throw error;
    return { outcome: { success: false, error_code: error.code, error: error.message } as CommandOutcome, chunks };
  }
}

describe("file commands", () => {
  test("read, write and list inside the root", async () => {
    expect((await run("file.read", { path: "docs/a.txt" })).outcome).toMatchObject({
      success: true,
      response: { content: "hello", size: 5, encoding: "utf8" },
    });
    expect((await run("file.write", { path: "new/dir/b.bin", content: Buffer.from([0, 1, 2]).toString("base64"), encoding: "base64", create_dirs: true })).outcome).toMatchObject({
      success: true,
      response: { size: 3 },
    });
    expect([...(await readFile(path.join(root, "new/dir/b.bin")))]).toEqual([0, 1, 2]);
    const listed = (await run("file.list", {})).outcome.response as { entries: Array<{ name: string; type: string }> };
    expect(listed.entries.map((entry) => [entry.name, entry.type])).toEqual([
      ["docs", "dir"],
      ["escape", "symlink"],
      ["inner-link", "symlink"],
      ["new", "dir"],
      ["secret-link", "symlink"],
    ]);
  });

  test("a link that stays inside the root is followed", async () => {
    expect((await run("file.read", { path: "inner-link" })).outcome).toMatchObject({ success: true, response: { content: "hello" } });
  });

  test.each([
    ["file.read", { path: "/etc/passwd" }],
    ["file.read", { path: "../outside/secret.txt" }],
    ["file.read", { path: "docs/../../outside/secret.txt" }],
    ["file.read", { path: "escape/secret.txt" }],
    ["file.read", { path: "secret-link" }],
    ["file.list", { path: "escape" }],
    ["file.list", { path: ".." }],
    ["file.write", { path: "escape/planted.txt", content: "x" }],
    ["file.write", { path: "secret-link", content: "overwritten" }],
    ["file.write", { path: "escape/deeper/planted.txt", content: "x", create_dirs: true }],
    ["file.write", { path: "/tmp/planted.txt", content: "x" }],
    ["bash.exec", { command: "pwd", cwd: "escape" }],
  ])("%s %j is refused with PERMISSION_DENIED", async (type, payload) => {
    const { outcome } = await run(type, payload);
    expect(outcome).toMatchObject({ success: false, error_code: "PERMISSION_DENIED" });
    expect(await readFile(path.join(outside, "secret.txt"), "utf8")).toBe("top secret");
    await expect(readFile(path.join(outside, "planted.txt"))).rejects.toThrow(/ENOENT/);
  });

  test("a missing file is NOT_FOUND and a bad payload INVALID_PARAMS", async () => {
    expect((await run("file.read", { path: "nope.txt" })).outcome).toMatchObject({ error_code: "NOT_FOUND" });
    expect((await run("file.read", {})).outcome).toMatchObject({ error_code: "INVALID_PARAMS" });
    expect((await run("file.write", { path: "a", content: "x", mode: 777 })).outcome).toMatchObject({ error_code: "INVALID_PARAMS" });
  });
});

describe("bash.exec", () => {
  test("streams stdout and stderr and reports the exit code", async () => {
    const { outcome, chunks } = await run("bash.exec", { command: "echo out; echo err >&2; exit 3", cwd: "docs" });
    expect(outcome).toMatchObject({ success: false, error_code: "EXEC_ERROR", exit_code: 3 });
    expect(chunks).toContainEqual(["stdout", "out\n"]);
    expect(chunks).toContainEqual(["stderr", "err\n"]);
    expect((await run("bash.exec", { command: "pwd", cwd: "docs" })).chunks).toEqual([["stdout", `${root}/docs\n`]]);
  });

  test("its own time-out kills the process group", async () => {
    const started = performance.now();
    const { outcome } = await run("bash.exec", { command: "sleep 30 & sleep 30; echo never", timeout_ms: 200 });
    expect(outcome).toMatchObject({ success: false, error_code: "TIMEOUT" });
    expect(performance.now() - started).toBeLessThan(5_000);
  });

  test("cancel stops it", async () => {
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 100);
    const { outcome } = await run("bash.exec", { command: "sleep 30" }, controller.signal);
    expect(outcome).toMatchObject({ success: false, error_code: "CANCELED" });
  });

  test("system.ping and system.status answer", async () => {
    expect((await run("system.ping", {})).outcome).toMatchObject({ success: true, response: { pong: true } });
    expect((await run("system.status", {})).outcome.response).toMatchObject({ cpus: expect.any(Number), agent_version: "0.1.0" });
  });
});
