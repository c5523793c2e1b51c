/**
 * The bridge's database calls: the narrow app_private functions of
 * migrations/committed/000003-boxes-and-the-bridge.sql, on the owner connection. What boxes send
 * often (acks, output, results, metrics) is batched: one round trip carries
 * whatever arrived while the previous one ran.
 */
import type { Pool } from "pg";
import { Batcher } from "./batcher.ts";
import type { CommandStatus, JsonObject, MetricSample, OutputFrame, ResultFrame } from "./protocol.ts";

export type AuthOutcome = "ok" | "unauthorized" | "hardware_id_mismatch" | "hardware_id_in_use";

export interface Authenticated {
  outcome: "ok";
  boxId: string;
  organizationId: string;
  keyId: string;
  /** The connection's number (a bigint, as text). */
  seq: string;
}

export type Authentication = Authenticated | { outcome: Exclude<AuthOutcome, "ok"> };

export interface HelloInfo {
  hostname: string | null;
  os: string | null;
  arch: string | null;
  agentVersion: string | null;
  capabilities: string[] | null;
}

export interface ClaimedCommand {
  id: string;
  seq: string;
  command_type: string;
  payload: JsonObject;
  timeout_ms: number;
  sent_at: Date;
  deadline_at: Date;
}

export interface Recorded {
  recorded: boolean;
  /** Null when the box has no such command. */
  status: CommandStatus | null;
}

export type Inbound =
  | { kind: "ack"; boxId: string; id: string }
  | { kind: "output"; boxId: string; frame: OutputFrame }
  | { kind: "result"; boxId: string; frame: ResultFrame };

export interface HeldConnection {
  boxId: string;
  seq: string;
  seenAt: Date;
}

/** What the presence flush says about a connection: close it (replaced, unauthorized), or deliver to it (queued). */
export interface ConnectionNotice {
  boxId: string;
  seq: string;
  reason: "replaced" | "unauthorized" | "queued";
}

export interface InstanceInfo {
  id: string;
  hostname: string;
  pid: number;
  heartbeatIntervalMs: number;
}

export class BridgeStore {
  private readonly pool: Pool;
  /** Acks, output and results, in the order they came. */
  readonly inbound: Batcher<Inbound, Recorded | null>;
  readonly metrics: Batcher<{ boxId: string; sample: MetricSample }, undefined>;
  /** Commands whose deadline passed, to be marked timed_out. */
  readonly timeouts: Batcher<string, undefined>;

  constructor(pool: Pool) {
    this.pool = pool;
    this.inbound = new Batcher((items) => this.recordInbound(items));
    this.metrics = new Batcher(async (items) => {
      await this.pool.query("select app_private.bridge_record_metrics($1, $2, $3, $4, $5)", [
        items.map((item) => item.boxId),
        items.map((item) => item.sample.agent_id ?? null),
        items.map((item) => item.sample.name),
        items.map((item) => item.sample.value),
        items.map((item) => (item.sample.labels === undefined ? null : JSON.stringify(item.sample.labels))),
      ]);
      return items.map(() => undefined);
    });
    this.timeouts = new Batcher(async (ids) => {
      await this.pool.query("select app_private.time_out_box_commands($1)", [ids]);
      return ids.map(() => undefined);
    });
  }

  async authenticate(keyHash: string, hardwareId: string, ip: string | null): Promise<Authentication> {
    const { rows } = await this.pool.query<{
      outcome: AuthOutcome;
      box_id: string;
      organization_id: string;
      key_id: string;
      connection_seq: string;
    }>("select * from app_private.bridge_authenticate($1, $2, $3)", [keyHash, hardwareId, ip]);
    const row = rows[0];
    if (row === undefined || row.outcome !== "ok") return { outcome: row?.outcome === undefined ? "unauthorized" : row.outcome } as Authentication;
    return { outcome: "ok", boxId: row.box_id, organizationId: row.organization_id, keyId: row.key_id, seq: row.connection_seq };
  }

  async connected(connection: Authenticated, instanceId: string, ip: string | null, hello: HelloInfo): Promise<boolean> {
    const { rows } = await this.pool.query<{ accepted: boolean }>(
      "select app_private.bridge_box_connected($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) as accepted",
      [
        connection.boxId,
        connection.seq,
        instanceId,
        connection.keyId,
        ip,
        hello.hostname,
        hello.os,
        hello.arch,
        hello.agentVersion,
        hello.capabilities,
      ],
    );
    return rows[0]?.accepted ?? false;
  }

  async disconnected(boxId: string, seq: string): Promise<boolean> {
    const { rows } = await this.pool.query<{ done: boolean }>("select app_private.bridge_box_disconnected($1, $2) as done", [boxId, seq]);
    return rows[0]?.done ?? false;
  }

  /** The instance's heartbeat and its boxes' last_seen_at; returns what must happen to some connections. */
  async heartbeat(instance: InstanceInfo, held: HeldConnection[]): Promise<ConnectionNotice[]> {
    const { rows } = await this.pool.query<{ box_id: string; connection_seq: string; reason: ConnectionNotice["reason"] }>(
      "select * from app_private.bridge_heartbeat($1, $2, $3, $4, $5, $6, $7)",
      [
        instance.id,
        instance.hostname,
        instance.pid,
        instance.heartbeatIntervalMs,
        held.map((c) => c.boxId),
        held.map((c) => c.seq),
        held.map((c) => c.seenAt),
      ],
    );
    return rows.map((row) => ({ boxId: row.box_id, seq: row.connection_seq, reason: row.reason }));
  }

  /** The instance stops: every box it holds goes offline. */
  async stopped(instanceId: string): Promise<void> {
    await this.pool.query("select app_private.bridge_stopped($1)", [instanceId]);
  }

  async claim(boxId: string, seq: string, max: number): Promise<ClaimedCommand[]> {
    const { rows } = await this.pool.query<ClaimedCommand>(
      "select id, seq, command_type, payload, timeout_ms, sent_at, deadline_at from app_private.bridge_claim_commands($1, $2, $3)",
      [boxId, seq, max],
    );
    return rows.sort((a, b) => (BigInt(a.seq) < BigInt(b.seq) ? -1 : 1));
  }

  private async recordInbound(items: Inbound[]): Promise<Array<Recorded | null>> {
    const acks = items.filter((item) => item.kind === "ack");
    const outputs = items.filter((item) => item.kind === "output");
    const results = items.filter((item) => item.kind === "result");
    const { rows } = await this.pool.query<{ id: string; recorded: boolean; status: CommandStatus | null }>(
      "select * from app_private.bridge_record_frames($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
      [
        acks.map((a) => a.boxId),
        acks.map((a) => a.id),
        outputs.map((o) => o.boxId),
        outputs.map((o) => o.frame.id),
        outputs.map((o) => o.frame.seq),
        outputs.map((o) => o.frame.stream),
        outputs.map((o) => o.frame.data),
        results.map((r) => r.boxId),
        results.map((r) => r.frame.id),
        results.map((r) => r.frame.success),
        results.map((r) => (r.frame.response === undefined ? null : JSON.stringify(r.frame.response))),
        results.map((r) => r.frame.error ?? null),
        results.map((r) => r.frame.error_code ?? null),
        results.map((r) => r.frame.exit_code ?? null),
      ],
    );
    // One row per result, in order.
    let next = 0;
    return items.map((item) => {
      if (item.kind !== "result") return null;
      const row = rows[next++];
      return { recorded: row?.recorded ?? false, status: row?.status ?? null };
    });
  }
}
