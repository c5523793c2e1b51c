/**
 * Box commands in SQL: queueing (time-outs, rate limits, permissions),
 * delivery in order, acknowledgements, output, results recorded exactly once,
 * cancel, time-outs and expiry.
 */
import { describe, expect, test } from "@jest/globals";
import { commandStatus, connect, createBox, sendCommand, type TestBox } from "../../helpers/boxes.ts";
import { asRoot, expectError, type Client } from "../../helpers/db.ts";
import { asUser, createUser, type TestUser } from "../../helpers/identity.ts";

async function setup(client: Client): Promise<{ owner: TestUser; box: TestBox }> {
  const owner = await createUser(client);
  return { owner, box: await createBox(client, owner) };
}

async function claim(client: Client, box: TestBox, seq: string, max = 10): Promise<Array<{ id: string; seq: string }>> {
  const { rows } = await client.query<{ id: string; seq: string }>(
    "select id, seq from app_private.bridge_claim_commands($1, $2, $3)",
    [box.id, seq, max],
  );
  return rows.sort((a, b) => Number(BigInt(a.seq) - BigInt(b.seq)));
}

interface Result {
  id: string;
  success: boolean;
  error_code?: string;
}

async function recordResults(client: Client, box: TestBox, results: Result[]) {
  const { rows } = await client.query<{ id: string; recorded: boolean; status: string | null }>(
    "select * from app_private.bridge_record_results($1, $2, $3, $4, $5, $6, $7)",
    [
      results.map(() => box.id),
      results.map((r) => r.id),
      results.map((r) => r.success),
      results.map((r) => JSON.stringify({ n: r.id.slice(0, 4) })),
      results.map((r) => (r.success ? null : "it failed")),
      results.map((r) => r.error_code ?? null),
      results.map(() => null),
    ],
  );
  return rows;
}

async function commandCount(client: Client, box: TestBox): Promise<number> {
  const { rows } = await client.query("select count(*)::int as n from app_public.box_commands where box_id = $1", [box.id]);
  return rows[0].n;
}

