import { pino, type Logger } from "pino";

export type { Logger };

/** Structured JSON logs on stdout; one logger per process, children per part. */
export function createLogger(level: string): Logger {
  return pino({ level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime });
}

/**
 * A log function factory for the Graphile tools (graphile-migrate and
 * graphile-worker take a `Logger` built from one), writing through pino.
 */
export function graphileLogFactory(logger: Logger) {
  return (scope: object) => {
    const child = logger.child(scope);
    return (level: string, message: string, meta?: object) => {
      const method = level === "error" ? "error" : level === "warning" ? "warn" : level === "debug" ? "debug" : "info";
      child[method](meta ?? {}, message);
    };
  };
}
