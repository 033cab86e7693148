// `maxUncompressedBytes`: a load writes at most that many bytes (staged archive files and layer
// images), checked while it writes; over it, LimitExceededError and the cache as it was.

import { beforeAll, describe, expect, it } from "vitest";

import { ImageCache, InvalidArgumentError, LimitExceededError } from "../src/index";
import { corpus, makeImage, makeLayer, ociLayoutTar, type Corpus } from "./fixtures";
import { freshRoot, layerExists, rejectsWith, snapshotRoot, tempFile, tmpFiles } from "./helpers";

let c: Corpus;

beforeAll(async () => {
  c = await corpus();
});

/** An OCI layout tar of one image with a dense 2 MiB layer (gzip, so a small archive). */
async function denseArchive(): Promise<{ path: string; diffId: string }> {
  const layer = await makeLayer({ "data/dense.bin": "0123456789abcdef".repeat(128 * 1024) }, { gzip: true });
  const image = makeImage([layer], c.alpha.fields);
  const path = await tempFile(
    "dense.tar",
    await ociLayoutTar([{ image, annotations: { "io.containerd.image.name": "example.com/dense:1" } }]),
  );
  return { path, diffId: layer.diffId };
}

describe("load maxUncompressedBytes", () => {
  it("rejects a load that would write more with LimitExceededError and leaves the cache as it was", async () => {
    const root = await freshRoot();
    const cache = ImageCache.open({ root });
    await cache.load(
      await tempFile(
        "alpha.tar",
        await ociLayoutTar([{ image: c.alpha, annotations: { "io.containerd.image.name": "example.com/alpha:1" } }]),
      ),
    );
    const files = await snapshotRoot(root);
    const listed = await cache.list();
    const { path, diffId } = await denseArchive();
    const err = await rejectsWith(
      cache.load(path, { maxUncompressedBytes: 1024 * 1024 }),
      LimitExceededError,
      "LIMIT_EXCEEDED",
    );
    expect(err.limit).toBe(1024 * 1024);
    expect(err.subject).toBe("bytes written by the load");
    expect(await snapshotRoot(root)).toEqual(files);
    expect(await cache.list()).toEqual(listed);
    expect(await tmpFiles(root)).toEqual([]);
    expect(layerExists(root, diffId)).toBe(false);

    const handles = await cache.load(path, { maxUncompressedBytes: 8 * 1024 * 1024 });
    expect(handles.map((h) => h.reference)).toEqual(["example.com/dense:1"]);
    expect(layerExists(root, diffId)).toBe(true);
  });

  it.each([0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 60, "1G", null])(
    "refuses %s as a limit",
    async (value) => {
      const root = await freshRoot();
      const cache = ImageCache.open({ root });
      const { path } = await denseArchive();
      const err = await rejectsWith(
        cache.load(path, { maxUncompressedBytes: value as number }),
        InvalidArgumentError,
        "INVALID_ARGUMENT",
      );
      expect(err.argument).toBe("maxUncompressedBytes");
      expect(await cache.list()).toEqual([]);
    },
  );
});
