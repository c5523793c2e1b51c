/**
 * `/healthz`: the process is alive. `/readyz`: the database answers and its
 * migrations are the ones this code was built for.
 */
import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import type { RequestHandler } from "express";
import type { Pool } from "pg";

/** The hash of the newest committed migration, as graphile-migrate records it. */
export async function latestMigrationHash(migrationsFolder: string): Promise<string | null> {
  const committed = path.join(migrationsFolder, "committed");
  const files = (await readdir(committed)).filter((name) => name.endsWith(".sql")).sort();
  const newest = files.at(-1);
  if (newest === undefined) return null;
  const header = (await readFile(path.join(committed, newest), "utf8")).match(/^--! Hash: (\S+)$/m);
  if (header?.[1] === undefined) throw new Error(`${newest} has no "--! Hash:" header`);
  return header[1];
}

/** The hash of the newest migration applied to the database, or null before the first. */
async function appliedMigrationHash(pool: Pool): Promise<string | null> {
  const { rows: [table] } = await pool.query("select to_regclass('graphile_migrate.migrations') is not null as exists");
  if (!table?.exists) return null;
  const { rows } = await pool.query<{ hash: string }>(
    "select hash from graphile_migrate.migrations order by filename desc limit 1",
  );
  return rows[0]?.hash ?? null;
}

export const healthz: RequestHandler = (_req, res) => {
  res.json({ status: "ok" });
};

export function readyz(ownerPool: Pool, expectedHash: string | null): RequestHandler {
  return async (_req, res) => {
    try {
      const applied = await appliedMigrationHash(ownerPool);
      if (applied !== expectedHash) {
        res.status(503).json({ status: "migrations pending", expected: expectedHash, applied });
        return;
      }
      res.json({ status: "ready" });
    } catch (error) {
      res.status(503).json({ status: "database unavailable", error: (error as Error).message });
    }
  };
}
