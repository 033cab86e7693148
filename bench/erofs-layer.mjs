// Layer to EROFS conversion (issue 3): `convert_layer` (crates/core/examples/convert_layer.rs)
// on a realistic gzip layer built from Debian packages, against, in the same run,
//   - the two-step route a user would otherwise take: `tar -xzf` into a folder (as root, numeric
//     owners, permissions and xattrs kept), then `mkfs.erofs IMAGE FOLDER`;
//   - the floor for reading the layer at all: `gzip -d < layer.tar.gz | sha256sum`.
// Then the peak RSS and time of converting a layer of at least 1 GiB uncompressed.
//
//   node bench/erofs-layer.mjs [runs] [big-MiB]   (defaults: $EROFS_RUNS or 5, $EROFS_BIG_MIB or 1024)
//   npm run bench:erofs                           (builds convert_layer first)
//
// The corpus is built once and cached in bench/.work/erofs-layer/ (gitignored): the packages
// below are fetched with `apt-get download`, unpacked with `dpkg-deb -x` into one tree, and
// packed with GNU tar (`--sort=name`) and `gzip -6`. Delete that folder to rebuild it. Needs
// apt-get, dpkg-deb, GNU tar, gzip, mkfs.erofs and fsck.erofs (erofs-utils), /usr/bin/time.
import { execFileSync, spawn } from "node:child_process";
import { createCipheriv } from "node:crypto";
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, statfsSync, statSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import { count as n, fmt, interleave, median, quote, sh, shellMs, stamp } from "./common.mjs";

const runs = Number(process.argv[2] ?? process.env.EROFS_RUNS ?? 5);
const bigMiB = Number(process.argv[3] ?? process.env.EROFS_BIG_MIB ?? 1024);
const here = new URL(".", import.meta.url).pathname;
const root = join(here, "..");
const work = join(here, ".work", "erofs-layer");
const convert = join(process.env.CARGO_TARGET_DIR ?? join(root, "target"), "release", "examples", "convert_layer");

// Debian 12 packages whose contents make the layer: perl and python libraries, C++ headers, vim
// runtime files, locales and time zones (thousands of small files) plus compiler binaries and the
// ICU data (files of 30 MB).
const PACKAGES = [
  "perl-modules-5.36", "libperl5.36", "python3.11-minimal", "libpython3.11-stdlib", "libpython3.11-testsuite",
  "gcc-12", "cpp-12", "binutils-x86-64-linux-gnu", "libgcc-12-dev", "libstdc++-12-dev", "manpages-dev",
  "libicu72", "vim-runtime", "locales", "tzdata", "coreutils",
];
// The 1 GiB layer: two copies of the realistic tree, SYNTH_FILES small text files cut from the
// vim documentation (64 B to 16 KiB, log-uniform), and 64 MiB files of AES-CTR output
// (incompressible, deterministic) until the file contents alone reach big-MiB.
const SYNTH_FILES = 80_000;
const SYNTH_PER_DIR = 250;
const RANDOM_FILE = 64 * 1024 * 1024;
// Folders that dpkg-deb or this script create, and the synthetic files, would carry the time of
// the build; they get this one (2025-01-01) instead, so that the corpus comes out byte for byte
// the same on every build of the same package versions. Package files keep their own times.
const CREATED_MTIME = 1735689600;
// Bump when the recipe changes, so that cached corpora are rebuilt.
const RECIPE = 4;

// --xattrs makes GNU tar write POSIX (pax) headers, which would carry every entry's atime and
// ctime; layer builders do not record those, and they change on every build.
const TAR_OPTIONS = "--sort=name --numeric-owner --xattrs --pax-option=delete=atime,delete=ctime";
const MB = 1e6;
const MiB = 1024 * 1024;

function missingTools() {
  const tools = ["apt-get", "dpkg-deb", "tar", "gzip", "sha256sum", "mkfs.erofs", "fsck.erofs"];
  const missing = tools.filter((t) => sh(`command -v ${t} || true`).trim() === "");
  if (!existsSync("/usr/bin/time")) missing.push("/usr/bin/time");
  if (!existsSync(convert)) missing.push(`${convert} (cargo build --release -p ocicache-core --example convert_layer)`);
  return missing;
}

