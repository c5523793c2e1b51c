/**
 * The tenancy walker. It finds every table in `app_public` by introspection
 * (new tables are covered without touching this file) and proves, on the rows
 * organization A's world puts in them (test/helpers/world/), that
 *
 * - user B, who belongs to another organization, sees none of them and can
 *   neither update, delete nor insert a copy of any;
 * - anonymous visitors see none of them (except in tables meant to be public)
 *   and cannot change them either;
 * - A's own owner does see them (so the checks above could fail).
 *
 * User B is registered first and the primary keys of every table are noted;
 * A's rows are whatever the world adds after that. A table the world leaves
 * empty fails: give it a builder in test/helpers/world/.
 */
import { afterAll, beforeAll, describe, expect, test } from "@jest/globals";
import pg from "pg";
import { pool, type Client } from "../helpers/db.ts";
import { asUser, createUser, type TestUser } from "../helpers/identity.ts";
import { buildWorld, publicTables, type World } from "../helpers/world/index.ts";

const { escapeIdentifier } = pg;

interface Column {
  name: string;
  type: string;
}

interface Table {
  name: string;
  /** Schema-qualified and quoted. */
  sql: string;
  rowSecurity: boolean;
  primaryKey: Column[];
  columns: Column[];
  /** A's rows, as the JSON text of their primary key. */
  worldKeys: string[];
}

let client: Client;
let outsider: TestUser;
let world: World;
let tables: Table[];

async function introspectTables(): Promise<Table[]> {
  const { rows } = await client.query<{
    name: string;
    row_security: boolean;
    primary_key: Column[] | null;
    columns: Column[];
  }>(`
    select c.relname as name,
           c.relrowsecurity as row_security,
           (select json_agg(json_build_object('name', a.attname, 'type', format_type(a.atttypid, a.atttypmod)) order by k.ord)
              from pg_index i
              cross join unnest(i.indkey) with ordinality as k(attnum, ord)
              join pg_attribute a on a.attrelid = c.oid and a.attnum = k.attnum
             where i.indrelid = c.oid and i.indisprimary) as primary_key,
           (select json_agg(json_build_object('name', a.attname, 'type', format_type(a.atttypid, a.atttypmod)) order by a.attnum)
              from pg_attribute a
             where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
               and a.attgenerated = '' and a.attidentity <> 'a') as columns
      from pg_class c
     where c.relnamespace = 'app_public'::regnamespace
       and c.relkind in ('r', 'p')
       and not c.relispartition
     order by c.relname
  `);
  return rows.map((row) => ({
    name: row.name,
    sql: `app_public.${escapeIdentifier(row.name)}`,
    rowSecurity: row.row_security,
    primaryKey: row.primary_key ?? [],
    columns: row.columns,
    worldKeys: [],
  }));
}

/** SQL for the JSON text of a row's primary key. */
function keyOf(table: Table): string {
  return `json_build_object(${table.primaryKey.map((c) => `'${c.name}', ${escapeIdentifier(c.name)}`).join(", ")})::text`;
}

async function keysOf(table: Table): Promise<string[]> {
  const { rows } = await client.query<{ key: string }>(`select ${keyOf(table)} as key from ${table.sql}`);
  return rows.map((row) => row.key);
}

/** Runs a statement in a savepoint that is always rolled back; returns its row count or its error code. */
async function attempt(sql: string, values: unknown[]): Promise<{ rowCount: number } | { code: string }> {
  await client.query("savepoint attempt");
  try {
    const result = await client.query(sql, values);
    return { rowCount: result.rowCount ?? 0 };
  } catch (error) {
    return { code: (error as pg.DatabaseError).code ?? "unknown" };
  } finally {
    await client.query("rollback to savepoint attempt");
  }
}

async function privilegedColumns(table: Table, privilege: "INSERT" | "UPDATE"): Promise<string[]> {
  const { rows } = await client.query<{ name: string }>(
    `select a.name from unnest($1::text[]) as a(name) where has_column_privilege($2::regclass, a.name, $3)`,
    [table.columns.map((c) => c.name), table.sql, privilege],
  );
  return rows.map((row) => row.name);
}

async function visibleWorldRows(table: Table): Promise<number> {
  const { rows } = await client.query<{ count: number }>(
    `select count(*)::int as count from ${table.sql} where ${keyOf(table)} = any($1::text[])`,
    [table.worldKeys],
  );
  return rows[0]?.count ?? 0;
}

