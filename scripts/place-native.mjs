// Copies the addons `napi build --platform` wrote (native/ocicache.<napi name>.node, e.g.
// ocicache.linux-x64-gnu.node, ocicache.darwin-arm64.node, ocicache.win32-x64-msvc.node) into
// the prebuildify layout the loader reads: prebuilds/<platform>-<arch>/node.napi[.glibc|.musl].node.
// A clone's own build is found there; the release workflow runs this on each target and
// uploads prebuilds/ for the platform packages (scripts/platform-packages.mjs).
import { copyFileSync, mkdirSync, readdirSync } from "node:fs";
import { join } from "node:path";

import { BINARY, PKG, ROOT, binaryMismatch, describe } from "./targets.mjs";

const byNapiName = new Map(PKG.napi.targets.map((t) => [describe(t).napi, describe(t)]));
const pattern = new RegExp(`^${BINARY}\\.(.+)\\.node$`);
const built = readdirSync(join(ROOT, "native")).filter((f) => pattern.test(f));
if (built.length === 0) {
  console.error(`no native/${BINARY}.<target>.node: run \`napi build --platform\` first`);
  process.exit(1);
}
// A build for a platform with no prebuilt addon (say linux-riscv64) goes where the loader looks
// on this host; a release target's build is checked against its target first.
const report = process.report?.getReport();
const hostLibc = process.platform === "linux" ? (report?.header?.glibcVersionRuntime ? "glibc" : "musl") : null;
const host = {
  dir: `${process.platform}-${process.arch}`,
  file: hostLibc === null ? "node.napi.node" : `node.napi.${hostLibc}.node`,
};
for (const file of built) {
  const from = join(ROOT, "native", file);
  const target = byNapiName.get(pattern.exec(file)[1]) ?? host;
  const problem = target.triple === undefined ? null : binaryMismatch(from, target);
  if (problem !== null) {
    console.error(problem);
    process.exit(1);
  }
  mkdirSync(join(ROOT, "prebuilds", target.dir), { recursive: true });
  copyFileSync(from, join(ROOT, "prebuilds", target.dir, target.file));
  console.log(`prebuilds/${target.dir}/${target.file}`);
}
