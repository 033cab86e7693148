//! `acquire`, `release` and `uses`: the sandboxes and snapshots that pin an image.

use super::{Cache, now_ms, resolve};
use crate::error::{Error, Result};
use crate::index::UseRow;
use crate::{AcquireOptions, Holder, ImageHandle, ImageUse, use_from_row};

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
        let now = now_ms();
        let mut row = new_use(&holder, options, String::new(), String::new(), now)?;
        // The reference is resolved in the transaction that records the use: a remove or
        // prune in another process either commits first (and this fails with ImageNotFound)
        // or sees the use.
        let row = self.index()?.add_use_with(|ix| {
            let resolved = resolve(ix, reference)?;
            row.manifest_digest = resolved.manifest().to_owned();
            let canonical = resolved.canonical.clone();
            let rows = resolved.rows;
            // A digest or prefix is recorded as the manifest's first reference.
            row.reference = canonical.unwrap_or_else(|| rows[0].reference.clone());
            let touch: Vec<String> = rows
                .into_iter()
                .filter(|row| row.tagged)
                .map(|row| row.reference)
                .collect();
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

    /// Ends every use of `holder` (a sandbox that stopped, a snapshot deleted); returns how
    /// many there were. Idempotent.
    pub fn release_holder(&self, holder: &Holder) -> Result<u32> {
        self.local()?;
        let (kind, id) = holder.parts();
        let Some(mut ix) = self.existing_index()? else {
            return Ok(0);
        };
        Ok(ix.remove_uses_of(kind, id)? as u32)
    }

    /// Points the tag reference `target` at the manifest `source` names (any form
    /// [`Cache::get`] takes), like `docker tag`: a `target` that named another manifest is
    /// re-pointed (which may leave that one to the next prune). Returns the new handle.
    ///
    /// Errors: [`Error::ImageNotFound`] for `source`; [`Error::InvalidReference`] when
    /// `target` is malformed or a digest reference.
    pub fn tag(&self, source: &str, target: &str) -> Result<ImageHandle> {
        self.local()?;
        let t = crate::oci::Reference::parse(target)?;
        if t.digest().is_some() {
            return Err(Error::InvalidReference {
                input: target.to_owned(),
                reason: "a tag cannot name a digest".into(),
            });
        }
        self.index()?.add_tag_with(now_ms(), |ix| {
            Ok((t.canonical(), resolve(ix, source)?.manifest().to_owned()))
        })?;
        self.get(&t.canonical())
    }

    /// Current uses, of one reference's manifest or of all, oldest first.
    pub fn uses(&self, reference: Option<&str>) -> Result<Vec<ImageUse>> {
        self.local()?;
        let Some(ix) = self.existing_index()? else {
            return match reference {
                Some(text) => Err(super::not_found(text)),
                None => Ok(Vec::new()),
            };
        };
        let manifest = match reference {
            Some(text) => Some(resolve(&ix, text)?.manifest().to_owned()),
            None => None,
        };
        let now = now_ms();
        ix.uses(manifest.as_deref())?
            .into_iter()
            .map(|row| use_from_row(row, now))
            .collect()
    }
}

/// The use `holder` makes of `manifest_digest` (named by the canonical `reference`) from
/// `now`, with a fresh id; checks the holder and `ttl_ms`.
pub(super) fn new_use(
    holder: &Holder,
    options: &AcquireOptions,
    reference: String,
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
        reference,
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
