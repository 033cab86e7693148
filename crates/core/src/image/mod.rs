//! The façade the bindings call: [`Cache`], one cache root (or a remote backend), with one
//! file per kind of operation. Each method parses its arguments, opens the root and the index,
//! and hands the work to the module that owns it.
//!
//! ```text
//! image/
//!   mod.rs     Cache: open, get, list, inspect; the index connection and reference resolution
//!   types.rs   options, handles, details and reports; index rows to those
//!   load.rs    load: archive sources into the ingest pipeline (crate::ingest)
//!   pull.rs    pull: registry sources (crate::registry) into the same pipeline; acquire
//!              that pulls and pins in one transaction
//!   gc.rs      remove, prune, disk_usage: plans in the index, sweeps in crate::gc
//!   uses.rs    acquire, release, uses
//!   boot.rs    boot_disk, rebuilding a missing fsmeta or VMDK
//!   check.rs   verify, repair, and the quick check of boot_disk (over crate::check)
//! ```
//!
//! Where the operation to come goes: `save` beside `load` (a `save.rs` writing an archive from
//! the cache through `crate::archive`); `repair` fetches a damaged layer again through the
//! pull's path (`pull.rs`, by the digest of the manifest and its recorded origin).
//!
//! Locking: `load` holds the cache's GC lock shared from staging until its index rows are
//! committed; `remove` and `prune` hold it exclusive, so they never delete a file a load in
//! any process is about to name, and never see a half-written `tmp/` folder as garbage. A load
//! also holds the artifact locks of every digest it names (see [`crate::ingest`]) from its
//! first look at the disk until it committed or took back its files. Within a process the index
//! connection is behind a mutex and held only for SQL (and, in a load, while the files are
//! published inside the transaction). Every lock is tried before it is waited for; a cache
//! opened [`Cache::with_lock_wait`] is told when an operation is about to wait.
//!
//! Crash safety: files are published before index rows name them (a load's rows commit after
//! its files are published), and index rows are deleted before their files; a killed process
//! leaves orphan files at worst, which the next prune reclaims. A load that fails without being
//! killed leaves nothing: it deletes the files it published before its commit failed.

mod boot;
mod check;
mod gc;
mod load;
mod pull;
mod types;
mod uses;

pub use pull::{PullOptions, PullPolicy};
pub use types::*;

use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::budget::WriteBudget;
use crate::error::{Error, Result};
use crate::index::{HandleRow, Index};
use crate::oci::{ConfigDescription, Reference};
use crate::store::{self, Layout, LockWait, Root};

/// One cache root (or a remote backend).
pub struct Cache {
    layout: Layout,
    backend: Backend,
    index: Mutex<Option<Index>>,
    lock_wait: Option<LockWait>,
}

impl Cache {
    /// Opens a cache. Nothing is created or read until the first operation.
    pub fn open(options: CacheOptions) -> Result<Self> {
        let backend = options.backend.unwrap_or_else(Backend::from_env);
        let root = match options.root {
            Some(root) => root,
            None => store::default_root().ok_or_else(|| Error::InvalidArgument {
                name: "root".into(),
                reason: "no OCICACHE_HOME and no platform cache folder; pass a root".into(),
            })?,
        };
        Ok(Cache {
            layout: Layout::new(root),
            backend,
            index: Mutex::new(None),
            lock_wait: None,
        })
    }

    /// This cache, telling `wait` whenever an operation is about to block on one of the cache's
    /// cross-process locks (`locks/gc.lock`, the artifact locks) because another holder has it:
    /// a prune or remove waits for loads and pulls in flight, a load or pull for a prune, and
    /// two loads of the same layer for each other. The lock is tried first, so nothing is told
    /// when it is free; `wait` runs on the thread that is about to block.
    pub fn with_lock_wait(mut self, wait: LockWait) -> Self {
        self.lock_wait = Some(wait);
        self
    }

    /// The cache root.
    pub fn root(&self) -> &Path {
        self.layout.root()
    }

