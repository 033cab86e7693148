//! Layer blobs ([`RegistryLayer`], a [`LayerSource`]), downloaded by a pool of their own
//! ([`Downloads`]) into partial files under `tmp/` ([`crate::store::Partials`]) and read by the
//! converter as they grow ([`PartialReader`]).
//!
//! Two pools: conversion is CPU-bound and runs on the ingest's pool (one thread per core);
//! downloads wait on the network and run on at most [`RegistryOptions::concurrent_downloads`]
//! threads ([`DOWNLOADS_AT_ONCE`] by default), started when the ingest says which layers it
//! will open ([`LayerSource::want`]), so they run ahead of the conversions instead of waiting
//! for a converter each. A download never waits for its reader: its bytes go to disk.
//!
//! Resume: a download first locks its blob's partial file (waiting, cancellably, while another
//! pull in any process holds it), then continues from the partial's length with `Range`. The
//! converter reads the blob from its first byte: the bytes already in the partial file are read
//! from disk (a replay, at disk speed), then the bytes as they arrive; so the digest and
//! `diff_id` the converter computes cover the whole blob whatever was resumed, and a partial
//! holding the whole blob is converted without any request. A registry that ignores `Range`
//! and answers 200 sends the blob from its start: the bytes the partial already holds are read
//! and skipped, and the rest appended (the digest check at the end decides whether the two
//! agreed). A connection that breaks or stalls mid-blob is reopened the same way, up to the
//! client's retry count.
//!
//! What a pull leaves ([`Downloads::finish`]): after a commit, the partials of the image's
//! layers are deleted (they are layer images now). A pull stopped by cancellation or by a
//! registry that failed in a way that may pass (unavailable, rate limited) keeps its partials
//! for the next pull; any other failure (a digest mismatch, a limit) deletes them. A killed pull
//! keeps them, and prune reclaims a partial only once no pull holds it and it is a day old.
//!
//! Every byte a download writes is charged to the pull's write budget. The reader waits for
//! bytes in short steps, so a cancelled pull stops within [`CANCEL_POLL`] even on a stalled
//! socket; the download thread then ends at its next read.
//!
//! [`RegistryOptions::concurrent_downloads`]: super::RegistryOptions::concurrent_downloads

use std::collections::VecDeque;
use std::io::{self, Read};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use super::client::SharedClient;
use crate::budget::WriteBudget;
use crate::cancel::Cancel;
use crate::codec::wrap_error;
use crate::error::{Error, Result};
use crate::oci::{Descriptor, Digest};
use crate::source::{BlobReader, LayerSource};
use crate::store::{PartialBlob, Partials};

/// Blob downloads one pull runs at once by default: enough to keep a link busy through the
/// per-request latency of a registry or CDN (most serve one connection at well under the
/// link's speed), few enough not to be throttled as a crowd of connections (Docker's
/// `max-concurrent-downloads` default is 3, containerd's 3, skopeo's 6).
pub const DOWNLOADS_AT_ONCE: usize = 4;

/// Bytes read from the socket per chunk (and written to the partial file at a time).
const CHUNK_BYTES: usize = 256 * 1024;
/// How often a reader waiting for bytes looks at its cancellation flag.
const CANCEL_POLL: Duration = Duration::from_millis(100);

/// The blob downloads of one pull: the pool, the partial files and the budget they write to.
pub struct Downloads {
    pool: Arc<Pool>,
}

impl std::fmt::Debug for Downloads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Downloads")
            .field("limit", &self.pool.limit)
            .finish()
    }
}

struct Pool {
    partials: Partials,
    budget: WriteBudget,
    limit: usize,
    queue: Mutex<Queue>,
    /// Every layer blob of the pull, downloaded or not.
    all: Mutex<Vec<Arc<Download>>>,
    /// Set by [`Downloads::finish`]: the pull is over, and whether its partials stay.
    over: Mutex<Option<bool>>,
    /// Whether `over` is set (read without the lock by download threads).
    stopped: AtomicBool,
}

