/**
 * The real process, as `npm start` runs it: start-up, readiness, logs, and a
 * clean exit on SIGTERM; and the embedded database when DATABASE_URL is unset.
 */
import { mkdtemp, rm, chmod } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, test } from "@jest/globals";
import { freePort } from "./helpers/net.ts";
import { startProcess, type AgentplaneProcess } from "./helpers/process.ts";
import { testDatabase } from "./setup/test-database.ts";

const running = new Set<AgentplaneProcess>();

function start(env: Record<string, string>, args: string[] = []) {
  const started = startProcess(env, args);
  running.add(started);
  return started;
}

afterAll(async () => {
  await Promise.all([...running].map((p) => p.stop("SIGKILL")));
});

function listening(line: Record<string, unknown>) {
  return line.msg === "agentplane is listening";
}

async function typename(graphqlUrl: string) {
  const response = await fetch(graphqlUrl, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ query: "{ __typename }" }),
  });
  return response.json();
}

describe("the agentplane process", () => {
  test("serves a configured database and exits 0 on SIGTERM within 10 s, printing no error", async () => {
    const { database, visitorRole } = testDatabase();
    const proc = start({
      DATABASE_URL: database.ownerUrl,
      AUTH_DATABASE_URL: database.authUrl,
      DATABASE_VISITOR: visitorRole,
      PORT: String(await freePort()),
    });
    const line = await proc.waitForLog(listening);
    expect(await typename(line.graphql as string)).toEqual({ data: { __typename: "Query" } });
    const ready = await fetch(line.health as string);
    expect(ready.status).toBe(200);

    const { code, ms } = await proc.stop("SIGTERM");
    expect(code).toBe(0);
    expect(ms).toBeLessThan(10_000);
    expect(proc.stderr()).toBe("");
    expect(proc.logs.filter((log) => Number(log.level) >= 50)).toEqual([]);
    expect(proc.logs.at(-1)).toMatchObject({ msg: "stopped" });
  });

  test("--only worker runs the worker without an HTTP port", async () => {
    const { database, visitorRole } = testDatabase();
    const proc = start(
      { DATABASE_URL: database.ownerUrl, AUTH_DATABASE_URL: database.authUrl, DATABASE_VISITOR: visitorRole },
      ["--only", "worker"],
    );
    const started = await proc.waitForLog((line) => line.msg === "started");
    expect(started.parts).toEqual(["worker"]);
    expect(proc.logs.some(listening)).toBe(false);
    expect((await proc.stop()).code).toBe(0);
  });

  test.each([
    [{ PORT: "http" }, [], /^agentplane: configuration error: PORT must be a whole number from 0 to 65535 \(got "http"\)\n$/],
    [{}, ["--only", "everything"], /^agentplane: configuration error: --only takes api, bridge, worker \(got "everything"\)\n$/],
  ])("a bad setting (%j %j) stops it with one line and exit code 1", async (env, args, message) => {
    const proc = start(env, args);
    expect(await proc.exited).toBe(1);
    expect(proc.stderr()).toMatch(message);
  });

  test("with no DATABASE_URL it runs an embedded PostgreSQL, and a second start reuses its data", async () => {
    const dataDir = await mkdtemp(path.join(tmpdir(), "agentplane-embedded-"));
    await chmod(dataDir, 0o755);
    try {
      const env = { DATA_DIR: dataDir, EMBEDDED_PG_PORT: String(await freePort()), PORT: String(await freePort()) };
      const first = start(env);
      const line = await first.waitForLog(listening, 120_000);
      expect(first.logs.some((log) => log.msg === "initialising embedded PostgreSQL (first start)")).toBe(true);
      expect(await typename(line.graphql as string)).toEqual({ data: { __typename: "Query" } });
      expect((await fetch(line.health as string)).status).toBe(200);
      expect(await first.stop()).toMatchObject({ code: 0 });

      const second = start(env);
      await second.waitForLog(listening, 120_000);
      expect(second.logs.some((log) => log.msg === "initialising embedded PostgreSQL (first start)")).toBe(false);
      expect((await fetch(line.health as string)).status).toBe(200);
      const stopped = await second.stop();
      expect(stopped.code).toBe(0);
      expect(stopped.ms).toBeLessThan(10_000);
      expect(second.stderr()).toBe("");
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  }, 240_000);
});
