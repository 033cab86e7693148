// The `prepack` guard (scripts/check-package.mjs) and the platform package writer
// (scripts/platform-packages.mjs), run on a copy of the package's files: `npm pack` must fail
// when the bundles, the declarations or an addon are missing (regression: a clean `npm pack`
// held only README, index.d.ts and package.json) or when an addon is built for another target.

import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";

import { expect, it } from "vitest";

import { PACKAGE_ROOT, tempDir } from "./helpers";

const PLATFORM = `${process.platform}-${process.arch}`;
const GLIBC = (process.report?.getReport() as { header?: { glibcVersionRuntime?: string } }).header
  ?.glibcVersionRuntime;
const BUILT = process.env["OCICACHE_NATIVE_PATH"] ?? join(PACKAGE_ROOT, "native", "ocicache.linux-x64-gnu.node");
/** The guard tests need this host's addon to be a release target's: a Linux x64 glibc build. */
const LINUX_X64_GNU = PLATFORM === "linux-x64" && GLIBC !== undefined;

async function copy(): Promise<string> {
  const dir = await tempDir("ocicache-guard-");
  mkdirSync(join(dir, "scripts"));
  for (const f of ["targets.mjs", "check-package.mjs", "platform-packages.mjs"]) {
    copyFileSync(join(PACKAGE_ROOT, "scripts", f), join(dir, "scripts", f));
  }
  for (const f of ["package.json", "LICENSE", "README.md", "index.d.ts"]) {
    copyFileSync(join(PACKAGE_ROOT, f), join(dir, f));
  }
  mkdirSync(join(dir, "dist"));
  for (const f of ["index.mjs", "index.cjs", "cli.cjs", "index.d.mts", "index.d.cts"]) {
    writeFileSync(join(dir, "dist", f), "// built\n");
  }
  return dir;
}

function run(dir: string, script: string, env: Record<string, string> = {}): { status: number | null; stderr: string } {
  const r = spawnSync(process.execPath, [join(dir, "scripts", script)], {
    cwd: dir,
    env: { ...process.env, OCICACHE_PACK_TARGETS: undefined, ...env },
    encoding: "utf8",
  });
  return { status: r.status, stderr: r.stderr };
}

const HOST_ONLY = { OCICACHE_PACK_TARGETS: "x86_64-unknown-linux-gnu" };

it.runIf(LINUX_X64_GNU)("prepack passes with the bundles, the declarations and the host's addon in its platform package", async () => {
  const dir = await copy();
  mkdirSync(join(dir, "prebuilds", "linux-x64"), { recursive: true });
  copyFileSync(BUILT, join(dir, "prebuilds", "linux-x64", "node.napi.glibc.node"));
  expect(run(dir, "platform-packages.mjs", HOST_ONLY).status).toBe(0);
  const manifest = JSON.parse(readFileSync(join(dir, "npm", "linux-x64", "package.json"), "utf8")) as Record<string, unknown>;
  expect(manifest).toMatchObject({
    name: "@ocicache/ocicache-linux-x64",
    os: ["linux"],
    cpu: ["x64"],
    main: "node.napi.glibc.node",
  });
  const written = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as Record<string, unknown>;
  expect(written["optionalDependencies"]).toEqual({ "@ocicache/ocicache-linux-x64": written["version"] });
  expect(run(dir, "check-package.mjs", HOST_ONLY)).toMatchObject({ status: 0 });

  // Without the narrowing every target's addon is required: a release cannot miss one.
  const all = run(dir, "check-package.mjs");
  expect(all.status).toBe(1);
  expect(all.stderr).toContain("missing npm/linux-arm64/package.json");
  expect(all.stderr).toContain("missing npm/linux-x64/node.napi.musl.node");
});

it("prepack fails when dist/ or an addon is missing (regression: a clean npm pack had neither)", async () => {
  const dir = await copy();
  rmSync(join(dir, "dist", "index.mjs"));
  rmSync(join(dir, "dist", "index.d.cts"));
  const r = run(dir, "check-package.mjs", HOST_ONLY);
  expect(r.status).toBe(1);
  expect(r.stderr).toContain("missing dist/index.mjs");
  expect(r.stderr).toContain("missing dist/index.d.cts");
  expect(r.stderr).toContain("missing npm/linux-x64/package.json");
});

it("prepack fails unless the platform packages are optional dependencies pinned to this version", async () => {
  const dir = await copy();
  // The repository's package.json lists none (they are written for a pack or publish only).
  const r = run(dir, "check-package.mjs", HOST_ONLY);
  expect(r.status).toBe(1);
  expect(r.stderr).toContain('optionalDependencies["@ocicache/ocicache-linux-x64"] must be');
  const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as Record<string, unknown>;
  pkg["optionalDependencies"] = { "@ocicache/ocicache-linux-x64": "^0.0.1" };
  writeFileSync(join(dir, "package.json"), JSON.stringify(pkg));
  expect(run(dir, "check-package.mjs", HOST_ONLY).stderr).toContain('optionalDependencies["@ocicache/ocicache-linux-x64"] must be');
});

it.runIf(LINUX_X64_GNU)("an addon built for another target is refused (a glibc build as the musl one, an x64 file as arm64)", async () => {
  const dir = await copy();
  mkdirSync(join(dir, "prebuilds", "linux-x64"), { recursive: true });
  mkdirSync(join(dir, "prebuilds", "linux-arm64"), { recursive: true });
  copyFileSync(BUILT, join(dir, "prebuilds", "linux-x64", "node.napi.musl.node"));
  copyFileSync(BUILT, join(dir, "prebuilds", "linux-arm64", "node.napi.glibc.node"));
  const r = run(dir, "platform-packages.mjs", {
    OCICACHE_PACK_TARGETS: "x86_64-unknown-linux-musl,aarch64-unknown-linux-gnu",
  });
  expect(r.status).toBe(1);
  expect(r.stderr).toContain("is not linked against musl");
  expect(r.stderr).toContain("is not an ELF file for arm64");
  expect(existsSync(join(dir, "npm", "linux-x64", "package.json"))).toBe(false);
});

/** The host's glibc is at least `version` (the debug addon links against the host's glibc). */
function hostGlibcAtLeast(version: string): boolean {
  const [a = 0, b = 0] = (GLIBC ?? "0.0").split(".").map(Number);
  const [c = 0, d = 0] = version.split(".").map(Number);
  return a > c || (a === c && b >= d);
}

it.runIf(LINUX_X64_GNU && hostGlibcAtLeast("2.34"))(
  "check-glibc rejects an addon built against the host's glibc (regression: a local build needed glibc 2.34)",
  () => {
    if (spawnSync("objdump", ["--version"]).status !== 0) {
      if (process.env["CI"] === "true") throw new Error("objdump (binutils) is missing");
      console.warn("skipped: objdump (binutils) is not installed");
      return;
    }
    const script = join(PACKAGE_ROOT, "scripts", "check-glibc.sh");
    const baseline = spawnSync("bash", [script, BUILT, "2.17"], { encoding: "utf8" });
    expect(baseline.status).toBe(1);
    expect(baseline.stderr).toMatch(/needs glibc 2\.(3[4-9]|[4-9]\d)/);
    expect(spawnSync("bash", [script, BUILT, GLIBC ?? ""], { encoding: "utf8" }).status).toBe(0);
  },
);
