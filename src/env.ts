/**
 * Imported first by every entry point: Grafast reads GRAPHILE_ENV when it is
 * loaded, so it is derived from NODE_ENV before anything imports it.
 */
process.env.GRAPHILE_ENV ??= process.env.NODE_ENV === "production" ? "production" : "development";
