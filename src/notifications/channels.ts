/**
 * Notification delivery, one client per channel kind:
 *
 *   webhook   a signed JSON POST (see src/schedules/signing.ts)
 *   slack     a POST to a Slack incoming-webhook URL
 *   telegram  the Bot API's sendMessage, at a configurable base URL
 *   email     SMTP through nodemailer, to the channel's or the configured server
 *
 * Each throws a DeliveryError on failure (`permanent` when a retry cannot help).
 */
import { createTransport } from "nodemailer";
import type { SmtpServerConfig } from "../config.ts";
import { signWebhook } from "../schedules/signing.ts";
import { assertPublicHost } from "./address-guard.ts";
import { DeliveryError, postJson } from "./http.ts";

export interface NotificationMessage {
  /** The notification's id: receivers can use it to drop duplicates. */
  id: string;
  event: "alert.opened" | "alert.resolved" | "test";
  title: string;
  text: string;
  severity: "warning" | "critical" | null;
  details: Record<string, unknown>;
}

export type ChannelTarget =
  | { kind: "webhook"; url: string; signingSecrets: string[] }
  | { kind: "slack"; webhookUrl: string }
  | { kind: "telegram"; chatId: string; botToken: string }
  | { kind: "email"; to: string[]; from: string | null; smtp: SmtpServer | null };

/** An SMTP server: the configured one (SMTP_URL) or a channel's own. */
export type SmtpServer = SmtpServerConfig;

export interface DeliveryOptions {
  timeoutMs: number;
  /** Bot API base URL, normally https://api.telegram.org. */
  telegramApiUrl: string;
  /** The server for email channels that name none. */
  defaultSmtp: SmtpServer | null;
  /** The sender for email channels that name none. */
  defaultFrom: string;
  /** Whether customer endpoints may be internal addresses (DELIVERY_ALLOW_PRIVATE_NETWORKS). */
  allowPrivateNetworks: boolean;
}

function plainText(message: NotificationMessage): string {
  const severity = message.severity === null ? "" : `[${message.severity.toUpperCase()}] `;
  return `${severity}${message.title}\n${message.text}`;
}

async function sendWebhook(target: Extract<ChannelTarget, { kind: "webhook" }>, message: NotificationMessage, options: DeliveryOptions) {
  const body = JSON.stringify({ id: message.id, event: message.event, title: message.title, text: message.text, severity: message.severity, details: message.details });
  await postJson(target.url, body, {
    timeoutMs: options.timeoutMs,
    allowPrivateNetworks: options.allowPrivateNetworks,
    headers: { ...signWebhook(target.signingSecrets, body), "agentplane-event": message.event, "agentplane-delivery": message.id },
  });
}

async function sendSlack(target: Extract<ChannelTarget, { kind: "slack" }>, message: NotificationMessage, options: DeliveryOptions) {
  // The incoming-webhook URL is the credential: errors show only its host.
  await postJson(target.webhookUrl, JSON.stringify({ text: plainText(message) }), {
    timeoutMs: options.timeoutMs,
    allowPrivateNetworks: options.allowPrivateNetworks,
    displayUrl: `slack webhook at ${new URL(target.webhookUrl).host}`,
  });
}

async function sendTelegram(target: Extract<ChannelTarget, { kind: "telegram" }>, message: NotificationMessage, options: DeliveryOptions) {
  const url = `${options.telegramApiUrl.replace(/\/+$/, "")}/bot${target.botToken}/sendMessage`;
  // The Bot API's address is configuration (TELEGRAM_API_URL), not a customer's: no address check.
  const result = await postJson(url, JSON.stringify({ chat_id: target.chatId, text: plainText(message), disable_web_page_preview: true }), {
    timeoutMs: options.timeoutMs,
    allowPrivateNetworks: true,
    displayUrl: "Telegram sendMessage",
  });
  let answer: { ok?: unknown; description?: unknown };
  try {
    answer = JSON.parse(result.body) as typeof answer;
  } catch {
    throw new DeliveryError("Telegram sendMessage: the answer is not JSON", { permanent: false });
  }
  if (answer.ok !== true) {
    throw new DeliveryError(`Telegram sendMessage refused: ${String(answer.description ?? "no description")}`, { permanent: true });
  }
}

async function sendEmail(target: Extract<ChannelTarget, { kind: "email" }>, message: NotificationMessage, options: DeliveryOptions) {
  const smtp = target.smtp ?? options.defaultSmtp;
  if (smtp === null) throw new DeliveryError("no SMTP server: set SMTP_URL or the channel's smtp_host", { permanent: true });
  // A channel's own server is a customer's; the configured one (SMTP_URL) is not checked.
  if (target.smtp !== null && !options.allowPrivateNetworks) await assertPublicHost(target.smtp.host);
  const transport = createTransport({
    host: smtp.host,
    port: smtp.port,
    secure: smtp.secure,
    ...(smtp.user === null ? {} : { auth: { user: smtp.user, pass: smtp.password ?? "" } }),
    connectionTimeout: options.timeoutMs,
    greetingTimeout: options.timeoutMs,
    socketTimeout: options.timeoutMs,
  });
  try {
    await transport.sendMail({
      from: target.from ?? options.defaultFrom,
      to: target.to,
      subject: `${message.severity === null ? "" : `[${message.severity}] `}${message.title}`,
      text: message.text,
      headers: { "X-Agentplane-Notification": message.id, "X-Agentplane-Event": message.event },
    });
  } catch (error) {
    const code = (error as { responseCode?: unknown }).responseCode;
    // 5xx SMTP replies (bad recipient, refused auth) will not change on retry.
    const permanent = typeof code === "number" && code >= 500;
    throw new DeliveryError(`SMTP ${smtp.host}:${smtp.port}: ${(error as Error).message}`, { permanent, cause: error });
  } finally {
    transport.close();
  }
}

/** Delivers one message to one channel; throws a DeliveryError when it could not. */
export async function deliver(target: ChannelTarget, message: NotificationMessage, options: DeliveryOptions): Promise<void> {
  switch (target.kind) {
    case "webhook":
      return sendWebhook(target, message, options);
    case "slack":
      return sendSlack(target, message, options);
    case "telegram":
      return sendTelegram(target, message, options);
    case "email":
      return sendEmail(target, message, options);
  }
}