    /// The backend.
    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// The handle of `reference`: any spelling of a reference (a digest reference matches a
    /// cached manifest that some reference, or some use, of the same repository names), a
    /// bare manifest digest `sha256:<hex>`, or an unambiguous prefix of one (at least
    /// [`MIN_DIGEST_PREFIX`] hex digits, with or without `sha256:`, as `ls` prints them).
    ///
    /// Errors: [`Error::ImageNotFound`]; [`Error::InvalidReference`] for malformed text or a
    /// prefix of several manifests (the message lists them).
    pub fn get(&self, reference: &str) -> Result<ImageHandle> {
        self.local()?;
        let Some(ix) = self.existing_index()? else {
            return Err(not_found(reference));
        };
        Ok(handle_for(resolve(&ix, reference)?))
    }

    /// Every cached reference, newest first. A cache root that does not exist is empty (and
    /// is not created).
    pub fn list(&self) -> Result<Vec<ImageHandle>> {
        self.list_with(&ListOptions::default())
    }

    /// [`Cache::list`] with options: with `all`, also the manifests no reference names that a
    /// use holds (`tagged` false, named `repository@digest` after the use), after the tagged.
    pub fn list_with(&self, options: &ListOptions) -> Result<Vec<ImageHandle>> {
        let mut out = Vec::new();
        self.list_each_with(options, |h| {
            out.push(h.to_handle());
            Ok(())
        })?;
        Ok(out)
    }

    /// [`Cache::list`] without building a value per reference: each is handed to `each` as the
    /// index reads it, newest first, borrowed from the row (for a caller that serializes the
    /// list at once, such as the binding's one JSON buffer per call). An error of `each` stops
    /// the listing and is returned. Holds the cache's index connection throughout.
    pub fn list_each(&self, each: impl FnMut(&ImageHandleRef<'_>) -> Result<()>) -> Result<()> {
        self.list_each_with(&ListOptions::default(), each)
    }

    /// [`Cache::list_with`] as [`Cache::list_each`] hands it out: the tagged references first
    /// (`tagged` true), then, with `all`, the manifests only uses hold.
    pub fn list_each_with(
        &self,
        options: &ListOptions,
        mut each: impl FnMut(&ImageHandleRef<'_>) -> Result<()>,
    ) -> Result<()> {
        self.local()?;
        let Some(ix) = self.existing_index()? else {
            return Ok(());
        };
        list_tagged(&ix, &mut each)?;
        if options.all {
            for (digest, refs) in ix.untagged_in_use()? {
                for name in untagged_names(&digest, &refs) {
                    if let Some(row) = ix.manifest_row(&digest, &name)? {
                        each(&ImageHandleRef {
                            reference: crate::oci::familiar_from_canonical(&row.reference),
                            manifest_digest: &row.manifest_digest,
                            architecture: &row.architecture,
                            os: &row.os,
                            variant: row.variant.as_deref(),
                            layer_count: row.layer_count as u32,
                            size_bytes: row.disk_size.map(|s| s as u64),
                            created_at: row.created_at,
                            last_used_at: row.last_used_at,
                            tagged: false,
                        })?;
                    }
                }
            }
        }
        Ok(())
    }

    /// The handle, config and layers (bottom to top) of `reference` (any form [`Cache::get`]
    /// takes). The config's runtime fields come from the index; its `ExposedPorts`, `Volumes`,
    /// `created`, `author` and `history` from the config blob, read now (left out when the
    /// blob cannot be read or a field has the wrong type, see [`ConfigDescription`]).
    pub fn inspect(&self, reference: &str) -> Result<ImageDetail> {
        self.local()?;
        let Some(ix) = self.existing_index()? else {
            return Err(not_found(reference));
        };
        let handle = handle_for(resolve(&ix, reference)?);
        let manifest = handle.manifest_digest.clone().unwrap_or_default();
        let mut config = ix.config_of(&manifest)?.map(config_detail).transpose()?;
        let layers = ix
            .layers_of(&manifest)?
            .into_iter()
            .map(layer_detail)
            .collect();
        let origin = ix.artifacts_of(&manifest)?.and_then(|a| a.origin);
        drop(ix);
        if let Some(config) = &mut config {
            let root = self.open_root()?;
            if let Some(d) = describe_config(&root, &config.digest) {
                config.describe(d);
            }
        }
        Ok(ImageDetail {
            handle,
            config,
            layers,
            origin,
        })
    }

    fn local(&self) -> Result<()> {
        match &self.backend {
            Backend::Local => Ok(()),
            Backend::Cloud { url } => Err(Error::Unsupported {
                what: format!(
                    "the cloud backend ({}) is not available in this version; configure the local backend",
                    if url.is_empty() { "no url" } else { url }
                ),
            }),
        }
    }

    /// The cache root opened as directory handles (folders created, none a symlink), with the
    /// index opened first when it was not: an operation refuses a corrupt cache before it
    /// writes anything.
    fn open_root(&self) -> Result<Root> {
        let root = Root::open(&self.layout)?.with_lock_wait(self.lock_wait.clone());
        drop(self.index()?);
        Ok(root)
    }

    /// What a load or pull may write: `limit` bytes when given, else the free space of the
    /// cache's file system (see [`WriteBudget::free_space`]).
    fn write_budget(&self, limit: Option<u64>) -> Result<WriteBudget> {
        match limit {
            Some(limit) => Ok(WriteBudget::new(limit)),
            None => WriteBudget::free_space(self.layout.root()),
        }
    }

    /// The index when the cache exists (its `index.db` is there), without creating anything:
    /// for read-only operations, which report a cache that does not exist as empty.
    fn existing_index(&self) -> Result<Option<IndexGuard<'_>>> {
        let opened = self
            .index
            .lock()
            .map_err(|_| Error::internal("index mutex poisoned"))?
            .is_some();
        if opened || std::fs::symlink_metadata(self.layout.index_db()).is_ok() {
            return self.index().map(Some);
        }
        Ok(None)
    }

    /// The index, opened (and the layout created) on first use.
    fn index(&self) -> Result<IndexGuard<'_>> {
        let mut guard = self
            .index
            .lock()
            .map_err(|_| Error::internal("index mutex poisoned"))?;
        if guard.is_none() {
            let root = Root::open(&self.layout)?;
            *guard = Some(Index::open(&root.index_db()?)?);
        }
        Ok(IndexGuard(guard))
    }
}

