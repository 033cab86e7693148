// diskUsage against the files on disk (totals by kind, per-image shared, exclusive and
// reclaimable bytes for images sharing layers), and bootDisk's paths.

import { existsSync } from "node:fs";
import { lstat, mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";

import { beforeAll, describe, expect, it } from "vitest";

import {
  CorruptCacheError,
  Image,
  ImageCache,
  ImageNotFoundError,
  UnsupportedError,
  type DiskUsage,
} from "../src/index";
import { corpus, ociLayoutTar, type Corpus, type ImageFixture } from "./fixtures";
import {
  blobPath,
  bytesOf,
  filesUnder,
  freshRoot,
  fsmetaPath,
  imageFiles,
  layerPath,
  rejectsWith,
  tempFile,
  vmdkExtents,
  vmdkPath,
} from "./helpers";

let c: Corpus;

beforeAll(async () => {
  c = await corpus();
});

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Bytes of every file under `root/<dir>`, measured with lstat. */
async function bytesUnder(root: string, dir: string): Promise<number> {
  let total = 0;
  for (const size of (await filesUnder(join(root, dir))).values()) total += size;
  return total;
}

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

/** Checks every total of `usage` against the disk. */
async function expectTotalsMatchDisk(root: string, usage: DiskUsage): Promise<void> {
  const onDisk = {
    layers: await bytesUnder(root, "layers"),
    fsmeta: await bytesUnder(root, "fsmeta"),
    vmdk: await bytesUnder(root, "vmdk"),
    blobs: await bytesUnder(root, "blobs"),
    index: await indexBytes(root),
    temporary: await bytesUnder(root, "tmp"),
  };
  const { images: _images, total, ...kinds } = usage;
  expect(kinds).toEqual(onDisk);
  expect(total).toBe(Object.values(onDisk).reduce((a, b) => a + b, 0));
}

async function loadPair(): Promise<{ cache: ImageCache; root: string }> {
  const root = await freshRoot();
  const cache = ImageCache.open({ root });
  const archive = await tempFile(
    "pair.tar",
    await ociLayoutTar([
      { image: c.alpha, annotations: { "io.containerd.image.name": "example.com/team/alpha:1.0" } },
      { image: c.beta, annotations: { "io.containerd.image.name": "docker.io/library/beta:latest" } },
    ]),
  );
  await cache.load(archive);
  return { cache, root };
}

/** An image's files other than the base layer it shares: what only it uses. */
function exclusiveFiles(root: string, image: ImageFixture): string[] {
  return imageFiles(root, image).filter((p) => p !== layerPath(root, c.base.diffId));
}

describe("diskUsage", () => {
  it("is all zeros but the index on an empty cache", async () => {
    const root = await freshRoot();
    const usage = await ImageCache.open({ root }).diskUsage();
    expect(usage).toMatchObject({ layers: 0, fsmeta: 0, vmdk: 0, blobs: 0, temporary: 0, images: [] });
    await expectTotalsMatchDisk(root, usage);
  });

  it("reports each kind's bytes on disk, and per image its shared and exclusive bytes", async () => {
    const { cache, root } = await loadPair();
    const usage = await cache.diskUsage();
    await expectTotalsMatchDisk(root, usage);
    expect(usage.layers).toBeGreaterThan(0);
    expect(usage.fsmeta).toBeGreaterThan(0);
    expect(usage.vmdk).toBeGreaterThan(0);
    expect(usage.blobs).toBe(c.alpha.blobBytes + c.beta.blobBytes);

    const base = (await lstat(layerPath(root, c.base.diffId))).size;
    const alpha = await bytesOf(exclusiveFiles(root, c.alpha));
    const beta = await bytesOf(exclusiveFiles(root, c.beta));
    // Sorted by canonical reference: docker.io/library/beta:latest, then example.com/...
    expect(usage.images).toEqual([
      {
        reference: "beta:latest",
        manifestDigest: c.beta.manifestDigest,
        sharedBytes: base,
        exclusiveBytes: beta,
        reclaimableBytes: beta,
        tagged: true,
      },
      {
        reference: "example.com/team/alpha:1.0",
        manifestDigest: c.alpha.manifestDigest,
        sharedBytes: base,
        exclusiveBytes: alpha,
        reclaimableBytes: alpha,
        tagged: true,
      },
    ]);
    // Shared bytes count once on disk: the kinds add up to exclusive + shared once.
    expect(usage.layers + usage.fsmeta + usage.vmdk + usage.blobs).toBe(alpha + beta + base);
    expect(Object.isFrozen(usage) && Object.isFrozen(usage.images) && Object.isFrozen(usage.images[0])).toBe(true);
  });

  it("reclaimable is what removing the reference then reclaims", async () => {
    const { cache, root } = await loadPair();
    const before = await cache.diskUsage();
    const alpha = before.images.find((i) => i.reference === "example.com/team/alpha:1.0");
    const report = await cache.prune({ keep: ["beta"] });
    expect(report.bytesReclaimed).toBe(alpha?.reclaimableBytes);
    // beta, now alone, owns the base layer: its exclusive bytes are all its files.
    const after = await cache.diskUsage();
    expect(after.images).toEqual([
      {
        reference: "beta:latest",
        manifestDigest: c.beta.manifestDigest,
        sharedBytes: 0,
        exclusiveBytes: await bytesOf(imageFiles(root, c.beta)),
        reclaimableBytes: await bytesOf(imageFiles(root, c.beta)),
        tagged: true,
      },
    ]);
    await expectTotalsMatchDisk(root, after);
  });

  it("nothing is reclaimable for a reference whose manifest has another reference or an unexpired use", async () => {
    const { cache } = await loadPair();
    await cache.load(
      await tempFile(
        "again.tar",
        await ociLayoutTar([{ image: c.beta, annotations: { "io.containerd.image.name": "beta:v2" } }]),
      ),
    );
    const use = await cache.acquire("example.com/team/alpha:1.0", { sandbox: "pin" }, { ttlMs: 1000 });
    let usage = await cache.diskUsage();
    expect(usage.images.map((i) => [i.reference, i.reclaimableBytes])).toEqual([
      ["beta:latest", 0],
      ["beta:v2", 0],
      ["example.com/team/alpha:1.0", 0],
    ]);
    const betaRows = usage.images.filter((i) => i.manifestDigest === c.beta.manifestDigest);
    expect(betaRows[0]?.exclusiveBytes).toBe(betaRows[1]?.exclusiveBytes);
    // Once the use expires, alpha is reclaimable again.
    expect(Date.now(), "the machine was too slow to check the use before it expired").toBeLessThan(
      use.expiresAt!.getTime(),
    );
    await sleep(use.expiresAt!.getTime() + 50 - Date.now());
    usage = await cache.diskUsage();
    const alpha = usage.images.find((i) => i.reference === "example.com/team/alpha:1.0");
    expect(alpha?.reclaimableBytes).toBe(alpha?.exclusiveBytes);
    expect(alpha?.reclaimableBytes).toBeGreaterThan(0);
    await use.release();
  });

  it("counts tmp/ leftovers as temporary", async () => {
    const { cache, root } = await loadPair();
    await mkdir(join(root, "tmp", "load-crashed"), { recursive: true });
    await writeFile(join(root, "tmp", "load-crashed", "blob"), Buffer.alloc(5000));
    const usage = await cache.diskUsage();
    expect(usage.temporary).toBe(5000);
    await expectTotalsMatchDisk(root, usage);
  });

  it("works through Image and rejects on the cloud backend", async () => {
    const root = await freshRoot();
    Image.configure({ root });
    expect((await Image.diskUsage()).images).toEqual([]);
    Image.configure({ root, backend: { cloud: { url: "https://cache.example.com" } } });
    await rejectsWith(Image.diskUsage(), UnsupportedError, "UNSUPPORTED");
    await rejectsWith(Image.bootDisk("busybox"), UnsupportedError, "UNSUPPORTED");
    Image.configure({});
  });
});

describe("bootDisk", () => {
  it("returns the VMDK, fsmeta and layer image paths of an image", async () => {
    const { cache, root } = await loadPair();
    const disk = await cache.bootDisk("example.com/team/alpha:1.0");
    expect(disk).toEqual({
      vmdk: vmdkPath(root, c.alpha.manifestDigest),
      fsmeta: fsmetaPath(root, c.alpha.manifestDigest),
      layers: c.alpha.layers.map((l) => layerPath(root, l.diffId)),
    });
    expect(Object.isFrozen(disk) && Object.isFrozen(disk.layers)).toBe(true);
    // The descriptor's extents are exactly these files, fsmeta first.
    expect((await vmdkExtents(disk.vmdk)).map((e) => e.path)).toEqual([disk.fsmeta, ...disk.layers]);
    // A digest reference names the same image.
    expect(await cache.bootDisk(`example.com/team/alpha@${c.alpha.manifestDigest}`)).toEqual(disk);
  });

  it("rebuilds a missing fsmeta image and VMDK descriptor byte for byte", async () => {
    const { cache } = await loadPair();
    const disk = await cache.bootDisk("beta");
    const fsmeta = await readFile(disk.fsmeta);
    const vmdk = await readFile(disk.vmdk);
    await rm(disk.fsmeta);
    await rm(disk.vmdk);
    expect(await cache.bootDisk("beta")).toEqual(disk);
    expect(await readFile(disk.fsmeta)).toEqual(fsmeta);
    expect(await readFile(disk.vmdk)).toEqual(vmdk);
  });

  it("rejects an unknown reference with ImageNotFoundError, a missing layer image with CorruptCacheError", async () => {
    const { cache, root } = await loadPair();
    await rejectsWith(cache.bootDisk("missing:1"), ImageNotFoundError, "IMAGE_NOT_FOUND");
    expect(existsSync(blobPath(root, c.alpha.manifestDigest))).toBe(true);
    await rm(layerPath(root, c.alpha.layers[1]!.diffId));
    await rejectsWith(cache.bootDisk("example.com/team/alpha:1.0"), CorruptCacheError, "CORRUPT_CACHE");
  });
});
