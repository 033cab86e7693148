// fsmeta + VMDK build (issue 4): rebuilding a realistic six-layer image's fsmeta and VMDK
// descriptor from its layer images (`Cache::boot_disk` after deleting them, via
// crates/core/examples/boot_disk.rs), against the full-copy route a user would otherwise take to
// get one bootable EROFS of the image, measured in the same run:
//   - umoci: `umoci unpack` of the image's OCI layout (applies whiteouts, keeps owners as root),
//     then `mkfs.erofs IMAGE ROOTFS`;
//   - tar: for each layer bottom to top, apply its whiteouts with `rm -rf` and extract it with
//     `tar -xpzf --exclude='.wh.*'` into one folder, then `mkfs.erofs IMAGE FOLDER`.
// Both folders are on the same disk as the cache. Reported: time and bytes written.
//
//   node bench/fsmeta.mjs [runs]     (default $FSMETA_RUNS or 5)
//   npm run bench:fsmeta             (builds the examples first)
//
// The image is built once and cached in bench/.work/fsmeta/ (gitignored; delete it to rebuild):
// 16 Debian 12 packages (`apt-get download`, `dpkg-deb -x`) split over five layers (base
// system, perl, python, toolchain, docs), plus an application layer on top with whiteouts of a
// lower folder and files, an opaque folder, replaced files, hardlinks and symlinks. Each layer
// is a GNU tar (`--sort=name`) added with `umoci raw add-layer` (gzip) to an OCI layout, which
// is loaded into a cache with crates/core/examples/load.rs. Needs apt-get, dpkg-deb, GNU tar,
// umoci, mkfs.erofs and fsck.erofs.
import { execFileSync } from "node:child_process";
import { existsSync, linkSync, lstatSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync, copyFileSync } from "node:fs";
import { join } from "node:path";
import { count as n, fmt, interleave, median, quote, sh, stamp } from "./common.mjs";

const runs = Number(process.argv[2] ?? process.env.FSMETA_RUNS ?? 5);
const here = new URL(".", import.meta.url).pathname;
const root = join(here, "..");
const work = join(here, ".work", "fsmeta");
const examples = join(process.env.CARGO_TARGET_DIR ?? join(root, "target"), "release", "examples");
const REFERENCE = "bench/fsmeta:1";

// Layers bottom to top; the last one (the application) is made by appLayer().
const LAYERS = [
  ["base", ["coreutils", "tzdata", "locales", "libicu72"]],
  ["perl", ["perl-modules-5.36", "libperl5.36"]],
  ["python", ["python3.11-minimal", "libpython3.11-stdlib", "libpython3.11-testsuite"]],
  ["toolchain", ["gcc-12", "cpp-12", "binutils-x86-64-linux-gnu", "libgcc-12-dev", "libstdc++-12-dev"]],
  ["docs", ["vim-runtime", "manpages-dev"]],
];
// Bump when the recipe changes, so that cached corpora are rebuilt.
const RECIPE = 1;

const MB = 1e6;
const timed = (fn) => {
  const start = process.hrtime.bigint();
  const out = fn();
  return { ms: Number(process.hrtime.bigint() - start) / 1e6, out };
};

function missingTools() {
  const tools = ["apt-get", "dpkg-deb", "tar", "gzip", "umoci", "mkfs.erofs", "fsck.erofs"];
  const missing = tools.filter((t) => sh(`command -v ${t} || true`).trim() === "");
  for (const ex of ["boot_disk", "load"]) {
    if (!existsSync(join(examples, ex))) missing.push(`${join(examples, ex)} (cargo build --release -p ocicache-core --example ${ex})`);
  }
  return missing;
}

/** The application layer: files, whiteouts of lower content, an opaque folder, links. */
function appLayer(dir, lower) {
  const put = (rel, body) => {
    mkdirSync(join(dir, rel, ".."), { recursive: true });
    writeFileSync(join(dir, rel), body);
  };
  // Slim the image: drop the python test suite (a folder of 1,287 entries) and some locales.
  put("usr/lib/python3.11/.wh.test", "");
  const locales = readdirSync(join(lower, "base", "usr/share/i18n/locales")).sort().slice(2, 42);
  for (const l of locales) put(`usr/share/i18n/locales/.wh.${l}`, "");
  // Replace the vim documentation with one file (opaque folder).
  put("usr/share/vim/vim90/doc/.wh..wh..opq", "");
  put("usr/share/vim/vim90/doc/README.txt", "documentation removed from this image\n");
  // Replaced files.
  put("usr/share/zoneinfo/UTC", readFileSync(join(lower, "base", "usr/share/zoneinfo/Etc/UTC")));
  put("etc/locale.alias", "# site aliases\nC.UTF-8 C.UTF-8\n");
  // The application: a binary with a hardlink, python sources, a symlink on the PATH.
  put("opt/app/bin/server", readFileSync(join(lower, "toolchain", "usr/bin/x86_64-linux-gnu-ld.bfd")));
  linkSync(join(dir, "opt/app/bin/server"), join(dir, "opt/app/bin/server-debug"));
  const py = join(lower, "python", "usr/lib/python3.11");
  for (const f of readdirSync(py).filter((f) => f.endsWith(".py") && lstatSync(join(py, f)).isFile()).sort()) {
    mkdirSync(join(dir, "opt/app/lib"), { recursive: true });
    copyFileSync(join(py, f), join(dir, "opt/app/lib", f));
  }
  mkdirSync(join(dir, "usr/local/bin"), { recursive: true });
  symlinkSync("/opt/app/bin/server", join(dir, "usr/local/bin/server"));
  put("etc/app/config.json", JSON.stringify({ listen: ":8080", workers: 4 }) + "\n");
}