/** Gives everything under `dir` modified since `since` (seconds) the fixed CREATED_MTIME. */
function fixCreatedTimes(dir, since) {
  sh(`find ${quote(dir)} -newermt @${since} -exec touch -h -d @${CREATED_MTIME} {} +`);
}

function buildTree() {
  const tree = join(work, "tree");
  const key = { RECIPE, PACKAGES };
  const done = stamp(join(work, "tree.json"), key);
  if (done && existsSync(tree)) return { tree, ...done };
  const debs = join(work, "debs");
  rmSync(debs, { recursive: true, force: true });
  rmSync(tree, { recursive: true, force: true });
  mkdirSync(debs, { recursive: true });
  const since = Math.floor(Date.now() / 1000) - 1;
  mkdirSync(tree);
  console.log(`erofs-layer: fetching ${PACKAGES.length} Debian packages (once, cached in bench/.work/erofs-layer)`);
  // APT::Sandbox::User=root: the download folder need not be writable by _apt.
  execFileSync("apt-get", ["-qq", "-o", "APT::Sandbox::User=root", "download", ...PACKAGES], { cwd: debs, stdio: ["ignore", "ignore", "inherit"] });
  const versions = readdirSync(debs).filter((f) => f.endsWith(".deb")).sort();
  for (const deb of versions) execFileSync("dpkg-deb", ["-x", join(debs, deb), tree]);
  fixCreatedTimes(tree, since);
  const s = { key, versions };
  writeFileSync(join(work, "tree.json"), JSON.stringify(s, null, 1));
  return { tree, ...s };
}

/** File count, entry count and content bytes of a folder (hardlinks counted once per name). */
function census(dir) {
  const [files, entries, bytes] = sh(`find ${quote(dir)} -mindepth 1 -printf '%y %s\\n' | awk '{ e++; if ($1 == "f") { f++; b += $2 } } END { print f, e, b }'`)
    .trim().split(" ").map(Number);
  return { files, entries, bytes };
}

/** Runs a shell command in the background; resolves when it exits 0. */
function background(command) {
  return new Promise((resolve, reject) => {
    const child = spawn("bash", ["-c", `set -euo pipefail; ${command}`], { stdio: ["ignore", "ignore", "inherit"] });
    child.on("error", reject);
    child.on("exit", (code) => (code === 0 ? resolve() : reject(new Error(`${command} exited with ${code}`))));
  });
}

/** Packs the tree; `gzipped` resolves once layer.tar.gz is written (gzip runs in the background
 * while the big layer is built, on the other core). */
function buildLayer(tree) {
  const tarPath = join(work, "layer.tar");
  const gzPath = join(work, "layer.tar.gz");
  const key = { RECIPE, PACKAGES };
  const done = stamp(join(work, "layer.json"), key);
  if (done && existsSync(tarPath) && existsSync(gzPath)) return { tarPath, gzPath, gzipped: Promise.resolve(), ...done };
  rmSync(join(work, "layer.json"), { force: true });
  const c = census(tree);
  sh(`tar ${TAR_OPTIONS} -cf ${quote(tarPath)} -C ${quote(tree)} .`);
  const s = { key, ...c };
  const gzipped = background(`gzip -6 -n -c ${quote(tarPath)} > ${quote(gzPath)}`)
    .then(() => writeFileSync(join(work, "layer.json"), JSON.stringify(s, null, 1)));
  return { tarPath, gzPath, gzipped, ...s };
}

