/**
 * Configuration, read once from environment variables and validated before
 * anything starts. A missing or malformed value stops the process with one
 * line naming the variable (see `ConfigError` in `src/main.ts`).
 */
import { randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";

export class ConfigError extends Error {}

export type NodeEnv = "development" | "test" | "production";

export interface DatabaseConfig {
  /** Owner connection: migrations, worker, bridge, trusted functions. */
  ownerUrl: string;
  /** Authenticator connection (noinherit): every GraphQL request. */
  authUrl: string;
  /** Superuser connection: role and database set-up, resets, tests. */
  rootUrl: string | null;
  /** Shadow database for `graphile-migrate commit` (development only). */
  shadowUrl: string | null;
}

/** The box bridge (docs/bridge-protocol.md). */
export interface BridgeConfig {
  /** WebSocket pings, and the heartbeat interval announced to boxes; silent for two of them: disconnected. */
  heartbeatIntervalMs: number;
  /** How often last_seen_at and the instance's own heartbeat are written (one statement for all boxes). */
  presenceFlushMs: number;
  /** How long after the upgrade a box has to say hello. */
  helloTimeoutMs: number;
  /** Largest frame accepted (ws maxPayload). */
  maxFrameBytes: number;
  /** Bytes waiting to be sent to one box beyond which it is disconnected as a slow consumer. */
  maxBufferedBytes: number;
  /** Frames one connection may send a minute. */
  framesPerMinute: number;
  /** Refused frames (invalid or over the rate) a minute before the connection is closed with 1008. */
  maxViolations: number;
}

/** Commands sent to boxes: limits and defaults, enforced in SQL (passed as agentplane.* settings). */
export interface BoxCommandConfig {
  /** 0: no limit. */
  perBoxPerMinute: number;
  /** 0: no limit. */
  perOrganizationPerHour: number;
  defaultTimeoutMs: number;
  /** A command never delivered expires this long after being queued. */
  expiryMs: number;
  /** How long a rotated box key keeps working. */
  keyGraceHours: number;
  /** Output kept per stream of a command. */
  maxOutputBytes: number;
}

export interface Config {
  nodeEnv: NodeEnv;
  isProduction: boolean;
  logLevel: string;
  host: string;
  port: number;
  /** Role every GraphQL request runs as. */
  visitorRole: string;
  /** `null` when DATABASE_URL is unset: the embedded PostgreSQL is used (see src/db/embedded.ts). */
  database: DatabaseConfig | null;
  /** Where the embedded PostgreSQL keeps its data when DATABASE_URL is unset. */
  dataDir: string;
  embeddedPgPort: number;
  /** Run pending migrations at start-up (always true for the embedded database). */
  migrateOnStart: boolean;
  redisUrl: string | null;
  /** Prefix of every Redis key and channel (several deployments, or test runs, can share one Redis). */
  redisKeyPrefix: string;
  bridge: BridgeConfig;
  boxCommands: BoxCommandConfig;
  /** statement_timeout for every GraphQL request, in milliseconds. */
  statementTimeoutMs: number;
  /** Largest accepted GraphQL request body, in bytes. */
  maxRequestBytes: number;
  workerConcurrency: number;
  /** How long a SIGTERM may take before the process gives up draining. */
  shutdownTimeoutMs: number;
  /** How long a session opened by login/register lasts, in hours. */
  sessionLifetimeHours: number;
  /**
   * Encrypts secret values in the database (notification channel secrets,
   * webhook signing secrets) with pgcrypto. Passed to SQL as a query
   * parameter by trusted code only; never stored in the database.
   */
  encryptionKey: string;
  schedules: ScheduleConfig;
  notifications: NotificationConfig;
}

export interface ScheduleConfig {
  /** A run that starts later than this after its time was missed (downtime): its cron job's catch-up policy applies. */
  missedAfterMs: number;
  /** An agent whose heartbeat is this many intervals late becomes `inactive`. */
  agentOfflineAfterIntervals: number;
}

export interface SmtpServerConfig {
  host: string;
  port: number;
  secure: boolean;
  user: string | null;
  password: string | null;
}

export interface NotificationConfig {
  /** Attempts per delivery (notifications, webhooks, cloud agents) before giving up; graphile-worker spaces them exponentially. */
  maxAttempts: number;
  /** Time-out of one delivery attempt. */
  timeoutMs: number;
  /** Telegram Bot API base URL. */
  telegramApiUrl: string;
  /** The SMTP server for email channels that name none. */
  smtp: SmtpServerConfig | null;
  smtpFrom: string;
  /** Whether customers' endpoints (webhook URLs, Slack URLs, channels' SMTP hosts) may be internal addresses. */
  allowPrivateNetworks: boolean;
}

type Env = Record<string, string | undefined>;

const ROLE_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

function read(env: Env, name: string): string | undefined {
  const value = env[name]?.trim();
  return value === "" ? undefined : value;
}

function postgresUrl(env: Env, name: string): string | undefined {
  const value = read(env, name);
  if (value === undefined) return undefined;
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ConfigError(`${name} is not a valid URL (expected postgres://user:password@host:port/database)`);
  }
  if (url.protocol !== "postgres:" && url.protocol !== "postgresql:") {
    throw new ConfigError(`${name} must start with postgres:// (got ${url.protocol}//)`);
  }
  if (!url.username || url.pathname.length <= 1) {
    throw new ConfigError(`${name} must name a user and a database (postgres://user:password@host:port/database)`);
  }
  return value;
}

