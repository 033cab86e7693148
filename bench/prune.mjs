// Prune at scale (issue 5): `Cache::prune` on generated caches of 1,000, 10,000 and 100,000
// references, against the floor measured in the same run on the same files: one process that
// lstats and unlinks exactly the files prune deleted, then fsyncs their folders
// (`prune_bench floor`, with 1 thread, one per core, and 64 threads; the fastest is the floor).
// Then, at every size, `list()` and `diskUsage()` against bare SQLite queries of the same rows,
// and the peak RSS of processes making one such call. The tools are in crates/core/examples/prune_bench.rs (see its header for the pattern
// and the fast path).
//
//   node bench/prune.mjs [sizes]   (default $PRUNE_SIZES or 1000,10000,100000; $PRUNE_RUNS,
//                                   default 5,3,1, gives the runs per size)
//   npm run bench:prune            (builds the example and the addon first)
//
// Every run copies a generated master cache (`cp -a`, then `sync`, outside the timed region)
// before each route, so every route starts from the same files on the same disk:
//   - ext4: the disk of this checkout (bench/.work/prune/), where caches live;
//   - tmpfs: /dev/shm, where nothing waits for the disk, so the CPU cost of prune shows (10,000
//     references and up, when /dev/shm has room).
// Routes, interleaved (order rotated each run, prune first in the first run, which gives the
// floor its file list; later prune runs must delete exactly the same files):
//   - prune: `prune_bench prune ROOT` (Cache::prune_with(default): every reference no use pins;
//     its sweep deletes on a pool of 32 threads);
//   - floor, 1 / cores / 64 threads.
// Times are measured inside each process (no process start); peak RSS by /usr/bin/time.
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync, statfsSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { join } from "node:path";
import { count as n, fmt, interleave, median, quote, sh } from "./common.mjs";

const sizes = (process.argv[2] ?? process.env.PRUNE_SIZES ?? "1000,10000,100000").split(",").map(Number);
const runsBySize = (process.env.PRUNE_RUNS ?? "5,3,1").split(",").map(Number);
const here = new URL(".", import.meta.url).pathname;
const root = join(here, "..");
const work = join(here, ".work", "prune");
const tool = join(process.env.CARGO_TARGET_DIR ?? join(root, "target"), "release", "examples", "prune_bench");
const CORES = cpus().length;
const WIDE = 64;
// Caches up to this many references are made through the real load path.
const LOAD_MAX = 1000;
// Bytes a generated cache takes per reference (measured: 30 KB), with margin.
const BYTES_PER_REF = 40_000;

const MB = 1e6;
const s = (sec) => (sec >= 1 ? `${fmt(sec)} s` : `${fmt(sec * 1e3, 1)} ms`);
const run = (args, env = {}) => JSON.parse(execFileSync(tool, args, { encoding: "utf8", env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "inherit"] }));

if (!existsSync(tool) || !existsSync("/usr/bin/time")) {
  const message = `prune: SKIPPED, missing ${existsSync(tool) ? "/usr/bin/time" : `${tool} (cargo build --release -p ocicache-core --example prune_bench)`}`;
  if (process.env.CI === "true") throw new Error(message);
  console.log(message);
  process.exit(0);
}

const room = (dir) => {
  try {
    const st = statfsSync(dir);
    return st.bavail * st.bsize;
  } catch {
    return 0;
  }
};
const largest = Math.max(...sizes);
// Masters (and tmpfs copies) live on /dev/shm when it has room: generating there skips the
// per-file fsyncs of the real code paths, which the fast path does not need.
const shmOk = room("/dev/shm") > 3 * largest * BYTES_PER_REF;
const scratch = shmOk ? join("/dev/shm", `ocicache-bench-prune-${process.pid}`) : join(work, "scratch");
rmSync(work, { recursive: true, force: true });
mkdirSync(work, { recursive: true });
mkdirSync(scratch, { recursive: true });
process.on("exit", () => rmSync(scratch, { recursive: true, force: true }));

/** Artifact files of a cache, relative to its root. */
function files(dir) {
  const out = sh(`cd ${quote(dir)} && find blobs layers fsmeta vmdk -type f`);
  return new Set(out.split("\n").filter(Boolean));
}

function copy(from, to) {
  rmSync(to, { recursive: true, force: true });
  sh(`cp -a ${quote(from)} ${quote(to)} && sync`);
}

