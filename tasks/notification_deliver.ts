/**
 * `notification_deliver` { notificationId }: sends one notification to its
 * channel. Each attempt is logged on the notification (attempts, last_error);
 * a failure is retried by graphile-worker with exponential back-off until
 * DELIVERY_MAX_ATTEMPTS, or given up at once when it cannot succeed (a 4xx,
 * a refused bot token, a channel without its secret, a disabled channel).
 */
import type { Task } from "graphile-worker";
import { deliver } from "../src/notifications/channels.ts";
import { attemptDelivery } from "../src/notifications/attempt.ts";
import { DeliveryError } from "../src/notifications/http.ts";
import { alertMessage, testMessage } from "../src/notifications/messages.ts";
import { channelTarget, type StoredChannel } from "../src/notifications/targets.ts";
import { payloadString, type TaskContext } from "./context.ts";

interface NotificationRow {
  id: string;
  organization_id: string;
  status: string;
  event: "alert.opened" | "alert.resolved" | "test";
  kind: StoredChannel["kind"];
  config: Record<string, unknown>;
  secrets: Record<string, unknown>;
  channel_name: string;
  channel_enabled: boolean;
  title: string | null;
  severity: "warning" | "critical" | null;
  details: Record<string, unknown> | null;
  subject_type: string | null;
  subject_id: string | null;
  triggered_at: Date | null;
  resolved_at: Date | null;
  rule_name: string | null;
  condition: string | null;
}

const NOTIFICATION_QUERY = `
  select n.id, n.organization_id, n.status, n.event, c.kind, c.config, c.name as channel_name, c.enabled as channel_enabled,
         app_private.notification_channel_secrets(c.id, $2) as secrets,
         a.title, a.severity, a.details, a.subject_type, a.subject_id, a.triggered_at, a.resolved_at,
         r.name as rule_name, r.condition
  from app_public.notifications n
  join app_public.notification_channels c on c.id = n.notification_channel_id
  left join app_public.alerts a on a.id = n.alert_id
  left join app_public.alert_rules r on r.id = a.alert_rule_id
  where n.id = $1`;

function messageOf(row: NotificationRow) {
  if (row.event === "test" || row.title === null) return testMessage(row.id, row.channel_name);
  return alertMessage(row.id, row.event, {
    title: row.title,
    severity: row.severity ?? "warning",
    ruleName: row.rule_name ?? "",
    condition: row.condition ?? "",
    subjectType: row.subject_type ?? "",
    subjectId: row.subject_id ?? "",
    triggeredAt: row.triggered_at ?? new Date(),
    resolvedAt: row.resolved_at,
    details: row.details ?? {},
  });
}

export function notificationDeliver({ config }: TaskContext): Task {
  return async (payload, helpers) => {
    const notificationId = payloadString(payload, "notificationId");
    const { rows } = await helpers.query<NotificationRow>(NOTIFICATION_QUERY, [notificationId, config.encryptionKey]);
    const row = rows[0];
    if (row === undefined || row.status !== "pending") return; // gone, or already settled by an earlier run
    const options = {
      timeoutMs: config.notifications.timeoutMs,
      telegramApiUrl: config.notifications.telegramApiUrl,
      defaultSmtp: config.notifications.smtp,
      defaultFrom: config.notifications.smtpFrom,
      allowPrivateNetworks: config.notifications.allowPrivateNetworks,
    };
    const outcome = await attemptDelivery({
      attempt: helpers.job.attempts,
      maxAttempts: config.notifications.maxAttempts,
      async send() {
        if (!row.channel_enabled) throw new DeliveryError("the channel is disabled", { permanent: true });
        const target = await channelTarget(row, async () => {
          const secrets = await helpers.query<{ secret: string }>("select secret from app_private.webhook_signing_secrets($1, $2) secret", [
            row.organization_id,
            config.encryptionKey,
          ]);
          return secrets.rows.map((secret) => secret.secret);
        });
        await deliver(target, messageOf(row), options);
      },
      async record(result) {
        await helpers.query("select app_private.record_notification_attempt($1, $2, $3, $4)", [
          notificationId,
          result.delivered,
          result.delivered ? null : result.error,
          result.delivered ? false : result.giveUp,
        ]);
      },
    });
    helpers.logger.debug(`notification ${notificationId} (${row.kind}): ${outcome}`);
  };
}
