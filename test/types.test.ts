// Type-level checks of the public API (vitest's expectTypeOf; they also run as no-op tests).

import { describe, expectTypeOf, it } from "vitest";

import {
  Image,
  ImageCache,
  ImageHandle,
  ImageInUseError,
  ImageUse,
  OcicacheError,
  type ErrorCode,
  type ImageConfigDetail,
  type ImageDetail,
  type ImageHistoryEntry,
  type ImageHolder,
  type ImagePruneReport,
} from "../src/index";

describe("public types", () => {
  it("ImageHandle fields", () => {
    expectTypeOf<ImageHandle["reference"]>().toEqualTypeOf<string>();
    expectTypeOf<ImageHandle["sizeBytes"]>().toEqualTypeOf<number | null>();
    expectTypeOf<ImageHandle["createdAt"]>().toEqualTypeOf<Date | null>();
    expectTypeOf<ImageHandle["lastUsedAt"]>().toEqualTypeOf<Date | null>();
    expectTypeOf<ImageHandle["layerCount"]>().toEqualTypeOf<number>();
    // Constructors are internal.
    // @ts-expect-error ImageHandle's constructor is private
    expectTypeOf(() => new ImageHandle()).toBeFunction();
    // @ts-expect-error ImageCache's constructor is private; use ImageCache.open
    expectTypeOf(() => new ImageCache()).toBeFunction();
  });

  it("ImageConfigDetail: the config blob's fields, dates as Dates", () => {
    expectTypeOf<ImageConfigDetail["exposedPorts"]>().toEqualTypeOf<string[] | null>();
    expectTypeOf<ImageConfigDetail["volumes"]>().toEqualTypeOf<string[] | null>();
    expectTypeOf<ImageConfigDetail["created"]>().toEqualTypeOf<Date | null>();
    expectTypeOf<ImageConfigDetail["author"]>().toEqualTypeOf<string | null>();
    expectTypeOf<ImageConfigDetail["history"]>().toEqualTypeOf<readonly ImageHistoryEntry[] | null>();
    expectTypeOf<ImageHistoryEntry["created"]>().toEqualTypeOf<Date | null>();
    expectTypeOf<ImageHistoryEntry["createdBy"]>().toEqualTypeOf<string | null>();
    expectTypeOf<ImageHistoryEntry["emptyLayer"]>().toEqualTypeOf<boolean>();
    // The native milliseconds do not leak into the public type.
    expectTypeOf<ImageConfigDetail>().not.toHaveProperty("createdMs");
    expectTypeOf<ImageHistoryEntry>().not.toHaveProperty("createdMs");
  });

  it("ImageCache and Image methods", () => {
    expectTypeOf(ImageCache.open).parameter(0).toEqualTypeOf<
      | {
          root?: string;
          backend?: "local" | { cloud: { url: string } };
          onLockWait?: (event: { readonly lock: string; readonly mode: "shared" | "exclusive" }) => void;
        }
      | undefined
    >();
    expectTypeOf<ImageCache["get"]>().returns.toEqualTypeOf<Promise<ImageHandle>>();
    expectTypeOf<ImageCache["list"]>().returns.toEqualTypeOf<Promise<ImageHandle[]>>();
    expectTypeOf<ImageCache["inspect"]>().returns.toEqualTypeOf<Promise<ImageDetail>>();
    expectTypeOf<ImageCache["remove"]>().returns.toEqualTypeOf<Promise<void>>();
    expectTypeOf<ImageCache["prune"]>().returns.toEqualTypeOf<Promise<ImagePruneReport>>();
    expectTypeOf<ImageCache["load"]>().returns.toEqualTypeOf<Promise<ImageHandle[]>>();
    expectTypeOf<ImageCache["acquire"]>().returns.toEqualTypeOf<Promise<ImageUse>>();
    expectTypeOf<ImageCache["uses"]>().returns.toEqualTypeOf<Promise<ImageUse[]>>();
    expectTypeOf<ImageCache["root"]>().toEqualTypeOf<string>();
    expectTypeOf(Image.get).returns.toEqualTypeOf<Promise<ImageHandle>>();
    expectTypeOf(Image.configure).returns.toEqualTypeOf<void>();
    expectTypeOf<ImageHolder>().toEqualTypeOf<{ sandbox: string } | { snapshot: string }>();
    expectTypeOf<ImagePruneReport["bytesReclaimed"]>().toEqualTypeOf<number | null>();
    expectTypeOf<ImageUse["release"]>().returns.toEqualTypeOf<Promise<void>>();
  });

  it("errors", () => {
    expectTypeOf<ImageInUseError>().toMatchTypeOf<OcicacheError>();
    expectTypeOf<ImageInUseError["code"]>().toEqualTypeOf<"IMAGE_IN_USE">();
    expectTypeOf<ImageInUseError["holders"]>().toEqualTypeOf<readonly string[]>();
    expectTypeOf<"IMAGE_NOT_FOUND">().toMatchTypeOf<ErrorCode>();
    expectTypeOf<"NATIVE_NOT_FOUND">().toMatchTypeOf<ErrorCode>();
    expectTypeOf<OcicacheError["code"]>().toMatchTypeOf<string>();
  });
});
