// Two processes loading different archives into one cache while both prune it: afterwards
// every listed image must inspect cleanly with all its files on disk (manifest and config blobs,
// layer EROFS images), and no file may be left that no listed image uses.

import { spawn } from "node:child_process";
import { lstat, writeFile } from "node:fs/promises";
import { join, relative } from "node:path";

import { expect, it } from "vitest";

import { ImageCache } from "../src/index";
import { corpus, dockerSaveTar, ociLayoutTar } from "./fixtures";
import {
  DIST_INDEX,
  bytesOf,
  filesUnder,
  freshRoot,
  imageFiles,
  layerPath,
  tempDir,
  tempFile,
  tmpFiles,
} from "./helpers";

const ITERATIONS = 6;

const WORKER = `
const { ImageCache } = require(process.env.OCICACHE_DIST);
(async () => {
  const cache = ImageCache.open({ root: process.env.ROOT });
  for (let i = 0; i < Number(process.env.ITERATIONS); i++) {
    await cache.load(process.env.ARCHIVE);
    await cache.prune();
  }
  await cache.load(process.env.ARCHIVE);
})().catch((err) => {
  console.error(err && err.code, err && err.message);
  process.exit(1);
});
`;

function worker(script: string, root: string, archive: string): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script], {
      env: { ...process.env, OCICACHE_DIST: DIST_INDEX, ROOT: root, ARCHIVE: archive, ITERATIONS: String(ITERATIONS) },
      stdio: ["ignore", "ignore", "pipe"],
    });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", reject);
    child.on("exit", (code) => resolve({ code, stderr }));
  });
}

it("two processes loading and pruning one cache keep it consistent", async () => {
  const c = await corpus();
  const root = await freshRoot();
  const script = join(await tempDir(), "worker.cjs");
  await writeFile(script, WORKER);
  const a = await tempFile(
    "a.tar",
    await ociLayoutTar([
      { image: c.alpha, annotations: { "org.opencontainers.image.ref.name": "example.com/alpha:1" } },
      { image: c.beta, annotations: { "org.opencontainers.image.ref.name": "example.com/beta:1" } },
    ]),
  );
  const b = await tempFile("b.tar", await dockerSaveTar([{ image: c.legacy, repoTags: ["legacy:1"] }]));

  const results = await Promise.all([worker(script, root, a), worker(script, root, b)]);
  for (const r of results) expect(r, r.stderr).toMatchObject({ code: 0 });

  const cache = ImageCache.open({ root });
  const list = await cache.list();
  // The worker that finished last loaded after every prune, so its images at least are listed.
  expect(list.length).toBeGreaterThan(0);
  const used = new Set<string>();
  for (const h of list) {
    const d = await cache.inspect(h.reference);
    const files = imageFiles(root, {
      manifestDigest: d.handle.manifestDigest as string,
      configDigest: d.config?.digest as string,
      layers: d.layers,
    });
    // lstat throws for a missing file.
    expect(h.sizeBytes, h.reference).toBe(await bytesOf(files));
    for (const l of d.layers) {
      expect(l.erofsSizeBytes, `${h.reference} ${l.diffId}`).toBe((await lstat(layerPath(root, l.diffId))).size);
    }
    for (const f of files) used.add(relative(root, f));
  }
  // Every load commits the index rows for what it published, and every prune deletes what no
  // row names, so the disk holds exactly the listed images' files: no orphan, nothing missing.
  const stored = [];
  for (const dir of ["blobs", "layers", "fsmeta", "vmdk"]) {
    for (const f of (await filesUnder(join(root, dir))).keys()) stored.push(join(dir, f));
  }
  expect(stored.sort()).toEqual([...used].sort());
  expect(await tmpFiles(root)).toEqual([]);
});