describe("queueing", () => {
  test("time-outs: 60 s by default, bash.exec's own plus 5 s, or what the caller says; an hour to expire", async () => {
    await asRoot(async (client) => {
      const { owner, box } = await setup(client);
      const ping = await sendCommand(client, owner, box, "system.ping");
      const exec = await sendCommand(client, owner, box, "bash.exec", { command: "sleep 1", timeout_ms: 120_000 });
      const explicit = await asUser(client, owner, async (asOwner) => {
        const { rows } = await asOwner.query("select id from app_public.send_box_command($1, 'file.read', '{}', 1500)", [box.id]);
        return rows[0].id as string;
      });
      expect(await commandStatus(client, ping)).toMatchObject({ timeout_ms: 60_000, status: "queued", origin: "manual", created_by: owner.id });
      expect(await commandStatus(client, exec)).toMatchObject({ timeout_ms: 125_000 });
      expect(await commandStatus(client, explicit)).toMatchObject({ timeout_ms: 1_500 });
      const { rows } = await client.query(
        "select extract(epoch from expires_at - queued_at)::int as seconds from app_public.box_commands where id = $1",
        [ping],
      );
      expect(rows[0].seconds).toBe(3600);
    });
  });

  test("malformed command types and payloads are refused", async () => {
    await asRoot(async (client) => {
      const { owner, box } = await setup(client);
      await asUser(client, owner, async (asOwner) => {
        expect((await expectError(asOwner, "select app_public.send_box_command($1, 'rm -rf /')", [box.id])).code).toBe("INVAL");
        expect((await expectError(asOwner, "select app_public.send_box_command($1, 'a.b', '[1]')", [box.id])).code).toBe("INVAL");
        expect((await expectError(asOwner, "select app_public.send_box_command($1, 'a.b', '{}', 0)", [box.id])).code).toBe("INVAL");
      });
    });
  });

  test("queue_box_command serves the worker and other SQL, with an origin", async () => {
    await asRoot(async (client) => {
      const { box } = await setup(client);
      const { rows } = await client.query(
        "select id, origin, status, created_by from app_private.queue_box_command($1, 'system.status', '{}', 'schedule')",
        [box.id],
      );
      expect(rows[0]).toMatchObject({ origin: "schedule", status: "queued", created_by: null });
      const bad = await expectError(client, "select app_private.queue_box_command($1, 'system.status', '{}', 'cron')", [box.id]);
      expect(bad.code).toBe("23514");
      const missing = await expectError(client, "select app_private.queue_box_command(gen_random_uuid(), 'system.status', '{}', 'system')");
      expect(missing.code).toBe("NTFND");
    });
  });

  test("rate limits: per box a minute and per organization an hour, with retry_after_seconds", async () => {
    await asRoot(async (client) => {
      const { owner, box } = await setup(client);
      await client.query("select set_config('agentplane.box_commands_per_minute', '3', true)");
      await client.query("select set_config('agentplane.organization_box_commands_per_hour', '5', true)");
      for (let i = 0; i < 3; i++) await sendCommand(client, owner, box);
      const perBox = await asUser(client, owner, (asOwner) => expectError(asOwner, "select app_public.send_box_command($1, 'system.ping')", [box.id]));
      expect(perBox.code).toBe("RATEL");
      expect(perBox.message).toMatch(/at most 3 commands a minute per box/);
      const retry = JSON.parse(perBox.detail ?? "{}").retry_after_seconds;
      expect(retry).toBeGreaterThanOrEqual(1);
      expect(retry).toBeLessThanOrEqual(60);

      await client.query("update app_public.organization_limits set max_boxes = 5 where organization_id = $1", [owner.organizationId]);
      const second = await createBox(client, owner);
      await sendCommand(client, owner, second);
      await sendCommand(client, owner, second);
      const perOrganization = await expectError(client, "select app_private.queue_box_command($1, 'system.ping', '{}', 'schedule')", [second.id]);
      expect(perOrganization.code).toBe("RATEL");
      expect(perOrganization.message).toMatch(/at most 5 commands an hour per organization/);
      expect(JSON.parse(perOrganization.detail ?? "{}").retry_after_seconds).toBeGreaterThan(60);
      expect(await commandCount(client, box) + (await commandCount(client, second))).toBe(5);
    });
  });

  test("viewers and other organizations can neither send nor cancel, nor see the commands", async () => {
    await asRoot(async (client) => {
      const { owner, box } = await setup(client);
      const viewer = await createUser(client);
      const outsider = await createUser(client);
      await client.query("insert into app_public.organization_memberships (organization_id, user_id, role) values ($1, $2, 'viewer')", [
        owner.organizationId,
        viewer.id,
      ]);
      const id = await sendCommand(client, owner, box);
      for (const user of [viewer, outsider]) {
        await asUser(client, user, async (asOther) => {
          expect((await expectError(asOther, "select app_public.send_box_command($1, 'system.ping')", [box.id])).code).toBe("NTFND");
          expect((await expectError(asOther, "select app_public.cancel_box_command($1)", [id])).code).toBe("NTFND");
          expect((await expectError(asOther, "select app_private.queue_box_command($1, 'system.ping', '{}', 'system')", [box.id])).code).toBe("42501");
        });
      }
      await asUser(client, viewer, async (asViewer) => {
        expect((await asViewer.query("select id from app_public.box_commands where id = $1", [id])).rowCount).toBe(1);
      });
      await asUser(client, outsider, async (asOutsider) => {
        expect((await asOutsider.query("select id from app_public.box_commands where id = $1", [id])).rowCount).toBe(0);
      });
      expect(await commandStatus(client, id)).toMatchObject({ status: "queued" });
      expect(await commandCount(client, box)).toBe(1);
    });
  });

  test("a box's commands of the last hour, newest first, use an index", async () => {
    await asRoot(async (client) => {
      const { box } = await setup(client);
      await client.query("set local enable_seqscan = off");
      const { rows } = await client.query(
        `explain select * from app_public.box_commands
         where box_id = $1 and queued_at >= now() - interval '1 hour' order by queued_at desc limit 100`,
        [box.id],
      );
      const plan = rows.map((row) => row["QUERY PLAN"]).join("\n");
      expect(plan).toMatch(/Index Scan using box_commands_p\d+_box_id_queued_at_idx/);
      expect(plan).not.toMatch(/Sort/);
    });
  });
});

