import { describe, expect, test } from "@jest/globals";
import { ConfigError, databaseSessionSettings, loadConfig } from "../../src/config.ts";

describe("bridge and box command configuration", () => {
  test("defaults follow the protocol document", () => {
    const config = loadConfig({});
    expect(config.bridge).toEqual({
      heartbeatIntervalMs: 30_000,
      presenceFlushMs: 10_000,
      helloTimeoutMs: 10_000,
      maxFrameBytes: 1_048_576,
      maxBufferedBytes: 4_194_304,
      framesPerMinute: 1_000,
      maxViolations: 10,
    });
    expect(config.boxCommands).toMatchObject({ perBoxPerMinute: 100, perOrganizationPerHour: 1_000, defaultTimeoutMs: 60_000, keyGraceHours: 24 });
    expect(config.redisKeyPrefix).toBe("agentplane:");
  });

  test("reaches SQL as session settings", () => {
    const settings = databaseSessionSettings(loadConfig({ BOX_COMMANDS_PER_MINUTE: "0", BOX_KEY_GRACE_HOURS: "2" }));
    expect(settings).toMatchObject({ "agentplane.box_commands_per_minute": "0", "agentplane.box_key_grace_hours": "2" });
  });

  test.each([
    [{ BRIDGE_HEARTBEAT_INTERVAL_MS: "10" }, /BRIDGE_HEARTBEAT_INTERVAL_MS must be a whole number from 100/],
    [{ BRIDGE_MAX_FRAME_BYTES: "1mb" }, /BRIDGE_MAX_FRAME_BYTES must be a whole number/],
    [{ BRIDGE_FRAMES_PER_MINUTE: "0" }, /BRIDGE_FRAMES_PER_MINUTE must be a whole number from 1/],
    [{ BOX_COMMAND_TIMEOUT_MS: "-5" }, /BOX_COMMAND_TIMEOUT_MS must be a whole number/],
    [{ REDIS_KEY_PREFIX: "has space" }, /REDIS_KEY_PREFIX must be 1 to 64 letters/],
  ])("refuses %j", (env, message) => {
    expect(() => loadConfig(env)).toThrow(ConfigError);
    expect(() => loadConfig(env)).toThrow(message);
  });
});
