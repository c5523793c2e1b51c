/**
 * Alert rules in the database: consecutive failures (agent logs, cron job
 * executions), metric thresholds held for a window, offline boxes and agents;
 * one open alert per rule and subject, cooldown, self-resolution,
 * acknowledgement, and the notifications each alert queues.
 */
import { describe, expect, test } from "@jest/globals";
import { asRoot, expectError, type Client } from "../../helpers/db.ts";
import { createBox } from "../../helpers/boxes.ts";
import { asUser, createUser } from "../../helpers/identity.ts";
import { addMember, asAgent, createAgent, createAgentKey, createChannel, createRule, type Row } from "../../helpers/schedules.ts";

async function alertsOf(client: Client, ruleId: unknown) {
  const { rows } = await client.query(
    "select id, status, subject_type, subject_id, severity, title, details from app_public.alerts where alert_rule_id = $1 order by triggered_at",
    [ruleId],
  );
  return rows;
}

async function notificationsOf(client: Client, channelId: unknown) {
  const { rows } = await client.query("select alert_id, event, status from app_public.notifications where notification_channel_id = $1 order by created_at", [
    channelId,
  ]);
  return rows;
}

function log(client: Client, agentId: unknown, status: string) {
  return client.query("insert into app_public.agent_logs (agent_id, status, message) values ($1, $2, $3)", [agentId, status, `${status} run`]);
}

async function setUp(client: Client, ruleFields: Row = {}) {
  const user = await createUser(client);
  const agent = await createAgent(client, user, { name: "crawler" });
  const channel = await createChannel(client, user, "webhook", { url: "https://hooks.example.test/alerts" });
  const rule = await createRule(
    client,
    user,
    { scope: "agent", agent_id: agent.id, condition: "consecutive_failures", failure_threshold: 3, severity: "critical", ...ruleFields },
    [channel.id],
  );
  return { user, agent, channel, rule };
}

