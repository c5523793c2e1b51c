/**
 * Presence in SQL: connections ordered by their number, so that an older
 * connection's hello or close never overrides a newer one; what a closed
 * connection had in flight goes back to the queue; a dead bridge instance's
 * boxes go offline; and partition upkeep.
 */
import { describe, expect, test } from "@jest/globals";
import { authenticate, commandStatus, connect, createBox, hello, sendCommand } from "../../helpers/boxes.ts";
import { asRoot, type Client } from "../../helpers/db.ts";
import { createUser } from "../../helpers/identity.ts";

async function boxStatus(client: Client, id: string): Promise<string> {
  const { rows } = await client.query("select status from app_public.boxes where id = $1", [id]);
  return rows[0].status;
}

async function disconnect(client: Client, boxId: string, seq: string): Promise<boolean> {
  const { rows } = await client.query("select app_private.bridge_box_disconnected($1, $2) as done", [boxId, seq]);
  return rows[0].done;
}

describe("presence", () => {
  test("a box is pending until it connects, online while connected, offline after", async () => {
    await asRoot(async (client) => {
      const owner = await createUser(client);
      const box = await createBox(client, owner);
      expect(await boxStatus(client, box.id)).toBe("pending");
      const { seq } = await connect(client, box);
      const { rows } = await client.query("select status, hostname, os, arch, agent_version, host(last_ip) as ip from app_public.boxes where id = $1", [
        box.id,
      ]);
      expect(rows[0]).toEqual({ status: "online", hostname: "host", os: "linux", arch: "amd64", agent_version: "1.0", ip: "192.0.2.7" });
      expect(await disconnect(client, box.id, seq)).toBe(true);
      expect(await boxStatus(client, box.id)).toBe("offline");
    });
  });

  test("the close of an older connection never marks a newer one offline", async () => {
    await asRoot(async (client) => {
      const owner = await createUser(client);
      const box = await createBox(client, owner);
      const older = await connect(client, box);
      const newer = await connect(client, box);
      expect(newer.accepted).toBe(true);
      expect(await disconnect(client, box.id, older.seq)).toBe(false);
      expect(await boxStatus(client, box.id)).toBe("online");
      expect(await disconnect(client, box.id, newer.seq)).toBe(true);
      expect(await boxStatus(client, box.id)).toBe("offline");
    });
  });

  test("a hello that arrives after a newer connection's is refused", async () => {
    await asRoot(async (client) => {
      const owner = await createUser(client);
      const box = await createBox(client, owner);
      const first = await authenticate(client, box.apiKey, `hw-${box.id}`);
      const second = await connect(client, box);
      expect(await hello(client, box, first.connection_seq as string, second.instanceId)).toBe(false);
      const { rows } = await client.query("select connection_seq::text as seq from app_private.box_connections where box_id = $1", [box.id]);
      expect(rows[0].seq).toBe(second.seq);
    });
  });

  test("commands sent but not acknowledged go back to the queue when the connection ends; acknowledged ones stay", async () => {
    await asRoot(async (client) => {
      const owner = await createUser(client);
      const box = await createBox(client, owner);
      const unacked = await sendCommand(client, owner, box);
      const acked = await sendCommand(client, owner, box);
      const { seq } = await connect(client, box);
      await client.query("select app_private.bridge_claim_commands($1, $2, 10)", [box.id, seq]);
      await client.query("select app_private.bridge_record_acks(array[$1]::uuid[], array[$2]::uuid[])", [box.id, acked]);
      await disconnect(client, box.id, seq);
      expect(await commandStatus(client, unacked)).toMatchObject({ status: "queued", delivery_count: 1 });
      expect(await commandStatus(client, acked)).toMatchObject({ status: "acked" });
      // And when a new connection replaces one that never closed.
      const next = await connect(client, box);
      await client.query("select app_private.bridge_claim_commands($1, $2, 10)", [box.id, next.seq]);
      await connect(client, box);
      expect(await commandStatus(client, unacked)).toMatchObject({ status: "queued", delivery_count: 2 });
    });
  });

  test("the heartbeat updates last_seen_at and names connections to close: replaced, revoked key, deleted box", async () => {
    await asRoot(async (client) => {
      const owner = await createUser(client);
      await client.query("update app_public.organization_limits set max_boxes = 5 where organization_id = $1", [owner.organizationId]);
      const [a, b, c] = [await createBox(client, owner), await createBox(client, owner), await createBox(client, owner)];
      const instanceId = crypto.randomUUID();
      const ca = await connect(client, a, { instanceId });
      const cb = await connect(client, b, { instanceId });
      const cc = await connect(client, c, { instanceId });
      const newer = await connect(client, a);
      await client.query("update app_public.box_api_keys set revoked_at = now() where id = $1", [b.keyId]);
      await client.query("delete from app_public.boxes where id = $1", [c.id]);
      await client.query("update app_public.boxes set last_seen_at = '2000-01-01' where id = any($1)", [[a.id, b.id]]);
      const { rows } = await client.query(
        "select box_id, reason from app_private.bridge_heartbeat($1, 'test', 1, 30000, $2, $3, $4) order by reason, box_id",
        [instanceId, [a.id, b.id, c.id], [ca.seq, cb.seq, cc.seq], [new Date(), new Date(), new Date()]],
      );
      expect(rows).toEqual(
        expect.arrayContaining([
          { box_id: a.id, reason: "replaced" },
          { box_id: b.id, reason: "unauthorized" },
          { box_id: c.id, reason: "unauthorized" },
        ]),
      );
      expect(rows).toHaveLength(3);
      const seen = await client.query("select id, last_seen_at > '2000-01-01' as moved from app_public.boxes where id = any($1) order by id", [[a.id, b.id]]);
      // b's connection is still its newest: its last_seen_at moves; a's old connection does not move a's.
      expect(Object.fromEntries(seen.rows.map((row) => [row.id, row.moved]))).toEqual({ [a.id]: false, [b.id]: true });
      expect(newer.accepted).toBe(true);
    });
  });

  test("the heartbeat names held boxes with commands waiting (a missed wake-up), so that the bridge delivers them", async () => {
    await asRoot(async (client) => {
      const owner = await createUser(client);
      const box = await createBox(client, owner);
      const { seq, instanceId } = await connect(client, box);
      const heartbeat = () =>
        client.query("select box_id, reason from app_private.bridge_heartbeat($1, 'test', 1, 30000, $2, $3, $4)", [
          instanceId,
          [box.id],
          [seq],
          [new Date()],
        ]);
      expect((await heartbeat()).rows).toEqual([]);
      await sendCommand(client, owner, box);
      expect((await heartbeat()).rows).toEqual([{ box_id: box.id, reason: "queued" }]);
    });
  });

  test("boxes of a bridge instance silent for three intervals go offline in the sweep, and a clean stop does it at once", async () => {
    await asRoot(async (client) => {
      const owner = await createUser(client);
      await client.query("update app_public.organization_limits set max_boxes = 5 where organization_id = $1", [owner.organizationId]);
      const crashed = crypto.randomUUID();
      const alive = crypto.randomUUID();
      const [a, b, c] = [await createBox(client, owner), await createBox(client, owner), await createBox(client, owner)];
      await connect(client, a, { instanceId: crashed, heartbeatIntervalMs: 1_000 });
      await connect(client, b, { instanceId: alive, heartbeatIntervalMs: 1_000 });
      const pending = await sendCommand(client, owner, a);
      await client.query("select app_private.bridge_claim_commands($1, (select connection_seq from app_private.box_connections where box_id = $1), 10)", [a.id]);
      await client.query("update app_private.bridge_instances set heartbeat_at = now() - interval '4 seconds' where id = $1", [crashed]);
      await client.query("update app_private.bridge_instances set heartbeat_at = now() - interval '2 seconds' where id = $1", [alive]);
      // At least these (other test files' crashed bridges may be swept too: the database is shared).
      const swept = (await client.query("select * from app_private.sweep_box_presence()")).rows[0];
      expect(swept.dead_instances).toBeGreaterThanOrEqual(1);
      expect(swept.offline_boxes).toBeGreaterThanOrEqual(1);
      expect([await boxStatus(client, a.id), await boxStatus(client, b.id)]).toEqual(["offline", "online"]);
      expect(await commandStatus(client, pending)).toMatchObject({ status: "queued" });
      const instances = await client.query("select id from app_private.bridge_instances where id = any($1)", [[crashed, alive]]);
      expect(instances.rows.map((row) => row.id)).toEqual([alive]);

      const stopping = crypto.randomUUID();
      await connect(client, c, { instanceId: stopping });
      expect((await client.query("select app_private.bridge_stopped($1) as n", [stopping])).rows[0].n).toBe(1);
      expect(await boxStatus(client, c.id)).toBe("offline");
    });
  });
});

