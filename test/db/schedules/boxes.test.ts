/**
 * Agents and cron jobs on boxes: the per-box agent limit, organizations kept
 * apart, heartbeats, and scheduled commands that end their executions.
 */
import { describe, expect, test } from "@jest/globals";
import { asRoot, expectError, type Client } from "../../helpers/db.ts";
import { createBox } from "../../helpers/boxes.ts";
import { asUser, createUser, type TestUser } from "../../helpers/identity.ts";
import { asAgent, createAgent, createAgentKey, insertAs } from "../../helpers/schedules.ts";

describe("agents on boxes", () => {
  test("organization_limits.max_agents_per_box is enforced, on insert and on a move", async () => {
    await asRoot(async (client) => {
      const user = await createUser(client);
      await client.query("update app_public.organization_limits set max_agents_per_box = 2, max_boxes = 2 where organization_id = $1", [user.organizationId]);
      const [box, spare] = [await createBox(client, user), await createBox(client, user)];
      await createAgent(client, user, { box_id: box.id });
      await createAgent(client, user, { box_id: box.id });
      const third = await asUser(client, user, () =>
        expectError(client, "insert into app_public.agents (organization_id, name, box_id) values ($1, 'third', $2)", [user.organizationId, box.id]),
      );
      expect(third.code).toBe("AGLIM");
      expect(third.message).toMatch(/already runs 2 agent\(s\).*max_agents_per_box/);
      const moved = await createAgent(client, user, { box_id: spare.id });
      const move = await asUser(client, user, () => expectError(client, "update app_public.agents set box_id = $1 where id = $2", [box.id, moved.id]));
      expect(move.code).toBe("AGLIM");
    });
  });

  test("an agent, cron job or rule cannot point at another organization's box", async () => {
    await asRoot(async (client) => {
      const [user, other] = [await createUser(client), await createUser(client)];
      const foreign = await createBox(client, other);
      await asUser(client, user, async () => {
        const agent = await expectError(client, "insert into app_public.agents (organization_id, name, box_id) values ($1, 'x', $2)", [user.organizationId, foreign.id]);
        expect(agent.code).toBe("23503");
        const job = await expectError(
          client,
          "insert into app_public.cronjobs (organization_id, box_id, name, schedule, action, task) values ($1, $2, 'x', '* * * * *', 'run_bash_command', 'id')",
          [user.organizationId, foreign.id],
        );
        expect(job.code).toBe("23503");
      });
    });
  });

  test("a heartbeat marks the agent active (a paused one stays paused) and stores metrics with its box", async () => {
    await asRoot(async (client) => {
      const user = await createUser(client);
      const box = await createBox(client, user);
      const agent = await createAgent(client, user, { box_id: box.id });
      expect(agent.status).toBe("inactive");
      const key = await createAgentKey(client, user, agent.id);
      const beat = (sql: string) => asAgent(client, key, async () => (await client.query(sql)).rows[0]?.status);
      expect(await beat("select app_public.send_agent_heartbeat('{\"memory.mb\": 312}') as status")).toBe("active");
      expect(await beat("select app_public.send_agent_heartbeat(null, 'error') as status")).toBe("error");
      await client.query("update app_public.agents set status = 'paused' where id = $1", [agent.id]);
      expect(await beat("select app_public.send_agent_heartbeat() as status")).toBe("paused");
      const stored = await client.query("select box_id, organization_id, name, value from app_public.metric_samples where agent_id = $1", [agent.id]);
      expect(stored.rows).toEqual([{ box_id: box.id, organization_id: user.organizationId, name: "memory.mb", value: 312 }]);
      const row = (await client.query("select last_heartbeat_at is not null as beat from app_public.agents where id = $1", [agent.id])).rows[0];
      expect(row).toEqual({ beat: true });
      const lastUsed = await client.query("select last_used_at is not null as used from app_public.agent_api_keys where agent_id = $1", [agent.id]);
      expect(lastUsed.rows).toEqual([{ used: true }]);
    });
  });

  test("heartbeats and metrics need an agent key, and well-formed metrics", async () => {
    await asRoot(async (client) => {
      const user = await createUser(client);
      const agent = await createAgent(client, user);
      const key = await createAgentKey(client, user, agent.id);
      const asPerson = await asUser(client, user, () => expectError(client, "select app_public.send_agent_heartbeat()"));
      expect(asPerson.code).toBe("42501");
      const bad = await asAgent(client, key, () => expectError(client, "select app_public.report_agent_metrics('{\"CPU\": \"high\"}')"));
      expect(bad.message).toMatch(/metrics must map names/);
      const badStatus = await asAgent(client, key, () => expectError(client, "select app_public.send_agent_heartbeat(null, 'paused')"));
      expect(badStatus.message).toBe("an agent reports its status as active or error, not paused");
    });
  });
});