/// The descriptive fields of the config blob `digest` (see [`ConfigDescription`]), read
/// beneath the root's `blobs/` handle: `None` when the blob is missing, not a regular file,
/// over the size a load accepts, unreadable or not a JSON object. Inspect then shows only
/// the fields the index keeps (`ocicache check` reports a damaged blob). Takes no lock: a
/// prune that deletes the blob meanwhile leaves the fields out too.
fn describe_config(root: &Root, digest: &str) -> Option<ConfigDescription> {
    use std::io::Read;
    let digest = crate::oci::Digest::parse(digest).ok()?;
    let entry = root.blob(&digest);
    let file = entry.folder().open_file(entry.name()).ok()?;
    let limit = crate::archive::MAX_METADATA_SIZE;
    let mut bytes = Vec::new();
    file.into_std()
        .take(limit + 1)
        .read_to_end(&mut bytes)
        .ok()?;
    if bytes.len() as u64 > limit {
        return None;
    }
    ConfigDescription::parse(&bytes).ok()
}

/// The open index of a [`Cache`], locked for this thread.
struct IndexGuard<'a>(MutexGuard<'a, Option<Index>>);

impl std::ops::Deref for IndexGuard<'_> {
    type Target = Index;
    fn deref(&self) -> &Index {
        // Invariant: `Cache::index` fills the option before building the guard.
        self.0
            .as_ref()
            .expect("index opened before the guard is built")
    }
}

impl std::ops::DerefMut for IndexGuard<'_> {
    fn deref_mut(&mut self) -> &mut Index {
        self.0
            .as_mut()
            .expect("index opened before the guard is built")
    }
}

/// Fewest hex digits of a manifest digest prefix that resolves (what `ls` prints, as
/// `docker images` does).
pub const MIN_DIGEST_PREFIX: usize = 12;
/// Hex digits of a full sha256 digest.
const DIGEST_HEX: usize = 64;

