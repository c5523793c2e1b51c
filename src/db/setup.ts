/**
 * Idempotent cluster set-up, run as the superuser (ROOT_DATABASE_URL): the
 * three roles and the database. Everything inside the database is done by the
 * migrations, as the owner.
 *
 *   owner          logs in, owns the database and every object in it
 *   authenticator  logs in, `noinherit`: can only `set role` to the visitor
 *   visitor        no login: what every GraphQL request runs as
 *
 * PostgreSQL 15 or newer: the `public` schema belongs to the database owner, so
 * the first migration can lock it down without a superuser.
 */
import pg from "pg";
import { databaseOf, userOf, type DatabaseConfig } from "../config.ts";
import type { Logger } from "../logger.ts";

const { Client, escapeIdentifier, escapeLiteral } = pg;

function passwordOf(connectionString: string): string | null {
  const password = new URL(connectionString).password;
  return password === "" ? null : decodeURIComponent(password);
}

async function ensureRole(client: pg.Client, name: string, options: string, password: string | null) {
  const { rowCount } = await client.query("select 1 from pg_roles where rolname = $1", [name]);
  const verb = rowCount === 0 ? "create" : "alter";
  const withPassword = password === null ? "" : ` password ${escapeLiteral(password)}`;
  await client.query(`${verb} role ${escapeIdentifier(name)} with ${options}${withPassword}`);
}

async function ensureDatabase(client: pg.Client, name: string, owner: string, logger: Logger) {
  const { rowCount } = await client.query("select 1 from pg_database where datname = $1", [name]);
  if (rowCount === 0) {
    await client.query(`create database ${escapeIdentifier(name)} owner ${escapeIdentifier(owner)}`);
    logger.info({ database: name }, "created database");
  }
}

/** Creates (or brings up to date) the roles, the database and, if configured, the shadow database. */
export async function setupDatabase(database: DatabaseConfig, visitorRole: string, logger: Logger): Promise<void> {
  if (database.rootUrl === null) {
    throw new Error("ROOT_DATABASE_URL is needed to create roles and databases");
  }
  const owner = userOf(database.ownerUrl);
  const authenticator = userOf(database.authUrl);
  const client = new Client({ connectionString: database.rootUrl });
  await client.connect();
  try {
    // Role changes are cluster-wide: serialise concurrent set-ups (parallel test runs, several instances).
    await client.query("select pg_advisory_lock(hashtext('agentplane.setup'))");
    await ensureRole(client, owner, "login nosuperuser nocreaterole nocreatedb", passwordOf(database.ownerUrl));
    await ensureRole(client, authenticator, "login noinherit nosuperuser nocreaterole nocreatedb", passwordOf(database.authUrl));
    await ensureRole(client, visitorRole, "nologin", null);
    await client.query(`grant ${escapeIdentifier(visitorRole)} to ${escapeIdentifier(authenticator)}`);
    for (const url of [database.ownerUrl, database.shadowUrl]) {
      if (url === null) continue;
      const name = databaseOf(url);
      await ensureDatabase(client, name, owner, logger);
      await client.query(`revoke all on database ${escapeIdentifier(name)} from public`);
      await client.query(`grant connect on database ${escapeIdentifier(name)} to ${escapeIdentifier(authenticator)}`);
      await client.query(`grant all on database ${escapeIdentifier(name)} to ${escapeIdentifier(owner)}`);
    }
  } finally {
    await client.end();
  }
  logger.info({ owner, authenticator, visitor: visitorRole, database: databaseOf(database.ownerUrl) }, "database set up");
}

/** Drops a database (tests and `db:reset`), ending its connections first. */
export async function dropDatabase(rootUrl: string, name: string): Promise<void> {
  const client = new Client({ connectionString: rootUrl });
  await client.connect();
  try {
    await client.query(`drop database if exists ${escapeIdentifier(name)} with (force)`);
  } finally {
    await client.end();
  }
}
