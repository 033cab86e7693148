// The cache root is a trust boundary, through the API and the CLI: a folder of the cache that
// is a symlink fails every operation with CorruptCacheError naming it (before, prune emptied a
// symlinked tmp/ and load wrote through it), and a stray folder where prune expected a file is
// left, reported in `warnings` (and on the CLI's stderr), while the rest is reclaimed (before,
// prune stopped with an IoError after its index had committed).

import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, readFile, rename, rm, symlink, writeFile } from "node:fs/promises";
import { join, relative } from "node:path";

import { beforeAll, describe, expect, it } from "vitest";

import { CorruptCacheError, ImageCache } from "../src/index";
import { corpus, ociLayoutTar, type Corpus } from "./fixtures";
import { CLI, filesUnder, freshRoot, layerPath, rejectsWith, tempDir, tempFile } from "./helpers";

let c: Corpus;
beforeAll(async () => {
  c = await corpus();
});

const ALPHA = "example.com/team/alpha:1.0";

/** A cache holding alpha, and an archive of beta to load into it. */
async function withAlpha(): Promise<{ root: string; betaTar: string }> {
  const root = await freshRoot();
  const archive = (image: typeof c.alpha, reference: string) =>
    ociLayoutTar([{ image, annotations: { "io.containerd.image.name": reference } }]);
  await ImageCache.open({ root }).load(await tempFile("alpha.tar", await archive(c.alpha, ALPHA)));
  return { root, betaTar: await tempFile("beta.tar", await archive(c.beta, "example.com/team/beta:1")) };
}

/** Every file under `dir` with its content, for equality checks. */
async function contents(dir: string): Promise<[string, string][]> {
  const out: [string, string][] = [];
  for (const path of (await filesUnder(dir)).keys()) {
    out.push([path, (await readFile(join(dir, path))).toString("hex")]);
  }
  return out.sort(([a], [b]) => a.localeCompare(b));
}

describe("the cache root is a trust boundary", () => {
  for (const rel of ["tmp", "layers/sha256"]) {
    it(`refuses a cache whose ${rel} is a symlink, with CorruptCacheError naming it`, async () => {
      const { root, betaTar } = await withAlpha();
      const outside = await tempDir("ocicache-outside-");
      await mkdir(join(outside, "load-decoy"), { recursive: true });
      await writeFile(join(outside, "load-decoy", "part"), "decoy");
      await writeFile(join(outside, `${"1".repeat(64)}.erofs`), Buffer.alloc(4096, 1));
      await rename(join(root, rel), join(await tempDir(), "aside"));
      await symlink(outside, join(root, rel));
      const before = await contents(outside);

      const operations: [string, (cache: ImageCache) => Promise<unknown>][] = [
        ["list", (cache) => cache.list()],
        ["load", (cache) => cache.load(betaTar)],
        ["prune", (cache) => cache.prune()],
        ["remove", (cache) => cache.remove(ALPHA, { force: true })],
        ["bootDisk", (cache) => cache.bootDisk(ALPHA)],
        ["diskUsage", (cache) => cache.diskUsage()],
      ];
      for (const [name, operation] of operations) {
        const err = await rejectsWith(operation(ImageCache.open({ root })), CorruptCacheError, "CORRUPT_CACHE");
        expect(err.path, name).toBe(join(root, rel));
      }
      expect(await contents(outside)).toEqual(before);
    });
  }

  it("prune leaves a stray folder named like a layer image, reports it and reclaims the rest", async () => {
    const { root } = await withAlpha();
    const own = layerPath(root, c.alpha.layers[1]!.diffId);
    await rm(own);
    await mkdir(own);
    await writeFile(join(own, "inside"), "kept");
    const cache = ImageCache.open({ root });

    const dry = await cache.prune({ dryRun: true });
    const report = await cache.prune();
    expect(report.warnings).toEqual(dry.warnings);
    expect(report.warnings).toHaveLength(1);
    expect(report.warnings[0]).toContain(own);
    expect(report.imageRefsRemoved).toBe(1);
    expect(await cache.list()).toEqual([]);
    expect(await readFile(join(own, "inside"), "utf8")).toBe("kept");
    for (const dir of ["blobs", "fsmeta", "vmdk", "tmp"]) {
      expect([...(await filesUnder(join(root, dir))).keys()], dir).toEqual([]);
    }
    expect([...(await filesUnder(join(root, "layers"))).keys()]).toEqual([
      join(relative(join(root, "layers"), own), "inside"),
    ]);
  });

  it("the CLI prints prune's warnings to stderr and succeeds", async () => {
    const { root } = await withAlpha();
    const stray = join(root, "tmp", "not-the-caches");
    await mkdir(stray, { recursive: true });
    const r = spawnSync(process.execPath, [CLI, "--root", root, "prune", "--yes", "--json"], {
      input: "",
      encoding: "utf8",
    });
    expect(r.status).toBe(0);
    expect(r.stderr).toContain(stray);
    expect((JSON.parse(r.stdout) as { warnings: string[] }).warnings).toHaveLength(1);
    expect(existsSync(stray)).toBe(true);
  });
});
