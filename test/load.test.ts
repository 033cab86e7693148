// Loading real archives built by test/fixtures.ts, then reading them back through every method;
// uses, remove and prune checked against the files on disk.

import { existsSync } from "node:fs";
import { lstat, mkdir, writeFile } from "node:fs/promises";
import { join, relative } from "node:path";

import { beforeAll, describe, expect, it } from "vitest";

import {
  DigestMismatchError,
  Image,
  ImageCache,
  ImageHandle,
  ImageInUseError,
  ImageNotFoundError,
  ImageUse,
  InvalidArchiveError,
  InvalidReferenceError,
  ReferenceRequiredError,
  type ImageDetail,
} from "../src/index";
import {
  MEDIA,
  corpus,
  dockerSaveTar,
  hexOf,
  makeImage,
  makeLayer,
  ociLayoutTar,
  sha256,
  tarOf,
  writeOciLayoutDir,
  type Corpus,
  type ImageFixture,
  type LayerFixture,
} from "./fixtures";
import {
  EROFS_BLOCK_SIZE,
  blobExists,
  blobPath,
  bytesOf,
  erofsStatedSize,
  freshRoot,
  fsmetaPath,
  imageFiles,
  layerExists,
  layerPath,
  namesIn,
  rejectsWith,
  snapshotRoot,
  storedBytes,
  tempDir,
  tempFile,
  tmpFiles,
  vmdkExtents,
  vmdkPath,
} from "./helpers";

let c: Corpus;

beforeAll(async () => {
  c = await corpus();
});

async function loadedCache(): Promise<{ cache: ImageCache; root: string }> {
  const root = await freshRoot();
  const cache = ImageCache.open({ root });
  const layout = await tempFile(
    "layout.tar",
    await ociLayoutTar([
      { image: c.alpha, annotations: { "org.opencontainers.image.ref.name": "example.com/team/alpha:1.0" } },
      { image: c.beta, annotations: { "io.containerd.image.name": "docker.io/library/beta:latest" } },
    ]),
  );
  await cache.load(layout);
  return { cache, root };
}

/**
 * Checks an inspect result against the fixture it was loaded from and against the files on
 * disk: each layer's `erofsSizeBytes` is the size of its EROFS image (a whole EROFS image, as its
 * superblock states), the VMDK descriptor's extents are the fsmeta image then each layer's image
 * at their sizes, and `sizeBytes` is the sum of the image's files (manifest and config blobs,
 * fsmeta, VMDK, one EROFS image per distinct layer). `manifestDigest` defaults to the fixture's
 * (a legacy docker-save image has a manifest the cache synthesizes).
 */
async function expectDetail(
  root: string,
  d: ImageDetail,
  image: ImageFixture,
  opts: { layerMediaTypes?: string[]; manifestDigest?: string } = {},
): Promise<void> {
  expect(d.handle).toBeInstanceOf(ImageHandle);
  expect(d.handle.manifestDigest).toBe(opts.manifestDigest ?? image.manifestDigest);
  expect(d.handle.architecture).toBe(image.architecture);
  expect(d.handle.os).toBe("linux");
  expect(d.handle.variant).toBeNull();
  expect(d.handle.layerCount).toBe(image.layers.length);
  expect(d.config).not.toBeNull();
  const f = image.fields;
  expect(d.config).toEqual({
    digest: image.configDigest,
    env: f.env,
    cmd: f.cmd,
    entrypoint: f.entrypoint ?? null,
    workingDir: f.workingDir ?? null,
    user: f.user ?? null,
    labels: f.labels,
    stopSignal: f.stopSignal ?? null,
    // From the config blob: the fixtures set no ports, volumes, date or author, and one
    // history entry per layer.
    exposedPorts: null,
    volumes: null,
    created: null,
    author: null,
    history: (JSON.parse(image.configBytes.toString()) as { history: { created: string; created_by: string }[] }).history.map(
      (h) => ({ created: new Date(h.created), createdBy: h.created_by, author: null, comment: null, emptyLayer: false }),
    ),
  });
  const erofsSizes: number[] = [];
  for (const l of image.layers) {
    const path = layerPath(root, l.diffId);
    const size = (await lstat(path)).size;
    expect(size % EROFS_BLOCK_SIZE, path).toBe(0);
    expect(await erofsStatedSize(path), path).toBe(size);
    erofsSizes.push(size);
  }
  expect(d.layers).toEqual(
    image.layers.map((l: LayerFixture, i) => ({
      diffId: l.diffId,
      blobDigest: l.blobDigest,
      mediaType: opts.layerMediaTypes?.[i] ?? l.mediaType,
      compressedSizeBytes: l.size,
      erofsSizeBytes: erofsSizes[i],
      position: i,
    })),
  );
  // The blobs kept are the manifest and config as distributed (the config's bytes are known).
  expect((await lstat(blobPath(root, image.configDigest))).size).toBe(image.configBytes.length);
  const manifestDigest = d.handle.manifestDigest as string;
  const fsmeta = fsmetaPath(root, manifestDigest);
  const fsmetaSize = (await lstat(fsmeta)).size;
  expect(fsmetaSize % EROFS_BLOCK_SIZE).toBe(0);
  expect(await erofsStatedSize(fsmeta)).toBe(fsmetaSize);
  expect(await vmdkExtents(vmdkPath(root, manifestDigest))).toEqual([
    { path: fsmeta, bytes: fsmetaSize },
    ...image.layers.map((l, i) => ({ path: layerPath(root, l.diffId), bytes: erofsSizes[i] })),
  ]);
  expect(d.handle.sizeBytes).toBe(await bytesOf(imageFiles(root, { ...image, manifestDigest })));
}

