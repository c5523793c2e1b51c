/**
 * Database access for tests. Each helper runs its callback in a transaction
 * that is rolled back, so a test leaves nothing behind:
 *
 *   asRoot(fn)                  the superuser: sees and changes everything
 *   asVisitor(settings, fn)     the GraphQL visitor role with the given settings
 *   asAnonymous(fn)             the visitor with no credentials at all
 *
 * Pools are opened on first use and closed after each test file.
 */
import pg from "pg";
import { testDatabase } from "../setup/test-database.ts";

export type Client = pg.PoolClient;

const pools = new Map<string, pg.Pool>();

export function pool(kind: "root" | "owner" | "auth"): pg.Pool {
  let existing = pools.get(kind);
  if (existing === undefined) {
    const { database, rootDatabaseUrl } = testDatabase();
    const connectionString = { root: rootDatabaseUrl, owner: database.ownerUrl, auth: database.authUrl }[kind];
    existing = new pg.Pool({ connectionString, max: 5 });
    // A connection ended by the server (the database dropped at the end) is no test failure.
    existing.on("error", () => undefined);
    existing.on("connect", (client) => client.on("error", () => undefined));
    pools.set(kind, existing);
  }
  return existing;
}

export async function closePools(): Promise<void> {
  const open = [...pools.values()];
  pools.clear();
  await Promise.all(open.map((p) => p.end()));
}

async function inRolledBackTransaction<T>(
  kind: "root" | "auth",
  prepare: (client: Client) => Promise<void>,
  fn: (client: Client) => Promise<T>,
): Promise<T> {
  const client = await pool(kind).connect();
  try {
    await client.query("begin");
    await prepare(client);
    return await fn(client);
  } finally {
    await client.query("rollback").catch(() => undefined);
    client.release();
  }
}

export function asRoot<T>(fn: (client: Client) => Promise<T>): Promise<T> {
  return inRolledBackTransaction("root", async () => {}, fn);
}

/** Runs as the visitor role, like a GraphQL request, with these `set_config` settings. */
export function asVisitor<T>(settings: Record<string, string>, fn: (client: Client) => Promise<T>): Promise<T> {
  return inRolledBackTransaction(
    "auth",
    async (client) => {
      await client.query(`set local role ${pg.escapeIdentifier(testDatabase().visitorRole)}`);
      for (const [key, value] of Object.entries(settings)) {
        await client.query("select set_config($1, $2, true)", [key, value]);
      }
    },
    fn,
  );
}

export function asAnonymous<T>(fn: (client: Client) => Promise<T>): Promise<T> {
  return asVisitor({}, fn);
}

/** Runs statements inside a savepoint and returns the error they raise (or throws if none). */
export async function expectError(client: Client, sql: string, values: unknown[] = []): Promise<pg.DatabaseError> {
  await client.query("savepoint expect_error");
  try {
    await client.query(sql, values);
  } catch (error) {
    await client.query("rollback to savepoint expect_error");
    return error as pg.DatabaseError;
  }
  await client.query("release savepoint expect_error");
  throw new Error(`expected an error from: ${sql}`);
}
