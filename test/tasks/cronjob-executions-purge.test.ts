/** Cron job executions are kept 90 days: `cronjob_executions_purge` (crontab, daily) deletes older ones. */
import { expect, test } from "@jest/globals";
import { cronjobExecutionsPurge } from "../../tasks/cronjob_executions_purge.ts";
import { pool } from "../helpers/db.ts";
import { createCommittedUser, removeUser } from "../helpers/identity.ts";
import { runJob } from "../helpers/worker.ts";

test("cronjob_executions_purge deletes executions older than 90 days, and a second run finds nothing to do", async () => {
  const user = await createCommittedUser();
  const owner = pool("owner");
  try {
    const { rows: [cronjob] } = await owner.query<{ id: string }>(
      `insert into app_public.cronjobs (organization_id, name, schedule, action, payload)
       values ($1, 'retention', '0 0 1 1 *', 'webhook', '{"url": "https://hooks.example.test/retention"}') returning id`,
      [user.organizationId],
    );
    await owner.query(
      `insert into app_public.cronjob_executions (organization_id, cronjob_id, scheduled_for, started_at, status)
       values ($1, $2, now() - interval '100 days', now() - interval '100 days', 'success'),
              ($1, $2, now() - interval '10 days', now() - interval '10 days', 'success')`,
      [user.organizationId, cronjob?.id],
    );
    const ages = async () =>
      (
        await owner.query<{ days: number }>(
          "select extract(day from now() - started_at)::int as days from app_public.cronjob_executions where cronjob_id = $1",
          [cronjob?.id],
        )
      ).rows.map((row) => row.days);
    for (let run = 0; run < 2; run += 1) {
      await runJob(owner, { cronjob_executions_purge: cronjobExecutionsPurge }, "cronjob_executions_purge");
      expect(await ages()).toEqual([10]);
    }
  } finally {
    await removeUser(user);
  }
});
