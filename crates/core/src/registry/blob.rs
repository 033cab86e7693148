//! Layer blobs as streams ([`RegistryLayer`], a [`LayerSource`]): a download thread reads the
//! HTTP body in chunks into a small bounded queue, and the converter reads the queue
//! ([`BlobStream`]). A connection that breaks or stalls mid-blob is reopened with `Range` from
//! the byte reached (a registry that ignores `Range` and answers 200 has the bytes before it
//! skipped), up to the client's retry count. The reader waits on the queue in short steps, so a
//! cancelled pull stops within [`CANCEL_POLL`] even on a stalled socket; the download thread
//! then ends at its next read.
//!
//! Memory: at most [`QUEUE_CHUNKS`] chunks of [`CHUNK_BYTES`] are queued per layer, whatever
//! the blob's size (4 MiB for a 1 GiB layer, plus the converter's own buffers).

use std::io::{self, Read};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::time::Duration;

use super::client::SharedClient;
use crate::codec::wrap_error;
use crate::error::{Error, Result};
use crate::oci::{Descriptor, Digest};
use crate::source::{BlobReader, LayerSource};

/// Bytes read from the socket per chunk.
const CHUNK_BYTES: usize = 256 * 1024;
/// Chunks queued between the download thread and the converter.
const QUEUE_CHUNKS: usize = 16;
/// How often a reader waiting for bytes looks at its cancellation flag.
const CANCEL_POLL: Duration = Duration::from_millis(100);

/// A layer of an image in a registry.
pub(super) struct RegistryLayer {
    pub client: SharedClient,
    pub descriptor: Descriptor,
    pub diff_id: Digest,
}

impl LayerSource for RegistryLayer {
    fn descriptor(&self) -> &Descriptor {
        &self.descriptor
    }

    fn diff_id(&self) -> &Digest {
        &self.diff_id
    }

    fn open(&self) -> Result<BlobReader<'_>> {
        Ok(BlobReader {
            reader: Box::new(BlobStream::start(
                self.client.clone(),
                self.descriptor.clone(),
            )?),
            path: PathBuf::from(format!(
                "{}/{}@{}",
                self.client.registry(),
                self.client.repository(),
                self.descriptor.digest
            )),
        })
    }
}

/// A blob being downloaded, read front to back.
pub(super) struct BlobStream {
    queue: Receiver<Result<Vec<u8>>>,
    current: Vec<u8>,
    at: usize,
    client: SharedClient,
    done: bool,
}

impl BlobStream {
    /// Starts downloading `descriptor`'s blob.
    pub fn start(client: SharedClient, descriptor: Descriptor) -> Result<Self> {
        let (tx, rx) = sync_channel(QUEUE_CHUNKS);
        let pump_client = client.clone();
        std::thread::Builder::new()
            .name("ocicache-blob".into())
            .spawn(move || pump(&pump_client, &descriptor, &tx))
            .map_err(|e| Error::internal(format!("starting a download thread: {e}")))?;
        Ok(BlobStream {
            queue: rx,
            current: Vec::new(),
            at: 0,
            client,
            done: false,
        })
    }
}

impl Read for BlobStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.current.len() {
            if self.done {
                return Ok(0);
            }
            self.client.cancel.check("the pull").map_err(wrap_error)?;
            match self.queue.recv_timeout(CANCEL_POLL) {
                Ok(Ok(chunk)) => {
                    self.current = chunk;
                    self.at = 0;
                }
                Ok(Err(e)) => return Err(wrap_error(e)),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => self.done = true,
            }
        }
        let n = buf.len().min(self.current.len() - self.at);
        buf[..n].copy_from_slice(&self.current[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// The download thread: sends the blob's bytes in chunks, at most one byte more than its
/// descriptor's size (the converter reports a size mismatch); reopens a broken connection
/// with `Range`; sends the final error, if any, and ends. Ends early when the reader is gone
/// or the pull cancelled.
fn pump(client: &SharedClient, descriptor: &Descriptor, tx: &SyncSender<Result<Vec<u8>>>) {
    let path = format!("blobs/{}", descriptor.digest);
    let reference = format!(
        "{}/{}@{}",
        client.registry(),
        client.repository(),
        descriptor.digest
    );
    let limit = descriptor.size + 1;
    let mut offset = 0u64;
    let mut breaks = 0u32;
    loop {
        if client.cancel.is_cancelled() {
            return;
        }
        let answer = match client.get(&path, None, Some(offset), &reference) {
            Ok(a) => a,
            Err(e) => {
                let _ = tx.send(Err(e));
                return;
            }
        };
        let partial = answer.status() == ureq::http::StatusCode::PARTIAL_CONTENT;
        let mut body = answer.into_body().into_reader();
        // A registry that ignores `Range` sends every byte: skip those already sent.
        let mut skip = if partial { 0 } else { offset };
        let reached = offset;
        let failure = loop {
            let want = CHUNK_BYTES.min((limit - offset + skip) as usize);
            if want == 0 {
                return;
            }
            let mut chunk = vec![0u8; want];
            match body.read(&mut chunk) {
                Ok(0) if offset >= descriptor.size => return,
                Ok(0) => break format!("the connection closed at byte {offset}"),
                Ok(n) => {
                    chunk.truncate(n);
                    if skip > 0 {
                        let drop = (skip as usize).min(n);
                        chunk.drain(..drop);
                        skip -= drop as u64;
                    }
                    offset += chunk.len() as u64;
                    if !chunk.is_empty() && tx.send(Ok(chunk)).is_err() {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break e.to_string(),
            }
        };
        // A connection that moved the blob on is a fresh start: only breaks in a row count.
        breaks = if offset > reached { 1 } else { breaks + 1 };
        if breaks >= client.retry.attempts.max(1) {
            let _ = tx.send(Err(Error::RegistryUnavailable {
                registry: client.registry().to_owned(),
                reason: format!("downloading {}: {failure}", descriptor.digest),
            }));
            return;
        }
        if client
            .sleep(client.retry.base_delay * 2u32.saturating_pow(breaks - 1))
            .is_err()
        {
            return;
        }
    }
}

/// A shared reference to a layer source.
pub(super) fn layer(
    client: &SharedClient,
    descriptor: Descriptor,
    diff_id: Digest,
) -> Arc<dyn LayerSource> {
    Arc::new(RegistryLayer {
        client: client.clone(),
        descriptor,
        diff_id,
    })
}
