// Image pull (issue 12) from a docker-registry on 127.0.0.1 that this script starts, into an
// empty cache, until the boot disk is ready (`pull` then `bootDisk`), against, in the same run:
//   - the download floor: the same blobs (manifest, config, every layer) fetched in parallel by
//     `curl` and checked with `sha256sum`, nothing written;
//   - what a user would do otherwise: `skopeo copy docker://… oci:DIR`, `umoci unpack` and
//     `mkfs.erofs` of the unpacked root file system; and the same with `tar -xzf` of each layer
//     in place of umoci;
//   - (to explain the floor ratio) the download floor with each layer also decompressed and
//     its tar hashed, as any pull of a gzip layer must.
// Each pull runs in a child process, which reports its wall time and peak RSS (VmHWM). Then a
// pull whose layers are all cached (the same reference with policy `always`, and another
// manifest over the same layers), against one manifest and config round trip; and the peak RSS
// of pulling one layer of at least 1 GiB uncompressed.
//
//   node bench/pull.mjs [runs] [big-MiB]   (defaults: $PULL_RUNS or 3, $PULL_BIG_MIB or 1024)
//   node bench/pull.mjs --build [runs] [big-MiB]   (only build the cached image)
//   npm run bench:pull                      (builds the release addon and dist/ first)
//
// The image is built once and cached in bench/.work/pull/ (gitignored; delete it to rebuild):
// the Debian 12 packages below, fetched with `apt-get download`, unpacked with `dpkg-deb -x`
// into one tree per layer, packed with GNU tar (`--sort=name`) and `gzip -6` into an OCI image
// layout. Each run pushes it with `skopeo copy` to a new registry. Needs apt-get, dpkg-deb, GNU
// tar, gzip, docker-registry, skopeo, umoci, mkfs.erofs, curl and sha256sum, and root (umoci
// unpack keeps owners).
import { execFileSync, spawn } from "node:child_process";
import { createCipheriv, createHash } from "node:crypto";
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { count as n, fmt, interleave, median, quote, sh, shellMs, stamp } from "./common.mjs";

const here = new URL(".", import.meta.url).pathname;
const MB = 1e6;
const MiB = 1024 * 1024;

// A child process: one pull into ROOT, then bootDisk; prints {ms, hwmKiB} as JSON.
if (process.argv[2] === "--child") {
  const [root, reference] = process.argv.slice(3);
  const { ImageCache } = await import("../dist/index.mjs");
  const cache = ImageCache.open({ root });
  const hwm = () => Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync("/proc/self/status", "utf8"))?.[1]);
  if (reference === "--baseline") {
    // The addon loaded and a cache opened, nothing pulled: what a pull's RSS is measured against.
    await cache.list();
    console.log(JSON.stringify({ ms: 0, hwmKiB: hwm() }));
  } else {
    const start = process.hrtime.bigint();
    const at = () => Number(process.hrtime.bigint() - start) / 1e6;
    // When the manifest and config were resolved, the last layer converted and the image
    // stitched (events arrive on this thread a moment after they happen).
    const phases = {};
    const onProgress = (e) => {
      if (e.kind === "resolved" || e.kind === "stitched") phases[e.kind] = at();
      if (e.kind === "layer-converted") phases.converted = at();
    };
    const cpu = process.cpuUsage();
    await cache.pull(reference, { insecure: true, onProgress });
    const disk = await cache.bootDisk(reference);
    const ms = at();
    // User and system CPU of every thread of the process.
    const used = process.cpuUsage(cpu);
    if (!existsSync(disk.vmdk)) throw new Error(`no boot disk at ${disk.vmdk}`);
    console.log(JSON.stringify({ ms, cpuMs: (used.user + used.system) / 1e3, hwmKiB: hwm(), layers: disk.layers.length, ...phases }));
  }
  process.exit(0);
}

// `--build`: only build (or check) the cached image.
const buildOnly = process.argv[2] === "--build";
const args = buildOnly ? process.argv.slice(3) : process.argv.slice(2);
const runs = Number(args[0] ?? process.env.PULL_RUNS ?? 3);
const bigMiB = Number(args[1] ?? process.env.PULL_BIG_MIB ?? 1024);
const work = join(here, ".work", "pull");