/** A small deterministic PRNG (mulberry32). */
function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function buildBigLayer(tree) {
  const gzPath = join(work, "big.tar.gz");
  const key = { RECIPE, PACKAGES, bigMiB, SYNTH_FILES };
  const done = stamp(join(work, "big.json"), key);
  if (done && existsSync(gzPath)) return { gzPath, ...done };
  const dir = join(work, "big");
  rmSync(dir, { recursive: true, force: true });
  const since = Math.floor(Date.now() / 1000) - 1;
  mkdirSync(join(dir, "opt"), { recursive: true });
  console.log(`erofs-layer: building the ${bigMiB} MiB layer (once)`);
  // Hardlinked copies cost no disk; tar --hard-dereference stores each as a full file.
  for (const copy of ["a", "b"]) sh(`cp -al ${quote(tree)} ${quote(join(dir, "opt", copy))}`);
  const docs = join(tree, "usr", "share", "vim", "vim90", "doc");
  const text = Buffer.concat(readdirSync(docs).filter((f) => f.endsWith(".txt")).sort().map((f) => readFileSync(join(docs, f))));
  const rand = prng(3);
  for (let i = 0; i < SYNTH_FILES; i++) {
    const sub = join(dir, "srv", "synth", String(Math.floor(i / SYNTH_PER_DIR)).padStart(4, "0"));
    if (i % SYNTH_PER_DIR === 0) mkdirSync(sub, { recursive: true });
    const size = Math.floor(64 * Math.pow(256, rand()));
    const at = Math.floor(rand() * (text.length - size));
    writeFileSync(join(sub, `f${String(i).padStart(6, "0")}.txt`), text.subarray(at, at + size));
  }
  let bytes = census(dir).bytes;
  const cipher = createCipheriv("aes-128-ctr", Buffer.alloc(16, 7), Buffer.alloc(16, 0));
  const zeros = Buffer.alloc(MiB);
  mkdirSync(join(dir, "srv", "blobs"), { recursive: true });
  for (let i = 0; bytes < bigMiB * MiB; i++) {
    const fd = openSync(join(dir, "srv", "blobs", `blob${i}.bin`), "w");
    for (let done = 0; done < RANDOM_FILE; done += MiB) writeSync(fd, cipher.update(zeros));
    closeSync(fd);
    bytes += RANDOM_FILE;
  }
  fixCreatedTimes(dir, since);
  const c = census(dir);
  sh(`tar ${TAR_OPTIONS} --hard-dereference -cf - -C ${quote(dir)} . | gzip -1 -n > ${quote(gzPath)}`);
  rmSync(dir, { recursive: true, force: true });
  const s = { key, ...c };
  writeFileSync(join(work, "big.json"), JSON.stringify(s, null, 1));
  return { gzPath, ...s };
}

/** Runs convert_layer under /usr/bin/time; returns wall ms, its JSON report and peak RSS (KiB). */
function runConvert(blob, dest) {
  const rssFile = join(work, "rss.txt");
  const start = process.hrtime.bigint();
  const out = execFileSync("/usr/bin/time", ["-f", "%M", "-o", rssFile, convert, blob, dest], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] });
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  return { ms, report: JSON.parse(out), rssKiB: Number(readFileSync(rssFile, "utf8").trim().split("\n").pop()) };
}

/** Peak RSS (KiB) of a shell command, timed. */
function runMeasured(command) {
  const rssFile = join(work, "rss.txt");
  const ms = shellMs(`/usr/bin/time -f %M -o ${quote(rssFile)} bash -c ${quote(`set -euo pipefail; ${command}`)}`);
  return { ms, rssKiB: Number(readFileSync(rssFile, "utf8").trim().split("\n").pop()) };
}

const missing = missingTools();
if (missing.length > 0) {
  const message = `erofs-layer: SKIPPED, missing ${missing.join(", ")}`;
  if (process.env.CI === "true") throw new Error(message);
  console.log(message);
  process.exit(0);
}
if (process.getuid?.() !== 0) {
  console.log("erofs-layer: not root, so `tar -x` cannot keep owners; the two-step figures are then optimistic");
}

