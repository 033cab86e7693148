// Error classes of ocicache, one per family of the core's stable error codes, and the single
// factory (`fromNative`) that maps a native error to its class by `code`. Messages come from
// the core unchanged; callers branch on `code` or `instanceof`, never on message text.

/**
 * Every error code ocicache produces: the core's codes (`errorCodes()` of the native addon)
 * plus `NATIVE_NOT_FOUND` from the TypeScript loader. Codes are only ever added, never renamed.
 */
export type ErrorCode =
  | "IMAGE_NOT_FOUND"
  | "IMAGE_IN_USE"
  | "INVALID_REFERENCE"
  | "INVALID_ARCHIVE"
  | "DIGEST_MISMATCH"
  | "PLATFORM_NOT_FOUND"
  | "REFERENCE_REQUIRED"
  | "UNSUPPORTED"
  | "INVALID_ARGUMENT"
  | "CORRUPT_CACHE"
  | "IO"
  | "INDEX"
  | "INTERNAL"
  | "LIMIT_EXCEEDED"
  | "NO_SPACE"
  | "ABORTED"
  | "REGISTRY_UNAUTHORIZED"
  | "REGISTRY_DENIED"
  | "REGISTRY_RATE_LIMITED"
  | "REGISTRY_UNAVAILABLE"
  | "REGISTRY_TLS"
  | "NATIVE_NOT_FOUND";

/** Options every error constructor accepts. */
export interface OcicacheErrorOptions {
  /** The underlying error, when there is one (a system or SQLite error, for example). */
  cause?: unknown;
}

function named(cls: { prototype: Error }, name: string): void {
  Object.defineProperty(cls.prototype, "name", { value: name, writable: true, configurable: true, enumerable: false });
}

/**
 * Base class of every error ocicache throws or rejects with. Branch on {@link OcicacheError.code}
 * (or on the subclass), never on the message.
 */
export class OcicacheError extends Error {
  /**
   * The stable machine-readable code, such as `IMAGE_NOT_FOUND`. A code newer than this
   * package's {@link ErrorCode} list arrives as a plain string on a base `OcicacheError`.
   */
  readonly code: ErrorCode | (string & {});

  /** The underlying error, when there is one. */
  declare readonly cause?: unknown;

  /**
   * @param code - The stable error code.
   * @param message - Human-readable text (lowercase, no trailing period).
   * @param options - `cause`, when there is an underlying error.
   */
  constructor(code: ErrorCode | (string & {}), message: string, options?: OcicacheErrorOptions) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
  }
}
named(OcicacheError, "OcicacheError");

/**
 * The reference (or digest) is not in the cache, or (from a pull) not in its registry. Code
 * `IMAGE_NOT_FOUND`.
 */
export class ImageNotFoundError extends OcicacheError {
  /** The reference as the caller spelled it. */
  readonly reference: string;
  /** From a pull: the registry host that has no such repository, tag or manifest; else null. */
  readonly registry: string | null;
  /** From a pull: the registry's own error code (`MANIFEST_UNKNOWN`, `NAME_UNKNOWN`), if any. */
  readonly registryCode: string | null;
  declare readonly code: "IMAGE_NOT_FOUND";

  /**
   * @param message - Human-readable text.
   * @param details - The reference looked up; for a pull, the registry and its error code.
   * @param options - `cause`, when there is one.
   */
  constructor(
    message: string,
    details: { reference: string; registry?: string | null; registryCode?: string | null },
    options?: OcicacheErrorOptions,
  ) {
    super("IMAGE_NOT_FOUND", message, options);
    this.reference = details.reference;
    this.registry = details.registry ?? null;
    this.registryCode = details.registryCode ?? null;
  }
}
named(ImageNotFoundError, "ImageNotFoundError");

/** A sandbox or snapshot use pins the image and removal was not forced. Code `IMAGE_IN_USE`. */
export class ImageInUseError extends OcicacheError {
  /** The reference as the caller spelled it. */
  readonly reference: string;
  /** Who holds the image, as `sandbox:<id>` or `snapshot:<id>`. */
  readonly holders: readonly string[];
  declare readonly code: "IMAGE_IN_USE";

