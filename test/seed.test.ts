/**
 * `npm run db:seed`: development data, idempotent, credentials printed once,
 * refused in production.
 */
import { execFile } from "node:child_process";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, test } from "@jest/globals";
import { PROJECT_ROOT } from "../src/paths.ts";
import { seed } from "../src/seed/index.ts";
import { ADMIN_EMAIL, DEVELOPMENT_ORGANIZATION } from "../src/seed/identity.ts";
import { asRoot, pool } from "./helpers/db.ts";
import { asUser } from "./helpers/identity.ts";
import { testConfig } from "./helpers/server.ts";
import { testDatabase } from "./setup/test-database.ts";

const run = promisify(execFile);

function cli(env: Record<string, string>) {
  const { database, visitorRole } = testDatabase();
  return run(process.execPath, [path.join(PROJECT_ROOT, "src/cli.ts"), "seed"], {
    cwd: PROJECT_ROOT,
    env: {
      PATH: process.env.PATH ?? "",
      LOG_LEVEL: "warn",
      DATABASE_URL: database.ownerUrl,
      AUTH_DATABASE_URL: database.authUrl,
      DATABASE_VISITOR: visitorRole,
      ...env,
    },
  });
}

/** The printed "label  value" lines, by label. */
function printed(stdout: string): Record<string, string> {
  return Object.fromEntries(
    stdout
      .split("\n")
      .filter((line) => line.startsWith("  "))
      .map((line) => {
        const [label = "", value = ""] = line.trim().split(/\s{2,}/);
        return [label, value];
      }),
  );
}

afterAll(async () => {
  const root = pool("root");
  await root.query("delete from app_public.organizations where slug = $1", [DEVELOPMENT_ORGANIZATION]);
  await root.query(
    `delete from app_public.organizations where id in (
       select m.organization_id from app_public.organization_memberships m join app_public.users u on u.id = m.user_id
        where u.email = $1 and m.role = 'owner')`,
    [ADMIN_EMAIL],
  );
  await root.query("delete from app_public.users where email = $1", [ADMIN_EMAIL]);
});

describe("db:seed", () => {
  test("creates an admin and an organization, prints working credentials, and can run again", async () => {
    const { stdout } = await cli({});
    const first = printed(stdout);
    expect(first).toMatchObject({ "admin email": ADMIN_EMAIL, "admin token": expect.stringMatching(/^ses_/) });

    const second = Object.fromEntries(await seed(testConfig(), pool("owner")));
    expect(second.organization).toBe(first.organization);
    expect(second["admin password"]).not.toBe(first["admin password"]);

    await asRoot(async (client) => {
      const counts = await client.query(
        `select (select count(*) from app_public.users where email = $1)::int as admins,
                (select count(*) from app_public.organizations where slug = $2 and plan = 'enterprise')::int as organizations,
                (select is_admin from app_public.users where email = $1) as is_admin`,
        [ADMIN_EMAIL, DEVELOPMENT_ORGANIZATION],
      );
      expect(counts.rows[0]).toEqual({ admins: 1, organizations: 1, is_admin: true });
      const login = await asUser(client, null, async () =>
        (await client.query("select token from app_public.login($1, $2)", [ADMIN_EMAIL, second["admin password"]])).rows[0]?.token,
      );
      expect(login).toMatch(/^ses_/);
      const organizations = await asUser(client, { token: first["admin token"] ?? "" }, async () =>
        (await client.query("select slug from app_public.organizations where slug = $1", [DEVELOPMENT_ORGANIZATION])).rows,
      );
      expect(organizations).toEqual([{ slug: DEVELOPMENT_ORGANIZATION }]);
    });
  });

  test("refuses to run in production, before touching the database", async () => {
    const production = { ...testConfig(), nodeEnv: "production" as const, isProduction: true };
    await expect(seed(production, pool("owner"))).rejects.toThrow("refusing to seed development data with NODE_ENV=production");
  });
});
