//! Progress of a pull or a load ([`Progress`]): events a caller's sink receives from the thread
//! doing the work, and the byte counter that reports a layer's reads ([`ProgressReader`]),
//! throttled to at most one event per [`DOWNLOAD_EVENT_INTERVAL`] per layer so that a sink is
//! never flooded and never slows the work (a sink must return at once: the binding's queues
//! the event for the JS thread and drops it when the queue is full).

use std::io::{self, Read};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::oci::{Descriptor, Digest};

/// The shortest time between two [`ProgressEvent::LayerDownload`] events of one layer (about
/// ten a second). The last byte is always reported.
pub const DOWNLOAD_EVENT_INTERVAL: Duration = Duration::from_millis(100);

/// Which layer an event is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerEvent {
    /// Position in the image, 0 being the bottom layer.
    pub index: usize,
    /// The layer's `diff_id`.
    pub diff_id: Digest,
    /// The layer blob's digest.
    pub digest: Digest,
    /// The layer blob's size in bytes.
    pub size: u64,
}

impl LayerEvent {
    /// The event of layer `index` with blob `descriptor` and `diff_id`.
    pub fn new(index: usize, descriptor: &Descriptor, diff_id: &Digest) -> Self {
        LayerEvent {
            index,
            diff_id: diff_id.clone(),
            digest: descriptor.digest.clone(),
            size: descriptor.size,
        }
    }
}

/// One step of a pull or load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProgressEvent {
    /// A pull asks the registry what the reference names.
    Resolving {
        /// The reference, canonical.
        reference: String,
    },
    /// A pull knows its manifest and config.
    Resolved {
        /// The manifest's digest.
        manifest_digest: Digest,
        /// Its platform, `os/architecture[/variant]`.
        platform: String,
        /// Its layer count.
        layers: usize,
        /// The layer blobs' bytes, compressed, as the manifest gives them.
        total_bytes: u64,
    },
    /// The layer's EROFS image is cached: nothing is read or downloaded for it.
    LayerCached(LayerEvent),
    /// Bytes of the layer's blob read (downloaded, for a pull) so far.
    LayerDownload {
        /// The layer.
        layer: LayerEvent,
        /// Bytes so far.
        bytes: u64,
        /// The blob's size.
        total: u64,
    },
    /// The layer's blob digest and `diff_id` matched.
    LayerVerified(LayerEvent),
    /// The layer's EROFS image is written (in the operation's folder under `tmp/`).
    LayerConverted {
        /// The layer.
        layer: LayerEvent,
        /// The EROFS image's size in bytes.
        erofs_bytes: u64,
    },
    /// A manifest's fsmeta and VMDK exist (built now or cached).
    Stitched {
        /// The manifest's digest.
        manifest_digest: Digest,
        /// The fsmeta image's size in bytes.
        fsmeta_bytes: u64,
        /// The VMDK descriptor's size in bytes.
        vmdk_bytes: u64,
    },
    /// Everything is published and recorded.
    Done {
        /// The manifest's digest.
        manifest_digest: Digest,
    },
}

/// Where events go: a function called from worker threads, which must return at once.
/// Clones share the function.
#[derive(Clone)]
pub struct Progress(Arc<dyn Fn(&ProgressEvent) + Send + Sync>);

impl Progress {
    /// A sink calling `f` with every event.
    pub fn new(f: impl Fn(&ProgressEvent) + Send + Sync + 'static) -> Self {
        Progress(Arc::new(f))
    }

    /// Hands `event` to the sink.
    pub fn emit(&self, event: ProgressEvent) {
        (self.0)(&event);
    }
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Progress")
    }
}

/// Hands `event` to `sink` when there is one.
pub fn emit(sink: Option<&Progress>, event: ProgressEvent) {
    if let Some(sink) = sink {
        sink.emit(event);
    }
}

/// A reader reporting the bytes read through it as [`ProgressEvent::LayerDownload`] events,
/// at most one per [`DOWNLOAD_EVENT_INTERVAL`], and one at the end of the stream.
pub struct ProgressReader<R> {
    inner: R,
    sink: Progress,
    layer: LayerEvent,
    bytes: u64,
    last: Option<Instant>,
}

impl<R: Read> ProgressReader<R> {
    /// Wraps `inner`, reporting on `sink` for `layer`.
    pub fn new(inner: R, sink: Progress, layer: LayerEvent) -> Self {
        ProgressReader {
            inner,
            sink,
            layer,
            bytes: 0,
            last: None,
        }
    }

    fn report(&mut self) {
        self.last = Some(Instant::now());
        self.sink.emit(ProgressEvent::LayerDownload {
            layer: self.layer.clone(),
            bytes: self.bytes,
            total: self.layer.size,
        });
    }
}

impl<R: Read> Read for ProgressReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bytes += n as u64;
        let due = self
            .last
            .is_none_or(|t| t.elapsed() >= DOWNLOAD_EVENT_INTERVAL);
        if (n == 0 && self.last.is_some_and(|_| self.bytes > 0)) || (n > 0 && due) {
            self.report();
        }
        Ok(n)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn download_events_are_throttled_and_the_last_byte_is_reported() {
        let events = Arc::new(Mutex::new(Vec::new()));
        let seen = events.clone();
        let sink = Progress::new(move |e: &ProgressEvent| {
            if let ProgressEvent::LayerDownload { bytes, .. } = e {
                seen.lock().unwrap().push(*bytes);
            }
        });
        let data = vec![7u8; 100_000];
        let d = Descriptor::new("x", Digest::of_bytes(&data), data.len() as u64);
        let layer = LayerEvent::new(0, &d, &d.digest);
        let mut reader = ProgressReader::new(&data[..], sink, layer);
        let mut buf = [0u8; 10];
        while reader.read(&mut buf).unwrap() > 0 {}
        let events = events.lock().unwrap();
        // 10,000 reads within far less than a second: the first and the last are reported.
        assert!(events.len() <= 3, "{events:?}");
        assert_eq!(events.first(), Some(&10));
        assert_eq!(events.last(), Some(&100_000));
    }
}