#[derive(Default)]
struct Queue {
    waiting: VecDeque<Arc<Download>>,
    running: usize,
}

/// One blob's download: its partial file once locked, how far it got, how it ended.
struct Download {
    client: SharedClient,
    descriptor: Descriptor,
    queued: AtomicBool,
    state: Mutex<State>,
    grown: Condvar,
}

#[derive(Default)]
struct State {
    partial: Option<Arc<PartialBlob>>,
    /// Bytes of the blob in the partial file.
    written: u64,
    end: End,
}

#[derive(Default)]
enum End {
    #[default]
    Running,
    Complete,
    /// The error, until a reader takes it.
    Failed(Option<Error>),
}

impl Downloads {
    /// The downloads of one pull into `partials`, charged to `budget`, at most `limit` at once
    /// (at least one).
    pub fn new(partials: Partials, budget: WriteBudget, limit: usize) -> Downloads {
        Downloads {
            pool: Arc::new(Pool {
                partials,
                budget,
                limit: limit.max(1),
                queue: Mutex::default(),
                all: Mutex::default(),
                over: Mutex::new(None),
                stopped: AtomicBool::new(false),
            }),
        }
    }

    /// A layer of the pull, downloaded through `client` when the ingest wants it.
    pub(super) fn layer(
        &self,
        client: &SharedClient,
        descriptor: Descriptor,
        diff_id: Digest,
    ) -> Arc<dyn LayerSource> {
        let download = Arc::new(Download {
            client: client.clone(),
            descriptor,
            queued: AtomicBool::new(false),
            state: Mutex::default(),
            grown: Condvar::new(),
        });
        lock(&self.pool.all).push(download.clone());
        Arc::new(RegistryLayer {
            pool: self.pool.clone(),
            download,
            diff_id,
        })
    }

