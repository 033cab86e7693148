// Copies the release addon built by `napi build --platform` (native/ocicache.<triple>.node) into
// the prebuildify-style folder the loader searches first: prebuilds/<platform>-<arch>[-<libc>]/.
// The per-platform CI matrix runs this on each target and packs the prebuilds/ folder.
import { copyFileSync, mkdirSync, readdirSync } from "node:fs";
import { join } from "node:path";

const root = new URL("..", import.meta.url).pathname;
const built = readdirSync(join(root, "native")).filter((f) => /^ocicache\..+\.node$/.test(f));
if (built.length === 0) {
  console.error("no native/ocicache.<triple>.node: run `napi build --platform` first");
  process.exit(1);
}
for (const file of built) {
  // napi triples: linux-x64-gnu, linux-arm64-musl, darwin-arm64, win32-x64-msvc, ...
  const triple = file.slice("ocicache.".length, -".node".length).replace(/-msvc$/, "");
  const dir = join(root, "prebuilds", triple);
  mkdirSync(dir, { recursive: true });
  copyFileSync(join(root, "native", file), join(dir, "ocicache.node"));
  console.log(`prebuilds/${triple}/ocicache.node`);
}
