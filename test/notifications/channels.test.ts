import { afterAll, beforeAll, describe, expect, test } from "@jest/globals";
import { deliver, type DeliveryOptions, type NotificationMessage } from "../../src/notifications/channels.ts";
import { DeliveryError } from "../../src/notifications/http.ts";
import { SIGNATURE_HEADER, TIMESTAMP_HEADER, verifyWebhook } from "../../src/schedules/signing.ts";
import { startHttpReceiver, startSmtpReceiver, type HttpReceiver, type SmtpReceiver } from "../helpers/receivers.ts";

const message: NotificationMessage = {
  id: "6f1c7a53-0000-4000-8000-000000000001",
  event: "alert.opened",
  title: "CPU high on box-1",
  text: "cpu >= 95 for 300 s (latest 97.5)",
  severity: "critical",
  details: { metric: "cpu", value: 97.5 },
};

let http: HttpReceiver;
let smtp: SmtpReceiver;
let options: DeliveryOptions;

beforeAll(async () => {
  http = await startHttpReceiver((request) => {
    if (request.path.includes("/sendMessage")) {
      const bad = request.path.includes("/botREVOKED");
      return { status: 200, body: JSON.stringify(bad ? { ok: false, description: "Unauthorized" } : { ok: true, result: {} }) };
    }
    const path = request.path.split("?")[0];
    if (path === "/fail-500") return { status: 500, body: "boom" };
    if (path === "/fail-404") return { status: 404, body: "no such hook" };
    if (path === "/slow") return new Promise((resolve) => setTimeout(() => resolve({ status: 200 }), 1_000));
    return { status: 200, body: "ok" };
  });
  smtp = await startSmtpReceiver({ user: "mailer", password: "s3cret" });
  options = {
    timeoutMs: 500,
    telegramApiUrl: `${http.url}/telegram/`,
    defaultSmtp: { host: smtp.host, port: smtp.port, secure: false, user: "mailer", password: "s3cret" },
    defaultFrom: "agentplane <alerts@agentplane.test>",
    allowPrivateNetworks: true,
  };
});

afterAll(async () => {
  await http.close();
  await smtp.close();
});

function lastRequest() {
  const request = http.requests.at(-1);
  if (request === undefined) throw new Error("no request received");
  return request;
}

