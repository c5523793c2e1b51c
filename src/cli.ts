/**
 * Commands that work on the configured database or the embedded one
 * (see the scripts in package.json):
 *
 *   node src/cli.ts setup          roles, database, migrations (idempotent)
 *   node src/cli.ts migrate        committed migrations + graphile-worker's schema
 *   node src/cli.ts reset          drop, set up and migrate again, current.sql included (not in production)
 *   node src/cli.ts watch          re-run current.sql on every save (development)
 *   node src/cli.ts commit -m msg  turn current.sql into the next committed migration
 *   node src/cli.ts export-schema  write the sorted GraphQL SDL to schema.graphql
 *   node src/cli.ts seed           development data; prints the credentials it made (not in production)
 */
import "./env.ts";
import { writeFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import { watch } from "graphile-migrate";
import { ConfigError, databaseOf, loadConfig, orExitOnConfigError, type Config } from "./config.ts";
import { commitMigration, migrateDatabase, migrationSettings } from "./db/migrate.ts";
import { openDatabase, type OpenDatabase } from "./db/open.ts";
import { createPools } from "./db/pools.ts";
import { dropDatabase, setupDatabase } from "./db/setup.ts";
import { createLogger, type Logger } from "./logger.ts";
import { seed } from "./seed/index.ts";
import { SCHEMA_FILE, schemaSdl } from "./server/schema-sdl.ts";

type Command = (context: { config: Config; logger: Logger; db: OpenDatabase; args: string[] }) => Promise<void>;

function requireRoot(db: OpenDatabase): string {
  if (db.database.rootUrl === null) throw new ConfigError("ROOT_DATABASE_URL is required for this command");
  return db.database.rootUrl;
}

const commands: Record<string, Command> = {
  async setup({ config, logger, db }) {
    requireRoot(db);
    await setupDatabase(db.database, config.visitorRole, logger);
    await migrateDatabase(db.database, config.visitorRole, logger, { includeCurrent: false });
  },
  async migrate({ config, logger, db }) {
    await migrateDatabase(db.database, config.visitorRole, logger, { includeCurrent: false });
  },
  async reset({ config, logger, db }) {
    if (config.isProduction) throw new ConfigError("refusing to reset a database with NODE_ENV=production");
    const rootUrl = requireRoot(db);
    for (const url of [db.database.ownerUrl, db.database.shadowUrl]) {
      if (url !== null) await dropDatabase(rootUrl, databaseOf(url));
    }
    await setupDatabase(db.database, config.visitorRole, logger);
    await migrateDatabase(db.database, config.visitorRole, logger, { includeCurrent: true });
  },
  async watch({ config, logger, db }) {
    await watch(await migrationSettings(db.database, config.visitorRole, logger), false);
    // graphile-migrate keeps watching until the process is stopped.
    await new Promise<void>((resolve) => process.once("SIGINT", () => resolve()));
  },
  async commit({ config, logger, db, args }) {
    const { values } = parseArgs({ args, options: { message: { type: "string", short: "m" } } });
    if (!values.message) throw new ConfigError('commit needs a name: npm run db:commit -- -m "what it adds"');
    await commitMigration(db.database, config.visitorRole, logger, values.message);
  },
  async "export-schema"({ config, logger, db }) {
    await migrateDatabase(db.database, config.visitorRole, logger, { includeCurrent: !config.isProduction });
    const pools = createPools(db.database, config, logger);
    try {
      await writeFile(SCHEMA_FILE, await schemaSdl(config, pools.authPool));
      logger.info({ file: SCHEMA_FILE }, "schema exported");
    } finally {
      await pools.end();
    }
  },
  async seed({ config, logger, db }) {
    const pools = createPools(db.database, config, logger);
    try {
      const output = await seed(config, pools.ownerPool);
      const width = Math.max(...output.map(([label]) => label.length));
      process.stdout.write(
        "Development data is ready. These credentials are shown once:\n" +
          output.map(([label, value]) => `  ${label.padEnd(width)}  ${value}\n`).join(""),
      );
    } finally {
      await pools.end();
    }
  },
};

async function main() {
  const [name, ...args] = process.argv.slice(2);
  const command = name === undefined ? undefined : commands[name];
  if (command === undefined) {
    process.stderr.write(`usage: node src/cli.ts ${Object.keys(commands).join("|")}\n`);
    process.exit(1);
  }
  const config = orExitOnConfigError(() => loadConfig());
  const logger = createLogger(config.logLevel);
  let db: OpenDatabase;
  try {
    db = await openDatabase(config, logger);
  } catch (error) {
    logger.fatal({ err: error }, "could not open the database");
    process.exit(1);
  }
  try {
    await command({ config, logger, db, args });
  } catch (error) {
    if (error instanceof ConfigError) process.stderr.write(`agentplane: ${error.message}\n`);
    else logger.error({ err: error }, `${name} failed`);
    process.exitCode = 1;
  } finally {
    await db.close();
  }
}

await main();