describe("scheduled box commands", () => {
  async function bashJob(client: Client, user: TestUser, fields: Record<string, unknown> = {}) {
    const box = await createBox(client, user);
    const job = await insertAs(client, user, "cronjobs", {
      organization_id: user.organizationId, box_id: box.id, name: "disk usage", schedule: "*/5 * * * *", action: "run_bash_command", task: "df -h /",
      payload: { cwd: "." }, ...fields,
    });
    return { box, job };
  }

  /** What the scheduler does when the job is due: returns the execution. */
  async function runDue(client: Client, job: Record<string, unknown>) {
    const outcome = await client.query<{ outcome: string }>(
      "select app_private.run_cronjob($1, $2, date_trunc('minute', now()), date_trunc('minute', now()) + interval '5 minutes', false) as outcome",
      [job.id, job.revision],
    );
    expect(outcome.rows[0]?.outcome).toBe("started");
    return (await client.query("select * from app_public.cronjob_executions where cronjob_id = $1", [job.id])).rows[0];
  }

  test("run_bash_command queues bash.exec with origin schedule; its success ends the execution with the output", async () => {
    await asRoot(async (client) => {
      const user = await createUser(client);
      const { box, job } = await bashJob(client, user, { timeout_seconds: 20 });
      const execution = await runDue(client, job);
      expect(execution).toMatchObject({ status: "running" });
      const command = (await client.query("select * from app_public.box_commands where id = $1", [execution.box_command_id])).rows[0];
      expect(command).toMatchObject({
        box_id: box.id, command_type: "bash.exec", origin: "schedule", status: "queued", payload: { command: "df -h /", cwd: ".", timeout_ms: 20000 }, timeout_ms: 25000,
      });
      await client.query("update app_public.box_commands set stdout = 'Filesystem 42%' where id = $1", [command.id]);
      await client.query("select app_private.finish_box_command(c, 'succeeded', null, null, '{\"exit_code\": 0}', 0) from app_public.box_commands c where c.id = $1", [command.id]);
      const finished = (await client.query("select status, output, error, duration_ms >= 0 as timed from app_public.cronjob_executions where id = $1", [execution.id])).rows[0];
      expect(finished).toEqual({ status: "success", output: "Filesystem 42%", error: null, timed: true });
      const cron = (await client.query("select last_run_at is not null as ran, next_run_at, consecutive_failures from app_public.cronjobs where id = $1", [job.id])).rows[0];
      expect(cron.ran).toBe(true);
      expect(cron.consecutive_failures).toBe(0);
    });
  });

  test("a failed or timed-out command fails or times out the execution, with the box's error", async () => {
    await asRoot(async (client) => {
      const user = await createUser(client);
      await client.query("update app_public.organization_limits set max_boxes = 2 where organization_id = $1", [user.organizationId]);
      for (const [status, code, error, expected] of [
        ["failed", "EXEC_ERROR", "exited with code 1", { status: "failure", error: "EXEC_ERROR: exited with code 1" }],
        ["timed_out", "TIMEOUT", "no result within 25000 ms of sending", { status: "timed_out", error: "TIMEOUT: no result within 25000 ms of sending" }],
      ] as const) {
        const { job } = await bashJob(client, user);
        const execution = await runDue(client, job);
        await client.query("select app_private.finish_box_command(c, $2, $3, $4) from app_public.box_commands c where c.id = $1", [
          execution.box_command_id, status, code, error,
        ]);
        expect((await client.query("select status, error from app_public.cronjob_executions where id = $1", [execution.id])).rows[0]).toEqual(expected);
        expect((await client.query("select consecutive_failures from app_public.cronjobs where id = $1", [job.id])).rows[0]).toEqual({ consecutive_failures: 1 });
      }
    });
  });

  test("a box-hosted agent gets its task as an agent.run command on its box", async () => {
    await asRoot(async (client) => {
      const user = await createUser(client);
      const box = await createBox(client, user);
      const agent = await createAgent(client, user, { box_id: box.id });
      const job = await insertAs(client, user, "cronjobs", {
        organization_id: user.organizationId, agent_id: agent.id, name: "standup", schedule: "0 9 * * mon-fri", timezone: "Europe/Berlin",
        action: "run_agent_conversation", task: "Summarise yesterday's tickets", payload: { channel: "#team" },
      });
      expect(job.box_id).toBe(box.id);
      const execution = await runDue(client, job);
      const command = (await client.query("select box_id, command_type, origin, payload from app_public.box_commands where id = $1", [execution.box_command_id])).rows[0];
      expect(command).toEqual({
        box_id: box.id, command_type: "agent.run", origin: "schedule",
        payload: { agent_id: agent.id, mode: "conversation", task: "Summarise yesterday's tickets", payload: { channel: "#team" }, cronjob_id: job.id, execution_id: execution.id },
      });
    });
  });

  test("a command that cannot be queued fails the execution, and the next run is planned all the same", async () => {
    await asRoot(async (client) => {
      const user = await createUser(client);
      const { box, job } = await bashJob(client, user);
      // The box's command budget for this minute is spent.
      await client.query("select set_config('agentplane.box_commands_per_minute', '1', true)");
      await client.query("select app_private.queue_box_command($1, 'system.ping', '{}', 'manual')", [box.id]);
      const execution = await runDue(client, job);
      expect(execution).toMatchObject({ status: "failure", error: "rate limit exceeded: at most 1 commands a minute per box" });
      const next = await client.query("select payload, run_at from graphile_worker._private_jobs where key = $1", [`cronjob:${String(job.id)}`]);
      expect(next.rows[0]?.payload).toMatchObject({ cronjobId: job.id, revision: 1 });
    });
  });
});