describe("partitions", () => {
  test("upkeep creates partitions ahead and drops those past retention, idempotently", async () => {
    await asRoot(async (client) => {
      await client.query(
        "create table app_private.box_commands_p200001 partition of app_public.box_commands for values from ('2000-01-01') to ('2000-02-01')",
      );
      const { rows } = await client.query("select * from app_private.maintain_partitions('app_public.box_commands', 'month', 5, 3)");
      expect(rows).toEqual(expect.arrayContaining([{ action: "dropped", partition_name: "app_private.box_commands_p200001" }]));
      const created = rows.filter((row) => row.action === "created");
      expect(created.length).toBeGreaterThanOrEqual(1);
      expect((await client.query("select * from app_private.maintain_partitions('app_public.box_commands', 'month', 5, 3)")).rows).toEqual([]);

      const months = await client.query<{ name: string }>(
        `select c.relname as name from pg_inherits i join pg_class c on c.oid = i.inhrelid
         where i.inhparent = 'app_public.box_commands'::regclass order by 1`,
      );
      const now = new Date();
      const expected = Array.from({ length: 6 }, (_, i) => {
        const month = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + i, 1));
        return `box_commands_p${month.getUTCFullYear()}${String(month.getUTCMonth() + 1).padStart(2, "0")}`;
      });
      expect(months.rows.map((row) => row.name)).toEqual(expect.arrayContaining(expected));
      const visitor = await client.query(
        "select has_table_privilege('agentplane_test_visitor', $1, 'select') as can", [`app_private.${expected[0]}`],
      );
      expect(visitor.rows[0].can).toBe(false);
    });
  });

  test("metric samples get daily partitions, dropped after 7 days", async () => {
    await asRoot(async (client) => {
      await client.query(
        "create table app_private.metric_samples_p20000101 partition of app_public.metric_samples for values from ('2000-01-01') to ('2000-01-02')",
      );
      const { rows } = await client.query("select * from app_private.maintain_partitions('app_public.metric_samples', 'day', 7, 7)");
      expect(rows).toEqual([{ action: "dropped", partition_name: "app_private.metric_samples_p20000101" }]);
    });
  });
});