/** Runs `prune_bench prune` under /usr/bin/time; returns its report and peak RSS (KiB). */
function prune(dir) {
  const rss = join(work, "rss.txt");
  const out = execFileSync("/usr/bin/time", ["-f", "%M", "-o", rss, tool, "prune", dir], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] });
  return { ...JSON.parse(out), rssKiB: Number(readFileSync(rss, "utf8").trim().split("\n").pop()) };
}

// list() and diskUsage() at every size, through the addon, against bare queries of the same
// rows (and the core's own calls) from `prune_bench latency`, in alternating rounds; then the
// peak RSS of a process that makes one call: `prune_bench list` / `usage` (the core alone), and
// node loading the package and calling Image.list() / diskUsage() once, next to node loading
// it and calling nothing (node's own share).
let api = null;
try {
  api = await import("../dist/index.mjs");
} catch {
  console.log("prune: latency SKIPPED, no dist/ build (npm run build)");
}

/** Peak RSS (KiB) of `file args` under /usr/bin/time, and its stdout. */
function peakRss(file, args) {
  const rss = join(work, "rss.txt");
  const out = execFileSync("/usr/bin/time", ["-f", "%M", "-o", rss, file, ...args], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] });
  return { out, kib: Number(readFileSync(rss, "utf8").trim().split("\n").pop()) };
}

async function latency(master, refs) {
  if (!api) return;
  const cache = api.ImageCache.open({ root: master });
  const hasUsage = typeof cache.diskUsage === "function";
  const js = { list: [], diskUsage: [] };
  const rust = [];
  let rows = { list: 0, diskUsage: 0 };
  const timeJs = async (name, fn) => {
    const start = process.hrtime.bigint();
    const out = await fn();
    js[name].push(Number(process.hrtime.bigint() - start) / 1e6);
    rows[name] = Array.isArray(out) ? out.length : out.images.length;
  };
  await cache.list();
  if (hasUsage) await cache.diskUsage();
  // More calls where each is quick, so the medians are not a handful of samples.
  const calls = refs >= 100_000 ? 5 : refs >= 10_000 ? 10 : 20;
  for (let round = 0; round < 3; round++) {
    for (let i = 0; i < calls; i++) {
      await timeJs("list", () => cache.list());
      if (hasUsage) await timeJs("diskUsage", () => cache.diskUsage());
    }
    rust.push(run(["latency", master, String(calls)]));
  }
  const r = (key) => median(rust.map((x) => x[key]));
  const ms = (v) => `${fmt(v, v < 10 ? 2 : 1)} ms`;
  const spread = (v) => `${ms(Math.min(...v))}-${ms(Math.max(...v))}`;
  console.log(`prune: latency at ${n(refs)} references: Image.list()=${ms(median(js.list))} (${n(rows.list)} rows; ${spread(js.list)}), ` +
    `bare SQLite query=${ms(r("listFloorMs"))}, ratio=${fmt(median(js.list) / r("listFloorMs"))}x (aim <= 2x); core Cache::list=${ms(r("listMs"))}`);
  const usage = hasUsage ? `Image.diskUsage()=${ms(median(js.diskUsage))} (${n(rows.diskUsage)} rows; ${spread(js.diskUsage)}), ` : "Image.diskUsage() not in this build, ";
  console.log(`prune: latency at ${n(refs)} references: ${usage}bare SQLite query of the same rows and totals=${ms(r("usageFloorMs"))}, ` +
    `ratio=${hasUsage ? fmt(median(js.diskUsage) / r("usageFloorMs")) : fmt(r("diskUsageMs") / r("usageFloorMs"))}x${hasUsage ? "" : " (core)"} (aim <= 2x); ` +
    `core Cache::disk_usage=${ms(r("diskUsageMs"))}, of which its per-reference figures (Index::image_usage)=${ms(r("usageCoreMs"))}; ${3 * calls} calls each`);
  const mib = (kib) => `${fmt(kib / 1024, 1)} MiB`;
  const core = { list: peakRss(tool, ["list", master]).kib, usage: peakRss(tool, ["usage", master]).kib };
  const dist = join(root, "dist", "index.mjs");
  const script = (call) => `const { ImageCache } = await import(${JSON.stringify(dist)}); const c = ImageCache.open({ root: ${JSON.stringify(master)} }); ${call}`;
  const node = {
    none: peakRss(process.execPath, ["--input-type=module", "-e", script("")]).kib,
    list: peakRss(process.execPath, ["--input-type=module", "-e", script("await c.list();")]).kib,
    usage: hasUsage ? peakRss(process.execPath, ["--input-type=module", "-e", script("await c.diskUsage();")]).kib : 0,
  };
  console.log(`prune: peak RSS at ${n(refs)} references: prune_bench list ${mib(core.list)}, usage ${mib(core.usage)} (aim < 64 MiB for list); ` +
    `node with Image.list() ${mib(node.list)}${hasUsage ? `, with Image.diskUsage() ${mib(node.usage)}` : ""}, with no call ${mib(node.none)}`);
}