function integer(env: Env, name: string, fallback: number, min: number, max: number): number {
  const value = read(env, name);
  if (value === undefined) return fallback;
  if (!/^\d+$/.test(value) || Number(value) < min || Number(value) > max) {
    throw new ConfigError(`${name} must be a whole number from ${min} to ${max} (got "${value}")`);
  }
  return Number(value);
}

function boolean(env: Env, name: string, fallback: boolean): boolean {
  const value = read(env, name)?.toLowerCase();
  if (value === undefined) return fallback;
  if (["1", "true", "yes", "on"].includes(value)) return true;
  if (["0", "false", "no", "off"].includes(value)) return false;
  throw new ConfigError(`${name} must be true or false (got "${value}")`);
}

function oneOf<T extends string>(env: Env, name: string, allowed: readonly T[], fallback: T): T {
  const value = read(env, name);
  if (value === undefined) return fallback;
  if (!(allowed as readonly string[]).includes(value)) {
    throw new ConfigError(`${name} must be one of ${allowed.join(", ")} (got "${value}")`);
  }
  return value as T;
}

function roleName(env: Env, name: string, fallback: string): string {
  const value = read(env, name) ?? fallback;
  if (!ROLE_NAME.test(value)) {
    throw new ConfigError(`${name} must be a lower-case PostgreSQL identifier (got "${value}")`);
  }
  return value;
}

function httpUrl(env: Env, name: string, fallback: string): string {
  const value = read(env, name) ?? fallback;
  if (!/^https?:\/\/[^\s]+$/.test(value)) throw new ConfigError(`${name} must be an http(s) URL (got "${value}")`);
  return value;
}

function smtpServer(env: Env): SmtpServerConfig | null {
  const value = read(env, "SMTP_URL");
  if (value === undefined) return null;
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ConfigError("SMTP_URL is not a valid URL (expected smtp://user:password@host:port or smtps://...)");
  }
  if (url.protocol !== "smtp:" && url.protocol !== "smtps:") {
    throw new ConfigError(`SMTP_URL must start with smtp:// or smtps:// (got ${url.protocol}//)`);
  }
  const secure = url.protocol === "smtps:";
  return {
    host: url.hostname,
    port: url.port === "" ? (secure ? 465 : 587) : Number(url.port),
    secure,
    user: url.username === "" ? null : decodeURIComponent(url.username),
    password: url.password === "" ? null : decodeURIComponent(url.password),
  };
}

/**
 * ENCRYPTION_KEY, required in production. Elsewhere a missing key is made once
 * and kept in `<DATA_DIR>/encryption.key` (mode 600), so that development data
 * stays readable across restarts.
 */
function encryptionKey(env: Env, isProduction: boolean, dataDir: string): string {
  const value = read(env, "ENCRYPTION_KEY");
  if (value !== undefined) {
    if (value.length < 32) throw new ConfigError("ENCRYPTION_KEY must be at least 32 characters (e.g. openssl rand -base64 32)");
    return value;
  }
  if (isProduction) throw new ConfigError("ENCRYPTION_KEY is required in production (at least 32 characters, e.g. openssl rand -base64 32)");
  const file = path.join(dataDir, "encryption.key");
  try {
    return readFileSync(file, "utf8").trim();
  } catch {
    mkdirSync(dataDir, { recursive: true });
    try {
      writeFileSync(file, randomBytes(32).toString("base64url") + "\n", { mode: 0o600, flag: "wx" });
    } catch (error) {
      // Another process made it first: use theirs.
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    }
    return readFileSync(file, "utf8").trim();
  }
}

