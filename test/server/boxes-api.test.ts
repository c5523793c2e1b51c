/**
 * The boxes part of the GraphQL API: management (create with the key shown
 * once, rotate, revoke, rename, delete), a box's recent commands, metric
 * aggregates over a window, and what clients may not filter on.
 */
import { afterAll, beforeAll, describe, expect, test } from "@jest/globals";
import { sendOk } from "../helpers/box-api.ts";
import { allowBoxes, authenticate } from "../helpers/boxes.ts";
import { pool } from "../helpers/db.ts";
import { createCommittedUser, removeUser, type TestUser } from "../helpers/identity.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";

describe("the boxes API", () => {
  let server: TestServer;
  let owner: TestUser;

  beforeAll(async () => {
    server = await startTestServer();
    owner = await createCommittedUser();
    await allowBoxes(owner.organizationId, 10);
  });

  afterAll(async () => {
    await server.close();
    await removeUser(owner);
  });

  async function createBox(name: string) {
    const response = await server.graphql<{ createBox: { result: { apiKey: string; box: { rowId: string; name: string; status: string }; key: { rowId: string; prefix: string } } } }>(
      `mutation ($organizationId: UUID!, $name: String!) {
         createBox(input: { organizationId: $organizationId, name: $name }) { result { apiKey box { rowId name status } key { rowId prefix } } }
       }`,
      { organizationId: owner.organizationId, name },
      { token: owner.token },
    );
    const result = response.data?.createBox.result;
    if (result === undefined) throw new Error(JSON.stringify(response.errors));
    return result;
  }

  test("create (key shown once), rotate, revoke, rename, delete", async () => {
    const created = await createBox("api-box");
    expect(created.box).toMatchObject({ name: "api-box", status: "pending" });
    expect(created.key.prefix).toBe(created.apiKey.slice(0, 12));

    const rotated = await server.graphql<{ rotateBoxKey: { result: { apiKey: string; key: { rowId: string } } } }>(
      "mutation ($id: UUID!) { rotateBoxKey(input: { keyId: $id, gracePeriodHours: 1 }) { result { apiKey key { rowId } } } }",
      { id: created.key.rowId },
      { token: owner.token },
    );
    const newKey = rotated.data?.rotateBoxKey.result;
    expect(newKey?.apiKey).toMatch(/^box_/);
    const keys = await server.graphql<{ box: { apiKeys: { nodes: Array<{ rowId: string; expiresAt: string | null; replacedBy: string | null }> } } }>(
      "query ($id: UUID!) { box(rowId: $id) { apiKeys { nodes { rowId expiresAt replacedBy } } } }",
      { id: created.box.rowId },
      { token: owner.token },
    );
    expect(keys.errors).toBeUndefined();
    const old = keys.data?.box.apiKeys.nodes.find((key) => key.rowId === created.key.rowId);
    expect(old?.replacedBy).toBe(newKey?.key.rowId);
    expect(new Date(old?.expiresAt ?? 0).getTime() - Date.now()).toBeGreaterThan(59 * 60_000);

    const revoked = await server.graphql<{ revokeBoxKey: { result: { revokedAt: string | null } } }>(
      "mutation ($id: UUID!) { revokeBoxKey(input: { keyId: $id }) { result { revokedAt } } }",
      { id: newKey?.key.rowId },
      { token: owner.token },
    );
    expect(revoked.data?.revokeBoxKey.result.revokedAt).not.toBeNull();
    const client = await pool("root").connect();
    try {
      expect((await authenticate(client, newKey?.apiKey ?? "", "api-hw")).outcome).toBe("unauthorized");
      expect((await authenticate(client, created.apiKey, "api-hw")).outcome).toBe("ok");
    } finally {
      client.release();
    }

    const renamed = await server.graphql<{ updateBox: { box: { name: string } } }>(
      "mutation ($id: UUID!) { updateBox(input: { rowId: $id, patch: { name: \"renamed\" } }) { box { name } } }",
      { id: created.box.rowId },
      { token: owner.token },
    );
    expect(renamed.data?.updateBox.box.name).toBe("renamed");
    const deleted = await server.graphql<{ deleteBox: { box: { rowId: string } } }>(
      "mutation ($id: UUID!) { deleteBox(input: { rowId: $id }) { box { rowId } } }",
      { id: created.box.rowId },
      { token: owner.token },
    );
    expect(deleted.data?.deleteBox.box.rowId).toBe(created.box.rowId);
  });

  test("a box's commands of the last hour, newest first; metric averages and maxima over a window", async () => {
    const created = await createBox("metrics-box");
    const ids = [];
    for (const type of ["system.ping", "system.status", "file.list"]) ids.push(await sendOk(server, owner.token, created.box.rowId, type));
    await pool("root").query(
      `select app_private.bridge_record_metrics(array[$1,$1,$1,$1]::uuid[], '{null,null,null,null}', '{cpu.percent,cpu.percent,cpu.percent,memory.used_percent}',
         '{10,30,20,55}', '{null,null,null,null}')`,
      [created.box.rowId],
    );
    const since = new Date(Date.now() - 3_600_000).toISOString();
    const response = await server.graphql<{
      box: {
        boxCommands: { nodes: Array<{ rowId: string; commandType: string }> };
        metricSamples: { groupedAggregates: Array<{ keys: string[]; average: { value: string }; max: { value: number } }> };
      };
    }>(
      `query ($id: UUID!, $since: Datetime!) {
         box(rowId: $id) {
           boxCommands(filter: { queuedAt: { greaterThan: $since } }, orderBy: QUEUED_AT_DESC, first: 100) { nodes { rowId commandType } }
           metricSamples(filter: { recordedAt: { greaterThan: $since } }) {
             groupedAggregates(groupBy: NAME) { keys average { value } max { value } }
           }
         }
       }`,
      { id: created.box.rowId, since },
      { token: owner.token },
    );
    expect(response.errors).toBeUndefined();
    // Commands queued in one transaction share queued_at; all three are there.
    expect(response.data?.box.boxCommands.nodes.map((node) => node.rowId).sort()).toEqual([...ids].sort());
    const groups = Object.fromEntries(
      (response.data?.box.metricSamples.groupedAggregates ?? []).map((group) => [group.keys[0], [Number(group.average.value), group.max.value]]),
    );
    expect(groups).toEqual({ "cpu.percent": [20, 30], "memory.used_percent": [55, 55] });
  });

  test("clients cannot filter or sort commands on unindexed columns", async () => {
    const response = await server.graphql("{ boxCommands(filter: { stdout: { includes: \"secret\" } }) { nodes { rowId } } }", {}, { token: owner.token });
    expect(response.errors?.[0]?.message).toMatch(/stdout/);
  });
});
