/**
 * Recurring tasks may run against a database whose current migration is not
 * there yet (a worker newer than its database): they skip with a warning
 * rather than fail every minute.
 */
import type { JobHelpers } from "graphile-worker";

export async function unlessSchemaMissing(helpers: JobHelpers, work: () => Promise<void>): Promise<void> {
  try {
    await work();
  } catch (error) {
    // undefined_function, undefined_table
    const code = (error as { code?: string }).code;
    if (code !== "42883" && code !== "42P01") throw error;
    helpers.logger.warn(`skipped: the database does not have this task's functions yet (${(error as Error).message})`);
  }
}
