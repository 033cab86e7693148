// The public API: `ImageCache` (one cache root), `Image` (the same operations on a default
// cache), and the read-only views they return. Everything here converts: arguments to the
// native addon's shapes, results to classes with `Date`s and `null`s, native errors to error
// classes. Behaviour lives in the Rust core; this file never reads the cache itself.

import { AbortError, InvalidArgumentError, fromNative } from "./errors";
import type {
  NativeAcquireOptions,
  NativeBackend,
  NativeBootDisk,
  NativeCache,
  NativeCancel,
  NativeCheckProblem,
  NativeCheckReport,
  NativeFetchError,
  NativeImageConfig,
  NativeImageDetail,
  NativeImageCheck,
  NativeImageHandle,
  NativeImageHistory,
  NativeImageLayer,
  NativeImageUse,
  NativeLoadOptions,
  NativeLockWait,
  NativePruneOptions,
  NativePruneReport,
  NativePrunedReference,
  NativePullAuth,
  NativePullOptions,
  NativePullProgress,
  NativeRegistryAccess,
  NativeRows,
} from "./internal/binding";
import {
  type Rule,
  type SchemaOf,
  checkOptions,
  checkValue,
  requireArity,
  requireOptions,
  requireString,
} from "./internal/args";
import { native } from "./internal/native";
import { type ListedHandle, readDiskUsage, readList, type UsageRow, type UsageTotals } from "./internal/rows";
import { toDate } from "./internal/time";

/**
 * Where a cache's operations are served from: `"local"` (this machine's disk) or a remote
 * cache service. The cloud backend is not available in this version: every operation rejects
 * with {@link UnsupportedError} and no file is touched.
 */
export type ImageBackend =
  | "local"
  | {
      /** A remote cache service. */
      cloud: {
        /** The service's address. */
        url: string;
      };
    };

/** Options of {@link ImageCache.open} and {@link Image.configure}. */
export interface ImageCacheOptions {
  /**
   * The cache root folder. Created on the first operation that needs it.
   * @default `$OCICACHE_HOME`, else the platform cache folder (`~/.cache/ocicache` on Linux)
   */
  root?: string;
  /**
   * The backend.
   * @default `"local"`, or the cloud backend when `$OCICACHE_BACKEND` is `cloud` (URL from `$OCICACHE_CLOUD_URL`)
   */
  backend?: ImageBackend;
  /**
   * Called when an operation is about to wait for one of the cache's cross-process locks
   * because another holder has it: another process (a prune, a load, a remove, a pull), or
   * another operation of this one. The lock is tried first, so a free lock calls nothing; the
   * operation then waits until the lock is let go (there is no timeout) and goes on. Called on
   * the JS thread, soon after the wait begins; a listener that throws does not stop the work.
   * The CLI prints one line to stderr from it.
   * @default no listener
   */
  onLockWait?: (event: LockWaitEvent) => void;
}

/** An operation waits for a lock another holder has (see {@link ImageCacheOptions.onLockWait}). */
export interface LockWaitEvent {
  /** The lock file, inside the cache's `locks/` folder (`locks/gc.lock`, `locks/layers/<hh>.lock`). */
  readonly lock: string;
  /**
   * The mode waited for: `shared` for the GC lock of a load, pull, check or boot disk;
   * `exclusive` for the GC lock of a remove or prune, and for an artifact lock (two loads of
   * the same layer).
   */
  readonly mode: "shared" | "exclusive";
}

/** Options of {@link ImageCache.load}. */
export interface LoadOptions {
  /**
   * One more reference for the first image of the archive (a tag reference such as
   * `example.com/app:1`, not a digest). Required when the archive names no repository.
   * @default no extra reference
   */
  tag?: string;
  /**
   * The most bytes the load may write to disk: the layer images it converts (holes of sparse
   * files cost nothing), the manifest and config blobs, and the members it must spool from a
   * compressed archive or standard input (decompressed), counted while they are written, across
   * all layers. Going over rejects the load with {@link LimitExceededError} before the byte that
   * would pass it is written, and leaves the cache as it was. A positive whole number. Without
   * it the load stops the same way when it would leave less than the reserve free, but rejects
   * with {@link NoSpaceError}.
   * @default the space available on the cache's file system when the load starts, minus a
   *   reserve of 1% of the file system (at most 1 GiB)
   */
  maxUncompressedBytes?: number;
  /**
   * The platform to take where an index lists manifests by platform (a multi-platform image),
   * as `os/architecture[/variant]` (`linux/arm64`, `linux/arm/v7`); the variant only has to
   * match when both sides name one. When the index has no manifest for it, the load rejects
   * with {@link PlatformNotFoundError} listing the platforms it offers. Index entries that name
   * no platform, and `docker save` archives, are taken whatever their platform.
   * @default the host's platform (`linux/<host architecture>`)
   */
  platform?: string;
  /**
   * Cancels the load. An already aborted signal rejects with {@link AbortError} (code `ABORTED`)
   * and nothing is read or changed. Aborting a load that has started stops it at its next read
   * of the archive (within a tenth of a second when it waits for standard input, see
   * {@link ImageCache.loadStdin}): it rejects with {@link AbortError}, whose `cause` is the
   * signal's reason, and, like any failed load, leaves the cache exactly as it was. A load that
   * has finished reading and is committing completes.
   * @default not cancellable
   */
  signal?: AbortSignal;
  /**
   * Receives the load's layer events (`layer-cached`, `layer-download` with the bytes read so
   * far, `layer-verified`, `layer-converted`) and a `stitched` event per image; see
   * {@link PullProgress}. Called on the JS thread, at most about ten times a second per layer;
   * events are dropped rather than slowing the load when the listener falls behind.
   * @default no events
   */
  onProgress?: (event: PullProgress) => void;
}

/** When a pull asks the registry: see {@link PullOptions.policy}. */
export type PullPolicy = "if-missing" | "always" | "never";

/** Registry credentials: a user name and password (or access token as password), or a token. */
export type PullAuth =
  | {
      /** The user name. */
      username: string;
      /** The password (or an access token used as one). */
      password: string;
    }
  | {
      /** A registry token, sent as `Authorization: Bearer`. */
      token: string;
    };

/** Options of {@link ImageCache.pull}. Unknown keys reject with {@link InvalidArgumentError}. */
export interface PullOptions {
  /**
   * The platform to take from a multi-platform image, as `os/architecture[/variant]`
   * (`linux/arm64`, `linux/arm/v7`); {@link PlatformNotFoundError} lists those the index offers.
   * @default the host's platform (`linux/<host architecture>`)
   */
  platform?: string;
  /**
   * `if-missing`: no request at all when the reference is cached; `always`: resolve the tag in
   * the registry and move it when its manifest changed (layers already cached are not
   * downloaded); `never`: {@link ImageNotFoundError} when the reference is not cached.
   * @default "if-missing"
   */
  policy?: PullPolicy;
  /**
   * Credentials. Without them, those of the Docker config (`$DOCKER_CONFIG/config.json`, else
   * `~/.docker/config.json`: `auths`, `credHelpers`, `credsStore`), else anonymous.
   * @default the Docker config's, else anonymous
   */
  auth?: PullAuth;
  /**
   * Receives the pull's events (see {@link PullProgress}), on the JS thread, at most about ten a
   * second per layer; events are dropped rather than slowing the pull when the listener falls
   * behind.
   * @default no events
   */
  onProgress?: (event: PullProgress) => void;
  /**
   * Cancels the pull: it rejects with {@link AbortError} within a second (also on a stalled
   * connection), publishes nothing and leaves the cache as it was.
   * @default not cancellable
   */
  signal?: AbortSignal;
  /**
   * Plain HTTP to the registry (a registry on 127.0.0.1 or in a lab).
   * @default false
   */
  insecure?: boolean;
  /**
   * Extra trusted CA certificates, PEM text, beside the public roots.
   * @default only the public roots
   */
  caCerts?: string;
}

/** Which layer a {@link PullProgress} layer event is about. */
export interface PullLayerRef {
  /** Position in the image, 0 being the bottom layer. */
  readonly index: number;
  /** The layer's `diff_id` (digest of the uncompressed tar). */
  readonly diffId: string;
  /** The layer blob's digest. */
  readonly digest: string;
  /** The layer blob's size in bytes. */
  readonly size: number;
}

/** One step of a pull (or, for the layer and `stitched` events, of a load), by `kind`. */
export type PullProgress =
  | {
      /** The step. */
      readonly kind: "resolving";
      /** The reference, canonical. */
      readonly reference: string }
  | {
      /** The step. */
      readonly kind: "resolved";
      /** The manifest's digest. */
      readonly manifestDigest: string;
      /** The platform taken, `os/architecture[/variant]`. */
      readonly platform: string;
      /** The layer count. */
      readonly layerCount: number;
      /** The layer blobs' compressed bytes. */
      readonly totalBytes: number;
    }
  /** The layer's EROFS image is cached: nothing is downloaded for it. */
  | ({
      /** The step. */
      readonly kind: "layer-cached";
      } & PullLayerRef)
  /** Bytes of the layer's blob downloaded (read, for a load) so far, of `size`. */
  | ({
      /** The step. */
      readonly kind: "layer-download";
      /** Bytes so far. */
      readonly bytes: number } & PullLayerRef)
  /** The blob's digest and `diff_id` matched. */
  | ({
      /** The step. */
      readonly kind: "layer-verified";
      } & PullLayerRef)
  /** The layer's EROFS image is written. */
  | ({
      /** The step. */
      readonly kind: "layer-converted";
      /** The layer's EROFS image size in bytes. */
      readonly erofsBytes: number } & PullLayerRef)
  /** The image's fsmeta and VMDK are written (or were cached). */
  | {
      /** The step. */
      readonly kind: "stitched";
      /** The manifest's digest. */
      readonly manifestDigest: string;
      /** The fsmeta image's size in bytes. */
      readonly fsmetaBytes: number;
      /** The VMDK descriptor's size in bytes. */
      readonly vmdkBytes: number;
    }
  | {
      /** The step. */
      readonly kind: "done";
      /** The manifest's digest. */
      readonly manifestDigest: string };