// The layers of the image, bottom to top: the packages whose files each holds. About 470 MB of
// files: a C library, shells and core utilities, locales and time zones (many small files),
// GCC and binutils, the C++ library headers, LLVM (one 100 MB file), Perl and Python modules,
// the vim runtime and the ICU data.
const LAYERS = [
  ["libc6", "coreutils", "bash", "dash", "perl-base", "libssl3", "tzdata", "locales"],
  ["gcc-12", "cpp-12", "binutils-x86-64-linux-gnu", "libgcc-12-dev"],
  ["g++-12", "libstdc++-12-dev"],
  ["libllvm15"],
  ["libperl5.36", "perl-modules-5.36", "libpython3.11-stdlib", "python3.11-minimal"],
  ["vim-runtime", "libicu72"],
];
// Folders that dpkg-deb or this script create would carry the time of the build; they get this
// one (2025-01-01) instead, so that the image comes out byte for byte the same on every build
// of the same package versions.
const CREATED_MTIME = 1735689600;
// The 1 GiB layer: two copies of every layer's tree and 64 MiB files of AES-CTR output
// (incompressible, deterministic) until the file contents reach big-MiB.
const RANDOM_FILE = 64 * MiB;
// Bump when the recipe changes, so that a cached image is rebuilt.
const RECIPE = 1;
const TAR_OPTIONS = "--sort=name --numeric-owner --xattrs --pax-option=delete=atime,delete=ctime";
const REPOSITORY = "bench/pull";

const MEDIA = {
  manifest: "application/vnd.oci.image.manifest.v1+json",
  config: "application/vnd.oci.image.config.v1+json",
  layer: "application/vnd.oci.image.layer.v1.tar+gzip",
};

function missingTools() {
  const tools = ["apt-get", "dpkg-deb", "tar", "gzip", "sha256sum", "docker-registry", "skopeo", "umoci", "mkfs.erofs", "curl"];
  const missing = tools.filter((t) => sh(`command -v ${t} || true`).trim() === "");
  if (!buildOnly && !existsSync(join(here, "..", "dist", "index.mjs"))) missing.push("dist/index.mjs (npm run build:ts)");
  return missing;
}

const sha256File = (path) => `sha256:${sh(`sha256sum ${quote(path)}`).split(" ")[0]}`;
const sha256 = (bytes) => `sha256:${createHash("sha256").update(bytes).digest("hex")}`;

/** Gives everything under `dir` modified since `since` (seconds) the fixed CREATED_MTIME. */
function fixCreatedTimes(dir, since) {
  sh(`find ${quote(dir)} -newermt @${since} -exec touch -h -d @${CREATED_MTIME} {} +`);
}

/** File count and content bytes of a folder. */
function census(dir) {
  const [files, bytes] = sh(`find ${quote(dir)} -type f -printf '%s\\n' | awk '{ f++; b += $1 } END { print f, b }'`).trim().split(" ").map(Number);
  return { files, bytes };
}

/** Moves `file` into the layout's blobs as what it hashes to; returns its descriptor. */
function addBlob(layout, file, mediaType) {
  const digest = sha256File(file);
  const size = statSync(file).size;
  sh(`mv ${quote(file)} ${quote(join(layout, "blobs", "sha256", digest.slice(7)))}`);
  return { mediaType, digest, size };
}

function addJson(layout, value, mediaType) {
  const bytes = Buffer.from(JSON.stringify(value));
  const digest = sha256(bytes);
  writeFileSync(join(layout, "blobs", "sha256", digest.slice(7)), bytes);
  return { mediaType, digest, size: bytes.length };
}

/** Packs `dir` as a layer (tar, then gzip -`level`) into the layout: its descriptor and diff_id. */
function addLayer(layout, dir, level, extra = "") {
  const tar = join(layout, "layer.tar");
  sh(`tar ${TAR_OPTIONS} ${extra} -cf ${quote(tar)} -C ${quote(dir)} .`);
  const diffId = sha256File(tar);
  const tarBytes = statSync(tar).size;
  sh(`gzip -${level} -n ${quote(tar)}`);
  return { descriptor: addBlob(layout, `${tar}.gz`, MEDIA.layer), diffId, tarBytes };
}

