//! `acquire`, `release` and `uses`: the sandboxes and snapshots that pin an image.

use super::{Cache, now_ms, resolve};
use crate::error::{Error, Result};
use crate::index::UseRow;
use crate::oci::Reference;
use crate::{AcquireOptions, Holder, ImageUse, use_from_row};

impl Cache {
    /// Records that `holder` uses `reference`: its manifest (and so its layers) stays until
    /// the use is released, even if its references are removed. Refreshes the reference's
    /// `last_used_at`. Acquiring twice for the same holder and manifest returns the same use.
    pub fn acquire(&self, reference: &str, holder: Holder) -> Result<ImageUse> {
        self.acquire_with(reference, holder, &AcquireOptions::default())
    }

    /// [`Cache::acquire`] with options: with `ttl_ms` the use stops pinning the image that long
    /// after this call, unless the holder acquires again (which renews it), so a holder that
    /// died does not pin the image forever. Expired uses are listed with `expired` set.
    ///
    /// Concurrent callers: the reference is resolved and the use recorded in one write
    /// transaction, so against a [`Cache::remove`] or [`Cache::prune`] in any process the use
    /// either comes first (and pins the manifest, its config and layers, and for prune its
    /// references) or fails with [`Error::ImageNotFound`]; a returned use always names a
    /// manifest that is in the index with its files.
    pub fn acquire_with(
        &self,
        reference: &str,
        holder: Holder,
        options: &AcquireOptions,
    ) -> Result<ImageUse> {
        self.local()?;
        let r = Reference::parse(reference)?;
        let now = now_ms();
        let mut row = new_use(&r, &holder, options, String::new(), now)?;
        // The reference is resolved in the transaction that records the use: a remove or
        // prune in another process either commits first (and this fails with ImageNotFound)
        // or sees the use.
        let row = self.index()?.add_use_with(|ix| {
            let rows = resolve(ix, &r, reference)?;
            row.manifest_digest = rows[0].manifest_digest.clone();
            let touch: Vec<String> = rows.into_iter().map(|row| row.reference).collect();
            Ok((row, touch))
        })?;
        use_from_row(row, now)
    }

    /// Ends a use. Releasing an unknown or already released use does nothing.
    pub fn release(&self, id: &str) -> Result<()> {
        self.local()?;
        let mut ix = self.index()?;
        ix.remove_use(id)?;
        Ok(())
    }

    /// Current uses, of one reference's manifest or of all, oldest first.
    pub fn uses(&self, reference: Option<&str>) -> Result<Vec<ImageUse>> {
        self.local()?;
        let ix = self.index()?;
        let manifest = match reference {
            Some(text) => {
                let r = Reference::parse(text)?;
                Some(resolve(&ix, &r, text)?.swap_remove(0).manifest_digest)
            }
            None => None,
        };
        let now = now_ms();
        ix.uses(manifest.as_deref())?
            .into_iter()
            .map(|row| use_from_row(row, now))
            .collect()
    }
}

/// The use `holder` makes of `r`'s `manifest_digest` from `now`, with a fresh id; checks the
/// holder and `ttl_ms`.
pub(super) fn new_use(
    r: &Reference,
    holder: &Holder,
    options: &AcquireOptions,
    manifest_digest: String,
    now: i64,
) -> Result<UseRow> {
    if options.ttl_ms == Some(0) {
        return Err(Error::InvalidArgument {
            name: "ttlMs".into(),
            reason: "must be positive".into(),
        });
    }
    let (kind, holder_id) = holder.parts();
    if holder_id.is_empty() {
        return Err(Error::InvalidArgument {
            name: "holder".into(),
            reason: "the holder id is empty".into(),
        });
    }
    Ok(UseRow {
        id: random_id()?,
        holder_kind: kind.into(),
        holder_id: holder_id.into(),
        reference: r.canonical(),
        manifest_digest,
        since: now,
        expires_at: options
            .ttl_ms
            .map(|ttl| now.saturating_add(i64::try_from(ttl).unwrap_or(i64::MAX))),
    })
}

/// Number of random bytes in a use id (128 bits: unguessable and collision-free in practice).
const USE_ID_BYTES: usize = 16;

fn random_id() -> Result<String> {
    let mut bytes = [0u8; USE_ID_BYTES];
    getrandom::fill(&mut bytes).map_err(|e| Error::internal(format!("no randomness: {e}")))?;
    Ok(hex::encode(bytes))
}
