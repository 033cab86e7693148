// The addon loader, run from a copy of the built bundle in a folder of its own: with no addon,
// with an addon that does not load, with an explicit file, a prebuilds/ folder and a
// per-platform package, the way an installed ocicache finds its addon.

import { spawnSync } from "node:child_process";
import { copyFileSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";

import { describe, expect, it } from "vitest";

import { DIST_INDEX, PACKAGE_ROOT, tempDir } from "./helpers";

const PKG = JSON.parse(readFileSync(join(PACKAGE_ROOT, "package.json"), "utf8")) as {
  name: string;
  version: string;
  napi: { targets: string[] };
};
const RUST_CHANNEL = /channel\s*=\s*"([^"]+)"/.exec(readFileSync(join(PACKAGE_ROOT, "rust-toolchain.toml"), "utf8"))?.[1];

const PLATFORM = `${process.platform}-${process.arch}`;
const GLIBC = (process.report?.getReport() as { header?: { glibcVersionRuntime?: string } }).header
  ?.glibcVersionRuntime;
const LIBC = process.platform === "linux" ? (GLIBC === undefined ? "musl" : "glibc") : null;
/** The prebuildify file name of this host's addon. */
const PREBUILD_FILE = LIBC === null ? "node.napi.node" : `node.napi.${LIBC}.node`;
/** The napi build of this host that `scripts/test.sh` made (or OCICACHE_NATIVE_PATH names). */
const BUILT =
  process.env["OCICACHE_NATIVE_PATH"] ??
  join(
    PACKAGE_ROOT,
    "native",
    `ocicache.${PLATFORM}${LIBC === "glibc" ? "-gnu" : LIBC === "musl" ? "-musl" : process.platform === "win32" ? "-msvc" : ""}.node`,
  );

// Runs the bundle in a child process (after `before`, which can pretend another architecture).
const PROBE = `
const { ImageCache } = require(process.argv[1]);
try {
  ImageCache.open({ root: process.argv[2] });
  const loaded = Object.keys(require.cache).filter((k) => k.endsWith(".node"));
  console.log(JSON.stringify({ ok: true, loaded }));
} catch (err) {
  console.log(JSON.stringify({
    name: err.name, code: err.code, message: err.message, tried: err.tried, platform: err.platform,
    libc: err.libc, version: err.version, supported: err.supported, cause: err.cause ? String(err.cause) : null,
  }));
}
`;

/** The runtime dependencies of the bundle, linked into `nodeModules` from the repository's. */
function linkDependencies(nodeModules: string): void {
  mkdirSync(nodeModules, { recursive: true });
  for (const dep of ["node-gyp-build-optional-packages", "detect-libc"]) {
    symlinkSync(join(PACKAGE_ROOT, "node_modules", dep), join(nodeModules, dep), "junction");
  }
}

/** A folder laid out like an installed ocicache (dist/index.cjs, package.json), no addon. */
async function packageCopy(): Promise<string> {
  const pkg = await tempDir("ocicache-pkg-");
  mkdirSync(join(pkg, "dist"));
  copyFileSync(DIST_INDEX, join(pkg, "dist", "index.cjs"));
  writeFileSync(join(pkg, "package.json"), JSON.stringify({ name: PKG.name, version: PKG.version }));
  linkDependencies(join(pkg, "node_modules"));
  return pkg;
}

