// Prune against other tools (issue 5): the same workload through `ocicache prune`,
// `umoci gc` on an OCI image layout and `podman image prune -a` on a vfs store, per image
// removed, measured in the same run (interleaved, order rotated, median of runs).
//
//   node bench/prune-tools.mjs [references]   (default $PRUNE_TOOLS_REFS or 400; $PRUNE_TOOLS_RUNS
//                                               or 3 runs)
//   npm run bench:prune-tools                 (builds the example first)
//
// The workload is the generator's pattern (crates/core/examples/prune_bench.rs): REFERENCES / 2
// images of six layers (three base layers shared by all, two mid layers per group of 50, one
// own layer), two tags each, every tenth image in use. Each tool gets the same images:
//   - ocicache: `prune_bench gen-load` (an OCI layout through Cache::load, then a sandbox use of
//     every tenth image); timed: `prune_bench prune ROOT`, which removes every other image;
//   - umoci: `prune_bench gen-layout` (the same OCI layout); the index.json entries of the
//     images not in use are dropped (what untagging them leaves), then timed: `umoci gc`;
//   - podman: `prune_bench gen-docker` (the same images as a `docker save` archive), `podman
//     load` into a vfs store, a created container (`podman create`) for every tenth image; timed:
//     `podman image prune -a -f`.
// Each run starts from a copy of the prepared state (`cp -a` to the same path, then `sync`,
// untimed), on the disk of this checkout. Times are whole processes (start to exit) for all three;
// ocicache's time inside its process is shown too.
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fmt, interleave, median, quote, sh } from "./common.mjs";

const refs = Number(process.argv[2] ?? process.env.PRUNE_TOOLS_REFS ?? 400);
const runs = Number(process.env.PRUNE_TOOLS_RUNS ?? 3);
const here = new URL(".", import.meta.url).pathname;
const root = join(here, "..");
const work = join(here, ".work", "prune-tools");
const tool = join(process.env.CARGO_TARGET_DIR ?? join(root, "target"), "release", "examples", "prune_bench");
const PIN_EVERY = 10; // as in prune_bench.rs

const has = (t) => sh(`command -v ${t} || true`).trim() !== "";
const timed = (file, args) => {
  const start = process.hrtime.bigint();
  const out = execFileSync(file, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], maxBuffer: 1 << 28 });
  return { ms: Number(process.hrtime.bigint() - start) / 1e6, out };
};

if (!existsSync(tool)) {
  const message = `prune-tools: SKIPPED, missing ${tool} (cargo build --release -p ocicache-core --example prune_bench)`;
  if (process.env.CI === "true") throw new Error(message);
  console.log(message);
  process.exit(0);
}

rmSync(work, { recursive: true, force: true });
mkdirSync(work, { recursive: true });
const images = Math.ceil(refs / 2);
const kept = Math.ceil(images / PIN_EVERY);
const removed = images - kept;
const restore = (from, to) => sh(`rm -rf ${quote(to)} && cp -a ${quote(from)} ${quote(to)} && sync`);
const routes = {};
const notes = [];

// ocicache
const ociMaster = join(work, "ocicache-master");
const ociRoot = join(work, "ocicache");
execFileSync(tool, ["gen-load", ociMaster, String(refs)], { stdio: ["ignore", "ignore", "inherit"] });
routes.ocicache = () => {
  restore(ociMaster, ociRoot);
  const { ms, out } = timed(tool, ["prune", ociRoot]);
  const r = JSON.parse(out);
  if (r.manifestsRemoved !== removed) throw new Error(`ocicache removed ${r.manifestsRemoved} images, want ${removed}`);
  return { ms, inProcessMs: r.seconds * 1e3 };
};

// umoci
if (has("umoci")) {
  const master = join(work, "umoci-master");
  const layout = join(work, "umoci");
  execFileSync(tool, ["gen-layout", master, String(refs)], { stdio: ["ignore", "ignore", "inherit"] });
  const index = JSON.parse(readFileSync(join(master, "index.json"), "utf8"));
  const pinned = (name) => Number(/\/app(\d+):/.exec(name)[1]) % PIN_EVERY === 0;
  index.manifests = index.manifests.filter((m) => pinned(m.annotations["org.opencontainers.image.ref.name"]));
  writeFileSync(join(master, "index.json"), JSON.stringify(index));
  const blobs = (dir) => readdirSync(join(dir, "blobs", "sha256")).length;
  routes.umoci = () => {
    restore(master, layout);
    const before = blobs(layout);
    const { ms } = timed("umoci", ["gc", "--layout", layout]);
    // Each removed image leaves a manifest, a config and its own layer.
    if (before - blobs(layout) !== 3 * removed) throw new Error(`umoci gc removed ${before - blobs(layout)} blobs, want ${3 * removed}`);
    return { ms };
  };
} else notes.push("umoci not installed (apt-get install umoci)");

// podman
if (has("podman")) {
  const store = join(work, "podman");
  const master = join(work, "podman-master");
  // podman refuses a runroot path longer than 50 characters: its transient state goes to a
  // short folder of its own, emptied before each run (the store under `root` is what is copied).
  const runroot = mkdtempSync(join(tmpdir(), "ocp-"));
  process.on("exit", () => rmSync(runroot, { recursive: true, force: true }));
  const podman = (args) => ["--root", join(store, "root"), "--runroot", runroot, "--storage-driver", "vfs",
    "--cgroup-manager", "cgroupfs", "--events-backend", "file", ...args];
  const archive = join(work, "images.tar");
  execFileSync(tool, ["gen-docker", archive, String(refs)], { stdio: ["ignore", "ignore", "inherit"] });
  const load = spawnSync("podman", podman(["load", "-q", "-i", archive]), { encoding: "utf8" });
  if (load.status !== 0) {
    notes.push(`podman cannot load images here: ${(load.stderr || load.stdout).trim().split("\n").pop()}`);
  } else {
    for (let i = 0; i < images; i += PIN_EVERY) {
      execFileSync("podman", podman(["create", "-q", "--name", `pin-${i}`, `registry.example/team${Math.floor(i / 50)}/app${i}:1.0`]), { stdio: "ignore" });
    }
    rmSync(archive);
    sh(`mv ${quote(store)} ${quote(master)}`);
    routes.podman = () => {
      restore(master, store);
      sh(`rm -rf ${quote(runroot)} && mkdir ${quote(runroot)}`);
      const { ms, out } = timed("podman", podman(["image", "prune", "-a", "-f"]));
      const gone = out.split("\n").filter(Boolean).length;
      if (gone !== removed) throw new Error(`podman image prune removed ${gone} images, want ${removed}`);
      return { ms };
    };
  }
} else notes.push("podman not installed (apt-get install podman)");

const names = Object.keys(routes);
const samples = interleave(routes, runs);
rmSync(work, { recursive: true, force: true });
const per = (k) => median(samples[k].map((x) => x.ms)) / removed;
const oc = per("ocicache");
const parts = names.map((k) => `${k}=${fmt(per(k), 2)} ms` + (k === "ocicache" ? ` (in-process ${fmt(median(samples.ocicache.map((x) => x.inProcessMs)) / removed, 2)} ms)` : "") +
  (k === "ocicache" ? "" : ` (${fmt(per(k) / oc, 1)}x ocicache)`));
console.log(`prune-tools: ${refs} references, ${images} images, ${removed} removed (${kept} in use kept); per image removed: ${parts.join(", ")}; ` +
  `whole-process times, median of ${runs}`);
for (const note of notes) console.log(`prune-tools: ${note}`);