/** Hex names of blob files for these digests, sorted (what `blobs/sha256/` must hold). */
function blobNames(...digests: string[]): string[] {
  return [...new Set(digests.map(hexOf))].sort();
}

/** Names of a manifest's fsmeta image and VMDK descriptor files, as `namesIn` lists them. */
function manifestArtifactNames(...manifestDigests: string[]): { fsmeta: string[]; vmdk: string[] } {
  const hexes = [...new Set(manifestDigests.map(hexOf))].sort();
  return { fsmeta: hexes.map((h) => `${h}.erofs`), vmdk: hexes.map((h) => `${h}.vmdk`) };
}

/** The files only this image uses: manifest and config blobs, fsmeta, VMDK, and `layers`' images. */
function ownFiles(root: string, image: ImageFixture, layers: LayerFixture[]): string[] {
  return [
    blobPath(root, image.manifestDigest),
    blobPath(root, image.configDigest),
    fsmetaPath(root, image.manifestDigest),
    vmdkPath(root, image.manifestDigest),
    ...layers.map((l) => layerPath(root, l.diffId)),
  ];
}

/** Names of EROFS images for these layers' diff_ids, sorted (what `layers/sha256/` must hold). */
function layerNames(...layers: LayerFixture[]): string[] {
  return [...new Set(layers.map((l) => `${hexOf(l.diffId)}.erofs`))].sort();
}