describe("consecutive_failures", () => {
  test("3 errors in a row open one alert and notify once; more errors change nothing; a success resolves it", async () => {
    await asRoot(async (client) => {
      const { agent, channel, rule } = await setUp(client);
      await log(client, agent.id, "error");
      await log(client, agent.id, "warning"); // neither a failure nor a success
      await log(client, agent.id, "error");
      expect(await alertsOf(client, rule.id)).toEqual([]);
      await log(client, agent.id, "error");
      const [alert] = await alertsOf(client, rule.id);
      expect(alert).toMatchObject({
        status: "open",
        subject_type: "agent",
        subject_id: agent.id,
        severity: "critical",
        title: "agent crawler failed 3 times in a row",
        details: { consecutive_failures: 3, failure_threshold: 3 },
      });
      await log(client, agent.id, "error");
      expect(await alertsOf(client, rule.id)).toHaveLength(1);
      expect(await notificationsOf(client, channel.id)).toEqual([{ alert_id: alert!.id, event: "alert.opened", status: "pending" }]);
      const job = await client.query("select 1 from graphile_worker.jobs where task_identifier = 'notification_deliver'");
      expect(job.rowCount).toBeGreaterThanOrEqual(1);

      await log(client, agent.id, "success");
      expect((await alertsOf(client, rule.id)).map((a) => a.status)).toEqual(["resolved"]);
      expect(await notificationsOf(client, channel.id)).toHaveLength(1);
    });
  });

  test("within the cooldown a new failure streak raises nothing; after it, a new alert", async () => {
    await asRoot(async (client) => {
      const { agent, rule } = await setUp(client, { cooldown_seconds: 900 });
      for (const status of ["error", "error", "error", "success", "error", "error", "error"]) await log(client, agent.id, status);
      expect((await alertsOf(client, rule.id)).map((a) => a.status)).toEqual(["resolved"]);
      await log(client, agent.id, "success");
      await client.query("update app_public.alerts set triggered_at = now() - interval '16 minutes' where alert_rule_id = $1", [rule.id]);
      for (const status of ["error", "error", "error"]) await log(client, agent.id, status);
      expect((await alertsOf(client, rule.id)).map((a) => a.status)).toEqual(["resolved", "open"]);
    });
  });

  test("notify_on_resolve also tells the channels when it clears; a disabled channel gets nothing", async () => {
    await asRoot(async (client) => {
      const { user, agent, channel, rule } = await setUp(client, { notify_on_resolve: true });
      const muted = await createChannel(client, user, "webhook", { url: "https://hooks.example.test/muted" });
      await client.query("update app_public.notification_channels set enabled = false where id = $1", [muted.id]);
      await client.query("insert into app_public.alert_rule_channels (organization_id, alert_rule_id, notification_channel_id) values ($1, $2, $3)", [
        user.organizationId,
        rule.id,
        muted.id,
      ]);
      for (const status of ["error", "error", "error", "success"]) await log(client, agent.id, status);
      expect((await notificationsOf(client, channel.id)).map((n) => n.event)).toEqual(["alert.opened", "alert.resolved"]);
      expect(await notificationsOf(client, muted.id)).toEqual([]);
    });
  });

  test("cron job executions count too, per cron job; a rule's scope decides which subjects it covers", async () => {
    await asRoot(async (client) => {
      const { user, agent } = await setUp(client);
      const other = await createAgent(client, user, { name: "other" });
      const orgRule = await createRule(client, user, { scope: "organization", condition: "consecutive_failures", failure_threshold: 2 });
      const otherRule = await createRule(client, user, { scope: "agent", agent_id: other.id, condition: "consecutive_failures", failure_threshold: 1 });
      const job = await asUser(client, user, async () =>
        (
          await client.query(
            `insert into app_public.cronjobs (organization_id, agent_id, name, schedule, action, task)
             values ($1, $2, 'nightly', '0 3 * * *', 'run_agent_conversation', 'summarise') returning id`,
            [user.organizationId, agent.id],
          )
        ).rows[0]!.id,
      );
      const execute = async (status: string, minutesAgo: number) => {
        const { rows } = await client.query(
          "insert into app_public.cronjob_executions (organization_id, cronjob_id, scheduled_for, status) values ($1, $2, now() - $3 * interval '1 minute', 'running') returning id",
          [user.organizationId, job, minutesAgo],
        );
        await client.query("select app_private.finish_cronjob_execution($1, $2, null, $3)", [rows[0]!.id, status, status === "success" ? null : "boom"]);
      };
      await execute("failure", 3);
      await execute("timed_out", 2);
      expect(await alertsOf(client, orgRule.id)).toMatchObject([{ status: "open", subject_type: "cronjob", subject_id: job, title: "cron job nightly failed 2 times in a row" }]);
      expect((await client.query("select consecutive_failures from app_public.cronjobs where id = $1", [job])).rows[0]).toEqual({ consecutive_failures: 2 });
      expect(await alertsOf(client, otherRule.id)).toEqual([]);
      await execute("success", 1);
      expect((await alertsOf(client, orgRule.id)).map((a) => a.status)).toEqual(["resolved"]);
    });
  });

  test("members acknowledge an open alert (viewers cannot); it still resolves itself", async () => {
    await asRoot(async (client) => {
      const { user, agent, rule } = await setUp(client);
      const viewer = await createUser(client);
      await addMember(client, user.organizationId, viewer, "viewer");
      for (let i = 0; i < 3; i++) await log(client, agent.id, "error");
      const [alert] = await alertsOf(client, rule.id);
      const refused = await asUser(client, viewer, () => expectError(client, "select app_public.acknowledge_alert($1)", [alert!.id]));
      expect(refused.code).toBe("42501");
      const acknowledged = await asUser(client, user, async () =>
        (await client.query("select status, acknowledged_by from app_public.acknowledge_alert($1)", [alert!.id])).rows[0],
      );
      expect(acknowledged).toEqual({ status: "acknowledged", acknowledged_by: user.id });
      await log(client, agent.id, "error");
      expect(await alertsOf(client, rule.id)).toHaveLength(1);
      await log(client, agent.id, "success");
      expect((await alertsOf(client, rule.id)).map((a) => a.status)).toEqual(["resolved"]);
    });
  });

  test("two alerts for one rule and subject cannot be open at once", async () => {
    await asRoot(async (client) => {
      const { user, agent, rule } = await setUp(client);
      for (let i = 0; i < 3; i++) await log(client, agent.id, "error");
      const duplicate = await expectError(
        client,
        "insert into app_public.alerts (organization_id, alert_rule_id, subject_type, agent_id, severity, title) values ($1, $2, 'agent', $3, 'warning', 'again')",
        [user.organizationId, rule.id, agent.id],
      );
      expect(duplicate.code).toBe("23505");
    });
  });
});

