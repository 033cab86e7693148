/** The files a VM boots an image from. (TypeScript: `BootDisk`.) */
interface NativeBootDisk {
  /** The VMDK descriptor: fsmeta, then each layer image, as FLAT extents (relative paths). */
  vmdk: string
  /** The merged metadata (fsmeta) EROFS image. */
  fsmeta: string
  /** Layer EROFS images, bottom to top: fsmeta's extra devices, in slot order. */
  layers: ReadonlyArray<string>
}

/** One problem with one artifact. (TypeScript: `CheckProblem`.) */
interface NativeCheckProblem {
  /** `missing`, `not-a-file`, `size`, `superblock`, `wrong-image`, `hash` or `metadata`. */
  kind: string
  /** `layer`, `fsmeta`, `vmdk` or `blob`. */
  artifact: string
  /** The file. */
  path: string
  /** What was expected (a size, a hash, a volume), when it can be told. */
  expected: string | null
  /** What was found, when it can be told. */
  found: string | null
}

/** What `verify` or `repair` found. (TypeScript: `CheckReport`.) */
interface NativeCheckReport {
  /** One entry per manifest checked, by digest. */
  images: Array<NativeImageCheck>
  /** Whether every byte was re-hashed and every EROFS image re-parsed. */
  full: boolean
  /** Whether nothing was changed (a verify, or a repair's dry run). */
  dryRun: boolean
  /** Problems found (verify) or left (repair) over every image. */
  problems: number
}

/** Why a repair could not fetch an image's damaged layers again. (TypeScript: `FetchError`.) */
interface NativeFetchError {
  /** The registry repository asked. */
  origin: string
  /** The error's stable code (`REGISTRY_UNAVAILABLE`, `REGISTRY_UNAUTHORIZED`, ...). */
  code: string
  /** The error's message. */
  message: string
}

/** Integrity of one image's files. (TypeScript: `ImageCheck`.) */
interface NativeImageCheck {
  /** The manifest (`sha256:...`). */
  manifestDigest: string
  /** Its references, familiar form (`repository@digest` for a manifest only uses hold). */
  references: Array<string>
  /** Artifacts checked: manifest and config blobs, layer images, fsmeta, VMDK. */
  artifacts: number
  /** Bytes read (a full check reads every byte). */
  bytesRead: number
  /** Problems found (verify) or left (repair); empty when the image is sound. */
  problems: Array<NativeCheckProblem>
  /** Problems a repair fixed (or, in a dry run, would fix). */
  repaired: Array<NativeCheckProblem>
  /** Why the image is marked broken (`bootDisk` refuses it), or null. */
  broken: string | null
  /** The registry repository the image was last pulled from, or null (only loaded). */
  origin: string | null
  /** Why a repair could not fetch its damaged layers from `origin`, or null. */
  fetchError: NativeFetchError | null
}

/**
 * The config fields `inspect` shows; absent fields are null. (TypeScript:
 * `ImageConfigDetail`.)
 */
interface NativeImageConfig {
  /** The config blob's digest (`sha256:...`). */
  digest: string
  /** `Env`, as `NAME=value` strings. */
  env: Array<string> | null
  /** `Cmd`. */
  cmd: Array<string> | null
  /** `Entrypoint`. */
  entrypoint: Array<string> | null
  /** `WorkingDir`. */
  workingDir: string | null
  /** `User`. */
  user: string | null
  /** `Labels`. */
  labels: Record<string, unknown> | null
  /** `StopSignal`. */
  stopSignal: string | null
  /**
   * `ExposedPorts`: the ports the image says it listens on (`80/tcp`, `53/udp`), sorted.
   * This field and the four after it are read from the config blob when the image is
   * inspected; a field of the wrong type there is null, as if absent.
   */
  exposedPorts: Array<string> | null
  /** `Volumes`: the container paths the image declares as volumes, sorted. */
  volumes: Array<string> | null
  /**
   * The config's `created`, when the image was built (not when it was loaded), in
   * milliseconds since the Unix epoch; null when absent or not an RFC 3339 date-time.
   */
  createdMs: number | null
  /** The config's `author`. */
  author: string | null
  /** The config's `history`, oldest first; null when absent or not an array of objects. */
  history: ReadonlyArray<Readonly<NativeImageHistory>> | null
}

/** One step of an image's build history. (TypeScript: `ImageHistoryEntry`.) */
interface NativeImageHistory {
  /** When, in milliseconds since the Unix epoch. */
  createdMs: number | null
  /** `created_by`: the command that made it. */
  createdBy: string | null
  /** `author`. */
  author: string | null
  /** `comment`. */
  comment: string | null
  /** `empty_layer`: the step made no layer. */
  emptyLayer: boolean
}

