/**
 * file.read, file.write, file.list: confined to the box's root folder
 * (see ../confine.ts). Contents travel as UTF-8 text or base64.
 */
import { constants } from "node:fs";
import { open, readdir, stat } from "node:fs/promises";
import path from "node:path";
import { existingInside, writableInside } from "../confine.ts";
import { CommandError, integerParam, onlyParams, stringParam, type CommandHandler } from "./types.ts";

/** Large enough for real files, small enough that the answer fits in one frame. */
export const MAX_FILE_BYTES = 512 * 1024;

type Encoding = "utf8" | "base64";

function encodingParam(value: string | undefined): Encoding {
  if (value === undefined || value === "utf8" || value === "base64") return value ?? "utf8";
  throw new CommandError("INVALID_PARAMS", "payload.encoding must be utf8 or base64");
}

function asExecError(error: unknown): never {
  if (error instanceof CommandError) throw error;
  const code = (error as NodeJS.ErrnoException).code;
  if (code === "ENOENT") throw new CommandError("NOT_FOUND", (error as Error).message);
  if (code === "EACCES" || code === "EPERM" || code === "ELOOP") throw new CommandError("PERMISSION_DENIED", (error as Error).message);
  throw new CommandError("EXEC_ERROR", (error as Error).message);
}

export const fileRead: CommandHandler = async ({ payload, root }) => {
  onlyParams(payload, ["path", "encoding", "max_bytes"]);
  const relative = stringParam(payload, "path");
  const encoding = encodingParam(stringParam(payload, "encoding", { optional: true }));
  const maxBytes = integerParam(payload, "max_bytes", MAX_FILE_BYTES, 0, MAX_FILE_BYTES);
  try {
    const real = await existingInside(root, relative);
    const handle = await open(real, constants.O_RDONLY | constants.O_NOFOLLOW);
    try {
      const { size, isFile } = await handle.stat().then((stats) => ({ size: stats.size, isFile: stats.isFile() }));
      if (!isFile) throw new CommandError("INVALID_PARAMS", `${relative} is not a file`);
      const buffer = Buffer.alloc(Math.min(size, maxBytes));
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
      return {
        success: true,
        response: {
          path: relative,
          size,
          encoding,
          content: buffer.subarray(0, bytesRead).toString(encoding),
          truncated: size > bytesRead,
        },
      };
    } finally {
      await handle.close();
    }
  } catch (error) {
    asExecError(error);
  }
};

export const fileWrite: CommandHandler = async ({ payload, root }) => {
  onlyParams(payload, ["path", "content", "encoding", "create_dirs"]);
  const relative = stringParam(payload, "path");
  const content = stringParam(payload, "content");
  const encoding = encodingParam(stringParam(payload, "encoding", { optional: true }));
  const createDirs = payload.create_dirs ?? false;
  if (typeof createDirs !== "boolean") throw new CommandError("INVALID_PARAMS", "payload.create_dirs must be true or false");
  const bytes = Buffer.from(content, encoding);
  if (bytes.length > MAX_FILE_BYTES) throw new CommandError("INVALID_PARAMS", `content is larger than ${MAX_FILE_BYTES} bytes`);
  try {
    const target = await writableInside(root, relative, createDirs);
    const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW;
    const handle = await open(target, flags, 0o644);
    try {
      await handle.writeFile(bytes);
    } finally {
      await handle.close();
    }
    return { success: true, response: { path: relative, size: bytes.length } };
  } catch (error) {
    asExecError(error);
  }
};

function entryType(entry: { isFile(): boolean; isDirectory(): boolean; isSymbolicLink(): boolean }): string {
  if (entry.isSymbolicLink()) return "symlink";
  if (entry.isDirectory()) return "dir";
  if (entry.isFile()) return "file";
  return "other";
}

export const fileList: CommandHandler = async ({ payload, root }) => {
  onlyParams(payload, ["path"]);
  const relative = stringParam(payload, "path", { optional: true }) ?? ".";
  try {
    const real = relative === "." ? root : await existingInside(root, relative);
    const entries = await readdir(real, { withFileTypes: true });
    const listed = await Promise.all(
      entries
        .sort((a, b) => a.name.localeCompare(b.name))
        .slice(0, 1_000)
        .map(async (entry) => {
          // Sizes and times of links are the link's own: nothing outside the root is looked at.
          const stats = entry.isSymbolicLink() ? null : await stat(path.join(real, entry.name)).catch(() => null);
          return {
            name: entry.name,
            type: entryType(entry),
            size: stats?.size ?? null,
            modified_at: stats?.mtime.toISOString() ?? null,
          };
        }),
    );
    return { success: true, response: { path: relative, entries: listed, truncated: entries.length > listed.length } };
  } catch (error) {
    if (error instanceof CommandError) throw error;
    if ((error as NodeJS.ErrnoException).code === "ENOTDIR") throw new CommandError("INVALID_PARAMS", `${relative} is not a folder`);
    asExecError(error);
  }
};