/// What a caller's reference names: the rows (at least one, all of one manifest) and, for a
/// digest reference, the familiar name its handle carries.
pub(crate) struct Resolved {
    /// One row for a tag reference; every reference of the repository pointing at the
    /// manifest for a digest reference; every reference of the manifest for a bare digest or
    /// prefix. A manifest only uses hold has one row of its own (`tagged` false).
    pub rows: Vec<HandleRow>,
    /// The familiar form of a digest reference (`busybox@sha256:...`).
    label: Option<String>,
    /// The canonical form of a reference (`None` for a digest or prefix).
    pub canonical: Option<String>,
}

impl Resolved {
    /// The manifest named.
    pub fn manifest(&self) -> &str {
        &self.rows[0].manifest_digest
    }
}

/// Resolves `input` (see [`Cache::get`] for the forms) in `ix`.
pub(crate) fn resolve(ix: &Index, input: &str) -> Result<Resolved> {
    if let Some((prefix, explicit)) = digest_prefix(input) {
        let found = ix.manifests_with_prefix(&prefix)?;
        match found.as_slice() {
            [one] => {
                let rows = manifest_rows(ix, one)?;
                if !rows.is_empty() {
                    return Ok(Resolved {
                        rows,
                        label: None,
                        canonical: None,
                    });
                }
                if explicit {
                    return Err(not_found(input));
                }
            }
            [] if explicit => return Err(not_found(input)),
            [] => {}
            many => {
                return Err(Error::InvalidReference {
                    input: input.to_owned(),
                    reason: format!(
                        "the prefix matches {} manifests: {}",
                        many.len(),
                        many.join(", ")
                    ),
                });
            }
        }
    }
    let r = Reference::parse(input)?;
    let rows = match r.digest() {
        Some(d) => {
            let (name, digest) = (r.name(), d.to_string());
            let mut rows = ix.find_by_digest(&name, &digest)?;
            if rows.is_empty() && ix.used_in_repo(&name, &digest)? {
                rows.extend(ix.manifest_row(&digest, &r.canonical())?);
            }
            rows
        }
        None => ix.get(&r.canonical())?.into_iter().collect(),
    };
    if rows.is_empty() {
        return Err(not_found(input));
    }
    Ok(Resolved {
        rows,
        label: r.digest().map(|_| r.familiar()),
        canonical: Some(r.canonical()),
    })
}

/// `sha256:<hex>` or a bare run of hex digits, of [`MIN_DIGEST_PREFIX`] to 64 digits, as the
/// prefix of a stored digest, and whether it was spelt with `sha256:` (a bare run of hex
/// digits may also be a repository name).
fn digest_prefix(input: &str) -> Option<(String, bool)> {
    let (hex, explicit) = match input.strip_prefix("sha256:") {
        Some(hex) => (hex, true),
        None => (input, false),
    };
    let ok = (MIN_DIGEST_PREFIX..=DIGEST_HEX).contains(&hex.len())
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    ok.then(|| (format!("sha256:{hex}"), explicit))
}

/// The rows of a manifest: its references, or when it has none and uses hold it, one row
/// named after the first use's repository (`repository@digest`).
fn manifest_rows(ix: &Index, digest: &str) -> Result<Vec<HandleRow>> {
    let rows = ix.refs_of(digest)?;
    if !rows.is_empty() {
        return Ok(rows);
    }
    let refs: Vec<String> = ix
        .uses(Some(digest))?
        .into_iter()
        .map(|u| u.reference)
        .collect();
    Ok(match untagged_names(digest, &refs).into_iter().next() {
        Some(name) => ix.manifest_row(digest, &name)?.into_iter().collect(),
        None => Vec::new(),
    })
}

/// The canonical names (`repository@digest`) of an untagged manifest, one per repository its
/// uses acquired it through, in the order of `use_refs`.
pub(crate) fn untagged_names(digest: &str, use_refs: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for r in use_refs {
        let Ok(parsed) = Reference::parse(r) else {
            continue;
        };
        let name = format!("{}@{digest}", parsed.name());
        if !out.contains(&name) {
            out.push(name);
        }
    }
    out
}