  /**
   * @param message - Human-readable text.
   * @param details - The reference and its holders.
   * @param options - `cause`, when there is one.
   */
  constructor(
    message: string,
    details: { reference: string; holders: readonly string[] },
    options?: OcicacheErrorOptions,
  ) {
    super("IMAGE_IN_USE", message, options);
    this.reference = details.reference;
    this.holders = Object.freeze([...details.holders]);
  }
}
named(ImageInUseError, "ImageInUseError");

/** The text is not a valid image reference. Code `INVALID_REFERENCE`. */
export class InvalidReferenceError extends OcicacheError {
  /** What the caller passed. */
  readonly input: string;
  declare readonly code: "INVALID_REFERENCE";

  /**
   * @param message - Human-readable text.
   * @param details - The rejected input.
   * @param options - `cause`, when there is one.
   */
  constructor(message: string, details: { input: string }, options?: OcicacheErrorOptions) {
    super("INVALID_REFERENCE", message, options);
    this.input = details.input;
  }
}
named(InvalidReferenceError, "InvalidReferenceError");

/**
 * The archive or layout is malformed: bad tar or gzip, bad JSON, missing files, unsafe member
 * names, unknown media types. Code `INVALID_ARCHIVE`.
 */
export class InvalidArchiveError extends OcicacheError {
  declare readonly code: "INVALID_ARCHIVE";

  /**
   * @param message - Human-readable text.
   * @param options - `cause`, when there is one.
   */
  constructor(message: string, options?: OcicacheErrorOptions) {
    super("INVALID_ARCHIVE", message, options);
  }
}
named(InvalidArchiveError, "InvalidArchiveError");

/**
 * Content does not match the digest that names it (a blob, a config, or a layer's `diff_id`).
 * Code `DIGEST_MISMATCH`.
 */
export class DigestMismatchError extends OcicacheError {
  /** What was checked, for example `layer 1 diff_id`. */
  readonly subject: string;
  /** The digest the metadata promised. */
  readonly expected: string;
  /** The digest of the bytes actually read. */
  readonly actual: string;
  declare readonly code: "DIGEST_MISMATCH";

  /**
   * @param message - Human-readable text.
   * @param details - What was checked and both digests.
   * @param options - `cause`, when there is one.
   */
  constructor(
    message: string,
    details: { subject: string; expected: string; actual: string },
    options?: OcicacheErrorOptions,
  ) {
    super("DIGEST_MISMATCH", message, options);
    this.subject = details.subject;
    this.expected = details.expected;
    this.actual = details.actual;
  }
}
named(DigestMismatchError, "DigestMismatchError");

/** An image index has no manifest for the requested platform. Code `PLATFORM_NOT_FOUND`. */
export class PlatformNotFoundError extends OcicacheError {
  /** The platform looked for, as `os/architecture[/variant]`. */
  readonly platform: string;
  /** Platforms the index offers. */
  readonly available: readonly string[];
  declare readonly code: "PLATFORM_NOT_FOUND";

  /**
   * @param message - Human-readable text.
   * @param details - The wanted and the available platforms.
   * @param options - `cause`, when there is one.
   */
  constructor(
    message: string,
    details: { platform: string; available: readonly string[] },
    options?: OcicacheErrorOptions,
  ) {
    super("PLATFORM_NOT_FOUND", message, options);
    this.platform = details.platform;
    this.available = Object.freeze([...details.available]);
  }
}
named(PlatformNotFoundError, "PlatformNotFoundError");

/**
 * An image in the archive names no repository and no `tag` option was given to name it.
 * Code `REFERENCE_REQUIRED`.
 */
export class ReferenceRequiredError extends OcicacheError {
  /** What the archive holds (manifest digests and any names), for display. */
  readonly available: readonly string[];
  declare readonly code: "REFERENCE_REQUIRED";

  /**
   * @param message - Human-readable text.
   * @param details - What the archive holds.
   * @param options - `cause`, when there is one.
   */
  constructor(message: string, details: { available: readonly string[] }, options?: OcicacheErrorOptions) {
    super("REFERENCE_REQUIRED", message, options);
    this.available = Object.freeze([...details.available]);
  }
}
named(ReferenceRequiredError, "ReferenceRequiredError");

/**
 * The operation is not supported by the configured backend (the cloud backend, in this
 * version) or for this input. Code `UNSUPPORTED`.
 */
export class UnsupportedError extends OcicacheError {
  declare readonly code: "UNSUPPORTED";

