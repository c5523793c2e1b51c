/**
 * The SQL conventions of docs/development.md, checked on the whole schema so
 * that every module's tables follow them: foreign keys say `on delete` and are
 * indexed, `security definer` functions pin their search_path, and everything
 * exposed through GraphQL is commented (the comments are its documentation).
 */
import { describe, expect, test } from "@jest/globals";
import { asRoot } from "../helpers/db.ts";

async function names(sql: string): Promise<string[]> {
  return asRoot(async (client) => (await client.query<{ name: string }>(sql)).rows.map((row) => row.name));
}

/** The foreign keys of the app_* schemas (partitions aside) that match a condition on `c` (pg_constraint). */
function foreignKeysWhere(condition: string): Promise<string[]> {
  return names(`
    select format('%s.%s', c.conrelid::regclass, c.conname) as name
      from pg_constraint c
      join pg_class t on t.oid = c.conrelid
     where c.contype = 'f' and c.connamespace::regnamespace::text like 'app\\_%' and not t.relispartition
       and ${condition}
     order by 1`);
}

describe("schema conventions", () => {
  test("every foreign key says on delete, and each of its columns leads an index", async () => {
    expect(await foreignKeysWhere("c.confdeltype = 'a'")).toEqual([]);
    expect(
      await foreignKeysWhere(`exists (
        select 1 from unnest(c.conkey) as k(attnum)
         where not exists (select 1 from pg_index i where i.indrelid = c.conrelid and i.indkey[0] = k.attnum))`),
    ).toEqual([]);
  });

  test("every security definer function sets its search_path", async () => {
    expect(
      await names(`
        select p.oid::regprocedure::text as name
          from pg_proc p
         where p.pronamespace::regnamespace::text like 'app\\_%' and p.prosecdef
           and not exists (select 1 from unnest(p.proconfig) setting where setting like 'search_path=%')
         order by 1`),
    ).toEqual([]);
  });

  test("every app_public table, column, type and function has a comment", async () => {
    expect(
      await names(`
        select c.relname as name from pg_class c
         where c.relnamespace = 'app_public'::regnamespace and c.relkind in ('r', 'p', 'v', 'm', 'c')
           and not c.relispartition
           and coalesce(obj_description(c.oid, 'pg_class'), obj_description(c.reltype, 'pg_type')) is null
        union all
        select format('%s.%s', c.relname, a.attname) from pg_class c
          join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
         where c.relnamespace = 'app_public'::regnamespace and c.relkind in ('r', 'p', 'v', 'm', 'c')
           and not c.relispartition and col_description(c.oid, a.attnum) is null
        union all
        select p.oid::regprocedure::text from pg_proc p
         where p.pronamespace = 'app_public'::regnamespace and obj_description(p.oid, 'pg_proc') is null
         order by 1`),
    ).toEqual([]);
  });
});