    /// Ends the pull's downloads, after its commit (or failure): running ones stop at their
    /// next chunk, queued ones never start. After a commit (`outcome` is `Ok`) every partial of
    /// the image's layer blobs is deleted, also one a killed pull left for a layer that was
    /// cached meanwhile (unless another pull holds it). After a failure that may pass
    /// ([`Error::Aborted`], [`Error::RegistryUnavailable`], [`Error::RegistryRateLimited`])
    /// the partials stay for the next pull (an empty one goes); after any other they are
    /// deleted. Idempotent.
    pub fn finish<T>(&self, outcome: &Result<T>) -> Result<()> {
        let keep = match outcome {
            Ok(_) => false,
            Err(e) => matches!(
                e,
                Error::Aborted { .. }
                    | Error::RegistryUnavailable { .. }
                    | Error::RegistryRateLimited { .. }
            ),
        };
        {
            let mut over = lock(&self.pool.over);
            if over.is_some() {
                return Ok(());
            }
            *over = Some(keep);
            self.pool.stopped.store(true, Ordering::SeqCst);
        }
        let all: Vec<Arc<Download>> = lock(&self.pool.all).clone();
        let mut first_error = None;
        for download in all {
            let partial = lock(&download.state).partial.take();
            let result = match partial {
                Some(p) => settle(&p, keep),
                None if outcome.is_ok() => self
                    .pool
                    .partials
                    .discard_idle(&download.descriptor.digest)
                    .map(drop),
                None => Ok(()),
            };
            if let Err(e) = result {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

impl Drop for Downloads {
    fn drop(&mut self) {
        // A pull that returned without finishing (a panic unwinding): stop, keep the partials.
        let _ = self.finish::<()>(&Err(Error::Aborted {
            what: "the pull".into(),
        }));
    }
}

/// What a pull that is over does with a partial it holds: deletes it unless it `keep`s it; an
/// empty one always goes.
fn settle(partial: &PartialBlob, keep: bool) -> Result<()> {
    if !keep || partial.bytes_held()? == 0 {
        partial.remove()?;
    }
    Ok(())
}

/// Locks `m`, also when a thread panicked holding it (the data is counters and handles).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Pool {
    /// Queues `download` (once) and starts a download thread if fewer than `limit` run.
    fn enqueue(self: &Arc<Pool>, download: &Arc<Download>) {
        if download.queued.swap(true, Ordering::SeqCst) {
            return;
        }
        let mut queue = lock(&self.queue);
        queue.waiting.push_back(download.clone());
        if queue.running >= self.limit {
            return;
        }
        queue.running += 1;
        let pool = self.clone();
        let started = std::thread::Builder::new()
            .name("ocicache-download".into())
            .spawn(move || pool.work());
        if let Err(e) = started {
            queue.running -= 1;
            if queue.running == 0 {
                for d in queue.waiting.drain(..) {
                    d.end(Err(Error::internal(format!(
                        "starting a download thread: {e}"
                    ))));
                }
            }
        }
    }

    /// A download thread: runs queued downloads until the queue is empty.
    fn work(&self) {
        loop {
            let next = {
                let mut queue = lock(&self.queue);
                match queue.waiting.pop_front() {
                    Some(d) => d,
                    None => {
                        queue.running -= 1;
                        return;
                    }
                }
            };
            let result = self.run(&next);
            next.end(result);
        }
    }

    /// Whether the pull is over.
    fn stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }

    /// The reason a download stops early: the pull was cancelled, or is over.
    fn stop_check(&self, cancel: &Cancel) -> Result<()> {
        cancel.check("the pull")?;
        if self.stopped() {
            return Err(Error::Aborted {
                what: "the pull is over".into(),
            });
        }
        Ok(())
    }

    /// One download: lock the partial, then fetch what it lacks.
    fn run(&self, d: &Download) -> Result<()> {
        let cancel = &d.client.cancel;
        let partial = self
            .partials
            .open(&d.descriptor.digest, || self.stop_check(cancel))?;
        let mut held = partial.bytes_held()?;
        if held > d.descriptor.size {
            // Longer than the blob: not a prefix of it.
            partial.clear()?;
            held = 0;
        }
        let partial = Arc::new(partial);
        {
            // Under the state lock, so that `finish` either sees the partial or this sees
            // that the pull is over, and settles it itself.
            let mut state = lock(&d.state);
            if let Some(keep) = *lock(&self.over) {
                return settle(&partial, keep);
            }
            state.partial = Some(partial.clone());
            state.written = held;
        }
        d.grown.notify_all();
        self.fetch(d, &partial, held)
    }

    /// Appends the blob's bytes from `offset` to `partial`, reopening a broken connection with
    /// `Range` from the byte reached; a registry that answers 200 has the bytes before it
    /// skipped.
    fn fetch(&self, d: &Download, partial: &PartialBlob, mut offset: u64) -> Result<()> {
        let (client, size) = (&d.client, d.descriptor.size);
        let path = format!("blobs/{}", d.descriptor.digest);
        let reference = format!(
            "{}/{}@{}",
            client.registry(),
            client.repository(),
            d.descriptor.digest
        );
        let mut chunk = vec![0u8; CHUNK_BYTES];
        let mut breaks = 0u32;
        while offset < size {
            self.stop_check(&client.cancel)?;
            let answer = client.get(&path, None, Some(offset), &reference)?;
            let ranged = answer.status() == ureq::http::StatusCode::PARTIAL_CONTENT;
            let mut body = answer.into_body().into_reader();
            // A registry that ignores `Range` sends every byte: skip those the partial holds.
            let mut skip = if ranged { 0 } else { offset };
            let reached = offset;
            let failure = loop {
                let want = (CHUNK_BYTES as u64).min(size - offset + skip) as usize;
                if want == 0 {
                    break None;
                }
                self.stop_check(&client.cancel)?;
                match body.read(&mut chunk[..want]) {
                    Ok(0) => break Some(format!("the connection closed at byte {offset}")),
                    Ok(n) => {
                        let dropped = skip.min(n as u64) as usize;
                        skip -= dropped as u64;
                        let bytes = &chunk[dropped..n];
                        if bytes.is_empty() {
                            continue;
                        }
                        self.budget.charge(bytes.len() as u64)?;
                        partial.write_at(bytes, offset)?;
                        offset += bytes.len() as u64;
                        d.grew(offset);
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => break Some(e.to_string()),
                }
            };
            let Some(failure) = failure else {
                break;
            };
            // A connection that moved the blob on is a fresh start: only breaks in a row count.
            breaks = if offset > reached { 1 } else { breaks + 1 };
            if breaks >= client.retry.attempts.max(1) {
                return Err(Error::RegistryUnavailable {
                    registry: client.registry().to_owned(),
                    reason: format!("downloading {}: {failure}", d.descriptor.digest),
                });
            }
            client.sleep(client.retry.base_delay * 2u32.saturating_pow(breaks - 1))?;
        }
        Ok(())
    }
}

impl Download {
    /// Records that the partial holds `written` bytes of the blob, and wakes its reader.
    fn grew(&self, written: u64) {
        lock(&self.state).written = written;
        self.grown.notify_all();
    }

    /// Records how the download ended, and wakes its reader.
    fn end(&self, result: Result<()>) {
        lock(&self.state).end = match result {
            Ok(()) => End::Complete,
            Err(e) => End::Failed(Some(e)),
        };
        self.grown.notify_all();
    }
}

/// A layer of an image in a registry.
struct RegistryLayer {
    pool: Arc<Pool>,
    download: Arc<Download>,
    diff_id: Digest,
}

impl LayerSource for RegistryLayer {
    fn descriptor(&self) -> &Descriptor {
        &self.download.descriptor
    }

    fn diff_id(&self) -> &Digest {
        &self.diff_id
    }

    fn want(&self) {
        self.pool.enqueue(&self.download);
    }

    fn open(&self) -> Result<BlobReader<'_>> {
        self.pool.enqueue(&self.download);
        let client = &self.download.client;
        Ok(BlobReader {
            reader: Box::new(PartialReader {
                download: self.download.clone(),
                at: 0,
                cancel: client.cancel.clone(),
            }),
            path: PathBuf::from(format!(
                "{}/{}@{}",
                client.registry(),
                client.repository(),
                self.download.descriptor.digest
            )),
        })
    }
}

/// A blob read front to back from its partial file while it downloads: the bytes the file
/// holds, then, waiting in short steps (cancellable), each chunk as it is written; the end of
/// the blob once the download completed, or the download's error.
struct PartialReader {
    download: Arc<Download>,
    at: u64,
    cancel: Cancel,
}

impl Read for PartialReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let d = &self.download;
        let (partial, available) = {
            let mut state = lock(&d.state);
            loop {
                self.cancel.check("the pull").map_err(wrap_error)?;
                let now = &mut *state;
                match (&now.partial, &mut now.end) {
                    (Some(p), _) if now.written > self.at => break (p.clone(), now.written),
                    (_, End::Complete) => return Ok(0),
                    (_, End::Failed(e)) => {
                        let e = e.take().unwrap_or_else(|| Error::Aborted {
                            what: "the download failed".into(),
                        });
                        return Err(wrap_error(e));
                    }
                    _ => {
                        state = d
                            .grown
                            .wait_timeout(state, CANCEL_POLL)
                            .unwrap_or_else(|e| e.into_inner())
                            .0;
                    }
                }
            }
        };
        let want = buf.len().min((available - self.at) as usize);
        let n = partial
            .read_at(&mut buf[..want], self.at)
            .map_err(|e| wrap_error(Error::io(partial.path().to_owned(), e)))?;
        if n == 0 {
            // Shorter than the download wrote: changed under the cache.
            return Err(wrap_error(Error::io(
                partial.path().to_owned(),
                io::ErrorKind::UnexpectedEof.into(),
            )));
        }
        self.at += n as u64;
        Ok(n)
    }
}
