/**
 * Agents, keys, channels and rules for schedule and alert tests (boxes: ./boxes.ts), made inside the
 * caller's (root) transaction, through the API functions as a user where one
 * would use them.
 */
import type { Client } from "./db.ts";
import { asUser, uniqueSuffix, type TestUser } from "./identity.ts";

export type Row = Record<string, unknown>;

/** Inserts a row as `user` (row-level security applies) and returns it. */
export async function insertAs(client: Client, user: TestUser, table: string, columns: Row): Promise<Row> {
  const names = Object.keys(columns);
  const values = Object.values(columns).map((value) => (typeof value === "object" && value !== null ? JSON.stringify(value) : value));
  const { rows } = await asUser(client, user, () =>
    client.query(
      `insert into app_public.${table} (${names.join(", ")}) values (${names.map((_, i) => `$${i + 1}`).join(", ")}) returning id`,
      values,
    ),
  );
  const id = rows[0]?.id;
  return (await client.query(`select * from app_public.${table} where id = $1`, [id])).rows[0] as Row;
}

export function createAgent(client: Client, user: TestUser, fields: Row = {}): Promise<Row> {
  return insertAs(client, user, "agents", { organization_id: user.organizationId, name: `agent-${uniqueSuffix()}`, ...fields });
}

/** An API key for the agent, made by `user`. */
export async function createAgentKey(client: Client, user: TestUser, agentId: unknown): Promise<string> {
  const { rows } = await asUser(client, user, () =>
    client.query<{ key: string }>("select key from app_public.create_agent_api_key($1, 'test')", [agentId]),
  );
  return rows[0]!.key;
}

/** Runs fn as the visitor holding an agent key. */
export function asAgent<T>(client: Client, key: string, fn: () => Promise<T>): Promise<T> {
  return asUser(client, { token: key }, fn);
}

/** Adds `user` to `organizationId` with `role`. */
export async function addMember(client: Client, organizationId: string, user: TestUser, role: string): Promise<void> {
  await client.query("insert into app_public.organization_memberships (organization_id, user_id, role) values ($1, $2, $3)", [
    organizationId,
    user.id,
    role,
  ]);
}

/** An alert rule (as `user`) with `channelIds` attached. */
export async function createRule(client: Client, user: TestUser, fields: Row, channelIds: unknown[] = []): Promise<Row> {
  const rule = await insertAs(client, user, "alert_rules", { organization_id: user.organizationId, name: `rule-${uniqueSuffix()}`, ...fields });
  for (const channelId of channelIds) {
    await insertAs(client, user, "alert_rule_channels", {
      organization_id: user.organizationId,
      alert_rule_id: rule.id,
      notification_channel_id: channelId,
    });
  }
  return rule;
}

export function createChannel(client: Client, user: TestUser, kind: string, config: Row): Promise<Row> {
  return insertAs(client, user, "notification_channels", { organization_id: user.organizationId, name: `${kind}-${uniqueSuffix()}`, kind, config });
}