/** The user name in a connection string, which is the role it logs in as. */
export function userOf(connectionString: string): string {
  return decodeURIComponent(new URL(connectionString).username);
}

/** The database name in a connection string. */
export function databaseOf(connectionString: string): string {
  return decodeURIComponent(new URL(connectionString).pathname.slice(1));
}

/** The same server and credentials, another database. */
export function withDatabase(connectionString: string, database: string): string {
  const url = new URL(connectionString);
  url.pathname = `/${encodeURIComponent(database)}`;
  return url.toString();
}

function databaseConfig(env: Env): DatabaseConfig | null {
  const ownerUrl = postgresUrl(env, "DATABASE_URL");
  const authUrl = postgresUrl(env, "AUTH_DATABASE_URL");
  const rootUrl = postgresUrl(env, "ROOT_DATABASE_URL") ?? null;
  const shadowUrl = postgresUrl(env, "SHADOW_DATABASE_URL") ?? null;
  if (ownerUrl === undefined) {
    if (authUrl !== undefined) {
      throw new ConfigError("AUTH_DATABASE_URL is set but DATABASE_URL is not: set both, or neither for the embedded database");
    }
    return null;
  }
  if (authUrl === undefined) {
    throw new ConfigError("AUTH_DATABASE_URL is required when DATABASE_URL is set (the authenticator role's connection)");
  }
  if (databaseOf(ownerUrl) !== databaseOf(authUrl)) {
    throw new ConfigError("DATABASE_URL and AUTH_DATABASE_URL must point at the same database");
  }
  for (const [name, url] of [["DATABASE_URL", ownerUrl], ["AUTH_DATABASE_URL", authUrl]] as const) {
    if (!ROLE_NAME.test(userOf(url))) {
      throw new ConfigError(`${name}'s user must be a lower-case PostgreSQL identifier (got "${userOf(url)}")`);
    }
  }
  if (userOf(ownerUrl) === userOf(authUrl)) {
    throw new ConfigError("DATABASE_URL and AUTH_DATABASE_URL must use different roles (owner and authenticator)");
  }
  return { ownerUrl, authUrl, rootUrl, shadowUrl };
}

