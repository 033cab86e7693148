// Options can never be misread: every method of ImageCache, Image and ImageUse checks its
// arguments strictly before doing anything. Table-driven: each case is a call with one bad
// argument (an unknown key, a wrong type, NaN, an infinity, a negative or fractional number, an
// invalid Date, an extra argument); each must reject with InvalidArgumentError naming the
// argument, and leave the cache exactly as it was (files, references, last-used times, uses).
// Also: `load`'s `platform` picks from a multi-platform index, and an aborted `signal` rejects
// with AbortError before anything is read.

import { spawnSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";

import { beforeAll, describe, expect, it } from "vitest";

import {
  AbortError,
  Image,
  ImageCache,
  ImageUse,
  InvalidArgumentError,
  PlatformNotFoundError,
} from "../src/index";
import { MEDIA, corpus, makeImage, makeLayer, ociLayoutTar, type Corpus, type ImageFixture } from "./fixtures";
import { CLI, freshRoot, rejectsWith, snapshotRoot, tempFile } from "./helpers";

let c: Corpus;

beforeAll(async () => {
  c = await corpus();
});

/** Everything a call could change: files (not the index files), references with their times, uses. */
async function state(cache: ImageCache, root: string): Promise<unknown> {
  return {
    files: await snapshotRoot(root),
    refs: (await cache.list()).map((h) => [h.reference, h.manifestDigest, h.createdAt?.getTime(), h.lastUsedAt?.getTime()]),
    uses: (await cache.uses()).map((u) => [u.reference, u.holder, u.expiresAt?.getTime() ?? null]),
  };
}

/** A cache holding alpha and beta, beta in use by a sandbox; and an archive of legacy, not loaded. */
async function setup(): Promise<{ cache: ImageCache; root: string; use: ImageUse; archive: string }> {
  const root = await freshRoot();
  const cache = ImageCache.open({ root });
  const ab = await tempFile(
    "ab.tar",
    await ociLayoutTar([
      { image: c.alpha, annotations: { "io.containerd.image.name": "example.com/team/alpha:1.0" } },
      { image: c.beta, annotations: { "io.containerd.image.name": "docker.io/library/beta:latest" } },
    ]),
  );
  await cache.load(ab);
  const use = await cache.acquire("beta", { sandbox: "sb-1" });
  const archive = await tempFile(
    "legacy.tar",
    await ociLayoutTar([{ image: c.legacy, annotations: { "io.containerd.image.name": "example.com/legacy:1" } }]),
  );
  return { cache, root, use, archive };
}

/** What a table row calls: the API with loose types, so bad arguments get through to it. */
type Loose = Record<string, (...args: unknown[]) => unknown>;

/** A bad call and the argument its InvalidArgumentError must name. */
type Case = [label: string, call: (api: Loose, ctx: { archive: string; use: ImageUse }) => unknown, argument: string];

const SANDBOX = { sandbox: "sb-2" };

/** The asynchronous methods, shared by ImageCache and the Image statics. */
const METHOD_CASES: Case[] = [
  // load
  ["load: unknown key", (a, x) => a["load"]!(x.archive, { tags: "example.com/x:1" }), "tags"],
  ["load: an option of another method", (a, x) => a["load"]!(x.archive, { dryRun: true }), "dryRun"],
  ["load: tag of the wrong type", (a, x) => a["load"]!(x.archive, { tag: 1 }), "tag"],
  ["load: platform without an architecture", (a, x) => a["load"]!(x.archive, { platform: "linux" }), "platform"],
  ["load: platform with four parts", (a, x) => a["load"]!(x.archive, { platform: "linux/arm/v7/x" }), "platform"],
  ["load: platform with a space", (a, x) => a["load"]!(x.archive, { platform: "linux/amd 64" }), "platform"],
  ["load: platform of the wrong type", (a, x) => a["load"]!(x.archive, { platform: ["linux", "amd64"] }), "platform"],
  ["load: signal that is not an AbortSignal", (a, x) => a["load"]!(x.archive, { signal: { aborted: true } }), "signal"],
  ["load: path of the wrong type", (a) => a["load"]!(42), "path"],
  ["load: options that are an array", (a, x) => a["load"]!(x.archive, []), "options"],
  ["load: options that are a string", (a, x) => a["load"]!(x.archive, "example.com/x:1"), "options"],
  ["load: options that are a class instance", (a, x) => a["load"]!(x.archive, new Map([["tag", "x:1"]])), "options"],
  ["load: an extra argument", (a, x) => a["load"]!(x.archive, {}, { tag: "x:1" }), "arguments[2]"],
  // get, inspect, bootDisk, uses: a reference and nothing more
  ["get: reference of the wrong type", (a) => a["get"]!(42), "reference"],
  ["get: an extra argument", (a) => a["get"]!("beta", { platform: "linux/amd64" }), "arguments[1]"],
  ["inspect: no reference", (a) => a["inspect"]!(), "reference"],
  ["inspect: an extra argument", (a) => a["inspect"]!("beta", {}), "arguments[1]"],
  ["bootDisk: reference of the wrong type", (a) => a["bootDisk"]!(null), "reference"],
  ["bootDisk: an extra argument", (a) => a["bootDisk"]!("beta", { rebuild: true }), "arguments[1]"],
  ["uses: reference of the wrong type", (a) => a["uses"]!(7), "reference"],
  ["uses: an extra argument", (a) => a["uses"]!("beta", {}), "arguments[1]"],
  // list takes { all }; diskUsage takes nothing
  ["list: an unknown option", (a) => a["list"]!({ json: true }), "json"],
  ["list: all of the wrong type", (a) => a["list"]!({ all: "yes" }), "all"],
  ["diskUsage: an argument", (a) => a["diskUsage"]!({ verbose: true }), "arguments[0]"],
  // remove
  ["remove: dryRun is not an option of remove", (a) => a["remove"]!("example.com/team/alpha:1.0", { dryRun: true }), "dryRun"],
  ["remove: force of the wrong type", (a) => a["remove"]!("beta", { force: "yes" }), "force"],
  ["remove: force as a number", (a) => a["remove"]!("beta", { force: 1 }), "force"],
  ["remove: options that are null", (a) => a["remove"]!("beta", null), "options"],
  ["remove: an extra argument", (a) => a["remove"]!("example.com/team/alpha:1.0", {}, { force: true }), "arguments[2]"],
  // prune
  ["prune: the maxBytez typo", (a) => a["prune"]!({ maxBytez: 5 }), "maxBytez"],
  ["prune: snake case", (a) => a["prune"]!({ dry_run: true }), "dry_run"],
  ["prune: a symbol key", (a) => a["prune"]!({ [Symbol("maxBytes")]: 5 }), "Symbol(maxBytes)"],
  ["prune: maxBytes negative", (a) => a["prune"]!({ maxBytes: -1 }), "maxBytes"],
  ["prune: maxBytes fractional", (a) => a["prune"]!({ maxBytes: 0.5 }), "maxBytes"],
  ["prune: maxBytes NaN", (a) => a["prune"]!({ maxBytes: Number.NaN }), "maxBytes"],
  ["prune: maxBytes infinite", (a) => a["prune"]!({ maxBytes: Number.POSITIVE_INFINITY }), "maxBytes"],
  ["prune: maxBytes beyond safe integers", (a) => a["prune"]!({ maxBytes: 2 ** 53 }), "maxBytes"],
  ["prune: maxBytes as a string", (a) => a["prune"]!({ maxBytes: "20G" }), "maxBytes"],
  ["prune: maxBytes as a bigint", (a) => a["prune"]!({ maxBytes: 5n }), "maxBytes"],
  ["prune: gracePeriodMs negative", (a) => a["prune"]!({ gracePeriodMs: -1 }), "gracePeriodMs"],
  ["prune: gracePeriodMs infinite", (a) => a["prune"]!({ gracePeriodMs: Number.NEGATIVE_INFINITY }), "gracePeriodMs"],
  ["prune: olderThan an invalid Date", (a) => a["prune"]!({ olderThan: new Date("not a date") }), "olderThan"],
  ["prune: olderThan negative", (a) => a["prune"]!({ olderThan: -1000 }), "olderThan"],
  ["prune: olderThan NaN", (a) => a["prune"]!({ olderThan: Number.NaN }), "olderThan"],
  ["prune: olderThan a date string", (a) => a["prune"]!({ olderThan: "2024-01-01" }), "olderThan"],
  ["prune: keep a string", (a) => a["prune"]!({ keep: "beta" }), "keep"],
  ["prune: keep with a number", (a) => a["prune"]!({ keep: ["beta", 1] }), "keep"],
  ["prune: dryRun as a number", (a) => a["prune"]!({ dryRun: 1 }), "dryRun"],
  ["prune: options that are a number", (a) => a["prune"]!(5), "options"],
  ["prune: an extra argument", (a) => a["prune"]!({}, { dryRun: true }), "arguments[1]"],
  // acquire: holder, then options
  ["acquire: empty holder id", (a) => a["acquire"]!("example.com/team/alpha:1.0", { sandbox: "" }), "holder"],
  ["acquire: holder id of the wrong type", (a) => a["acquire"]!("example.com/team/alpha:1.0", { snapshot: 1 }), "holder"],
  ["acquire: unknown holder kind", (a) => a["acquire"]!("example.com/team/alpha:1.0", { vm: "x" }), "holder"],
  ["acquire: both holder kinds", (a) => a["acquire"]!("example.com/team/alpha:1.0", { sandbox: "a", snapshot: "b" }), "holder"],
  ["acquire: a holder key too many", (a) => a["acquire"]!("example.com/team/alpha:1.0", { sandbox: "a", ttlMs: 5 }), "holder"],
  ["acquire: no holder kind", (a) => a["acquire"]!("example.com/team/alpha:1.0", {}), "holder"],
  ["acquire: holder a string", (a) => a["acquire"]!("example.com/team/alpha:1.0", "sb-2"), "holder"],
  ["acquire: unknown option", (a) => a["acquire"]!("example.com/team/alpha:1.0", SANDBOX, { ttl: 5 }), "ttl"],
  ["acquire: ttlMs zero", (a) => a["acquire"]!("example.com/team/alpha:1.0", SANDBOX, { ttlMs: 0 }), "ttlMs"],
  ["acquire: ttlMs negative", (a) => a["acquire"]!("example.com/team/alpha:1.0", SANDBOX, { ttlMs: -5 }), "ttlMs"],
  ["acquire: ttlMs fractional", (a) => a["acquire"]!("example.com/team/alpha:1.0", SANDBOX, { ttlMs: 1.5 }), "ttlMs"],
  ["acquire: ttlMs NaN", (a) => a["acquire"]!("example.com/team/alpha:1.0", SANDBOX, { ttlMs: Number.NaN }), "ttlMs"],
  ["acquire: ttlMs infinite", (a) => a["acquire"]!("example.com/team/alpha:1.0", SANDBOX, { ttlMs: Number.POSITIVE_INFINITY }), "ttlMs"],
  ["acquire: ttlMs a string", (a) => a["acquire"]!("example.com/team/alpha:1.0", SANDBOX, { ttlMs: "1h" }), "ttlMs"],
  ["acquire: an extra argument", (a) => a["acquire"]!("example.com/team/alpha:1.0", SANDBOX, {}, {}), "arguments[3]"],
];

/** ImageCache.open and Image.configure: synchronous, same options. */
const OPEN_CASES: [label: string, args: unknown[], argument: string][] = [
  ["unknown key", [{ roots: "/tmp/x" }], "roots"],
  ["root of the wrong type", [{ root: 5 }], "root"],
  ["empty root", [{ root: "" }], "root"],
  ["backend an unknown name", [{ backend: "cloud" }], "backend"],
  ["backend an unknown kind", [{ backend: { local: true } }], "backend"],
  ["backend with two kinds", [{ backend: { cloud: { url: "https://x" }, local: {} } }], "backend"],
  ["cloud without url", [{ backend: { cloud: {} } }], "backend.cloud.url"],
  ["cloud url of the wrong type", [{ backend: { cloud: { url: 1 } } }], "backend.cloud.url"],
  ["cloud with an unknown key", [{ backend: { cloud: { url: "https://x", token: "t" } } }], "backend.cloud.token"],
  ["options that are null", [null], "options"],
  ["options that are an array", [[]], "options"],
  ["an extra argument", [{}, {}], "arguments[1]"],
];

function expectInvalid(err: unknown, argument: string, label: string): void {
  expect(err, label).toBeInstanceOf(InvalidArgumentError);
  expect((err as InvalidArgumentError).code, label).toBe("INVALID_ARGUMENT");
  expect((err as InvalidArgumentError).argument, label).toBe(argument);
}

describe("every method rejects misread options, changing nothing", () => {
  it.each([
    ["ImageCache", false],
    ["Image", true],
  ] as const)("%s methods", async (_name, statics) => {
    const { cache, root, use, archive } = await setup();
    if (statics) Image.configure({ root });
    const api = (statics ? Image : cache) as unknown as Loose;
    const before = await state(cache, root);
    for (const [label, call, argument] of METHOD_CASES) {
      let caught: unknown;
      try {
        await call(api, { archive, use });
      } catch (err) {
        caught = err;
      }
      expectInvalid(caught, argument, label);
      expect(await state(cache, root), label).toEqual(before);
    }
    // The same calls with the bad argument fixed do what they say (so the table tests real
    // changes): the typo'd prune would have removed alpha, and load would have added legacy.
    expect((await cache.prune({ maxBytes: 0, dryRun: true })).removed.map((r) => r.reference)).toEqual([
      "example.com/team/alpha:1.0",
    ]);
    expect((await cache.load(archive)).map((h) => h.reference)).toEqual(["example.com/legacy:1"]);
  });

  it("ImageUse.release takes no arguments and keeps the use", async () => {
    const { cache, root, use } = await setup();
    const before = await state(cache, root);
    const loose = use as unknown as Loose;
    const err = await rejectsWith(
      loose["release"]!.call(use, { force: true }) as Promise<unknown>,
      InvalidArgumentError,
      "INVALID_ARGUMENT",
    );
    expect(err.argument).toBe("arguments[0]");
    expect(await state(cache, root)).toEqual(before);
    await use.release();
    expect(await cache.uses()).toEqual([]);
  });

  it.each(OPEN_CASES)("ImageCache.open and Image.configure reject %s", async (label, args, argument) => {
    const root = await freshRoot();
    Image.configure({ root });
    const open = ImageCache.open as unknown as (...a: unknown[]) => unknown;
    const configure = Image.configure as unknown as (...a: unknown[]) => unknown;
    for (const f of [open, configure]) {
      let caught: unknown;
      try {
        f.apply(null, args);
      } catch (err) {
        caught = err;
      }
      expectInvalid(caught, argument, label);
    }
    // The rejected configuration did not replace the default cache: it still opens `root`
    // (a prune creates the cache; a read-only list would not).
    expect(await Image.list()).toEqual([]);
    await Image.prune({ dryRun: true });
    expect(existsSync(join(root, "index.db"))).toBe(true);
  });

  it("options given as undefined count as absent", async () => {
    const { cache, root } = await setup();
    const report = await cache.prune({ dryRun: true, maxBytes: undefined, keep: undefined });
    expect(report.dryRun).toBe(true);
    expect(ImageCache.open({ root, backend: undefined }).root).toBe(root);
    await cache.remove("example.com/team/alpha:1.0", { force: undefined });
    expect((await cache.list()).map((h) => h.reference)).toEqual(["beta:latest"]);
  });
});

/** One image per platform, in a layout whose index lists both under one name. */
async function multiPlatform(): Promise<{ archive: string; amd64: ImageFixture; arm64: ImageFixture }> {
  const layer = await makeLayer({ "etc/platform": "multi\n" });
  const amd64 = makeImage([layer], { env: [], cmd: ["/amd64"], labels: {} }, { architecture: "amd64" });
  const arm64 = makeImage([layer], { env: [], cmd: ["/arm64"], labels: {} }, { architecture: "arm64" });
  const name = { "io.containerd.image.name": "example.com/multi:1" };
  const index = {
    schemaVersion: 2,
    mediaType: MEDIA.ociIndex,
    manifests: [amd64, arm64].map((image) => ({
      mediaType: MEDIA.ociManifest,
      digest: image.manifestDigest,
      size: image.manifestBytes.length,
      platform: { os: "linux", architecture: image.architecture },
      annotations: name,
    })),
  };
  const archive = await tempFile(
    "multi.tar",
    await ociLayoutTar([{ image: amd64 }, { image: arm64 }], { indexJson: JSON.stringify(index) }),
  );
  return { archive, amd64, arm64 };
}

describe("load options", () => {
  it("platform picks the manifest of a multi-platform index", async () => {
    const { archive, amd64, arm64 } = await multiPlatform();
    for (const [platform, image] of [
      ["linux/arm64", arm64],
      ["linux/amd64", amd64],
      ["linux/arm64/v8", arm64],
    ] as const) {
      const cache = ImageCache.open({ root: await freshRoot() });
      const [handle] = await cache.load(archive, { platform });
      expect(handle?.manifestDigest, platform).toBe(image.manifestDigest);
      expect(handle?.architecture).toBe(image.architecture);
    }
  });

  it("a platform the index lacks rejects with PlatformNotFoundError listing what it offers", async () => {
    const { archive } = await multiPlatform();
    const root = await freshRoot();
    const cache = ImageCache.open({ root });
    const err = await rejectsWith(cache.load(archive, { platform: "linux/s390x" }), PlatformNotFoundError, "PLATFORM_NOT_FOUND");
    expect(err.platform).toBe("linux/s390x");
    expect([...err.available].sort()).toEqual(["linux/amd64", "linux/arm64"]);
    expect(await cache.list()).toEqual([]);
  });

  it("an aborted signal rejects with AbortError before anything is read", async () => {
    const { cache, root, archive } = await setup();
    Image.configure({ root });
    const before = await state(cache, root);
    const controller = new AbortController();
    controller.abort(new Error("sandbox cancelled"));
    const err = await rejectsWith(cache.load(archive, { signal: controller.signal }), AbortError, "ABORTED");
    expect(err.cause).toBe(controller.signal.reason);
    expect(err.name).toBe("AbortError");
    await rejectsWith(Image.load(archive, { signal: AbortSignal.abort() }), AbortError, "ABORTED");
    expect(await state(cache, root)).toEqual(before);
    // A signal that is not aborted lets the load run.
    const loaded = await cache.load(archive, { signal: new AbortController().signal });
    expect(loaded.map((h) => h.reference)).toEqual(["example.com/legacy:1"]);
  });

  // Aborting used to do nothing once the load had started (it ran to its end).
  it("a signal aborted once the load has started stops it with AbortError and changes nothing", async () => {
    const { cache, root, archive } = await setup();
    const before = await state(cache, root);
    const controller = new AbortController();
    const loading = cache.load(archive, { signal: controller.signal });
    controller.abort(new Error("sandbox gone"));
    const err = await rejectsWith(loading, AbortError, "ABORTED");
    expect(err.cause).toBe(controller.signal.reason);
    expect(await state(cache, root)).toEqual(before);
    expect(readdirSync(join(root, "tmp"))).toEqual([]);
  });
});

describe("the CLI maps its flags onto the options", () => {
  const cli = (args: string[]) => spawnSync(process.execPath, [CLI, ...args], { input: "", encoding: "utf8" });

  it("load --platform picks from a multi-platform index; a malformed one is a usage error", async () => {
    const { archive, arm64 } = await multiPlatform();
    const root = await freshRoot();
    const bad = cli(["--root", root, "load", "-i", archive, "--platform", "arm64"]);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/\[INVALID_ARGUMENT\]\n$/);
    expect(await ImageCache.open({ root }).list()).toEqual([]);
    const missing = cli(["--root", root, "load", "-i", archive, "--platform", "linux/s390x"]);
    expect(missing.status).toBe(1);
    expect(missing.stderr).toMatch(/\[PLATFORM_NOT_FOUND\]\n$/);
    const ok = cli(["--root", root, "load", "-i", archive, "--platform", "linux/arm64", "--tag", "example.com/multi:arm"]);
    expect(ok.stderr).toBe("");
    expect(ok.status).toBe(0);
    expect(ok.stdout.trim().split("\n").sort()).toEqual(["example.com/multi:1", "example.com/multi:arm"]);
    expect((await ImageCache.open({ root }).get("example.com/multi:arm")).manifestDigest).toBe(arm64.manifestDigest);
  });
});
