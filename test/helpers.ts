// Test helpers: temp roots, direct looks at a cache folder on disk (tests may verify the disk;
// the library never reads it from TypeScript), and assertions on error classes and codes.

import { existsSync } from "node:fs";
import { lstat, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";

import { afterEach, expect } from "vitest";

import { OcicacheError, type ErrorCode } from "../src/index";
import { hexOf } from "./fixtures";

export const PACKAGE_ROOT = fileURLToPath(new URL("..", import.meta.url));
export const CLI = join(PACKAGE_ROOT, "dist", "cli.cjs");
export const DIST_INDEX = join(PACKAGE_ROOT, "dist", "index.cjs");

const created: string[] = [];

afterEach(async () => {
  for (const dir of created.splice(0)) {
    await rm(dir, { recursive: true, force: true });
  }
});

/** A fresh temp folder, removed after the test. */
export async function tempDir(prefix = "ocicache-test-"): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  created.push(dir);
  return dir;
}

/** A path for a cache root inside a fresh temp folder; the root itself does not exist yet. */
export async function freshRoot(): Promise<string> {
  return join(await tempDir(), "cache");
}

/** Writes `data` to a file in a fresh temp folder and returns its path. */
export async function tempFile(name: string, data: Buffer | string): Promise<string> {
  const path = join(await tempDir("ocicache-input-"), name);
  await writeFile(path, data);
  return path;
}

/** Path of a blob file in a cache root (the on-disk layout: `blobs/sha256/<hex>`). */
export function blobPath(root: string, digest: string): string {
  return join(root, "blobs", "sha256", hexOf(digest));
}

export function blobExists(root: string, digest: string): boolean {
  return existsSync(blobPath(root, digest));
}

/** Every file under `dir` (relative path to size), symlinks not followed; {} if absent. */
export async function filesUnder(dir: string): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  if (!existsSync(dir)) return out;
  const walk = async (d: string): Promise<void> => {
    for (const entry of await readdir(d, { withFileTypes: true })) {
      const path = join(d, entry.name);
      if (entry.isDirectory()) {
        await walk(path);
      } else {
        out.set(relative(dir, path), (await lstat(path)).size);
      }
    }
  };
  await walk(dir);
  return out;
}

/** Bytes of every file under `root/blobs` and `root/tmp`, measured with stat. */
export async function storedBytes(root: string): Promise<number> {
  let total = 0;
  for (const sub of ["blobs", "tmp"]) {
    for (const size of (await filesUnder(join(root, sub))).values()) total += size;
  }
  return total;
}

/**
 * The cache folder's files and sizes, excluding the index database (`index.db*`, which SQLite
 * may touch on reads) and `locks/`, as a sorted list for equality checks.
 */
export async function snapshotRoot(root: string): Promise<[string, number][]> {
  const files = await filesUnder(root);
  return [...files.entries()]
    .filter(([path]) => !path.startsWith("index.db") && !path.startsWith("locks/"))
    .sort(([a], [b]) => a.localeCompare(b));
}

/** Files left in `root/tmp`. */
export async function tmpFiles(root: string): Promise<string[]> {
  return [...(await filesUnder(join(root, "tmp"))).keys()];
}

/**
 * Awaits a promise that must reject with `cls` and `code`; returns the error for more checks.
 */
export async function rejectsWith<E extends OcicacheError>(
  promise: Promise<unknown>,
  cls: abstract new (...args: never[]) => E,
  code: ErrorCode,
): Promise<E> {
  let caught: unknown;
  try {
    await promise;
  } catch (err) {
    caught = err;
  }
  expect(caught, `expected a ${cls.name} (${code})`).toBeInstanceOf(cls);
  expect(caught).toBeInstanceOf(OcicacheError);
  expect((caught as E).code).toBe(code);
  return caught as E;
}
