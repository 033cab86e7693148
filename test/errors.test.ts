import { describe, expect, it } from "vitest";

import {
  CacheIndexError,
  DigestMismatchError,
  ERROR_CODES,
  ImageInUseError,
  InvalidArgumentError,
  IoError,
  NativeNotFoundError,
  OcicacheError,
  PlatformNotFoundError,
  fromNative,
} from "../src/index";
import { native } from "../src/internal/native";

/** An error shaped like the addon's: a real Error with `code` and structured properties. */
function nativeError(code: string, fields: Record<string, unknown> = {}): Error {
  return Object.assign(new Error(`native ${code}`), { code }, fields);
}

describe("fromNative", () => {
  it("maps every code the binding exports to its own subclass", () => {
    const codes = native().errorCodes();
    expect(codes.length).toBeGreaterThan(0);
    for (const code of codes) {
      const err = fromNative(nativeError(code));
      expect(err, code).toBeInstanceOf(OcicacheError);
      expect(err.constructor, code).not.toBe(OcicacheError);
      expect((err as OcicacheError).code).toBe(code);
      expect(err.name, code).toBe(err.constructor.name);
      expect(err.message).toBe(`native ${code}`);
      expect(ERROR_CODES).toContain(code);
    }
  });

  it("lists NATIVE_NOT_FOUND beyond the core's codes and nothing else", () => {
    expect([...ERROR_CODES].sort()).toEqual([...native().errorCodes(), "NATIVE_NOT_FOUND"].sort());
  });

  it("copies structured fields and the cause", () => {
    const cause = new Error("disk on fire");
    const io = fromNative(nativeError("IO", { path: "/x/y", errno: 28, cause }));
    expect(io).toBeInstanceOf(IoError);
    expect((io as IoError).path).toBe("/x/y");
    expect((io as IoError).errno).toBe(28);
    expect(io.cause).toBe(cause);

    const inUse = fromNative(nativeError("IMAGE_IN_USE", { reference: "busybox", holders: ["sandbox:a"] }));
    expect(inUse).toBeInstanceOf(ImageInUseError);
    expect((inUse as ImageInUseError).holders).toEqual(["sandbox:a"]);
    expect((inUse as ImageInUseError).reference).toBe("busybox");

    const dm = fromNative(nativeError("DIGEST_MISMATCH", { subject: "layer 0", expected: "sha256:a", actual: "sha256:b" }));
    expect(dm).toMatchObject({ subject: "layer 0", expected: "sha256:a", actual: "sha256:b" });
    expect(dm).toBeInstanceOf(DigestMismatchError);

    const pf = fromNative(nativeError("PLATFORM_NOT_FOUND", { platform: "linux/s390x", available: ["linux/amd64"] }));
    expect(pf).toBeInstanceOf(PlatformNotFoundError);
    expect((pf as PlatformNotFoundError).available).toEqual(["linux/amd64"]);

    expect(fromNative(nativeError("INVALID_ARGUMENT", { argument: "holder" }))).toMatchObject({ argument: "holder" });
    expect(fromNative(nativeError("INDEX"))).toBeInstanceOf(CacheIndexError);
    expect((fromNative(nativeError("IO", { path: "/p" })) as IoError).errno).toBeNull();
  });

  it("falls back to the base class for unknown codes", () => {
    const err = fromNative(nativeError("SOMETHING_NEW"));
    expect(err.constructor).toBe(OcicacheError);
    expect((err as OcicacheError).code).toBe("SOMETHING_NEW");
    expect(err.name).toBe("OcicacheError");
  });

  it("returns errors without a code, and OcicacheErrors, unchanged", () => {
    const plain = new TypeError("nope");
    expect(fromNative(plain)).toBe(plain);
    const ours = new InvalidArgumentError("bad", { argument: "x" });
    expect(fromNative(ours)).toBe(ours);
  });

  it("builds NativeNotFoundError with the paths tried", () => {
    const err = new NativeNotFoundError("native addon not found", { tried: ["/a.node"] });
    expect(err.code).toBe("NATIVE_NOT_FOUND");
    expect(err.tried).toEqual(["/a.node"]);
    expect(err.name).toBe("NativeNotFoundError");
    expect(Object.keys(err)).not.toContain("name");
  });
});