mkdirSync(work, { recursive: true });
const corpusStart = process.hrtime.bigint();
const { tree, versions } = buildTree();
const layer = buildLayer(tree);
const big = buildBigLayer(tree);
await layer.gzipped;
const corpusSeconds = Number(process.hrtime.bigint() - corpusStart) / 1e9;
if (corpusSeconds > 1) console.log(`erofs-layer: corpus built in ${fmt(corpusSeconds, 0)} s`);
const gzBytes = statSync(layer.gzPath).size;
const tarBytes = statSync(layer.tarPath).size;
console.log(`erofs-layer: corpus ${versions.length} Debian 12 packages, ${n(layer.files)} files (${fmt(layer.bytes / MB, 1)} MB), ` +
  `${n(layer.entries - layer.files)} directories and symlinks, tar ${fmt(tarBytes / MB, 1)} MB, gzip -6 ${fmt(gzBytes / MB, 1)} MB`);

const out = join(work, "out.erofs");
const out2 = join(work, "out2.erofs");
const extracted = join(work, "extracted");
// The two-step route again with the folder on tmpfs (when /dev/shm has room): a lower bound for
// it, with no disk filesystem work for the extraction.
const shm = "/dev/shm";
const extractedShm = existsSync(shm) && statfsSync(shm).bavail * statfsSync(shm).bsize > 3 * tarBytes ? join(shm, `ocicache-bench-${process.pid}`) : null;
if (extractedShm) process.on("exit", () => rmSync(extractedShm, { recursive: true, force: true }));
const clean = () => {
  rmSync(out, { force: true });
  rmSync(out2, { force: true });
  for (const dir of [extracted, extractedShm].filter(Boolean)) {
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir);
  }
  // Write back what the previous step left dirty, outside the timed region, so one route's
  // writeback does not land in another's time.
  sh("sync");
};
const routes = {
  floor: () => ({ ms: shellMs(`set -o pipefail; gzip -d < ${quote(layer.gzPath)} | sha256sum > /dev/null`) }),
  ocicache: () => runConvert(layer.gzPath, out),
  ocicachePlain: () => runConvert(layer.tarPath, out),
  twoStep: () => twoStep(extracted),
  ...(extractedShm ? { twoStepShm: () => twoStep(extractedShm) } : {}),
};
function twoStep(dir) {
  const extract = runMeasured(`tar --numeric-owner --xattrs --xattrs-include='*' -xpzf ${quote(layer.gzPath)} -C ${quote(dir)}`);
  const mkfs = runMeasured(`mkfs.erofs --quiet ${quote(out2)} ${quote(dir)}`);
  return { ms: extract.ms + mkfs.ms, extractMs: extract.ms, mkfsMs: mkfs.ms, rssKiB: mkfs.rssKiB };
}
sh(`cat ${quote(layer.gzPath)} ${quote(layer.tarPath)} > /dev/null`);
interleave(routes, 1, clean); // warm-up
const samples = interleave(routes, runs, clean);
const med = (k, field = "ms") => median(samples[k].map((s) => s[field]));
const last = samples.ocicache.at(-1).report;
if (last.tarSize !== tarBytes) throw new Error(`convert_layer read ${last.tarSize} tar bytes, want ${tarBytes}`);

// Image sizes: mkfs.erofs with default options (tail-packed) and with -E noinline_data over one
// extraction; check the ocicache image with fsck.erofs.
clean();
twoStep(extracted);
const mkfsBytes = statSync(out2).size;
const noinline = join(work, "out3.erofs");
sh(`mkfs.erofs --quiet -E noinline_data ${quote(noinline)} ${quote(extracted)}`);
const noinlineBytes = statSync(noinline).size;
rmSync(noinline);
runConvert(layer.gzPath, out);
sh(`fsck.erofs ${quote(out)} > /dev/null 2>&1`);
clean();

const s = (ms) => `${fmt(ms / 1e3)} s`;
const mbps = (bytes, ms) => (bytes / MB) / (ms / 1e3);
const [oc, two, floor, plain] = [med("ocicache"), med("twoStep"), med("floor"), med("ocicachePlain")];
console.log(`erofs-layer: convert_layer=${s(oc)}, two-step=${s(two)} (tar -xzf ${s(med("twoStep", "extractMs"))} + mkfs.erofs ` +
  `${s(med("twoStep", "mkfsMs"))}), ratio=${fmt(two / oc)}x two-step/ocicache (aim >= 1.5x), median of ${runs}`);