describe("metric_threshold", () => {
  async function sample(client: Client, box: { id: string }, organizationId: string, value: number, secondsAgo: number, agentId: unknown = null) {
    await client.query(
      "insert into app_public.metric_samples (organization_id, box_id, agent_id, name, value, recorded_at) values ($1, $2, $3, 'cpu.percent', $4, now() - $5 * interval '1 second')",
      [organizationId, box.id, agentId, value, secondsAgo],
    );
  }

  test("opens when every sample over the window meets the condition, not when one dipped, and resolves on a clear sample", async () => {
    await asRoot(async (client) => {
      const user = await createUser(client);
      const box = await createBox(client, user);
      const rule = await createRule(client, user, {
        scope: "box", box_id: box.id, condition: "metric_threshold", metric: "cpu.percent", comparison: ">=", threshold: 95, window_seconds: 10,
      });
      await sample(client, box, user.organizationId, 97, 14);
      await sample(client, box, user.organizationId, 90, 9); // a dip inside the window
      await sample(client, box, user.organizationId, 99, 4);
      await sample(client, box, user.organizationId, 98, 1);
      expect(await alertsOf(client, rule.id)).toEqual([]);
      await client.query("delete from app_public.metric_samples where box_id = $1 and value = 90", [box.id]);
      await sample(client, box, user.organizationId, 96, 0);
      const [alert] = await alertsOf(client, rule.id);
      expect(alert).toMatchObject({ status: "open", subject_type: "box", subject_id: box.id, details: { metric: "cpu.percent", latest_value: 96, threshold: 95 } });
      await sample(client, box, user.organizationId, 50, 0);
      expect((await alertsOf(client, rule.id)).map((a) => a.status)).toEqual(["resolved"]);
    });
  });

  test("an agent's own metrics, reported with its key, are watched by a rule on that agent", async () => {
    await asRoot(async (client) => {
      const user = await createUser(client);
      const agent = await createAgent(client, user, { name: "cloud" });
      const key = await createAgentKey(client, user, agent.id);
      const rule = await createRule(client, user, {
        scope: "agent", agent_id: agent.id, condition: "metric_threshold", metric: "queue.depth", comparison: ">", threshold: 100, window_seconds: 0,
      });
      await asAgent(client, key, () => client.query("select app_public.report_agent_metrics('{\"queue.depth\": 50}', now() - interval '5 seconds')"));
      expect(await alertsOf(client, rule.id)).toEqual([]);
      await asAgent(client, key, () => client.query("select app_public.send_agent_heartbeat('{\"queue.depth\": 250, \"cpu.percent\": 3}')"));
      expect(await alertsOf(client, rule.id)).toMatchObject([{ status: "open", subject_type: "agent", subject_id: agent.id }]);
      const stored = await client.query("select box_id, name, value from app_public.metric_samples where agent_id = $1 order by name, value", [agent.id]);
      expect(stored.rows).toEqual([
        { box_id: null, name: "cpu.percent", value: 3 },
        { box_id: null, name: "queue.depth", value: 50 },
        { box_id: null, name: "queue.depth", value: 250 },
      ]);
    });
  });
});

