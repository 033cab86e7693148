//! N-API binding of `ocicache-core`. It only converts: JS arguments into core types, core
//! results into `#[napi(object)]` structs, and core errors into JS errors whose `code` is the
//! core's stable code. Every operation runs on the blocking pool, off the JS thread; a panic
//! there is reported as an `INTERNAL` error and never crosses the boundary.
//!
//! Numbers cross as JS numbers: sizes in bytes, times in milliseconds since the epoch.

use std::path::PathBuf;
use std::sync::Arc;

use napi::bindgen_prelude::{Function, JsObjectValue, PromiseRaw, ToNapiValue};
use napi::threadsafe_function::ThreadsafeFunctionCallMode;
use napi::tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};
use napi::{Env, JsValue, Status};
use napi_derive::napi;
use ocicache_core as core;

mod convert;

use convert::*;

/// Runs `work` on the blocking pool and settles a promise with `convert(result)`, or rejects it
/// with a coded error.
fn spawn<'env, T, V, W, C>(env: &'env Env, work: W, convert: C) -> napi::Result<PromiseRaw<'env, V>>
where
    T: Send + 'static,
    V: ToNapiValue,
    W: FnOnce() -> core::Result<T> + Send + 'static,
    C: FnOnce(T) -> V + 'static,
{
    env.spawn_future_with_callback(
        async move { Ok(napi::bindgen_prelude::spawn_blocking(work).await) },
        move |env, joined| match joined {
            Ok(Ok(value)) => Ok(convert(value)),
            Ok(Err(error)) => Err(js_error(env, &error)),
            Err(join) => Err(js_error(
                env,
                &core::Error::internal(format!("worker failed: {join}")),
            )),
        },
    )
}

/// The chunks of one `listRows` or `diskUsageRows` call. The core writes them on the blocking
/// pool from the moment the call returns, into a queue that never blocks it (so it holds the
/// index no longer than one read, however slowly JS reads); `next` takes them in order. An
/// error ends the stream as the rejection of the `next` that reaches it.
#[napi]
pub struct NativeRowStream {
    chunks: Arc<napi::tokio::sync::Mutex<UnboundedReceiver<core::Result<Chunk>>>>,
}

impl NativeRowStream {
    /// Runs `write` on the blocking pool, handing it where the chunks go.
    fn start<W>(write: W) -> NativeRowStream
    where
        W: FnOnce(&mut dyn FnMut(Chunk) -> core::Result<()>) -> core::Result<()> + Send + 'static,
    {
        let (tx, rx) = unbounded_channel::<core::Result<Chunk>>();
        // Straight onto the blocking pool (no task to await it: one thread hop fewer for a
        // small list); a panic is caught here and ends the stream as an INTERNAL error.
        drop(napi::bindgen_prelude::spawn_blocking(move || {
            let mut send = |chunk: Chunk| {
                tx.send(Ok(chunk))
                    .map_err(|_| core::Error::internal("the rows' reader went away"))
            };
            let failed =
                match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| write(&mut send))) {
                    Ok(Ok(())) => return,
                    Ok(Err(error)) => error,
                    Err(panic) => {
                        core::Error::internal(format!("worker panicked: {}", panic_text(&*panic)))
                    }
                };
            // Nobody to tell when the reader went away.
            let _ = tx.send(Err(failed));
        }));
        NativeRowStream {
            chunks: Arc::new(napi::tokio::sync::Mutex::new(rx)),
        }
    }
}

#[napi]
impl NativeRowStream {
    /// The next chunk, in order; the last says so (`last`).
    #[napi(ts_return_type = "Promise<NativeRows>")]
    pub fn next<'env>(&self, env: &'env Env) -> napi::Result<PromiseRaw<'env, NativeRows>> {
        let chunks = self.chunks.clone();
        env.spawn_future_with_callback(
            async move { Ok(chunks.lock().await.recv().await) },
            move |env, got| match got {
                Some(Ok(chunk)) => Ok(native_rows(chunk)),
                Some(Err(error)) => Err(js_error(env, &error)),
                None => Err(js_error(
                    env,
                    &core::Error::internal("the rows ended before their last chunk"),
                )),
            },
        )
    }
}

/// The message of a caught panic.
fn panic_text(panic: &(dyn std::any::Any + Send)) -> &str {
    if let Some(s) = panic.downcast_ref::<&str>() {
        s
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s
    } else {
        "no message"
    }
}