/** What `visitor` may do to A's rows that it should not: one line per breach. */
async function breaches(visitor: TestUser | null, { reads }: { reads: boolean }): Promise<string[]> {
  const found: string[] = [];
  for (const table of tables) {
    if (table.worldKeys.length === 0 || table.primaryKey.length === 0) continue;
    const copy = await copyOfWorldRow(table);
    await asUser(client, visitor, async () => {
      if (reads && !publicTables.has(table.name)) {
        const visible = await visibleWorldRows(table);
        if (visible > 0) found.push(`${table.name}: sees ${visible} of A's rows`);
      }
      const where = `${keyOf(table)} = any($1::text[])`;
      const updatable = await privilegedColumns(table, "UPDATE");
      if (updatable.length > 0) {
        const column = escapeIdentifier(updatable[0] ?? "");
        const result = await attempt(`update ${table.sql} set ${column} = ${column} where ${where}`, [table.worldKeys]);
        if ("rowCount" in result && result.rowCount > 0) found.push(`${table.name}: updated ${result.rowCount} of A's rows`);
      }
      const deleted = await attempt(`delete from ${table.sql} where ${where}`, [table.worldKeys]);
      if ("rowCount" in deleted && deleted.rowCount > 0) found.push(`${table.name}: deleted ${deleted.rowCount} of A's rows`);
      const insertable = await privilegedColumns(table, "INSERT");
      if (insertable.length > 0) {
        const inserted = await insert(table, insertable, copy);
        if (!("code" in inserted) || inserted.code !== "42501") {
          found.push(`${table.name}: inserting a copy of A's row gave ${JSON.stringify(inserted)}, not a permission error`);
        }
      }
    });
  }
  return found;
}

/** One of A's rows (read as root) with a fresh key: what an outsider tries to insert. */
async function copyOfWorldRow(table: Table): Promise<Record<string, unknown>> {
  const { rows } = await client.query<{ row: Record<string, unknown> }>(
    `select to_jsonb(t) as row from ${table.sql} t where ${keyOf(table)} = $1`,
    [table.worldKeys[0]],
  );
  const copy = rows[0]?.row ?? {};
  for (const key of table.primaryKey) {
    if (key.type === "uuid") copy[key.name] = crypto.randomUUID();
  }
  return copy;
}

/** Inserts a row through the columns the visitor may insert. */
function insert(table: Table, insertable: string[], row: Record<string, unknown>) {
  const columns = insertable.map((name) => escapeIdentifier(name)).join(", ");
  return attempt(
    `insert into ${table.sql} (${columns}) select ${columns} from json_populate_record(null::${table.sql}, $1::json)`,
    [JSON.stringify(row)],
  );
}

describe("tenancy: every app_public table", () => {
  // Inside the describe: these run before the pools are closed (test/setup/after-env.ts).
  beforeAll(async () => {
    client = await pool("root").connect();
    // One snapshot for the whole walk: rows other test files commit meanwhile are not A's.
    await client.query("begin isolation level repeatable read");
    outsider = await createUser(client, { name: "Outsider B" });
    tables = await introspectTables();
    const before = new Map<string, Set<string>>();
    for (const table of tables) {
      if (table.primaryKey.length > 0) before.set(table.name, new Set(await keysOf(table)));
    }
    world = await buildWorld(client);
    for (const table of tables) {
      const existing = before.get(table.name);
      if (existing !== undefined) table.worldKeys = (await keysOf(table)).filter((key) => !existing.has(key));
    }
  }, 60_000);

  afterAll(async () => {
    await client.query("rollback");
    client.release();
  });

  test("is found by introspection (the identity tables at least)", () => {
    expect(tables.map((t) => t.name)).toEqual(
      expect.arrayContaining(["users", "organizations", "organization_memberships", "organization_limits", "audit_log"]),
    );
  });

  test("has row-level security enabled and a primary key", () => {
    expect(tables.filter((t) => !t.rowSecurity).map((t) => t.name)).toEqual([]);
    expect(tables.filter((t) => t.primaryKey.length === 0).map((t) => t.name)).toEqual([]);
  });

  test("has rows in organization A's world (add a builder in test/helpers/world/ for a new table)", () => {
    expect(tables.filter((t) => t.worldKeys.length === 0).map((t) => t.name)).toEqual([]);
  });

  test("shows A's rows to A's owner (so that the checks below can fail)", async () => {
    const hidden: string[] = [];
    for (const table of tables) {
      if (table.worldKeys.length === 0) continue;
      const visible = await asUser(client, world.owner, () => visibleWorldRows(table));
      if (visible === 0) hidden.push(table.name);
    }
    expect(hidden).toEqual([]);
  });

  test("hides A's rows from a user of another organization, who can neither update, delete nor insert them", async () => {
    expect(await breaches(outsider, { reads: true })).toEqual([]);
  });

  test("hides A's rows from anonymous visitors, who cannot change them either", async () => {
    expect(await breaches(null, { reads: true })).toEqual([]);
  });

});