/** Options of {@link ImageCache.remove}. */
export interface RemoveOptions {
  /**
   * Remove the reference even while a sandbox or snapshot uses its image. The pinned data
   * stays on disk until every use is released and a later prune or remove collects it.
   * @default false
   */
  force?: boolean;
}

/** Options of {@link ImageCache.prune}. Without any, prune removes every image no use pins. */
export interface PruneOptions {
  /**
   * Compute the report without changing anything: the numbers are exactly those a real prune
   * with the same options would report at that moment.
   * @default false
   */
  dryRun?: boolean;
  /**
   * Only remove references last used (never used: created) before a point in time. A `Date`
   * is that instant; a number is an age in milliseconds, meaning before `Date.now() - olderThan`
   * (so `7 * 24 * 3600 * 1000` prunes what was not used for a week).
   * @default no age limit
   */
  olderThan?: Date | number;
  /**
   * References that are kept, in any spelling (`busybox`, `docker.io/library/busybox:latest`);
   * a digest reference (`name@sha256:...`) keeps every reference of that repository pointing at
   * the manifest. Names that are not cached are ignored.
   * @default []
   */
  keep?: string[];
  /**
   * Evict least recently used unused references only until the cache's size on disk (artifacts
   * plus the index) is at most this many bytes. A layer's bytes count as freed only when the
   * last image using it goes. Without it every selected reference goes.
   * @default no size limit
   */
  maxBytes?: number;
  /**
   * References created or used within this many milliseconds are kept, so an image loaded for
   * a sandbox that has not started yet survives a concurrent prune.
   * @default 0
   */
  gracePeriodMs?: number;
}

/** Options of {@link ImageCache.acquire}. */
export interface AcquireOptions {
  /**
   * Pulls the reference when it is not cached (with these options, or the defaults for
   * `true`), and records the use in the same index transaction as the pulled reference, so no
   * prune in any process can delete the image between the pull and the pin.
   * @default no pull: an uncached reference rejects with {@link ImageNotFoundError}
   */
  pull?: PullOptions | true;
  /**
   * The use stops pinning the image this many milliseconds after the call (a whole number
   * above 0), so a holder that died does not pin it forever. Acquiring again for the same
   * holder and image renews (or, without `ttlMs`, removes) the expiry.
   * @default no expiry
   */
  ttlMs?: number;
}

/** Options of {@link ImageCache.list}. */
export interface ListOptions {
  /**
   * Also list the manifests no reference names that a sandbox or snapshot still holds (their
   * tag moved on, or was removed with `force`): `tagged` is false and `reference` is
   * `repository@sha256:...`, which every method resolves.
   * @default false
   */
  all?: boolean;
}

/** Options of {@link ImageCache.verify}. */
export interface VerifyOptions {
  /**
   * Re-hash every byte of every file against the hash recorded when it was written, and
   * re-parse every EROFS image's metadata. Without it the check is quick: existence, sizes,
   * EROFS superblocks (and the volume each names) and the VMDK descriptor's text.
   * @default false
   */
  full?: boolean;
}

/** How {@link ImageCache.repair} reaches the registry a pulled image came from. */
export type RepairPullOptions = Pick<PullOptions, "auth" | "insecure" | "caCerts">;

/** Options of {@link ImageCache.repair}. */
export interface RepairOptions {
  /**
   * Report what would be repaired; change nothing.
   * @default false
   */
  dryRun?: boolean;
  /**
   * How to fetch a damaged layer image again from the registry repository its image was
   * pulled from (`ImageDetail.origin`): credentials, plain HTTP, extra CAs, as a pull takes
   * them. `false`: never ask a registry; the layer is taken away and its images marked broken,
   * as for an image that was loaded.
   * @default {} (the Docker config's credentials, else anonymous; TLS)
   */
  pull?: RepairPullOptions | false;
}

/** Why {@link ImageCache.repair} could not fetch an image's damaged layers again. */
export interface FetchError extends Readonly<NativeFetchError> {}

/** One problem with one file of an image. */
export interface CheckProblem extends Readonly<NativeCheckProblem> {}

/** The integrity of one image's files. */
export interface ImageCheck extends Readonly<Omit<NativeImageCheck, "problems" | "repaired" | "fetchError">> {
  /** Why a repair could not fetch the image's damaged layers from `origin`, or null. */
  readonly fetchError: FetchError | null;
  /** Problems found (verify) or left (repair); empty when the image is sound. */
  readonly problems: readonly CheckProblem[];
  /** Problems a repair fixed (or, in a dry run, would fix). */
  readonly repaired: readonly CheckProblem[];
}

/** What {@link ImageCache.verify} and {@link ImageCache.repair} return. */
export interface CheckReport extends Readonly<Omit<NativeCheckReport, "images">> {
  /** One entry per manifest checked, by digest. */
  readonly images: readonly ImageCheck[];
}

/** Who uses an image: a running sandbox or a snapshot, by id. */
export type ImageHolder =
  | {
      /** The id of the sandbox that runs the image. */
      sandbox: string;
    }
  | {
      /** The id of the snapshot made from the image. */
      snapshot: string;
    };

/**
 * The config fields {@link ImageCache.inspect} shows; absent fields are null. The runtime
 * fields (`env` to `stopSignal`) come from the cache's index; `exposedPorts`, `volumes`,
 * `created`, `author` and `history` are read from the config blob when the image is
 * inspected. The blob is untrusted JSON: a field of the wrong type there is null, as if
 * absent, and the others are still shown (a `history` element that is not an object makes
 * `history` null); a blob that cannot be read leaves all five null (`ocicache check` reports a
 * damaged blob).
 */
export interface ImageConfigDetail extends Readonly<Omit<NativeImageConfig, "createdMs" | "history">> {
  /**
   * When the image was built (the config's `created`), not when it was loaded (that is
   * {@link ImageHandle.createdAt}); null when absent or not an RFC 3339 date-time.
   */
  readonly created: Date | null;
  /** The config's `history`, oldest first (entries line up with the layers, skipping those with `emptyLayer`). */
  readonly history: readonly ImageHistoryEntry[] | null;
}

/** One step of an image's build history (an entry of the config's `history`). */
export interface ImageHistoryEntry extends Readonly<Omit<NativeImageHistory, "createdMs">> {
  /** When the step ran; null when absent or not an RFC 3339 date-time. */
  readonly created: Date | null;
}

/** One layer of an image. */
export interface ImageLayerDetail extends Readonly<NativeImageLayer> {}

/** What {@link ImageCache.inspect} returns. */
export interface ImageDetail {
  /** The reference's handle. */
  readonly handle: ImageHandle;
  /** The image config, or null when none is recorded. */
  readonly config: ImageConfigDetail | null;
  /** Layers, bottom to top. */
  readonly layers: readonly ImageLayerDetail[];
  /**
   * The registry repository (`registry/repository`) the image was last pulled from, which
   * {@link ImageCache.repair} fetches a damaged layer from again; null for an image only ever
   * loaded (or pulled by a version before 0.3).
   */
  readonly origin: string | null;
}

/** What {@link ImageCache.prune} reclaimed. */
export interface ImagePruneReport extends Readonly<Omit<NativePruneReport, "removed">> {
  /** Each reference removed, least recently used first, with what removing it freed. */
  readonly removed: readonly PrunedReference[];
}

/** One reference a prune removed. */
export interface PrunedReference extends Readonly<NativePrunedReference> {}

/**
 * Bytes on disk by kind and per image; what {@link ImageCache.diskUsage} returns. The kinds
 * come from sizes recorded when each artifact was written (the index and `tmp/` are measured).
 */
export interface DiskUsage {
  /** Layer EROFS images (`layers/`). */
  readonly layers: number;
  /** Merged metadata EROFS images (`fsmeta/`). */
  readonly fsmeta: number;
  /** VMDK descriptors (`vmdk/`). */
  readonly vmdk: number;
  /** Manifest and config blobs (`blobs/`). */
  readonly blobs: number;
  /** The SQLite index (`index.db` with its WAL and shared-memory files). */
  readonly index: number;
  /** Work in progress and leftovers of interrupted loads (`tmp/`). */
  readonly temporary: number;
  /** The sum of the above. */
  readonly total: number;
  /**
   * One entry per reference, sorted by canonical reference; then one per manifest no reference
   * names that a sandbox or snapshot holds (`tagged` false, named as `list({ all: true })` names
   * it).
   */
  readonly images: readonly ImageDiskUsage[];
}

