// The addon loader, run from a copy of the built bundle in a folder without an addon.

import { spawnSync } from "node:child_process";
import { copyFileSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";

import { expect, it } from "vitest";

import { DIST_INDEX, PACKAGE_ROOT, tempDir } from "./helpers";

const PROBE = `
const { ImageCache } = require(process.argv[1]);
try {
  ImageCache.open({ root: process.argv[2] });
  console.log(JSON.stringify({ ok: true }));
} catch (err) {
  console.log(JSON.stringify({ name: err.name, code: err.code, tried: err.tried }));
}
`;

async function packageCopy(): Promise<string> {
  const pkg = await tempDir("ocicache-pkg-");
  mkdirSync(join(pkg, "dist"));
  copyFileSync(DIST_INDEX, join(pkg, "dist", "index.cjs"));
  writeFileSync(join(pkg, "package.json"), JSON.stringify({ name: "ocicache-copy" }));
  return pkg;
}

function probe(pkg: string, env: Record<string, string | undefined>): Record<string, unknown> {
  const r = spawnSync(process.execPath, ["-e", PROBE, join(pkg, "dist", "index.cjs"), join(pkg, "root")], {
    env: { ...process.env, OCICACHE_NATIVE_PATH: undefined, ...env },
    encoding: "utf8",
  });
  expect(r.status, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as Record<string, unknown>;
}

it("throws NativeNotFoundError listing the paths tried when no addon exists", async () => {
  const pkg = await packageCopy();
  const out = probe(pkg, { OCICACHE_NATIVE_PATH: join(pkg, "missing.node") });
  expect(out["name"]).toBe("NativeNotFoundError");
  expect(out["code"]).toBe("NATIVE_NOT_FOUND");
  const tried = out["tried"] as string[];
  expect(tried[0]).toBe(join(pkg, "missing.node"));
  const libc = process.platform === "linux" ? "-gnu" : "";
  expect(tried).toContain(join(pkg, "prebuilds", `${process.platform}-${process.arch}${libc}`, "ocicache.node"));
  expect(tried).toContain(join(pkg, "native", `ocicache.${process.platform}-${process.arch}${libc}.node`));
});

it("loads the file OCICACHE_NATIVE_PATH names, and a prebuilds/ addon", async () => {
  const pkg = await packageCopy();
  const libc = process.platform === "linux" ? "-gnu" : process.platform === "win32" ? "-msvc" : "";
  const built = join(PACKAGE_ROOT, "native", `ocicache.${process.platform}-${process.arch}${libc}.node`);
  expect(probe(pkg, { OCICACHE_NATIVE_PATH: built })).toEqual({ ok: true });
  const dir = join(pkg, "prebuilds", `${process.platform}-${process.arch}${libc === "-msvc" ? "" : libc}`);
  mkdirSync(dir, { recursive: true });
  copyFileSync(built, join(dir, "ocicache.node"));
  expect(probe(pkg, {})).toEqual({ ok: true });
});
