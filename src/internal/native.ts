// Loads the native addon, lazily on first use, and caches it.
//
// The addons are built per target in the prebuildify layout and published in one npm package
// per platform (scripts/platform-packages.mjs), which ocicache lists as optional dependencies;
// `node-gyp-build-optional-packages` (the prebuildify loader that also reads such packages)
// picks the file for this process:
//
//   @ocicache/ocicache-linux-x64     node.napi.glibc.node  node.napi.musl.node
//   @ocicache/ocicache-linux-arm64   node.napi.glibc.node  node.napi.musl.node
//   @ocicache/ocicache-darwin-x64    node.napi.node
//   @ocicache/ocicache-darwin-arm64  node.napi.node
//   @ocicache/ocicache-win32-x64     node.napi.node
//
// Before that package it looks in the package root's `build/Release/`, `build/Debug/` and
// `prebuilds/<platform>-<arch>/` (where `npm run build:native` puts a clone's own build). It
// tells glibc from musl with detect-libc (`$LIBC` overrides). `$OCICACHE_NATIVE_PATH`, when
// set, names an addon file to try first (tests, unusual installs).
//
// The package root is the nearest folder above this module that holds package.json: `dist/..`
// for the built bundles and `src/internal/../..` when tests run the sources.

import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import nodeGypBuild from "node-gyp-build-optional-packages";

import { name, napi, version } from "../../package.json";
import type * as Binding from "./binding";
import { NativeNotFoundError } from "../errors";

/** The addon's exports, as `napi build --dts` describes them. */
export type NativeBinding = typeof Binding;

/** Environment variable naming an explicit addon file. */
const NATIVE_PATH_ENV = "OCICACHE_NATIVE_PATH";

/**
 * The Rust toolchain a build from source needs: the channel of `rust-toolchain.toml` (a test
 * keeps the two equal).
 */
const RUST_TOOLCHAIN = "1.95.0";

/** Where the sources are, for the build-from-source hint. */
const REPOSITORY = "https://github.com/ocicache/ocicache";

/** The oldest glibc the prebuilt Linux gnu addons run on (they are linked against 2.17). */
const GLIBC_BASELINE = "2.17";

let cached: NativeBinding | undefined;

/**
 * The native addon, loaded on first call.
 *
 * @throws {NativeNotFoundError} when no addon fits this platform or the one found fails to
 *   load; the message names the platform, the C library, the package version and what to do.
 */
export function native(): NativeBinding {
  if (cached === undefined) {
    cached = load();
  }
  return cached;
}

/**
 * The targets prebuilt addons are published for, in napi's naming (`linux-x64-gnu`,
 * `darwin-arm64`, `win32-x64-msvc`, ...), from package.json's `napi.targets` Rust triples.
 */
export function supportedTargets(): string[] {
  return napi.targets.map(targetName);
}

/** napi's name for a Rust target triple: `aarch64-unknown-linux-musl` → `linux-arm64-musl`. */
export function targetName(triple: string): string {
  const [cpu, , os, abi] = triple.split("-");
  const arch = cpu === "x86_64" ? "x64" : cpu === "aarch64" ? "arm64" : (cpu ?? triple);
  if (os === "linux") {
    return `linux-${arch}-${abi ?? "gnu"}`;
  }
  if (os === "darwin") {
    return `darwin-${arch}`;
  }
  if (os === "windows") {
    return `win32-${arch}-${abi ?? "msvc"}`;
  }
  return triple;
}

function load(): NativeBinding {
  const require = createRequire(import.meta.url);
  const tried: string[] = [];
  const failures: unknown[] = [];
  const explicit = process.env[NATIVE_PATH_ENV];
  if (explicit !== undefined && explicit !== "") {
    tried.push(explicit);
    if (existsSync(explicit)) {
      try {
        return require(explicit) as NativeBinding;
      } catch (err) {
        failures.push(err);
      }
    }
  }
  const root = packageRoot();
  tried.push(
    join(root, "build", "Release"),
    join(root, "build", "Debug"),
    join(root, "prebuilds", `${process.platform}-${process.arch}`),
  );
  let file: string | undefined;
  try {
    file = nodeGypBuild.resolve(root);
  } catch (err) {
    // node-gyp-build found no file for this platform, architecture and C library.
    failures.push(err);
  }
  if (file !== undefined) {
    tried.push(file);
    try {
      return require(file) as NativeBinding;
    } catch (err) {
      throw notLoadable(file, tried, err);
    }
  }
  throw notFound(tried, failures);
}

