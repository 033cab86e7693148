// Test helpers: temp roots, direct looks at a cache folder on disk (tests may verify the disk;
// the library never reads it from TypeScript), and assertions on error classes and codes.

import { spawn, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { lstat, mkdir, mkdtemp, open, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import { afterEach, expect, type TestContext } from "vitest";

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

/** Path of a blob file in a cache root (manifests and configs: `blobs/sha256/<hex>`). */
export function blobPath(root: string, digest: string): string {
  return join(root, "blobs", "sha256", hexOf(digest));
}

export function blobExists(root: string, digest: string): boolean {
  return existsSync(blobPath(root, digest));
}

/** Path of a layer's EROFS image in a cache root (`layers/sha256/<diff_id hex>.erofs`). */
export function layerPath(root: string, diffId: string): string {
  return join(root, "layers", "sha256", `${hexOf(diffId)}.erofs`);
}

export function layerExists(root: string, diffId: string): boolean {
  return existsSync(layerPath(root, diffId));
}

/** Path of a manifest's fsmeta image (merged metadata EROFS: `fsmeta/sha256/<hex>.erofs`). */
export function fsmetaPath(root: string, manifestDigest: string): string {
  return join(root, "fsmeta", "sha256", `${hexOf(manifestDigest)}.erofs`);
}

/** Path of a manifest's VMDK descriptor (`vmdk/sha256/<hex>.vmdk`). */
export function vmdkPath(root: string, manifestDigest: string): string {
  return join(root, "vmdk", "sha256", `${hexOf(manifestDigest)}.vmdk`);
}

/** What an image is stored as: digests of its manifest and config, and its layers' diff_ids. */
export interface StoredImage {
  manifestDigest: string;
  configDigest: string;
  layers: readonly { diffId: string }[];
}

/**
 * The files an image is stored as, as paths: its manifest and config blobs, its fsmeta image
 * and VMDK descriptor, and one EROFS image per distinct layer (by diff_id).
 */
export function imageFiles(root: string, image: StoredImage): string[] {
  const diffIds = new Set(image.layers.map((l) => l.diffId));
  return [
    blobPath(root, image.manifestDigest),
    blobPath(root, image.configDigest),
    fsmetaPath(root, image.manifestDigest),
    vmdkPath(root, image.manifestDigest),
    ...[...diffIds].map((d) => layerPath(root, d)),
  ];
}

/**
 * The extents of a VMDK descriptor, in disk order: each `RW <sectors> FLAT "<path>" <offset>`
 * line as its path resolved against the descriptor's folder, and its size in bytes.
 */
export async function vmdkExtents(path: string): Promise<{ path: string; bytes: number }[]> {
  const text = await readFile(path, "utf8");
  const out: { path: string; bytes: number }[] = [];
  for (const line of text.split("\n")) {
    const m = /^RW (\d+) FLAT "([^"]+)" (\d+)$/.exec(line);
    if (m) out.push({ path: resolve(dirname(path), m[2] ?? ""), bytes: Number(m[1]) * 512 });
  }
  return out;
}

/** The sum of the sizes of `paths`, each measured with lstat (a missing file throws). */
export async function bytesOf(paths: readonly string[]): Promise<number> {
  let total = 0;
  for (const path of new Set(paths)) total += (await lstat(path)).size;
  return total;
}

/** Sorted names of the files directly under `root/<dir>/sha256` ([] when absent). */
export async function namesIn(root: string, dir: "blobs" | "layers" | "fsmeta" | "vmdk"): Promise<string[]> {
  return [...(await filesUnder(join(root, dir, "sha256"))).keys()].sort();
}

/** EROFS block size (`blkszbits` = 12) the cache writes; an image's size is a multiple of it. */
export const EROFS_BLOCK_SIZE = 4096;

/**
 * Reads the superblock of the EROFS image at `path` (at byte 1024: magic 0xE0F5E1E2 at +0,
 * `blkszbits` at +12, `blocks` at +36, all little-endian, per the EROFS on-disk format) and
 * returns the image's size as the superblock states it, in bytes. Throws when the magic is wrong.
 */
