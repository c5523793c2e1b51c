import path from "node:path";

/** The repository's root folder, whatever the working directory. */
export const PROJECT_ROOT = path.resolve(import.meta.dirname, "..");
export const MIGRATIONS_FOLDER = path.join(PROJECT_ROOT, "migrations");
