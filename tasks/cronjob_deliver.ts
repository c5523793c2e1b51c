/**
 * `cronjob_deliver` { executionId }: the HTTP side of a cron job execution,
 * a signed POST (see src/schedules/signing.ts) to the `webhook` action's
 * payload.url, or of the task to a cloud agent's webhook_url. A 2xx finishes
 * the execution as a success (the answer is its output); failures are
 * retried with graphile-worker's back-off up to DELIVERY_MAX_ATTEMPTS, each
 * attempt counted on the execution, then it fails.
 */
import type { Task } from "graphile-worker";
import { attemptDelivery } from "../src/notifications/attempt.ts";
import { DeliveryError, postJson } from "../src/notifications/http.ts";
import { signWebhook } from "../src/schedules/signing.ts";
import { payloadString, type TaskContext } from "./context.ts";

interface ExecutionRow {
  id: string;
  organization_id: string;
  status: string;
  scheduled_for: Date;
  cronjob_id: string;
  name: string;
  action: string;
  task: string | null;
  payload: Record<string, unknown>;
  agent_id: string | null;
  agent_webhook_url: string | null;
}

const EXECUTION_QUERY = `
  select e.id, e.organization_id, e.status, e.scheduled_for, c.id as cronjob_id, c.name, c.action, c.task, c.payload,
         c.agent_id, a.webhook_url as agent_webhook_url
  from app_public.cronjob_executions e
  join app_public.cronjobs c on c.id = e.cronjob_id
  left join app_public.agents a on a.id = c.agent_id
  where e.id = $1`;

/** Where the POST goes and what it says. */
function request(row: ExecutionRow): { url: string | null; event: string; body: Record<string, unknown> } {
  const common = {
    execution_id: row.id,
    scheduled_for: row.scheduled_for.toISOString(),
    cronjob: { id: row.cronjob_id, name: row.name },
    task: row.task,
  };
  if (row.action === "webhook") {
    return { url: typeof row.payload.url === "string" ? row.payload.url : null, event: "cronjob.run", body: { event: "cronjob.run", ...common, body: row.payload.body ?? null } };
  }
  return {
    url: row.agent_webhook_url,
    event: "agent.task",
    body: {
      event: "agent.task",
      ...common,
      agent_id: row.agent_id,
      mode: row.action === "create_agent_with_task" ? "new" : "conversation",
      payload: row.payload,
    },
  };
}

export function cronjobDeliver({ config }: TaskContext): Task {
  return async (payload, helpers) => {
    const executionId = payloadString(payload, "executionId");
    const { rows } = await helpers.query<ExecutionRow>(EXECUTION_QUERY, [executionId]);
    const row = rows[0];
    if (row === undefined || row.status !== "running") return; // gone, or already finished
    const { url, event, body: bodyObject } = request(row);
    const body = JSON.stringify(bodyObject);
    await attemptDelivery({
      attempt: helpers.job.attempts,
      maxAttempts: config.notifications.maxAttempts,
      async send() {
        if (url === null) throw new DeliveryError("there is no URL to deliver to", { permanent: true });
        const secrets = await helpers.query<{ secret: string }>("select secret from app_private.webhook_signing_secrets($1, $2) secret", [
          row.organization_id,
          config.encryptionKey,
        ]);
        const headers = { ...signWebhook(secrets.rows.map((secret) => secret.secret), body), "agentplane-event": event, "agentplane-delivery": row.id };
        return postJson(url, body, {
          headers,
          timeoutMs: config.notifications.timeoutMs,
          allowPrivateNetworks: config.notifications.allowPrivateNetworks,
        });
      },
      async record(result) {
        await helpers.query("select app_private.record_cronjob_delivery($1, $2, $3, $4, $5)", [
          executionId,
          result.delivered,
          result.delivered ? result.result.body : null,
          result.delivered ? null : result.error,
          result.delivered ? false : result.giveUp,
        ]);
      },
    });
  };
}
