//! Cancelling a running operation ([`Cancel`]): a flag the caller sets and the operation checks
//! at its reads ([`CancelReader`]) and before it commits. A cancelled load fails with
//! [`Error::Aborted`] and, like any failed load, leaves the cache as it was.

use std::io::{self, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::codec::wrap_error;
use crate::error::{Error, Result};

/// A cancellation flag, shared by its clones: [`Cancel::cancel`] on one is seen by all.
#[derive(Debug, Clone, Default)]
pub struct Cancel {
    flag: Arc<AtomicBool>,
}

impl Cancel {
    /// A flag not set.
    pub fn new() -> Self {
        Cancel::default()
    }

    /// Asks the operations that check this flag to stop. Idempotent; safe from any thread.
    pub fn cancel(&self) {
        self.flag.store(true, Ordering::Relaxed);
    }

    /// Whether [`Cancel::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.flag.load(Ordering::Relaxed)
    }

    /// [`Error::Aborted`] naming `what` once cancelled.
    pub fn check(&self, what: &str) -> Result<()> {
        if self.is_cancelled() {
            return Err(Error::Aborted {
                what: format!("{what} was cancelled"),
            });
        }
        Ok(())
    }
}

/// A reader that fails with [`Error::Aborted`] (carried, [`wrap_error`]) at its first read after
/// its flag is set.
pub struct CancelReader<R> {
    inner: R,
    cancel: Cancel,
}

impl<R: Read> CancelReader<R> {
    /// Wraps `inner`, checking `cancel` before every read.
    pub fn new(inner: R, cancel: Cancel) -> Self {
        CancelReader { inner, cancel }
    }
}

impl<R: Read> Read for CancelReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.cancel.check("the load").map_err(wrap_error)?;
        self.inner.read(buf)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]
mod tests {
    use super::*;

    #[test]
    fn a_cancelled_reader_fails_as_aborted() {
        let cancel = Cancel::new();
        let mut reader = CancelReader::new(&b"abc"[..], cancel.clone());
        let mut buf = [0u8; 1];
        assert_eq!(reader.read(&mut buf).unwrap(), 1);
        cancel.cancel();
        let err = reader.read(&mut buf).unwrap_err();
        assert_eq!(
            crate::codec::unwrap_error(err, std::path::Path::new("x")).code(),
            "ABORTED"
        );
        assert_eq!(cancel.check("x").unwrap_err().code(), "ABORTED");
    }
}