/** One layer of an image. (TypeScript: `ImageLayerDetail`.) */
interface NativeImageLayer {
  /** Digest of the uncompressed layer tar (the config's `rootfs.diff_ids` entry). */
  diffId: string
  /** Digest of the layer blob as distributed (compressed or not). */
  blobDigest: string
  /** The layer descriptor's media type. */
  mediaType: string
  /** Size of the layer blob as distributed, in bytes. */
  compressedSizeBytes: number
  /**
   * Size in bytes of the layer's EROFS image, the form the cache keeps the layer in (one image
   * per distinct `diffId`, shared by every image with that layer; the blob is not kept): a
   * multiple of the 4096-byte block size. Null only for a layer recorded by an older cache
   * version and not converted since; loading an image with that layer converts it.
   */
  erofsSizeBytes: number | null
  /** Position in the image, 0 being the bottom layer. */
  position: number
}

/** One reference a prune removed. (TypeScript: `PrunedReference`.) */
interface NativePrunedReference {
  /** Familiar form of the reference. */
  reference: string
  /** The manifest it pointed to. */
  manifestDigest: string
  /**
   * Recorded bytes its removal freed: the manifest's own files when it was the manifest's
   * last reference, plus the config and layers no other image uses; 0 when another reference
   * or a use keeps the manifest.
   */
  bytesFreed: number
}

/** What a prune (or remove) reclaimed. (TypeScript: `ImagePruneReport`.) */
interface NativePruneReport {
  /** References deleted. */
  imageRefsRemoved: number
  /** Manifests deleted. */
  manifestsRemoved: number
  /**
   * Distinct layer images (by `diff_id`) deleted: those whose last user went, and orphan
   * layer images that no index row names (left by an interrupted load).
   */
  layersRemoved: number
  /** fsmeta images deleted. */
  fsmetaRemoved: number
  /** VMDK descriptors deleted. */
  vmdkRemoved: number
  /**
   * Measured bytes of the files actually deleted (for a dry run: that would be deleted), from
   * the `lstat` made just before each unlink, or null when files were due for deletion and
   * none could be measured (another process deleted them first).
   */
  bytesReclaimed: number | null
  /**
   * Allocated bytes of those files (`st_blocks * 512`; the apparent size where the platform
   * has no such figure), or null when `bytesReclaimed` is.
   */
  allocatedBytesReclaimed: number | null
  /**
   * The cache's size before: the recorded sizes of its artifacts, the index files, and the
   * orphan files and `tmp/` leftovers this run found.
   */
  bytesBefore: number
  /** `bytesBefore` minus `bytesReclaimed`. */
  bytesAfter: number
  /** Each reference removed, least recently used first, with what removing it freed. */
  removed: ReadonlyArray<Readonly<NativePrunedReference>>
  /** Whether this was a dry run (nothing was changed). */
  dryRun: boolean
  /**
   * Entries the sweep left in place because they are not what the cache deletes there (a
   * directory or a symlink where an artifact file belongs, a folder under `tmp/` the cache did
   * not make), one line each naming the path; the rest of the prune went on. Empty normally.
   */
  warnings: ReadonlyArray<string>
}

/**
 * Where a cache's operations are served from: `"local"` (this machine's disk) or a remote
 * cache service. The cloud backend is not available in this version: every operation rejects
 * with {@link UnsupportedError} and no file is touched.
 */