describe("offline", () => {
  test("an agent whose heartbeat is overdue becomes inactive and raises an alert; its next heartbeat resolves it", async () => {
    await asRoot(async (client) => {
      const user = await createUser(client);
      const agent = await createAgent(client, user, { name: "sleepy", heartbeat_interval_seconds: 30 });
      const quiet = await createAgent(client, user, { name: "never heard from" });
      const key = await createAgentKey(client, user, agent.id);
      const rule = await createRule(client, user, { scope: "organization", condition: "offline", offline_after_seconds: 60 });
      expect(await asAgent(client, key, async () => (await client.query("select app_public.send_agent_heartbeat() as status")).rows[0]?.status)).toBe("active");
      await client.query("select app_private.sweep_alerts(3)");
      expect(await alertsOf(client, rule.id)).toEqual([]);

      await client.query("update app_public.agents set last_heartbeat_at = now() - interval '2 minutes' where id = $1", [agent.id]);
      await client.query("select app_private.sweep_alerts(3)");
      expect((await client.query("select status from app_public.agents where id = $1", [agent.id])).rows[0]).toEqual({ status: "inactive" });
      expect(await alertsOf(client, rule.id)).toMatchObject([{ status: "open", subject_type: "agent", subject_id: agent.id }]);
      expect((await alertsOf(client, rule.id)).some((a) => a.subject_id === quiet.id)).toBe(false);

      await asAgent(client, key, () => client.query("select app_public.send_agent_heartbeat()"));
      await client.query("select app_private.sweep_alerts(3)");
      expect((await alertsOf(client, rule.id)).map((a) => a.status)).toEqual(["resolved"]);
    });
  });

  test("a box that went offline and stays unseen raises an alert; back online, it resolves", async () => {
    await asRoot(async (client) => {
      const user = await createUser(client);
      const box = await createBox(client, user);
      const rule = await createRule(client, user, { scope: "box", box_id: box.id, condition: "offline", offline_after_seconds: 300 });
      await client.query("select app_private.sweep_alerts(3)");
      expect(await alertsOf(client, rule.id)).toEqual([]); // never connected: pending
      await client.query("update app_public.boxes set status = 'offline', last_seen_at = now() - interval '1 minute' where id = $1", [box.id]);
      await client.query("select app_private.sweep_alerts(3)");
      expect(await alertsOf(client, rule.id)).toEqual([]);
      await client.query("update app_public.boxes set last_seen_at = now() - interval '6 minutes' where id = $1", [box.id]);
      await client.query("select app_private.sweep_alerts(3)");
      expect(await alertsOf(client, rule.id)).toMatchObject([{ status: "open", subject_type: "box", subject_id: box.id }]);
      await client.query("update app_public.boxes set status = 'online', last_seen_at = now() where id = $1", [box.id]);
      await client.query("select app_private.sweep_alerts(3)");
      expect((await alertsOf(client, rule.id)).map((a) => a.status)).toEqual(["resolved"]);
    });
  });
});

describe("alert rules", () => {
  test("a rule's scope and condition must come with what they need; another organization's agent or box cannot be named", async () => {
    await asRoot(async (client) => {
      const [user, other] = [await createUser(client), await createUser(client)];
      const foreign = await createAgent(client, other);
      const foreignBox = await createBox(client, other);
      await asUser(client, user, async () => {
        const insert = (fields: string, values: unknown[]) =>
          expectError(client, `insert into app_public.alert_rules (organization_id, name, ${fields}) values ($1, 'r', ${values.map((_, i) => `$${i + 2}`).join(", ")})`, [
            user.organizationId,
            ...values,
          ]);
        expect((await insert("scope, condition, failure_threshold", ["agent", "consecutive_failures", 3])).code).toBe("23514");
        expect((await insert("scope, condition", ["organization", "metric_threshold"])).code).toBe("23514");
        expect((await insert("scope, agent_id, condition, failure_threshold", ["agent", foreign.id, "consecutive_failures", 3])).code).toBe("23503");
        expect((await insert("scope, box_id, condition, offline_after_seconds", ["box", foreignBox.id, "offline", 60])).code).toBe("23503");
      });
    });
  });
});