describe("load", () => {
  it("loads an OCI layout tar and reports the fixture's values", async () => {
    const { cache, root } = await loadedCache();
    const list = await cache.list();
    expect(list.map((h) => h.reference).sort()).toEqual(["beta:latest", "example.com/team/alpha:1.0"]);

    const alpha = await cache.get("example.com/team/alpha:1.0");
    expect(alpha.reference).toBe("example.com/team/alpha:1.0");
    expect(alpha.manifestDigest).toBe(c.alpha.manifestDigest);
    expect(alpha.sizeBytes).toBe(await bytesOf(imageFiles(root, c.alpha)));
    expect(alpha.createdAt).toBeInstanceOf(Date);
    expect(Math.abs(Date.now() - (alpha.createdAt as Date).getTime())).toBeLessThan(60_000);
    // A fresh load is a use (issue 12): lastUsedAt is the load time, not null.
    expect(alpha.lastUsedAt).toBeInstanceOf(Date);
    expect(Object.isFrozen(alpha)).toBe(true);

    await expectDetail(root, await cache.inspect("example.com/team/alpha:1.0"), c.alpha);
    await expectDetail(root, await cache.inspect("beta"), c.beta);

    // Manifests and configs are kept as blobs; layer blobs are not kept, each distinct layer
    // (base is shared) is one EROFS image named by its diff_id.
    expect(await namesIn(root, "blobs")).toEqual(
      blobNames(c.alpha.manifestDigest, c.alpha.configDigest, c.beta.manifestDigest, c.beta.configDigest),
    );
    expect(await namesIn(root, "layers")).toEqual(layerNames(...c.alpha.layers, ...c.beta.layers));
    expect(await namesIn(root, "layers")).toHaveLength(3);
    const artifacts = manifestArtifactNames(c.alpha.manifestDigest, c.beta.manifestDigest);
    expect(await namesIn(root, "fsmeta")).toEqual(artifacts.fsmeta);
    expect(await namesIn(root, "vmdk")).toEqual(artifacts.vmdk);
    expect(await tmpFiles(root)).toEqual([]);
  });

  it("loads an OCI layout folder", async () => {
    const dir = await tempDir("ocicache-layout-");
    await writeOciLayoutDir(dir, [
      { image: c.beta, annotations: { "org.opencontainers.image.ref.name": "registry.example.com:5000/beta:v2" } },
    ]);
    const root = await freshRoot();
    const cache = ImageCache.open({ root });
    const handles = await cache.load(dir);
    expect(handles.map((h) => h.reference)).toEqual(["registry.example.com:5000/beta:v2"]);
    expect(handles[0]?.manifestDigest).toBe(c.beta.manifestDigest);
    await expectDetail(root, await cache.inspect("registry.example.com:5000/beta:v2"), c.beta);
  });

  it("loads a gzip-compressed OCI layout tar", async () => {
    const { gzipSync } = await import("node:zlib");
    const archive = gzipSync(
      await ociLayoutTar([{ image: c.alpha, annotations: { "io.containerd.image.name": "docker.io/org/alpha:gz" } }]),
    );
    const root = await freshRoot();
    const cache = ImageCache.open({ root });
    const handles = await cache.load(await tempFile("layout.tar.gz", archive));
    expect(handles.map((h) => h.reference)).toEqual(["org/alpha:gz"]);
    await expectDetail(root, await cache.inspect("org/alpha:gz"), c.alpha);
  });

  it("loads a legacy docker-save archive", async () => {
    const root = await freshRoot();
    const cache = ImageCache.open({ root });
    const archive = await tempFile(
      "save.tar",
      await dockerSaveTar([{ image: c.legacy, repoTags: ["legacy:1.0", "example.com/legacy:stable"] }]),
    );
    const handles = await cache.load(archive);
    expect(handles.map((h) => h.reference)).toEqual(["legacy:1.0", "example.com/legacy:stable"]);
    const d = await cache.inspect("legacy:1.0");
    // docker save has no manifest blob; the cache synthesizes one and stores it.
    expect(d.handle.manifestDigest).toMatch(/^sha256:[0-9a-f]{64}$/);
    const manifestDigest = d.handle.manifestDigest as string;
    await expectDetail(root, d, c.legacy, {
      layerMediaTypes: c.legacy.layers.map(() => MEDIA.dockerLayer),
      manifestDigest,
    });
    expect(blobExists(root, manifestDigest)).toBe(true);
    // The plain layer tars (blob digest = diff_id) are not kept as blobs, only as EROFS images.
    expect(await namesIn(root, "blobs")).toEqual(blobNames(manifestDigest, c.legacy.configDigest));
    expect(await namesIn(root, "layers")).toEqual(layerNames(...c.legacy.layers));
    const artifacts = manifestArtifactNames(manifestDigest);
    expect(await namesIn(root, "fsmeta")).toEqual(artifacts.fsmeta);
    expect(await namesIn(root, "vmdk")).toEqual(artifacts.vmdk);
    expect((await cache.get("example.com/legacy:stable")).manifestDigest).toBe(manifestDigest);
  });

  it("is idempotent: loading the same archive again only refreshes references", async () => {
    const { cache, root } = await loadedCache();
    const before = await snapshotRoot(root);
    const again = await tempFile("again.tar", await ociLayoutTar([{ image: c.alpha, annotations: { "org.opencontainers.image.ref.name": "example.com/team/alpha:1.0" } }]));
    await cache.load(again);
    expect(await snapshotRoot(root)).toEqual(before);
    expect((await cache.list()).length).toBe(2);
  });

  it("normalizes references the same way in every method", async () => {
    const root = await freshRoot();
    const cache = ImageCache.open({ root });
    await cache.load(await tempFile("s.tar", await dockerSaveTar([{ image: c.legacy, repoTags: ["busybox:latest"] }])));
    const spellings = ["busybox", "busybox:latest", "docker.io/library/busybox:latest", "library/busybox", "index.docker.io/library/busybox"];
    for (const ref of spellings) {
      expect((await cache.get(ref)).reference, ref).toBe("busybox:latest");
      expect((await cache.inspect(ref)).handle.reference, ref).toBe("busybox:latest");
    }
    const digest = (await cache.get("busybox")).manifestDigest as string;
    const byDigest = await cache.get(`busybox@${digest}`);
    expect(byDigest.manifestDigest).toBe(digest);
    expect(byDigest.reference).toBe(`busybox@${digest}`);

    const use = await cache.acquire("docker.io/library/busybox", { sandbox: "norm" });
    expect(use.reference).toBe("busybox:latest");
    expect((await cache.uses("busybox:latest")).length).toBe(1);
    await use.release();
    await cache.remove("docker.io/library/busybox:latest");
    await rejectsWith(cache.get("busybox"), ImageNotFoundError, "IMAGE_NOT_FOUND");
    await rejectsWith(cache.get("busybox:other"), ImageNotFoundError, "IMAGE_NOT_FOUND");
  });

  it("adds the tag option as one more reference of the first image", async () => {
    const cache = ImageCache.open({ root: await freshRoot() });
    const archive = await tempFile("s.tar", await dockerSaveTar([{ image: c.legacy, repoTags: ["legacy:1.0"] }]));
    const handles = await cache.load(archive, { tag: "example.com/legacy:tagged" });
    expect(handles.map((h) => h.reference).sort()).toEqual(["example.com/legacy:tagged", "legacy:1.0"]);
    await rejectsWith(cache.load(archive, { tag: "Not A Ref" }), InvalidReferenceError, "INVALID_REFERENCE");
  });

  it("needs a tag for an OCI layout whose ref.name is a bare tag", async () => {
    const root = await freshRoot();
    const cache = ImageCache.open({ root });
    const archive = await tempFile(
      "bare.tar",
      await ociLayoutTar([{ image: c.beta, annotations: { "org.opencontainers.image.ref.name": "1" } }]),
    );
    const err = await rejectsWith(cache.load(archive), ReferenceRequiredError, "REFERENCE_REQUIRED");
    expect(err.available.length).toBeGreaterThan(0);
    expect(await cache.list()).toEqual([]);
    for (const dir of ["blobs", "layers", "fsmeta", "vmdk"] as const) expect(await namesIn(root, dir), dir).toEqual([]);
    expect(await tmpFiles(root)).toEqual([]);

    const handles = await cache.load(archive, { tag: "example.com/app:1" });
    expect(handles.map((h) => h.reference)).toEqual(["example.com/app:1"]);
    await expectDetail(root, await cache.inspect("example.com/app:1"), c.beta);
  });

  it("keeps two roots independent", async () => {
    const a = ImageCache.open({ root: await freshRoot() });
    const b = ImageCache.open({ root: await freshRoot() });
    await a.load(await tempFile("s.tar", await dockerSaveTar([{ image: c.legacy, repoTags: ["only-in-a:1"] }])));
    expect((await a.list()).map((h) => h.reference)).toEqual(["only-in-a:1"]);
    expect(await b.list()).toEqual([]);
    await rejectsWith(b.get("only-in-a:1"), ImageNotFoundError, "IMAGE_NOT_FOUND");
  });

  it("works through Image on the configured default cache", async () => {
    const root = await freshRoot();
    Image.configure({ root });
    const handles = await Image.load(await tempFile("s.tar", await dockerSaveTar([{ image: c.legacy, repoTags: ["viaimage:1"] }])));
    expect(handles[0]).toBeInstanceOf(ImageHandle);
    expect((await Image.get("viaimage:1")).layerCount).toBe(2);
    expect((await Image.list()).length).toBe(1);
    expect((await Image.inspect("viaimage:1")).layers.length).toBe(2);
    const use = await Image.acquire("viaimage:1", { snapshot: "snap" });
    expect((await Image.uses()).length).toBe(1);
    await use.release();
    await Image.remove("viaimage:1");
    expect((await Image.prune()).imageRefsRemoved).toBe(0);
    expect(existsSync(join(root, "blobs"))).toBe(true);
  });
});