describe("delivery", () => {
  test("queued commands are claimed in order, in batches, by the box's newest connection only", async () => {
    await asRoot(async (client) => {
      const { owner, box } = await setup(client);
      const ids: string[] = [];
      for (let i = 0; i < 12; i++) ids.push(await sendCommand(client, owner, box));
      const old = await connect(client, box);
      const current = await connect(client, box);
      expect(await claim(client, box, old.seq)).toEqual([]);
      const first = await claim(client, box, current.seq);
      const second = await claim(client, box, current.seq);
      expect([...first, ...second].map((row) => row.id)).toEqual(ids);
      expect(first).toHaveLength(10);
      expect(await commandStatus(client, ids[0] as string)).toMatchObject({ status: "sent", delivery_count: 1 });
    });
  });

  test("expired commands are not delivered", async () => {
    await asRoot(async (client) => {
      const { owner, box } = await setup(client);
      const id = await sendCommand(client, owner, box);
      await client.query("update app_public.box_commands set expires_at = now() - interval '1 second' where id = $1", [id]);
      const { seq } = await connect(client, box);
      expect(await claim(client, box, seq)).toEqual([]);
    });
  });

  test("acknowledgements move sent commands to acked, of the right box only", async () => {
    await asRoot(async (client) => {
      const { owner, box } = await setup(client);
      const id = await sendCommand(client, owner, box);
      const { seq } = await connect(client, box);
      await claim(client, box, seq);
      const wrongBox = await client.query("select app_private.bridge_record_acks(array[gen_random_uuid()], array[$1]::uuid[]) as n", [id]);
      expect(wrongBox.rows[0].n).toBe(0);
      const acked = await client.query("select app_private.bridge_record_acks(array[$1]::uuid[], array[$2]::uuid[]) as n", [box.id, id]);
      expect(acked.rows[0].n).toBe(1);
      expect(await commandStatus(client, id)).toMatchObject({ status: "acked" });
    });
  });

  test("output is stored in order, once; a gap or the size cap marks it truncated", async () => {
    await asRoot(async (client) => {
      const { owner, box } = await setup(client);
      const id = await sendCommand(client, owner, box, "bash.exec", { command: "x" });
      const { seq } = await connect(client, box);
      await claim(client, box, seq);
      const record = (chunks: Array<[number, string, string]>) =>
        client.query("select app_private.bridge_record_outputs($1, $2, $3, $4, $5)", [
          chunks.map(() => box.id),
          chunks.map(() => id),
          chunks.map((c) => c[0]),
          chunks.map((c) => c[1]),
          chunks.map((c) => c[2]),
        ]);
      await record([[1, "stderr", "warn\n"], [0, "stdout", "hello "]]);
      await record([[1, "stderr", "warn\n"], [2, "stdout", "world\n"]]);
      expect(await commandStatus(client, id)).toMatchObject({
        stdout: "hello world\n",
        stderr: "warn\n",
        output_chunks: 3,
        output_truncated: false,
      });
      await record([[5, "stdout", "after a gap\n"]]);
      expect(await commandStatus(client, id)).toMatchObject({ stdout: "hello world\nafter a gap\n", output_truncated: true, output_chunks: 6 });

      const capped = await sendCommand(client, owner, box, "bash.exec", { command: "y" });
      await claim(client, box, seq);
      await client.query("select set_config('agentplane.box_max_output_bytes', '8', true)");
      await client.query("select app_private.bridge_record_outputs(array[$1]::uuid[], array[$2]::uuid[], '{0}', '{stdout}', '{0123456789}')", [
        box.id,
        capped,
      ]);
      expect(await commandStatus(client, capped)).toMatchObject({ stdout: "01234567", output_truncated: true });
    });
  });
});

describe("results", () => {
  test("a result ends a command once; duplicates and late results change nothing and create nothing", async () => {
    await asRoot(async (client) => {
      const { owner, box } = await setup(client);
      const ok = await sendCommand(client, owner, box);
      const failing = await sendCommand(client, owner, box);
      const canceled = await sendCommand(client, owner, box);
      const { seq } = await connect(client, box);
      await claim(client, box, seq);
      await asUser(client, owner, (asOwner) => asOwner.query("select app_public.cancel_box_command($1)", [canceled]));
      const before = await commandCount(client, box);

      const results = await recordResults(client, box, [
        { id: ok, success: true },
        { id: ok, success: false, error_code: "EXEC_ERROR" },
        { id: failing, success: false, error_code: "NOT_FOUND" },
        { id: canceled, success: true },
      ]);
      expect(results).toEqual([
        { id: ok, recorded: true, status: "succeeded" },
        { id: ok, recorded: false, status: "succeeded" },
        { id: failing, recorded: true, status: "failed" },
        { id: canceled, recorded: false, status: "canceled" },
      ]);
      const again = await recordResults(client, box, [{ id: failing, success: true }]);
      expect(again).toEqual([{ id: failing, recorded: false, status: "failed" }]);
      expect(await commandStatus(client, ok)).toMatchObject({ status: "succeeded", error_code: null, response: { n: ok.slice(0, 4) } });
      expect(await commandStatus(client, failing)).toMatchObject({ status: "failed", error_code: "NOT_FOUND", error: "it failed" });
      expect(await commandStatus(client, canceled)).toMatchObject({ status: "canceled", error_code: "CANCELED" });
      expect(await commandCount(client, box)).toBe(before);
    });
  });

  test("a result for a command never delivered, of another box, or unknown is not recorded", async () => {
    await asRoot(async (client) => {
      const { owner, box } = await setup(client);
      const queued = await sendCommand(client, owner, box);
      const results = await recordResults(client, box, [{ id: queued, success: true }]);
      expect(results).toEqual([{ id: queued, recorded: false, status: "queued" }]);
      const unknown = crypto.randomUUID();
      expect(await recordResults(client, box, [{ id: unknown, success: true }])).toEqual([{ id: unknown, recorded: false, status: null }]);
      expect(await commandStatus(client, queued)).toMatchObject({ status: "queued" });
    });
  });

  test("the box's TIMEOUT and CANCELED results give those statuses", async () => {
    await asRoot(async (client) => {
      const { owner, box } = await setup(client);
      const slow = await sendCommand(client, owner, box);
      const stopped = await sendCommand(client, owner, box);
      const { seq } = await connect(client, box);
      await claim(client, box, seq);
      await recordResults(client, box, [
        { id: slow, success: false, error_code: "TIMEOUT" },
        { id: stopped, success: false, error_code: "CANCELED" },
      ]);
      expect(await commandStatus(client, slow)).toMatchObject({ status: "timed_out" });
      expect(await commandStatus(client, stopped)).toMatchObject({ status: "canceled" });
    });
  });
});

