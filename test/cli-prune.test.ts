// `ocicache prune` with its options and `ocicache df`, run as a child process from
// dist/cli.cjs (test/global-setup.ts builds it), checked against the API and the disk.

import { spawnSync } from "node:child_process";
import { join } from "node:path";

import { beforeAll, describe, expect, it } from "vitest";

import { ImageCache } from "../src/index";
import { corpus, ociLayoutTar, type Corpus } from "./fixtures";
import { CLI, filesUnder, freshRoot, storedBytes, tempFile } from "./helpers";

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

function run(args: string[]): Run {
  const r = spawnSync(process.execPath, [CLI, ...args], { input: "", encoding: "utf8" });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * The cache's artifact files and sizes (`blobs/`, `layers/`, `fsmeta/`, `vmdk/`, `tmp/`), for
 * equality checks. The index files are left out: SQLite deletes its WAL and shared-memory files
 * whenever the last connection closes, which a collected cache object may do at any moment.
 */
async function artifactSnapshot(root: string): Promise<[string, number][]> {
  const out: [string, number][] = [];
  for (const dir of ["blobs", "layers", "fsmeta", "vmdk", "tmp"]) {
    for (const [path, size] of await filesUnder(join(root, dir))) out.push([join(dir, path), size]);
  }
  return out.sort(([a], [b]) => a.localeCompare(b));
}

let c: Corpus;
beforeAll(async () => {
  c = await corpus();
});

/** A cache holding alpha (loaded first), beta and legacy, each from an archive of its own. */
async function loaded(): Promise<string> {
  const root = await freshRoot();
  const cache = ImageCache.open({ root });
  for (const [image, reference] of [
    [c.alpha, "example.com/alpha:1"],
    [c.beta, "docker.io/library/beta:2"],
    [c.legacy, "example.com/legacy:3"],
  ] as const) {
    await cache.load(
      await tempFile("i.tar", await ociLayoutTar([{ image, annotations: { "io.containerd.image.name": reference } }])),
    );
  }
  return root;
}

async function refs(root: string): Promise<string[]> {
  return (await ImageCache.open({ root }).list()).map((h) => h.reference).sort();
}

interface ReportJson {
  imageRefsRemoved: number;
  bytesReclaimed: number;
  bytesBefore: number;
  bytesAfter: number;
  dryRun: boolean;
  removed: { reference: string; manifestDigest: string; bytesFreed: number }[];
}

describe("ocicache prune options", () => {
  it("--dry-run --json needs no confirmation, changes nothing and equals the real prune", async () => {
    const root = await loaded();
    const disk = await artifactSnapshot(root);
    const dry = run(["--root", root, "prune", "--dry-run", "--json"]);
    expect(dry.stderr).toBe("");
    expect(dry.status).toBe(0);
    const report = JSON.parse(dry.stdout) as ReportJson;
    expect(report).toMatchObject({ imageRefsRemoved: 3, dryRun: true });
    expect(report.removed.map((r) => r.reference)).toEqual(["example.com/alpha:1", "beta:2", "example.com/legacy:3"]);
    expect(report.removed.map((r) => r.manifestDigest)).toContain(c.alpha.manifestDigest);
    expect(await artifactSnapshot(root)).toEqual(disk);

    const before = await storedBytes(root);
    const real = run(["--root", root, "prune", "--yes", "--json"]);
    expect(real.status).toBe(0);
    const realReport = JSON.parse(real.stdout) as ReportJson;
    expect(realReport).toEqual({ ...report, dryRun: false });
    expect(realReport.bytesReclaimed).toBe(before - (await storedBytes(root)));
    expect(await refs(root)).toEqual([]);
  });

  it("still asks for confirmation with filters and without --dry-run", async () => {
    const root = await loaded();
    const r = run(["--root", root, "prune", "--keep", "beta:2"]);
    expect(r.status).toBe(2);
    expect(r.stdout).toBe("");
    expect(await refs(root)).toHaveLength(3);
  });

  it("--keep is repeatable and takes any spelling", async () => {
    const root = await loaded();
    const r = run([
      "--root",
      root,
      "prune",
      "-y",
      "--json",
      "--keep",
      "docker.io/library/beta:2",
      "--keep",
      `example.com/legacy@${c.legacy.manifestDigest}`,
    ]);
    expect(r.status).toBe(0);
    expect((JSON.parse(r.stdout) as ReportJson).removed.map((x) => x.reference)).toEqual(["example.com/alpha:1"]);
    expect(await refs(root)).toEqual(["beta:2", "example.com/legacy:3"]);
  });

  it("--older-than and --grace take durations", async () => {
    const root = await loaded();
    await sleep(2500);
    const cache = ImageCache.open({ root });
    const removedWith = async (option: string, value: string): Promise<string[]> => {
      // Only beta was used within the last 2 s (each run starts right after it is used).
      await (await cache.acquire("beta:2", { sandbox: "now" })).release();
      const r = run(["--root", root, "prune", "--dry-run", "--json", option, value]);
      expect(r.status, `${option} ${value}`).toBe(0);
      return (JSON.parse(r.stdout) as ReportJson).removed.map((x) => x.reference);
    };
    expect(await removedWith("--older-than", "2s")).toEqual(["example.com/alpha:1", "example.com/legacy:3"]);
    expect(await removedWith("--grace", "2s")).toEqual(["example.com/alpha:1", "example.com/legacy:3"]);
    expect(await removedWith("--older-than", "0.025m")).toEqual(["example.com/alpha:1", "example.com/legacy:3"]);
    for (const age of ["1m", "0.5h", "7d", "2w"]) {
      expect(await removedWith("--older-than", age), age).toEqual([]);
      expect(await removedWith("--grace", age), age).toEqual([]);
    }
  });

  it("--max-size takes bytes or binary units and evicts least recently used first", async () => {
    const root = await loaded();
    const dry = JSON.parse(run(["--root", root, "prune", "--dry-run", "--json"]).stdout) as ReportJson;
    const size = dry.bytesBefore;
    const at = (max: string) => JSON.parse(run(["--root", root, "prune", "--dry-run", "--json", "--max-size", max]).stdout) as ReportJson;
    expect(at(String(size)).removed).toEqual([]);
    expect(at(`${size}B`).removed).toEqual([]);
    expect(at(String(size - 1)).removed.map((x) => x.reference)).toEqual(["example.com/alpha:1"]);
    for (const big of ["1T", "1t", "20G", "20GiB", "20GB", "20gb", "1024M", "1.5G", "4096K"]) {
      expect(at(big).removed, big).toEqual([]);
    }
    expect(at("0").imageRefsRemoved).toBe(3);
    expect(at("0K").bytesAfter).toBe(dry.bytesAfter);
    // 1K = 1024 bytes: a budget just under the size in KiB, rounded down, evicts one image.
    expect(at(`${Math.floor((size - 1) / 1024)}K`).removed[0]?.reference).toBe("example.com/alpha:1");
  });

  it("prints counts, bytes, before -> after and, with -v, each removed reference", async () => {
    const root = await loaded();
    const dry = run(["--root", root, "prune", "--dry-run"]);
    expect(dry.status).toBe(0);
    expect(dry.stdout).toMatch(/^would remove 3 references, 3 manifests, /);
    expect(dry.stdout).toMatch(/\nwould reclaim \d/);
    expect(dry.stdout).toMatch(/\ncache size [\d.]+ (B|KiB|MiB) -> [\d.]+ (B|KiB|MiB)\n$/);
    expect(dry.stdout).not.toContain("example.com/alpha:1");
    const verbose = run(["--root", root, "prune", "-y", "-v", "--keep", "beta:2"]);
    expect(verbose.status).toBe(0);
    const lines = verbose.stdout.trim().split("\n");
    expect(lines[0]).toMatch(/^removed 2 references, /);
    expect(lines).toContainEqual(expect.stringMatching(/^REFERENCE\s+DIGEST\s+FREED$/));
    expect(lines).toContainEqual(expect.stringMatching(new RegExp(`^example\\.com/alpha:1\\s+${c.alpha.manifestDigest.slice(7, 19)}\\s+[\\d.]+ (B|KiB)$`)));
    expect(lines).toContainEqual(expect.stringMatching(/^example\.com\/legacy:3\s/));
    expect(await refs(root)).toEqual(["beta:2"]);
  });

  it.each([
    ["--older-than", "7"],
    ["--older-than", "7x"],
    ["--older-than", "d"],
    ["--older-than", "1e3s"],
    ["--grace", "ten minutes"],
    ["--grace", "-1m"],
    ["--max-size", "20Q"],
    ["--max-size", "-5"],
    ["--max-size", "1.5.5G"],
    ["--max-size", "G"],
    ["--max-size", "20GiBs"],
    ["--max-size", "99999999999T"],
  ])("exits 2 on a bad value: %s %s", async (option, value) => {
    const root = await loaded();
    const disk = await artifactSnapshot(root);
    const r = run(["--root", root, "prune", "--yes", option, value]);
    expect(r.status).toBe(2);
    expect(r.stdout).toBe("");
    expect(r.stderr).toMatch(/^ocicache: /);
    expect(await artifactSnapshot(root)).toEqual(disk);
  });
});

describe("ocicache df", () => {
  it("--json is the API's diskUsage", async () => {
    const root = await loaded();
    const r = run(["--root", root, "df", "--json"]);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    const json = JSON.parse(r.stdout) as Record<string, unknown>;
    const usage = await ImageCache.open({ root }).diskUsage();
    expect(json).toEqual({ ...usage, images: usage.images.map((i) => ({ ...i })) });
    expect(Object.keys(json)).toEqual(["layers", "fsmeta", "vmdk", "blobs", "index", "temporary", "total", "images"]);
  });

  it("prints totals by kind, and with -v the per-image table", async () => {
    const root = await loaded();
    const plain = run(["--root", root, "df"]);
    expect(plain.status).toBe(0);
    const lines = plain.stdout.trim().split("\n");
    expect(lines[0]).toMatch(/^KIND\s+SIZE$/);
    expect(lines.slice(1).map((l) => l.split(/\s+/)[0])).toEqual([
      "layers",
      "fsmeta",
      "vmdk",
      "blobs",
      "index",
      "temporary",
      "total",
    ]);
    expect(plain.stdout).not.toContain("RECLAIMABLE");

    const verbose = run(["--root", root, "df", "-v"]);
    expect(verbose.status).toBe(0);
    const vlines = verbose.stdout.trim().split("\n");
    const header = vlines.findIndex((l) => /^REFERENCE\s+DIGEST\s+SHARED\s+EXCLUSIVE\s+RECLAIMABLE$/.test(l));
    expect(header).toBeGreaterThan(0);
    // The table ends at a blank line; the total a prune would reclaim follows it.
    const end = vlines.indexOf("", header);
    expect(end).toBeGreaterThan(header);
    const rows = vlines.slice(header + 1, end);
    expect(rows.map((l) => l.split(/\s+/)[0])).toEqual(["beta:2", "example.com/alpha:1", "example.com/legacy:3"]);
    expect(vlines.slice(end + 1)).toEqual([expect.stringMatching(/^prune would reclaim \d+(\.\d+)? [KMGT]?i?B now$/)]);
    expect(rows[0]).toContain(c.beta.manifestDigest.slice(7, 19));
    // legacy shares nothing.
    expect(rows[2]).toMatch(/\s0 B\s/);
  });

  it("works on an empty cache and rejects positionals", async () => {
    const root = await freshRoot();
    const r = run(["--root", root, "df", "--json"]);
    expect(r.status).toBe(0);
    expect((JSON.parse(r.stdout) as { images: unknown[] }).images).toEqual([]);
    expect(run(["--root", root, "df", "extra"]).status).toBe(2);
    expect(run(["--root", root, "df", "--bogus"]).status).toBe(2);
  });
});