/** One reference's share of the cache. */
export interface ImageDiskUsage {
  /** Familiar form of the reference. */
  readonly reference: string;
  /** The manifest it points to. */
  readonly manifestDigest: string;
  /** Bytes of artifacts its manifest shares with other manifests (layers, config). */
  readonly sharedBytes: number;
  /** Bytes only its manifest uses: manifest, fsmeta, VMDK, and its unshared config and layers. */
  readonly exclusiveBytes: number;
  /**
   * What removing this reference and pruning would reclaim: `exclusiveBytes` when it is its
   * manifest's only reference and no unexpired use pins it, else 0. For an untagged manifest
   * (`tagged` false), what a prune would reclaim of it: `exclusiveBytes` once every use holding
   * it has expired, else 0.
   */
  readonly reclaimableBytes: number;
  /**
   * False for a manifest no reference names that a sandbox or snapshot still holds (as
   * {@link ImageHandle.tagged}); its `reference` is then `repository@sha256:...`.
   */
  readonly tagged: boolean;
}

/** The files a VM boots an image from; what {@link ImageCache.bootDisk} returns. */
export interface BootDisk extends Readonly<NativeBootDisk> {}

// Constructors of the result classes are private: only this module builds them, through these.
let makeHandle: (native: NativeImageHandle) => ImageHandle;
let makeListedHandle: ListedHandle<ImageHandle>;
let makeUse: (cache: NativeCache, native: NativeImageUse) => ImageUse;

/**
 * A read-only snapshot of one cached reference, as it was when the call returned. Obtain one
 * from {@link ImageCache.get}, {@link ImageCache.list} or {@link ImageCache.load}.
 */
export class ImageHandle {
  /** Familiar form of the reference: `busybox:latest`, `ghcr.io/org/app:v1`, `busybox@sha256:...`. */
  readonly reference: string;
  /**
   * Bytes on disk of everything the image needs: its manifest and config blobs, its merged
   * metadata (fsmeta) EROFS image and VMDK descriptor, and the EROFS image of each distinct layer
   * (by `diffId`; the layer blobs as distributed are not kept). Layers shared with other images
   * count fully for each image, so the sum over images can exceed the cache's size. Null when
   * unknown.
   */
  readonly sizeBytes: number | null;
  /** Digest of the manifest the reference points to (`sha256:...`). */
  readonly manifestDigest: string | null;
  /** CPU architecture from the image config (`amd64`, `arm64`, ...). */
  readonly architecture: string | null;
  /** Operating system from the image config (`linux`). */
  readonly os: string | null;
  /** CPU variant from the image config (`v8`), when it names one. */
  readonly variant: string | null;
  /** Number of layers in the manifest. */
  readonly layerCount: number;
  /** When a sandbox or snapshot last acquired the reference, or null if never. */
  readonly lastUsedAt: Date | null;
  /** When the reference was created or last re-pointed to another manifest. */
  readonly createdAt: Date | null;
  /**
   * False for a manifest no reference names that a sandbox or snapshot still holds (listed by
   * `list({ all: true })`); its `reference` is then `repository@sha256:...`.
   */
  readonly tagged: boolean;

  // Positional, so that `list()` builds each handle straight from its row (no object between).
  private constructor(
    reference: string,
    manifestDigest: string | null,
    architecture: string | null,
    os: string | null,
    variant: string | null,
    layerCount: number,
    sizeBytes: number | null,
    createdAtMs: number | null,
    lastUsedAtMs: number | null,
    tagged: boolean,
  ) {
    this.reference = reference;
    this.sizeBytes = sizeBytes;
    this.manifestDigest = manifestDigest;
    this.architecture = architecture;
    this.os = os;
    this.variant = variant;
    this.layerCount = layerCount;
    this.lastUsedAt = toDate(lastUsedAtMs);
    this.createdAt = toDate(createdAtMs);
    this.tagged = tagged;
    Object.freeze(this);
  }

  static {
    makeHandle = (n) =>
      new ImageHandle(
        n.reference,
        n.manifestDigest ?? null,
        n.architecture ?? null,
        n.os ?? null,
        n.variant ?? null,
        n.layerCount,
        n.sizeBytes ?? null,
        n.createdAtMs ?? null,
        n.lastUsedAtMs ?? null,
        n.tagged,
      );
    makeListedHandle = (reference, digest, architecture, os, variant, layerCount, sizeBytes, created, used, tagged) =>
      new ImageHandle(reference, digest, architecture, os, variant, layerCount, sizeBytes, created, used, tagged);
  }
}

/**
 * A sandbox or snapshot using an image: while it lasts, the image's manifest, config and layers
 * stay on disk even if its references are removed. Obtain one from {@link ImageCache.acquire}
 * or {@link ImageCache.uses}.
 */
export class ImageUse {
  /** Familiar form of the reference that was acquired. */
  readonly reference: string;
  /** Digest of the pinned manifest. */
  readonly manifestDigest: string;
  /** Who holds the use. */
  readonly holder: ImageHolder;
  /** When the use was acquired. */
  readonly since: Date;
  /**
   * When the use stops pinning the image (acquired with `ttlMs`), or null if it never expires.
   */
  readonly expiresAt: Date | null;
  /**
   * Whether the use had expired when this snapshot was read. An expired use pins nothing:
   * prune and remove ignore it. Release it, or acquire again to renew it.
   */
  readonly expired: boolean;
  /** The use's id: what `ocicache release USE_ID` takes. */
  readonly id: string;
  readonly #id: string;
  readonly #cache: NativeCache;

  private constructor(cache: NativeCache, native: NativeImageUse) {
    this.#cache = cache;
    this.#id = native.id;
    this.id = native.id;
    this.reference = native.reference;
    this.manifestDigest = native.manifestDigest;
    this.holder = Object.freeze(
      native.holder.kind === "snapshot" ? { snapshot: native.holder.id } : { sandbox: native.holder.id },
    );
    this.since = new Date(native.sinceMs);
    this.expiresAt = toDate(native.expiresAtMs);
    this.expired = native.expired;
    Object.freeze(this);
  }

  /**
   * Ends the use, so a later prune or remove may collect the image. Releasing again, or
   * releasing a use another process already ended, does nothing.
   *
   * @throws {CacheIndexError} when the cache's index cannot be written.
   * @throws {IoError} when the cache folder cannot be read.
   */
  async release(): Promise<void> {
    requireArity(arguments, 0, "release");
    try {
      await this.#cache.release(this.#id);
    } catch (err) {
      throw fromNative(err);
    }
  }

