import { dropScratchDatabase } from "./scratch-database.ts";

export default async function globalTeardown(): Promise<void> {
  const state = globalThis.agentplaneTestState;
  if (state !== undefined) await dropScratchDatabase(state);
}
