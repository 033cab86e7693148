// The rows list() and diskUsage() read from the binding (src/internal/rows.ts): chunks of a JSON
// array of strings and a Float64Array of numbers, each manifest once over the whole stream.
// Decoded by hand-made rows (nulls as NaN, variants, shared manifests, chunk boundaries, a
// malformed position), through the binding with chunks of every size, and end to end: every
// handle list() builds equals the one get() builds from its own N-API object.

import { describe, expect, it } from "vitest";

import { ImageCache, InternalError } from "../src/index";
import type { NativeRowStream } from "../src/internal/binding";
import { native } from "../src/internal/native";
import { readDiskUsage, readList } from "../src/internal/rows";
import { corpus, ociLayoutTar } from "./fixtures";
import { freshRoot, tempFile } from "./helpers";

const fields = (...f: unknown[]) => f;

/** A stream of the given chunks, as the binding's `NativeRowStream` hands them out. */
function stream(...chunks: { text: string; numbers: number[] }[]): NativeRowStream {
  let k = 0;
  return {
    next: async () => {
      const c = chunks[k++];
      if (c === undefined) throw new Error("read past the last chunk");
      return { text: c.text, numbers: new Float64Array(c.numbers), last: k === chunks.length };
    },
  } as unknown as NativeRowStream;
}