/** No addon file fits this process. */
function notFound(tried: string[], failures: unknown[]): NativeNotFoundError {
  const host = hostDescription();
  const supported = supportedTargets();
  const platformPackage = `@${name}/${name}-${host.platform}`;
  tried.push(platformPackage);
  const message = supported.includes(host.target)
    ? `no native addon of ocicache ${version} for ${host.text}: the optional dependency ` +
      `${platformPackage}, which carries it, is not installed. Reinstall ocicache with optional ` +
      "dependencies (npm skips them under --omit=optional or --no-optional, and a lockfile written " +
      `on another platform may lack this one), or ${buildFromSource()}`
    : `no native addon of ocicache ${version} for ${host.text}: prebuilt addons exist for ` +
      `${supported.join(", ")}. Install ocicache on one of those, or ${buildFromSource()}`;
  return new NativeNotFoundError(
    message,
    { tried, platform: host.platform, libc: host.libc, version, supported },
    failures.length > 0 ? { cause: failures.length === 1 ? failures[0] : new AggregateError(failures) } : undefined,
  );
}

/** The addon file for this process exists but the system refuses to load it. */
function notLoadable(file: string, tried: string[], cause: unknown): NativeNotFoundError {
  const host = hostDescription();
  const reason = cause instanceof Error ? cause.message.split("\n")[0] : String(cause);
  const hints: string[] = [];
  if (host.libc === "glibc") {
    hints.push(`the prebuilt Linux gnu addons need glibc ${GLIBC_BASELINE} or newer`);
  }
  const message =
    `the native addon of ocicache ${version} for ${host.text} failed to load (${file}: ${reason})` +
    (hints.length > 0 ? `; ${hints.join("; ")}` : "") +
    `. Install ocicache on a supported platform (${supportedTargets().join(", ")}), or ${buildFromSource()}`;
  return new NativeNotFoundError(
    message,
    { tried, platform: host.platform, libc: host.libc, version, supported: supportedTargets() },
    { cause },
  );
}

/** What to do to build the addon locally. */
function buildFromSource(): string {
  return (
    `build it from source: clone ${REPOSITORY} at v${version}, install Rust ${RUST_TOOLCHAIN} ` +
    "(the version in rust-toolchain.toml), run `npm ci && npm run build:native`, and set " +
    `${NATIVE_PATH_ENV} to the .node file it writes under prebuilds/`
  );
}

/**
 * This process's platform and C library, for messages: `platform` as `linux-x64`, `target` in
 * napi's naming (`linux-x64-gnu`, `darwin-arm64`, `win32-x64-msvc`), and a text for people.
 */
function hostDescription(): { platform: string; target: string; libc: "glibc" | "musl" | null; text: string } {
  const platform = `${process.platform}-${process.arch}`;
  if (process.platform === "win32") {
    return { platform, target: `${platform}-msvc`, libc: null, text: platform };
  }
  if (process.platform !== "linux") {
    return { platform, target: platform, libc: null, text: platform };
  }
  const glibc = glibcVersion();
  return glibc === null
    ? { platform, target: `${platform}-musl`, libc: "musl", text: `${platform} (musl libc)` }
    : { platform, target: `${platform}-gnu`, libc: "glibc", text: `${platform} (glibc ${glibc})` };
}

/** The running glibc's version (the process report states it), or null under musl. */
function glibcVersion(): string | null {
  const report = process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined;
  return report?.header?.glibcVersionRuntime ?? null;
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
