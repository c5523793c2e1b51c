/**
 * A notification channel as stored (kind, non-secret config, decrypted
 * secrets) turned into something `deliver` can send to. The database checks
 * the config's shape on write; what is missing here is a permanent failure.
 */
import type { ChannelTarget } from "./channels.ts";
import { DeliveryError } from "./http.ts";

export interface StoredChannel {
  kind: "webhook" | "slack" | "telegram" | "email";
  config: Record<string, unknown>;
  secrets: Record<string, unknown>;
}

function text(value: unknown): string | null {
  if (typeof value === "string" && value !== "") return value;
  if (typeof value === "number") return String(value);
  return null;
}

function required(value: unknown, what: string): string {
  const found = text(value);
  if (found === null) throw new DeliveryError(`the channel has no ${what}`, { permanent: true });
  return found;
}

/** `organizationSecrets` sign webhook channels that have no signing secret of their own. */
export function channelTarget(channel: StoredChannel, organizationSecrets: () => Promise<string[]>): Promise<ChannelTarget> | ChannelTarget {
  const { config, secrets } = channel;
  switch (channel.kind) {
    case "webhook": {
      const url = required(config.url, "url");
      const own = text(secrets.signing_secret);
      if (own !== null) return { kind: "webhook", url, signingSecrets: [own] };
      return organizationSecrets().then((signingSecrets) => ({ kind: "webhook", url, signingSecrets }));
    }
    case "slack":
      return { kind: "slack", webhookUrl: required(secrets.webhook_url, "Slack webhook URL (secret webhook_url)") };
    case "telegram":
      return { kind: "telegram", chatId: required(config.chat_id, "chat_id"), botToken: required(secrets.bot_token, "bot token (secret bot_token)") };
    case "email": {
      const to = Array.isArray(config.to) ? config.to.filter((address): address is string => typeof address === "string") : [];
      if (to.length === 0) throw new DeliveryError("the channel has no recipients (config.to)", { permanent: true });
      const host = text(config.smtp_host);
      const secure = config.smtp_secure === true;
      return {
        kind: "email",
        to,
        from: text(config.from),
        smtp:
          host === null
            ? null
            : {
                host,
                port: typeof config.smtp_port === "number" ? config.smtp_port : secure ? 465 : 587,
                secure,
                user: text(config.smtp_user),
                password: text(secrets.smtp_password),
              },
      };
    }
  }
}