function buildImage() {
  const key = { RECIPE, LAYERS };
  const cache = join(work, "cache");
  const layout = join(work, "layout");
  const done = stamp(join(work, "image.json"), key);
  if (done && existsSync(join(cache, "index.db")) && existsSync(join(layout, "index.json"))) return { cache, layout, ...done };
  for (const d of ["debs", "trees", "tars", "cache", "layout"]) rmSync(join(work, d), { recursive: true, force: true });
  const debs = join(work, "debs");
  mkdirSync(debs, { recursive: true });
  const packages = LAYERS.flatMap(([, p]) => p);
  console.log(`fsmeta: fetching ${packages.length} Debian packages (once, cached in bench/.work/fsmeta)`);
  execFileSync("apt-get", ["-qq", "-o", "APT::Sandbox::User=root", "download", ...packages], { cwd: debs, stdio: ["ignore", "ignore", "inherit"] });
  const files = readdirSync(debs).filter((f) => f.endsWith(".deb"));
  const trees = join(work, "trees");
  const tars = join(work, "tars");
  mkdirSync(tars, { recursive: true });
  for (const [name, pkgs] of LAYERS) {
    const dir = join(trees, name);
    mkdirSync(dir, { recursive: true });
    for (const p of pkgs) {
      const deb = files.find((f) => f.startsWith(`${p}_`));
      if (!deb) throw new Error(`apt-get download gave no ${p}`);
      execFileSync("dpkg-deb", ["-x", join(debs, deb), dir]);
    }
  }
  const app = join(trees, "app");
  mkdirSync(app);
  appLayer(app, trees);
  sh(`umoci init --layout ${quote(layout)} && umoci new --image ${quote(layout)}:bench`);
  const census = [];
  for (const name of [...LAYERS.map(([l]) => l), "app"]) {
    const t = join(tars, `${name}.tar`);
    sh(`tar --sort=name --numeric-owner --xattrs -cf ${quote(t)} -C ${quote(join(trees, name))} .`);
    sh(`umoci raw add-layer --image ${quote(layout)}:bench ${quote(t)}`);
    const [entries, bytes] = sh(`find ${quote(join(trees, name))} -mindepth 1 -printf '%y %s\\n' | awk '{ e++; if ($1 == "f") b += $2 } END { print e, b }'`).trim().split(" ").map(Number);
    census.push({ name, entries, bytes, tar: statSync(t).size });
  }
  rmSync(tars, { recursive: true, force: true });
  rmSync(trees, { recursive: true, force: true });
  execFileSync(join(examples, "load"), [cache, layout], { env: { ...process.env, TAG: REFERENCE }, stdio: ["ignore", "ignore", "inherit"] });
  const s = { key, versions: files.sort(), census };
  writeFileSync(join(work, "image.json"), JSON.stringify(s, null, 1));
  return { cache, layout, ...s };
}

/** Layer blobs of the layout's image, bottom to top. */
function layoutLayers(layout) {
  const blob = (d) => join(layout, "blobs", ...d.split(":"));
  const index = JSON.parse(readFileSync(join(layout, "index.json"), "utf8"));
  const manifest = JSON.parse(readFileSync(blob(index.manifests[0].digest), "utf8"));
  return manifest.layers.map((l) => blob(l.digest));
}

const missing = missingTools();
if (missing.length > 0) {
  const message = `fsmeta: SKIPPED, missing ${missing.join(", ")}`;
  if (process.env.CI === "true") throw new Error(message);
  console.log(message);
  process.exit(0);
}
if (process.getuid?.() !== 0) console.log("fsmeta: not root, so unpacking cannot keep owners; the full-copy figures are then optimistic");

mkdirSync(work, { recursive: true });
const image = buildImage();
const blobs = layoutLayers(image.layout);
const bundle = join(work, "bundle");
const folder = join(work, "rootfs");
const out = join(work, "full.erofs");