  /**
   * @param message - Human-readable text.
   * @param options - `cause`, when there is one.
   */
  constructor(message: string, options?: OcicacheErrorOptions) {
    super("UNSUPPORTED", message, options);
  }
}
named(UnsupportedError, "UnsupportedError");

/** An argument has the wrong type, is out of range or is malformed. Code `INVALID_ARGUMENT`. */
export class InvalidArgumentError extends OcicacheError {
  /** The argument's name. */
  readonly argument: string;
  declare readonly code: "INVALID_ARGUMENT";

  /**
   * @param message - Human-readable text.
   * @param details - The argument's name.
   * @param options - `cause`, when there is one.
   */
  constructor(message: string, details: { argument: string }, options?: OcicacheErrorOptions) {
    super("INVALID_ARGUMENT", message, options);
    this.argument = details.argument;
  }
}
named(InvalidArgumentError, "InvalidArgumentError");

/** Options of {@link CorruptCacheError}. */
export interface CorruptCacheErrorOptions extends OcicacheErrorOptions {
  /** The file or folder of the cache at fault, when the error names one. */
  path?: string | null;
}

/**
 * The cache's index or an artifact contradicts the cache's invariants, or a folder or file of
 * the cache root is not what the cache keeps there (a symlink, which could redirect its writes
 * and deletes out of the root, or a folder where a file belongs). Code `CORRUPT_CACHE`.
 */
export class CorruptCacheError extends OcicacheError {
  /** The file or folder of the cache at fault, or null when the error names none. */
  readonly path: string | null;
  declare readonly code: "CORRUPT_CACHE";

  /**
   * @param message - Human-readable text.
   * @param options - `cause`, when there is one, and the `path` at fault.
   */
  constructor(message: string, options?: CorruptCacheErrorOptions) {
    const { path, ...rest } = options ?? {};
    super("CORRUPT_CACHE", message, rest);
    this.path = path ?? null;
  }
}
named(CorruptCacheError, "CorruptCacheError");

/** A filesystem operation failed. Code `IO`. */
export class IoError extends OcicacheError {
  /** The path being read or written. */
  readonly path: string;
  /** The operating system's error number, when there is one. */
  readonly errno: number | null;
  declare readonly code: "IO";

  /**
   * @param message - Human-readable text.
   * @param details - The path and the OS error number.
   * @param options - `cause`: the operating system's error.
   */
  constructor(message: string, details: { path: string; errno?: number | null }, options?: OcicacheErrorOptions) {
    super("IO", message, options);
    this.path = details.path;
    this.errno = details.errno ?? null;
  }
}
named(IoError, "IoError");

/** The cache's SQLite index failed. Code `INDEX`. */
export class CacheIndexError extends OcicacheError {
  declare readonly code: "INDEX";

  /**
   * @param message - Human-readable text.
   * @param options - `cause`: SQLite's error.
   */
  constructor(message: string, options?: OcicacheErrorOptions) {
    super("INDEX", message, options);
  }
}
named(CacheIndexError, "CacheIndexError");

/** A bug in ocicache: an invariant broke or a worker panicked. Code `INTERNAL`. */
export class InternalError extends OcicacheError {
  declare readonly code: "INTERNAL";

  /**
   * @param message - Human-readable text.
   * @param options - `cause`, when there is one.
   */
  constructor(message: string, options?: OcicacheErrorOptions) {
    super("INTERNAL", message, options);
  }
}
named(InternalError, "InternalError");

/**
 * An operation would pass a limit set on it (by an option such as `maxUncompressedBytes`) and
 * stopped before it did, leaving the cache as it was. Code `LIMIT_EXCEEDED`. (A load stopped by
 * its default limit, the free space of the disk, rejects with {@link NoSpaceError} instead.)
 */
export class LimitExceededError extends OcicacheError {
  /** The limit, in bytes. */
  readonly limit: number;
  /** What the limit bounds, for example `bytes written by the load`. */
  readonly subject: string;
  declare readonly code: "LIMIT_EXCEEDED";

  /**
   * @param message - Human-readable text.
   * @param details - The limit and what it bounds.
   * @param options - `cause`, when there is one.
   */
  constructor(message: string, details: { limit: number; subject: string }, options?: OcicacheErrorOptions) {
    super("LIMIT_EXCEEDED", message, options);
    this.limit = details.limit;
    this.subject = details.subject;
  }
}
named(LimitExceededError, "LimitExceededError");

