// Two processes loading different archives into one cache while both prune it: afterwards
// every listed image must inspect cleanly with all its blobs on disk.

import { spawn } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";

import { expect, it } from "vitest";

import { ImageCache } from "../src/index";
import { corpus, dockerSaveTar, ociLayoutTar } from "./fixtures";
import { DIST_INDEX, blobExists, freshRoot, tempDir, tempFile, tmpFiles } from "./helpers";

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
  for (const h of list) {
    const d = await cache.inspect(h.reference);
    const digests = [d.handle.manifestDigest as string, d.config?.digest as string, ...d.layers.map((l) => l.blobDigest)];
    for (const digest of digests) expect(blobExists(root, digest), `${h.reference} ${digest}`).toBe(true);
  }
  expect(await tmpFiles(root)).toEqual([]);
});
