/**
 * Jest runs the TypeScript sources as native ES modules (hence
 * --experimental-vm-modules in `npm test`), compiled by SWC. The global set-up
 * creates one fresh database for the run and migrates it.
 */
export default {
  testEnvironment: "node",
  extensionsToTreatAsEsm: [".ts"],
  transform: {
    "^.+\\.ts$": [
      "@swc/jest",
      { jsc: { target: "es2024", parser: { syntax: "typescript" } }, module: { type: "es6" } },
    ],
  },
  testMatch: ["<rootDir>/test/**/*.test.ts"],
  globalSetup: "<rootDir>/test/setup/global-setup.ts",
  globalTeardown: "<rootDir>/test/setup/global-teardown.ts",
  setupFilesAfterEnv: ["<rootDir>/test/setup/after-env.ts"],
  testTimeout: 30_000,
  // Two cores on CI: more workers than that only contend for the same database.
  maxWorkers: "50%",
};
