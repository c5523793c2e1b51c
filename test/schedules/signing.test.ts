import { createHmac } from "node:crypto";
import { describe, expect, test } from "@jest/globals";
import { SIGNATURE_HEADER, signWebhook, TIMESTAMP_HEADER, verifyWebhook } from "../../src/schedules/signing.ts";

const secret = "whsec_test_secret";
const body = JSON.stringify({ hello: "world" });
const now = new Date("2025-06-01T12:00:00Z");

function verify(headers: Record<string, string>, overrides: Partial<Parameters<typeof verifyWebhook>[0]> = {}) {
  return verifyWebhook({ secret, body, timestamp: headers[TIMESTAMP_HEADER], signature: headers[SIGNATURE_HEADER], now, ...overrides });
}

describe("webhook signatures", () => {
  test("are HMAC-SHA256 over '<timestamp>.<body>' with the secret, as documented", () => {
    const headers = signWebhook([secret], body, now);
    expect(headers[TIMESTAMP_HEADER]).toBe("1748779200");
    const expected = createHmac("sha256", secret).update(`1748779200.${body}`).digest("hex");
    expect(headers[SIGNATURE_HEADER]).toBe(`v1=${expected}`);
    expect(verify(headers)).toEqual({ ok: true });
  });

  test("a changed body, another secret or a changed timestamp fails", () => {
    const headers = signWebhook([secret], body, now);
    expect(verify(headers, { body: body.replace("world", "World") })).toEqual({ ok: false, reason: "no signature matches" });
    expect(verify(headers, { secret: "whsec_other" })).toEqual({ ok: false, reason: "no signature matches" });
    expect(verify({ ...headers, [TIMESTAMP_HEADER]: "1748779201" })).toEqual({ ok: false, reason: "no signature matches" });
  });

  test("old timestamps are refused as replays; the tolerance is adjustable", () => {
    const headers = signWebhook([secret], body, new Date(now.getTime() - 10 * 60_000));
    expect(verify(headers)).toEqual({ ok: false, reason: "timestamp is 600 s away from now" });
    expect(verify(headers, { toleranceSeconds: 900 })).toEqual({ ok: true });
  });

  test("missing or malformed headers are refused", () => {
    const headers = signWebhook([secret], body, now);
    expect(verify({ ...headers, [TIMESTAMP_HEADER]: "" })).toEqual({ ok: false, reason: "missing or malformed timestamp" });
    expect(verify({ [TIMESTAMP_HEADER]: headers[TIMESTAMP_HEADER] })).toEqual({ ok: false, reason: "missing signature" });
    expect(verify({ ...headers, [SIGNATURE_HEADER]: "v1=zz" })).toEqual({ ok: false, reason: "no signature matches" });
    expect(verify({ ...headers, [SIGNATURE_HEADER]: headers[SIGNATURE_HEADER].replace("v1", "v0") })).toEqual({
      ok: false,
      reason: "no signature matches",
    });
  });

  test("during a rotation both secrets sign, and a receiver with either one accepts", () => {
    const headers = signWebhook(["whsec_new", "whsec_old"], body, now);
    expect(headers[SIGNATURE_HEADER].split(",")).toHaveLength(2);
    expect(verify(headers, { secret: "whsec_new" })).toEqual({ ok: true });
    expect(verify(headers, { secret: "whsec_old" })).toEqual({ ok: true });
    expect(verify(headers, { secret: "whsec_neither" }).ok).toBe(false);
  });
});