/// The tagged references of `ix`, newest first, handed to `each` borrowed from the rows.
fn list_tagged(ix: &Index, mut each: impl FnMut(&ImageHandleRef<'_>) -> Result<()>) -> Result<()> {
    let mut digest = [0u8; crate::index::DIGEST_TEXT_LEN];
    ix.list_each(|row| {
        each(&ImageHandleRef {
            reference: crate::oci::familiar_from_canonical(row.reference),
            manifest_digest: crate::index::digest_text_in(row.manifest_digest, &mut digest)?,
            architecture: row.architecture,
            os: row.os,
            variant: row.variant,
            layer_count: row.layer_count as u32,
            size_bytes: row.disk_size.map(|s| s as u64),
            created_at: row.created_at,
            last_used_at: row.last_used_at,
            tagged: true,
        })
    })
}

/// [`Error::ImageNotFound`] for `input`, or [`Error::InvalidReference`] when `input` is no
/// reference at all (so a malformed reference is reported as such on an empty cache too).
pub(crate) fn not_found(input: &str) -> Error {
    if digest_prefix(input).is_none()
        && let Err(e) = Reference::parse(input)
    {
        return e;
    }
    Error::ImageNotFound {
        reference: input.to_owned(),
    }
}

fn handle_for(resolved: Resolved) -> ImageHandle {
    let rows = resolved.rows;
    let created = rows.iter().map(|row| row.created_at).max();
    let used = rows.iter().filter_map(|row| row.last_used_at).max();
    let mut handle = handle_from_row(
        rows.into_iter()
            .next()
            .expect("resolve returns at least one row"),
    );
    if let Some(label) = resolved.label {
        handle.reference = label;
        handle.created_at = created;
        handle.last_used_at = used;
    }
    handle
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::{ConfigRow, NewBlob, NewImage};

    fn image(manifest: &str, reference: &str) -> NewImage {
        let config = format!("sha256:{}", "c".repeat(64));
        let blob = |digest: &str, kind| NewBlob {
            digest: digest.into(),
            size: 1,
            kind,
        };
        NewImage {
            blobs: vec![blob(manifest, "manifest"), blob(&config, "config")],
            config: ConfigRow {
                digest: config,
                env: None,
                cmd: None,
                entrypoint: None,
                working_dir: None,
                user: None,
                labels: None,
                stop_signal: None,
            },
            manifest_digest: manifest.into(),
            media_type: "m".into(),
            architecture: "amd64".into(),
            os: "linux".into(),
            variant: None,
            total_size: 0,
            disk_size: 0,
            fsmeta_size: None,
            vmdk_size: None,
            fsmeta_hash: None,
            vmdk_hash: None,
            layers: Vec::new(),
            references: vec![reference.into()],
            origin: None,
        }
    }

    /// A prefix two manifests share is refused with both named; one more digit resolves.
    #[test]
    fn an_ambiguous_digest_prefix_lists_the_candidates() {
        let dir = tempfile::tempdir().unwrap();
        let mut ix = Index::open(&dir.path().join("i.db")).unwrap();
        let shared = "abcdef012345";
        let one = format!("sha256:{shared}0{}", "1".repeat(51));
        let two = format!("sha256:{shared}9{}", "2".repeat(51));
        ix.insert_image(&image(&one, "docker.io/library/one:latest"), 1)
            .unwrap();
        ix.insert_image(&image(&two, "docker.io/library/two:latest"), 1)
            .unwrap();
        for input in [shared.to_owned(), format!("sha256:{shared}")] {
            match resolve(&ix, &input) {
                Err(Error::InvalidReference { input: got, reason }) => {
                    assert_eq!(got, input);
                    assert!(reason.contains(&one) && reason.contains(&two), "{reason}");
                }
                Err(e) => panic!("expected InvalidReference, got {e}"),
                Ok(_) => panic!("expected InvalidReference, got rows"),
            }
        }
        let found = resolve(&ix, &format!("{shared}9")).unwrap();
        assert_eq!(found.manifest(), two);
        assert_eq!(found.rows[0].reference, "docker.io/library/two:latest");
        // A bare run of hex digits that is no prefix is read as a repository name.
        assert_eq!(
            resolve(&ix, "0123456789ab").err().map(|e| e.code()),
            Some("IMAGE_NOT_FOUND")
        );
    }
}