/// Rows per chunk: `chunkRows` each if given (at least 1), else [`CHUNK_ROWS`].
fn chunk_rows_from(chunk_rows: Option<u32>) -> core::Result<ChunkRows> {
    match chunk_rows {
        None => Ok(CHUNK_ROWS),
        Some(0) => Err(core::Error::InvalidArgument {
            name: "chunkRows".into(),
            reason: "must be at least 1, got 0".into(),
        }),
        Some(n) => Ok(ChunkRows::fixed(n as usize)),
    }
}

/// A JS `Error` with `code`, the error's structured fields as properties, and `cause` when the
/// core error has a source.
fn js_error(env: &Env, error: &core::Error) -> napi::Error {
    let build = || -> napi::Result<napi::Error> {
        let mut obj =
            env.create_error(napi::Error::new(Status::GenericFailure, error.to_string()))?;
        obj.set_named_property("code", error.code())?;
        for (name, value) in error.details() {
            obj.set_named_property(name, env.to_js_value(&value)?)?;
        }
        if let Some(source) = std::error::Error::source(error) {
            let cause =
                env.create_error(napi::Error::new(Status::GenericFailure, source.to_string()))?;
            obj.set_named_property("cause", cause)?;
        }
        Ok(napi::Error::from(obj.to_unknown()))
    };
    build().unwrap_or_else(|e| e)
}

/// Progress events queued for the JS thread at most; when the queue is full an event is
/// dropped rather than waited for, so a slow listener never slows a pull.
const PROGRESS_QUEUE: usize = 256;

/// A core progress sink calling `listener` on the JS thread, without blocking.
fn progress_sink(
    listener: Option<Function<'_, NativePullProgress, ()>>,
) -> napi::Result<Option<core::progress::Progress>> {
    let Some(call) = listener
        .map(non_blocking::<_, PROGRESS_QUEUE>)
        .transpose()?
    else {
        return Ok(None);
    };
    Ok(Some(core::progress::Progress::new(move |event| {
        call(progress_event(event))
    })))
}

/// Lock-wait events queued for the JS thread at most (one per lock waited for; more are
/// dropped rather than waited for).
const LOCK_WAIT_QUEUE: usize = 16;

/// A core lock-wait sink calling `listener` on the JS thread, without blocking.
fn lock_wait_sink(
    listener: Option<Function<'_, NativeLockWait, ()>>,
) -> napi::Result<Option<core::store::LockWait>> {
    let Some(call) = listener
        .map(non_blocking::<_, LOCK_WAIT_QUEUE>)
        .transpose()?
    else {
        return Ok(None);
    };
    Ok(Some(core::store::LockWait::new(move |event| {
        call(lock_wait_event(event))
    })))
}

/// `listener` as a function any thread may call: each value is queued for the JS thread (at
/// most `QUEUE`; a full queue drops the value, a closing environment ignores it) and the call
/// never waits.
fn non_blocking<T, const QUEUE: usize>(
    listener: Function<'_, T, ()>,
) -> napi::Result<impl Fn(T) + Send + Sync + 'static>
where
    T: napi::bindgen_prelude::JsValuesTupleIntoVec + Send + 'static,
{
    let tsfn = listener
        .build_threadsafe_function()
        .callee_handled::<false>()
        .weak::<true>()
        .max_queue_size::<QUEUE>()
        .build()?;
    Ok(move |value: T| {
        let _ = tsfn.call(value, ThreadsafeFunctionCallMode::NonBlocking);
    })
}

/// Every error code the core can produce (public API: codes are only ever added).
#[napi]
pub fn error_codes() -> Vec<String> {
    core::ERROR_CODES.iter().map(|c| c.to_string()).collect()
}

/// The cache root used when none is given: `$OCICACHE_HOME`, else the platform cache folder.
#[napi]
pub fn default_root() -> Option<String> {
    core::store::default_root().map(|p| p.to_string_lossy().into_owned())
}

/// A way to stop a running load or pull: after `cancel()`, it rejects with `ABORTED` at its
/// next read (within a tenth of a second when it waits on standard input or a stalled
/// download) and leaves the cache as it was.
#[napi]
pub struct NativeCancel {
    inner: core::cancel::Cancel,
}

#[napi]
impl NativeCancel {
    /// A token not cancelled.
    #[napi(constructor)]
    #[allow(
        clippy::new_without_default,
        reason = "a JS constructor, not a Rust API"
    )]
    pub fn new() -> Self {
        NativeCancel {
            inner: core::cancel::Cancel::new(),
        }
    }

    /// Cancels the loads and pulls given this token (idempotent).
    #[napi]
    pub fn cancel(&self) {
        self.inner.cancel();
    }
}

