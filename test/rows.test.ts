// The rows list() and diskUsage() read from the binding (src/internal/rows.ts): a JSON array of
// strings and a Float64Array of numbers per call, each manifest once. Decoded by hand-made rows
// (nulls as NaN, variants, shared manifests, a malformed position), and end to end: every handle
// list() builds equals the one get() builds from its own N-API object.

import { describe, expect, it } from "vitest";

import { ImageCache, InternalError } from "../src/index";
import { readDiskUsage, readList } from "../src/internal/rows";
import { corpus, ociLayoutTar } from "./fixtures";
import { freshRoot, tempFile } from "./helpers";

const fields = (...f: unknown[]) => f;

describe("rows", () => {
  it("reads references naming each manifest once, with nulls and variants", () => {
    const rows = {
      text: JSON.stringify(["a:1", "sha256:aa", "arm64", "linux", "v8", "b:1", "sha256:bb", "amd64", "linux", "a:2"]),
      numbers: new Float64Array([0, 10, NaN, 2, 500, 1, 1, 20, 30, 1, NaN, 0, 0, 40, NaN]),
    };
    expect(readList(rows, fields)).toEqual([
      ["a:1", "sha256:aa", "arm64", "linux", "v8", 2, 500, 10, null],
      ["b:1", "sha256:bb", "amd64", "linux", null, 1, null, 20, 30],
      ["a:2", "sha256:aa", "arm64", "linux", "v8", 2, 500, 40, null],
    ]);
    expect(readList({ text: "[]", numbers: new Float64Array() }, fields)).toEqual([]);
    const skipped = { text: JSON.stringify(["a:1"]), numbers: new Float64Array([1, 10, NaN]) };
    expect(() => readList(skipped, fields)).toThrow(InternalError);
  });

  it("reads disk usage rows and the totals after them", () => {
    const rows = {
      text: JSON.stringify(["a:1", "sha256:aa", "a:2", "b:1", "sha256:bb"]),
      numbers: new Float64Array([0, 0, 5, 6, 0, 0, 1, 9, 3, 4, 1, 2, 3, 4, 5, 6, 21]),
    };
    const { totals, images } = readDiskUsage(rows);
    expect(totals).toEqual({ layers: 1, fsmeta: 2, vmdk: 3, blobs: 4, index: 5, temporary: 6, total: 21 });
    expect(images).toEqual([
      { reference: "a:1", manifestDigest: "sha256:aa", sharedBytes: 5, exclusiveBytes: 6, reclaimableBytes: 0 },
      { reference: "a:2", manifestDigest: "sha256:aa", sharedBytes: 5, exclusiveBytes: 6, reclaimableBytes: 0 },
      { reference: "b:1", manifestDigest: "sha256:bb", sharedBytes: 3, exclusiveBytes: 4, reclaimableBytes: 9 },
    ]);
    expect(images.every((i) => Object.isFrozen(i))).toBe(true);
    expect(() => readDiskUsage({ text: "[]", numbers: new Float64Array(3) })).toThrow(InternalError);
  });

  it("list() builds the handles get() builds, and diskUsage() names the same manifests", async () => {
    const c = await corpus();
    const root = await freshRoot();
    const cache = ImageCache.open({ root });
    const layout = await tempFile(
      "layout.tar",
      await ociLayoutTar([
        { image: c.alpha, annotations: { "org.opencontainers.image.ref.name": "example.com/team/alpha:1.0" } },
        { image: c.alpha, annotations: { "org.opencontainers.image.ref.name": "example.com/team/alpha:latest" } },
        { image: c.beta, annotations: { "io.containerd.image.name": "docker.io/library/beta:latest" } },
      ]),
    );
    await cache.load(layout);
    await cache.acquire("beta", { sandbox: "vm" });
    const list = await cache.list();
    expect(list).toHaveLength(3);
    for (const h of list) {
      expect(h).toEqual(await cache.get(h.reference));
      expect(Object.isFrozen(h)).toBe(true);
    }
    expect(list.filter((h) => h.lastUsedAt !== null).map((h) => h.reference)).toEqual(["beta:latest"]);
    const usage = await cache.diskUsage();
    expect(usage.images.map((i) => i.reference)).toEqual(list.map((h) => h.reference).sort());
    for (const i of usage.images) {
      expect(i.manifestDigest).toBe(list.find((h) => h.reference === i.reference)?.manifestDigest);
    }
    expect(usage.total).toBe(usage.layers + usage.fsmeta + usage.vmdk + usage.blobs + usage.index + usage.temporary);
  });
});
