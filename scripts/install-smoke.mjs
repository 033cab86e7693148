#!/usr/bin/env node
// Installs packed tarballs into an empty project on this machine and runs the consumer checks
// (scripts/consumer-smoke.mjs): the release workflow's test job, on every OS.
//
//   node scripts/install-smoke.mjs PACKS
//
// PACKS holds ocicache-<version>.tgz, the platform packages' tarballs
// (ocicache-ocicache-<platform>-<arch>-<version>.tgz) and smoke.tar (an image archive from
// scripts/make-archive.mjs). Installs ocicache with this platform's package, and TypeScript
// into a separate tools folder for the type checks.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const packs = resolve(process.argv[2] ?? "");
const files = readdirSync(packs);
const main = files.find((f) => /^ocicache-\d.*\.tgz$/.test(f));
const platform = files.find((f) => f.startsWith(`ocicache-ocicache-${process.platform}-${process.arch}-`));
if (main === undefined || platform === undefined || !files.includes("smoke.tar")) {
  console.error(`install-smoke: ${packs} lacks ocicache-*.tgz, the ${process.platform}-${process.arch} package or smoke.tar`);
  process.exit(1);
}
const here = dirname(fileURLToPath(import.meta.url));
const typescript = JSON.parse(
  spawnSync(process.execPath, ["-p", "JSON.stringify(require('./package.json').devDependencies.typescript)"], {
    cwd: join(here, ".."),
    encoding: "utf8",
  }).stdout,
);

function npm(cwd, args) {
  console.log(`$ npm ${args.join(" ")}`);
  const r = spawnSync("npm", args, { cwd, stdio: "inherit", shell: process.platform === "win32" });
  if (r.status !== 0) {
    console.error(`install-smoke: npm ${args[0]} failed in ${cwd}`);
    process.exit(1);
  }
}

const base = mkdtempSync(join(tmpdir(), "ocicache-smoke-"));
const consumer = join(base, "consumer");
const tools = join(base, "tools");
for (const [dir, name] of [
  [consumer, "consumer"],
  [tools, "tools"],
]) {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "package.json"), JSON.stringify({ name, version: "1.0.0", private: true }));
}
npm(consumer, ["install", "--no-audit", "--no-fund", join(packs, platform), join(packs, main)]);
npm(tools, ["install", "--no-audit", "--no-fund", `typescript@${typescript}`]);
const tsc = join(tools, "node_modules", "typescript", "bin", "tsc");
if (!existsSync(tsc)) {
  console.error(`install-smoke: no ${tsc}`);
  process.exit(1);
}
const r = spawnSync(process.execPath, [join(here, "consumer-smoke.mjs"), consumer, join(packs, "smoke.tar"), tsc], {
  stdio: "inherit",
});
process.exit(r.status ?? 1);
