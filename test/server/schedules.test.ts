/**
 * Agents, schedules and notification channels through GraphQL, as clients
 * and agents use them: clear refusals, what an agent key may do (and what it
 * may not), write-only secrets, the signing secret, a test notification.
 */
import { afterAll, beforeAll, describe, expect, test } from "@jest/globals";
import { committedAs, rootQuery } from "../helpers/committed.ts";
import { createCommittedUser, removeUser, type TestUser } from "../helpers/identity.ts";
import { startHttpReceiver, type HttpReceiver } from "../helpers/receivers.ts";
import { startTestServer, TEST_ENCRYPTION_KEY, type GraphQLResponse, type TestServer } from "../helpers/server.ts";
import { eventually } from "../helpers/wait.ts";

let server: TestServer;
let telegram: HttpReceiver;
let owner: TestUser;
let member: TestUser;
let outsider: TestUser;

// Inside one describe: the hooks run before the shared pools are closed (test/setup/after-env.ts).
describe("schedules through GraphQL", () => {
  beforeAll(async () => {
    telegram = await startHttpReceiver(() => ({ status: 200, body: JSON.stringify({ ok: true, result: {} }) }));
    server = await startTestServer({ worker: true, env: { TELEGRAM_API_URL: telegram.url } });
    [owner, member, outsider] = [await createCommittedUser(), await createCommittedUser(), await createCommittedUser()];
    await rootQuery("insert into app_public.organization_memberships (organization_id, user_id, role) values ($1, $2, 'member')", [
      owner.organizationId,
      member.id,
    ]);
  });

  afterAll(async () => {
    await server.close();
    await telegram.close();
    for (const user of [owner, member, outsider]) await removeUser(user);
  });

  function gql<T = Record<string, unknown>>(token: string, query: string, variables: Record<string, unknown> = {}): Promise<GraphQLResponse<T>> {
    return server.graphql<T>(query, variables, { token });
  }

  test("an invalid cron schedule is refused with the database's message", async () => {
    const result = await gql(
      member.token,
      `mutation ($org: UUID!) {
         createCronjob(input: { cronjob: { organizationId: $org, name: "bad", schedule: "*/15 * * *", action: "webhook", payload: { url: "https://x.test" } } }) {
           cronjob { rowId }
         }
       }`,
      { org: owner.organizationId },
    );
    expect(result.errors?.[0]).toMatchObject({
      message: 'invalid cron schedule "*/15 * * *": expected 5 fields (minute hour day month weekday), got 4',
      extensions: { code: "22023" },
    });
  });

  describe("with an agent key", () => {
    let agentId: string;
    let key: string;

    beforeAll(async () => {
      const created = await gql<{ createAgent: { agent: { rowId: string } } }>(
        member.token,
        `mutation ($org: UUID!) { createAgent(input: { agent: { organizationId: $org, name: "reporter-bot" } }) { agent { rowId } } }`,
        { org: owner.organizationId },
      );
      agentId = created.data!.createAgent.agent.rowId;
      const issued = await gql<{ createAgentApiKey: { result: { key: string } } }>(
        member.token,
        `mutation ($agent: UUID!) { createAgentApiKey(input: { agentId: $agent, name: "prod" }) { result { key agentApiKeyId } } }`,
        { agent: agentId },
      );
      key = issued.data!.createAgentApiKey.result.key;
    });

    test("an agent sends heartbeats with metrics and writes its own logs", async () => {
      const beat = await gql(key, `mutation ($metrics: JSON) { sendAgentHeartbeat(input: { metrics: $metrics }) { result } }`, {
        metrics: { "cpu.percent": 12.5 },
      });
      expect(beat).toMatchObject({ data: { sendAgentHeartbeat: { result: "active" } } });
      const logged = await gql(
        key,
        `mutation ($agent: UUID!) { createAgentLog(input: { agentLog: { agentId: $agent, status: "success", message: "report sent" } }) { agentLog { status } } }`,
        { agent: agentId },
      );
      expect(logged).toMatchObject({ data: { createAgentLog: { agentLog: { status: "success" } } } });
      const seen = await gql<{ agent: { status: string; logs: { nodes: Array<{ message: string }> } } }>(
        member.token,
        `query ($agent: UUID!) { agent(rowId: $agent) { status lastHeartbeatAt logs { nodes { message } } } }`,
        { agent: agentId },
      );
      expect(seen.data?.agent).toMatchObject({ status: "active", logs: { nodes: [{ message: "report sent" }] } });
    });

    test("an agent key sees nothing else and can change nothing else", async () => {
      const read = await gql<Record<string, { totalCount: number }>>(
        key,
        `{ agents { totalCount } cronjobs { totalCount } alertRules { totalCount } notificationChannels { totalCount }
           boxes { totalCount } organizations { totalCount } agentApiKeys { totalCount } }`,
      );
      expect(Object.values(read.data ?? {}).map((connection) => connection.totalCount)).toEqual([0, 0, 0, 0, 0, 0, 0]);
      const write = await gql(
        key,
        `mutation ($org: UUID!) { createAgent(input: { agent: { organizationId: $org, name: "spawned" } }) { agent { rowId } } }`,
        { org: owner.organizationId },
      );
      expect(write.errors?.[0]?.extensions).toMatchObject({ code: "42501" });
      const otherKey = await gql(key, `mutation ($agent: UUID!) { createAgentApiKey(input: { agentId: $agent }) { result { key } } }`, { agent: agentId });
      expect(otherKey.errors?.[0]?.extensions).toMatchObject({ code: "42501" });
    });
  });

  describe("notification channels", () => {
    let channelId: string;

    beforeAll(async () => {
      const created = await gql<{ createNotificationChannel: { notificationChannel: { rowId: string } } }>(
        member.token,
        `mutation ($org: UUID!) {
           createNotificationChannel(input: { notificationChannel: { organizationId: $org, name: "ops chat", kind: "telegram", config: { chat_id: "-100555" } } }) {
             notificationChannel { rowId }
           }
         }`,
        { org: owner.organizationId },
      );
      channelId = created.data!.createNotificationChannel.notificationChannel.rowId;
    });

    test("secrets are set, encrypted, and never readable; only members of the organization set them", async () => {
      const set = await gql(
        member.token,
        `mutation ($id: UUID!) {
           setNotificationChannelSecrets(input: { notificationChannelId: $id, secrets: { bot_token: "777:TOP-SECRET" } }) {
             notificationChannel { secretFields config }
           }
         }`,
        { id: channelId },
      );
      expect(set).toMatchObject({ data: { setNotificationChannelSecrets: { notificationChannel: { secretFields: ["bot_token"], config: { chat_id: "-100555" } } } } });
      expect(JSON.stringify(set)).not.toContain("TOP-SECRET");
      const [stored] = await rootQuery<{ raw: string; plain: string }>(
        "select encode(ciphertext, 'escape') as raw, pgp_sym_decrypt(ciphertext, $2) as plain from app_private.notification_channel_secrets where notification_channel_id = $1",
        [channelId, TEST_ENCRYPTION_KEY],
      );
      expect(stored!.raw).not.toContain("TOP-SECRET");
      expect(JSON.parse(stored!.plain)).toEqual({ bot_token: "777:TOP-SECRET" });
      const wrongKey = await rootQuery("select pgp_sym_decrypt(ciphertext, 'not the key') from app_private.notification_channel_secrets where notification_channel_id = $1", [
        channelId,
      ]).catch((error: Error) => error.message);
      expect(wrongKey).toBe("Wrong key or corrupt data");

      const refused = await gql(
        outsider.token,
        `mutation ($id: UUID!) { setNotificationChannelSecrets(input: { notificationChannelId: $id, secrets: { bot_token: "mine" } }) { notificationChannel { rowId } } }`,
        { id: channelId },
      );
      expect(refused.errors?.[0]).toMatchObject({ message: `there is no notification channel ${channelId} you can manage`, extensions: { code: "42501" } });
      const wrongName = await gql(
        member.token,
        `mutation ($id: UUID!) { setNotificationChannelSecrets(input: { notificationChannelId: $id, secrets: { password: "x" } }) { notificationChannel { rowId } } }`,
        { id: channelId },
      );
      expect(wrongName.errors?.[0]?.message).toBe('a telegram channel has no secret "password" (it has "bot_token")');
    });

    test("a test notification reaches the channel through the configured Bot API", async () => {
      await committedAs(member, (client) =>
        client.query("select app_hidden.set_notification_channel_secrets($1, '{\"bot_token\": \"777:TEST\"}', $2)", [channelId, TEST_ENCRYPTION_KEY]),
      );
      const sent = await gql<{ sendTestNotification: { result: { rowId: string; status: string } } }>(
        member.token,
        `mutation ($id: UUID!) { sendTestNotification(input: { notificationChannelId: $id }) { result { rowId status event } } }`,
        { id: channelId },
      );
      expect(sent.data?.sendTestNotification.result).toMatchObject({ status: "pending", event: "test" });
      const request = await eventually(async () => telegram.requests.find((r) => r.path === "/bot777:TEST/sendMessage"), 15_000);
      expect(JSON.parse(request.body)).toMatchObject({ chat_id: "-100555", text: expect.stringContaining('Test notification for "ops chat"') });
      const status = await eventually(async () => {
        const result = await gql<{ notification: { status: string } }>(
          member.token,
          `query ($id: UUID!) { notification(rowId: $id) { status attempts } }`,
          { id: sent.data!.sendTestNotification.result.rowId },
        );
        return result.data?.notification.status === "sent" ? result.data.notification : undefined;
      }, 15_000);
      expect(status).toMatchObject({ status: "sent", attempts: 1 });
    });
  });

  test("owners and admins rotate the webhook signing secret and see it once; members cannot", async () => {
    const rotate = (token: string) =>
      gql<{ rotateWebhookSigningSecret: { secret: string } }>(
        token,
        `mutation ($org: UUID!) { rotateWebhookSigningSecret(input: { organizationId: $org }) { secret } }`,
        { org: owner.organizationId },
      );
    const first = await rotate(owner.token);
    expect(first.data?.rotateWebhookSigningSecret.secret).toMatch(/^whsec_[0-9a-f]{48}$/);
    const second = await rotate(owner.token);
    const secrets = await rootQuery<{ secret: string }>("select secret from app_private.webhook_signing_secrets($1, $2) secret", [
      owner.organizationId,
      TEST_ENCRYPTION_KEY,
    ]);
    // The new one signs first; the one it replaced still signs during its grace period.
    expect(secrets.map((row) => row.secret)).toEqual([second.data?.rotateWebhookSigningSecret.secret, first.data?.rotateWebhookSigningSecret.secret]);
    expect((await rotate(member.token)).errors?.[0]?.extensions).toMatchObject({ code: "42501" });
  });
});
