// Prune options (dryRun, olderThan, keep, gracePeriodMs, maxBytes) and expiring uses, checked
// against the files on disk: every report's bytesReclaimed is the drop in stored bytes the test
// measures itself, and a dry run reports exactly what a real prune right after does.

import { existsSync } from "node:fs";
import { lstat, mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";

import { beforeAll, describe, expect, it } from "vitest";

import {
  Image,
  ImageCache,
  ImageInUseError,
  InvalidArgumentError,
  InvalidReferenceError,
  type ImagePruneReport,
  type PruneOptions,
} from "../src/index";
import {
  corpus,
  makeImage,
  makeLayer,
  ociLayoutTar,
  sha256,
  type Corpus,
  type ImageFixture,
  type LayerFixture,
} from "./fixtures";
import {
  blobPath,
  bytesOf,
  freshRoot,
  imageFiles,
  layerPath,
  rejectsWith,
  filesUnder,
  storedBytes,
  tempFile,
} from "./helpers";

let c: Corpus;

beforeAll(async () => {
  c = await corpus();
});

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Sleeps until the clock reads at least `date`. */
const sleepUntil = (date: Date) => sleep(Math.max(0, date.getTime() - Date.now()));

/**
 * The gap the tests leave between "old" and "recent" references: twice the age and grace
 * thresholds they use, so a loaded machine still falls on the right side of each.
 */
const AGE_GAP_MS = 1000;
const THRESHOLD_MS = AGE_GAP_MS / 2;

/** The lifetime of expiring uses that a test checks before they expire. */
const TTL_MS = 1000;

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

/** Bytes of the index files (`index.db` with its WAL and shared-memory files). */
async function indexBytes(root: string): Promise<number> {
  let total = 0;
  for (const suffix of ["", "-wal", "-shm"]) {
    total += await lstat(join(root, `index.db${suffix}`)).then(
      (st) => st.size,
      () => 0,
    );
  }
  return total;
}

/** The cache's size as prune counts it: stored artifacts plus the index files. */
async function cacheBytes(root: string): Promise<number> {
  return (await storedBytes(root)) + (await indexBytes(root));
}

/** Loads each image from an archive of its own (so each reference gets its own created time). */
async function loadEach(cache: ImageCache, images: readonly [ImageFixture, string][]): Promise<void> {
  for (const [image, reference] of images) {
    const archive = await tempFile(
      "image.tar",
      await ociLayoutTar([{ image, annotations: { "io.containerd.image.name": reference } }]),
    );
    await cache.load(archive);
  }
}

async function alphaBeta(): Promise<{ cache: ImageCache; root: string }> {
  const root = await freshRoot();
  const cache = ImageCache.open({ root });
  await loadEach(cache, [
    [c.alpha, "example.com/team/alpha:1.0"],
    [c.beta, "docker.io/library/beta:latest"],
  ]);
  return { cache, root };
}

async function references(cache: ImageCache): Promise<string[]> {
  return (await cache.list()).map((h) => h.reference).sort();
}

/**
 * Runs a dry run with `opts`, checks it changed nothing on disk, then the real prune, and
 * checks the two reports agree and the real one's bytes are the measured drop on disk.
 */
async function dryThenReal(cache: ImageCache, root: string, opts: PruneOptions = {}): Promise<ImagePruneReport> {
  const disk = await artifactSnapshot(root);
  const refs = await references(cache);
  const dry = await cache.prune({ ...opts, dryRun: true });
  expect(dry.dryRun).toBe(true);
  expect(await artifactSnapshot(root)).toEqual(disk);
  expect(await references(cache)).toEqual(refs);

  const before = await storedBytes(root);
  const real = await cache.prune(opts);
  expect(real).toEqual({ ...dry, dryRun: false });
  expect(real.bytesReclaimed).toBe(before - (await storedBytes(root)));
  expect(real.bytesAfter).toBe(real.bytesBefore - (real.bytesReclaimed ?? 0));
  return real;
}

describe("prune without options", () => {
  it("keeps the seed's meaning and adds sizes and the removed references", async () => {
    const { cache, root } = await alphaBeta();
    const files = [...new Set([...imageFiles(root, c.alpha), ...imageFiles(root, c.beta)])];
    const expected = await bytesOf(files);
    const base = layerPath(root, c.base.diffId);
    const alphaOwn = await bytesOf(imageFiles(root, c.alpha).filter((p) => p !== base));
    const before = await cacheBytes(root);
    const report = await dryThenReal(cache, root);
    expect(report).toMatchObject({
      imageRefsRemoved: 2,
      manifestsRemoved: 2,
      layersRemoved: 3,
      fsmetaRemoved: 2,
      vmdkRemoved: 2,
      bytesReclaimed: expected,
      bytesBefore: before,
      bytesAfter: before - expected,
      dryRun: false,
    });
    expect(report.allocatedBytesReclaimed).toBeGreaterThan(0);
    // Least recently used (here: loaded) first. alpha's removal leaves the shared base layer to
    // beta, whose removal frees it.
    expect(report.removed).toEqual([
      { reference: "example.com/team/alpha:1.0", manifestDigest: c.alpha.manifestDigest, bytesFreed: alphaOwn },
      { reference: "beta:latest", manifestDigest: c.beta.manifestDigest, bytesFreed: expected - alphaOwn },
    ]);
    expect(Object.isFrozen(report) && Object.isFrozen(report.removed) && Object.isFrozen(report.removed[0])).toBe(true);
    for (const p of files) expect(existsSync(p), p).toBe(false);
  });

  it("counts orphans and tmp leftovers in bytesBefore and bytesReclaimed, not in removed", async () => {
    const { cache, root } = await alphaBeta();
    const orphan = Buffer.from("an orphan blob no index row names\n");
    await writeFile(blobPath(root, sha256(orphan)), orphan);
    await mkdir(join(root, "tmp", "load-stale"), { recursive: true });
    await writeFile(join(root, "tmp", "load-stale", "part"), Buffer.alloc(3000));
    const before = await cacheBytes(root);
    const stored = await storedBytes(root);
    const report = await dryThenReal(cache, root, { keep: ["beta", "example.com/team/alpha:1.0"] });
    expect(report.imageRefsRemoved).toBe(0);
    expect(report.removed).toEqual([]);
    expect(report.bytesReclaimed).toBe(orphan.length + 3000);
    expect(report.bytesBefore).toBe(before);
    expect(stored - (await storedBytes(root))).toBe(orphan.length + 3000);
  });
});

describe("prune options", () => {
  it("dryRun changes nothing and equals the real prune, for each option", async () => {
    const cases: PruneOptions[] = [
      {},
      { keep: ["beta"] },
      { olderThan: 0 },
      { gracePeriodMs: 60_000 },
      { maxBytes: 0 },
      { maxBytes: Number.MAX_SAFE_INTEGER },
    ];
    for (const opts of cases) {
      const { cache, root } = await alphaBeta();
      await dryThenReal(cache, root, opts);
    }
  });

  it("olderThan as a Date keeps references used or created at or after it", async () => {
    const { cache, root } = await alphaBeta();
    await sleep(30);
    const cutoff = new Date();
    await sleep(30);
    // beta is used after the cutoff; alpha was last touched when it was loaded.
    await (await cache.acquire("beta", { sandbox: "s1" })).release();
    const report = await dryThenReal(cache, root, { olderThan: cutoff });
    expect(report.removed.map((r) => r.reference)).toEqual(["example.com/team/alpha:1.0"]);
    expect(await references(cache)).toEqual(["beta:latest"]);
    // A cutoff before everything removes nothing.
    expect((await cache.prune({ olderThan: new Date(0) })).imageRefsRemoved).toBe(0);
  });

  it("olderThan as a number is an age in milliseconds", async () => {
    const root = await freshRoot();
    const cache = ImageCache.open({ root });
    await loadEach(cache, [[c.alpha, "example.com/old:1"]]);
    await sleep(AGE_GAP_MS);
    await loadEach(cache, [[c.beta, "example.com/new:1"]]);
    // old is AGE_GAP_MS old, new a few ms: an age of half that separates them.
    const report = await dryThenReal(cache, root, { olderThan: THRESHOLD_MS });
    expect(report.removed.map((r) => r.reference)).toEqual(["example.com/old:1"]);
    expect(await references(cache)).toEqual(["example.com/new:1"]);
    // An age far beyond the epoch selects nothing.
    expect((await cache.prune({ olderThan: Date.now() * 2 })).imageRefsRemoved).toBe(0);
  });

  it.each([
    { keep: ["beta"], kept: ["beta:latest"] },
    { keep: ["beta:latest"], kept: ["beta:latest"] },
    { keep: ["docker.io/library/beta:latest"], kept: ["beta:latest"] },
    { keep: ["library/beta"], kept: ["beta:latest"] },
    { keep: ["example.com/team/alpha:1.0"], kept: ["example.com/team/alpha:1.0"] },
    { keep: ["beta", "example.com/team/alpha:1.0"], kept: ["beta:latest", "example.com/team/alpha:1.0"] },
    { keep: ["not-cached:1", "example.com/other:2"], kept: [] },
  ])("keep $keep keeps $kept", async ({ keep, kept }) => {
    const { cache, root } = await alphaBeta();
    const report = await dryThenReal(cache, root, { keep });
    expect(await references(cache)).toEqual([...kept].sort());
    expect(report.imageRefsRemoved).toBe(2 - kept.length);
  });

  it("keep accepts digest references, keeping every reference of the repository to that manifest", async () => {
    const { cache, root } = await alphaBeta();
    await loadEach(cache, [[c.beta, "docker.io/library/beta:v2"]]);
    await loadEach(cache, [[c.alpha, "example.com/team/alpha:copy"]]);
    const report = await dryThenReal(cache, root, {
      keep: [`beta@${c.beta.manifestDigest}`, `example.com/team/alpha@${c.alpha.manifestDigest}`],
    });
    expect(report.imageRefsRemoved).toBe(0);
    expect(await references(cache)).toEqual([
      "beta:latest",
      "beta:v2",
      "example.com/team/alpha:1.0",
      "example.com/team/alpha:copy",
    ]);
    // A digest reference of another repository keeps nothing.
    const other = await dryThenReal(cache, root, { keep: [`gamma@${c.beta.manifestDigest}`] });
    expect(other.imageRefsRemoved).toBe(4);
  });

  it("keeping one of two references of a manifest removes the other and frees nothing for it", async () => {
    const { cache, root } = await alphaBeta();
    await loadEach(cache, [[c.beta, "beta:v2"]]);
    const betaFiles = imageFiles(root, c.beta);
    const report = await dryThenReal(cache, root, { keep: ["beta:v2"] });
    const beta = report.removed.find((r) => r.reference === "beta:latest");
    expect(beta).toEqual({ reference: "beta:latest", manifestDigest: c.beta.manifestDigest, bytesFreed: 0 });
    for (const p of betaFiles) expect(existsSync(p), p).toBe(true);
    expect(await references(cache)).toEqual(["beta:v2"]);
  });

  it("rejects a malformed keep entry with InvalidReferenceError and changes nothing", async () => {
    const { cache, root } = await alphaBeta();
    const disk = await artifactSnapshot(root);
    const err = await rejectsWith(cache.prune({ keep: ["beta", "Not A Ref"] }), InvalidReferenceError, "INVALID_REFERENCE");
    expect(err.input).toBe("Not A Ref");
    expect(await artifactSnapshot(root)).toEqual(disk);
  });

  it("gracePeriodMs keeps references created within it", async () => {
    const root = await freshRoot();
    const cache = ImageCache.open({ root });
    await loadEach(cache, [[c.alpha, "example.com/old:1"]]);
    await sleep(AGE_GAP_MS);
    await loadEach(cache, [[c.beta, "example.com/fresh:1"]]);
    const report = await dryThenReal(cache, root, { gracePeriodMs: THRESHOLD_MS });
    expect(report.removed.map((r) => r.reference)).toEqual(["example.com/old:1"]);
    expect(await references(cache)).toEqual(["example.com/fresh:1"]);
  });

  it("gracePeriodMs keeps references used within it", async () => {
    const { cache, root } = await alphaBeta();
    await sleep(AGE_GAP_MS);
    await (await cache.acquire("example.com/team/alpha:1.0", { snapshot: "snap" })).release();
    const report = await dryThenReal(cache, root, { gracePeriodMs: THRESHOLD_MS });
    expect(report.removed.map((r) => r.reference)).toEqual(["beta:latest"]);
    expect(await references(cache)).toEqual(["example.com/team/alpha:1.0"]);
    // The default grace period is 0: the next prune takes alpha too.
    expect((await cache.prune()).removed.map((r) => r.reference)).toEqual(["example.com/team/alpha:1.0"]);
  });

  it("combines options: keep wins over age, grace over age", async () => {
    const root = await freshRoot();
    const cache = ImageCache.open({ root });
    await loadEach(cache, [
      [c.alpha, "example.com/a:1"],
      [c.beta, "example.com/b:1"],
      [c.legacy, "example.com/c:1"],
    ]);
    await sleep(AGE_GAP_MS);
    await (await cache.acquire("example.com/c:1", { sandbox: "recent" })).release();
    const report = await dryThenReal(cache, root, {
      olderThan: THRESHOLD_MS,
      keep: ["example.com/a:1"],
      gracePeriodMs: THRESHOLD_MS,
    });
    expect(report.removed.map((r) => r.reference)).toEqual(["example.com/b:1"]);
  });

  it("rejects invalid options with InvalidArgumentError naming the option, changing nothing", async () => {
    const { cache, root } = await alphaBeta();
    const disk = await artifactSnapshot(root);
    const loose = cache as unknown as { prune: (opts: unknown) => Promise<unknown> };
    const cases: [unknown, string][] = [
      [{ maxBytes: -1 }, "maxBytes"],
      [{ maxBytes: 1.5 }, "maxBytes"],
      [{ maxBytes: Number.NaN }, "maxBytes"],
      [{ maxBytes: Number.POSITIVE_INFINITY }, "maxBytes"],
      [{ maxBytes: 2 ** 60 }, "maxBytes"],
      [{ maxBytes: "20G" }, "maxBytes"],
      [{ gracePeriodMs: -5 }, "gracePeriodMs"],
      [{ gracePeriodMs: 0.5 }, "gracePeriodMs"],
      [{ gracePeriodMs: "10m" }, "gracePeriodMs"],
      [{ olderThan: -1 }, "olderThan"],
      [{ olderThan: 1.5 }, "olderThan"],
      [{ olderThan: Number.NaN }, "olderThan"],
      [{ olderThan: new Date(Number.NaN) }, "olderThan"],
      [{ olderThan: "7d" }, "olderThan"],
      [{ dryRun: "yes" }, "dryRun"],
      [{ keep: "beta" }, "keep"],
      [{ keep: ["beta", 1] }, "keep"],
      [[], "options"],
      [null, "options"],
    ];
    for (const [opts, argument] of cases) {
      const err = await rejectsWith(loose.prune(opts), InvalidArgumentError, "INVALID_ARGUMENT");
      expect(err.argument, JSON.stringify(opts)).toBe(argument);
    }
    expect(await artifactSnapshot(root)).toEqual(disk);
    expect(await references(cache)).toEqual(["beta:latest", "example.com/team/alpha:1.0"]);
  });

  it("Image.prune passes options to the default cache", async () => {
    const root = await freshRoot();
    Image.configure({ root });
    await loadEach(ImageCache.open({ root }), [
      [c.alpha, "example.com/a:1"],
      [c.beta, "example.com/b:1"],
    ]);
    const dry = await Image.prune({ dryRun: true, keep: ["example.com/b:1"] });
    expect(dry.removed.map((r) => r.reference)).toEqual(["example.com/a:1"]);
    const real = await Image.prune({ keep: ["example.com/b:1"] });
    expect(real).toEqual({ ...dry, dryRun: false });
    expect((await Image.list()).map((h) => h.reference)).toEqual(["example.com/b:1"]);
    Image.configure({});
  });
});

describe("prune maxBytes", () => {
  /**
   * Four images over a shared-layer pattern: `base` in all, `mid` in p and q only, and a top
   * layer of each image's own.
   */
  async function sharedImages(): Promise<{ base: LayerFixture; mid: LayerFixture; images: Record<string, ImageFixture> }> {
    const base = await makeLayer({ "etc/base": "shared by every image\n".repeat(40) }, { gzip: true });
    const mid = await makeLayer({ "usr/lib/mid": "shared by p and q\n".repeat(300) }, { gzip: true });
    const images: Record<string, ImageFixture> = {};
    for (const [name, withMid] of [
      ["p", true],
      ["q", true],
      ["r", false],
      ["s", false],
    ] as const) {
      const top = await makeLayer({ [`app/${name}`]: `${name} only\n`.repeat(100) }, { gzip: true });
      images[name] = makeImage(withMid ? [base, mid, top] : [base, top], {
        env: [`NAME=${name}`],
        cmd: [`/app/${name}`],
        labels: {},
      });
    }
    return { base, mid, images };
  }

  /** The files of `image` no other image uses, given the layers it shares. */
  function ownFiles(root: string, image: ImageFixture, shared: readonly LayerFixture[]): string[] {
    const sharedIds = new Set(shared.map((l) => l.diffId));
    return imageFiles(root, image).filter((p) => ![...sharedIds].some((d) => p === layerPath(root, d)));
  }

  async function loadedLru(): Promise<{
    cache: ImageCache;
    root: string;
    base: LayerFixture;
    mid: LayerFixture;
    images: Record<string, ImageFixture>;
  }> {
    const { base, mid, images } = await sharedImages();
    const root = await freshRoot();
    const cache = ImageCache.open({ root });
    const archive = await tempFile(
      "four.tar",
      await ociLayoutTar(
        Object.entries(images).map(([name, image]) => ({
          image,
          annotations: { "io.containerd.image.name": `example.com/${name}:1` },
        })),
      ),
    );
    await cache.load(archive);
    // Least recently used first: p, r, q, s (not the load or name order).
    for (const name of ["p", "r", "q", "s"]) {
      await sleep(15);
      await (await cache.acquire(`example.com/${name}:1`, { sandbox: `sb-${name}` })).release();
    }
    return { cache, root, base, mid, images };
  }

  it("evicts least recently used images until the cache fits, freeing a shared layer with its last user", async () => {
    const { cache, root, base, mid, images } = await loadedLru();
    const img = (name: string) => images[name] as ImageFixture;
    const own = {
      p: await bytesOf(ownFiles(root, img("p"), [base, mid])),
      q: await bytesOf(ownFiles(root, img("q"), [base, mid])),
      r: await bytesOf(ownFiles(root, img("r"), [base])),
    };
    const midBytes = (await lstat(layerPath(root, mid.diffId))).size;
    const storedBefore = await storedBytes(root);
    const before = await cacheBytes(root);

    // Removing p alone is just enough: one eviction, and mid stays for q.
    let dry = await cache.prune({ dryRun: true, maxBytes: before - own.p });
    expect(dry.bytesBefore).toBe(before);
    expect(dry.removed).toEqual([{ reference: "example.com/p:1", manifestDigest: img("p").manifestDigest, bytesFreed: own.p }]);
    expect(dry.bytesAfter).toBe(before - own.p);

    // Less than p and r free: q goes too, and with it mid (its last user), not base.
    const maxBytes = before - own.p - own.r - 1;
    dry = await cache.prune({ dryRun: true, maxBytes });
    expect(dry.removed).toEqual([
      { reference: "example.com/p:1", manifestDigest: img("p").manifestDigest, bytesFreed: own.p },
      { reference: "example.com/r:1", manifestDigest: img("r").manifestDigest, bytesFreed: own.r },
      { reference: "example.com/q:1", manifestDigest: img("q").manifestDigest, bytesFreed: own.q + midBytes },
    ]);

    const report = await dryThenReal(cache, root, { maxBytes });
    expect(report.bytesBefore).toBe(before);
    expect(report.bytesAfter).toBeLessThanOrEqual(maxBytes);
    expect(report.bytesReclaimed).toBe(own.p + own.r + own.q + midBytes);
    expect(report.removed.reduce((sum, r) => sum + r.bytesFreed, 0)).toBe(report.bytesReclaimed);
    expect(report).toMatchObject({ imageRefsRemoved: 3, manifestsRemoved: 3, layersRemoved: 4 });
    expect(await references(cache)).toEqual(["example.com/s:1"]);
    expect(existsSync(layerPath(root, mid.diffId))).toBe(false);
    for (const p of imageFiles(root, img("s"))) expect(existsSync(p), p).toBe(true);
    // The size after is the artifacts left plus the index as it was measured before (the
    // index's own files change size when the prune commits).
    expect(report.bytesAfter).toBe((await storedBytes(root)) + (before - storedBefore));
  });

  it("removes nothing when the cache already fits, and everything unpinned for a budget of 0", async () => {
    const { cache, root, images } = await loadedLru();
    const before = await cacheBytes(root);
    const fits = await dryThenReal(cache, root, { maxBytes: before });
    expect(fits.removed).toEqual([]);
    expect(fits.imageRefsRemoved).toBe(0);

    // A use pins s: it is never evicted, even though the budget is not met.
    const use = await cache.acquire("example.com/s:1", { sandbox: "running" });
    const report = await dryThenReal(cache, root, { maxBytes: 0 });
    expect(report.removed.map((r) => r.reference)).toEqual(["example.com/p:1", "example.com/r:1", "example.com/q:1"]);
    expect(report.bytesAfter).toBeGreaterThan(0);
    for (const p of imageFiles(root, images["s"] as ImageFixture)) expect(existsSync(p), p).toBe(true);
    await use.release();
  });

  it("combines with keep: a kept image is skipped and the next least recently used goes", async () => {
    const { cache, root, base, mid, images } = await loadedLru();
    const ownR = await bytesOf(ownFiles(root, images["r"] as ImageFixture, [base]));
    const before = await cacheBytes(root);
    const report = await dryThenReal(cache, root, { maxBytes: before - 1, keep: ["example.com/p:1"] });
    expect(report.removed).toEqual([
      { reference: "example.com/r:1", manifestDigest: (images["r"] as ImageFixture).manifestDigest, bytesFreed: ownR },
    ]);
    expect(existsSync(layerPath(root, mid.diffId))).toBe(true);
  });
});

describe("uses with a ttl", () => {
  it("pin until they expire, are then listed as expired and no longer block remove", async () => {
    const { cache } = await alphaBeta();
    const use = await cache.acquire("beta", { sandbox: "short" }, { ttlMs: TTL_MS });
    expect(use.expiresAt).toBeInstanceOf(Date);
    expect(use.expiresAt?.getTime()).toBe(use.since.getTime() + TTL_MS);
    expect(use.expired).toBe(false);
    await rejectsWith(cache.remove("beta"), ImageInUseError, "IMAGE_IN_USE");
    expect((await cache.prune({ dryRun: true })).removed.map((r) => r.reference)).toEqual([
      "example.com/team/alpha:1.0",
    ]);
    expect(Date.now(), "the machine was too slow to check the use before it expired").toBeLessThan(
      use.expiresAt!.getTime(),
    );

    await sleepUntil(new Date(use.expiresAt!.getTime() + 50));
    const [listed] = await cache.uses("beta");
    expect(listed?.expired).toBe(true);
    expect(listed?.expiresAt?.getTime()).toBe(use.expiresAt?.getTime());
    await cache.remove("beta");
    expect(await references(cache)).toEqual(["example.com/team/alpha:1.0"]);
  });

  it("an expired use does not keep its image from prune, which drops the use with it", async () => {
    const { cache, root } = await alphaBeta();
    await cache.acquire("beta", { snapshot: "died" }, { ttlMs: 100 });
    const forever = await cache.acquire("example.com/team/alpha:1.0", { sandbox: "alive" });
    expect(forever.expiresAt).toBeNull();
    expect(forever.expired).toBe(false);
    await sleep(250);
    const report = await dryThenReal(cache, root);
    expect(report.removed.map((r) => r.reference)).toEqual(["beta:latest"]);
    expect((await cache.uses()).map((u) => [u.holder, u.expired])).toEqual([[{ sandbox: "alive" }, false]]);
    await forever.release();
  });

  it("acquiring again renews the expiry, or removes it without ttlMs", async () => {
    const { cache } = await alphaBeta();
    const first = await cache.acquire("beta", { sandbox: "renewing" }, { ttlMs: TTL_MS });
    await sleep(TTL_MS / 2);
    const renewed = await cache.acquire("beta", { sandbox: "renewing" }, { ttlMs: TTL_MS });
    expect((await cache.uses()).length).toBe(1);
    expect(renewed.expiresAt!.getTime()).toBeGreaterThanOrEqual(first.expiresAt!.getTime() + TTL_MS / 2);
    // Past the first expiry, before the renewed one: still pinned.
    await sleepUntil(new Date(first.expiresAt!.getTime() + 50));
    const [listed] = await cache.uses();
    expect(listed?.expired).toBe(false);
    expect((await cache.prune()).removed.map((r) => r.reference)).toEqual(["example.com/team/alpha:1.0"]);
    expect(Date.now(), "the machine was too slow to check the renewal").toBeLessThan(renewed.expiresAt!.getTime());

    const permanent = await cache.acquire("beta", { sandbox: "renewing" });
    expect(permanent.expiresAt).toBeNull();
    await sleepUntil(new Date(renewed.expiresAt!.getTime() + 50));
    expect((await cache.prune()).imageRefsRemoved).toBe(0);
    await permanent.release();
  });

  it("rejects a ttlMs that is not a whole number above 0", async () => {
    const { cache } = await alphaBeta();
    const loose = cache as unknown as { acquire: (r: string, h: unknown, o: unknown) => Promise<unknown> };
    for (const ttlMs of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, "1s"]) {
      const err = await rejectsWith(
        loose.acquire("beta", { sandbox: "x" }, { ttlMs }),
        InvalidArgumentError,
        "INVALID_ARGUMENT",
      );
      expect(err.argument).toBe("ttlMs");
    }
    const err = await rejectsWith(loose.acquire("beta", { sandbox: "x" }, 5), InvalidArgumentError, "INVALID_ARGUMENT");
    expect(err.argument).toBe("options");
    expect(await cache.uses()).toEqual([]);
  });
});

describe("bytes on disk", () => {
  it("each prune's reported bytes are the measured drop, and the last one empties the store", async () => {
    const { cache, root } = await alphaBeta();
    const first = await dryThenReal(cache, root, { keep: ["beta"] });
    expect(first.removed.map((r) => r.reference)).toEqual(["example.com/team/alpha:1.0"]);
    expect(first.removed[0]?.bytesFreed).toBe(first.bytesReclaimed);
    const before = await storedBytes(root);
    const second = await dryThenReal(cache, root);
    expect(second.bytesReclaimed).toBe(before);
    expect(second.removed[0]?.bytesFreed).toBe(before);
    expect(await storedBytes(root)).toBe(0);
  });
});
