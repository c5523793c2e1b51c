/**
 * The command types the reference box handles.
 */
import { bashExec } from "./bash.ts";
import { fileList, fileRead, fileWrite } from "./files.ts";
import { systemPing, systemStatus } from "./system.ts";
import type { CommandHandler } from "./types.ts";

export const COMMAND_HANDLERS: Readonly<Record<string, CommandHandler>> = {
  "system.ping": systemPing,
  "system.status": systemStatus,
  "bash.exec": bashExec,
  "file.read": fileRead,
  "file.write": fileWrite,
  "file.list": fileList,
};
