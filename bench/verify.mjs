// Verify at realistic size (issue 14): `Cache::verify` quick and full over every image of a
// cache of several images whose layer images hold about 2 GB of real files, against the floor
// measured in the same run on the same files: `cat` of every file a full verify reads (the
// layer images, fsmeta images, VMDK descriptors, manifest and config blobs) to /dev/null, one
// process, and the same with one `cat` per core (`xargs -P`).
//
//   node bench/verify.mjs [runs]   (default $VERIFY_RUNS or 5; $VERIFY_COLD_RUNS, default 3,
//                                   gives the runs with a cold page cache, 0 for none)
//   npm run bench:verify           (builds the examples first)
//
// The cache is built once and kept in bench/.work/verify/ (gitignored; delete it to rebuild):
// four plain tar layers of this machine's own files, packed with GNU tar (`--sort=name
// --numeric-owner`), written as an OCI layout (blobs hardlinked to the tars) and loaded with
// crates/core/examples/load.rs:
//   - base: /usr/bin, /usr/lib/gcc, /usr/include (binaries, headers);
//   - libs: /usr/lib/x86_64-linux-gnu (shared libraries, many symlinks);
//   - python: /usr/lib/python3, /usr/lib/python3.11 (many small sources);
//   - share: /usr/share (documentation, locales, data: many small files);
// and three images over them: bench/verify-py:1 (base, libs, python), bench/verify-docs:1
// (base, share) and bench/verify-tools:1 (base, libs). A shared layer is read once per verify.
//
// Routes, interleaved (order rotated each round, one warm-up each): quick
// (`examples/verify ROOT quick`), full (`... full`), cat, cat -P. Times of verify are measured
// inside its process (the index opened before the timer starts); cat's by the wall clock of
// its shell. Two passes:
//   - warm: the files in the page cache (the warm-up reads them), nothing dropped;
//   - cold: before every route, `sync; echo 3 > /proc/sys/vm/drop_caches` (as root only;
//     skipped otherwise, with a line saying so), so every route reads from the disk.
import { execFileSync } from "node:child_process";
import { existsSync, linkSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createHash } from "node:crypto";
import { cpus } from "node:os";
import { join } from "node:path";
import { count as n, fmt, interleave, median, quote, sh, shellMs, stamp } from "./common.mjs";

const runs = Number(process.argv[2] ?? process.env.VERIFY_RUNS ?? 5);
const coldRuns = Number(process.env.VERIFY_COLD_RUNS ?? 3);
const here = new URL(".", import.meta.url).pathname;
const root = join(here, "..");
const work = join(here, ".work", "verify");
const examples = join(process.env.CARGO_TARGET_DIR ?? join(root, "target"), "release", "examples");
const CORES = cpus().length;

const LAYERS = {
  base: ["usr/bin", "usr/lib/gcc", "usr/include"],
  libs: ["usr/lib/x86_64-linux-gnu"],
  python: ["usr/lib/python3", "usr/lib/python3.11"],
  share: ["usr/share"],
};
const IMAGES = {
  "bench/verify-py:1": ["base", "libs", "python"],
  "bench/verify-docs:1": ["base", "share"],
  "bench/verify-tools:1": ["base", "libs"],
};
// Bump when the recipe changes, so that cached caches are rebuilt.
const RECIPE = 1;
const MB = 1e6;

function missingTools() {
  const missing = ["tar", "cat", "xargs", "find"].filter((t) => sh(`command -v ${t} || true`).trim() === "");
  for (const ex of ["verify", "load"]) {
    if (!existsSync(join(examples, ex))) missing.push(`${join(examples, ex)} (cargo build --release -p ocicache-core --example ${ex})`);
  }
  for (const dirs of Object.values(LAYERS)) for (const d of dirs) if (!existsSync(`/${d}`)) missing.push(`/${d}`);
  return missing;
}

const sha256 = (path) => `sha256:${sh(`sha256sum ${quote(path)}`).split(" ")[0]}`;

/** Writes `bytes` as a blob of `layout`; returns its descriptor fields. */
function putBlob(layout, bytes) {
  const hex = createHash("sha256").update(bytes).digest("hex");
  writeFileSync(join(layout, "blobs", "sha256", hex), bytes);
  return { digest: `sha256:${hex}`, size: bytes.length };
}

