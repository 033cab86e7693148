// Loads the native addon, lazily on first use, and caches it.
//
// Search order (the first file that loads wins):
//   1. `$OCICACHE_NATIVE_PATH`: an explicit file, for tests and unusual installs.
//   2. `prebuilds/<platform>-<arch>[-<libc>]/ocicache.node` under the package root
//      (prebuildify naming; libc is `gnu` or `musl` on Linux and absent elsewhere).
//   3. `native/ocicache.<platform>-<arch>[-<abi>].node` under the package root, the local
//      `napi build --platform` output (`linux-x64-gnu`, `darwin-arm64`, `win32-x64-msvc`).
//
// The package root is the nearest folder above this module that holds package.json: `dist/..`
// for the built bundles and `src/internal/../..` when tests run the sources.

import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import type * as Binding from "./binding";
import { NativeNotFoundError } from "../errors";

/** The addon's exports, as `napi build --dts` describes them. */
export type NativeBinding = typeof Binding;

/** Environment variable naming an explicit addon file. */
const NATIVE_PATH_ENV = "OCICACHE_NATIVE_PATH";

/** The addon's file name in a prebuilds folder, and the stem of the local build's name. */
const BINARY_NAME = "ocicache";

let cached: NativeBinding | undefined;

/**
 * The native addon, loaded on first call.
 *
 * @throws {NativeNotFoundError} when no candidate file loads; `tried` lists every path.
 */
export function native(): NativeBinding {
  if (cached === undefined) {
    cached = load();
  }
  return cached;
}

function load(): NativeBinding {
  const require = createRequire(import.meta.url);
  const tried: string[] = [];
  const failures: unknown[] = [];
  for (const file of candidates()) {
    tried.push(file);
    if (!existsSync(file)) {
      continue;
    }
    try {
      return require(file) as NativeBinding;
    } catch (err) {
      failures.push(err);
    }
  }
  throw new NativeNotFoundError(
    `native addon not found for ${process.platform}-${process.arch} (tried ${tried.join(", ")})`,
    { tried },
    failures.length > 0 ? { cause: failures.length === 1 ? failures[0] : new AggregateError(failures) } : undefined,
  );
}

/** Every file to try, in order. */
function candidates(): string[] {
  const out: string[] = [];
  const explicit = process.env[NATIVE_PATH_ENV];
  if (explicit !== undefined && explicit !== "") {
    out.push(explicit);
  }
  const root = packageRoot();
  const platformArch = `${process.platform}-${process.arch}`;
  const libc = linuxLibc();
  out.push(join(root, "prebuilds", libc === null ? platformArch : `${platformArch}-${libc}`, `${BINARY_NAME}.node`));
  out.push(join(root, "native", `${BINARY_NAME}.${platformArch}${napiAbiSuffix(libc)}.node`));
  return out;
}

/** The nearest folder at or above this module's folder that holds package.json. */
function packageRoot(): string {
  const start = dirname(fileURLToPath(import.meta.url));
  for (let dir = start; ; ) {
    if (existsSync(join(dir, "package.json"))) {
      return dir;
    }
    const parent = dirname(dir);
    if (parent === dir) {
      // No package.json anywhere above: assume the bundle layout, `<root>/dist/index.*`.
      return dirname(start);
    }
    dir = parent;
  }
}

/** `gnu` or `musl` on Linux (glibc reports its version in the process report), else null. */
function linuxLibc(): "gnu" | "musl" | null {
  if (process.platform !== "linux") {
    return null;
  }
  const report = process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined;
  return report?.header?.glibcVersionRuntime ? "gnu" : "musl";
}

/** The ABI part of napi's `--platform` file names. */
function napiAbiSuffix(libc: "gnu" | "musl" | null): string {
  if (libc !== null) {
    return `-${libc}`;
  }
  return process.platform === "win32" ? "-msvc" : "";
}
