import { describe, expect, test } from "@jest/globals";
import {
  FrameError,
  MAX_BATCH_SIZE,
  negotiateVersion,
  parseBoxFrame,
  parseBridgeFrame,
} from "../../src/bridge/protocol.ts";
import { TokenBucket } from "../../src/bridge/token-bucket.ts";
import { backoffCeiling, backoffDelay } from "../../src/box/backoff.ts";

const ID = "9b2e6a7c-1d2f-4e3a-8b9c-0d1e2f3a4b5c";

function refusal(data: string): FrameError {
  try {
    parseBoxFrame(data);
  } catch (error) {
    if (error instanceof FrameError) return error;
    throw error;
  }
  throw new Error(`accepted: ${data}`);
}

describe("box frames", () => {
  test("accepts well-formed frames of every type", () => {
    expect(parseBoxFrame(JSON.stringify({ type: "hello", protocols: [1], os: "linux", arch: "arm64", capabilities: ["bash.exec"] }))).toEqual({
      type: "hello",
      protocols: [1],
      os: "linux",
      arch: "arm64",
      capabilities: ["bash.exec"],
    });
    expect(parseBoxFrame(JSON.stringify({ type: "ack", id: ID.toUpperCase() }))).toEqual({ type: "ack", id: ID });
    expect(parseBoxFrame(JSON.stringify({ type: "output", id: ID, seq: 3, stream: "stderr", data: "x" }))).toMatchObject({ seq: 3 });
    expect(
      parseBoxFrame(JSON.stringify({ type: "result", id: ID, success: false, error_code: "NOT_FOUND", error: "gone", exit_code: 1 })),
    ).toMatchObject({ success: false, error_code: "NOT_FOUND", exit_code: 1 });
    expect(
      parseBoxFrame(JSON.stringify({ type: "heartbeat", metrics: [{ name: "cpu.percent", value: 1.5, labels: { core: "0" } }] })),
    ).toMatchObject({ metrics: [{ name: "cpu.percent", value: 1.5 }] });
    expect(parseBoxFrame(JSON.stringify({ type: "error", code: "INVALID_FRAME", message: "?" }))).toMatchObject({ code: "INVALID_FRAME" });
  });

  test.each([
    ["not JSON", "{", /not valid JSON/],
    ["an array", "[1]", /JSON object/],
    ["no type", "{}", /string field type/],
    ["an unknown type", '{"type":"launch"}', /unknown frame type "launch"/],
    ["a bridge-only type", JSON.stringify({ type: "command", id: ID }), /unknown frame type "command"/],
    ["an unknown field", JSON.stringify({ type: "ack", id: ID, extra: 1 }), /unknown field "extra"/],
    ["a malformed id", JSON.stringify({ type: "ack", id: "42" }), /ack.id is malformed/],
    ["a negative seq", JSON.stringify({ type: "output", id: ID, seq: -1, stream: "stdout", data: "" }), /seq must be a whole number/],
    ["an unknown stream", JSON.stringify({ type: "output", id: ID, seq: 0, stream: "stdin", data: "" }), /stream must be one of/],
    ["a result without success", JSON.stringify({ type: "result", id: ID }), /success must be true or false/],
    ["an unknown error code", JSON.stringify({ type: "result", id: ID, success: false, error_code: "OOPS" }), /error_code must be one of/],
    ["a metric that is not a number", JSON.stringify({ type: "heartbeat", metrics: [{ name: "cpu", value: "1" }] }), /finite number/],
    ["a bad metric name", JSON.stringify({ type: "heartbeat", metrics: [{ name: "CPU%", value: 1 }] }), /name is malformed/],
    ["hello without versions", JSON.stringify({ type: "hello", protocols: [] }), /protocols must be a list of 1 to 16/],
    ["hello with an unknown os", JSON.stringify({ type: "hello", protocols: [1], os: "beos" }), /os must be one of/],
  ])("refuses %s", (_what, data, message) => {
    const error = refusal(data);
    expect(error.code).toBe("INVALID_FRAME");
    expect(error.message).toMatch(message);
  });

  test("a refusal names the command when the frame had a well-formed id", () => {
    expect(refusal(JSON.stringify({ type: "result", id: ID, success: "yes" })).id).toBe(ID);
  });

  test("too many metrics in one heartbeat are refused", () => {
    const metrics = Array.from({ length: 101 }, () => ({ name: "cpu", value: 1 }));
    expect(refusal(JSON.stringify({ type: "heartbeat", metrics })).message).toMatch(/0 to 100 items/);
  });
});

describe("bridge frames", () => {
  const command = { type: "command", id: ID, command_type: "system.ping", payload: {}, timeout_ms: 60_000, sent_at: "2026-01-01T00:00:00Z" };

  test("a batch holds 1 to 10 commands", () => {
    expect(parseBridgeFrame(JSON.stringify({ type: "batch", commands: [command, command] }))).toMatchObject({ type: "batch" });
    const tooMany = Array.from({ length: MAX_BATCH_SIZE + 1 }, () => command);
    expect(() => parseBridgeFrame(JSON.stringify({ type: "batch", commands: tooMany }))).toThrow(/1 to 10 items/);
    expect(() => parseBridgeFrame(JSON.stringify({ type: "batch", commands: [{ ...command, payload: [] }] }))).toThrow(/payload must be a JSON object/);
  });

  test("a command type looks like area.action", () => {
    expect(() => parseBridgeFrame(JSON.stringify({ ...command, command_type: "rm -rf" }))).toThrow(/command_type is malformed/);
  });
});

describe("version negotiation", () => {
  test("picks the highest common version, or none", () => {
    expect(negotiateVersion([1, 2, 3], [1, 2])).toBe(2);
    expect(negotiateVersion([7], [1])).toBeNull();
  });
});

describe("token bucket", () => {
  test("allows the capacity at once, then refills over the period", () => {
    const bucket = new TokenBucket(3, 60_000, 0);
    expect([bucket.take(0), bucket.take(0), bucket.take(0), bucket.take(0)]).toEqual([true, true, true, false]);
    expect(bucket.waitMs(0)).toBe(20_000);
    expect(bucket.take(20_000)).toBe(true);
    bucket.pause(5_000, 20_000);
    expect(bucket.waitMs(20_000)).toBe(25_000);
  });
});

describe("reconnect back-off", () => {
  const options = { initialMs: 1_000, maxMs: 30_000 };

  test("doubles from 1 s to a 30 s ceiling", () => {
    expect([0, 1, 2, 3, 4, 5, 6, 40].map((attempt) => backoffCeiling(attempt, options))).toEqual([
      1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000, 30_000,
    ]);
  });

  test("waits between half and all of the ceiling, at random", () => {
    expect(backoffDelay(3, options, () => 0)).toBe(4_000);
    expect(backoffDelay(3, options, () => 0.999999)).toBe(8_000);
    const delays = new Set(Array.from({ length: 20 }, () => backoffDelay(0, options)));
    expect(delays.size).toBeGreaterThan(1);
    for (const delay of delays) expect(delay).toBeGreaterThanOrEqual(500);
  });
});