describe("rows", () => {
  it("reads references naming each manifest once, with nulls and variants", async () => {
    const rows = {
      text: JSON.stringify(["a:1", "sha256:aa", "arm64", "linux", "v8", "b:1", "sha256:bb", "amd64", "linux", "a:2"]),
      // The last number: the first two rows are tagged, the third is a manifest a use holds.
      numbers: [0, 10, NaN, 2, 500, 1, 1, 20, 30, 1, NaN, 0, 0, 40, NaN, 2],
    };
    const expected = [
      ["a:1", "sha256:aa", "arm64", "linux", "v8", 2, 500, 10, null, true],
      ["b:1", "sha256:bb", "amd64", "linux", null, 1, null, 20, 30, true],
      ["a:2", "sha256:aa", "arm64", "linux", "v8", 2, 500, 40, null, false],
    ];
    expect(await readList(stream(rows), fields)).toEqual(expected);
    // The same rows in three chunks: positions run on, each chunk counts its own tagged rows.
    const chunked = stream(
      { text: JSON.stringify(["a:1", "sha256:aa", "arm64", "linux", "v8"]), numbers: [0, 10, NaN, 2, 500, 1, 1] },
      { text: JSON.stringify(["b:1", "sha256:bb", "amd64", "linux"]), numbers: [1, 20, 30, 1, NaN, 0, 1] },
      { text: JSON.stringify(["a:2"]), numbers: [0, 40, NaN, 0] },
    );
    expect(await readList(chunked, fields)).toEqual(expected);
    expect(await readList(stream({ text: "[]", numbers: [0] }), fields)).toEqual([]);
    await expect(readList(stream({ text: "[]", numbers: [] }), fields)).rejects.toThrow(InternalError);
    const skipped = { text: JSON.stringify(["a:1"]), numbers: [1, 10, NaN, 1] };
    await expect(readList(stream(skipped), fields)).rejects.toThrow(InternalError);
  });

  it("reads disk usage rows and the totals after them", async () => {
    const rows = {
      text: JSON.stringify(["a:1", "sha256:aa", "a:2", "b:1", "sha256:bb"]),
      // Two tagged rows (b@… is a manifest a use holds), then the seven totals.
      numbers: [0, 0, 5, 6, 0, 0, 1, 9, 3, 4, 2, 1, 2, 3, 4, 5, 6, 21],
    };
    const expected = [
      { reference: "a:1", manifestDigest: "sha256:aa", sharedBytes: 5, exclusiveBytes: 6, reclaimableBytes: 0, tagged: true },
      { reference: "a:2", manifestDigest: "sha256:aa", sharedBytes: 5, exclusiveBytes: 6, reclaimableBytes: 0, tagged: true },
      { reference: "b:1", manifestDigest: "sha256:bb", sharedBytes: 3, exclusiveBytes: 4, reclaimableBytes: 9, tagged: false },
    ];
    const { totals, images } = await readDiskUsage(stream(rows));
    expect(totals).toEqual({ layers: 1, fsmeta: 2, vmdk: 3, blobs: 4, index: 5, temporary: 6, total: 21 });
    expect(images).toEqual(expected);
    expect(images.every((i) => Object.isFrozen(i))).toBe(true);
    // In two chunks, the totals only after the last.
    const chunked = stream(
      { text: JSON.stringify(["a:1", "sha256:aa", "a:2"]), numbers: [0, 0, 5, 6, 0, 0, 2] },
      { text: JSON.stringify(["b:1", "sha256:bb"]), numbers: [1, 9, 3, 4, 0, 1, 2, 3, 4, 5, 6, 21] },
    );
    expect(await readDiskUsage(chunked)).toEqual({ totals, images: expected });
    await expect(readDiskUsage(stream({ text: "[]", numbers: [0, 0, 0, 0, 0, 0] }))).rejects.toThrow(InternalError);
  });

  it("the binding's chunks, however small, make the same list and disk usage", async () => {
    const c = await corpus();
    const root = await freshRoot();
    const cache = ImageCache.open({ root });
    const layout = await tempFile(
      "layout.tar",
      await ociLayoutTar(
        ["1", "2", "3", "4", "5"].map((tag) => ({
          image: tag === "5" ? c.beta : c.alpha,
          annotations: { "org.opencontainers.image.ref.name": `example.com/team/app:${tag}` },
        })),
      ),
    );
    await cache.load(layout);
    await cache.acquire("example.com/team/app:5", { sandbox: "vm" });
    await cache.remove("example.com/team/app:5", { force: true });
    const binding = native().NativeCache.open({ root });
    const whole = await readList(binding.listRows(true), fields);
    expect(whole).toHaveLength(5);
    expect(whole.map((row) => row[9])).toEqual([true, true, true, true, false]);
    const usage = await readDiskUsage(binding.diskUsageRows());
    for (const chunkRows of [1, 2, 3, 4, 5, 6]) {
      expect(await readList(binding.listRows(true, chunkRows), fields)).toEqual(whole);
      expect(await readDiskUsage(binding.diskUsageRows(chunkRows))).toEqual(usage);
    }
    expect(() => binding.listRows(false, 0)).toThrow(expect.objectContaining({ code: "INVALID_ARGUMENT" }));
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
    // A load sets lastUsedAt; the acquire after it moves beta's on.
    const used = (h: (typeof list)[number]) => h.lastUsedAt?.getTime() ?? -1;
    const beta = list.find((h) => h.reference === "beta:latest");
    expect(list.every((h) => h.lastUsedAt !== null)).toBe(true);
    expect(list.every((h) => used(h) <= used(beta as (typeof list)[number]))).toBe(true);
    const usage = await cache.diskUsage();
    expect(usage.images.map((i) => i.reference)).toEqual(list.map((h) => h.reference).sort());
    for (const i of usage.images) {
      expect(i.manifestDigest).toBe(list.find((h) => h.reference === i.reference)?.manifestDigest);
    }
    expect(usage.total).toBe(usage.layers + usage.fsmeta + usage.vmdk + usage.blobs + usage.index + usage.temporary);
    // Its tag removed, beta stays held by the sandbox: list({ all }) adds it, untagged, after
    // the tagged rows, as get() of its digest name sees it.
    await cache.remove("beta", { force: true });
    const all = await cache.list({ all: true });
    expect(all.map((h) => h.tagged)).toEqual([true, true, false]);
    const held = all[2] as (typeof all)[number];
    expect(held.reference).toBe(`beta@${beta?.manifestDigest}`);
    expect(held).toEqual(await cache.get(held.reference));
    expect((await cache.list()).map((h) => h.tagged)).toEqual([true, true]);
  });
});
