/**
 * Keeps the reference box's file commands inside its root folder. A path is
 * refused (PERMISSION_DENIED) when it is absolute, has a `..` segment, or
 * leads — through a symbolic link anywhere along it — outside the root.
 */
import { lstat, mkdir, realpath } from "node:fs/promises";
import path from "node:path";
import { CommandError } from "./commands/types.ts";

function isInside(root: string, candidate: string): boolean {
  return candidate === root || candidate.startsWith(root.endsWith(path.sep) ? root : root + path.sep);
}

function errnoOf(error: unknown): string | undefined {
  return (error as NodeJS.ErrnoException).code;
}

/** Checks the shape of a relative path and joins it to the root (nothing on disk is read). */
export function joinInside(root: string, relative: string): string {
  if (relative.includes("\0")) throw new CommandError("INVALID_PARAMS", "the path contains a NUL character");
  if (relative === "") throw new CommandError("INVALID_PARAMS", "the path is empty");
  if (path.isAbsolute(relative) || /^[a-zA-Z]:/.test(relative) || relative.startsWith("\\")) {
    throw new CommandError("PERMISSION_DENIED", `absolute paths are not allowed: ${relative}`);
  }
  if (relative.split(/[\\/]/).includes("..")) {
    throw new CommandError("PERMISSION_DENIED", `".." is not allowed in paths: ${relative}`);
  }
  return path.join(root, relative);
}

/** The real path of an existing file or folder inside the root. */
export async function existingInside(root: string, relative: string): Promise<string> {
  const joined = joinInside(root, relative);
  let real: string;
  try {
    real = await realpath(joined);
  } catch (error) {
    if (errnoOf(error) === "ENOENT" || errnoOf(error) === "ENOTDIR") throw new CommandError("NOT_FOUND", `no such file or folder: ${relative}`);
    throw error;
  }
  if (!isInside(root, real)) throw new CommandError("PERMISSION_DENIED", `${relative} leads outside the root folder`);
  return real;
}

/**
 * Where a file may be written: its folder must be inside the root (created when
 * `createDirs`), and an existing file there must not be a link leading out.
 * Open the result with O_NOFOLLOW so that a link swapped in later is not followed.
 */
export async function writableInside(root: string, relative: string, createDirs: boolean): Promise<string> {
  const joined = joinInside(root, relative);
  const folder = path.dirname(joined);
  let realFolder: string;
  try {
    realFolder = await realpath(folder);
  } catch (error) {
    if (errnoOf(error) !== "ENOENT") throw error;
    if (!createDirs) throw new CommandError("NOT_FOUND", `no such folder: ${path.relative(root, folder)}`);
    // Find the deepest folder that exists; it must be inside the root before anything is created under it.
    let existing = path.dirname(folder);
    for (;;) {
      try {
        const real = await realpath(existing);
        if (!isInside(root, real)) throw new CommandError("PERMISSION_DENIED", `${relative} leads outside the root folder`);
        break;
      } catch (inner) {
        if (errnoOf(inner) !== "ENOENT") throw inner;
        existing = path.dirname(existing);
      }
    }
    await mkdir(folder, { recursive: true });
    realFolder = await realpath(folder);
  }
  if (!isInside(root, realFolder)) throw new CommandError("PERMISSION_DENIED", `${relative} leads outside the root folder`);
  const target = path.join(realFolder, path.basename(joined));
  let stats;
  try {
    stats = await lstat(target);
  } catch (error) {
    if (errnoOf(error) === "ENOENT") return target;
    throw error;
  }
  if (stats.isSymbolicLink()) {
    // A link is written through only when it leads to a file inside the root.
    const real = await realpath(target).catch(() => null);
    if (real === null || !isInside(root, real)) {
      throw new CommandError("PERMISSION_DENIED", `${relative} is a link leading outside the root folder`);
    }
    return real;
  }
  if (stats.isDirectory()) throw new CommandError("INVALID_PARAMS", `${relative} is a folder`);
  return target;
}