describe("uses, remove and prune", () => {
  it("acquires, lists and releases uses (release twice is harmless)", async () => {
    const { cache } = await loadedCache();
    const use = await cache.acquire("beta", { sandbox: "abc" });
    expect(use).toBeInstanceOf(ImageUse);
    expect(use.reference).toBe("beta:latest");
    expect(use.manifestDigest).toBe(c.beta.manifestDigest);
    expect(use.holder).toEqual({ sandbox: "abc" });
    expect(use.since).toBeInstanceOf(Date);
    expect((await cache.get("beta")).lastUsedAt).toBeInstanceOf(Date);

    const snap = await cache.acquire("example.com/team/alpha:1.0", { snapshot: "s1" });
    expect(snap.holder).toEqual({ snapshot: "s1" });
    expect((await cache.uses()).map((u) => u.holder)).toEqual([{ sandbox: "abc" }, { snapshot: "s1" }]);
    expect((await cache.uses("beta")).map((u) => u.holder)).toEqual([{ sandbox: "abc" }]);

    await use.release();
    await use.release();
    const [listed] = await cache.uses();
    expect(listed?.holder).toEqual({ snapshot: "s1" });
    await listed?.release();
    expect(await cache.uses()).toEqual([]);
  });

  it("refuses to remove an image in use, naming its holders", async () => {
    const { cache } = await loadedCache();
    const use = await cache.acquire("beta", { sandbox: "abc" });
    await cache.acquire("beta", { snapshot: "snap-1" });
    const err = await rejectsWith(cache.remove("beta:latest"), ImageInUseError, "IMAGE_IN_USE");
    expect(err.reference).toBe("beta:latest");
    expect([...err.holders].sort()).toEqual(["sandbox:abc", "snapshot:snap-1"]);
    expect((await cache.get("beta")).reference).toBe("beta:latest");
    await use.release();
  });

  it("force-removes an image in use, keeping its files until release and prune", async () => {
    const { cache, root } = await loadedCache();
    const use = await cache.acquire("beta", { sandbox: "pinned" });
    await cache.remove("beta", { force: true });
    await rejectsWith(cache.get("beta"), ImageNotFoundError, "IMAGE_NOT_FOUND");
    const base = layerPath(root, c.base.diffId);
    const betaOnly = ownFiles(root, c.beta, [c.beta.layers[1]!]);
    const alphaOnly = ownFiles(root, c.alpha, [c.alpha.layers[1]!]);
    for (const p of [...betaOnly, base, ...alphaOnly]) expect(existsSync(p), p).toBe(true);

    // alpha is unpinned, so prune takes it (but not the base layer beta shares); beta's data
    // is still pinned by the use.
    let expected = await bytesOf(alphaOnly);
    let before = await storedBytes(root);
    let report = await cache.prune();
    expect(report).toMatchObject({
      imageRefsRemoved: 1,
      manifestsRemoved: 1,
      layersRemoved: 1,
      fsmetaRemoved: 1,
      vmdkRemoved: 1,
      bytesReclaimed: expected,
    });
    expect(before - (await storedBytes(root))).toBe(expected);
    for (const p of alphaOnly) expect(existsSync(p), p).toBe(false);
    for (const p of [...betaOnly, base]) expect(existsSync(p), p).toBe(true);

    await use.release();
    expected = await bytesOf([...betaOnly, base]);
    before = await storedBytes(root);
    report = await cache.prune();
    expect(report.manifestsRemoved).toBe(1);
    expect(report.layersRemoved).toBe(2);
    expect(report.fsmetaRemoved).toBe(1);
    expect(report.vmdkRemoved).toBe(1);
    for (const p of [...betaOnly, base]) expect(existsSync(p), p).toBe(false);
    expect(report.bytesReclaimed).toBe(expected);
    expect(report.bytesReclaimed).toBe(before - (await storedBytes(root)));
    expect(await storedBytes(root)).toBe(0);
  });

  it("remove of the last reference deletes its files but keeps a layer another image shares", async () => {
    const { cache, root } = await loadedCache();
    const betaOnly = ownFiles(root, c.beta, [c.beta.layers[1]!]);
    const expected = await bytesOf(betaOnly);
    // Its manifest and config blobs are the fixture's bytes.
    expect(await bytesOf(betaOnly.slice(0, 2))).toBe(c.beta.blobBytes);
    const before = await storedBytes(root);
    await cache.remove("beta");
    for (const p of betaOnly) expect(existsSync(p), p).toBe(false);
    expect(layerExists(root, c.base.diffId)).toBe(true);
    for (const p of imageFiles(root, c.alpha)) expect(existsSync(p), p).toBe(true);
    expect(before - (await storedBytes(root))).toBe(expected);
    await expectDetail(root, await cache.inspect("example.com/team/alpha:1.0"), c.alpha);
  });

  it("removing one of two references keeps the image", async () => {
    const { cache, root } = await loadedCache();
    await cache.load(await tempFile("l.tar", await ociLayoutTar([{ image: c.beta, annotations: { "org.opencontainers.image.ref.name": "example.com/beta:copy" } }])));
    await cache.remove("beta");
    for (const p of imageFiles(root, c.beta)) expect(existsSync(p), p).toBe(true);
    expect((await cache.get("example.com/beta:copy")).manifestDigest).toBe(c.beta.manifestDigest);
  });

  it("reuses a cached layer by diff_id without reading the new blob", async () => {
    const { cache, root } = await loadedCache();
    const files = await snapshotRoot(root);
    // A blob that is not a valid gzip stream, under a config claiming the diff_id of alpha's
    // cached top layer: by design the cached EROFS image is reused and the blob never read.
    const good = c.alpha.layers[1]!;
    const blob = Buffer.from(good.blob);
    for (let i = 20; i < blob.length - 10; i += 7) blob[i] = (blob[i] ?? 0) ^ 0xff;
    const reused: LayerFixture = { ...good, blob, blobDigest: sha256(blob), size: blob.length };
    const image = makeImage([c.base, reused], { ...c.alpha.fields, env: ["REUSED=1"] }, { diffIds: [c.base.diffId, good.diffId] });
    await cache.load(await tempFile("r.tar", await ociLayoutTar([{ image, annotations: { "io.containerd.image.name": "docker.io/x/reused:1" } }])));
    await expectDetail(root, await cache.inspect("x/reused:1"), image);
    // Only the new manifest's own files were added (no layer image); every other file is as
    // it was.
    const now = await snapshotRoot(root);
    const added = now.filter(([p]) => !files.some(([q]) => q === p));
    expect(added.map(([p]) => p).sort()).toEqual(ownFiles(root, image, []).map((p) => relative(root, p)).sort());
    expect(now.filter(([p]) => files.some(([q]) => q === p))).toEqual(files);
    expect(await namesIn(root, "layers")).toEqual(layerNames(...c.alpha.layers, ...c.beta.layers));
  });

  it("prune reports counts and the measured bytes it reclaimed", async () => {
    const { cache, root } = await loadedCache();
    const use = await cache.acquire("example.com/team/alpha:1.0", { sandbox: "keep" });
    // Leftovers prune must also sweep: an orphan blob no index row names, a stale tmp file, and
    // artifacts of a load killed before its index commit (a layer image, an fsmeta image and a
    // VMDK descriptor no row names).
    const orphan = Buffer.from("orphan blob bytes\n".repeat(10));
    await writeFile(blobPath(root, sha256(orphan)), orphan);
    await mkdir(join(root, "tmp", "load-stale"), { recursive: true });
    await writeFile(join(root, "tmp", "load-stale", "partial"), Buffer.alloc(777, 1));
    const orphanLayer = layerPath(root, sha256("a layer no index row names"));
    await writeFile(orphanLayer, Buffer.alloc(2 * EROFS_BLOCK_SIZE, 2));
    const orphanManifest = sha256("a manifest no index row names");
    const orphanFsmeta = fsmetaPath(root, orphanManifest);
    const orphanVmdk = vmdkPath(root, orphanManifest);
    await writeFile(orphanFsmeta, Buffer.alloc(EROFS_BLOCK_SIZE, 3));
    await writeFile(orphanVmdk, "# Disk DescriptorFile\n");
    const leftovers = [orphanLayer, orphanFsmeta, orphanVmdk];

    const betaOnly = ownFiles(root, c.beta, [c.beta.layers[1]!]);
    const expected = (await bytesOf([...betaOnly, ...leftovers])) + orphan.length + 777;
    const before = await storedBytes(root);
    const report = await cache.prune();
    const after = await storedBytes(root);
    // Layer images, fsmeta and VMDK files count as removed, beta's and the orphans; the orphan
    // blob counts only in bytes (blobs have no count in the report).
    expect(report).toMatchObject({
      imageRefsRemoved: 1,
      manifestsRemoved: 1,
      layersRemoved: 2,
      fsmetaRemoved: 2,
      vmdkRemoved: 2,
      bytesReclaimed: expected,
    });
    expect(before - after).toBe(expected);
    for (const p of [...betaOnly, ...leftovers]) expect(existsSync(p), p).toBe(false);
    expect(blobExists(root, sha256(orphan))).toBe(false);
    expect(await tmpFiles(root)).toEqual([]);
    for (const p of imageFiles(root, c.alpha)) expect(existsSync(p), p).toBe(true);
    await expectDetail(root, await cache.inspect("example.com/team/alpha:1.0"), c.alpha);
    await use.release();

    const rest = await bytesOf(imageFiles(root, c.alpha));
    const empty = await cache.prune();
    expect(empty).toMatchObject({
      imageRefsRemoved: 1,
      manifestsRemoved: 1,
      layersRemoved: 2,
      fsmetaRemoved: 1,
      vmdkRemoved: 1,
      bytesReclaimed: rest,
    });
    expect(await cache.list()).toEqual([]);
    expect(await storedBytes(root)).toBe(0);
    expect(await cache.prune()).toMatchObject({
      imageRefsRemoved: 0,
      manifestsRemoved: 0,
      layersRemoved: 0,
      fsmetaRemoved: 0,
      vmdkRemoved: 0,
      bytesReclaimed: 0,
    });
  });
});