export function loadConfig(env: Env = process.env): Config {
  const nodeEnv = oneOf(env, "NODE_ENV", ["development", "test", "production"] as const, "development");
  const isProduction = nodeEnv === "production";
  const database = databaseConfig(env);
  if (database === null && isProduction) {
    throw new ConfigError("DATABASE_URL is required in production (the embedded database is for development)");
  }
  const redisUrl = read(env, "REDIS_URL") ?? null;
  if (redisUrl !== null && !/^rediss?:\/\//.test(redisUrl)) {
    throw new ConfigError(`REDIS_URL must start with redis:// or rediss:// (got "${redisUrl}")`);
  }
  const redisKeyPrefix = read(env, "REDIS_KEY_PREFIX") ?? "agentplane:";
  if (!/^[A-Za-z0-9_:.-]{1,64}$/.test(redisKeyPrefix)) {
    throw new ConfigError(`REDIS_KEY_PREFIX must be 1 to 64 letters, digits or _:.- (got "${redisKeyPrefix}")`);
  }
  const dataDir = path.resolve(read(env, "DATA_DIR") ?? ".data");
  const logLevel = oneOf(env, "LOG_LEVEL", ["trace", "debug", "info", "warn", "error", "fatal", "silent"] as const, "info");
  return {
    nodeEnv,
    isProduction,
    logLevel,
    visitorRole: roleName(env, "DATABASE_VISITOR", "agentplane_visitor"),
    host: read(env, "HOST") ?? "127.0.0.1",
    port: integer(env, "PORT", 3000, 0, 65535),
    database,
    dataDir,
    embeddedPgPort: integer(env, "EMBEDDED_PG_PORT", 54329, 1, 65535),
    migrateOnStart: database === null || boolean(env, "MIGRATE_ON_START", !isProduction),
    redisUrl,
    redisKeyPrefix,
    bridge: {
      heartbeatIntervalMs: integer(env, "BRIDGE_HEARTBEAT_INTERVAL_MS", 30_000, 100, 600_000),
      presenceFlushMs: integer(env, "BRIDGE_PRESENCE_FLUSH_MS", 10_000, 50, 600_000),
      helloTimeoutMs: integer(env, "BRIDGE_HELLO_TIMEOUT_MS", 10_000, 100, 600_000),
      maxFrameBytes: integer(env, "BRIDGE_MAX_FRAME_BYTES", 1_048_576, 4_096, 64 * 1_048_576),
      maxBufferedBytes: integer(env, "BRIDGE_MAX_BUFFERED_BYTES", 4 * 1_048_576, 65_536, 1_024 * 1_048_576),
      framesPerMinute: integer(env, "BRIDGE_FRAMES_PER_MINUTE", 1_000, 1, 10_000_000),
      maxViolations: integer(env, "BRIDGE_MAX_VIOLATIONS", 10, 1, 10_000),
    },
    boxCommands: {
      perBoxPerMinute: integer(env, "BOX_COMMANDS_PER_MINUTE", 100, 0, 10_000_000),
      perOrganizationPerHour: integer(env, "ORGANIZATION_COMMANDS_PER_HOUR", 1_000, 0, 1_000_000_000),
      defaultTimeoutMs: integer(env, "BOX_COMMAND_TIMEOUT_MS", 60_000, 1, 86_400_000),
      expiryMs: integer(env, "BOX_COMMAND_EXPIRY_MS", 3_600_000, 1_000, 30 * 86_400_000),
      keyGraceHours: integer(env, "BOX_KEY_GRACE_HOURS", 24, 0, 8_760),
      maxOutputBytes: integer(env, "BOX_MAX_OUTPUT_BYTES", 1_048_576, 1_024, 64 * 1_048_576),
    },
    statementTimeoutMs: integer(env, "STATEMENT_TIMEOUT_MS", 10_000, 100, 3_600_000),
    maxRequestBytes: integer(env, "MAX_REQUEST_BYTES", 102_400, 1_024, 100 * 1024 * 1024),
    workerConcurrency: integer(env, "WORKER_CONCURRENCY", 4, 1, 100),
    shutdownTimeoutMs: integer(env, "SHUTDOWN_TIMEOUT_MS", 8_000, 100, 600_000),
    sessionLifetimeHours: integer(env, "SESSION_LIFETIME_HOURS", 168, 1, 8_760),
    encryptionKey: encryptionKey(env, isProduction, dataDir),
    schedules: {
      missedAfterMs: integer(env, "CRON_MISSED_AFTER_MS", 60_000, 1_000, 86_400_000),
      agentOfflineAfterIntervals: integer(env, "AGENT_OFFLINE_AFTER_INTERVALS", 3, 1, 1_000),
    },
    notifications: {
      maxAttempts: integer(env, "DELIVERY_MAX_ATTEMPTS", 8, 1, 25),
      timeoutMs: integer(env, "DELIVERY_TIMEOUT_MS", 10_000, 100, 300_000),
      telegramApiUrl: httpUrl(env, "TELEGRAM_API_URL", "https://api.telegram.org"),
      smtp: smtpServer(env),
      smtpFrom: read(env, "SMTP_FROM") ?? "agentplane <alerts@localhost>",
      allowPrivateNetworks: boolean(env, "DELIVERY_ALLOW_PRIVATE_NETWORKS", !isProduction),
    },
  };
}

/**
 * The configuration SQL reads (app_private.box_setting), as settings of every
 * database session the process opens (src/db/pools.ts).
 */
export function databaseSessionSettings(config: Config): Record<string, string> {
  const { boxCommands } = config;
  return {
    "agentplane.box_commands_per_minute": String(boxCommands.perBoxPerMinute),
    "agentplane.organization_box_commands_per_hour": String(boxCommands.perOrganizationPerHour),
    "agentplane.box_command_timeout_ms": String(boxCommands.defaultTimeoutMs),
    "agentplane.box_command_expiry_ms": String(boxCommands.expiryMs),
    "agentplane.box_key_grace_hours": String(boxCommands.keyGraceHours),
    "agentplane.box_max_output_bytes": String(boxCommands.maxOutputBytes),
  };
}

/** Runs `fn`; a ConfigError it throws ends the process with one line on stderr and exit code 1. */
export function orExitOnConfigError<T>(fn: () => T): T {
  try {
    return fn();
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    process.stderr.write(`agentplane: configuration error: ${error.message}\n`);
    process.exit(1);
  }
}
