// Image.load of a docker archive with a realistic gzip layer, against the floor for verify +
// decompress measured in the same run: `sha256sum ARCHIVE` plus `gzip -d` of the layer blob.
//
//   node bench/load.mjs [source-dir] [max-MiB]   (defaults: /usr/lib/x86_64-linux-gnu, 256)
import { execFileSync } from "node:child_process";
import { cpSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { ImageCache } from "../dist/index.mjs";
import { fmt, shellMs } from "./common.mjs";

const source = process.argv[2] ?? "/usr/lib/x86_64-linux-gnu";
const maxBytes = Number(process.argv[3] ?? 256) * 1024 * 1024;
const work = mkdtempSync(join(tmpdir(), "ocicache-bench-load-"));
const here = new URL(".", import.meta.url).pathname;

// Copy real files (shared libraries, many small and some large) up to maxBytes.
function fill(dir, dest, state) {
  for (const name of readdirSync(dir).sort()) {
    if (state.bytes >= maxBytes) return;
    const path = join(dir, name);
    const st = lstatSync(path);
    if (st.isDirectory()) fill(path, dest, state);
    else if (st.isFile()) {
      const to = join(dest, relative(source, path));
      mkdirSync(join(to, ".."), { recursive: true });
      cpSync(path, to);
      state.bytes += st.size;
      state.files += 1;
    }
  }
}

try {
  const layerDir = join(work, "rootfs");
  const state = { bytes: 0, files: 0 };
  fill(source, join(layerDir, "usr", "lib"), state);
  const archive = join(work, "image.tar");
  execFileSync("node", [join(here, "..", "scripts", "make-archive.mjs"), archive, "bench/load:1", layerDir], { stdio: "ignore" });
  const layerMember = execFileSync("tar", ["-tf", archive], { encoding: "utf8" }).split("\n").find((l) => l.endsWith("layer.tar"));
  execFileSync("tar", ["-xf", archive, "-C", work, layerMember]);
  const layer = join(work, layerMember);
  const archiveBytes = statSync(archive).size;

  const runs = 3;
  let best = { load: Infinity, floor: Infinity };
  for (let i = 0; i < runs; i++) {
    execFileSync("bash", ["-c", `cat ${archive} ${layer} > /dev/null`]); // same page-cache state for both
    const floor = shellMs(`sha256sum ${archive} >/dev/null && gzip -dc ${layer} >/dev/null`);
    const root = join(work, `cache${i}`);
    const cache = ImageCache.open({ root });
    const start = process.hrtime.bigint();
    await cache.load(archive);
    const load = Number(process.hrtime.bigint() - start) / 1e6;
    rmSync(root, { recursive: true, force: true });
    best = { load: Math.min(best.load, load), floor: Math.min(best.floor, floor) };
  }
  const mb = archiveBytes / 1e6;
  console.log(`load: archive=${fmt(mb, 1)} MB (${state.files} files, ${fmt(state.bytes / 1e6, 1)} MB uncompressed), ` +
    `Image.load=${fmt(mb / (best.load / 1e3), 1)} MB/s, floor (sha256sum + gzip -d)=${fmt(mb / (best.floor / 1e3), 1)} MB/s, ` +
    `ratio=${fmt(best.floor / best.load)}x of floor (aim >= 0.7x), best of ${runs}`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
