/**
 * The schedules part of the world: an agent type, an agent with an API key
 * and a log, a webhook cron job with an execution, a notification channel, an
 * alert rule on that channel, an alert and its notification. Rows that users
 * write go in as A's member, through row-level security; the rest (what the
 * scheduler and the alert evaluation write) as root.
 */
import type { Client } from "../db.ts";
import { asUser, uniqueSuffix } from "../identity.ts";
import type { World } from "./index.ts";

async function one<T>(client: Client, sql: string, values: unknown[]): Promise<T> {
  const { rows } = await client.query(sql, values);
  if (rows[0] === undefined) throw new Error(`no row from: ${sql}`);
  return rows[0] as T;
}

export async function addScheduleRows(client: Client, world: World): Promise<void> {
  const org = world.organizationId;
  // A catalog row (agent types are readable by every signed-in user: see publicTables).
  const type = await one<{ id: string }>(
    client,
    "insert into app_public.agent_types (name, description, required_params) values ($1, 'world type', '{region}') returning id",
    [`world-${uniqueSuffix()}`],
  );
  const { agentId, cronjobId, channelId, ruleId } = await asUser(client, world.member, async () => {
    const agent = await one<{ id: string }>(
      client,
      `insert into app_public.agents (organization_id, type_id, name, config, webhook_url)
       values ($1, $2, 'world agent', '{"region": "eu"}', 'https://agents.example.test/world') returning id`,
      [org, type.id],
    );
    await client.query("select app_public.create_agent_api_key($1, 'world key')", [agent.id]);
    await client.query("insert into app_public.agent_logs (agent_id, status, message) values ($1, 'success', 'world log')", [agent.id]);
    const cronjob = await one<{ id: string }>(
      client,
      `insert into app_public.cronjobs (organization_id, agent_id, name, schedule, timezone, action, task, payload)
       values ($1, $2, 'world job', '*/15 * * * *', 'Europe/Berlin', 'webhook', 'ping', '{"url": "https://hooks.example.test/world"}')
       returning id`,
      [org, agent.id],
    );
    const channel = await one<{ id: string }>(
      client,
      `insert into app_public.notification_channels (organization_id, name, kind, config)
       values ($1, 'world channel', 'webhook', '{"url": "https://hooks.example.test/alerts"}') returning id`,
      [org],
    );
    const rule = await one<{ id: string }>(
      client,
      `insert into app_public.alert_rules (organization_id, name, scope, agent_id, condition, failure_threshold)
       values ($1, 'world rule', 'agent', $2, 'consecutive_failures', 3) returning id`,
      [org, agent.id],
    );
    await client.query(
      "insert into app_public.alert_rule_channels (organization_id, alert_rule_id, notification_channel_id) values ($1, $2, $3)",
      [org, rule.id, channel.id],
    );
    return { agentId: agent.id, cronjobId: cronjob.id, channelId: channel.id, ruleId: rule.id };
  });
  await client.query(
    `insert into app_public.cronjob_executions (organization_id, cronjob_id, scheduled_for, status, finished_at, duration_ms, output)
     values ($1, $2, now() - interval '1 minute', 'success', now(), 60000, 'ok')`,
    [org, cronjobId],
  );
  // Three errors in a row open the rule's alert, which queues a notification to the channel.
  for (let i = 0; i < 3; i++) {
    await client.query("insert into app_public.agent_logs (agent_id, status, message) values ($1, 'error', 'world failure')", [agentId]);
  }
  const alerts = await client.query("select 1 from app_public.alerts where alert_rule_id = $1", [ruleId]);
  const notifications = await client.query("select 1 from app_public.notifications where notification_channel_id = $1", [channelId]);
  if (alerts.rowCount !== 1 || notifications.rowCount !== 1) throw new Error("the world's alert rule did not raise its alert");
}
