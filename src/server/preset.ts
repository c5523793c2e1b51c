/**
 * The PostGraphile preset: the Amber preset, simplified inflection, connection
 * filters and aggregates over `app_public`, with per-request `pgSettings`.
 */
import { PgAggregatesPreset } from "@graphile/pg-aggregates";
import { PgSimplifyInflectionPreset } from "@graphile/simplify-inflection";
import type { Pool } from "pg";
import { makePgService } from "postgraphile/adaptors/pg";
import { NoSchemaIntrospectionCustomRule } from "postgraphile/graphql";
import { PostGraphileAmberPreset } from "postgraphile/presets/amber";
import { PostGraphileConnectionFilterPreset } from "postgraphile-plugin-connection-filter";
import type { Config } from "../config.ts";
import { requestPgSettings } from "./request-settings.ts";

export const GRAPHQL_PATH = "/graphql";

/** Refuses `__schema`/`__type` queries, over HTTP and WebSockets alike (production). */
const NoIntrospectionPlugin: GraphileConfig.Plugin = {
  name: "NoIntrospectionPlugin",
  version: "1.0.0",
  grafserv: {
    middleware: {
      setPreset(next, event) {
        event.validationRules.push(NoSchemaIntrospectionCustomRule);
        return next();
      },
    },
  },
};

export interface PresetOptions {
  config: Config;
  /** The authenticator's pool: every request runs in it as the visitor. */
  authPool: Pool;
}

export function makePreset({ config, authPool }: PresetOptions): GraphileConfig.Preset {
  return {
    extends: [
      PostGraphileAmberPreset,
      PgSimplifyInflectionPreset,
      PostGraphileConnectionFilterPreset,
      PgAggregatesPreset,
    ],
    plugins: config.isProduction ? [NoIntrospectionPlugin] : [],
    pgServices: [makePgService({ pool: authPool, schemas: ["app_public"], pubsub: true })],
    gather: {
      // Function arguments are required unless they have defaults.
      pgStrictFunctions: true,
    },
    schema: {
      // Only what a smart tag or behavior allows gets a filter; see docs/architecture.md.
      connectionFilterAllowNullInput: false,
      connectionFilterAllowEmptyObjectInput: false,
      connectionFilterComputedColumns: false,
      connectionFilterSetofFunctions: false,
      connectionFilterArrays: false,
    },
    grafserv: {
      graphqlPath: GRAPHQL_PATH,
      websockets: true,
      graphiql: !config.isProduction,
      graphiqlOnGraphQLGET: !config.isProduction,
      graphiqlPath: "/graphiql",
      maxRequestLength: config.maxRequestBytes,
      watch: false,
    },
    grafast: {
      context(requestContext) {
        const request = requestContext.node?.req ?? requestContext.ws?.request;
        const connectionParams = requestContext.ws?.normalizedConnectionParams;
        return {
          pgSettings: requestPgSettings(config, request?.headers ?? {}, connectionParams),
        };
      },
    },
  };
}