const clean = () => {
  for (const p of [bundle, folder, out]) rmSync(p, { recursive: true, force: true });
  sh("sync");
};
const mkfs = (dir) => timed(() => sh(`mkfs.erofs --quiet ${quote(out)} ${quote(dir)}`)).ms;
const routes = {
  ocicache: () => {
    const { ms, out: stdout } = timed(() => execFileSync(join(examples, "boot_disk"), [image.cache, REFERENCE, "--rebuild"], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] }));
    const r = JSON.parse(stdout);
    return { ms, inProcessMs: r.seconds * 1e3, report: r };
  },
  umoci: () => {
    const unpack = timed(() => sh(`umoci unpack --image ${quote(image.layout)}:bench ${quote(bundle)} > /dev/null`)).ms;
    const m = mkfs(join(bundle, "rootfs"));
    const rootfs = quote(join(bundle, "rootfs"));
    return {
      ms: unpack + m, unpackMs: unpack, mkfsMs: m, bytes: statSync(out).size,
      // Outside the timed region: the merged tree's size, for the report.
      unpackedEntries: Number(sh(`find ${rootfs} -mindepth 1 | wc -l`).trim()),
      unpackedBytes: Number(sh(`du -sb ${rootfs} | cut -f1`).trim()),
    };
  },
  tar: () => {
    mkdirSync(folder);
    const script = blobs.map((b) => `apply ${quote(b)}`).join("\n");
    const unpack = timed(() => sh(`
      apply() {
        tar -tzf "$1" | { grep -E '(^|/)\\.wh\\.' || true; } | while IFS= read -r w; do
          d=$(dirname "$w"); b=$(basename "$w")
          if [ "$b" = .wh..wh..opq ]; then find ${quote(folder)}/"$d" -mindepth 1 -maxdepth 1 -exec rm -rf {} +
          else rm -rf ${quote(folder)}/"$d/\${b#.wh.}"; fi
        done
        tar --numeric-owner --xattrs --xattrs-include='*' --exclude='.wh.*' -xpzf "$1" -C ${quote(folder)}
      }
      ${script}`)).ms;
    const m = mkfs(folder);
    return { ms: unpack + m, unpackMs: unpack, mkfsMs: m, bytes: statSync(out).size };
  },
};

sh(`cat ${blobs.map(quote).join(" ")} > /dev/null`);
clean();
routes.ocicache(); // warm-up (the full-copy routes read the blobs just cached)
const samples = interleave(routes, runs, clean);
const med = (k, field = "ms") => median(samples[k].map((s) => s[field]));

// Check the rebuilt fsmeta with fsck.erofs over its layer images, and count entries on both
// sides (the merged trees must agree).
const last = samples.ocicache.at(-1).report;
const devices = last.layerPaths.map((p) => `--device=${quote(p)}`).join(" ");
sh(`fsck.erofs ${devices} ${quote(last.fsmeta)} > /dev/null`);
const { unpackedEntries, unpackedBytes } = samples.umoci[0];
clean();

const s = (ms) => (ms >= 1000 ? `${fmt(ms / 1e3)} s` : `${fmt(ms, 1)} ms`);
const layers = image.census.map((c) => `${c.name} ${n(c.entries)} entries/${fmt(c.tar / MB, 1)} MB`).join(", ");
console.log(`fsmeta: image of ${image.census.length} layers (${layers}); layer images ${fmt(last.layerBytes / MB, 1)} MB; ` +
  `merged tree ${n(unpackedEntries)} entries, ${fmt(unpackedBytes / MB, 1)} MB unpacked`);
const call = med("ocicache", "inProcessMs");
const proc = med("ocicache");
const best = Math.min(med("umoci"), med("tar"));
console.log(`fsmeta: fsmeta+VMDK rebuild: boot_disk call=${s(call)}, whole process=${s(proc)}; ` +
  `full copy: umoci unpack + mkfs.erofs=${s(med("umoci"))} (${s(med("umoci", "unpackMs"))} + ${s(med("umoci", "mkfsMs"))}), ` +
  `tar -x + whiteouts + mkfs.erofs=${s(med("tar"))} (${s(med("tar", "unpackMs"))} + ${s(med("tar", "mkfsMs"))}); ` +
  `ratio against the faster full copy=${fmt(best / call, 1)}x (whole process ${fmt(best / proc, 1)}x; aim >= 10x), median of ${runs}`);
const ours = last.fsmetaSize + last.vmdkSize;
const theirs = med("umoci", "bytes");
console.log(`fsmeta: bytes written fsmeta=${n(last.fsmetaSize)} + VMDK=${n(last.vmdkSize)} = ${fmt(ours / MB, 2)} MB; ` +
  `full copy mkfs.erofs image=${fmt(theirs / MB, 1)} MB (plus ${fmt(unpackedBytes / MB, 1)} MB unpacked on the way); ` +
  `ratio=${fmt((ours / theirs) * 100, 2)}% of the image (aim < 5%)`);
