/** What a notification says: from an alert (raised or resolved) or a channel test. */
import type { NotificationMessage } from "./channels.ts";

export interface AlertFacts {
  title: string;
  severity: "warning" | "critical";
  ruleName: string;
  condition: string;
  subjectType: string;
  subjectId: string;
  triggeredAt: Date;
  resolvedAt: Date | null;
  details: Record<string, unknown>;
}

export function alertMessage(id: string, event: "alert.opened" | "alert.resolved", alert: AlertFacts): NotificationMessage {
  const opened = event === "alert.opened";
  const facts = Object.entries(alert.details)
    .map(([key, value]) => `${key}: ${typeof value === "string" ? value : JSON.stringify(value)}`)
    .join(", ");
  return {
    id,
    event,
    title: opened ? alert.title : `Resolved: ${alert.title}`,
    text: [
      `Rule "${alert.ruleName}" (${alert.condition.replaceAll("_", " ")}) ${opened ? "raised an alert" : "cleared"} about ${alert.subjectType} ${alert.subjectId}.`,
      opened ? `Since ${alert.triggeredAt.toISOString()}.` : `Resolved at ${(alert.resolvedAt ?? new Date()).toISOString()}.`,
      facts === "" ? "" : `Seen: ${facts}.`,
    ]
      .filter((line) => line !== "")
      .join("\n"),
    severity: alert.severity,
    details: { ...alert.details, rule: alert.ruleName, condition: alert.condition, subject_type: alert.subjectType, subject_id: alert.subjectId },
  };
}

export function testMessage(id: string, channelName: string): NotificationMessage {
  return {
    id,
    event: "test",
    title: `Test notification for "${channelName}"`,
    text: "agentplane can reach this channel: alerts for the rules that use it will arrive here.",
    severity: null,
    details: {},
  };
}
