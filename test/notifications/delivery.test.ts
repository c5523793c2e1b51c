/**
 * Notification delivery by the worker, to real local receivers: an alert
 * notifies every channel of its rule once (webhook signed with the channel's
 * secret, Slack, Telegram at a configurable Bot API, e-mail over SMTP);
 * failures are retried with back-off and every attempt is logged; hopeless
 * ones are given up at once.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "@jest/globals";
import { SIGNATURE_HEADER, TIMESTAMP_HEADER, verifyWebhook } from "../../src/schedules/signing.ts";
import { committedAs, rootQuery } from "../helpers/committed.ts";
import { createCommittedUser, removeUser, type TestUser } from "../helpers/identity.ts";
import { startHttpReceiver, startSmtpReceiver, type HttpReceiver, type SmtpReceiver } from "../helpers/receivers.ts";
import { TEST_ENCRYPTION_KEY } from "../helpers/server.ts";
import { eventually } from "../helpers/wait.ts";
import { startTestWorker, type TestWorker } from "../helpers/worker.ts";

let user: TestUser;
let http: HttpReceiver;
let smtp: SmtpReceiver;
let worker: TestWorker;
const failedOnce = new Set<string>();

// Inside one describe: the hooks run before the shared pools are closed (test/setup/after-env.ts).
describe("notifications", () => {
  beforeAll(async () => {
    user = await createCommittedUser();
    http = await startHttpReceiver((request) => {
      if (request.path.includes("/botREVOKED/")) return { status: 200, body: JSON.stringify({ ok: false, description: "Unauthorized" }) };
      if (request.path.includes("/sendMessage")) return { status: 200, body: JSON.stringify({ ok: true, result: { message_id: 1 } }) };
      if (request.path.startsWith("/flaky") && !failedOnce.has(request.path)) {
        failedOnce.add(request.path);
        return { status: 503, body: "busy" };
      }
      return { status: 200, body: "ok" };
    });
    smtp = await startSmtpReceiver();
    worker = await startTestWorker({
      DELIVERY_MAX_ATTEMPTS: "3",
      TELEGRAM_API_URL: `${http.url}/telegram`,
      SMTP_URL: `smtp://${smtp.host}:${smtp.port}`,
      SMTP_FROM: "alerts@agentplane.test",
    });
  });

  afterEach(async () => {
    await rootQuery("delete from app_public.alert_rules where organization_id = $1", [user.organizationId]);
    await rootQuery("delete from app_public.notification_channels where organization_id = $1", [user.organizationId]);
  });

  afterAll(async () => {
    await worker.stop();
    await http.close();
    await smtp.close();
    await removeUser(user);
  });

  async function channel(kind: string, config: Record<string, unknown>, secrets: Record<string, string> = {}): Promise<string> {
    const [row] = await rootQuery<{ id: string }>(
      "insert into app_public.notification_channels (organization_id, name, kind, config) values ($1, $2, $3, $4) returning id",
      [user.organizationId, `${kind} channel`, kind, JSON.stringify(config)],
    );
    if (Object.keys(secrets).length > 0) {
      await committedAs(user, (client) =>
        client.query("select app_hidden.set_notification_channel_secrets($1, $2, $3)", [row!.id, JSON.stringify(secrets), TEST_ENCRYPTION_KEY]),
      );
    }
    return row!.id;
  }

  function notificationsOf(channelId: string) {
    return rootQuery<{ status: string; attempts: number; last_error: string | null; event: string }>(
      "select status, attempts, last_error, event from app_public.notifications where notification_channel_id = $1",
      [channelId],
    );
  }

  function settled(channelId: string, timeoutMs = 15_000) {
    return eventually(
      async () => {
        const rows = await notificationsOf(channelId);
        return rows.length > 0 && rows.every((row) => row.status !== "pending") ? rows : undefined;
      }, timeoutMs);
  }

  describe("an alert", () => {
    test("notifies each channel of its rule once: signed webhook, Slack, Telegram, e-mail", async () => {
      const webhook = await channel("webhook", { url: `${http.url}/alerts` }, { signing_secret: "whsec_channel_own" });
      const slack = await channel("slack", {}, { webhook_url: `${http.url}/slack/T0/B0/XYZ` });
      const telegram = await channel("telegram", { chat_id: "-1001234" }, { bot_token: "4242:SECRET" });
      const email = await channel("email", { to: ["oncall@example.test"] });
      const [agent] = await rootQuery<{ id: string }>("insert into app_public.agents (organization_id, name) values ($1, 'indexer') returning id", [
        user.organizationId,
      ]);
      const [rule] = await rootQuery<{ id: string }>(
        `insert into app_public.alert_rules (organization_id, name, scope, agent_id, condition, failure_threshold, severity)
         values ($1, 'indexer keeps failing', 'agent', $2, 'consecutive_failures', 3, 'critical') returning id`,
        [user.organizationId, agent!.id],
      );
      for (const channelId of [webhook, slack, telegram, email]) {
        await rootQuery("insert into app_public.alert_rule_channels (organization_id, alert_rule_id, notification_channel_id) values ($1, $2, $3)", [
          user.organizationId, rule!.id, channelId,
        ]);
      }
      const fail = () => rootQuery("insert into app_public.agent_logs (agent_id, status, message) values ($1, 'error', 'index build failed')", [agent!.id]);
      for (let i = 0; i < 3; i++) await fail();
      for (const channelId of [webhook, slack, telegram, email]) {
        expect(await settled(channelId)).toEqual([{ status: "sent", attempts: 1, last_error: null, event: "alert.opened" }]);
      }
      // More failures while the alert is open notify nobody again.
      await fail();
      for (const channelId of [webhook, slack, telegram, email]) expect(await notificationsOf(channelId)).toHaveLength(1);

      const hook = http.requests.find((r) => r.path === "/alerts")!;
      expect(
        verifyWebhook({
          secret: "whsec_channel_own",
          body: hook.body,
          timestamp: hook.headers[TIMESTAMP_HEADER] as string,
          signature: hook.headers[SIGNATURE_HEADER] as string,
        }),
      ).toEqual({ ok: true });
      expect(JSON.parse(hook.body)).toMatchObject({
        event: "alert.opened",
        severity: "critical",
        title: "agent indexer failed 3 times in a row",
        details: { rule: "indexer keeps failing", consecutive_failures: 3, subject_type: "agent", subject_id: agent!.id },
      });
      expect(JSON.parse(http.requests.find((r) => r.path === "/slack/T0/B0/XYZ")!.body).text).toMatch(/^\[CRITICAL\] agent indexer failed 3 times in a row\n/);
      const sent = http.requests.find((r) => r.path === "/telegram/bot4242:SECRET/sendMessage")!;
      expect(JSON.parse(sent.body)).toMatchObject({ chat_id: "-1001234", text: expect.stringContaining("indexer keeps failing") });
      const [mail] = await smtp.waitFor(1);
      expect(mail).toMatchObject({ from: "alerts@agentplane.test", to: ["oncall@example.test"] });
      expect(mail!.raw).toContain("Subject: [critical] agent indexer failed 3 times in a row");
    });
  });

  describe("delivery", () => {
    test("a failure is retried after a back-off, and each attempt is logged", async () => {
      const flaky = await channel("webhook", { url: `${http.url}/flaky/webhook` });
      await committedAs(user, (client) => client.query("select app_public.send_test_notification($1)", [flaky]));
      const attempts = await eventually(async () => {
        const seen = http.requests.filter((r) => r.path === "/flaky/webhook");
        return seen.length >= 2 ? seen : undefined;
      }, 20_000);
      expect(attempts[1]!.at.getTime() - attempts[0]!.at.getTime()).toBeGreaterThan(1_000);
      expect(await settled(flaky)).toEqual([
        { status: "sent", attempts: 2, last_error: `POST ${http.url}/flaky/webhook: HTTP 503 busy`, event: "test" },
      ]);
    });

    test("what no retry can fix is given up at once, with the reason", async () => {
      const revoked = await channel("telegram", { chat_id: "1" }, { bot_token: "REVOKED" });
      const noSecret = await channel("slack", {});
      for (const id of [revoked, noSecret]) {
        await committedAs(user, (client) => client.query("select app_public.send_test_notification($1)", [id]));
      }
      expect(await settled(revoked)).toEqual([{ status: "failed", attempts: 1, last_error: "Telegram sendMessage refused: Unauthorized", event: "test" }]);
      expect(await settled(noSecret)).toEqual([
        { status: "failed", attempts: 1, last_error: "the channel has no Slack webhook URL (secret webhook_url)", event: "test" },
      ]);
    });

    test("an unreachable receiver is tried DELIVERY_MAX_ATTEMPTS times, then given up", async () => {
      const dead = await channel("webhook", { url: "http://127.0.0.1:9/nothing-listens" });
      await committedAs(user, (client) => client.query("select app_public.send_test_notification($1)", [dead]));
      const [row] = await settled(dead, 30_000);
      expect(row).toMatchObject({ status: "failed", attempts: 3, last_error: expect.stringMatching(/^POST http:\/\/127\.0\.0\.1:9\/nothing-listens: fetch failed/) });
    }, 40_000);
  });
});