/// One cache root (or a remote backend), shared by every call made through it.
#[napi]
pub struct NativeCache {
    inner: Arc<core::Cache>,
}

#[napi]
impl NativeCache {
    /// Opens a cache; nothing is created or read until the first operation. `onLockWait` is
    /// called (on the JS thread, soon after) whenever an operation is about to wait for one of
    /// the cache's locks because another process (or another operation of this one) holds it.
    #[napi(factory)]
    pub fn open(
        env: &Env,
        options: Option<NativeCacheOptions>,
        on_lock_wait: Option<Function<'_, NativeLockWait, ()>>,
    ) -> napi::Result<Self> {
        let options = options.unwrap_or_default();
        let lock_wait = lock_wait_sink(on_lock_wait)?;
        let opts = core::CacheOptions {
            root: options.root.map(PathBuf::from),
            backend: match options.backend {
                None => None,
                Some(b) => Some(backend_from(b).map_err(|e| js_error(env, &e))?),
            },
        };
        core::Cache::open(opts)
            .map(|c| match lock_wait {
                Some(wait) => c.with_lock_wait(wait),
                None => c,
            })
            .map(|c| NativeCache { inner: Arc::new(c) })
            .map_err(|e| js_error(env, &e))
    }

    /// The cache root folder.
    #[napi(getter)]
    pub fn root(&self) -> String {
        self.inner.root().to_string_lossy().into_owned()
    }