const results = [];
for (const [k, refs] of sizes.entries()) {
  const runs = runsBySize[Math.min(k, runsBySize.length - 1)];
  const master = join(scratch, `master-${refs}`);
  const viaLoad = refs <= LOAD_MAX;
  const gen = run([viaLoad ? "gen-load" : "gen-fast", master, String(refs)]);
  let checked = "";
  if (viaLoad) {
    const fast = join(scratch, `fast-${refs}`);
    const fastGen = run(["gen-fast", fast, String(refs)]);
    const same = run(["compare", master, fast]);
    if (!same.identical) throw new Error(`the fast path differs from the load path: ${same.firstDifferences.join("; ")}`);
    checked = `; the fast path (${s(fastGen.seconds)}) gives the same ${n(same.files)} files and ${n(same.rows)} rows`;
    rmSync(fast, { recursive: true, force: true });
  }
  const before = files(master);
  console.log(`prune: ${n(refs)} references (${n(gen.images)} images, ${n(before.size)} artifact files) generated through the ` +
    `${viaLoad ? "load" : "fast"} path in ${s(gen.seconds)}${checked}`);

  const disks = [{ name: "ext4", dir: join(work, "copy") }];
  if (shmOk && refs >= 10_000 && process.env.PRUNE_TMPFS !== "0") disks.push({ name: "tmpfs", dir: join(scratch, "copy") });
  for (const disk of disks) {
    const listFile = join(work, `list-${disk.name}.txt`);
    let deleted = null;
    const routes = {
      prune: () => {
        copy(master, disk.dir);
        const r = prune(disk.dir);
        const after = files(disk.dir);
        const gone = [...before].filter((f) => !after.has(f)).sort();
        if (deleted === null) {
          deleted = gone;
          writeFileSync(listFile, gone.map((f) => join(disk.dir, f)).join("\n") + "\n");
        } else if (gone.length !== deleted.length || gone.some((f, i) => f !== deleted[i])) {
          throw new Error("two prune runs deleted different files");
        }
        return r;
      },
    };
    const floor = (threads) => () => {
      copy(master, disk.dir);
      return run(["floor", listFile, String(threads)]);
    };
    const ext4 = disk.name === "ext4";
    // One thread on ext4 only where it finishes in seconds (the unlinks wait on the journal).
    if (!ext4 || refs <= LOAD_MAX) routes.floor1 = floor(1);
    if (ext4 && refs <= LOAD_MAX) routes[`floor${CORES}`] = floor(CORES);
    routes[`floor${WIDE}`] = floor(WIDE);
    const names = Object.keys(routes);
    const samples = interleave(routes, runs);
    rmSync(disk.dir, { recursive: true, force: true });
    const med = (r, field = "seconds") => median(samples[r].map((x) => x[field]));
    const report = samples.prune[0];
    const floors = names.filter((r) => r.startsWith("floor"));
    const best = Math.min(...floors.map((r) => med(r)));
    const row = {
      refs, disk: disk.name, runs, prune: med("prune"), floor: best,
      floors: Object.fromEntries(floors.map((r) => [r.slice(5), med(r)])),
      rssKiB: Math.max(...samples.prune.map((x) => x.rssKiB)), report, files: deleted.length,
    };
    results.push(row);
    const floorText = floors.map((r) => `${r.slice(5)} thread${r === "floor1" ? "" : "s"} ${s(med(r))}`).join(", ");
    console.log(`prune: ${disk.name}, ${n(refs)} references: prune=${s(row.prune)} (removed ${n(report.imageRefsRemoved)} references, ` +
      `${n(report.manifestsRemoved)} manifests, ${n(report.layersRemoved)} layers: ${n(deleted.length)} files, ${fmt(report.bytesReclaimed / MB, 1)} MB), ` +
      `floor=${s(best)} (${floorText}), ratio=${fmt(row.prune / best)}x (aim <= 1.2x from 10,000 references)` +
      `; prune peak RSS ${fmt(row.rssKiB / 1024, 1)} MiB (aim < 128 MiB); median of ${runs}` +
      (runs > 1 ? ` (prune ${samples.prune.map((x) => s(x.seconds)).join(", ")})` : ""));
  }
  await latency(master, refs);
  rmSync(master, { recursive: true, force: true });
}