describe("cancel, time-out, expiry", () => {
  test("cancel ends a queued or running command; an ended one is returned unchanged", async () => {
    await asRoot(async (client) => {
      const { owner, box } = await setup(client);
      const queued = await sendCommand(client, owner, box);
      await asUser(client, owner, async (asOwner) => {
        const { rows } = await asOwner.query("select status, error_code from app_public.cancel_box_command($1)", [queued]);
        expect(rows[0]).toEqual({ status: "canceled", error_code: "CANCELED" });
        const again = await asOwner.query("select status, finished_at from app_public.cancel_box_command($1)", [queued]);
        expect(again.rows[0].status).toBe("canceled");
      });
    });
  });

  test("the sweep times out commands past their deadline and expires those never delivered", async () => {
    await asRoot(async (client) => {
      const { owner, box } = await setup(client);
      const inFlight = await sendCommand(client, owner, box);
      const running = await sendCommand(client, owner, box);
      const fresh = await sendCommand(client, owner, box);
      const { seq } = await connect(client, box);
      await claim(client, box, seq);
      await client.query("select app_private.bridge_record_acks(array[$1]::uuid[], array[$2]::uuid[])", [box.id, running]);
      const neverDelivered = await sendCommand(client, owner, box);
      await client.query("update app_public.box_commands set deadline_at = now() - interval '1 ms' where id = any($1)", [[inFlight, running]]);
      await client.query("update app_public.box_commands set expires_at = now() - interval '1 ms' where id = $1", [neverDelivered]);

      // At least these: other test files' commands share the database.
      const { rows } = await client.query("select * from app_private.sweep_box_commands()");
      expect(rows[0].timed_out).toBeGreaterThanOrEqual(2);
      expect(rows[0].expired).toBeGreaterThanOrEqual(1);
      expect(await commandStatus(client, inFlight)).toMatchObject({ status: "timed_out", error_code: "TIMEOUT" });
      expect(await commandStatus(client, running)).toMatchObject({ status: "timed_out" });
      expect(await commandStatus(client, neverDelivered)).toMatchObject({ status: "expired", error_code: "EXPIRED" });
      expect(await commandStatus(client, fresh)).toMatchObject({ status: "sent" });
      // Idempotent; and a late result changes nothing.
      const finishedAt = await commandStatus(client, inFlight);
      await client.query("select * from app_private.sweep_box_commands()");
      expect(await commandStatus(client, inFlight)).toEqual(finishedAt);
      expect(await recordResults(client, box, [{ id: running, success: true }])).toEqual([{ id: running, recorded: false, status: "timed_out" }]);
    });
  });

  test("time_out_box_commands touches only the commands named, and only past their deadline", async () => {
    await asRoot(async (client) => {
      const { owner, box } = await setup(client);
      const a = await sendCommand(client, owner, box);
      const b = await sendCommand(client, owner, box);
      const { seq } = await connect(client, box);
      await claim(client, box, seq);
      await client.query("update app_public.box_commands set deadline_at = now() - interval '1 ms' where box_id = $1", [box.id]);
      expect((await client.query("select app_private.time_out_box_commands(array[$1]::uuid[]) as n", [a])).rows[0].n).toBe(1);
      expect(await commandStatus(client, b)).toMatchObject({ status: "sent" });
    });
  });
});
