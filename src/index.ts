// ocicache: a local OCI image cache with a typed API over a Rust core.
//
// `Image` runs every operation on a default cache; `ImageCache.open` opens one at a chosen root.
// Every failure is an `OcicacheError` subclass with a stable `code`.

export {
  Image,
  ImageCache,
  ImageHandle,
  ImageUse,
  type AcquireOptions,
  type BootDisk,
  type DiskUsage,
  type ImageBackend,
  type ImageCacheOptions,
  type ImageConfigDetail,
  type ImageDetail,
  type ImageDiskUsage,
  type ImageHolder,
  type ImageLayerDetail,
  type ImagePruneReport,
  type LoadOptions,
  type PruneOptions,
  type PrunedReference,
  type RemoveOptions,
} from "./image";

export {
  AbortError,
  CacheIndexError,
  CorruptCacheError,
  type CorruptCacheErrorOptions,
  DigestMismatchError,
  ERROR_CODES,
  ImageInUseError,
  ImageNotFoundError,
  InternalError,
  InvalidArchiveError,
  InvalidArgumentError,
  InvalidReferenceError,
  IoError,
  LimitExceededError,
  NativeNotFoundError,
  NoSpaceError,
  OcicacheError,
  PlatformNotFoundError,
  ReferenceRequiredError,
  UnsupportedError,
  fromNative,
  type ErrorCode,
  type OcicacheErrorOptions,
} from "./errors";