export async function erofsStatedSize(path: string): Promise<number> {
  const file = await open(path, "r");
  try {
    const sb = Buffer.alloc(128);
    const { bytesRead } = await file.read(sb, 0, sb.length, 1024);
    if (bytesRead < sb.length) throw new Error(`${path}: too short for an EROFS superblock`);
    const magic = sb.readUInt32LE(0);
    if (magic !== 0xe0f5e1e2) throw new Error(`${path}: not an EROFS image (magic ${magic.toString(16)})`);
    return sb.readUInt32LE(36) * 2 ** sb.readUInt8(12);
  } finally {
    await file.close();
  }
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

/**
 * Bytes of every file the cache stores data in (`blobs/`, `layers/`, `fsmeta/`, `vmdk/` and
 * `tmp/`), measured with stat.
 */
export async function storedBytes(root: string): Promise<number> {
  let total = 0;
  for (const sub of ["blobs", "layers", "fsmeta", "vmdk", "tmp"]) {
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
 * Skips the test unless it runs as root (mounts need it), with a visible `SKIP:` message; under
 * `CI=true` a test that needs root fails instead of skipping. The fast tier
 * (`OCICACHE_TEST_TIER=fast`, `npm run test:fast`) skips it always.
 */
export function requireRoot(what: string, ctx: TestContext): void {
  if (process.env["OCICACHE_TEST_TIER"] === "fast") {
    console.warn(`SKIP: ${what} needs root, not run in the fast tier`);
    ctx.skip(`${what} needs root (fast tier)`);
    return;
  }
  if (process.getuid?.() === 0) return;
  if (process.env["CI"] === "true") throw new Error(`${what} needs root on CI`);
  console.warn(`SKIP: ${what} needs root`);
  ctx.skip(`${what} needs root`);
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

/**
 * Whether the tools `tools` (found on the PATH) are there; a missing one skips the tests that
 * need it with a visible `SKIP:` message, or fails under `CI=true`. The fast tier
 * (`OCICACHE_TEST_TIER=fast`) answers false, visibly.
 */
export function haveTools(tools: readonly string[], what: string): boolean {
  if (process.env["OCICACHE_TEST_TIER"] === "fast") {
    console.warn(`SKIP: ${what} needs ${tools.join(", ")}, not run in the fast tier`);
    return false;
  }
  const missing = tools.filter((t) => spawnSync("which", [t]).status !== 0);
  if (missing.length === 0) return true;
  if (process.env["CI"] === "true") throw new Error(`${what} needs ${missing.join(", ")} on CI`);
  console.warn(`SKIP: ${what} needs ${missing.join(", ")}, not installed`);
  return false;
}

/** A lock of the cache held by another process (util-linux `flock`), until `release()`. */
export interface HeldLock {
  /** Lets the lock go and waits until the holder has exited. */
  release(): Promise<void>;
}

/**
 * Holds the cache lock file `path` (`<root>/locks/gc.lock`) in `mode` from a child process,
 * `flock -s|-x PATH cat`, the `flock(2)` locks the core takes; resolves once it is held. The
 * child keeps the lock until its standard input closes.
 */
export async function holdLock(path: string, mode: "shared" | "exclusive"): Promise<HeldLock> {
  await mkdir(dirname(path), { recursive: true });
  const child = spawn("flock", [mode === "shared" ? "-s" : "-x", path, "-c", "echo held; exec cat"], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  await new Promise<void>((resolve, reject) => {
    let out = "";
    child.stdout.on("data", (chunk: Buffer) => {
      out += chunk.toString();
      if (out.includes("held")) resolve();
    });
    child.once("error", reject);
    child.once("exit", (code) => reject(new Error(`flock exited with ${code} before holding ${path}`)));
  });
  return {
    async release() {
      child.stdin.end();
      await exited;
    },
  };
}

/** An `ocicache` command run in the background: its output so far, and its exit. */
export interface Running {
  stdout: () => string;
  stderr: () => string;
  /** Resolves once stderr matches `pattern` (rejects when the process exits first). */
  stderrMatches(pattern: RegExp): Promise<void>;
  exited: Promise<number | null>;
  exitedYet: () => boolean;
}

export function startCli(args: string[]): Running {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  let done = false;
  child.stdout.on("data", (c: Buffer) => (out += c.toString()));
  const exited = new Promise<number | null>((resolve) =>
    child.once("close", (code) => {
      done = true;
      resolve(code);
    }),
  );
  return {
    stdout: () => out,
    stderr: () => err,
    exited,
    exitedYet: () => done,
    stderrMatches: (pattern) =>
      new Promise<void>((resolve, reject) => {
        const look = () => {
          if (pattern.test(err)) resolve();
        };
        child.stderr.on("data", (c: Buffer) => {
          err += c.toString();
          look();
        });
        void exited.then(() => (pattern.test(err) ? resolve() : reject(new Error(`exited without ${pattern}: ${err}`))));
        look();
      }),
  };
}