  /**
   * The files a VM boots exactly the manifest this use pins, whatever happened to its tags
   * since (see {@link ImageCache.bootDisk}).
   *
   * @throws {CorruptCacheError} when a file is damaged or the image is marked broken.
   * @throws {ImageNotFoundError} when the use was released and the image pruned.
   * @throws {CacheIndexError | IoError} when the cache cannot be read.
   */
  async bootDisk(): Promise<BootDisk> {
    requireArity(arguments, 0, "bootDisk");
    return bootDisk(await call(() => this.#cache.bootDisk(this.manifestDigest)));
  }

  static {
    makeUse = (cache, native) => new ImageUse(cache, native);
  }
}

// The schema of every options object and structured argument: key -> rule (see
// internal/args.ts). `SchemaOf<T>` makes the compiler check that a schema lists exactly the
// keys of its options type.

/** `os/architecture[/variant]`: two or three non-empty components. */
const PLATFORM_FORMAT = {
  pattern: /^[A-Za-z0-9._-]+\/[A-Za-z0-9._-]+(?:\/[A-Za-z0-9._-]+)?$/,
  expected: "os/architecture[/variant], such as linux/amd64 or linux/arm/v7",
} as const;

const CACHE_OPTIONS: SchemaOf<ImageCacheOptions> = {
  root: { type: "string", nonEmpty: true },
  backend: {
    type: "union",
    literals: ["local"],
    variants: { cloud: { type: "object", schema: { url: { type: "string" } }, required: ["url"] } },
    expected: '"local" or { cloud: { url } }',
  },
  onLockWait: { type: "function" },
};

const LOAD_OPTIONS: SchemaOf<LoadOptions> = {
  tag: { type: "string" },
  platform: { type: "string", format: PLATFORM_FORMAT },
  signal: { type: "abortSignal" },
  maxUncompressedBytes: { type: "integer", min: 1 },
  onProgress: { type: "function" },
};

const PULL_OPTIONS: SchemaOf<PullOptions> = {
  platform: { type: "string", format: PLATFORM_FORMAT },
  policy: {
    type: "union",
    literals: ["if-missing", "always", "never"],
    variants: {},
    expected: '"if-missing", "always" or "never"',
  },
  auth: {
    type: "object",
    schema: { username: { type: "string" }, password: { type: "string" }, token: { type: "string", nonEmpty: true } },
  },
  onProgress: { type: "function" },
  signal: { type: "abortSignal" },
  insecure: { type: "boolean" },
  caCerts: { type: "string", nonEmpty: true },
};

const REMOVE_OPTIONS: SchemaOf<RemoveOptions> = {
  force: { type: "boolean" },
};

const PRUNE_OPTIONS: SchemaOf<PruneOptions> = {
  dryRun: { type: "boolean" },
  olderThan: { type: "dateOrAge" },
  keep: { type: "strings" },
  maxBytes: { type: "integer", min: 0 },
  gracePeriodMs: { type: "integer", min: 0 },
};

const LIST_OPTIONS: SchemaOf<ListOptions> = {
  all: { type: "boolean" },
};

const VERIFY_OPTIONS: SchemaOf<VerifyOptions> = {
  full: { type: "boolean" },
};

const REPAIR_OPTIONS: SchemaOf<Omit<RepairOptions, "pull">> = {
  dryRun: { type: "boolean" },
};

const REPAIR_PULL_OPTIONS: SchemaOf<RepairPullOptions> = {
  auth: PULL_OPTIONS.auth,
  insecure: PULL_OPTIONS.insecure,
  caCerts: PULL_OPTIONS.caCerts,
};

const ACQUIRE_OPTIONS: SchemaOf<Omit<AcquireOptions, "pull">> = {
  ttlMs: { type: "integer", min: 1 },
};

/** What a pull hands the binding: its options, and the signal and listener kept in JS. */
interface CheckedPull {
  native: NativePullOptions;
  signal: AbortSignal | undefined;
  onProgress: ((event: PullProgress) => void) | undefined;
}

/** Checks pull options; rejects with AbortError when the signal is already aborted. */
function pullOptionsToNative(value: unknown, argument: string): CheckedPull {
  const opts = checkOptions(value, PULL_OPTIONS, argument);
  if (opts.signal?.aborted) {
    throw new AbortError("pull aborted before it started", { cause: opts.signal.reason });
  }
  const out: NativePullOptions = {};
  if (opts.platform !== undefined) out.platform = opts.platform;
  if (opts.policy !== undefined) out.policy = opts.policy;
  if (opts.insecure !== undefined) out.insecure = opts.insecure;
  if (opts.caCerts !== undefined) out.caCerts = opts.caCerts;
  if (opts.auth !== undefined) {
    out.auth = authToNative(opts.auth, `${argument === "options" ? "" : `${argument}.`}auth`);
  }
  return { native: out, signal: opts.signal, onProgress: opts.onProgress };
}

/** Checks that `auth` is `{ username, password }` or `{ token }`, named `argument`. */
function authToNative(auth: PullAuth, argument: string): NativePullAuth {
  const a = auth as { username?: string; password?: string; token?: string };
  const basic = a.username !== undefined && a.password !== undefined && a.token === undefined;
  const token = a.token !== undefined && a.username === undefined && a.password === undefined;
  if (!basic && !token) {
    throw new InvalidArgumentError(`invalid argument ${argument}: expected { username, password } or { token }`, {
      argument,
    });
  }
  return basic ? { username: a.username, password: a.password } : { token: a.token };
}

/** A binding progress event as the {@link PullProgress} union (absent fields dropped). */
function progressEvent(e: NativePullProgress): PullProgress {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(e)) {
    if (v !== undefined && v !== null) out[k] = v;
  }
  return Object.freeze(out) as unknown as PullProgress;
}

/** The binding's listener for `onProgress`; a listener that throws does not stop the work. */
function progressListener(
  onProgress: ((event: PullProgress) => void) | undefined,
): ((event: NativePullProgress) => void) | undefined {
  if (onProgress === undefined) return undefined;
  return (e: NativePullProgress) => {
    try {
      onProgress(progressEvent(e));
    } catch {
      // A listener's failure is the listener's: the pull goes on.
    }
  };
}

/**
 * Runs a native call with a cancellation token that `signal`, when given, cancels on abort; a
 * call that stops because of it rejects with an AbortError whose cause is the signal's reason.
 */
async function cancellable<T>(
  signal: AbortSignal | undefined,
  run: (cancel: NativeCancel | undefined) => Promise<T>,
): Promise<T> {
  const token = signal ? new (native().NativeCancel)() : undefined;
  const onAbort = () => token?.cancel();
  signal?.addEventListener("abort", onAbort, { once: true });
  try {
    return await call(() => run(token));
  } catch (err) {
    if (signal?.aborted && err instanceof AbortError) {
      throw new AbortError(err.message, { cause: signal.reason });
    }
    throw err;
  } finally {
    signal?.removeEventListener("abort", onAbort);
  }
}

/** `{ sandbox: id }` or `{ snapshot: id }`, the id not empty; every error names `holder`. */
const HOLDER: Rule = {
  type: "union",
  literals: [],
  variants: { sandbox: { type: "string", nonEmpty: true }, snapshot: { type: "string", nonEmpty: true } },
  expected: "{ sandbox: id } or { snapshot: id }",
  flat: true,
};

function holderToNative(holder: unknown): { kind: "sandbox" | "snapshot"; id: string } {
  const h = checkValue(holder, HOLDER, "holder") as { sandbox?: string; snapshot?: string };
  return h.snapshot !== undefined ? { kind: "snapshot", id: h.snapshot } : { kind: "sandbox", id: h.sandbox as string };
}

/** The binding's listener for `onLockWait`; a listener that throws does not stop the work. */
function lockWaitListener(
  onLockWait: ((event: LockWaitEvent) => void) | undefined,
): ((event: NativeLockWait) => void) | undefined {
  if (onLockWait === undefined) return undefined;
  return (e: NativeLockWait) => {
    try {
      onLockWait(Object.freeze({ lock: e.lock, mode: e.mode === "exclusive" ? "exclusive" : "shared" }));
    } catch {
      // A listener's failure is the listener's: the operation goes on.
    }
  };
}

/** Checks cache options; returns the checked copy and its native form. */
function cacheOptions(value: unknown): { checked: ImageCacheOptions; native: { root?: string; backend?: NativeBackend } } {
  const checked = checkOptions(value, CACHE_OPTIONS, "options");
  const out: { root?: string; backend?: NativeBackend } = {};
  if (checked.root !== undefined) {
    out.root = checked.root;
  }
  const backend = checked.backend;
  if (backend !== undefined) {
    out.backend = backend === "local" ? { kind: "local" } : { kind: "cloud", url: backend.cloud.url };
  }
  return { checked, native: out };
}

// Results without Dates are the binding's objects as they come (the binding documents them and
// gives absent values as null), frozen so that a result is the snapshot its type says.

function configDetail(c: NativeImageConfig): ImageConfigDetail {
  const { createdMs, history, ...rest } = c;
  return Object.freeze({
    ...rest,
    created: toDate(createdMs),
    history:
      history === null
        ? null
        : Object.freeze(
            history.map(({ createdMs: at, ...entry }): ImageHistoryEntry => Object.freeze({ ...entry, created: toDate(at) })),
          ),
  });
}

function detail(d: NativeImageDetail): ImageDetail {
  return Object.freeze({
    handle: makeHandle(d.handle),
    config: d.config ? configDetail(d.config) : null,
    layers: Object.freeze(d.layers.map((l): ImageLayerDetail => Object.freeze(l))),
    origin: d.origin,
  });
}

function pruneReport(r: NativePruneReport): ImagePruneReport {
  for (const p of r.removed) Object.freeze(p);
  Object.freeze(r.removed);
  Object.freeze(r.warnings);
  return Object.freeze(r);
}

function diskUsage({ totals, images }: { totals: UsageTotals; images: UsageRow[] }): DiskUsage {
  return Object.freeze({ ...totals, images: Object.freeze(images) });
}

function checkReport(r: NativeCheckReport): CheckReport {
  for (const i of r.images) {
    for (const p of [...i.problems, ...i.repaired]) Object.freeze(p);
    Object.freeze(i.problems);
    Object.freeze(i.repaired);
    Object.freeze(i.references);
    if (i.fetchError) Object.freeze(i.fetchError);
    Object.freeze(i);
  }
  Object.freeze(r.images);
  return Object.freeze(r);
}

function bootDisk(b: NativeBootDisk): BootDisk {
  Object.freeze(b.layers);
  return Object.freeze(b);
}

/** Checks prune options and turns `olderThan` into a time. */
function pruneOptionsToNative(value: unknown): NativePruneOptions {
  const opts = checkOptions(value, PRUNE_OPTIONS, "options");
  const out: NativePruneOptions = {};
  if (opts.dryRun !== undefined) out.dryRun = opts.dryRun;
  if (opts.olderThan !== undefined) {
    out.olderThanMs = opts.olderThan instanceof Date ? opts.olderThan.getTime() : Date.now() - opts.olderThan;
  }
  if (opts.keep !== undefined) out.keep = opts.keep;
  if (opts.maxBytes !== undefined) out.maxBytes = opts.maxBytes;
  if (opts.gracePeriodMs !== undefined) out.gracePeriodMs = opts.gracePeriodMs;
  return out;
}

/** Checks load options; rejects with AbortError when the signal is already aborted. */
function loadOptionsToNative(value: unknown): {
  native: NativeLoadOptions;
  signal: AbortSignal | undefined;
  onProgress: ((event: NativePullProgress) => void) | undefined;
} {
  const opts = checkOptions(value, LOAD_OPTIONS, "options");
  if (opts.signal?.aborted) {
    throw new AbortError("load aborted before it started", { cause: opts.signal.reason });
  }
  const out: NativeLoadOptions = {};
  if (opts.tag !== undefined) out.tag = opts.tag;
  if (opts.platform !== undefined) out.platform = opts.platform;
  if (opts.maxUncompressedBytes !== undefined) out.maxUncompressedBytes = opts.maxUncompressedBytes;
  return { native: out, signal: opts.signal, onProgress: progressListener(opts.onProgress) };
}

/**
 * Runs a native load with a cancellation token that `signal`, when given, cancels on abort; a
 * load that stops because of it rejects with an AbortError whose cause is the signal's reason.
 */
async function cancellableLoad(
  signal: AbortSignal | undefined,
  run: (cancel: NativeCancel | undefined) => Promise<NativeImageHandle[]>,
): Promise<ImageHandle[]> {
  const token = signal ? new (native().NativeCancel)() : undefined;
  const onAbort = () => token?.cancel();
  signal?.addEventListener("abort", onAbort, { once: true });
  try {
    const handles = await call(() => run(token));
    return handles.map((h) => makeHandle(h));
  } catch (err) {
    if (signal?.aborted && err instanceof AbortError) {
      throw new AbortError(err.message, { cause: signal.reason });
    }
    throw err;
  } finally {
    signal?.removeEventListener("abort", onAbort);
  }
}

/** Runs a native call, mapping a synchronous throw or a rejection through `fromNative`. */
async function call<T>(run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (err) {
    throw fromNative(err);
  }
}

/**
 * One image cache: a root folder on this machine (or a remote backend). Every method is safe
 * to call concurrently, from this and from other processes sharing the root.
 *
 * Every method checks its arguments before doing anything: an unknown option key, a value of
 * the wrong type or range (`NaN`, infinities, negative or fractional numbers, invalid `Date`s)
 * or an argument the method does not take rejects with {@link InvalidArgumentError}, whose
 * `argument` names it, and changes nothing. An option set to `undefined` counts as not given.
 *
 * @example
 * ```ts
 * const cache = ImageCache.open({ root: "/var/cache/ocicache" });
 * const [handle] = await cache.load("busybox.tar");
 * const use = await cache.acquire(handle.reference, { sandbox: "sb-1" });
 * ```
 */
export class ImageCache {
  readonly #native: NativeCache;

