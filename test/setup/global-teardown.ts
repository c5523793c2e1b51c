import { databaseOf } from "../../src/config.ts";
import { dropDatabase } from "../../src/db/setup.ts";

export default async function globalTeardown(): Promise<void> {
  const state = globalThis.agentplaneTestState;
  if (state === undefined) return;
  const { database } = state.testDatabase;
  await dropDatabase(database.rootUrl, databaseOf(database.ownerUrl));
  await state.stopEmbedded?.();
}
