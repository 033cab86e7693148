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
//! ```
//!
//! Where the operations to come go: `verify`/`repair` beside `gc.rs` (a
//! `check.rs` over `crate::check`, which compares the index with the disk as `crate::gc` does),
//! and `save` beside `load` (a `save.rs` writing an archive from the cache through
//! `crate::archive`).
//!
//! Locking: `load` holds the cache's GC lock shared from staging until its index rows are
//! committed; `remove` and `prune` hold it exclusive, so they never delete a file a load in
//! any process is about to name, and never see a half-written `tmp/` folder as garbage. A load
//! also holds the artifact locks of every digest it names (see [`crate::ingest`]) from its
//! first look at the disk until it committed or took back its files. Within a process the index
//! connection is behind a mutex and held only for SQL (and, in a load, while the files are
//! published inside the transaction).
//!
//! Crash safety: files are published before index rows name them (a load's rows commit after
//! its files are published), and index rows are deleted before their files; a killed process
//! leaves orphan files at worst, which the next prune reclaims. A load that fails without being
//! killed leaves nothing: it deletes the files it published before its commit failed.

mod boot;
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

use crate::error::{Error, Result};
use crate::index::{HandleRow, Index};
use crate::oci::Reference;
use crate::store::{self, Layout, Root};

/// One cache root (or a remote backend).
pub struct Cache {
    layout: Layout,
    backend: Backend,
    index: Mutex<Option<Index>>,
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
        })
    }

    /// The cache root.
    pub fn root(&self) -> &Path {
        self.layout.root()
    }

    /// The backend.
    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// The handle of `reference` (any spelling; a digest reference matches a cached manifest
    /// that some reference of the same repository points to).
    pub fn get(&self, reference: &str) -> Result<ImageHandle> {
        self.local()?;
        let r = Reference::parse(reference)?;
        let ix = self.index()?;
        let rows = resolve(&ix, &r, reference)?;
        Ok(handle_for(&r, rows))
    }

    /// Every cached reference, newest first.
    pub fn list(&self) -> Result<Vec<ImageHandle>> {
        self.local()?;
        let ix = self.index()?;
        Ok(ix.list()?.into_iter().map(handle_from_row).collect())
    }

    /// The handle, config and layers (bottom to top) of `reference`.
    pub fn inspect(&self, reference: &str) -> Result<ImageDetail> {
        self.local()?;
        let r = Reference::parse(reference)?;
        let ix = self.index()?;
        let rows = resolve(&ix, &r, reference)?;
        let handle = handle_for(&r, rows);
        let manifest = handle.manifest_digest.clone().unwrap_or_default();
        let config = ix.config_of(&manifest)?.map(config_detail).transpose()?;
        let layers = ix
            .layers_of(&manifest)?
            .into_iter()
            .map(layer_detail)
            .collect();
        Ok(ImageDetail {
            handle,
            config,
            layers,
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
        let root = Root::open(&self.layout)?;
        drop(self.index()?);
        Ok(root)
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

/// The rows a reference names: one for a tag reference, every reference of the repository
/// pointing at the digest for a digest reference.
pub(crate) fn resolve(ix: &Index, r: &Reference, input: &str) -> Result<Vec<HandleRow>> {
    let rows = match r.digest() {
        Some(d) => ix.find_by_digest(&r.name(), &d.to_string())?,
        None => ix.get(&r.canonical())?.into_iter().collect(),
    };
    if rows.is_empty() {
        return Err(Error::ImageNotFound {
            reference: input.to_owned(),
        });
    }
    Ok(rows)
}

fn handle_for(r: &Reference, rows: Vec<HandleRow>) -> ImageHandle {
    let created = rows.iter().map(|row| row.created_at).max();
    let used = rows.iter().filter_map(|row| row.last_used_at).max();
    let mut handle = handle_from_row(
        rows.into_iter()
            .next()
            .expect("resolve returns at least one row"),
    );
    if r.digest().is_some() {
        handle.reference = r.familiar();
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
