/**
 * The boxes module's worker tasks, run by graphile-worker itself: the
 * command sweep (time-outs, expiry), the presence sweep (a dead bridge
 * instance), partition upkeep; and the crontab that schedules them.
 */
import { readFile } from "node:fs/promises";
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, test } from "@jest/globals";
import { parseCrontab } from "graphile-worker";
import pg from "pg";
import { CRONTAB_FILE } from "../../src/worker/index.ts";
import { createLogger } from "../../src/logger.ts";
import { createTaskList } from "../../tasks/index.ts";
import { allowBoxes, connect, createCommittedBox, sendCommand, type TestBox } from "../helpers/boxes.ts";
import { pool } from "../helpers/db.ts";
import { createCommittedUser, removeUser, type TestUser } from "../helpers/identity.ts";
import { testConfig } from "../helpers/server.ts";
import { runJob } from "../helpers/worker.ts";
import { testDatabase } from "../setup/test-database.ts";

const taskList = createTaskList({ config: testConfig(), logger: createLogger("silent") });
let workerPool: pg.Pool;

function run(task: string, payload: Record<string, unknown> = {}): Promise<void> {
  return runJob(workerPool, taskList, task, payload);
}

async function status(id: string): Promise<string> {
  const { rows } = await pool("root").query("select status from app_public.box_commands where id = $1", [id]);
  return rows[0].status;
}

describe("box tasks", () => {
  let owner: TestUser;
  let box: TestBox;

  beforeAll(async () => {
    workerPool = new pg.Pool({ connectionString: testDatabase().database.ownerUrl, max: 3 });
    workerPool.on("error", () => undefined);
    workerPool.on("connect", (client) => client.on("error", () => undefined));
    owner = await createCommittedUser();
    await allowBoxes(owner.organizationId, 10);
    box = await createCommittedBox(owner);
  });

  afterAll(async () => {
    await removeUser(owner);
    await workerPool.end();
  });

  test("the crontab parses and names only tasks that exist", async () => {
    const items = parseCrontab(await readFile(CRONTAB_FILE, "utf8"));
    const names = items.map((item) => item.task);
    expect(names).toEqual(expect.arrayContaining(["box_commands_sweep", "box_presence_sweep", "box_partitions_maintain"]));
    for (const name of names) expect(Object.keys(taskList)).toContain(name);
  });

  test("box_commands_sweep times out and expires commands", async () => {
    const client = await pool("root").connect();
    try {
      await client.query("begin");
      const late = await sendCommand(client, owner, box);
      const stale = await sendCommand(client, owner, box);
      const { seq } = await connect(client, box);
      await client.query("select app_private.bridge_claim_commands($1, $2, 1)", [box.id, seq]);
      await client.query("update app_public.box_commands set deadline_at = now() - interval '1 second' where id = $1", [late]);
      await client.query("update app_public.box_commands set expires_at = now() - interval '1 second' where id = $1", [stale]);
      await client.query("commit");
      await run("box_commands_sweep");
      expect([await status(late), await status(stale)]).toEqual(["timed_out", "expired"]);
    } finally {
      client.release();
    }
  });

  test("box_presence_sweep takes the boxes of a dead bridge instance offline", async () => {
    const instanceId = randomUUID();
    const client = await pool("root").connect();
    try {
      await client.query("begin");
      await connect(client, box, { instanceId, heartbeatIntervalMs: 100 });
      await client.query("update app_private.bridge_instances set heartbeat_at = now() - interval '1 second' where id = $1", [instanceId]);
      await client.query("commit");
    } finally {
      client.release();
    }
    await run("box_presence_sweep");
    const { rows } = await pool("root").query("select status from app_public.boxes where id = $1", [box.id]);
    expect(rows[0].status).toBe("offline");
  });

  test("box_partitions_maintain keeps partitions ahead and drops old ones", async () => {
    await pool("root").query(
      "create table app_private.box_commands_p199901 partition of app_public.box_commands for values from ('1999-01-01') to ('1999-02-01')",
    );
    await run("box_partitions_maintain", { box_commands_months: 3, metric_samples_days: 7 });
    const { rows } = await pool("root").query("select to_regclass('app_private.box_commands_p199901') as old");
    expect(rows[0].old).toBeNull();
  });
});
