import { describe, expect, test } from "@jest/globals";
import { asAnonymous, asRoot, expectError } from "../helpers/db.ts";

describe("foundation schema", () => {
  test("creates the three schemas and the extensions", async () => {
    await asRoot(async (client) => {
      const { rows } = await client.query(
        "select nspname from pg_namespace where nspname like 'app\\_%' order by nspname",
      );
      expect(rows.map((row) => row.nspname)).toEqual(["app_hidden", "app_private", "app_public"]);
      const extensions = await client.query("select extname from pg_extension where extname in ('pgcrypto', 'citext') order by 1");
      expect(extensions.rows.map((row) => row.extname)).toEqual(["citext", "pgcrypto"]);
    });
  });

  test("the visitor cannot reach app_private nor graphile-worker's schema", async () => {
    await asAnonymous(async (client) => {
      const privateError = await expectError(client, "select app_private.tg__timestamps()");
      expect(privateError.code).toBe("42501"); // insufficient_privilege
      const workerError = await expectError(client, "select count(*) from graphile_worker.jobs");
      expect(workerError.code).toBe("42501");
    });
  });

  test("the visitor cannot create objects in public or app_public", async () => {
    await asAnonymous(async (client) => {
      expect((await expectError(client, "create table public.intruder (id int)")).code).toBe("42501");
      expect((await expectError(client, "create table app_public.intruder (id int)")).code).toBe("42501");
    });
  });

  test("tg__timestamps stamps created_at once and moves updated_at forward", async () => {
    await asRoot(async (client) => {
      await client.query(`
        create temporary table stamped (id int primary key, created_at timestamptz, updated_at timestamptz);
        create trigger _100_timestamps before insert or update on stamped
          for each row execute procedure app_private.tg__timestamps();
      `);
      await client.query("insert into stamped (id, created_at) values (1, '2000-01-01')");
      const inserted = (await client.query("select * from stamped")).rows[0];
      expect(inserted.created_at.getFullYear()).not.toBe(2000);
      await client.query("update stamped set created_at = '2000-01-01' where id = 1");
      const updated = (await client.query("select * from stamped")).rows[0];
      expect(updated.created_at).toEqual(inserted.created_at);
      expect(updated.updated_at.getTime()).toBeGreaterThan(inserted.updated_at.getTime());
    });
  });
});
