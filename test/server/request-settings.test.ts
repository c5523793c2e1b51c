/** How a request becomes PostgreSQL settings (no database needed). */
import { describe, expect, test } from "@jest/globals";
import { bearerToken, clientIp, requestPgSettings, tokenHash } from "../../src/server/request-settings.ts";
import { testConfig } from "../helpers/server.ts";

describe("request settings", () => {
  const config = testConfig();

  test("a Bearer token becomes agentplane.token_hash (hex SHA-256); nothing else does", () => {
    expect(tokenHash("abc")).toBe("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    expect(bearerToken("Bearer ses_abc")).toBe("ses_abc");
    expect(bearerToken("bearer   ses_abc ")).toBe("ses_abc");
    for (const value of [undefined, "", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "ses_abc", "Bearer a b"]) {
      expect(bearerToken(value)).toBeUndefined();
    }
    const settings = requestPgSettings(config, { headers: { authorization: "Bearer ses_abc" } });
    expect(settings["agentplane.token_hash"]).toBe(tokenHash("ses_abc"));
    expect(requestPgSettings(config, { headers: { authorization: "Basic x" } })).not.toHaveProperty(["agentplane.token_hash"]);
  });

  test("a WebSocket operation takes its token from the authorization connection parameter", () => {
    const settings = requestPgSettings(config, { headers: {}, connectionParams: { authorization: "Bearer ses_ws" } });
    expect(settings["agentplane.token_hash"]).toBe(tokenHash("ses_ws"));
  });

  test("every request gets its own request id, the visitor role and the session lifetime", () => {
    const first = requestPgSettings(config, { headers: {} });
    const second = requestPgSettings(config, { headers: {} });
    expect(first["agentplane.request_id"]).not.toBe(second["agentplane.request_id"]);
    expect(first).toMatchObject({ role: config.visitorRole, "agentplane.session_lifetime": "168 hours" });
    expect(requestPgSettings(testConfig({ SESSION_LIFETIME_HOURS: "2" }), { headers: {} })).toMatchObject({
      "agentplane.session_lifetime": "2 hours",
    });
  });

  test("the client's address: the peer, or behind trusted proxies the right X-Forwarded-For hop", () => {
    const headers = { "x-forwarded-for": "203.0.113.9, 198.51.100.1" };
    expect(clientIp({ headers, remoteAddress: "::ffff:10.0.0.2" }, 0)).toBe("10.0.0.2");
    expect(clientIp({ headers, remoteAddress: "10.0.0.2" }, 1)).toBe("198.51.100.1");
    expect(clientIp({ headers, remoteAddress: "10.0.0.2" }, 2)).toBe("203.0.113.9");
    expect(clientIp({ headers: { "x-forwarded-for": "not an address" }, remoteAddress: "10.0.0.2" }, 1)).toBeUndefined();
    expect(clientIp({ headers: {}, remoteAddress: "::1" }, 0)).toBe("::1");
  });

  test("the User-Agent is passed on, cut at 512 characters", () => {
    const settings = requestPgSettings(config, { headers: { "user-agent": "x".repeat(600) } });
    expect(settings["agentplane.user_agent"]).toHaveLength(512);
  });
});
