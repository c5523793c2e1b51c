/**
 * The GraphQL schema as sorted SDL: what `npm run schema:export` writes to
 * `schema.graphql`, and what a test compares that file with.
 */
import path from "node:path";
import type { Pool } from "pg";
import { makeSchema } from "postgraphile";
import { lexicographicSortSchema, printSchema } from "postgraphile/graphql";
import type { Config } from "../config.ts";
import { PROJECT_ROOT } from "../paths.ts";
import { makePreset } from "./preset.ts";

export const SCHEMA_FILE = path.join(PROJECT_ROOT, "schema.graphql");

export async function schemaSdl(config: Config, authPool: Pool): Promise<string> {
  const { schema } = await makeSchema(makePreset({ config, authPool }));
  return printSchema(lexicographicSortSchema(schema)) + "\n";
}