/**
 * The file system holding the cache is full, or the user's quota on it is exhausted (`ENOSPC`,
 * `EDQUOT`). Code `NO_SPACE`. A load that runs out of space leaves the cache as it was; free
 * space (for example with `prune`) and load again.
 */
export class NoSpaceError extends OcicacheError {
  /** The path being written. */
  readonly path: string;
  /** The operating system's error number, when there is one. */
  readonly errno: number | null;
  declare readonly code: "NO_SPACE";

  /**
   * @param message - Human-readable text.
   * @param details - The path and the OS error number.
   * @param options - `cause`: the operating system's error.
   */
  constructor(message: string, details: { path: string; errno?: number | null }, options?: OcicacheErrorOptions) {
    super("NO_SPACE", message, options);
    this.path = details.path;
    this.errno = details.errno ?? null;
  }
}
named(NoSpaceError, "NoSpaceError");

/**
 * The caller cancelled the operation through its `signal` before it started; nothing was read
 * or changed. Code `ABORTED`. The signal's `reason` is the `cause`.
 */
export class AbortError extends OcicacheError {
  declare readonly code: "ABORTED";

  /**
   * @param message - Human-readable text.
   * @param options - `cause`: the signal's reason.
   */
  constructor(message: string, options?: OcicacheErrorOptions) {
    super("ABORTED", message, options);
  }
}
named(AbortError, "AbortError");

/** The base of the errors of a registry, naming it. */
export class RegistryError extends OcicacheError {
  /** The registry host. */
  readonly registry: string;

  /**
   * @param code - The error's code.
   * @param message - Human-readable text.
   * @param details - The registry host.
   * @param options - `cause`, when there is one.
   */
  constructor(code: ErrorCode, message: string, details: { registry: string }, options?: OcicacheErrorOptions) {
    super(code, message, options);
    this.registry = details.registry;
  }
}
named(RegistryError, "RegistryError");

/**
 * The registry (or its token server) refused the credentials, or wants credentials and none
 * were given or found in the Docker config. Code `REGISTRY_UNAUTHORIZED`.
 */
export class RegistryUnauthorizedError extends RegistryError {
  declare readonly code: "REGISTRY_UNAUTHORIZED";

  /**
   * @param message - Human-readable text.
   * @param details - The registry host.
   * @param options - `cause`, when there is one.
   */
  constructor(message: string, details: { registry: string }, options?: OcicacheErrorOptions) {
    super("REGISTRY_UNAUTHORIZED", message, details, options);
  }
}
named(RegistryUnauthorizedError, "RegistryUnauthorizedError");

/** The registry denied access to the repository (HTTP 403). Code `REGISTRY_DENIED`. */
export class RegistryDeniedError extends RegistryError {
  /** The repository. */
  readonly repository: string;
  declare readonly code: "REGISTRY_DENIED";

  /**
   * @param message - Human-readable text.
   * @param details - The registry host and repository.
   * @param options - `cause`, when there is one.
   */
  constructor(message: string, details: { registry: string; repository: string }, options?: OcicacheErrorOptions) {
    super("REGISTRY_DENIED", message, details, options);
    this.repository = details.repository;
  }
}
named(RegistryDeniedError, "RegistryDeniedError");

/**
 * The registry kept answering 429 Too Many Requests after the retries (or asked to wait longer
 * than a pull waits). Code `REGISTRY_RATE_LIMITED`.
 */
export class RegistryRateLimitedError extends RegistryError {
  /** The registry's `Retry-After`, in seconds, when it sent one. */
  readonly retryAfterSeconds: number | null;
  declare readonly code: "REGISTRY_RATE_LIMITED";

  /**
   * @param message - Human-readable text.
   * @param details - The registry host and its retry time.
   * @param options - `cause`, when there is one.
   */
  constructor(
    message: string,
    details: { registry: string; retryAfterSeconds?: number | null },
    options?: OcicacheErrorOptions,
  ) {
    super("REGISTRY_RATE_LIMITED", message, details, options);
    this.retryAfterSeconds = details.retryAfterSeconds ?? null;
  }
}
named(RegistryRateLimitedError, "RegistryRateLimitedError");

