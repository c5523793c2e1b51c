/**
 * The PostGraphile preset: the Amber preset, simplified inflection, connection
 * filters and aggregates over `app_public`, with per-request `pgSettings`
 * (the visitor role and who is asking, see request-settings.ts).
 */
import { PgAggregatesPreset } from "@graphile/pg-aggregates";
import { PgSimplifyInflectionPreset } from "@graphile/simplify-inflection";
import type { Pool } from "pg";
import { makePgService } from "postgraphile/adaptors/pg";
import { NoSchemaIntrospectionCustomRule } from "postgraphile/graphql";
import { PostGraphileAmberPreset } from "postgraphile/presets/amber";
import { PostGraphileConnectionFilterPreset } from "postgraphile-plugin-connection-filter";
import type { Config } from "../config.ts";
import { maskError } from "./errors.ts";
import { LoginFailurePlugin } from "./login-failure.ts";
import { BoxSubscriptionsPlugin } from "./plugins/box-subscriptions.ts";
import { GeometricBoxNamePlugin } from "./plugins/geometric-box-name.ts";
import { PartitionedIndexBehaviorsPlugin } from "./plugins/partitioned-index-behaviors.ts";
import { requestPgSettings, requestSource } from "./request-settings.ts";
import { makeSecretsPlugin } from "./secrets-plugin.ts";
import type { SessionActivity } from "./session-activity.ts";

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
  /** Told about every request that carries a bearer token (keeps `last_used_at` current). */
  sessionActivity?: SessionActivity;
}

export function makePreset({ config, authPool, sessionActivity }: PresetOptions): GraphileConfig.Preset {
  return {
    extends: [
      PostGraphileAmberPreset,
      PgSimplifyInflectionPreset,
      PostGraphileConnectionFilterPreset,
      PgAggregatesPreset,
    ],
    plugins: [
      LoginFailurePlugin,
      GeometricBoxNamePlugin,
      PartitionedIndexBehaviorsPlugin,
      BoxSubscriptionsPlugin,
      makeSecretsPlugin(config.encryptionKey),
      ...(config.isProduction ? [NoIntrospectionPlugin] : []),
    ],
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
      maskError,
      watch: false,
    },
    grafast: {
      context(requestContext) {
        const request = requestContext.node?.req ?? requestContext.ws?.request;
        const connectionParams = requestContext.ws?.normalizedConnectionParams;
        const pgSettings = requestPgSettings(config, requestSource(request, connectionParams));
        const tokenHash = pgSettings["agentplane.token_hash"];
        if (tokenHash !== undefined) sessionActivity?.seen(tokenHash);
        return { pgSettings };
      },
    },
  };
}