function buildCache() {
  const key = { RECIPE, LAYERS, IMAGES };
  const cache = join(work, "cache");
  const done = stamp(join(work, "cache.json"), key);
  if (done && existsSync(join(cache, "index.db"))) return { cache, ...done };
  for (const d of ["tars", "layout", "cache"]) rmSync(join(work, d), { recursive: true, force: true });
  const tars = join(work, "tars");
  const layout = join(work, "layout");
  mkdirSync(tars, { recursive: true });
  mkdirSync(join(layout, "blobs", "sha256"), { recursive: true });
  writeFileSync(join(layout, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  console.log("verify: packing the layers (once, kept in bench/.work/verify)");
  const layers = {};
  for (const [name, dirs] of Object.entries(LAYERS)) {
    const t = join(tars, `${name}.tar`);
    sh(`tar --sort=name --numeric-owner -cf ${quote(t)} -C / ${dirs.map(quote).join(" ")}`);
    const digest = sha256(t);
    // A plain tar layer: its blob digest is its diff_id; the blob is the tar itself.
    linkSync(t, join(layout, "blobs", ...digest.split(":")));
    const entries = Number(sh(`tar -tf ${quote(t)} | wc -l`).trim());
    layers[name] = { digest, size: statSync(t).size, entries };
  }
  const manifests = [];
  for (const [reference, names] of Object.entries(IMAGES)) {
    const config = putBlob(layout, Buffer.from(JSON.stringify({
      architecture: "amd64", os: "linux",
      config: { Env: ["PATH=/usr/local/bin:/usr/bin:/bin"], Cmd: ["/bin/sh"], Labels: { "org.opencontainers.image.title": reference } },
      rootfs: { type: "layers", diff_ids: names.map((l) => layers[l].digest) },
    })));
    const manifest = putBlob(layout, Buffer.from(JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: { mediaType: "application/vnd.oci.image.config.v1+json", ...config },
      layers: names.map((l) => ({ mediaType: "application/vnd.oci.image.layer.v1.tar", digest: layers[l].digest, size: layers[l].size })),
    })));
    manifests.push({ mediaType: "application/vnd.oci.image.manifest.v1+json", ...manifest, annotations: { "org.opencontainers.image.ref.name": reference } });
  }
  writeFileSync(join(layout, "index.json"), JSON.stringify({ schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json", manifests }));
  console.log("verify: loading the layout into the cache");
  execFileSync(join(examples, "load"), [cache, layout], { stdio: ["ignore", "ignore", "inherit"] });
  rmSync(tars, { recursive: true, force: true });
  rmSync(layout, { recursive: true, force: true });
  const s = { key, layers };
  writeFileSync(join(work, "cache.json"), JSON.stringify(s, null, 1));
  return { cache, ...s };
}

const missing = missingTools();
if (missing.length > 0) {
  const message = `verify: SKIPPED, missing ${missing.join(", ")}`;
  if (process.env.CI === "true") throw new Error(message);
  console.log(message);
  process.exit(0);
}

mkdirSync(work, { recursive: true });
const built = buildCache();
const cache = built.cache;
// Every file a full verify reads: the artifact folders hold nothing else.
const list = join(work, "files.txt");
sh(`cd ${quote(cache)} && find "$PWD/blobs" "$PWD/layers" "$PWD/fsmeta" "$PWD/vmdk" -type f -print0 > ${quote(list)}`);
const files = readFileSync(list, "utf8").split("\0").filter(Boolean);
const bytes = files.reduce((sum, f) => sum + statSync(f).size, 0);
const layerBytes = files.filter((f) => f.includes("/layers/")).reduce((sum, f) => sum + statSync(f).size, 0);

const verify = (mode) => () => {
  const r = JSON.parse(execFileSync(join(examples, "verify"), [cache, mode], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] }));
  if (r.problems !== 0) throw new Error(`verify ${mode} found ${r.problems} problems in the bench cache`);
  return { ms: r.seconds * 1e3, report: r };
};
const routes = {
  quick: verify("quick"),
  full: verify("full"),
  cat: () => ({ ms: shellMs(`xargs -0 -a ${quote(list)} cat > /dev/null`) }),
  [`cat-P${CORES}`]: () => ({ ms: shellMs(`xargs -0 -a ${quote(list)} -n 16 -P ${CORES} cat > /dev/null`) }),
};

const imagesCount = Object.keys(IMAGES).length;
const census = Object.entries(built.layers).map(([k, l]) => `${k} ${n(l.entries)} entries/${fmt(l.size / MB, 1)} MB`).join(", ");
console.log(`verify: ${imagesCount} images over ${Object.keys(LAYERS).length} layers (tars: ${census}); ` +
  `${n(files.length)} files of ${fmt(bytes / MB, 1)} MB, layer images ${fmt(layerBytes / MB, 1)} MB`);

const s = (ms) => (ms >= 1000 ? `${fmt(ms / 1e3)} s` : `${fmt(ms, 1)} ms`);
const rate = (ms) => `${n(bytes / MB / (ms / 1e3))} MB/s`;
function pass(name, count, before) {
  for (const r of Object.values(routes)) { before(); r(); } // warm-up
  const samples = interleave(routes, count, before);
  const med = (k) => median(samples[k].map((x) => x.ms));
  const full = med("full");
  const cat = med("cat");
  const catP = med(`cat-P${CORES}`);
  console.log(`verify (${name}, median of ${count}): quick=${s(med("quick"))}; full=${s(full)} (${rate(full)}); ` +
    `cat=${s(cat)} (${rate(cat)}); cat -P${CORES}=${s(catP)} (${rate(catP)}); ` +
    `full against cat=${fmt(cat / full)}x, against cat -P${CORES}=${fmt(catP / full)}x; ` +
    `bytes read by full=${n(samples.full[0].report.bytesRead)}, artifacts=${n(samples.full[0].report.artifacts)}`);
}

pass("warm page cache", runs, () => {});
if (coldRuns > 0) {
  let canDrop = process.getuid?.() === 0;
  if (canDrop) {
    try {
      writeFileSync("/proc/sys/vm/drop_caches", "3");
    } catch {
      canDrop = false;
    }
  }
  if (canDrop) pass("cold page cache", coldRuns, () => sh("sync; echo 3 > /proc/sys/vm/drop_caches"));
  else console.log("verify: cold pass skipped (dropping the page cache needs root)");
}