    /// Imports an archive or OCI layout folder; one handle per reference. `maxUncompressedBytes`
    /// bounds the bytes the load writes (a whole number of at least 1; absent: the core's
    /// default); `cancel` stops it (`ABORTED`, the cache as it was).
    #[napi(ts_return_type = "Promise<NativeImageHandle[]>")]
    pub fn load<'env>(
        &self,
        env: &'env Env,
        path: String,
        options: Option<NativeLoadOptions>,
        cancel: Option<&NativeCancel>,
        on_progress: Option<Function<'_, NativePullProgress, ()>>,
    ) -> napi::Result<PromiseRaw<'env, Vec<NativeImageHandle>>> {
        let cache = self.inner.clone();
        let mut opts =
            load_options_from(options.unwrap_or_default(), cancel.map(|c| c.inner.clone()))
                .map_err(|e| js_error(env, &e))?;
        opts.progress = progress_sink(on_progress)?;
        spawn(
            env,
            move || cache.load(&PathBuf::from(path), &opts),
            |v| v.into_iter().map(handle).collect(),
        )
    }

    /// Imports the archive on the process's standard input (file descriptor 0), read in the
    /// core front to back, once, never copied whole; like `load` otherwise.
    #[napi(ts_return_type = "Promise<NativeImageHandle[]>")]
    pub fn load_stdin<'env>(
        &self,
        env: &'env Env,
        options: Option<NativeLoadOptions>,
        cancel: Option<&NativeCancel>,
        on_progress: Option<Function<'_, NativePullProgress, ()>>,
    ) -> napi::Result<PromiseRaw<'env, Vec<NativeImageHandle>>> {
        let cache = self.inner.clone();
        let mut opts =
            load_options_from(options.unwrap_or_default(), cancel.map(|c| c.inner.clone()))
                .map_err(|e| js_error(env, &e))?;
        opts.progress = progress_sink(on_progress)?;
        spawn(
            env,
            move || cache.load_stdin(&opts),
            |v| v.into_iter().map(handle).collect(),
        )
    }

    /// Pulls a reference from its registry (see the core's `Cache::pull`); `cancel` stops it
    /// (`ABORTED`, nothing published), `onProgress` receives its events (throttled, dropped
    /// rather than waited for).
    #[napi(ts_return_type = "Promise<NativeImageHandle>")]
    pub fn pull<'env>(
        &self,
        env: &'env Env,
        reference: String,
        options: Option<NativePullOptions>,
        cancel: Option<&NativeCancel>,
        on_progress: Option<Function<'_, NativePullProgress, ()>>,
    ) -> napi::Result<PromiseRaw<'env, NativeImageHandle>> {
        let cache = self.inner.clone();
        let mut opts =
            pull_options_from(options.unwrap_or_default()).map_err(|e| js_error(env, &e))?;
        opts.cancel = cancel.map(|c| c.inner.clone());
        opts.progress = progress_sink(on_progress)?;
        spawn(env, move || cache.pull(&reference, &opts), handle)
    }

    /// `acquire` that pulls first when the reference is not cached, pinning in the same index
    /// transaction as the pulled reference.
    #[napi(ts_return_type = "Promise<NativeImageUse>")]
    #[allow(
        clippy::too_many_arguments,
        reason = "a JS method's positional arguments"
    )]
    pub fn acquire_pulling<'env>(
        &self,
        env: &'env Env,
        reference: String,
        holder: NativeHolder,
        options: Option<NativeAcquireOptions>,
        pull: Option<NativePullOptions>,
        cancel: Option<&NativeCancel>,
        on_progress: Option<Function<'_, NativePullProgress, ()>>,
    ) -> napi::Result<PromiseRaw<'env, NativeImageUse>> {
        let cache = self.inner.clone();
        let holder = holder_from(holder).map_err(|e| js_error(env, &e))?;
        let opts =
            acquire_options_from(options.unwrap_or_default()).map_err(|e| js_error(env, &e))?;
        let mut pull =
            pull_options_from(pull.unwrap_or_default()).map_err(|e| js_error(env, &e))?;
        pull.cancel = cancel.map(|c| c.inner.clone());
        pull.progress = progress_sink(on_progress)?;
        spawn(
            env,
            move || cache.acquire_pulling(&reference, holder, &opts, &pull),
            image_use,
        )
    }

    /// The handle of one reference.
    #[napi(ts_return_type = "Promise<NativeImageHandle>")]
    pub fn get<'env>(
        &self,
        env: &'env Env,
        reference: String,
    ) -> napi::Result<PromiseRaw<'env, NativeImageHandle>> {
        let cache = self.inner.clone();
        spawn(env, move || cache.get(&reference), handle)
    }

    /// Every reference, newest first, as a stream of `NativeRows` chunks (see `list_rows` and
    /// `src/internal/rows.ts`); with `all`, then the manifests only uses hold. A list can hold
    /// 100,000 rows: they are written as the core reads them into, per chunk of `chunkRows`
    /// (default 1024 rows, growing to 8192), one string of JSON strings and one typed array of
    /// numbers, far cheaper than an N-API object per row; JS reads a chunk while the core
    /// writes the next (bench/prune.mjs). Chunks change how the rows cross, not which rows are read.
    #[napi]
    pub fn list_rows(
        &self,
        env: Env,
        all: Option<bool>,
        chunk_rows: Option<u32>,
    ) -> napi::Result<NativeRowStream> {
        let cache = self.inner.clone();
        let options = core::ListOptions {
            all: all.unwrap_or(false),
        };
        let chunk_rows = chunk_rows_from(chunk_rows).map_err(|e| js_error(&env, &e))?;
        Ok(NativeRowStream::start(move |send| {
            list_rows(&cache, &options, Rows::new(chunk_rows, send))
        }))
    }

    /// Handle, config and layers of one reference.
    #[napi(ts_return_type = "Promise<NativeImageDetail>")]
    pub fn inspect<'env>(
        &self,
        env: &'env Env,
        reference: String,
    ) -> napi::Result<PromiseRaw<'env, NativeImageDetail>> {
        let cache = self.inner.clone();
        spawn(env, move || cache.inspect(&reference), detail)
    }

    /// Removes one reference and what only it used.
    #[napi(ts_return_type = "Promise<NativePruneReport>")]
    pub fn remove<'env>(
        &self,
        env: &'env Env,
        reference: String,
        force: bool,
    ) -> napi::Result<PromiseRaw<'env, NativePruneReport>> {
        let cache = self.inner.clone();
        spawn(env, move || cache.remove(&reference, force), prune_report)
    }

    /// Removes every unpinned reference the options select, then what nothing names; without
    /// options, everything no use pins. A dry run reports without changing anything.
    #[napi(ts_return_type = "Promise<NativePruneReport>")]
    pub fn prune<'env>(
        &self,
        env: &'env Env,
        options: Option<NativePruneOptions>,
    ) -> napi::Result<PromiseRaw<'env, NativePruneReport>> {
        let cache = self.inner.clone();
        let opts =
            prune_options_from(options.unwrap_or_default()).map_err(|e| js_error(env, &e))?;
        spawn(env, move || cache.prune_with(&opts), prune_report)
    }

    /// Bytes on disk by kind and per reference, streamed as `NativeRows` chunks like
    /// `listRows` (see `disk_usage_rows`).
    #[napi]
    pub fn disk_usage_rows(
        &self,
        env: Env,
        chunk_rows: Option<u32>,
    ) -> napi::Result<NativeRowStream> {
        let cache = self.inner.clone();
        let chunk_rows = chunk_rows_from(chunk_rows).map_err(|e| js_error(&env, &e))?;
        Ok(NativeRowStream::start(move |send| {
            disk_usage_rows(&cache, Rows::new(chunk_rows, send))
        }))
    }

    /// Pins a reference's manifest for a sandbox or snapshot, optionally for `ttlMs` only.
    #[napi(ts_return_type = "Promise<NativeImageUse>")]
    pub fn acquire<'env>(
        &self,
        env: &'env Env,
        reference: String,
        holder: NativeHolder,
        options: Option<NativeAcquireOptions>,
    ) -> napi::Result<PromiseRaw<'env, NativeImageUse>> {
        let cache = self.inner.clone();
        let holder = holder_from(holder).map_err(|e| js_error(env, &e))?;
        let opts =
            acquire_options_from(options.unwrap_or_default()).map_err(|e| js_error(env, &e))?;
        spawn(
            env,
            move || cache.acquire_with(&reference, holder, &opts),
            image_use,
        )
    }

    /// The VMDK, fsmeta and layer image paths a VM boots a reference from.
    #[napi(ts_return_type = "Promise<NativeBootDisk>")]
    pub fn boot_disk<'env>(
        &self,
        env: &'env Env,
        reference: String,
    ) -> napi::Result<PromiseRaw<'env, NativeBootDisk>> {
        let cache = self.inner.clone();
        spawn(env, move || cache.boot_disk(&reference), boot_disk)
    }

    /// Checks the files of one reference's image, or of all, quick or `full`.
    #[napi(ts_return_type = "Promise<NativeCheckReport>")]
    pub fn verify<'env>(
        &self,
        env: &'env Env,
        reference: Option<String>,
        full: bool,
    ) -> napi::Result<PromiseRaw<'env, NativeCheckReport>> {
        let cache = self.inner.clone();
        spawn(
            env,
            move || cache.verify(reference.as_deref(), &core::VerifyOptions { full }),
            check_report,
        )
    }

    /// Verifies fully, then rebuilds damaged fsmeta and VMDK files, fetches damaged layers
    /// again from the registry a pulled image came from (through `pull`; none without it), and
    /// marks images whose damaged layers stay broken; with `dryRun`, only reports.
    #[napi(ts_return_type = "Promise<NativeCheckReport>")]
    pub fn repair<'env>(
        &self,
        env: &'env Env,
        reference: Option<String>,
        dry_run: bool,
        pull: Option<NativeRegistryAccess>,
    ) -> napi::Result<PromiseRaw<'env, NativeCheckReport>> {
        let cache = self.inner.clone();
        let refetch = pull
            .map(registry_options_from)
            .transpose()
            .map_err(|e| js_error(env, &e))?;
        let options = core::RepairOptions { dry_run, refetch };
        spawn(
            env,
            move || cache.repair(reference.as_deref(), &options),
            check_report,
        )
    }

    /// Points tag reference `target` at the manifest `source` names.
    #[napi(ts_return_type = "Promise<NativeImageHandle>")]
    pub fn tag<'env>(
        &self,
        env: &'env Env,
        source: String,
        target: String,
    ) -> napi::Result<PromiseRaw<'env, NativeImageHandle>> {
        let cache = self.inner.clone();
        spawn(env, move || cache.tag(&source, &target), handle)
    }

    /// Ends every use of one holder; resolves to how many there were.
    #[napi(ts_return_type = "Promise<number>")]
    pub fn release_holder<'env>(
        &self,
        env: &'env Env,
        holder: NativeHolder,
    ) -> napi::Result<PromiseRaw<'env, u32>> {
        let cache = self.inner.clone();
        let holder = holder_from(holder).map_err(|e| js_error(env, &e))?;
        spawn(env, move || cache.release_holder(&holder), |n| n)
    }

    /// Ends a use (idempotent).
    #[napi(ts_return_type = "Promise<void>")]
    pub fn release<'env>(&self, env: &'env Env, id: String) -> napi::Result<PromiseRaw<'env, ()>> {
        let cache = self.inner.clone();
        spawn(env, move || cache.release(&id), |()| ())
    }

    /// Current uses, of one reference or all.
    #[napi(ts_return_type = "Promise<NativeImageUse[]>")]
    pub fn uses<'env>(
        &self,
        env: &'env Env,
        reference: Option<String>,
    ) -> napi::Result<PromiseRaw<'env, Vec<NativeImageUse>>> {
        let cache = self.inner.clone();
        spawn(
            env,
            move || cache.uses(reference.as_deref()),
            |v| v.into_iter().map(image_use).collect(),
        )
    }
}