describe("bad inputs leave the cache unchanged", () => {
  /** A gzip layer whose diff_id no corpus image has, so loading it must convert it. */
  async function freshLayer(name: string): Promise<LayerFixture> {
    const layer = await makeLayer({ [`app/${name}.txt`]: `${name} layer, not in any cached image\n`.repeat(60) }, { gzip: true });
    for (const image of [c.alpha, c.beta, c.legacy]) {
      expect(image.layers.map((l) => l.diffId)).not.toContain(layer.diffId);
    }
    return layer;
  }

  type Bad = {
    name: string;
    make: () => Promise<string>;
    cls: Function;
    code: string;
    check?: (err: never) => void;
  };

  const badInputs: Bad[] = [
    {
      name: "truncated tar",
      make: async () => {
        const full = await dockerSaveTar([{ image: c.legacy, repoTags: ["trunc:1"] }]);
        return tempFile("trunc.tar", full.subarray(0, Math.floor(full.length / 2) + 100));
      },
      cls: InvalidArchiveError,
      code: "INVALID_ARCHIVE",
    },
    {
      // The layer must not be cached already: a cached diff_id is reused without reading the
      // blob (see "reuses a cached layer by diff_id without reading the new blob").
      name: "corrupt gzip layer",
      make: async () => {
        const good = await freshLayer("corrupt");
        const blob = Buffer.from(good.blob);
        for (let i = 20; i < blob.length - 10; i += 7) blob[i] = (blob[i] ?? 0) ^ 0xff;
        const broken: LayerFixture = { ...good, blob, blobDigest: sha256(blob), size: blob.length };
        const image = makeImage([c.base, broken], c.alpha.fields, { diffIds: [c.base.diffId, good.diffId] });
        return tempFile("gz.tar", await ociLayoutTar([{ image, annotations: { "io.containerd.image.name": "docker.io/x/gz:1" } }]));
      },
      cls: InvalidArchiveError,
      code: "INVALID_ARCHIVE",
    },
    {
      name: "truncated gzip layer",
      make: async () => {
        const good = await freshLayer("truncated");
        const blob = good.blob.subarray(0, Math.floor(good.blob.length / 2));
        const broken: LayerFixture = { ...good, blob, blobDigest: sha256(blob), size: blob.length };
        const image = makeImage([c.base, broken], c.alpha.fields, { diffIds: [c.base.diffId, good.diffId] });
        return tempFile("tr.tar", await ociLayoutTar([{ image, annotations: { "io.containerd.image.name": "docker.io/x/tr:1" } }]));
      },
      cls: InvalidArchiveError,
      code: "INVALID_ARCHIVE",
    },
    {
      name: "corrupt gzip archive",
      make: async () => {
        const { gzipSync } = await import("node:zlib");
        const gz = gzipSync(await dockerSaveTar([{ image: c.legacy, repoTags: ["gz:1"] }]));
        return tempFile("a.tar.gz", gz.subarray(0, gz.length - 200));
      },
      cls: InvalidArchiveError,
      code: "INVALID_ARCHIVE",
    },
    {
      name: "malformed manifest.json",
      make: async () =>
        tempFile("m.tar", await dockerSaveTar([{ image: c.legacy, repoTags: ["m:1"] }], { manifestJson: "[{\"Config\": " })),
      cls: InvalidArchiveError,
      code: "INVALID_ARCHIVE",
    },
    {
      name: "blob digest mismatch",
      make: async () => {
        const tampered = Buffer.from(c.beta.configBytes.toString().replace("beta", "bet4"));
        return tempFile(
          "dm.tar",
          await ociLayoutTar([{ image: c.beta, annotations: { "io.containerd.image.name": "docker.io/x/dm:1" } }], {
            replaceBlob: new Map([[c.beta.configDigest, tampered]]),
          }),
        );
      },
      cls: DigestMismatchError,
      code: "DIGEST_MISMATCH",
      check: (err: DigestMismatchError) => {
        expect(err.expected).toBe(c.beta.configDigest);
        expect(err.actual).toBe(sha256(Buffer.from(c.beta.configBytes.toString().replace("beta", "bet4"))));
      },
    },
    {
      name: "diff_id mismatch",
      make: async () => {
        // The claimed diff_id is not cached, so the layer is converted and its tar checked.
        const image = makeImage(c.beta.layers, c.beta.fields, { diffIds: [c.beta.layers[0]!.diffId, sha256("not the layer")] });
        return tempFile("diff.tar", await ociLayoutTar([{ image, annotations: { "io.containerd.image.name": "docker.io/x/diff:1" } }]));
      },
      cls: DigestMismatchError,
      code: "DIGEST_MISMATCH",
      check: (err: DigestMismatchError) => {
        expect(err.expected).toBe(sha256("not the layer"));
        expect(err.actual).toBe(c.beta.layers[1]!.diffId);
      },
    },
    {
      name: "'..' member",
      make: async () =>
        tempFile(
          "dotdot.tar",
          await dockerSaveTar([{ image: c.legacy, repoTags: ["dotdot:1"] }], { extra: [{ name: "../evil.txt", data: "x" }] }),
        ),
      cls: InvalidArchiveError,
      code: "INVALID_ARCHIVE",
    },
    {
      name: "unknown layer media type",
      make: async () => {
        const odd = await makeLayer({ "odd/file": "odd\n" }, { mediaType: "application/vnd.example.unknown.layer" });
        const image = makeImage([c.base, odd], c.beta.fields);
        return tempFile("mt.tar", await ociLayoutTar([{ image, annotations: { "io.containerd.image.name": "docker.io/x/mt:1" } }]));
      },
      cls: InvalidArchiveError,
      code: "INVALID_ARCHIVE",
    },
    {
      name: "directory that is not an image",
      make: async () => {
        const dir = await tempDir("ocicache-notimage-");
        await writeFile(join(dir, "README"), "just a folder\n");
        return dir;
      },
      cls: InvalidArchiveError,
      code: "INVALID_ARCHIVE",
    },
    {
      name: "file that is not an archive",
      make: async () => tempFile("junk.bin", Buffer.from("this is not a tar archive at all\n".repeat(40))),
      cls: InvalidArchiveError,
      code: "INVALID_ARCHIVE",
    },
  ];

  it.each(badInputs)("$name", async ({ make, cls, code, check }) => {
    const { cache, root } = await loadedCache();
    const files = await snapshotRoot(root);
    const listed = await cache.list();
    const input = await make();
    const err = await rejectsWith(cache.load(input), cls as never, code as never);
    check?.(err as never);
    expect(await snapshotRoot(root)).toEqual(files);
    expect(await cache.list()).toEqual(listed);
    expect(await tmpFiles(root)).toEqual([]);
  });

  it("an empty tar is rejected too", async () => {
    const { cache, root } = await loadedCache();
    const files = await snapshotRoot(root);
    await rejectsWith(cache.load(await tempFile("empty.tar", await tarOf([]))), InvalidArchiveError, "INVALID_ARCHIVE");
    expect(await snapshotRoot(root)).toEqual(files);
  });
});