if (extractedShm) {
  const shmTwo = med("twoStepShm");
  console.log(`erofs-layer: two-step extracting onto tmpfs=${s(shmTwo)} (tar -xzf ${s(med("twoStepShm", "extractMs"))} + mkfs.erofs ` +
    `${s(med("twoStepShm", "mkfsMs"))}), ratio=${fmt(shmTwo / oc)}x two-step/ocicache, median of ${runs}`);
}
console.log(`erofs-layer: throughput (tar bytes/s) convert_layer=${fmt(mbps(tarBytes, oc), 1)} MB/s, floor (gzip -d | sha256sum)=` +
  `${fmt(mbps(tarBytes, floor), 1)} MB/s, ratio=${fmt(floor / oc)}x of floor; convert_layer on the plain tar=` +
  `${fmt(mbps(tarBytes, plain), 1)} MB/s (${s(plain)}), median of ${runs}`);
console.log(`erofs-layer: image size convert_layer=${fmt(last.erofsSize / MB, 1)} MB, mkfs.erofs (tail-packed)=${fmt(mkfsBytes / MB, 1)} MB, ` +
  `mkfs.erofs -E noinline_data=${fmt(noinlineBytes / MB, 1)} MB; block-aligned tails cost ` +
  `${fmt((last.erofsSize / mkfsBytes - 1) * 100, 1)}% over tail-packed, ${fmt((last.erofsSize / noinlineBytes - 1) * 100, 2)}% against noinline_data`);
console.log(`erofs-layer: peak RSS convert_layer=${fmt(med("ocicache", "rssKiB") / 1024, 1)} MiB, mkfs.erofs=${fmt(med("twoStep", "rssKiB") / 1024, 1)} MiB`);

// The big layer: the floor once and three conversions (median time, largest peak RSS from
// /usr/bin/time -v), page cache warm.
const BIG_RUNS = 3;
sh(`cat ${quote(big.gzPath)} > /dev/null`);
const bigFloor = shellMs(`set -o pipefail; gzip -d < ${quote(big.gzPath)} | sha256sum > /dev/null`);
const verbose = join(work, "time-v.txt");
const bigRuns = [];
for (let i = 0; i < BIG_RUNS; i++) {
  rmSync(out, { force: true });
  sh("sync");
  const start = process.hrtime.bigint();
  const stdout = execFileSync("/usr/bin/time", ["-v", "-o", verbose, convert, big.gzPath, out], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] });
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  const rssKiB = Number(/Maximum resident set size \(kbytes\): (\d+)/.exec(readFileSync(verbose, "utf8"))?.[1]);
  bigRuns.push({ ms, rssKiB, report: JSON.parse(stdout) });
}
rmSync(out, { force: true });
const bigReport = bigRuns[0].report;
const bigMs = median(bigRuns.map((r) => r.ms));
const bigRss = Math.max(...bigRuns.map((r) => r.rssKiB)) / 1024;
console.log(`erofs-layer: ${bigMiB} MiB layer: ${n(big.files)} files, ${n(big.entries - big.files)} directories and symlinks, ` +
  `tar ${fmt(bigReport.tarSize / MB, 1)} MB, gzip -1 ${fmt(bigReport.blobSize / MB, 1)} MB, image ${fmt(bigReport.erofsSize / MB, 1)} MB: ` +
  `convert_layer=${s(bigMs)} (${fmt(mbps(bigReport.tarSize, bigMs), 1)} MB/s, ${fmt(bigFloor / bigMs)}x of floor), ` +
  `peak RSS=${fmt(bigRss, 1)} MiB (aim < 200 MiB), median of ${BIG_RUNS}`);
if (bigReport.tarSize < bigMiB * MiB) throw new Error(`the big layer is only ${bigReport.tarSize} bytes uncompressed`);
