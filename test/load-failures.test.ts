// Loads that fail, through the addon: each leaves the cache exactly as it was (the files outside
// the index, `list()`, an empty `tmp/`). A full disk, sources that are not files or folders,
// `RepoTags` in digest form, and files that are not archives, whose bytes no message may quote.

import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { symlink } from "node:fs/promises";
import { join } from "node:path";

import { beforeAll, describe, expect, it } from "vitest";

import {
  ImageCache,
  ImageNotFoundError,
  InvalidArchiveError,
  NoSpaceError,
  ReferenceRequiredError,
} from "../src/index";
import { corpus, dockerSaveTar, makeImage, makeLayer, ociLayoutTar, tarOf, type Corpus } from "./fixtures";
import { freshRoot, rejectsWith, requireRoot, snapshotRoot, tempDir, tempFile, tmpFiles } from "./helpers";

let c: Corpus;

beforeAll(async () => {
  c = await corpus();
});

/** A cache at `root` holding alpha, and what a failed load must leave unchanged. */
async function loaded(root: string): Promise<{ cache: ImageCache; unchanged: () => Promise<void> }> {
  const cache = ImageCache.open({ root });
  await cache.load(
    await tempFile("alpha.tar", await ociLayoutTar([{ image: c.alpha, annotations: { "io.containerd.image.name": "example.com/alpha:1" } }])),
  );
  const files = await snapshotRoot(root);
  const listed = await cache.list();
  return {
    cache,
    unchanged: async () => {
      expect(await snapshotRoot(root)).toEqual(files);
      expect(await cache.list()).toEqual(listed);
      expect(await tmpFiles(root)).toEqual([]);
    },
  };
}

/** Rejects when `promise` has not settled within `ms`: a load must never hang. */
function within<T>(ms: number, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`did not settle within ${ms} ms`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

describe("failed loads leave the cache as it was", () => {
  it("a full disk is a NoSpaceError, and a load that fits still works", async (ctx) => {
    requireRoot("mounting a tmpfs", ctx);
    const mnt = await tempDir("ocicache-tmpfs-");
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=8m", "tmpfs", mnt]);
    try {
      const root = join(mnt, "cache");
      const { cache, unchanged } = await loaded(root);
      // 12 MiB of layer data to stage, on an 8 MiB file system.
      const big = await makeLayer({ "big.bin": randomBytes(6 << 20).toString("hex") });
      const image = makeImage([big], { env: [], cmd: ["/big"], labels: {} });
      const src = await tempFile("big.tar", await ociLayoutTar([{ image, annotations: { "io.containerd.image.name": "example.com/big:1" } }]));
      const err = await rejectsWith(cache.load(src), NoSpaceError, "NO_SPACE");
      expect(err.path.startsWith(root)).toBe(true);
      expect(err.errno).toBe(28);
      await unchanged();
      const beta = await tempFile("beta.tar", await ociLayoutTar([{ image: c.beta, annotations: { "io.containerd.image.name": "example.com/beta:1" } }]));
      expect((await cache.load(beta)).map((h) => h.reference)).toEqual(["example.com/beta:1"]);
      expect(await tmpFiles(root)).toEqual([]);
    } finally {
      // Lazy: the cache keeps its index open until it is collected.
      execFileSync("umount", ["-l", mnt]);
    }
  });

  it("refuses a FIFO and devices at once, without opening or reading them", async () => {
    const root = await freshRoot();
    const { cache, unchanged } = await loaded(root);
    const dir = await tempDir();
    const fifo = join(dir, "fifo");
    execFileSync("mkfifo", [fifo]);
    const link = join(dir, "zero");
    await symlink("/dev/zero", link);
    for (const source of [fifo, "/dev/zero", link]) {
      await rejectsWith(within(30_000, cache.load(source)), InvalidArchiveError, "INVALID_ARCHIVE");
      await unchanged();
    }
  });

  it("refuses RepoTags in digest form; a digest name of the image's own manifest resolves", async () => {
    const root = await freshRoot();
    const { cache, unchanged } = await loaded(root);
    const digest = c.legacy.manifestDigest;
    for (const tag of [`example.com/app@${digest}`, `example.com/app:1@${digest}`]) {
      const src = await tempFile("d.tar", await dockerSaveTar([{ image: c.legacy, repoTags: [tag] }]));
      await rejectsWith(cache.load(src), InvalidArchiveError, "INVALID_ARCHIVE");
      await unchanged();
      await rejectsWith(cache.get(tag), ImageNotFoundError, "IMAGE_NOT_FOUND");
      await rejectsWith(cache.inspect(tag), ImageNotFoundError, "IMAGE_NOT_FOUND");
      await rejectsWith(cache.remove(tag), ImageNotFoundError, "IMAGE_NOT_FOUND");
    }
    const annotated = (name: string) =>
      ociLayoutTar([{ image: c.beta, annotations: { "io.containerd.image.name": name } }]);
    const elsewhere = `example.com/beta@${c.alpha.manifestDigest}`;
    await rejectsWith(cache.load(await tempFile("e.tar", await annotated(elsewhere))), ReferenceRequiredError, "REFERENCE_REQUIRED");
    await unchanged();
    const own = `example.com/beta@${c.beta.manifestDigest}`;
    expect((await cache.load(await tempFile("o.tar", await annotated(own)))).map((h) => h.reference)).toEqual([own]);
    expect((await cache.get(own)).manifestDigest).toBe(c.beta.manifestDigest);
    expect((await cache.inspect(own)).layers).toHaveLength(c.beta.layers.length);
    await cache.remove(own);
    await rejectsWith(cache.get(own), ImageNotFoundError, "IMAGE_NOT_FOUND");
  });

  it("never quotes a file that is not an archive in its error", async () => {
    const root = await freshRoot();
    const { cache, unchanged } = await loaded(root);
    const secret = "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\npassword=hunter2-correct-horse\n";
    const sources = [
      await tempFile("secret.txt", secret.repeat(20)),
      await tempFile("manifest.tar", await tarOf([{ name: "manifest.json", data: JSON.stringify([secret]) }])),
      await tempFile("text.tar", await tarOf([{ name: "manifest.json", data: secret }])),
    ];
    for (const source of sources) {
      const err = await rejectsWith(cache.load(source), InvalidArchiveError, "INVALID_ARCHIVE");
      for (const fragment of ["wJalr", "K7MDENG", "EXAMPLEKEY", "hunter2", "AWS_SECRET", "password"]) {
        expect(err.message, source).not.toContain(fragment);
      }
      await unchanged();
    }
  });
});