describe("notification channels", () => {
  test("webhook: a signed JSON POST the receiver can verify", async () => {
    await deliver({ kind: "webhook", url: `${http.url}/hook`, signingSecrets: ["whsec_channel"] }, message, options);
    const request = lastRequest();
    expect(request.path).toBe("/hook");
    expect(request.headers["agentplane-event"]).toBe("alert.opened");
    expect(request.headers["agentplane-delivery"]).toBe(message.id);
    expect(JSON.parse(request.body)).toMatchObject({ id: message.id, severity: "critical", details: { value: 97.5 } });
    const verified = verifyWebhook({
      secret: "whsec_channel",
      body: request.body,
      timestamp: request.headers[TIMESTAMP_HEADER] as string,
      signature: request.headers[SIGNATURE_HEADER] as string,
    });
    expect(verified).toEqual({ ok: true });
  });

  test("slack: the incoming webhook gets a text message", async () => {
    await deliver({ kind: "slack", webhookUrl: `${http.url}/services/T000/B000/XXXX` }, message, options);
    const request = lastRequest();
    expect(request.path).toBe("/services/T000/B000/XXXX");
    expect(JSON.parse(request.body)).toEqual({ text: "[CRITICAL] CPU high on box-1\ncpu >= 95 for 300 s (latest 97.5)" });
  });

  test("telegram: sendMessage at the configured Bot API base URL", async () => {
    await deliver({ kind: "telegram", chatId: "-100123", botToken: "123:ABC" }, message, options);
    const request = lastRequest();
    expect(request.path).toBe("/telegram/bot123:ABC/sendMessage");
    expect(JSON.parse(request.body)).toMatchObject({ chat_id: "-100123", text: expect.stringContaining("CPU high") });
  });

  test("telegram: a refusal is permanent and does not show the token", async () => {
    const error = await deliver({ kind: "telegram", chatId: "1", botToken: "REVOKED" }, message, options).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DeliveryError);
    expect((error as DeliveryError).permanent).toBe(true);
    expect((error as DeliveryError).message).toBe("Telegram sendMessage refused: Unauthorized");
  });

  test("email: SMTP with login, to every recipient", async () => {
    await deliver({ kind: "email", to: ["ops@example.test", "oncall@example.test"], from: null, smtp: null }, message, options);
    const [mail] = await smtp.waitFor(1);
    expect(mail!.to).toEqual(["ops@example.test", "oncall@example.test"]);
    expect(mail!.from).toBe("alerts@agentplane.test");
    expect(mail!.user).toBe("mailer");
    expect(mail!.raw).toContain("Subject: [critical] CPU high on box-1");
    expect(mail!.raw).toContain("cpu >= 95 for 300 s");
    expect(mail!.raw).toContain(`X-Agentplane-Notification: ${message.id}`);
  });

  test("email: a wrong SMTP password is a permanent failure", async () => {
    const target = {
      kind: "email" as const,
      to: ["ops@example.test"],
      from: "me@example.test",
      smtp: { host: smtp.host, port: smtp.port, secure: false, user: "mailer", password: "wrong" },
    };
    const error = await deliver(target, message, options).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DeliveryError);
    expect((error as DeliveryError).permanent).toBe(true);
    expect((error as DeliveryError).message).toMatch(/^SMTP 127\.0\.0\.1:\d+: .*Invalid login/);
  });

  test("email with no server anywhere is a permanent failure", async () => {
    const error = await deliver({ kind: "email", to: ["a@b.test"], from: null, smtp: null }, message, { ...options, defaultSmtp: null }).catch(
      (e: unknown) => e,
    );
    expect((error as DeliveryError).permanent).toBe(true);
  });

  test("HTTP failures: 5xx and time-outs are retryable, other 4xx are not", async () => {
    const at = (path: string) => deliver({ kind: "webhook", url: `${http.url}${path}`, signingSecrets: ["s"] }, message, options).catch((e: unknown) => e);
    const server = (await at("/fail-500")) as DeliveryError;
    expect([server.permanent, server.message]).toEqual([false, `POST ${http.url}/fail-500: HTTP 500 boom`]);
    const missing = (await at("/fail-404")) as DeliveryError;
    expect(missing.permanent).toBe(true);
    const slow = (await at("/slow")) as DeliveryError;
    expect([slow.permanent, slow.message]).toEqual([false, `POST ${http.url}/slow: no answer within 500 ms`]);
    const refused = (await deliver({ kind: "webhook", url: "ftp://example.test/x", signingSecrets: ["s"] }, message, options).catch(
      (e: unknown) => e,
    )) as DeliveryError;
    expect(refused.permanent).toBe(true);
  });

  test("internal addresses are refused unless private networks are allowed", async () => {
    const closed = { ...options, allowPrivateNetworks: false };
    const local = (await deliver({ kind: "webhook", url: `${http.url}/hook`, signingSecrets: ["s"] }, message, closed).catch((e: unknown) => e)) as DeliveryError;
    expect([local.permanent, local.message]).toEqual([true, "127.0.0.1 is an internal address (127.0.0.1): deliveries go to public endpoints only"]);
    for (const url of ["http://localhost/x", "http://169.254.169.254/latest/meta-data", "http://10.1.2.3/", "http://[::1]:8080/", "http://[::ffff:192.168.0.1]/"]) {
      const error = (await deliver({ kind: "slack", webhookUrl: url }, message, closed).catch((e: unknown) => e)) as DeliveryError;
      expect([url, error.permanent, error.message]).toEqual([url, true, expect.stringContaining("is an internal address")]);
    }
    const smtpHost = (await deliver(
      { kind: "email", to: ["a@b.test"], from: null, smtp: { host: "127.0.0.1", port: smtp.port, secure: false, user: null, password: null } },
      message,
      closed,
    ).catch((e: unknown) => e)) as DeliveryError;
    expect(smtpHost.message).toBe("127.0.0.1 is an internal address (127.0.0.1): deliveries go to public endpoints only");
    // The configured Telegram API and SMTP server are not customers' endpoints.
    await deliver({ kind: "telegram", chatId: "1", botToken: "1:A" }, message, closed);
    await deliver({ kind: "email", to: ["ops@example.test"], from: null, smtp: null }, message, closed);
  });

  test("a Slack URL never appears in an error", async () => {
    const error = (await deliver({ kind: "slack", webhookUrl: `${http.url}/fail-500?token=abc` }, message, options).catch(
      (e: unknown) => e,
    )) as DeliveryError;
    expect(error.message).toBe(`POST slack webhook at ${new URL(http.url).host}: HTTP 500 boom`);
  });
});