function probe(pkg: string, env: Record<string, string | undefined>, before = ""): Record<string, unknown> {
  const r = spawnSync(process.execPath, ["-e", `${before}\n${PROBE}`, join(pkg, "dist", "index.cjs"), join(pkg, "root")], {
    env: { ...process.env, OCICACHE_NATIVE_PATH: undefined, OCICACHE_PREBUILD: undefined, LIBC: undefined, ...env },
    encoding: "utf8",
  });
  expect(r.status, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as Record<string, unknown>;
}

const SUPPORTED = ["linux-x64-gnu", "linux-x64-musl", "linux-arm64-gnu", "linux-arm64-musl", "darwin-x64", "darwin-arm64", "win32-x64-msvc"];

describe("NATIVE_NOT_FOUND says what to do (regression: it gave no hint)", () => {
  it("names the platform, the C library, the version, the missing platform package and how to build from source", async () => {
    const pkg = await packageCopy();
    const out = probe(pkg, { OCICACHE_NATIVE_PATH: join(pkg, "missing.node") });
    expect(out["name"]).toBe("NativeNotFoundError");
    expect(out["code"]).toBe("NATIVE_NOT_FOUND");
    const tried = out["tried"] as string[];
    expect(tried[0]).toBe(join(pkg, "missing.node"));
    expect(tried).toContain(join(pkg, "prebuilds", PLATFORM));
    expect(tried).toContain(`@${PKG.name}/${PKG.name}-${PLATFORM}`);
    expect(out["platform"]).toBe(PLATFORM);
    expect(out["libc"]).toBe(LIBC);
    expect(out["version"]).toBe(PKG.version);
    expect(out["supported"]).toEqual(SUPPORTED);
    // The message is what a person reads: it must carry each of these facts.
    const message = out["message"] as string;
    expect(RUST_CHANNEL).toBeDefined();
    for (const part of [
      PLATFORM,
      LIBC === "glibc" ? `glibc ${GLIBC}` : (LIBC ?? PLATFORM),
      `ocicache ${PKG.version}`,
      `@${PKG.name}/${PKG.name}-${PLATFORM}`,
      "--omit=optional",
      "npm run build:native",
      `Rust ${RUST_CHANNEL}`,
      "OCICACHE_NATIVE_PATH",
    ]) {
      expect(message).toContain(part);
    }
  });

  it("lists the supported platforms on a platform without a prebuilt addon", async () => {
    const pkg = await packageCopy();
    const out = probe(pkg, {}, `Object.defineProperty(process, "arch", { value: "riscv64" });`);
    expect(out["code"]).toBe("NATIVE_NOT_FOUND");
    expect(out["platform"]).toBe(`${process.platform}-riscv64`);
    const message = out["message"] as string;
    expect(message).toContain(`${process.platform}-riscv64`);
    for (const target of SUPPORTED) {
      expect(message).toContain(target);
    }
    expect(message).toContain("npm run build:native");
    expect(message).toContain(`Rust ${RUST_CHANNEL}`);
  });

  it("explains an addon that is there but fails to load, with the loader's error as cause", async () => {
    const pkg = await packageCopy();
    const dir = join(pkg, "prebuilds", PLATFORM);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, PREBUILD_FILE), "not an addon");
    const out = probe(pkg, {});
    expect(out["code"]).toBe("NATIVE_NOT_FOUND");
    expect(out["tried"]).toContain(join(dir, PREBUILD_FILE));
    expect(out["cause"]).toBeTruthy();
    const message = out["message"] as string;
    expect(message).toContain(join(dir, PREBUILD_FILE));
    expect(message).toContain("failed to load");
    if (LIBC === "glibc") {
      expect(message).toContain("glibc 2.17 or newer");
    }
    expect(message).toContain("npm run build:native");
  });
});

it("package.json napi.targets are the supported targets the error names", () => {
  expect(PKG.napi.targets).toEqual([
    "x86_64-unknown-linux-gnu",
    "x86_64-unknown-linux-musl",
    "aarch64-unknown-linux-gnu",
    "aarch64-unknown-linux-musl",
    "x86_64-apple-darwin",
    "aarch64-apple-darwin",
    "x86_64-pc-windows-msvc",
  ]);
});

it("loads the file OCICACHE_NATIVE_PATH names, a prebuilds/ addon, then the per-platform package", async () => {
  const pkg = await packageCopy();
  expect(probe(pkg, { OCICACHE_NATIVE_PATH: BUILT })).toEqual({ ok: true, loaded: [BUILT] });

  const dir = join(pkg, "prebuilds", PLATFORM);
  mkdirSync(dir, { recursive: true });
  copyFileSync(BUILT, join(dir, PREBUILD_FILE));
  expect(probe(pkg, {})).toEqual({ ok: true, loaded: [join(dir, PREBUILD_FILE)] });

  // An installed ocicache: no prebuilds/ of its own, the addon in @ocicache/ocicache-<platform>
  // beside it in node_modules (as scripts/platform-packages.mjs writes it).
  const project = await tempDir("ocicache-project-");
  const installed = join(project, "node_modules", PKG.name);
  mkdirSync(join(installed, "dist"), { recursive: true });
  linkDependencies(join(project, "node_modules"));
  copyFileSync(DIST_INDEX, join(installed, "dist", "index.cjs"));
  writeFileSync(join(installed, "package.json"), JSON.stringify({ name: PKG.name, version: PKG.version }));
  const platformPackage = join(project, "node_modules", `@${PKG.name}`, `${PKG.name}-${PLATFORM}`);
  mkdirSync(platformPackage, { recursive: true });
  copyFileSync(BUILT, join(platformPackage, PREBUILD_FILE));
  writeFileSync(
    join(platformPackage, "package.json"),
    JSON.stringify({ name: `@${PKG.name}/${PKG.name}-${PLATFORM}`, version: PKG.version, main: PREBUILD_FILE }),
  );
  expect(probe(installed, {})).toEqual({ ok: true, loaded: [join(platformPackage, PREBUILD_FILE)] });
});
