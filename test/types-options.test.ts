// Type-level checks that a misspelled or mistyped option is a TypeScript error, not only a
// run-time InvalidArgumentError (`tsc --noEmit` checks the `@ts-expect-error` lines: an
// expected error that does not happen fails the gate). The calls sit in functions that are
// never run.

import { describe, expectTypeOf, it } from "vitest";

import { AbortError, Image, ImageCache, OcicacheError, type ErrorCode, type LoadOptions } from "../src/index";

declare const cache: ImageCache;
declare const signal: AbortSignal;

/** Calls that must not compile; never invoked. */
export function typos(): void {
  // @ts-expect-error maxBytez is not a prune option
  void Image.prune({ maxBytez: 5 });
  // @ts-expect-error dryRun is an option of prune, not of remove
  void Image.remove("busybox", { dryRun: true });
  // @ts-expect-error maxBytes is a number of bytes, not a size string
  void cache.prune({ maxBytes: "20G" });
  // @ts-expect-error olderThan is a Date or a number of milliseconds
  void cache.prune({ olderThan: "7d" });
  // @ts-expect-error keep is a list of references
  void cache.prune({ keep: "busybox" });
  // @ts-expect-error ttl is spelled ttlMs
  void cache.acquire("busybox", { sandbox: "sb" }, { ttl: 5 });
  // @ts-expect-error a holder is { sandbox } or { snapshot }
  void cache.acquire("busybox", { vm: "x" });
  // @ts-expect-error tags is spelled tag
  void cache.load("a.tar", { tags: "x:1" });
  // @ts-expect-error platform is a string such as linux/arm64
  void cache.load("a.tar", { platform: { os: "linux", architecture: "arm64" } });
  // @ts-expect-error signal is an AbortSignal
  void cache.load("a.tar", { signal: true });
  // @ts-expect-error force is a boolean
  void cache.remove("busybox", { force: "yes" });
  // @ts-expect-error roots is spelled root
  ImageCache.open({ roots: "/var/cache/ocicache" });
  // @ts-expect-error the cloud backend needs a url
  Image.configure({ backend: { cloud: {} } });
  // @ts-expect-error list takes no options
  void cache.list({ json: true });
  // @ts-expect-error diskUsage takes no options
  void Image.diskUsage({ verbose: true });
  // @ts-expect-error get takes a reference only
  void cache.get("busybox", { platform: "linux/amd64" });
}

/** The same calls spelled right compile. */
export function spelledRight(): void {
  void Image.prune({ maxBytes: 5, dryRun: true, olderThan: new Date(), keep: ["busybox"], gracePeriodMs: 0 });
  void Image.remove("busybox", { force: true });
  void cache.acquire("busybox", { snapshot: "snap" }, { ttlMs: 5 });
  void cache.load("a.tar", { tag: "x:1", platform: "linux/arm64", signal });
  ImageCache.open({ root: "/var/cache/ocicache", backend: { cloud: { url: "https://cache.example.com" } } });
}

describe("options types", () => {
  it("load takes a platform string and an AbortSignal", () => {
    expectTypeOf<LoadOptions["platform"]>().toEqualTypeOf<string | undefined>();
    expectTypeOf<LoadOptions["signal"]>().toEqualTypeOf<AbortSignal | undefined>();
    expectTypeOf<LoadOptions["tag"]>().toEqualTypeOf<string | undefined>();
  });

  it("AbortError carries code ABORTED", () => {
    expectTypeOf<AbortError>().toMatchTypeOf<OcicacheError>();
    expectTypeOf<AbortError["code"]>().toEqualTypeOf<"ABORTED">();
    expectTypeOf<"ABORTED">().toMatchTypeOf<ErrorCode>();
  });
});
