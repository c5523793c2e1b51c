/**
 * Retention: a task that calls an `app_private.purge_*(batch_size int)`
 * function (which deletes up to batch_size rows past their retention and
 * returns how many) until a batch comes back short. Idempotent: a retry or a
 * second worker finds less, or nothing, to delete.
 */
import type { Task } from "graphile-worker";

const BATCH_SIZE = 10_000;

/** `purgeFunction` is a trusted, schema-qualified name such as `app_private.purge_sessions`. */
export function purgeTask(purgeFunction: string): Task {
  if (!/^app_private\.purge_[a-z_]+$/.test(purgeFunction)) throw new Error(`not a purge function: ${purgeFunction}`);
  return async (_payload, helpers) => {
    let total = 0;
    for (;;) {
      const { rows } = await helpers.withPgClient((client) =>
        client.query<{ purged: number }>(`select ${purgeFunction}($1) as purged`, [BATCH_SIZE]),
      );
      const purged = rows[0]?.purged ?? 0;
      total += purged;
      if (purged < BATCH_SIZE) break;
    }
    if (total > 0) helpers.logger.info(`${purgeFunction}: deleted ${total} rows`);
  };
}