  private constructor(nativeCache: NativeCache) {
    this.#native = nativeCache;
  }

  /**
   * Opens a cache. Nothing is created or read until the first operation.
   *
   * @param opts - Root folder, backend and lock-wait listener.
   * @throws {InvalidArgumentError} when an option is unknown or of the wrong type, or no root is
   *   given and neither `$OCICACHE_HOME` nor a platform cache folder exists.
   * @throws {NativeNotFoundError} when the native addon cannot be loaded.
   */
  static open(opts?: ImageCacheOptions): ImageCache {
    requireArity(arguments, 1, "ImageCache.open");
    const { checked, native: options } = cacheOptions(opts);
    try {
      return new ImageCache(native().NativeCache.open(options, lockWaitListener(checked.onLockWait)));
    } catch (err) {
      throw fromNative(err);
    }
  }

  /** The cache root folder (absolute when given absolute, or the default root). */
  get root(): string {
    return this.#native.root;
  }

  /**
   * The handle of a cached reference. Any spelling works (`busybox`, `busybox:latest` and
   * `docker.io/library/busybox:latest` are the same); a digest reference
   * (`busybox@sha256:...`) matches a cached manifest of that repository.
   *
   * @param reference - The image reference.
   * @throws {ImageNotFoundError} when the reference is not cached.
   * @throws {InvalidReferenceError} when `reference` is not a valid reference.
   * @throws {InvalidArgumentError} when `reference` is not a string, or more arguments are given.
   * @throws {UnsupportedError} with the cloud backend.
   * @throws {CacheIndexError | IoError} when the cache cannot be read.
   */
  async get(reference: string): Promise<ImageHandle> {
    requireArity(arguments, 1, "get");
    requireString(reference, "reference");
    return makeHandle(await call(() => this.#native.get(reference)));
  }

  /**
   * Every cached reference, newest first.
   *
   * @throws {UnsupportedError} with the cloud backend.
   * @throws {CacheIndexError | IoError} when the cache cannot be read.
   */
  async list(opts?: ListOptions): Promise<ImageHandle[]> {
    requireArity(arguments, 1, "list");
    const { all } = checkOptions(opts, LIST_OPTIONS, "options");
    // The binding sends the rows in chunks, each with its strings as one JSON string and its
    // numbers as one typed array (far cheaper than an N-API object per row), and writes the
    // next chunk while this reads one.
    return call(() => readList(this.#native.listRows(all), makeListedHandle));
  }

  /**
   * Checks the files of one image (any reference form {@link ImageCache.get} takes), or of
   * every image, against what the index recorded when they were written; changes nothing. A
   * cache that does not exist has no images, and is not created.
   *
   * @param reference - The image; omitted: every image.
   * @param opts - `full` also re-hashes every byte and re-parses every EROFS image.
   * @returns One entry per image with the problems found (kind, artifact, path, expected,
   *   found); `problems` counts them all.
   * @throws {ImageNotFoundError} when `reference` is not cached.
   * @throws {InvalidReferenceError} when `reference` is malformed or an ambiguous prefix.
   * @throws {InvalidArgumentError} when an option is unknown or of the wrong type.
   * @throws {CacheIndexError | IoError} when the cache cannot be read.
   */
  async verify(reference?: string, opts?: VerifyOptions): Promise<CheckReport> {
    requireArity(arguments, 2, "verify");
    if (reference !== undefined) requireString(reference, "reference");
    const { full } = checkOptions(opts, VERIFY_OPTIONS, "options");
    return checkReport(await call(() => this.#native.verify(reference, full ?? false)));
  }

  /**
   * Verifies fully, then repairs: a missing or damaged fsmeta image or VMDK descriptor is
   * rebuilt from the layer images, byte for byte what the load wrote; a missing or damaged
   * layer image of a pulled image is fetched again from the registry repository it came from
   * (`ImageDetail.origin`, by the manifest's digest; unless `pull: false`), byte for byte what
   * the pull wrote; any other damaged layer image (the image was loaded, or the fetch failed:
   * see `fetchError`) is taken away and every image listing it marked broken
   * ({@link bootDisk} refuses it with {@link CorruptCacheError} until the image is loaded or
   * pulled again); an image marked broken whose files are sound again loses the mark.
   * Idempotent.
   *
   * @param reference - The image; omitted: every image.
   * @param opts - `dryRun` only reports; `pull` says how to reach the registry (or `false`).
   * @returns Per image what was repaired and the problems left.
   * @throws {ImageNotFoundError} when `reference` is not cached.
   * @throws {InvalidReferenceError} when `reference` is malformed or an ambiguous prefix.
   * @throws {InvalidArgumentError} when an option is unknown or of the wrong type.
   * @throws {CacheIndexError | IoError} when the cache cannot be read or written.
   */
  async repair(reference?: string, opts?: RepairOptions): Promise<CheckReport> {
    requireArity(arguments, 2, "repair");
    if (reference !== undefined) requireString(reference, "reference");
    requireOptions(opts, "options");
    const { pull, ...rest } = (opts ?? {}) as RepairOptions;
    const { dryRun } = checkOptions(rest, REPAIR_OPTIONS, "options");
    let access: NativeRegistryAccess | undefined;
    if (pull !== false) {
      const checked = checkOptions(pull, REPAIR_PULL_OPTIONS, "options.pull");
      access = {};
      if (checked.insecure !== undefined) access.insecure = checked.insecure;
      if (checked.caCerts !== undefined) access.caCerts = checked.caCerts;
      if (checked.auth !== undefined) access.auth = authToNative(checked.auth, "options.pull.auth");
    }
    return checkReport(await call(() => this.#native.repair(reference, dryRun ?? false, access)));
  }

  /**
   * Points the tag `target` at the image `source` names (any form {@link ImageCache.get}
   * takes), like `docker tag`; a `target` that named another image is re-pointed.
   *
   * @returns The new reference's handle.
   * @throws {ImageNotFoundError} when `source` is not cached.
   * @throws {InvalidReferenceError} when `target` is malformed or a digest reference.
   * @throws {InvalidArgumentError} when an argument is not a string.
   * @throws {CacheIndexError | IoError} when the cache cannot be written.
   */
  async tag(source: string, target: string): Promise<ImageHandle> {
    requireArity(arguments, 2, "tag");
    requireString(source, "source");
    requireString(target, "target");
    return makeHandle(await call(() => this.#native.tag(source, target)));
  }

  /**
   * Ends every use of one holder (a sandbox that stopped, a snapshot deleted). Idempotent.
   *
   * @returns How many uses it ended.
   * @throws {InvalidArgumentError} when `holder` is not `{ sandbox: id }` or `{ snapshot: id }`.
   * @throws {CacheIndexError | IoError} when the cache cannot be written.
   */
  async releaseHolder(holder: ImageHolder): Promise<number> {
    requireArity(arguments, 1, "releaseHolder");
    const h = holderToNative(holder);
    return call(() => this.#native.releaseHolder(h));
  }

  /**
   * The handle, config and layers (bottom to top) of a cached reference.
   *
   * @param reference - The image reference, in any spelling.
   * @throws {ImageNotFoundError} when the reference is not cached.
   * @throws {InvalidReferenceError} when `reference` is not a valid reference.
   * @throws {InvalidArgumentError} when `reference` is not a string, or more arguments are given.
   * @throws {UnsupportedError} with the cloud backend.
   * @throws {CorruptCacheError} when the recorded config is malformed.
   * @throws {CacheIndexError | IoError} when the cache cannot be read.
   */
  async inspect(reference: string): Promise<ImageDetail> {
    requireArity(arguments, 1, "inspect");
    requireString(reference, "reference");
    return detail(await call(() => this.#native.inspect(reference)));
  }

  /**
   * Removes a reference (for a digest reference, every reference of that repository pointing
   * at the manifest), then deletes the manifest and config nothing else names, the manifest's
   * fsmeta and VMDK files, and the EROFS images of layers nothing else uses, from the index and
   * from disk. Layers shared with other images stay.
   *
   * @param reference - The image reference, in any spelling.
   * @param opts - `force` removes the reference even while the image is in use.
   * @throws {ImageInUseError} when a sandbox or snapshot uses the image and `force` is not set.
   * @throws {ImageNotFoundError} when the reference is not cached.
   * @throws {InvalidReferenceError} when `reference` is not a valid reference.
   * @throws {InvalidArgumentError} when an option is unknown or of the wrong type, or an argument
   *   has the wrong type (before anything is done).
   * @throws {UnsupportedError} with the cloud backend.
   * @throws {CorruptCacheError} when a folder or file of the cache root is a symlink (or a folder
   *   where a file belongs); its `path` names it.
   * @throws {CacheIndexError | IoError} when the cache cannot be changed.
   */
  async remove(reference: string, opts?: RemoveOptions): Promise<void> {
    requireArity(arguments, 2, "remove");
    requireString(reference, "reference");
    const force = checkOptions(opts, REMOVE_OPTIONS, "options").force ?? false;
    await call(() => this.#native.remove(reference, force));
  }

  /**
   * Removes every reference no sandbox or snapshot uses (uses that expired do not count) and
   * that the options select, then every manifest, config and layer nothing names any more,
   * files the index does not name, and leftovers of interrupted loads. Without options it
   * removes every unused reference. The index is changed in one transaction before any file is
   * deleted, so a crash leaves only orphan files, which the next prune reclaims. Loads running
   * in any process are waited for.
   *
   * @param opts - `dryRun`, `olderThan`, `keep`, `maxBytes` and `gracePeriodMs`; see
   *   {@link PruneOptions}.
   * @returns What was deleted (or, for a dry run, would be), the bytes reclaimed, the cache's
   *   size before and after, and each reference removed.
   * @throws {InvalidArgumentError} when an option is unknown or has the wrong type, or a number is
   *   negative, fractional or not finite.
   * @throws {InvalidReferenceError} when a `keep` entry is not a valid reference.
   * @throws {UnsupportedError} with the cloud backend.
   * @throws {CorruptCacheError} when a folder or file of the cache root is a symlink (or a folder
   *   where a file belongs); its `path` names it.
   * @throws {CacheIndexError | IoError} when the cache cannot be changed.
   */
  async prune(opts?: PruneOptions): Promise<ImagePruneReport> {
    requireArity(arguments, 1, "prune");
    const options = pruneOptionsToNative(opts);
    return pruneReport(await call(() => this.#native.prune(options)));
  }

  /**
   * Bytes on disk by kind (layer images, fsmeta, VMDK, blobs, index, temporary) and, per
   * reference, the bytes its image shares with other images, the bytes only it uses, and what
   * removing it would reclaim. Answers from the sizes the index recorded when each artifact was
   * written, without walking the disk.
   *
   * @returns The totals and one entry per reference.
   * @throws {UnsupportedError} with the cloud backend.
   * @throws {CorruptCacheError} when a folder or file of the cache root is a symlink (or a folder
   *   where a file belongs); its `path` names it.
   * @throws {CacheIndexError | IoError} when the cache cannot be read.
   */
  async diskUsage(): Promise<DiskUsage> {
    requireArity(arguments, 0, "diskUsage");
    // The binding sends the rows as for list.
    return diskUsage(await call(() => readDiskUsage(this.#native.diskUsageRows())));
  }

  /**
   * The files a VM boots an image from: its VMDK descriptor (fsmeta then every layer image as
   * one disk), its fsmeta image, and its layer images bottom to top (for a multi-device
   * `mount -t erofs -o device=...`). A missing fsmeta image or VMDK descriptor is rebuilt from
   * the layer images. The paths stay valid while the image is cached: pin it with
   * {@link ImageCache.acquire} while a VM uses them.
   *
   * @param reference - The image reference, in any spelling.
   * @returns Absolute paths (when the cache root is absolute).
   * @throws {ImageNotFoundError} when the reference is not cached.
   * @throws {InvalidReferenceError} when `reference` is not a valid reference.
   * @throws {InvalidArgumentError} when `reference` is not a string, or more arguments are given.
   * @throws {CorruptCacheError} when a layer image is missing (a cache written by an older
   *   version whose layers were never converted: load the image again).
   * @throws {UnsupportedError} with the cloud backend.
   * @throws {CorruptCacheError} when a folder or file of the cache root is a symlink (or a folder
   *   where a file belongs); its `path` names it.
   * @throws {CacheIndexError | IoError} when the cache cannot be read or the files not rebuilt.
   */
  async bootDisk(reference: string): Promise<BootDisk> {
    requireArity(arguments, 1, "bootDisk");
    requireString(reference, "reference");
    return bootDisk(await call(() => this.#native.bootDisk(reference)));
  }

  /**
   * Imports every image of an archive: a `docker save` tarball, an OCI image layout tarball
   * (optionally gzip- or zstd-compressed) or an OCI image layout folder. Each distinct layer is
   * converted to an EROFS image (its `diffId` checked against the uncompressed tar) and its blob
   * is not kept; a layer whose `diffId` is already cached is reused without reading its blob. A
   * plain tar and a folder are read in place, never copied; a compressed tar is read once, front
   * to back, members that come before its metadata spooled into the cache's `tmp/`.
   * Everything is verified and built under the cache's `tmp/` before anything is published, and
   * all images of the archive are recorded in one transaction: on any failure (bad input, a full
   * disk, a damaged index) the cache is exactly as it was. `path` must be a regular file or a
   * folder; a FIFO, a device or a socket is refused without being opened.
   *
   * @param path - The archive file or layout folder.
   * @param opts - `tag` adds a reference to the first image; `platform` picks from an image
   *   index; `signal` cancels the load; `maxUncompressedBytes` bounds what the
   *   load writes. See {@link LoadOptions}.
   * @returns One handle per reference, in archive order.
   * @throws {InvalidArchiveError} when the archive is malformed or unsafe, or `path` is neither a
   *   regular file nor a folder.
   * @throws {DigestMismatchError} when content does not match its digest or `diff_id`.
   * @throws {ReferenceRequiredError} when an image names no repository and no `tag` is given.
   * @throws {PlatformNotFoundError} when an index has no manifest for the platform.
   * @throws {AbortError} when `signal` is aborted (before the load starts, or while it reads
   *   the archive); the cache is as it was.
   * @throws {InvalidReferenceError} when a name in the archive or `tag` is not a valid reference.
   * @throws {InvalidArgumentError} when an option is unknown or of the wrong type (also
   *   `maxUncompressedBytes` that is not a positive whole number), or an argument has the wrong
   *   type (before anything is done).
   * @throws {LimitExceededError} when the load would write more than `maxUncompressedBytes`.
   * @throws {UnsupportedError} with the cloud backend, or for unsupported compression.
   * @throws {NoSpaceError} when the cache's file system is full or the quota exhausted.
   * @throws {CorruptCacheError} when the cache's index is damaged or of a newer version, or a
   *   folder or file of the cache root is a symlink (or a folder where a file belongs); its
   *   `path` then names it.
   * @throws {IoError} when the archive or the cache cannot be read or written.
   * @throws {CacheIndexError} when the cache's index cannot be written.
   */
  async load(path: string, opts?: LoadOptions): Promise<ImageHandle[]> {
    requireArity(arguments, 2, "load");
    requireString(path, "path");
    const { native: options, signal, onProgress } = loadOptionsToNative(opts);
    return cancellableLoad(signal, (cancel) => this.#native.load(path, options, cancel, onProgress));
  }

  /**
   * Imports every image of the archive on the process's standard input (file descriptor 0),
   * as {@link ImageCache.load} does a file: `ocicache load` without `-i`. The addon reads the
   * input itself, front to back and once, and never copies it whole: members that come before
   * the archive's metadata (a `docker save` archive writes its layers first) are spooled into
   * the cache's `tmp/` folder, which the load deletes when it ends, however it ends. Do not read
   * `process.stdin` while it runs. A `signal` aborted while the load waits for input stops it
   * within a tenth of a second.
   *
   * @param opts - As for {@link ImageCache.load}.
   * @returns One handle per reference, in archive order.
   * @throws {InvalidArchiveError} when the input is not an image archive.
   * @throws {AbortError} when `signal` is aborted; nothing is changed.
   * @throws {DigestMismatchError | ReferenceRequiredError | PlatformNotFoundError |
   *   InvalidReferenceError | InvalidArgumentError | LimitExceededError | NoSpaceError |
   *   UnsupportedError | CorruptCacheError | IoError | CacheIndexError} as for
   *   {@link ImageCache.load}.
   */
  async loadStdin(opts?: LoadOptions): Promise<ImageHandle[]> {
    requireArity(arguments, 1, "loadStdin");
    const { native: options, signal, onProgress } = loadOptionsToNative(opts);
    return cancellableLoad(signal, (cancel) => this.#native.loadStdin(options, cancel, onProgress));
  }

  /**
   * Records that a sandbox or snapshot uses an image: its manifest and layers stay on disk
   * until the use is released (or, with `ttlMs`, expires), even if the reference is removed
   * with `force`. Refreshes the reference's `lastUsedAt`. Acquiring again for the same holder
   * and image returns the same use, with the expiry `opts` gives now.
   *
   * @param reference - The image reference, in any spelling.
   * @param holder - `{ sandbox: id }` or `{ snapshot: id }`.
   * @param opts - `ttlMs`: the use expires that many milliseconds from now.
   * @throws {ImageNotFoundError} when the reference is not cached.
   * @throws {InvalidReferenceError} when `reference` is not a valid reference.
   * @throws {InvalidArgumentError} when an argument has the wrong type, the id is empty, or
   *   `ttlMs` is not a whole number above 0.
   * @throws {UnsupportedError} with the cloud backend.
   * @throws {CacheIndexError | IoError} when the cache cannot be changed.
   */
  async acquire(reference: string, holder: ImageHolder, opts?: AcquireOptions): Promise<ImageUse> {
    requireArity(arguments, 3, "acquire");
    requireString(reference, "reference");
    const h = holderToNative(holder);
    requireOptions(opts, "options");
    const { pull, ...rest } = (opts ?? {}) as AcquireOptions;
    const options: NativeAcquireOptions = checkOptions(rest, ACQUIRE_OPTIONS, "options");
    if (pull === undefined) {
      return makeUse(this.#native, await call(() => this.#native.acquire(reference, h, options)));
    }
    const checked = pullOptionsToNative(pull === true ? {} : pull, "pull");
    const used = await cancellable(checked.signal, (cancel) =>
      this.#native.acquirePulling(reference, h, options, checked.native, cancel, progressListener(checked.onProgress)),
    );
    return makeUse(this.#native, used);
  }

  /**
   * Pulls an image from its registry into this cache and returns its handle. With the default
   * policy `if-missing`, a cached reference is returned at once without a request. Otherwise
   * the manifest (for a multi-platform image, the platform's) and config are fetched and
   * verified, and every layer whose `diffId` the cache lacks is downloaded (at most 4 at once)
   * into the cache's `tmp/` and converted as it arrives, in one pass that checks its digest and
   * `diffId` and writes its EROFS image; nothing cached is downloaded again. Then the layers,
   * fsmeta, VMDK and index rows are published as a load publishes them: on any failure (a
   * cancellation included) nothing is published. A pull that is cancelled, fails on the
   * network or is killed leaves its partial downloads, and the next pull of the same blob
   * continues them with `Range`; `prune` reclaims one only once it is a day old and unused. A pull of a
   * cached reference refreshes its `lastUsedAt`; a fresh one sets it to now. Two processes
   * pulling one image at once download each layer once and both succeed; a concurrent `prune`
   * never deletes what a running pull uses. Mirrors come from the file `OCICACHE_REGISTRIES`
   * names (see the README).
   *
   * @param reference - `name[:tag]` or `name@sha256:…` (the manifest is checked against the digest).
   * @param opts - See {@link PullOptions}.
   * @throws {ImageNotFoundError} when the registry has no such repository or tag (`registryCode`
   *   says what it answered), or with `policy: "never"` when the reference is not cached.
   * @throws {PlatformNotFoundError} when a multi-platform image lacks the platform.
   * @throws {RegistryUnauthorizedError | RegistryDeniedError} when credentials are missing, wrong
   *   or insufficient.
   * @throws {RegistryRateLimitedError | RegistryUnavailableError} when the registry keeps failing.
   * @throws {RegistryTlsError} when its certificate is not trusted.
   * @throws {DigestMismatchError} when a manifest, config or layer does not match its digest.
   * @throws {UnsupportedError} for a Docker schema 1 image or an unknown media type.
   * @throws {AbortError} when `signal` is aborted.
   * @throws {InvalidReferenceError | InvalidArgumentError} for bad arguments (an unknown option key).
   * @throws {NoSpaceError | LimitExceededError | IoError | CacheIndexError} when the cache cannot be written.
   */
  async pull(reference: string, opts?: PullOptions): Promise<ImageHandle> {
    requireArity(arguments, 2, "pull");
    requireString(reference, "reference");
    const checked = pullOptionsToNative(opts, "options");
    const handle = await cancellable(checked.signal, (cancel) =>
      this.#native.pull(reference, checked.native, cancel, progressListener(checked.onProgress)),
    );
    return makeHandle(handle);
  }

  /**
   * Current uses, oldest first: of one reference's image, or of every image.
   *
   * @param reference - The image reference, in any spelling; omitted, the uses of every image.
   * @throws {ImageNotFoundError} when `reference` is given and not cached.
   * @throws {InvalidReferenceError} when `reference` is not a valid reference.
   * @throws {InvalidArgumentError} when `reference` is not a string, or more arguments are given.
   * @throws {UnsupportedError} with the cloud backend.
   * @throws {CacheIndexError | IoError} when the cache cannot be read.
   */
  async uses(reference?: string): Promise<ImageUse[]> {
    requireArity(arguments, 1, "uses");
    if (reference !== undefined) {
      requireString(reference, "reference");
    }
    const uses = await call(() => this.#native.uses(reference));
    return uses.map((u) => makeUse(this.#native, u));
  }
}

let defaultOptions: ImageCacheOptions = {};
let defaultCache: ImageCache | undefined;

/** The default cache, opened on first use with the options `Image.configure` last set. */
function cache(): ImageCache {
  defaultCache ??= ImageCache.open(defaultOptions);
  return defaultCache;
}

/**
 * The operations of {@link ImageCache} on a default cache, opened on first use: the root is
 * `$OCICACHE_HOME` (else the platform cache folder) and the backend comes from
 * `$OCICACHE_BACKEND`, unless {@link Image.configure} says otherwise.
 *
 * @example
 * ```ts
 * await Image.load("busybox.tar");
 * const handle = await Image.get("busybox");
 * ```
 */
export class Image {
  private constructor() {}

  /**
   * Replaces the default cache used by every `Image` method. Calls already running finish on
   * the previous cache. `Image.configure({ backend: { cloud: { url } } })` makes every method
   * reject with {@link UnsupportedError} without touching any file;
   * `Image.configure({ backend: "local" })` switches back.
   *
   * @param opts - Root folder and backend; omitted options take their defaults again.
   * @throws {InvalidArgumentError} when an option is unknown or of the wrong type.
   */
  static configure(opts: ImageCacheOptions): void {
    requireArity(arguments, 1, "Image.configure");
    defaultOptions = cacheOptions(opts).checked;
    defaultCache = undefined;
  }

  /**
   * The handle of a cached reference; see {@link ImageCache.get}.
   *
   * @param reference - The image reference, in any spelling.
   * @throws {ImageNotFoundError} when the reference is not cached.
   * @throws {InvalidReferenceError} when `reference` is not a valid reference.
   * @throws {InvalidArgumentError} when `reference` is not a string, more arguments are given, or
   *   no default root exists.
   * @throws {UnsupportedError} with the cloud backend.
   * @throws {NativeNotFoundError} when the native addon cannot be loaded.
   * @throws {CacheIndexError | IoError} when the cache cannot be read.
   */
  static async get(reference: string): Promise<ImageHandle> {
    requireArity(arguments, 1, "Image.get");
    return cache().get(reference);
  }

  /**
   * Every cached reference, newest first; see {@link ImageCache.list}.
   *
   * @throws {UnsupportedError} with the cloud backend.
   * @throws {InvalidArgumentError} when no default root exists.
   * @throws {NativeNotFoundError} when the native addon cannot be loaded.
   * @throws {CacheIndexError | IoError} when the cache cannot be read.
   */
  static async list(opts?: ListOptions): Promise<ImageHandle[]> {
    requireArity(arguments, 1, "Image.list");
    return cache().list(opts);
  }

  /** Checks images' files; see {@link ImageCache.verify}. */
  static async verify(reference?: string, opts?: VerifyOptions): Promise<CheckReport> {
    requireArity(arguments, 2, "Image.verify");
    return cache().verify(reference, opts);
  }

  /** Repairs images' files; see {@link ImageCache.repair}. */
  static async repair(reference?: string, opts?: RepairOptions): Promise<CheckReport> {
    requireArity(arguments, 2, "Image.repair");
    return cache().repair(reference, opts);
  }

  /** Points a tag at a cached image; see {@link ImageCache.tag}. */
  static async tag(source: string, target: string): Promise<ImageHandle> {
    requireArity(arguments, 2, "Image.tag");
    return cache().tag(source, target);
  }

  /** Ends every use of one holder; see {@link ImageCache.releaseHolder}. */
  static async releaseHolder(holder: ImageHolder): Promise<number> {
    requireArity(arguments, 1, "Image.releaseHolder");
    return cache().releaseHolder(holder);
  }

  /**
   * The handle, config and layers of a cached reference; see {@link ImageCache.inspect}.
   *
   * @param reference - The image reference, in any spelling.
   * @throws {ImageNotFoundError} when the reference is not cached.
   * @throws {InvalidReferenceError} when `reference` is not a valid reference.
   * @throws {InvalidArgumentError} when `reference` is not a string, more arguments are given, or
   *   no default root exists.
   * @throws {UnsupportedError} with the cloud backend.
   * @throws {CorruptCacheError} when the recorded config is malformed.
   * @throws {NativeNotFoundError} when the native addon cannot be loaded.
   * @throws {CacheIndexError | IoError} when the cache cannot be read.
   */
  static async inspect(reference: string): Promise<ImageDetail> {
    requireArity(arguments, 1, "Image.inspect");
    return cache().inspect(reference);
  }

  /**
   * Removes a reference and what only it used; see {@link ImageCache.remove}.
   *
   * @param reference - The image reference, in any spelling.
   * @param opts - `force` removes the reference even while the image is in use.
   * @throws {ImageInUseError} when a sandbox or snapshot uses the image and `force` is not set.
   * @throws {ImageNotFoundError} when the reference is not cached.
   * @throws {InvalidReferenceError} when `reference` is not a valid reference.
   * @throws {InvalidArgumentError} when an option is unknown or of the wrong type, an argument has
   *   the wrong type, or no default root exists.
   * @throws {UnsupportedError} with the cloud backend.
   * @throws {NativeNotFoundError} when the native addon cannot be loaded.
   * @throws {CacheIndexError | IoError} when the cache cannot be changed.
   */
  static async remove(reference: string, opts?: RemoveOptions): Promise<void> {
    requireArity(arguments, 2, "Image.remove");
    return cache().remove(reference, opts);
  }

  /**
   * Removes what no sandbox or snapshot uses and the options select; see
   * {@link ImageCache.prune}.
   *
   * @param opts - `dryRun`, `olderThan` (a `Date`, or an age in milliseconds), `keep`,
   *   `maxBytes` and `gracePeriodMs`; see {@link PruneOptions}.
   * @returns What was deleted, the bytes reclaimed, the size before and after, and each
   *   reference removed.
   * @throws {InvalidArgumentError} when an option is unknown or invalid, or no default root exists.
   * @throws {InvalidReferenceError} when a `keep` entry is not a valid reference.
   * @throws {UnsupportedError} with the cloud backend.
   * @throws {NativeNotFoundError} when the native addon cannot be loaded.
   * @throws {CacheIndexError | IoError} when the cache cannot be changed.
   */
  static async prune(opts?: PruneOptions): Promise<ImagePruneReport> {
    requireArity(arguments, 1, "Image.prune");
    return cache().prune(opts);
  }

  /**
   * Bytes on disk by kind and per reference; see {@link ImageCache.diskUsage}.
   *
   * @throws {UnsupportedError} with the cloud backend.
   * @throws {InvalidArgumentError} when no default root exists.
   * @throws {NativeNotFoundError} when the native addon cannot be loaded.
   * @throws {CacheIndexError | IoError} when the cache cannot be read.
   */
  static async diskUsage(): Promise<DiskUsage> {
    requireArity(arguments, 0, "Image.diskUsage");
    return cache().diskUsage();
  }

  /**
   * The VMDK, fsmeta and layer image paths a VM boots an image from; see
   * {@link ImageCache.bootDisk}.
   *
   * @param reference - The image reference, in any spelling.
   * @throws {ImageNotFoundError} when the reference is not cached.
   * @throws {InvalidReferenceError} when `reference` is not a valid reference.
   * @throws {InvalidArgumentError} when `reference` is not a string, more arguments are given, or
   *   no default root exists.
   * @throws {CorruptCacheError} when a layer image is missing.
   * @throws {UnsupportedError} with the cloud backend.
   * @throws {NativeNotFoundError} when the native addon cannot be loaded.
   * @throws {CacheIndexError | IoError} when the cache cannot be read or the files not rebuilt.
   */
  static async bootDisk(reference: string): Promise<BootDisk> {
    requireArity(arguments, 1, "Image.bootDisk");
    return cache().bootDisk(reference);
  }

  /**
   * Imports every image of an archive or OCI layout folder; see {@link ImageCache.load}.
   *
   * @param path - The archive file or layout folder.
   * @param opts - `tag` adds a reference to the first image; `platform` picks from an image
   *   index; `signal` cancels the load; `maxUncompressedBytes` bounds what the
   *   load writes. See {@link LoadOptions}.
   * @returns One handle per reference, in archive order.
   * @throws {InvalidArchiveError} when the archive is malformed or unsafe, or `path` is neither a
   *   regular file nor a folder.
   * @throws {DigestMismatchError} when content does not match its digest or `diff_id`.
   * @throws {ReferenceRequiredError} when an image names no repository and no `tag` is given.
   * @throws {PlatformNotFoundError} when an index has no manifest for the platform.
   * @throws {AbortError} when `signal` is aborted (before the load starts, or while it reads
   *   the archive); the cache is as it was.
   * @throws {InvalidReferenceError} when a name in the archive or `tag` is not a valid reference.
   * @throws {InvalidArgumentError} when an option is unknown or of the wrong type (also
   *   `maxUncompressedBytes` that is not a positive whole number), an argument has the wrong
   *   type, or no default root exists.
   * @throws {LimitExceededError} when the load would write more than `maxUncompressedBytes`.
   * @throws {UnsupportedError} with the cloud backend, or for unsupported compression.
   * @throws {NativeNotFoundError} when the native addon cannot be loaded.
   * @throws {NoSpaceError} when the cache's file system is full or the quota exhausted.
   * @throws {CorruptCacheError} when the cache's index is damaged or of a newer version.
   * @throws {IoError} when the archive or the cache cannot be read or written.
   * @throws {CacheIndexError} when the cache's index cannot be written.
   */
  static async load(path: string, opts?: LoadOptions): Promise<ImageHandle[]> {
    requireArity(arguments, 2, "Image.load");
    return cache().load(path, opts);
  }

  /**
   * Imports every image of the archive on the process's standard input; see
   * {@link ImageCache.loadStdin}.
   *
   * @param opts - As for {@link Image.load}.
   * @returns One handle per reference, in archive order.
   * @throws {InvalidArchiveError} when the input is not an image archive.
   * @throws {AbortError} when `signal` is aborted; nothing is changed.
   * @throws {NativeNotFoundError} when the native addon cannot be loaded.
   * @throws {DigestMismatchError | ReferenceRequiredError | PlatformNotFoundError |
   *   InvalidReferenceError | InvalidArgumentError | LimitExceededError | NoSpaceError |
   *   UnsupportedError | CorruptCacheError | IoError | CacheIndexError} as for
   *   {@link Image.load}.
   */
  static async loadStdin(opts?: LoadOptions): Promise<ImageHandle[]> {
    requireArity(arguments, 1, "Image.loadStdin");
    return cache().loadStdin(opts);
  }

  /**
   * Records that a sandbox or snapshot uses an image; see {@link ImageCache.acquire}.
   *
   * @param reference - The image reference, in any spelling.
   * @param holder - `{ sandbox: id }` or `{ snapshot: id }`.
   * @param opts - `ttlMs`: the use expires that many milliseconds from now.
   * @throws {ImageNotFoundError} when the reference is not cached.
   * @throws {InvalidReferenceError} when `reference` is not a valid reference.
   * @throws {InvalidArgumentError} when an argument has the wrong type or `ttlMs` is not a
   *   whole number above 0, or no default root exists.
   * @throws {UnsupportedError} with the cloud backend.
   * @throws {NativeNotFoundError} when the native addon cannot be loaded.
   * @throws {CacheIndexError | IoError} when the cache cannot be changed.
   */
  static async acquire(reference: string, holder: ImageHolder, opts?: AcquireOptions): Promise<ImageUse> {
    requireArity(arguments, 3, "Image.acquire");
    return cache().acquire(reference, holder, opts);
  }

  /**
   * Pulls an image from its registry into the default cache; see {@link ImageCache.pull}.
   *
   * @param reference - `name[:tag]` or `name@sha256:…`.
   * @param opts - See {@link PullOptions}.
   * @throws {ImageNotFoundError | PlatformNotFoundError | RegistryError | DigestMismatchError |
   *   AbortError | InvalidArgumentError} as {@link ImageCache.pull} does.
   * @throws {NativeNotFoundError} when the native addon cannot be loaded.
   */
  static async pull(reference: string, opts?: PullOptions): Promise<ImageHandle> {
    requireArity(arguments, 2, "Image.pull");
    return cache().pull(reference, opts);
  }

  /**
   * Current uses, of one reference's image or of every image; see {@link ImageCache.uses}.
   *
   * @param reference - The image reference, in any spelling; omitted, the uses of every image.
   * @throws {ImageNotFoundError} when `reference` is given and not cached.
   * @throws {InvalidReferenceError} when `reference` is not a valid reference.
   * @throws {InvalidArgumentError} when `reference` is not a string, more arguments are given, or
   *   no default root exists.
   * @throws {UnsupportedError} with the cloud backend.
   * @throws {NativeNotFoundError} when the native addon cannot be loaded.
   * @throws {CacheIndexError | IoError} when the cache cannot be read.
   */
  static async uses(reference?: string): Promise<ImageUse[]> {
    requireArity(arguments, 1, "Image.uses");
    return cache().uses(reference);
  }
}
