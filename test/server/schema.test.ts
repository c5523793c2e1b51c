import { readFile } from "node:fs/promises";
import { afterAll, expect, test } from "@jest/globals";
import { createPools } from "../../src/db/pools.ts";
import { createLogger } from "../../src/logger.ts";
import { SCHEMA_FILE, schemaSdl } from "../../src/server/schema-sdl.ts";
import { testConfig } from "../helpers/server.ts";
import { testDatabase } from "../setup/test-database.ts";

const config = testConfig();
const pools = createPools(testDatabase().database, config, createLogger("silent"));
afterAll(() => pools.end());

test("schema.graphql is the exported schema of the current migrations (run npm run schema:export)", async () => {
  const committed = await readFile(SCHEMA_FILE, "utf8");
  expect(await schemaSdl(config, pools.authPool)).toBe(committed);
});