/**
 * The registry could not be reached, answered 5xx, or broke the connection, after the retries.
 * Code `REGISTRY_UNAVAILABLE`.
 */
export class RegistryUnavailableError extends RegistryError {
  declare readonly code: "REGISTRY_UNAVAILABLE";

  /**
   * @param message - Human-readable text.
   * @param details - The registry host.
   * @param options - `cause`, when there is one.
   */
  constructor(message: string, details: { registry: string }, options?: OcicacheErrorOptions) {
    super("REGISTRY_UNAVAILABLE", message, details, options);
  }
}
named(RegistryUnavailableError, "RegistryUnavailableError");

/**
 * The registry's TLS certificate is not trusted (pass `caCerts`) or does not fit its host.
 * Code `REGISTRY_TLS`.
 */
export class RegistryTlsError extends RegistryError {
  declare readonly code: "REGISTRY_TLS";

  /**
   * @param message - Human-readable text.
   * @param details - The registry host.
   * @param options - `cause`, when there is one.
   */
  constructor(message: string, details: { registry: string }, options?: OcicacheErrorOptions) {
    super("REGISTRY_TLS", message, details, options);
  }
}
named(RegistryTlsError, "RegistryTlsError");

/**
 * No native addon fits this platform, or the one that fits fails to load (a glibc older than
 * the prebuilt addons need, for example). Code `NATIVE_NOT_FOUND`. The message names the
 * platform, the C library and the package version, and says what to do: install on a supported
 * platform, or build the addon from source and point `OCICACHE_NATIVE_PATH` at it.
 */
export class NativeNotFoundError extends OcicacheError {
  /** Every file, folder and platform package (by name) the loader tried, in order. */
  readonly tried: readonly string[];
  /** `process.platform` and `process.arch` of this process, as `linux-x64`. */
  readonly platform: string;
  /** The C library on Linux (`"glibc"` or `"musl"`); `null` on other platforms. */
  readonly libc: "glibc" | "musl" | null;
  /** The version of the ocicache package that looked for an addon. */
  readonly version: string;
  /** The targets prebuilt addons exist for, as `linux-x64-gnu`, `darwin-arm64`, `win32-x64-msvc`. */
  readonly supported: readonly string[];
  declare readonly code: "NATIVE_NOT_FOUND";

  /**
   * @param message - Human-readable text.
   * @param details - The paths tried; the platform, C library, version and supported targets
   *   (each defaults to unknown: `""`, `null`, `""` and none).
   * @param options - `cause`: the load failure, when a candidate existed but failed to load.
   */
  constructor(
    message: string,
    details: {
      tried: readonly string[];
      platform?: string;
      libc?: "glibc" | "musl" | null;
      version?: string;
      supported?: readonly string[];
    },
    options?: OcicacheErrorOptions,
  ) {
    super("NATIVE_NOT_FOUND", message, options);
    this.tried = Object.freeze([...details.tried]);
    this.platform = details.platform ?? "";
    this.libc = details.libc ?? null;
    this.version = details.version ?? "";
    this.supported = Object.freeze([...(details.supported ?? [])]);
  }
}
named(NativeNotFoundError, "NativeNotFoundError");

type Fields = Record<string, unknown>;

const str = (f: Fields, key: string): string => (typeof f[key] === "string" ? (f[key] as string) : "");
const strs = (f: Fields, key: string): string[] =>
  Array.isArray(f[key]) ? (f[key] as unknown[]).filter((v): v is string => typeof v === "string") : [];