type ImageBackend = "local" | {
    /** A remote cache service. */
    cloud: {
        /** The service's address. */
        url: string;
    };
};
/** Options of {@link ImageCache.open} and {@link Image.configure}. */
interface ImageCacheOptions {
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
interface LockWaitEvent {
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
interface LoadOptions {
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
type PullPolicy = "if-missing" | "always" | "never";
/** Registry credentials: a user name and password (or access token as password), or a token. */
type PullAuth = {
    /** The user name. */
    username: string;
    /** The password (or an access token used as one). */
    password: string;
} | {
    /** A registry token, sent as `Authorization: Bearer`. */
    token: string;
};
/** Options of {@link ImageCache.pull}. Unknown keys reject with {@link InvalidArgumentError}. */
interface PullOptions {
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
interface PullLayerRef {
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
type PullProgress = {
    /** The step. */
    readonly kind: "resolving";
    /** The reference, canonical. */
    readonly reference: string;
} | {
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
    readonly bytes: number;
} & PullLayerRef)
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
    readonly erofsBytes: number;
} & PullLayerRef)
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
} | {
    /** The step. */
    readonly kind: "done";
    /** The manifest's digest. */
    readonly manifestDigest: string;
};
/** Options of {@link ImageCache.remove}. */
interface RemoveOptions {
    /**
     * Remove the reference even while a sandbox or snapshot uses its image. The pinned data
     * stays on disk until every use is released and a later prune or remove collects it.
     * @default false
     */
    force?: boolean;
}
/** Options of {@link ImageCache.prune}. Without any, prune removes every image no use pins. */
interface PruneOptions {
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
interface AcquireOptions {
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
interface ListOptions {
    /**
     * Also list the manifests no reference names that a sandbox or snapshot still holds (their
     * tag moved on, or was removed with `force`): `tagged` is false and `reference` is
     * `repository@sha256:...`, which every method resolves.
     * @default false
     */
    all?: boolean;
}
/** Options of {@link ImageCache.verify}. */
interface VerifyOptions {
    /**
     * Re-hash every byte of every file against the hash recorded when it was written, and
     * re-parse every EROFS image's metadata. Without it the check is quick: existence, sizes,
     * EROFS superblocks (and the volume each names) and the VMDK descriptor's text.
     * @default false
     */
    full?: boolean;
}
/** How {@link ImageCache.repair} reaches the registry a pulled image came from. */
type RepairPullOptions = Pick<PullOptions, "auth" | "insecure" | "caCerts">;
/** Options of {@link ImageCache.repair}. */
interface RepairOptions {
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
interface FetchError extends Readonly<NativeFetchError> {
}
/** One problem with one file of an image. */
interface CheckProblem extends Readonly<NativeCheckProblem> {
}
/** The integrity of one image's files. */
interface ImageCheck extends Readonly<Omit<NativeImageCheck, "problems" | "repaired" | "fetchError">> {
    /** Why a repair could not fetch the image's damaged layers from `origin`, or null. */
    readonly fetchError: FetchError | null;
    /** Problems found (verify) or left (repair); empty when the image is sound. */
    readonly problems: readonly CheckProblem[];
    /** Problems a repair fixed (or, in a dry run, would fix). */
    readonly repaired: readonly CheckProblem[];
}
/** What {@link ImageCache.verify} and {@link ImageCache.repair} return. */
interface CheckReport extends Readonly<Omit<NativeCheckReport, "images">> {
    /** One entry per manifest checked, by digest. */
    readonly images: readonly ImageCheck[];
}
/** Who uses an image: a running sandbox or a snapshot, by id. */
type ImageHolder = {
    /** The id of the sandbox that runs the image. */
    sandbox: string;
} | {
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
interface ImageConfigDetail extends Readonly<Omit<NativeImageConfig, "createdMs" | "history">> {
    /**
     * When the image was built (the config's `created`), not when it was loaded (that is
     * {@link ImageHandle.createdAt}); null when absent or not an RFC 3339 date-time.
     */
    readonly created: Date | null;
    /** The config's `history`, oldest first (entries line up with the layers, skipping those with `emptyLayer`). */
    readonly history: readonly ImageHistoryEntry[] | null;
}
/** One step of an image's build history (an entry of the config's `history`). */
interface ImageHistoryEntry extends Readonly<Omit<NativeImageHistory, "createdMs">> {
    /** When the step ran; null when absent or not an RFC 3339 date-time. */
    readonly created: Date | null;
}
/** One layer of an image. */
interface ImageLayerDetail extends Readonly<NativeImageLayer> {
}
/** What {@link ImageCache.inspect} returns. */
interface ImageDetail {
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
interface ImagePruneReport extends Readonly<Omit<NativePruneReport, "removed">> {
    /** Each reference removed, least recently used first, with what removing it freed. */
    readonly removed: readonly PrunedReference[];
}
/** One reference a prune removed. */
interface PrunedReference extends Readonly<NativePrunedReference> {
}
/**
 * Bytes on disk by kind and per image; what {@link ImageCache.diskUsage} returns. The kinds
 * come from sizes recorded when each artifact was written (the index and `tmp/` are measured).
 */
interface DiskUsage {
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
interface ImageDiskUsage {
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
interface BootDisk extends Readonly<NativeBootDisk> {
}
/**
 * A read-only snapshot of one cached reference, as it was when the call returned. Obtain one
 * from {@link ImageCache.get}, {@link ImageCache.list} or {@link ImageCache.load}.
 */
declare class ImageHandle {
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
    private constructor();
}
/**
 * A sandbox or snapshot using an image: while it lasts, the image's manifest, config and layers
 * stay on disk even if its references are removed. Obtain one from {@link ImageCache.acquire}
 * or {@link ImageCache.uses}.
 */
declare class ImageUse {
    #private;
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
    private constructor();
    /**
     * Ends the use, so a later prune or remove may collect the image. Releasing again, or
     * releasing a use another process already ended, does nothing.
     *
     * @throws {CacheIndexError} when the cache's index cannot be written.
     * @throws {IoError} when the cache folder cannot be read.
     */
    release(): Promise<void>;
    /**
     * The files a VM boots exactly the manifest this use pins, whatever happened to its tags
     * since (see {@link ImageCache.bootDisk}).
     *
     * @throws {CorruptCacheError} when a file is damaged or the image is marked broken.
     * @throws {ImageNotFoundError} when the use was released and the image pruned.
     * @throws {CacheIndexError | IoError} when the cache cannot be read.
     */
    bootDisk(): Promise<BootDisk>;
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
declare class ImageCache {
    #private;
    private constructor();
    /**
     * Opens a cache. Nothing is created or read until the first operation.
     *
     * @param opts - Root folder, backend and lock-wait listener.
     * @throws {InvalidArgumentError} when an option is unknown or of the wrong type, or no root is
     *   given and neither `$OCICACHE_HOME` nor a platform cache folder exists.
     * @throws {NativeNotFoundError} when the native addon cannot be loaded.
     */
    static open(opts?: ImageCacheOptions): ImageCache;
    /** The cache root folder (absolute when given absolute, or the default root). */
    get root(): string;
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
    get(reference: string): Promise<ImageHandle>;
    /**
     * Every cached reference, newest first.
     *
     * @throws {UnsupportedError} with the cloud backend.
     * @throws {CacheIndexError | IoError} when the cache cannot be read.
     */
    list(opts?: ListOptions): Promise<ImageHandle[]>;
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
    verify(reference?: string, opts?: VerifyOptions): Promise<CheckReport>;
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
    repair(reference?: string, opts?: RepairOptions): Promise<CheckReport>;
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
    tag(source: string, target: string): Promise<ImageHandle>;
    /**
     * Ends every use of one holder (a sandbox that stopped, a snapshot deleted). Idempotent.
     *
     * @returns How many uses it ended.
     * @throws {InvalidArgumentError} when `holder` is not `{ sandbox: id }` or `{ snapshot: id }`.
     * @throws {CacheIndexError | IoError} when the cache cannot be written.
     */
    releaseHolder(holder: ImageHolder): Promise<number>;
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
    inspect(reference: string): Promise<ImageDetail>;
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
    remove(reference: string, opts?: RemoveOptions): Promise<void>;
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
    prune(opts?: PruneOptions): Promise<ImagePruneReport>;
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
    diskUsage(): Promise<DiskUsage>;
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
    bootDisk(reference: string): Promise<BootDisk>;
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
    load(path: string, opts?: LoadOptions): Promise<ImageHandle[]>;
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
    loadStdin(opts?: LoadOptions): Promise<ImageHandle[]>;
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
    acquire(reference: string, holder: ImageHolder, opts?: AcquireOptions): Promise<ImageUse>;
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
    pull(reference: string, opts?: PullOptions): Promise<ImageHandle>;
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
    uses(reference?: string): Promise<ImageUse[]>;
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
declare class Image {
    private constructor();
    /**
     * Replaces the default cache used by every `Image` method. Calls already running finish on
     * the previous cache. `Image.configure({ backend: { cloud: { url } } })` makes every method
     * reject with {@link UnsupportedError} without touching any file;
     * `Image.configure({ backend: "local" })` switches back.
     *
     * @param opts - Root folder and backend; omitted options take their defaults again.
     * @throws {InvalidArgumentError} when an option is unknown or of the wrong type.
     */
    static configure(opts: ImageCacheOptions): void;
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
    static get(reference: string): Promise<ImageHandle>;
    /**
     * Every cached reference, newest first; see {@link ImageCache.list}.
     *
     * @throws {UnsupportedError} with the cloud backend.
     * @throws {InvalidArgumentError} when no default root exists.
     * @throws {NativeNotFoundError} when the native addon cannot be loaded.
     * @throws {CacheIndexError | IoError} when the cache cannot be read.
     */
    static list(opts?: ListOptions): Promise<ImageHandle[]>;
    /** Checks images' files; see {@link ImageCache.verify}. */
    static verify(reference?: string, opts?: VerifyOptions): Promise<CheckReport>;
    /** Repairs images' files; see {@link ImageCache.repair}. */
    static repair(reference?: string, opts?: RepairOptions): Promise<CheckReport>;
    /** Points a tag at a cached image; see {@link ImageCache.tag}. */
    static tag(source: string, target: string): Promise<ImageHandle>;
    /** Ends every use of one holder; see {@link ImageCache.releaseHolder}. */
    static releaseHolder(holder: ImageHolder): Promise<number>;
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
    static inspect(reference: string): Promise<ImageDetail>;
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
    static remove(reference: string, opts?: RemoveOptions): Promise<void>;
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
    static prune(opts?: PruneOptions): Promise<ImagePruneReport>;
    /**
     * Bytes on disk by kind and per reference; see {@link ImageCache.diskUsage}.
     *
     * @throws {UnsupportedError} with the cloud backend.
     * @throws {InvalidArgumentError} when no default root exists.
     * @throws {NativeNotFoundError} when the native addon cannot be loaded.
     * @throws {CacheIndexError | IoError} when the cache cannot be read.
     */
    static diskUsage(): Promise<DiskUsage>;
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
    static bootDisk(reference: string): Promise<BootDisk>;
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
    static load(path: string, opts?: LoadOptions): Promise<ImageHandle[]>;
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
    static loadStdin(opts?: LoadOptions): Promise<ImageHandle[]>;
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
    static acquire(reference: string, holder: ImageHolder, opts?: AcquireOptions): Promise<ImageUse>;
    /**
     * Pulls an image from its registry into the default cache; see {@link ImageCache.pull}.
     *
     * @param reference - `name[:tag]` or `name@sha256:…`.
     * @param opts - See {@link PullOptions}.
     * @throws {ImageNotFoundError | PlatformNotFoundError | RegistryError | DigestMismatchError |
     *   AbortError | InvalidArgumentError} as {@link ImageCache.pull} does.
     * @throws {NativeNotFoundError} when the native addon cannot be loaded.
     */
    static pull(reference: string, opts?: PullOptions): Promise<ImageHandle>;
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
    static uses(reference?: string): Promise<ImageUse[]>;
}

/**
 * Every error code ocicache produces: the core's codes (`errorCodes()` of the native addon)
 * plus `NATIVE_NOT_FOUND` from the TypeScript loader. Codes are only ever added, never renamed.
 */
type ErrorCode = "IMAGE_NOT_FOUND" | "IMAGE_IN_USE" | "INVALID_REFERENCE" | "INVALID_ARCHIVE" | "DIGEST_MISMATCH" | "PLATFORM_NOT_FOUND" | "REFERENCE_REQUIRED" | "UNSUPPORTED" | "INVALID_ARGUMENT" | "CORRUPT_CACHE" | "IO" | "INDEX" | "INTERNAL" | "LIMIT_EXCEEDED" | "NO_SPACE" | "ABORTED" | "REGISTRY_UNAUTHORIZED" | "REGISTRY_DENIED" | "REGISTRY_RATE_LIMITED" | "REGISTRY_UNAVAILABLE" | "REGISTRY_TLS" | "NATIVE_NOT_FOUND";
/** Options every error constructor accepts. */
interface OcicacheErrorOptions {
    /** The underlying error, when there is one (a system or SQLite error, for example). */
    cause?: unknown;
}
/**
 * Base class of every error ocicache throws or rejects with. Branch on {@link OcicacheError.code}
 * (or on the subclass), never on the message.
 */
declare class OcicacheError extends Error {
    /**
     * The stable machine-readable code, such as `IMAGE_NOT_FOUND`. A code newer than this
     * package's {@link ErrorCode} list arrives as a plain string on a base `OcicacheError`.
     */
    readonly code: ErrorCode | (string & {});
    /** The underlying error, when there is one. */
    readonly cause?: unknown;
    /**
     * @param code - The stable error code.
     * @param message - Human-readable text (lowercase, no trailing period).
     * @param options - `cause`, when there is an underlying error.
     */
    constructor(code: ErrorCode | (string & {}), message: string, options?: OcicacheErrorOptions);
}
/**
 * The reference (or digest) is not in the cache, or (from a pull) not in its registry. Code
 * `IMAGE_NOT_FOUND`.
 */
declare class ImageNotFoundError extends OcicacheError {
    /** The reference as the caller spelled it. */
    readonly reference: string;
    /** From a pull: the registry host that has no such repository, tag or manifest; else null. */
    readonly registry: string | null;
    /** From a pull: the registry's own error code (`MANIFEST_UNKNOWN`, `NAME_UNKNOWN`), if any. */
    readonly registryCode: string | null;
    readonly code: "IMAGE_NOT_FOUND";
    /**
     * @param message - Human-readable text.
     * @param details - The reference looked up; for a pull, the registry and its error code.
     * @param options - `cause`, when there is one.
     */
    constructor(message: string, details: {
        reference: string;
        registry?: string | null;
        registryCode?: string | null;
    }, options?: OcicacheErrorOptions);
}
/** A sandbox or snapshot use pins the image and removal was not forced. Code `IMAGE_IN_USE`. */
declare class ImageInUseError extends OcicacheError {
    /** The reference as the caller spelled it. */
    readonly reference: string;
    /** Who holds the image, as `sandbox:<id>` or `snapshot:<id>`. */
    readonly holders: readonly string[];
    readonly code: "IMAGE_IN_USE";
    /**
     * @param message - Human-readable text.
     * @param details - The reference and its holders.
     * @param options - `cause`, when there is one.
     */
    constructor(message: string, details: {
        reference: string;
        holders: readonly string[];
    }, options?: OcicacheErrorOptions);
}
/** The text is not a valid image reference. Code `INVALID_REFERENCE`. */
declare class InvalidReferenceError extends OcicacheError {
    /** What the caller passed. */
    readonly input: string;
    readonly code: "INVALID_REFERENCE";
    /**
     * @param message - Human-readable text.
     * @param details - The rejected input.
     * @param options - `cause`, when there is one.
     */
    constructor(message: string, details: {
        input: string;
    }, options?: OcicacheErrorOptions);
}
/**
 * The archive or layout is malformed: bad tar or gzip, bad JSON, missing files, unsafe member
 * names, unknown media types. Code `INVALID_ARCHIVE`.
 */
declare class InvalidArchiveError extends OcicacheError {
    readonly code: "INVALID_ARCHIVE";
    /**
     * @param message - Human-readable text.
     * @param options - `cause`, when there is one.
     */
    constructor(message: string, options?: OcicacheErrorOptions);
}
/**
 * Content does not match the digest that names it (a blob, a config, or a layer's `diff_id`).
 * Code `DIGEST_MISMATCH`.
 */
declare class DigestMismatchError extends OcicacheError {
    /** What was checked, for example `layer 1 diff_id`. */
    readonly subject: string;
    /** The digest the metadata promised. */
    readonly expected: string;
    /** The digest of the bytes actually read. */
    readonly actual: string;
    readonly code: "DIGEST_MISMATCH";
    /**
     * @param message - Human-readable text.
     * @param details - What was checked and both digests.
     * @param options - `cause`, when there is one.
     */
    constructor(message: string, details: {
        subject: string;
        expected: string;
        actual: string;
    }, options?: OcicacheErrorOptions);
}
/** An image index has no manifest for the requested platform. Code `PLATFORM_NOT_FOUND`. */
declare class PlatformNotFoundError extends OcicacheError {
    /** The platform looked for, as `os/architecture[/variant]`. */
    readonly platform: string;
    /** Platforms the index offers. */
    readonly available: readonly string[];
    readonly code: "PLATFORM_NOT_FOUND";
    /**
     * @param message - Human-readable text.
     * @param details - The wanted and the available platforms.
     * @param options - `cause`, when there is one.
     */
    constructor(message: string, details: {
        platform: string;
        available: readonly string[];
    }, options?: OcicacheErrorOptions);
}
/**
 * An image in the archive names no repository and no `tag` option was given to name it.
 * Code `REFERENCE_REQUIRED`.
 */
declare class ReferenceRequiredError extends OcicacheError {
    /** What the archive holds (manifest digests and any names), for display. */
    readonly available: readonly string[];
    readonly code: "REFERENCE_REQUIRED";
    /**
     * @param message - Human-readable text.
     * @param details - What the archive holds.
     * @param options - `cause`, when there is one.
     */
    constructor(message: string, details: {
        available: readonly string[];
    }, options?: OcicacheErrorOptions);
}
/**
 * The operation is not supported by the configured backend (the cloud backend, in this
 * version) or for this input. Code `UNSUPPORTED`.
 */
declare class UnsupportedError extends OcicacheError {
    readonly code: "UNSUPPORTED";
    /**
     * @param message - Human-readable text.
     * @param options - `cause`, when there is one.
     */
    constructor(message: string, options?: OcicacheErrorOptions);
}
/** An argument has the wrong type, is out of range or is malformed. Code `INVALID_ARGUMENT`. */
declare class InvalidArgumentError extends OcicacheError {
    /** The argument's name. */
    readonly argument: string;
    readonly code: "INVALID_ARGUMENT";
    /**
     * @param message - Human-readable text.
     * @param details - The argument's name.
     * @param options - `cause`, when there is one.
     */
    constructor(message: string, details: {
        argument: string;
    }, options?: OcicacheErrorOptions);
}
/** Options of {@link CorruptCacheError}. */
interface CorruptCacheErrorOptions extends OcicacheErrorOptions {
    /** The file or folder of the cache at fault, when the error names one. */
    path?: string | null;
}
/**
 * The cache's index or an artifact contradicts the cache's invariants, or a folder or file of
 * the cache root is not what the cache keeps there (a symlink, which could redirect its writes
 * and deletes out of the root, or a folder where a file belongs). Code `CORRUPT_CACHE`.
 */
declare class CorruptCacheError extends OcicacheError {
    /** The file or folder of the cache at fault, or null when the error names none. */
    readonly path: string | null;
    readonly code: "CORRUPT_CACHE";
    /**
     * @param message - Human-readable text.
     * @param options - `cause`, when there is one, and the `path` at fault.
     */
    constructor(message: string, options?: CorruptCacheErrorOptions);
}
/** A filesystem operation failed. Code `IO`. */
declare class IoError extends OcicacheError {
    /** The path being read or written. */
    readonly path: string;
    /** The operating system's error number, when there is one. */
    readonly errno: number | null;
    readonly code: "IO";
    /**
     * @param message - Human-readable text.
     * @param details - The path and the OS error number.
     * @param options - `cause`: the operating system's error.
     */
    constructor(message: string, details: {
        path: string;
        errno?: number | null;
    }, options?: OcicacheErrorOptions);
}
/** The cache's SQLite index failed. Code `INDEX`. */
declare class CacheIndexError extends OcicacheError {
    readonly code: "INDEX";
    /**
     * @param message - Human-readable text.
     * @param options - `cause`: SQLite's error.
     */
    constructor(message: string, options?: OcicacheErrorOptions);
}
/** A bug in ocicache: an invariant broke or a worker panicked. Code `INTERNAL`. */
declare class InternalError extends OcicacheError {
    readonly code: "INTERNAL";
    /**
     * @param message - Human-readable text.
     * @param options - `cause`, when there is one.
     */
    constructor(message: string, options?: OcicacheErrorOptions);
}
/**
 * An operation would pass a limit set on it (by an option such as `maxUncompressedBytes`) and
 * stopped before it did, leaving the cache as it was. Code `LIMIT_EXCEEDED`. (A load stopped by
 * its default limit, the free space of the disk, rejects with {@link NoSpaceError} instead.)
 */
declare class LimitExceededError extends OcicacheError {
    /** The limit, in bytes. */
    readonly limit: number;
    /** What the limit bounds, for example `bytes written by the load`. */
    readonly subject: string;
    readonly code: "LIMIT_EXCEEDED";
    /**
     * @param message - Human-readable text.
     * @param details - The limit and what it bounds.
     * @param options - `cause`, when there is one.
     */
    constructor(message: string, details: {
        limit: number;
        subject: string;
    }, options?: OcicacheErrorOptions);
}
/**
 * The file system holding the cache is full, or the user's quota on it is exhausted (`ENOSPC`,
 * `EDQUOT`). Code `NO_SPACE`. A load that runs out of space leaves the cache as it was; free
 * space (for example with `prune`) and load again.
 */
declare class NoSpaceError extends OcicacheError {
    /** The path being written. */
    readonly path: string;
    /** The operating system's error number, when there is one. */
    readonly errno: number | null;
    readonly code: "NO_SPACE";
    /**
     * @param message - Human-readable text.
     * @param details - The path and the OS error number.
     * @param options - `cause`: the operating system's error.
     */
    constructor(message: string, details: {
        path: string;
        errno?: number | null;
    }, options?: OcicacheErrorOptions);
}
/**
 * The caller cancelled the operation through its `signal` before it started; nothing was read
 * or changed. Code `ABORTED`. The signal's `reason` is the `cause`.
 */
declare class AbortError extends OcicacheError {
    readonly code: "ABORTED";
    /**
     * @param message - Human-readable text.
     * @param options - `cause`: the signal's reason.
     */
    constructor(message: string, options?: OcicacheErrorOptions);
}
/** The base of the errors of a registry, naming it. */
declare class RegistryError extends OcicacheError {
    /** The registry host. */
    readonly registry: string;
    /**
     * @param code - The error's code.
     * @param message - Human-readable text.
     * @param details - The registry host.
     * @param options - `cause`, when there is one.
     */
    constructor(code: ErrorCode, message: string, details: {
        registry: string;
    }, options?: OcicacheErrorOptions);
}
/**
 * The registry (or its token server) refused the credentials, or wants credentials and none
 * were given or found in the Docker config. Code `REGISTRY_UNAUTHORIZED`.
 */
declare class RegistryUnauthorizedError extends RegistryError {
    readonly code: "REGISTRY_UNAUTHORIZED";
    /**
     * @param message - Human-readable text.
     * @param details - The registry host.
     * @param options - `cause`, when there is one.
     */
    constructor(message: string, details: {
        registry: string;
    }, options?: OcicacheErrorOptions);
}
/** The registry denied access to the repository (HTTP 403). Code `REGISTRY_DENIED`. */
declare class RegistryDeniedError extends RegistryError {
    /** The repository. */
    readonly repository: string;
    readonly code: "REGISTRY_DENIED";
    /**
     * @param message - Human-readable text.
     * @param details - The registry host and repository.
     * @param options - `cause`, when there is one.
     */
    constructor(message: string, details: {
        registry: string;
        repository: string;
    }, options?: OcicacheErrorOptions);
}
/**
 * The registry kept answering 429 Too Many Requests after the retries (or asked to wait longer
 * than a pull waits). Code `REGISTRY_RATE_LIMITED`.
 */
declare class RegistryRateLimitedError extends RegistryError {
    /** The registry's `Retry-After`, in seconds, when it sent one. */
    readonly retryAfterSeconds: number | null;
    readonly code: "REGISTRY_RATE_LIMITED";
    /**
     * @param message - Human-readable text.
     * @param details - The registry host and its retry time.
     * @param options - `cause`, when there is one.
     */
    constructor(message: string, details: {
        registry: string;
        retryAfterSeconds?: number | null;
    }, options?: OcicacheErrorOptions);
}
/**
 * The registry could not be reached, answered 5xx, or broke the connection, after the retries.
 * Code `REGISTRY_UNAVAILABLE`.
 */
declare class RegistryUnavailableError extends RegistryError {
    readonly code: "REGISTRY_UNAVAILABLE";
    /**
     * @param message - Human-readable text.
     * @param details - The registry host.
     * @param options - `cause`, when there is one.
     */
    constructor(message: string, details: {
        registry: string;
    }, options?: OcicacheErrorOptions);
}
/**
 * The registry's TLS certificate is not trusted (pass `caCerts`) or does not fit its host.
 * Code `REGISTRY_TLS`.
 */
declare class RegistryTlsError extends RegistryError {
    readonly code: "REGISTRY_TLS";
    /**
     * @param message - Human-readable text.
     * @param details - The registry host.
     * @param options - `cause`, when there is one.
     */
    constructor(message: string, details: {
        registry: string;
    }, options?: OcicacheErrorOptions);
}
/**
 * No native addon fits this platform, or the one that fits fails to load (a glibc older than
 * the prebuilt addons need, for example). Code `NATIVE_NOT_FOUND`. The message names the
 * platform, the C library and the package version, and says what to do: install on a supported
 * platform, or build the addon from source and point `OCICACHE_NATIVE_PATH` at it.
 */
declare class NativeNotFoundError extends OcicacheError {
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
    readonly code: "NATIVE_NOT_FOUND";
    /**
     * @param message - Human-readable text.
     * @param details - The paths tried; the platform, C library, version and supported targets
     *   (each defaults to unknown: `""`, `null`, `""` and none).
     * @param options - `cause`: the load failure, when a candidate existed but failed to load.
     */
    constructor(message: string, details: {
        tried: readonly string[];
        platform?: string;
        libc?: "glibc" | "musl" | null;
        version?: string;
        supported?: readonly string[];
    }, options?: OcicacheErrorOptions);
}
/** Every {@link ErrorCode}, in the core's order. */
declare const ERROR_CODES: readonly ErrorCode[];
/**
 * Maps an error from the native addon to its class by `code`: a known code gives its subclass
 * (with the structured fields the addon attached, such as `reference` or `holders`), an
 * unknown code the base {@link OcicacheError}. An error that is already an `OcicacheError`, or
 * has no string `code`, is returned unchanged. Messages are never parsed.
 *
 * @param err - Whatever a native call threw or rejected with.
 * @returns The error to throw in its place.
 */
declare function fromNative(err: unknown): Error;

export { AbortError, type AcquireOptions, type BootDisk, CacheIndexError, type CheckProblem, type CheckReport, CorruptCacheError, type CorruptCacheErrorOptions, DigestMismatchError, type DiskUsage, ERROR_CODES, type ErrorCode, type FetchError, Image, type ImageBackend, ImageCache, type ImageCacheOptions, type ImageCheck, type ImageConfigDetail, type ImageDetail, type ImageDiskUsage, ImageHandle, type ImageHistoryEntry, type ImageHolder, ImageInUseError, type ImageLayerDetail, ImageNotFoundError, type ImagePruneReport, ImageUse, InternalError, InvalidArchiveError, InvalidArgumentError, InvalidReferenceError, IoError, LimitExceededError, type ListOptions, type LoadOptions, type LockWaitEvent, NativeNotFoundError, NoSpaceError, OcicacheError, type OcicacheErrorOptions, PlatformNotFoundError, type PruneOptions, type PrunedReference, type PullAuth, type PullLayerRef, type PullOptions, type PullPolicy, type PullProgress, ReferenceRequiredError, RegistryDeniedError, RegistryError, RegistryRateLimitedError, RegistryTlsError, RegistryUnauthorizedError, RegistryUnavailableError, type RemoveOptions, type RepairOptions, type RepairPullOptions, UnsupportedError, type VerifyOptions, fromNative };
