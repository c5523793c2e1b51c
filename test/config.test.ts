import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, test } from "@jest/globals";
import { ConfigError, loadConfig } from "../src/config.ts";

const key = { ENCRYPTION_KEY: "k".repeat(32) };

const external = {
  DATABASE_URL: "postgres://owner:secret@db.example:5432/agentplane",
  AUTH_DATABASE_URL: "postgres://authenticator:secret@db.example:5432/agentplane",
};

describe("loadConfig", () => {
  test("defaults to the embedded database in development", () => {
    const config = loadConfig({});
    expect(config.database).toBeNull();
    expect(config.nodeEnv).toBe("development");
    expect(config.port).toBe(3000);
    expect(config.migrateOnStart).toBe(true);
    expect(config.visitorRole).toBe("agentplane_visitor");
    expect(config.sessionLifetimeHours).toBe(168);
  });

  test("reads a configured database", () => {
    const config = loadConfig({ ...external, ...key, PORT: "8080", NODE_ENV: "production" });
    expect(config.database).toMatchObject({ ownerUrl: external.DATABASE_URL, authUrl: external.AUTH_DATABASE_URL, rootUrl: null });
    expect(config.port).toBe(8080);
    expect(config.isProduction).toBe(true);
    expect(config.migrateOnStart).toBe(false);
  });

  test("schedules and notifications: defaults, SMTP_URL, and a development key kept in DATA_DIR", () => {
    const dataDir = mkdtempSync(path.join(tmpdir(), "agentplane-config-"));
    try {
      const config = loadConfig({ DATA_DIR: dataDir, SMTP_URL: "smtps://bot%40example.test:p%40ss@mail.example.test" });
      expect(config.encryptionKey).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(readFileSync(path.join(dataDir, "encryption.key"), "utf8").trim()).toBe(config.encryptionKey);
      expect(statSync(path.join(dataDir, "encryption.key")).mode & 0o777).toBe(0o600);
      expect(loadConfig({ DATA_DIR: dataDir }).encryptionKey).toBe(config.encryptionKey);
      expect(config.notifications).toEqual({
        maxAttempts: 8,
        timeoutMs: 10_000,
        telegramApiUrl: "https://api.telegram.org",
        smtp: { host: "mail.example.test", port: 465, secure: true, user: "bot@example.test", password: "p@ss" },
        smtpFrom: "agentplane <alerts@localhost>",
        allowPrivateNetworks: true,
      });
      expect(loadConfig({ ...external, ...key, NODE_ENV: "production" }).notifications.allowPrivateNetworks).toBe(false);
      expect(config.schedules).toEqual({ missedAfterMs: 60_000, agentOfflineAfterIntervals: 3 });
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  test.each([
    [{ PORT: "eighty" }, /PORT must be a whole number/],
    [{ PORT: "70000" }, /PORT must be a whole number from 0 to 65535/],
    [{ NODE_ENV: "staging" }, /NODE_ENV must be one of development, test, production/],
    [{ NODE_ENV: "production" }, /DATABASE_URL is required in production/],
    [{ DATABASE_URL: "not a url", AUTH_DATABASE_URL: external.AUTH_DATABASE_URL }, /DATABASE_URL is not a valid URL/],
    [{ DATABASE_URL: "mysql://a:b@h/db", AUTH_DATABASE_URL: external.AUTH_DATABASE_URL }, /must start with postgres:\/\//],
    [{ DATABASE_URL: external.DATABASE_URL }, /AUTH_DATABASE_URL is required/],
    [{ AUTH_DATABASE_URL: external.AUTH_DATABASE_URL }, /DATABASE_URL is not/],
    [{ ...external, AUTH_DATABASE_URL: "postgres://owner:x@db.example/agentplane" }, /must use different roles/],
    [{ ...external, AUTH_DATABASE_URL: "postgres://authenticator:x@db.example/other" }, /same database/],
    [{ REDIS_URL: "localhost:6379" }, /REDIS_URL must start with redis:\/\//],
    [{ DATABASE_VISITOR: "Visitor; drop table x" }, /DATABASE_VISITOR must be a lower-case PostgreSQL identifier/],
    [{ MIGRATE_ON_START: "maybe", ...external }, /MIGRATE_ON_START must be true or false/],
    [{ LOG_LEVEL: "loud" }, /LOG_LEVEL must be one of/],
    [{ ...external, NODE_ENV: "production" }, /ENCRYPTION_KEY is required in production/],
    [{ ENCRYPTION_KEY: "short" }, /ENCRYPTION_KEY must be at least 32 characters/],
    [{ ...key, SMTP_URL: "mail.example:25" }, /SMTP_URL must start with smtp:\/\/ or smtps:\/\//],
    [{ ...key, TELEGRAM_API_URL: "api.telegram.org" }, /TELEGRAM_API_URL must be an http\(s\) URL/],
    [{ ...key, DELIVERY_MAX_ATTEMPTS: "0" }, /DELIVERY_MAX_ATTEMPTS must be a whole number from 1 to 25/],
    [{ SESSION_LIFETIME_HOURS: "0" }, /SESSION_LIFETIME_HOURS must be a whole number from 1 to 8760/],
  ])("refuses %j with a clear message", (env, message) => {
    expect(() => loadConfig(env)).toThrow(ConfigError);
    expect(() => loadConfig(env)).toThrow(message);
  });
});