/** Builds the class for each code from a native error's message, fields and options. */
const FACTORIES: { readonly [C in ErrorCode]: (message: string, f: Fields, o: OcicacheErrorOptions) => OcicacheError } = {
  IMAGE_NOT_FOUND: (m, f, o) =>
    new ImageNotFoundError(
      m,
      {
        reference: str(f, "reference"),
        registry: typeof f["registry"] === "string" ? f["registry"] : null,
        registryCode: typeof f["registryCode"] === "string" ? f["registryCode"] : null,
      },
      o,
    ),
  IMAGE_IN_USE: (m, f, o) => new ImageInUseError(m, { reference: str(f, "reference"), holders: strs(f, "holders") }, o),
  INVALID_REFERENCE: (m, f, o) => new InvalidReferenceError(m, { input: str(f, "input") }, o),
  INVALID_ARCHIVE: (m, _f, o) => new InvalidArchiveError(m, o),
  DIGEST_MISMATCH: (m, f, o) =>
    new DigestMismatchError(
      m,
      { subject: str(f, "subject"), expected: str(f, "expected"), actual: str(f, "actual") },
      o,
    ),
  PLATFORM_NOT_FOUND: (m, f, o) =>
    new PlatformNotFoundError(m, { platform: str(f, "platform"), available: strs(f, "available") }, o),
  REFERENCE_REQUIRED: (m, f, o) => new ReferenceRequiredError(m, { available: strs(f, "available") }, o),
  UNSUPPORTED: (m, _f, o) => new UnsupportedError(m, o),
  INVALID_ARGUMENT: (m, f, o) => new InvalidArgumentError(m, { argument: str(f, "argument") }, o),
  CORRUPT_CACHE: (m, f, o) =>
    new CorruptCacheError(m, { ...o, path: typeof f["path"] === "string" ? f["path"] : null }),
  IO: (m, f, o) =>
    new IoError(m, { path: str(f, "path"), errno: typeof f["errno"] === "number" ? f["errno"] : null }, o),
  INDEX: (m, _f, o) => new CacheIndexError(m, o),
  INTERNAL: (m, _f, o) => new InternalError(m, o),
  LIMIT_EXCEEDED: (m, f, o) =>
    new LimitExceededError(m, { limit: typeof f["limit"] === "number" ? f["limit"] : 0, subject: str(f, "subject") }, o),
  NO_SPACE: (m, f, o) =>
    new NoSpaceError(m, { path: str(f, "path"), errno: typeof f["errno"] === "number" ? f["errno"] : null }, o),
  ABORTED: (m, _f, o) => new AbortError(m, o),
  REGISTRY_UNAUTHORIZED: (m, f, o) => new RegistryUnauthorizedError(m, { registry: str(f, "registry") }, o),
  REGISTRY_DENIED: (m, f, o) =>
    new RegistryDeniedError(m, { registry: str(f, "registry"), repository: str(f, "repository") }, o),
  REGISTRY_RATE_LIMITED: (m, f, o) =>
    new RegistryRateLimitedError(
      m,
      {
        registry: str(f, "registry"),
        retryAfterSeconds: typeof f["retryAfterSeconds"] === "number" ? f["retryAfterSeconds"] : null,
      },
      o,
    ),
  REGISTRY_UNAVAILABLE: (m, f, o) => new RegistryUnavailableError(m, { registry: str(f, "registry") }, o),
  REGISTRY_TLS: (m, f, o) => new RegistryTlsError(m, { registry: str(f, "registry") }, o),
  NATIVE_NOT_FOUND: (m, f, o) =>
    new NativeNotFoundError(
      m,
      {
        tried: strs(f, "tried"),
        platform: str(f, "platform"),
        libc: f["libc"] === "glibc" || f["libc"] === "musl" ? f["libc"] : null,
        version: str(f, "version"),
        supported: strs(f, "supported"),
      },
      o,
    ),
};

/** Every {@link ErrorCode}, in the core's order. */
export const ERROR_CODES: readonly ErrorCode[] = Object.freeze(Object.keys(FACTORIES) as ErrorCode[]);

/**
 * Maps an error from the native addon to its class by `code`: a known code gives its subclass
 * (with the structured fields the addon attached, such as `reference` or `holders`), an
 * unknown code the base {@link OcicacheError}. An error that is already an `OcicacheError`, or
 * has no string `code`, is returned unchanged. Messages are never parsed.
 *
 * @param err - Whatever a native call threw or rejected with.
 * @returns The error to throw in its place.
 */
export function fromNative(err: unknown): Error {
  if (err instanceof OcicacheError) {
    return err;
  }
  if (typeof err !== "object" || err === null || typeof (err as Fields)["code"] !== "string") {
    return err instanceof Error ? err : new Error(String(err));
  }
  const fields = err as Fields;
  const code = fields["code"] as string;
  const message = typeof fields["message"] === "string" ? fields["message"] : "";
  const options: OcicacheErrorOptions = fields["cause"] === undefined ? {} : { cause: fields["cause"] };
  const factory = Object.hasOwn(FACTORIES, code) ? FACTORIES[code as ErrorCode] : undefined;
  return factory ? factory(message, fields, options) : new OcicacheError(code, message, options);
}
