/**
 * Scheduled actions on boxes, end to end: the worker runs the due cron job,
 * the command goes through the real bridge to the reference box client, and
 * the execution ends when the command does.
 */
import { mkdtemp, realpath, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "@jest/globals";
import type { JsonObject } from "../../src/bridge/protocol.ts";
import { BoxClient } from "../../src/box/client.ts";
import { COMMAND_HANDLERS } from "../../src/box/commands/index.ts";
import { bridgeUrl } from "../helpers/box-socket.ts";
import { createCommittedBox, type TestBox } from "../helpers/boxes.ts";
import { insertCronjob, queueCronjobRun, rootQuery } from "../helpers/committed.ts";
import { createCommittedUser, removeUser, type TestUser } from "../helpers/identity.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { eventually } from "../helpers/wait.ts";

// Inside one describe: the hooks run before the shared pools are closed (test/setup/after-env.ts).
describe("scheduled actions on a box", () => {
  let server: TestServer;
  let owner: TestUser;
  let box: TestBox;
  let client: BoxClient;
  let root: string;
  const agentRuns: JsonObject[] = [];

  beforeAll(async () => {
    server = await startTestServer({ worker: true, env: { BRIDGE_HEARTBEAT_INTERVAL_MS: "1000", BRIDGE_PRESENCE_FLUSH_MS: "200" } });
    owner = await createCommittedUser();
    box = await createCommittedBox(owner);
    root = await realpath(await mkdtemp(path.join(tmpdir(), "agentplane-schedules-box-")));
    client = new BoxClient({
      url: bridgeUrl(server.url),
      key: box.apiKey,
      hardwareId: `hw-${box.id}`,
      root,
      backoff: { initialMs: 50, maxMs: 200 },
      // The reference box, plus an agent runtime: it takes the task and answers.
      handlers: {
        ...COMMAND_HANDLERS,
        "agent.run": async ({ payload }) => {
          agentRuns.push(payload);
          return { success: true, response: { reply: `done: ${String(payload.task)}` } };
        },
      },
    });
    client.start();
    await new Promise((resolve) => client.once("welcome", resolve));
  });

  afterAll(async () => {
    await client.stop();
    await server.close();
    await removeUser(owner);
    await rm(root, { recursive: true, force: true });
  });

  /**
   * Runs a cron job now, as if its time had come. The worker plans every new
   * cron job at once; the due run is queued after that, so that the planning
   * (which replaces the job under the same key) cannot overwrite it.
   */
  async function runNow(job: { id: string; revision: number; schedule: string; timezone: string }) {
    await eventually(async () => {
      const [row] = await rootQuery("select 1 from app_public.cronjobs where id = $1 and next_run_at is not null", [job.id]);
      return row;
    }, 15_000);
    await queueCronjobRun(job, { dueAt: new Date() });
  }

  function execution(cronjobId: string) {
    return eventually(
      async () => {
        const [row] = await rootQuery<{ status: string; output: string | null; error: string | null; box_command_id: string }>(
          "select status, output, error, box_command_id from app_public.cronjob_executions where cronjob_id = $1",
          [cronjobId],
        );
        return row !== undefined && row.status !== "running" ? row : undefined;
      }, 15_000);
  }

  test("run_bash_command: bash.exec runs on the box and the execution ends with its output", async () => {
    const job = await insertCronjob(owner, { name: "answer", action: "run_bash_command", box_id: box.id, task: "echo scheduled-$((6*7))" });
    await runNow(job);
    const done = await execution(job.id);
    expect(done).toMatchObject({ status: "success", output: "scheduled-42\n", error: null });
    const [command] = await rootQuery("select command_type, origin, status, exit_code from app_public.box_commands where id = $1", [done.box_command_id]);
    expect(command).toEqual({ command_type: "bash.exec", origin: "schedule", status: "succeeded", exit_code: 0 });
    const seen = await server.graphql<{ cronjob: { executions: { nodes: unknown[] } } }>(
      `query ($id: UUID!) { cronjob(rowId: $id) { executions { nodes { status output boxCommand { commandType origin stdout } } } } }`,
      { id: job.id },
      { token: owner.token },
    );
    expect(seen.data?.cronjob.executions.nodes).toEqual([
      { status: "success", output: "scheduled-42\n", boxCommand: { commandType: "bash.exec", origin: "schedule", stdout: "scheduled-42\n" } },
    ]);
  });

  test("a failing command fails the execution with the box's error", async () => {
    const job = await insertCronjob(owner, { name: "broken", action: "run_bash_command", box_id: box.id, task: "echo oops >&2; exit 3" });
    await runNow(job);
    expect(await execution(job.id)).toMatchObject({ status: "failure", output: "oops\n", error: "EXEC_ERROR: exited with code 3" });
    expect((await rootQuery("select consecutive_failures from app_public.cronjobs where id = $1", [job.id]))[0]).toEqual({ consecutive_failures: 1 });
  });

  test("run_agent_conversation: the box-hosted agent gets agent.run with its task", async () => {
    const [agent] = await rootQuery<{ id: string }>("insert into app_public.agents (organization_id, box_id, name) values ($1, $2, 'on-box') returning id", [
      owner.organizationId,
      box.id,
    ]);
    const job = await insertCronjob(owner, { name: "triage", action: "run_agent_conversation", agent_id: agent!.id, task: "Triage new issues" });
    await runNow(job);
    const done = await execution(job.id);
    expect(done.status).toBe("success");
    expect(JSON.parse(done.output!)).toEqual({ reply: "done: Triage new issues" });
    expect(agentRuns).toContainEqual(expect.objectContaining({ agent_id: agent!.id, mode: "conversation", task: "Triage new issues", cronjob_id: job.id }));
  });
});
