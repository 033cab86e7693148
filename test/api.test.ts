// Behaviour that needs no archive: empty caches, reference validation, argument types, the
// cloud backend, the default cache and its configuration.

import { existsSync } from "node:fs";

import { describe, expect, it } from "vitest";

import {
  Image,
  ImageCache,
  ImageNotFoundError,
  InvalidArgumentError,
  InvalidReferenceError,
  UnsupportedError,
} from "../src/index";
import { freshRoot, rejectsWith, tempDir } from "./helpers";

const BAD_REFERENCES = ["", " busybox", "Busybox:latest", "busybox:", "a b", "busybox@sha256:1234", "busybox:tag with space", "-leading"];

describe("ImageCache on an empty root", () => {
  it("opens without creating anything and lists nothing", async () => {
    const root = await freshRoot();
    const cache = ImageCache.open({ root });
    expect(cache.root).toBe(root);
    expect(existsSync(root)).toBe(false);
    expect(await cache.list()).toEqual([]);
    expect(await cache.uses()).toEqual([]);
  });

  it("rejects unknown references with ImageNotFoundError", async () => {
    const cache = ImageCache.open({ root: await freshRoot() });
    const err = await rejectsWith(cache.get("busybox"), ImageNotFoundError, "IMAGE_NOT_FOUND");
    expect(err.reference).toBe("busybox");
    await rejectsWith(cache.inspect("docker.io/library/busybox:latest"), ImageNotFoundError, "IMAGE_NOT_FOUND");
    await rejectsWith(cache.remove("busybox:1"), ImageNotFoundError, "IMAGE_NOT_FOUND");
    await rejectsWith(cache.acquire("busybox", { sandbox: "s1" }), ImageNotFoundError, "IMAGE_NOT_FOUND");
    await rejectsWith(cache.uses("busybox"), ImageNotFoundError, "IMAGE_NOT_FOUND");
  });

  it.each(BAD_REFERENCES)("rejects the invalid reference %j with InvalidReferenceError", async (ref) => {
    const cache = ImageCache.open({ root: await freshRoot() });
    const ops = [() => cache.get(ref), () => cache.inspect(ref), () => cache.remove(ref), () => cache.uses(ref)];
    for (const op of [...ops, () => cache.acquire(ref, { snapshot: "x" })]) {
      const err = await rejectsWith(op(), InvalidReferenceError, "INVALID_REFERENCE");
      expect(err.input).toBe(ref);
    }
  });

  it("rejects wrong argument types with InvalidArgumentError", async () => {
    const cache = ImageCache.open({ root: await freshRoot() });
    const loose = cache as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>;
    const cases: [() => Promise<unknown>, string][] = [
      [() => loose["get"]!.call(cache, 42), "reference"],
      [() => loose["inspect"]!.call(cache, undefined), "reference"],
      [() => loose["remove"]!.call(cache, "busybox", { force: "yes" }), "force"],
      [() => loose["load"]!.call(cache, null), "path"],
      [() => loose["load"]!.call(cache, "x.tar", { tag: 1 }), "tag"],
      [() => loose["acquire"]!.call(cache, "busybox", { vm: "x" }), "holder"],
      [() => loose["acquire"]!.call(cache, "busybox", { sandbox: "a", snapshot: "b" }), "holder"],
      [() => loose["uses"]!.call(cache, 7), "reference"],
    ];
    for (const [op, argument] of cases) {
      const err = await rejectsWith(op(), InvalidArgumentError, "INVALID_ARGUMENT");
      expect(err.argument).toBe(argument);
    }
    expect(() => ImageCache.open({ root: 5 as unknown as string })).toThrow(InvalidArgumentError);
    expect(() => ImageCache.open({ backend: "remote" as unknown as "local" })).toThrow(InvalidArgumentError);
  });

  it("rejects an empty holder id in the core with InvalidArgumentError", async () => {
    const cache = ImageCache.open({ root: await freshRoot() });
    // The reference is resolved after the holder check, so an empty cache is enough.
    const err = await rejectsWith(cache.acquire("busybox", { sandbox: "" }), InvalidArgumentError, "INVALID_ARGUMENT");
    expect(err.argument).toBe("holder");
  });
});

describe("cloud backend", () => {
  it("rejects every operation with UnsupportedError and creates no files", async () => {
    const root = await freshRoot();
    const cache = ImageCache.open({ root, backend: { cloud: { url: "https://cache.example.com" } } });
    const ops: (() => Promise<unknown>)[] = [
      () => cache.get("busybox"),
      () => cache.list(),
      () => cache.inspect("busybox"),
      () => cache.remove("busybox"),
      () => cache.remove("busybox", { force: true }),
      () => cache.prune(),
      () => cache.load("/nonexistent.tar"),
      () => cache.acquire("busybox", { sandbox: "s" }),
      () => cache.uses(),
      () => cache.uses("busybox"),
    ];
    for (const op of ops) {
      await rejectsWith(op(), UnsupportedError, "UNSUPPORTED");
    }
    expect(existsSync(root)).toBe(false);
  });

  it("is selected by Image.configure and switched back with backend 'local'", async () => {
    const root = await freshRoot();
    Image.configure({ root, backend: { cloud: { url: "https://cache.example.com" } } });
    await rejectsWith(Image.list(), UnsupportedError, "UNSUPPORTED");
    await rejectsWith(Image.prune(), UnsupportedError, "UNSUPPORTED");
    await rejectsWith(Image.get("busybox"), UnsupportedError, "UNSUPPORTED");
    expect(existsSync(root)).toBe(false);
    Image.configure({ root, backend: "local" });
    expect(await Image.list()).toEqual([]);
    await rejectsWith(Image.get("busybox"), ImageNotFoundError, "IMAGE_NOT_FOUND");
    // Read-only operations report a cache that does not exist as empty, and never create it.
    expect(existsSync(root)).toBe(false);
  });
});

describe("Image default cache", () => {
  it("uses $OCICACHE_HOME when no root is configured", async () => {
    const home = await tempDir();
    const saved = process.env["OCICACHE_HOME"];
    process.env["OCICACHE_HOME"] = home;
    try {
      Image.configure({});
      expect(await Image.list()).toEqual([]);
      // A read creates nothing; a prune (even a dry run) opens, and so creates, the cache.
      await Image.prune({ dryRun: true });
      expect(existsSync(`${home}/blobs`) || existsSync(`${home}/index.db`)).toBe(true);
    } finally {
      if (saved === undefined) delete process.env["OCICACHE_HOME"];
      else process.env["OCICACHE_HOME"] = saved;
    }
  });

  it("validates configure options synchronously", () => {
    expect(() => Image.configure({ backend: { cloud: {} } as unknown as "local" })).toThrow(InvalidArgumentError);
    expect(() => Image.configure(null as unknown as {})).toThrow(InvalidArgumentError);
  });
});
