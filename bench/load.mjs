// Image.load in three situations, each against a floor measured in the same run:
//
// - new: a `docker save` archive and an OCI layout archive (`make-archive.mjs --oci`) of one
//   realistic gzip layer, loaded into a fresh cache. Floor: what verifying and decompressing
//   costs with standard tools, `sha256sum ARCHIVE` plus `gzip -dc LAYER`.
// - cached: the OCI archive loaded again into the cache that holds it (every artifact cached),
//   and a second OCI archive of the same layer with another config (a new manifest and config,
//   so a new fsmeta and VMDK, but every layer cached). Floor: reading the archive's
//   `index.json`, manifest and config and `JSON.parse` of them, in this process.
//
//   node bench/load.mjs [source-dir] [max-MiB] [runs]   (defaults: /usr/lib/x86_64-linux-gnu, 256, 3)
import { execFileSync } from "node:child_process";
import { cpSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { ImageCache } from "../dist/index.mjs";
import { fmt, median } from "./common.mjs";

const source = process.argv[2] ?? "/usr/lib/x86_64-linux-gnu";
const maxBytes = Number(process.argv[3] ?? 256) * 1024 * 1024;
const runs = Number(process.argv[4] ?? 3);
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

function makeArchive(out, reference, layerDir, flags) {
  execFileSync("node", [join(here, "..", "scripts", "make-archive.mjs"), ...flags, out, reference, layerDir], { stdio: "ignore" });
}

/** Wall time (ms) of an async call. */
async function timed(fn) {
  const start = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - start) / 1e6;
}

/** Wall time (ms) of a shell command. */
function shell(command) {
  const start = process.hrtime.bigint();
  execFileSync("bash", ["-c", command], { stdio: ["ignore", "ignore", "inherit"] });
  return Number(process.hrtime.bigint() - start) / 1e6;
}

try {
  const layerDir = join(work, "rootfs");
  const state = { bytes: 0, files: 0 };
  fill(source, join(layerDir, "usr", "lib"), state);
  const docker = join(work, "docker.tar");
  const oci = join(work, "oci.tar");
  const other = join(work, "oci-other.tar");
  makeArchive(docker, "bench/load:docker", layerDir, []);
  makeArchive(oci, "bench/load:oci", layerDir, ["--oci"]);
  makeArchive(other, "bench/load:other", layerDir, ["--oci", "--cmd", "/bin/other"]);
  // The gzip layer blob, for the floor, and the OCI archive's metadata, for the cached floor.
  const layerMember = execFileSync("tar", ["-tf", docker], { encoding: "utf8" }).split("\n").find((l) => l.endsWith("layer.tar"));
  execFileSync("tar", ["-xf", docker, "-C", work, layerMember]);
  const layer = join(work, layerMember);
  const meta = join(work, "meta");
  mkdirSync(meta);
  execFileSync("tar", ["-xf", oci, "-C", meta, "--exclude", "blobs/sha256/" + layerMember.split("/")[0], "index.json", "blobs"]);
  const metaFiles = () => {
    const index = JSON.parse(readFileSync(join(meta, "index.json"), "utf8"));
    const manifestPath = join(meta, "blobs", ...index.manifests[0].digest.split(":"));
    const manifest = JSON.parse(readFileSync(manifestPath, "utf8"));
    const config = JSON.parse(readFileSync(join(meta, "blobs", ...manifest.config.digest.split(":")), "utf8"));
    return config.rootfs.diff_ids.length;
  };

  const samples = { docker: [], oci: [], floor: [], again: [], other: [], parse: [] };
  for (let i = 0; i < runs; i++) {
    execFileSync("bash", ["-c", `cat ${docker} ${oci} ${layer} > /dev/null`]); // same page-cache state for every route
    samples.floor.push(shell(`sha256sum ${docker} >/dev/null && gzip -dc ${layer} >/dev/null`));
    const dockerRoot = join(work, `docker-cache${i}`);
    samples.docker.push(await timed(() => ImageCache.open({ root: dockerRoot }).load(docker)));
    rmSync(dockerRoot, { recursive: true, force: true });
    const root = join(work, `cache${i}`);
    const cache = ImageCache.open({ root });
    samples.oci.push(await timed(() => cache.load(oci)));
    samples.again.push(await timed(() => cache.load(oci)));
    samples.other.push(await timed(() => cache.load(other)));
    rmSync(root, { recursive: true, force: true });
    // Reading and parsing three small JSON files takes well under a millisecond: take the
    // median of many.
    const parses = [];
    for (let j = 0; j < 200; j++) parses.push(await timed(async () => metaFiles()));
    samples.parse.push(median(parses));
  }
  const best = Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, Math.min(...v)]));
  const mb = (path) => statSync(path).size / 1e6;
  const rate = (path, ms) => mb(path) / (ms / 1e3);
  console.log(`layer: ${state.files} files, ${fmt(state.bytes / 1e6, 1)} MB uncompressed, gzip blob ${fmt(mb(layer), 1)} MB; best of ${runs}`);
  console.log(`new docker archive (${fmt(mb(docker), 1)} MB): Image.load ${fmt(best.docker, 0)} ms = ${fmt(rate(docker, best.docker), 1)} MB/s, ` +
    `floor (sha256sum + gzip -d) ${fmt(best.floor, 0)} ms = ${fmt(rate(docker, best.floor), 1)} MB/s, ratio ${fmt(best.floor / best.docker)}x of floor`);
  console.log(`new OCI archive (${fmt(mb(oci), 1)} MB): Image.load ${fmt(best.oci, 0)} ms = ${fmt(rate(oci, best.oci), 1)} MB/s, ` +
    `ratio ${fmt(best.floor / best.oci)}x of floor`);
  console.log(`cached, same archive again: Image.load ${fmt(best.again, 1)} ms; new manifest over cached layers: ${fmt(best.other, 1)} ms; ` +
    `floor (read + parse index, manifest, config) ${fmt(best.parse, 3)} ms; a cached load costs ${fmt(best.again / best.oci * 100, 1)}% of a new one`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