/** A manifest (with its config) over `layers`, tagged `tag` in the index. */
function addImage(layout, layers, cmd) {
  const config = addJson(layout, {
    created: new Date(CREATED_MTIME * 1000).toISOString(),
    architecture: "amd64",
    os: "linux",
    config: { Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], Cmd: cmd },
    rootfs: { type: "layers", diff_ids: layers.map((l) => l.diffId) },
  }, MEDIA.config);
  return addJson(layout, { schemaVersion: 2, mediaType: MEDIA.manifest, config, layers: layers.map((l) => l.descriptor) }, MEDIA.manifest);
}

function buildImage() {
  const layout = join(work, "layout");
  const key = { RECIPE, LAYERS, bigMiB };
  const done = stamp(join(work, "image.json"), key);
  if (done && existsSync(layout)) return { layout, ...done };
  rmSync(layout, { recursive: true, force: true });
  mkdirSync(join(layout, "blobs", "sha256"), { recursive: true });
  const debs = join(work, "debs");
  const packages = LAYERS.flat();
  const debOf = (pkg) => readdirSync(debs).find((f) => f.startsWith(`${pkg}_`) && f.endsWith(".deb"));
  mkdirSync(debs, { recursive: true });
  if (packages.some((p) => debOf(p) === undefined)) {
    console.log(`pull: fetching ${packages.length} Debian packages (once, cached in bench/.work/pull)`);
    // APT::Sandbox::User=root: the download folder need not be writable by _apt.
    execFileSync("apt-get", ["-qq", "-o", "APT::Sandbox::User=root", "download", ...packages], { cwd: debs, stdio: ["ignore", "ignore", "inherit"] });
  }
  console.log("pull: building the image (once)");
  const trees = join(work, "trees");
  rmSync(trees, { recursive: true, force: true });
  const since = Math.floor(Date.now() / 1000) - 1;
  const layers = [];
  const stats = [];
  for (const [i, group] of LAYERS.entries()) {
    const tree = join(trees, String(i));
    mkdirSync(tree, { recursive: true });
    for (const pkg of group) execFileSync("dpkg-deb", ["-x", join(debs, debOf(pkg)), tree]);
    fixCreatedTimes(tree, since);
    stats.push(census(tree));
    layers.push(addLayer(layout, tree, 6));
  }
  const main = addImage(layout, layers, ["/bin/bash"]);
  const other = addImage(layout, layers, ["/bin/sh", "-c", "exec /bin/bash"]);

  // The big layer: hardlinked copies of the trees (tar --hard-dereference stores each as a
  // full file) and incompressible files.
  const big = join(work, "big");
  rmSync(big, { recursive: true, force: true });
  for (const copy of ["a", "b"]) {
    mkdirSync(join(big, "opt", copy), { recursive: true });
    for (const i of LAYERS.keys()) sh(`cp -al ${quote(join(trees, String(i)))} ${quote(join(big, "opt", copy, String(i)))}`);
  }
  let bytes = census(big).bytes;
  const cipher = createCipheriv("aes-128-ctr", Buffer.alloc(16, 7), Buffer.alloc(16, 0));
  const zeros = Buffer.alloc(MiB);
  mkdirSync(join(big, "srv", "blobs"), { recursive: true });
  for (let i = 0; bytes < bigMiB * MiB; i++) {
    const fd = openSync(join(big, "srv", "blobs", `blob${i}.bin`), "w");
    for (let d = 0; d < RANDOM_FILE; d += MiB) writeSync(fd, cipher.update(zeros));
    closeSync(fd);
    bytes += RANDOM_FILE;
  }
  fixCreatedTimes(big, since);
  const bigLayer = addLayer(layout, big, 1, "--hard-dereference");
  const bigImage = addImage(layout, [bigLayer], ["/bin/bash"]);
  rmSync(big, { recursive: true, force: true });
  rmSync(trees, { recursive: true, force: true });

  const tagged = (d, tag) => ({ ...d, annotations: { "org.opencontainers.image.ref.name": tag } });
  writeFileSync(join(layout, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  writeFileSync(join(layout, "index.json"), JSON.stringify({
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.index.v1+json",
    manifests: [tagged(main, "1"), tagged(other, "other"), tagged(bigImage, "big")],
  }));
  const s = {
    key,
    versions: readdirSync(debs).filter((f) => f.endsWith(".deb")).sort(),
    files: stats.reduce((a, b) => a + b.files, 0),
    bytes: stats.reduce((a, b) => a + b.bytes, 0),
    tarBytes: layers.reduce((a, l) => a + l.tarBytes, 0),
    blobBytes: layers.reduce((a, l) => a + l.descriptor.size, 0),
    layers: layers.map((l, i) => ({ ...l.descriptor, diffId: l.diffId, tarBytes: l.tarBytes, files: stats[i].files })),
    bigTarBytes: bigLayer.tarBytes,
    bigBlobBytes: bigLayer.descriptor.size,
  };
  writeFileSync(join(work, "image.json"), JSON.stringify(s, null, 1));
  return { layout, ...s };
}

/** Starts docker-registry on 127.0.0.1 (it picks the port; its log names it). */
async function startRegistry(dir) {
  const config = join(dir, "config.yml");
  writeFileSync(config, "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: /unused\nhttp:\n  addr: 127.0.0.1:0\n");
  const logFile = join(dir, "registry.log");
  const log = openSync(logFile, "w");
  const child = spawn("docker-registry", ["serve", config], {
    env: { ...process.env, REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: join(dir, "data"), REGISTRY_HTTP_SECRET: "bench" },
    stdio: ["ignore", log, log],
  });
  closeSync(log);
  let exited = null;
  child.on("exit", (code) => (exited = code));
  for (let i = 0; i < 400; i++) {
    const host = /listening on (127\.0\.0\.1:\d+)/.exec(readFileSync(logFile, "utf8"))?.[1];
    if (host) return { host, child };
    if (exited !== null) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  child.kill();
  throw new Error(`docker-registry did not start:\n${readFileSync(logFile, "utf8")}`);
}

/** Runs the child pull under a fresh root; returns its {ms, hwmKiB}. */
function childPull(root, reference) {
  const out = execFileSync(process.execPath, [join(here, "pull.mjs"), "--child", root, reference], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] });
  return JSON.parse(out.trim().split("\n").pop());
}

const missing = missingTools();
if (missing.length > 0) {
  const message = `pull: SKIPPED, missing ${missing.join(", ")}`;
  if (process.env.CI === "true") throw new Error(message);
  console.log(message);
  process.exit(0);
}
if (process.getuid?.() !== 0) {
  console.log("pull: SKIPPED, needs root (umoci unpack keeps owners)");
  process.exit(0);
}

mkdirSync(work, { recursive: true });
const image = buildImage();
if (buildOnly) process.exit(0);
const scratch = mkdtempSync(join(tmpdir(), "ocicache-bench-pull-"));
const { host, child: registry } = await startRegistry(scratch);
const cleanup = () => {
  registry.kill();
  rmSync(scratch, { recursive: true, force: true });
};
process.on("exit", cleanup);
try {
  for (const tag of ["1", "other", "big"]) {
    sh(`skopeo copy --quiet --dest-tls-verify=false --preserve-digests oci:${quote(image.layout)}:${tag} docker://${host}/${REPOSITORY}:${tag}`);
  }
  const reference = `${host}/${REPOSITORY}:1`;
  const index = JSON.parse(readFileSync(join(image.layout, "index.json"), "utf8"));
  const manifestDesc = index.manifests[0];
  const manifest = JSON.parse(readFileSync(join(image.layout, "blobs", "sha256", manifestDesc.digest.slice(7)), "utf8"));
  const base = `http://${host}/v2/${REPOSITORY}`;

  // The floor: every blob of the image at once, each through sha256sum, compared.
  const fetches = [
    [`${base}/manifests/${manifestDesc.digest}`, manifestDesc.digest],
    [`${base}/blobs/${manifest.config.digest}`, manifest.config.digest],
    ...manifest.layers.map((l) => [`${base}/blobs/${l.digest}`, l.digest]),
  ];
  const waitAll = `\nfor j in $(jobs -p); do wait "$j" || exit 1; done`;
  const floorScript = fetches
    .map(([url, digest]) => `( test "$(curl -sf -H 'Accept: ${MEDIA.manifest}' ${quote(url)} | sha256sum | cut -d' ' -f1)" = ${digest.slice(7)} ) &`)
    .join("\n") + waitAll;
  // Not an aim, an explanation: the download floor plus what any pull must also do with a gzip
  // layer, decompress it and hash the tar (its diff_id), still writing nothing.
  const diffIds = new Map(image.layers.map((l) => [l.digest, l.diffId]));
  const gunzipScript = fetches
    .map(([url, digest]) => diffIds.has(digest)
      ? `( curl -sf ${quote(url)} | tee >(sha256sum > /dev/null) | gzip -d | sha256sum | ` +
        `cut -d' ' -f1 | grep -qx ${diffIds.get(digest).slice(7)} ) &`
      : `( curl -sf -H 'Accept: ${MEDIA.manifest}' ${quote(url)} | sha256sum > /dev/null ) &`)
    .join("\n") + waitAll;

  const roots = join(scratch, "roots");
  const ociDir = join(scratch, "oci");
  const bundle = join(scratch, "bundle");
  const erofs = join(scratch, "rootfs.erofs");
  let round = 0;
  const clean = () => {
    for (const p of [roots, ociDir, bundle, erofs]) rmSync(p, { recursive: true, force: true });
    mkdirSync(roots);
    // Write back what the previous route left dirty, outside the timed region.
    sh("sync");
  };
  const routes = {
    pull: () => childPull(join(roots, `r${round++}`), reference),
    floor: () => ({ ms: shellMs(floorScript) }),
    gunzip: () => ({ ms: shellMs(gunzipScript) }),
    skopeo: () => {
      const copy = shellMs(`skopeo copy --quiet --src-tls-verify=false docker://${reference} oci:${quote(ociDir)}:1`);
      const unpack = shellMs(`umoci unpack --image ${quote(ociDir)}:1 ${quote(bundle)} > /dev/null`);
      const mkfs = shellMs(`mkfs.erofs --quiet ${quote(erofs)} ${quote(join(bundle, "rootfs"))}`);
      return { ms: copy + unpack + mkfs, copy, unpack, mkfs };
    },
    // The same with umoci replaced by GNU tar: each layer blob of the copied layout extracted in
    // order into one folder (the image has no whiteouts), as root, owners and xattrs kept.
    tar: () => {
      const copy = shellMs(`skopeo copy --quiet --src-tls-verify=false docker://${reference} oci:${quote(ociDir)}:1`);
      const blobs = manifest.layers.map((l) => quote(join(ociDir, "blobs", "sha256", l.digest.slice(7))));
      const rootfs = quote(join(bundle, "rootfs"));
      const extract = shellMs(`mkdir -p ${rootfs} && for b in ${blobs.join(" ")}; do ` +
        `tar --numeric-owner --xattrs --xattrs-include='*' -xpzf "$b" -C ${rootfs}; done`);
      const mkfs = shellMs(`mkfs.erofs --quiet ${quote(erofs)} ${rootfs}`);
      return { ms: copy + extract + mkfs, copy, extract, mkfs };
    },
  };
  interleave(routes, 1, clean); // warm-up: the registry's blobs in the page cache
  const samples = interleave(routes, runs, clean);
  clean();
  const med = (k, field = "ms") => median(samples[k].map((s) => s[field]));
  const [pull, floor, skopeo] = [med("pull"), med("floor"), med("skopeo")];
  const s = (ms) => `${fmt(ms / 1e3)} s`;
  const load = readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");
  console.log(`pull: image ${image.layers.length} layers, ${image.versions.length} Debian 12 packages, ${n(image.files)} files ` +
    `(${fmt(image.bytes / MB, 1)} MB), tar ${fmt(image.tarBytes / MB, 1)} MB, gzip -6 blobs ${fmt(image.blobBytes / MB, 1)} MB; ` +
    `median of ${runs}, load average ${load}`);
  console.log(`pull: Image.pull + bootDisk=${s(pull)}, download floor (parallel curl | sha256sum)=${s(floor)}, ` +
    `ratio=${fmt(pull / floor)}x of floor (aim <= 1.3x); the pull used ${s(med("pull", "cpuMs"))} of CPU ` +
    `(${fmt(med("pull", "cpuMs") / pull)} cores busy on average)`);
  console.log(`pull: the floor with each layer also decompressed and its tar hashed (gzip -d | sha256sum, in parallel)=` +
    `${s(med("gunzip"))}, ratio=${fmt(pull / med("gunzip"))}x of it`);
  console.log(`pull: skopeo copy + umoci unpack + mkfs.erofs=${s(skopeo)} (${s(med("skopeo", "copy"))} + ${s(med("skopeo", "unpack"))} + ` +
    `${s(med("skopeo", "mkfs"))}), ratio=${fmt(skopeo / pull)}x skopeo route/pull (aim >= 3x)`);
  console.log(`pull: where the pull's time goes: manifest and config resolved at ${s(med("pull", "resolved"))}, last layer ` +
    `converted at ${s(med("pull", "converted"))}, stitched (fsmeta, VMDK) at ${s(med("pull", "stitched"))}, committed and the ` +
    `boot disk returned at ${s(pull)}`);
  const tar = med("tar");
  console.log(`pull: skopeo copy + tar -xzf of each layer + mkfs.erofs=${s(tar)} (${s(med("tar", "copy"))} + ${s(med("tar", "extract"))} + ` +
    `${s(med("tar", "mkfs"))}), ratio=${fmt(tar / pull)}x of pull`);
  const baseline = childPull(join(roots, "baseline"), "--baseline").hwmKiB;
  console.log(`pull: peak RSS of the pulling process=${fmt(med("pull", "hwmKiB") / 1024, 1)} MiB ` +
    `(node with the addon loaded and a cache opened: ${fmt(baseline / 1024, 1)} MiB)`);

  // Everything cached: the same reference re-resolved (policy always), and another manifest
  // over the same layers (a new config, fsmeta and VMDK); against a manifest and config round
  // trip from this process (fetch, keep-alive).
  const { ImageCache } = await import("../dist/index.mjs");
  const cachedRoot = join(scratch, "cached");
  const cache = ImageCache.open({ root: cachedRoot });
  await cache.pull(reference, { insecure: true });
  const otherRef = `${host}/${REPOSITORY}:other`;
  const timed = async (fn) => {
    const start = process.hrtime.bigint();
    await fn();
    return Number(process.hrtime.bigint() - start) / 1e6;
  };
  const roundTrip = async () => {
    const m = await fetch(`${base}/manifests/1`, { headers: { Accept: MEDIA.manifest } });
    const body = await m.json();
    await (await fetch(`${base}/blobs/${body.config.digest}`)).arrayBuffer();
  };
  const CACHED_RUNS = 21;
  const cached = { again: [], other: [], ifMissing: [], trip: [] };
  await roundTrip();
  await cache.pull(reference, { insecure: true, policy: "always" });
  for (let i = 0; i < CACHED_RUNS; i++) {
    cached.trip.push(await timed(roundTrip));
    cached.again.push(await timed(() => cache.pull(reference, { insecure: true, policy: "always" })));
    cached.ifMissing.push(await timed(() => cache.pull(reference, { insecure: true })));
    cached.other.push(await timed(() => cache.pull(otherRef, { insecure: true })));
    await cache.remove(otherRef);
  }
  const [again, other, ifMissing, trip] = ["again", "other", "ifMissing", "trip"].map((k) => median(cached[k]));
  console.log(`pull: every layer cached: policy always=${fmt(again, 1)} ms, another manifest over the cached layers=${fmt(other, 1)} ms, ` +
    `manifest + config round trip=${fmt(trip, 1)} ms, so ${fmt(again - trip, 1)} and ${fmt(other - trip, 1)} ms beyond it (aim < 50 ms); ` +
    `policy if-missing (no request)=${fmt(ifMissing, 2)} ms; median of ${CACHED_RUNS}`);

  // One layer of at least big-MiB uncompressed: peak RSS and time, median of three.
  const bigRuns = [];
  for (let i = 0; i < 3; i++) {
    clean();
    bigRuns.push(childPull(join(roots, `big${i}`), `${host}/${REPOSITORY}:big`));
  }
  clean();
  const bigMs = median(bigRuns.map((r) => r.ms));
  const bigHwm = Math.max(...bigRuns.map((r) => r.hwmKiB)) / 1024;
  console.log(`pull: one layer of ${fmt(image.bigTarBytes / MiB, 0)} MiB (gzip -1 blob ${fmt(image.bigBlobBytes / MB, 1)} MB): ` +
    `pull + bootDisk=${s(bigMs)} (${fmt(image.bigTarBytes / MB / (bigMs / 1e3), 1)} MB/s of tar), peak RSS=${fmt(bigHwm, 1)} MiB ` +
    `(${fmt(bigHwm - baseline / 1024, 1)} MiB over the baseline), largest of 3`);
} finally {
  cleanup();
}
