//! The SQLite index (`index.db`): the only module with SQL.
//!
//! The schema lives in `schema.sql` (version in `PRAGMA user_version`); [`Index::open`] creates
//! it on a new cache, migrates an older one in place, and refuses a newer version it does not
//! know. Every change runs in one transaction, so readers and other processes see a load, a
//! removal or a prune whole or not at all. The database runs in WAL mode with a busy timeout,
//! so several processes can share it.
//!
//! Rows have integer keys and name each other by them; a digest is stored once, as its 32 raw
//! bytes ([`DigestBytes`]), in the row of what it names. The public types here speak digests
//! as text (`sha256:<hex>`), as the rest of the crate does; the conversion happens at this
//! module's edge.
//!
//! Garbage collection plans on the artifact graph read into memory ([`SizeGraph`], integer ids
//! only) and deletes rows by id ([`Index::collect_planned`]): roots are references and uses; a
//! manifest no root names goes, then configs, layers and blobs nothing left names. The caller
//! deletes the files of what it returns *after* the commit (see [`crate::gc`]).
//!
//! Decisions that depend on the index run inside the write transaction that acts on them
//! (`BEGIN IMMEDIATE`, so no other connection writes between the reads and the commit): a
//! prune's candidates and a remove's holder check inside the transaction that deletes
//! ([`Index::collect_planned`]), an acquire's resolution of its reference inside the one that
//! records the use ([`Index::add_use_with`]). Whichever of two racing processes takes the
//! write lock first, the second sees its commit.
//!
//! Counters kept in the rows (`manifest_count` of configs and layers, `shared_bytes` and
//! `exclusive_bytes` of manifests) let [`Index::image_usage`] answer without the graph. Every
//! change keeps them in its transaction; a collection recounts from the rows and rewrites any
//! that disagree, and nothing ever decides what to delete from them.
//!
//! One [`Index`] is one connection, opened once per cache and kept: statements are prepared
//! once and cached ([`STATEMENT_CACHE`]), so a call pays for its rows, not for opening,
//! configuring or parsing SQL.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{
    Connection, OpenFlags, OptionalExtension, Row, Transaction, TransactionBehavior, params,
};

use crate::error::{Error, Result};

mod collect;
mod rows;
mod usage;

pub use collect::Removal;
pub use rows::JsonObject;
pub use usage::{
    Candidate, CandidateFilter, ConfigNode, ImageUsageRow, KindTotals, LayerNode, ManifestNode,
    ManifestUsage, SizeGraph,
};

/// Current schema version, stored in `PRAGMA user_version`.
pub const SCHEMA_VERSION: i64 = 6;
/// Migration scripts: entry `i` takes version `i + 1` to `i + 2`.
const MIGRATIONS: &[&str] = &[
    include_str!("migrate_v2.sql"),
    include_str!("migrate_v3.sql"),
    include_str!("migrate_v4.sql"),
    include_str!("migrate_v5.sql"),
    include_str!("migrate_v6.sql"),
];
/// Page cache (KiB) of the garbage-collecting transaction. Schema 5 keeps 100,000 references
/// in about 45 MB; a collection of most of them touches most pages, which SQLite's default
/// 2 MiB cache would read again and again (and spill to the WAL mid-transaction).
const GC_CACHE_KIB: i64 = 32 * 1024;
/// How long a writer waits for another process's transaction before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(60);
/// Prepared statements kept per connection. Every statement this module runs is prepared
/// through the cache; there are about 50, so none is evicted and parsed again.
pub const STATEMENT_CACHE: usize = 96;
/// WAL pages after which SQLite's automatic checkpoint copies the WAL into the database
/// (its default, which [`Index::open`] keeps); [`Index::checkpoint`] uses the same threshold.
pub const AUTOCHECKPOINT_PAGES: i64 = 1000;
/// Bytes of a sha256 digest.
const DIGEST_LEN: usize = 32;
/// Prefix of a digest's text form.
const SHA256_PREFIX: &str = "sha256:";

/// A digest as the index stores it: the 32 bytes of the sha256 (its text form is `sha256:`
/// and their hex; an artifact's file name is the hex).
pub type DigestBytes = [u8; DIGEST_LEN];

/// One `image_refs` row joined with its manifest: what `list` and `get` return.
#[derive(Debug, Clone, PartialEq)]
pub struct HandleRow {
    /// Canonical reference.
    pub reference: String,
    /// The manifest it points to.
    pub manifest_digest: String,
    /// When the reference was created or last re-pointed (ms).
    pub created_at: i64,
    /// When a use last acquired it (ms).
    pub last_used_at: Option<i64>,
    /// From the config.
    pub architecture: String,
    /// From the config.
    pub os: String,
    /// From the config.
    pub variant: Option<String>,
    /// Layers in the manifest.
    pub layer_count: i64,
    /// Bytes on disk of the image's artifacts.
    pub disk_size: Option<i64>,
    /// The reference's row id (valid within the transaction that read it); 0 when `tagged` is
    /// false.
    pub id: i64,
    /// The manifest's row id.
    pub manifest_id: i64,
    /// Whether `reference` is an `image_refs` row (false: a name given to a manifest that only
    /// uses hold, see [`Index::manifest_row`]).
    pub tagged: bool,
}

/// One reference as [`Index::list_each`] hands it out, borrowed from the row being read.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HandleRef<'r> {
    /// Canonical reference.
    pub reference: &'r str,
    /// The manifest it points to.
    pub manifest_digest: &'r DigestBytes,
    /// When the reference was created or last re-pointed (ms).
    pub created_at: i64,
    /// When a use last acquired it (ms).
    pub last_used_at: Option<i64>,
    /// From the config.
    pub architecture: &'r str,
    /// From the config.
    pub os: &'r str,
    /// From the config.
    pub variant: Option<&'r str>,
    /// Layers in the manifest.
    pub layer_count: i64,
    /// Bytes on disk of the image's artifacts.
    pub disk_size: Option<i64>,
}

/// A config row.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigRow {
    /// Config digest.
    pub digest: String,
    /// JSON array text.
    pub env: Option<String>,
    /// JSON array text.
    pub cmd: Option<String>,
    /// JSON array text.
    pub entrypoint: Option<String>,
    /// Working directory.
    pub working_dir: Option<String>,
    /// User.
    pub user: Option<String>,
    /// JSON object text.
    pub labels: Option<String>,
    /// Stop signal.
    pub stop_signal: Option<String>,
}

/// A layer of one manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerRow {
    /// 0 = bottom.
    pub position: i64,
    /// Uncompressed digest.
    pub diff_id: String,
    /// Digest of the blob as distributed.
    pub blob_digest: String,
    /// Descriptor media type.
    pub media_type: String,
    /// Descriptor size.
    pub compressed_size: i64,
    /// Size of the layer's EROFS image, once there is one.
    pub erofs_size: Option<i64>,
    /// Content hash of the layer's EROFS image as written (`None` before schema 4, or for a
    /// layer a load found cached).
    pub erofs_hash: Option<String>,
}

/// What the index records of a manifest's own artifacts.
#[derive(Debug, Clone, PartialEq)]
pub struct ManifestArtifacts {
    /// Size of the fsmeta image.
    pub fsmeta_size: Option<i64>,
    /// Content hash of the fsmeta image.
    pub fsmeta_hash: Option<String>,
    /// Size of the VMDK descriptor.
    pub vmdk_size: Option<i64>,
    /// Content hash of the VMDK descriptor.
    pub vmdk_hash: Option<String>,
    /// Why the image is marked broken (`None`: it is not).
    pub broken: Option<String>,
    /// The registry repository the manifest was last pulled from (`None`: only loaded).
    pub origin: Option<String>,
}

/// A use row.
#[derive(Debug, Clone, PartialEq)]
pub struct UseRow {
    /// Use id.
    pub id: String,
    /// `sandbox` or `snapshot`.
    pub holder_kind: String,
    /// The holder's id.
    pub holder_id: String,
    /// Canonical reference acquired.
    pub reference: String,
    /// Pinned manifest.
    pub manifest_digest: String,
    /// When acquired (ms).
    pub since: i64,
    /// When the use stops pinning (ms); `None` = never.
    pub expires_at: Option<i64>,
}

/// A blob to record.
#[derive(Debug, Clone)]
pub struct NewBlob {
    /// `sha256:<hex>`.
    pub digest: String,
    /// Size in bytes.
    pub size: i64,
    /// `manifest`, `config` or `layer`.
    pub kind: &'static str,
}

/// Everything `load` records for one image.
#[derive(Debug, Clone)]
pub struct NewImage {
    /// Blobs the image stores (manifest, config, layers).
    pub blobs: Vec<NewBlob>,
    /// The config row.
    pub config: ConfigRow,
    /// Manifest digest.
    pub manifest_digest: String,
    /// Manifest media type.
    pub media_type: String,
    /// Platform.
    pub architecture: String,
    /// Platform.
    pub os: String,
    /// Platform.
    pub variant: Option<String>,
    /// Descriptor sizes summed.
    pub total_size: i64,
    /// Bytes on disk.
    pub disk_size: i64,
    /// Size of the manifest's fsmeta image.
    pub fsmeta_size: Option<i64>,
    /// Size of the manifest's VMDK descriptor.
    pub vmdk_size: Option<i64>,
    /// Content hash of the fsmeta image, when built by this load.
    pub fsmeta_hash: Option<String>,
    /// Content hash of the VMDK descriptor, when written by this load.
    pub vmdk_hash: Option<String>,
    /// Layers bottom to top, with the size of each layer's EROFS image.
    pub layers: Vec<LayerRow>,
    /// Canonical references to point at the manifest.
    pub references: Vec<String>,
    /// The registry repository a pull took the image from (`None` for a load): recorded as the
    /// manifest's origin, replacing an older one; a load leaves a recorded origin as it is.
    pub origin: Option<String>,
}

/// What one garbage collection removed from the index.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Collected {
    /// Row ids of the references deleted.
    pub image_refs: Vec<i64>,
    /// Manifests deleted (their fsmeta and VMDK files go).
    pub manifests: Vec<DigestBytes>,
    /// Layers deleted, by diff_id (their EROFS images go).
    pub layers: Vec<DigestBytes>,
    /// Blobs whose files must now be deleted, with recorded sizes.
    pub blobs: Vec<(DigestBytes, i64)>,
    /// What the index still names once the collection is done (the disk must keep it), from
    /// the graph the collection was decided on: no query after the commit needs to ask.
    pub kept: LiveArtifacts,
}

/// Digests the index names, by kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LiveArtifacts {
    /// Blob digests (files under `blobs/`).
    pub blobs: HashSet<DigestBytes>,
    /// diff_ids of layers with an EROFS image (files under `layers/`).
    pub layers: HashSet<DigestBytes>,
    /// Manifest digests (their fsmeta and VMDK files).
    pub manifests: HashSet<DigestBytes>,
}

/// Which references a collection removes before collecting.
#[derive(Debug, Clone)]
pub enum RefSelection<'a> {
    /// Exactly these canonical references.
    These(&'a [String]),
    /// Every reference whose manifest no use pins (prune).
    AllUnused,
}

/// A digest read from the index. Only valid digests are ever written there, so one that does
/// not parse means a damaged or edited index: [`Error::CorruptCache`], not bad input.
pub(crate) fn stored_digest(text: &str) -> Result<crate::oci::Digest> {
    crate::oci::Digest::parse(text).map_err(|_| Error::CorruptCache {
        reason: format!("the index holds an invalid digest {text:?}"),
    })
}

/// The text form (`sha256:<hex>`) of a stored digest.
pub fn digest_text(bytes: &DigestBytes) -> String {
    let mut out = String::with_capacity(SHA256_PREFIX.len() + 2 * DIGEST_LEN);
    out.push_str(SHA256_PREFIX);
    out.push_str(&hex::encode(bytes));
    out
}

/// Bytes of a digest's text form: `sha256:` and 64 hex digits.
pub const DIGEST_TEXT_LEN: usize = SHA256_PREFIX.len() + 2 * DIGEST_LEN;

/// The text form (`sha256:<hex>`) of a stored digest, written into `buf` and borrowed from it:
/// [`digest_text`] without an allocation, for rows handed out one at a time.
pub fn digest_text_in<'b>(
    bytes: &DigestBytes,
    buf: &'b mut [u8; DIGEST_TEXT_LEN],
) -> Result<&'b str> {
    let (prefix, hex) = buf.split_at_mut(SHA256_PREFIX.len());
    prefix.copy_from_slice(SHA256_PREFIX.as_bytes());
    hex::encode_to_slice(bytes, hex)
        .map_err(|e| Error::internal(format!("hex of a digest: {e}")))?;
    std::str::from_utf8(buf).map_err(|e| Error::internal(format!("hex of a digest: {e}")))
}

/// The stored form of `sha256:<hex>` text, or `None` when it is not one (such a digest names
/// nothing in the index).
pub fn digest_bytes(text: &str) -> Option<DigestBytes> {
    let hex = text.strip_prefix(SHA256_PREFIX)?;
    if !crate::oci::is_sha256_hex(hex) {
        return None;
    }
    let mut out = [0u8; DIGEST_LEN];
    hex::decode_to_slice(hex, &mut out).ok()?;
    Some(out)
}

/// The stored form of a digest being recorded: the crate only records parsed digests, so text
/// that is not one is a bug of the caller ([`Error::Internal`]).
fn new_digest(text: &str) -> Result<DigestBytes> {
    digest_bytes(text).ok_or_else(|| Error::internal(format!("not a sha256 digest: {text:?}")))
}

/// The error for a stored digest that is not 32 bytes (a damaged or edited index).
fn invalid_stored(column: &str) -> Error {
    Error::CorruptCache {
        reason: format!("the index holds an invalid digest in {column}"),
    }
}

/// Column `i` of `row`: a stored digest, borrowed.
fn digest_at<'r>(row: &'r Row<'_>, i: usize, column: &str) -> Result<&'r DigestBytes> {
    match row.get_ref(i)? {
        rusqlite::types::ValueRef::Blob(b) => b.try_into().map_err(|_| invalid_stored(column)),
        _ => Err(invalid_stored(column)),
    }
}

/// Column `i` of `row`: text, borrowed (no allocation per row).
fn text_at<'r>(row: &'r Row<'_>, i: usize) -> Result<&'r str> {
    row.get_ref(i)?.as_str().map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
            .into()
    })
}

/// Runs `stmt` and maps every row with `f`.
fn collect_rows<T>(
    stmt: &mut rusqlite::Statement<'_>,
    params: impl rusqlite::Params,
    mut f: impl FnMut(&Row<'_>) -> Result<T>,
) -> Result<Vec<T>> {
    let mut rows = stmt.query(params)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(f(row)?);
    }
    Ok(out)
}

/// An open index.
pub struct Index {
    conn: Connection,
    path: PathBuf,
}

impl Index {
    /// Opens (creating if needed) the index at `path` and brings its schema to
    /// [`SCHEMA_VERSION`]. Refuses a database written by a newer version.
    ///
    /// `path` itself must not be a symlink (its folder may be reached through symlinks): SQLite
    /// resolves symlinks in the path it is given by itself, so the folder is resolved first and
    /// SQLite is told to refuse any symlink it meets (`SQLITE_OPEN_NOFOLLOW`), which fails with
    /// [`Error::CorruptCacheEntry`]; SQLite opens the `-wal` and `-shm` files with `O_NOFOLLOW`.
    ///
    /// Open once and keep: the connection caches its prepared statements.
    pub fn open(path: &Path) -> Result<Self> {
        let flags = OpenFlags::default() | OpenFlags::SQLITE_OPEN_NOFOLLOW;
        let mut conn = Connection::open_with_flags(crate::sys::resolve_folder(path), flags)
            .map_err(|e| match e {
                rusqlite::Error::SqliteFailure(f, _)
                    if f.extended_code == rusqlite::ffi::SQLITE_CANTOPEN_SYMLINK =>
                {
                    Error::CorruptCacheEntry {
                        path: path.to_owned(),
                        found: "a symlink",
                        expected: "a regular file",
                    }
                }
                e => Error::from(e),
            })?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        // WAL lets readers run during a writer's transaction and survives a killed writer;
        // FULL makes each commit durable before a load reports success.
        enable_wal(&conn)?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        // Foreign keys are off while a migration rebuilds tables (a pragma a transaction
        // cannot change), and checked before it commits.
        conn.pragma_update(None, "foreign_keys", false)?;
        migrate(&mut conn)?;
        conn.pragma_update(None, "foreign_keys", true)?;
        Ok(Index {
            conn,
            path: path.to_path_buf(),
        })
    }

    /// Records an image and points its references at it, in one transaction (see
    /// [`Index::insert_images`]).
    pub fn insert_image(&mut self, image: &NewImage, now: i64) -> Result<()> {
        self.insert_images(std::slice::from_ref(image), now, || Ok(()))
    }

    /// Records the images of one load and points their references at them, all in one
    /// transaction: readers and other processes see every image of the load or none.
    /// Re-recording a stored image is harmless; a reference that pointed elsewhere is
    /// re-pointed (its old manifest becomes garbage if nothing else names it).
    ///
    /// `before_commit` runs once every row is written, inside the transaction (which holds the
    /// database's write lock), and the transaction commits only if it succeeds: a load
    /// publishes its files there, so that a failure of any row (a damaged index, a full disk)
    /// comes before any file is published. When this returns an error nothing was recorded.
    /// Errors: [`Error::NoSpace`] when the index's file system is full.
    pub fn insert_images(
        &mut self,
        images: &[NewImage],
        now: i64,
        before_commit: impl FnOnce() -> Result<()>,
    ) -> Result<()> {
        self.insert_images_with_use(images, now, None, before_commit)
            .map(|_| ())
    }

    /// [`Index::insert_images`] that also records `use_row` (as [`Index::add_use`] does) in the
    /// same transaction, before `before_commit` runs: a pull that pins what it pulls commits
    /// the references and the use together, so no prune can come between them. Returns the
    /// use recorded (the existing one for the same holder and manifest, renewed).
    pub fn insert_images_with_use(
        &mut self,
        images: &[NewImage],
        now: i64,
        use_row: Option<&UseRow>,
        before_commit: impl FnOnce() -> Result<()>,
    ) -> Result<Option<UseRow>> {
        let path = self.path.clone();
        let result = (|| {
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            for image in images {
                insert_in(&tx, image, now)?;
            }
            let recorded = match use_row {
                Some(new) => Some(insert_use_in(&tx, new)?),
                None => None,
            };
            before_commit()?;
            tx.commit()?;
            Ok(recorded)
        })();
        result.map_err(|e| no_space(e, &path))
    }

    /// Sets `last_used_at` of `references` (canonical) to `now`: a pull or load of an image
    /// already cached counts as a use of it.
    pub fn touch(&mut self, references: &[String], now: i64) -> Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut stmt =
                tx.prepare_cached("UPDATE image_refs SET last_used_at = ?2 WHERE reference = ?1")?;
            for r in references {
                stmt.execute(params![r, now])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Records the sizes of a manifest's rebuilt fsmeta and VMDK, and its disk size with them,
    /// with the content hashes of those rebuilt now (`None` keeps the recorded hash of a file
    /// that was kept).
    pub fn set_image_artifacts(
        &mut self,
        manifest_digest: &str,
        fsmeta: (i64, Option<&str>),
        vmdk: (i64, Option<&str>),
    ) -> Result<()> {
        let Some(digest) = digest_bytes(manifest_digest) else {
            return Ok(());
        };
        let tx = self.conn.transaction()?;
        tx.prepare_cached(
            "UPDATE manifests SET
                 disk_size = disk_size - COALESCE(fsmeta_size, 0) - COALESCE(vmdk_size, 0) + ?2 + ?3,
                 exclusive_bytes = exclusive_bytes - COALESCE(fsmeta_size, 0) - COALESCE(vmdk_size, 0) + ?2 + ?3,
                 fsmeta_size = ?2, vmdk_size = ?3,
                 fsmeta_hash = COALESCE(?4, fsmeta_hash), vmdk_hash = COALESCE(?5, vmdk_hash)
             WHERE id = (SELECT id FROM blobs WHERE digest = ?1)",
        )?
        .execute(params![digest, fsmeta.0, vmdk.0, fsmeta.1, vmdk.1])?;
        tx.commit()?;
        Ok(())
    }

    /// What the index records of a manifest's fsmeta and VMDK, and its broken mark.
    pub fn artifacts_of(&self, manifest_digest: &str) -> Result<Option<ManifestArtifacts>> {
        let Some(digest) = digest_bytes(manifest_digest) else {
            return Ok(None);
        };
        let mut stmt = self.conn.prepare_cached(
            "SELECT m.fsmeta_size, m.fsmeta_hash, m.vmdk_size, m.vmdk_hash, m.broken, m.origin
             FROM blobs b JOIN manifests m ON m.id = b.id WHERE b.digest = ?1",
        )?;
        Ok(stmt
            .query_row([digest], |r| {
                Ok(ManifestArtifacts {
                    fsmeta_size: r.get(0)?,
                    fsmeta_hash: r.get(1)?,
                    vmdk_size: r.get(2)?,
                    vmdk_hash: r.get(3)?,
                    broken: r.get(4)?,
                    origin: r.get(5)?,
                })
            })
            .optional()?)
    }

    /// Marks a manifest broken (with the reason `boot_disk` gives) or, with `None`, sound.
    pub fn set_broken(&mut self, manifest_digest: &str, reason: Option<&str>) -> Result<()> {
        let Some(digest) = digest_bytes(manifest_digest) else {
            return Ok(());
        };
        self.conn
            .prepare_cached(
                "UPDATE manifests SET broken = ?2 WHERE id = (SELECT id FROM blobs WHERE digest = ?1)",
            )?
            .execute(params![digest, reason])?;
        Ok(())
    }

    /// Marks a manifest broken with `reason` unless it is marked already (keeping the reason
    /// that names its own remedy).
    pub fn mark_broken_unless_marked(&mut self, manifest_digest: &str, reason: &str) -> Result<()> {
        let Some(digest) = digest_bytes(manifest_digest) else {
            return Ok(());
        };
        self.conn
            .prepare_cached(
                "UPDATE manifests SET broken = ?2
                 WHERE id = (SELECT id FROM blobs WHERE digest = ?1) AND broken IS NULL",
            )?
            .execute(params![digest, reason])?;
        Ok(())
    }

    /// Every manifest digest, sorted.
    pub fn manifest_digests(&self) -> Result<Vec<String>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT b.digest FROM manifests m JOIN blobs b ON b.id = m.id ORDER BY b.digest",
        )?;
        collect_rows(&mut stmt, [], |r| {
            Ok(digest_text(digest_at(r, 0, "blobs")?))
        })
    }

    /// Manifest digests starting with `prefix` (`sha256:` and at least one hex digit), sorted.
    /// Answered from the digest index: the prefix is the range between it padded with `0`s and
    /// with `f`s.
    pub fn manifests_with_prefix(&self, prefix: &str) -> Result<Vec<String>> {
        let Some(hex) = prefix.strip_prefix(SHA256_PREFIX) else {
            return Ok(Vec::new());
        };
        let hex = hex.to_ascii_lowercase();
        if hex.is_empty()
            || hex.len() > 2 * DIGEST_LEN
            || !hex.bytes().all(|c| c.is_ascii_hexdigit())
        {
            return Ok(Vec::new());
        }
        let bound = |fill: char| {
            let mut text = String::from(SHA256_PREFIX);
            text.push_str(&hex);
            text.extend(std::iter::repeat_n(fill, 2 * DIGEST_LEN - hex.len()));
            digest_bytes(&text)
        };
        let (Some(low), Some(high)) = (bound('0'), bound('f')) else {
            return Ok(Vec::new());
        };
        let mut stmt = self.conn.prepare_cached(
            "SELECT b.digest FROM blobs b JOIN manifests m ON m.id = b.id
             WHERE b.digest BETWEEN ?1 AND ?2 ORDER BY b.digest",
        )?;
        collect_rows(&mut stmt, params![low, high], |r| {
            Ok(digest_text(digest_at(r, 0, "blobs")?))
        })
    }

    /// Rows of every reference pointing at `digest`, newest first.
    pub fn refs_of(&self, digest: &str) -> Result<Vec<HandleRow>> {
        let Some(digest) = digest_bytes(digest) else {
            return Ok(Vec::new());
        };
        let mut stmt = self.conn.prepare_cached(&format!(
            "{HANDLE_SELECT} WHERE r.manifest_id = (SELECT id FROM blobs WHERE digest = ?1)
             ORDER BY r.created_at DESC, r.reference"
        ))?;
        collect_rows(&mut stmt, [digest], handle_row)
    }

    /// A row for manifest `digest` under the name `reference` (no `image_refs` row needed):
    /// created when the manifest was recorded, last used when a use last acquired it.
    pub fn manifest_row(&self, digest: &str, reference: &str) -> Result<Option<HandleRow>> {
        let Some(digest) = digest_bytes(digest) else {
            return Ok(None);
        };
        let mut stmt = self.conn.prepare_cached(
            "SELECT ?2, b.digest, m.created_at, (SELECT max(u.since) FROM uses u WHERE u.manifest_id = m.id),
                 m.architecture, m.os, m.variant, m.layer_count, m.disk_size, 0, m.id
             FROM blobs b JOIN manifests m ON m.id = b.id WHERE b.digest = ?1",
        )?;
        let mut rows = stmt.query(params![digest, reference])?;
        rows.next()?
            .map(|r| {
                handle_row(r).map(|row| HandleRow {
                    tagged: false,
                    ..row
                })
            })
            .transpose()
    }

    /// Whether a use of repository `name` (canonical, without tag) holds `digest`.
    pub fn used_in_repo(&self, name: &str, digest: &str) -> Result<bool> {
        let Some(digest) = digest_bytes(digest) else {
            return Ok(false);
        };
        let mut stmt = self.conn.prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM uses WHERE manifest_id = (SELECT id FROM blobs WHERE digest = ?2)
                AND (substr(reference, 1, length(?1) + 1) = ?1 || ':'
                  OR substr(reference, 1, length(?1) + 1) = ?1 || '@'))",
        )?;
        Ok(stmt.query_row(params![name, digest], |r| r.get(0))?)
    }

    /// The manifests listing layer `diff_id`, sorted.
    pub fn manifests_using_layer(&self, diff_id: &str) -> Result<Vec<String>> {
        let Some(diff_id) = digest_bytes(diff_id) else {
            return Ok(Vec::new());
        };
        let mut stmt = self.conn.prepare_cached(
            "SELECT DISTINCT b.digest FROM layers l JOIN manifest_layers ml ON ml.layer_id = l.id
                 JOIN blobs b ON b.id = ml.manifest_id
             WHERE l.diff_id = ?1 ORDER BY b.digest",
        )?;
        collect_rows(&mut stmt, [diff_id], |r| {
            Ok(digest_text(digest_at(r, 0, "blobs")?))
        })
    }

    /// The size recorded for blob `digest`.
    pub fn blob_size(&self, digest: &str) -> Result<Option<i64>> {
        let Some(digest) = digest_bytes(digest) else {
            return Ok(None);
        };
        let mut stmt = self
            .conn
            .prepare_cached("SELECT size FROM blobs WHERE digest = ?1")?;
        Ok(stmt.query_row([digest], |r| r.get(0)).optional()?)
    }

    /// The config digest of a manifest.
    pub fn config_digest_of(&self, manifest_digest: &str) -> Result<Option<String>> {
        let Some(digest) = digest_bytes(manifest_digest) else {
            return Ok(None);
        };
        let mut stmt = self.conn.prepare_cached(
            "SELECT cb.digest FROM blobs mb JOIN manifests m ON m.id = mb.id
                 JOIN blobs cb ON cb.id = m.config_id
             WHERE mb.digest = ?1",
        )?;
        let mut rows = stmt.query([digest])?;
        rows.next()?
            .map(|r| Ok(digest_text(digest_at(r, 0, "blobs")?)))
            .transpose()
    }

    /// Manifests no reference names that a use holds (expired or not: the files are there
    /// until a prune), each with the canonical references its uses acquired, oldest use first.
    pub fn untagged_in_use(&self) -> Result<Vec<(String, Vec<String>)>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT b.digest, u.reference FROM uses u JOIN blobs b ON b.id = u.manifest_id
             WHERE NOT EXISTS (SELECT 1 FROM image_refs r WHERE r.manifest_id = u.manifest_id)
             ORDER BY b.digest, u.since, u.id",
        )?;
        let rows = collect_rows(&mut stmt, [], |r| {
            Ok((*digest_at(r, 0, "blobs")?, r.get::<_, String>(1)?))
        })?;
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        let mut last: Option<DigestBytes> = None;
        for (digest, reference) in rows {
            match out.last_mut() {
                Some((_, refs)) if last == Some(digest) => refs.push(reference),
                _ => {
                    out.push((digest_text(&digest), vec![reference]));
                    last = Some(digest);
                }
            }
        }
        Ok(out)
    }

    /// Every reference, newest first (ties by reference).
    pub fn list(&self) -> Result<Vec<HandleRow>> {
        let mut stmt = self.conn.prepare_cached(LIST_SELECT)?;
        collect_rows(&mut stmt, [], handle_row)
    }

    /// Every reference, newest first (ties by reference), handed to `each` as it is read,
    /// borrowed from the row: what [`Index::list`] returns without building a value per row.
    pub fn list_each(&self, mut each: impl FnMut(&HandleRef<'_>) -> Result<()>) -> Result<()> {
        let mut stmt = self.conn.prepare_cached(LIST_SELECT)?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            each(&HandleRef {
                reference: text_at(row, 0)?,
                manifest_digest: digest_at(row, 1, "manifests")?,
                created_at: row.get(2)?,
                last_used_at: row.get(3)?,
                architecture: text_at(row, 4)?,
                os: text_at(row, 5)?,
                variant: row
                    .get_ref(6)?
                    .as_str_or_null()
                    .map_err(rusqlite::Error::from)?,
                layer_count: row.get(7)?,
                disk_size: row.get(8)?,
            })?;
        }
        Ok(())
    }

    /// The row of one canonical reference.
    pub fn get(&self, reference: &str) -> Result<Option<HandleRow>> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!("{HANDLE_SELECT} WHERE r.reference = ?1"))?;
        let mut rows = stmt.query([reference])?;
        rows.next()?.map(handle_row).transpose()
    }

    /// Rows of references in repository `name` (canonical, without tag) pointing at `digest`.
    pub fn find_by_digest(&self, name: &str, digest: &str) -> Result<Vec<HandleRow>> {
        let Some(digest) = digest_bytes(digest) else {
            return Ok(Vec::new());
        };
        let mut stmt = self.conn.prepare_cached(&format!(
            "{HANDLE_SELECT} WHERE r.manifest_id = (SELECT id FROM blobs WHERE digest = ?2)
                AND (substr(r.reference, 1, length(?1) + 1) = ?1 || ':'
                  OR substr(r.reference, 1, length(?1) + 1) = ?1 || '@')
             ORDER BY r.created_at DESC, r.reference"
        ))?;
        collect_rows(&mut stmt, params![name, digest], handle_row)
    }

    /// The config of a manifest, if recorded.
    pub fn config_of(&self, manifest_digest: &str) -> Result<Option<ConfigRow>> {
        let Some(digest) = digest_bytes(manifest_digest) else {
            return Ok(None);
        };
        let mut stmt = self.conn.prepare_cached(
            "SELECT cb.digest, c.env, c.cmd, c.entrypoint, c.working_dir, c.user, c.labels, c.stop_signal
             FROM blobs mb JOIN manifests m ON m.id = mb.id
                 JOIN configs c ON c.id = m.config_id JOIN blobs cb ON cb.id = c.id
             WHERE mb.digest = ?1",
        )?;
        let mut rows = stmt.query([digest])?;
        let Some(r) = rows.next()? else {
            return Ok(None);
        };
        Ok(Some(ConfigRow {
            digest: digest_text(digest_at(r, 0, "blobs")?),
            env: r.get(1)?,
            cmd: r.get(2)?,
            entrypoint: r.get(3)?,
            working_dir: r.get(4)?,
            user: r.get(5)?,
            labels: r.get(6)?,
            stop_signal: r.get(7)?,
        }))
    }

    /// The layers of a manifest, bottom to top.
    pub fn layers_of(&self, manifest_digest: &str) -> Result<Vec<LayerRow>> {
        let Some(digest) = digest_bytes(manifest_digest) else {
            return Ok(Vec::new());
        };
        let mut stmt = self.conn.prepare_cached(
            "SELECT ml.position, l.diff_id, ml.blob_digest, t.media_type, ml.compressed_size, l.erofs_size, l.erofs_hash
             FROM manifest_layers ml JOIN layers l ON l.id = ml.layer_id
                 JOIN media_types t ON t.id = ml.media_type_id
             WHERE ml.manifest_id = (SELECT id FROM blobs WHERE digest = ?1) ORDER BY ml.position",
        )?;
        collect_rows(&mut stmt, [digest], |r| {
            Ok(LayerRow {
                position: r.get(0)?,
                diff_id: digest_text(digest_at(r, 1, "layers")?),
                blob_digest: digest_text(digest_at(r, 2, "manifest_layers")?),
                media_type: r.get(3)?,
                compressed_size: r.get(4)?,
                erofs_size: r.get(5)?,
                erofs_hash: r.get(6)?,
            })
        })
    }

    /// Uses, optionally only those pinning `manifest_digest`, oldest first.
    pub fn uses(&self, manifest_digest: Option<&str>) -> Result<Vec<UseRow>> {
        let digest = match manifest_digest {
            Some(text) => match digest_bytes(text) {
                Some(d) => Some(d),
                None => return Ok(Vec::new()),
            },
            None => None,
        };
        let mut stmt = self.conn.prepare_cached(&format!(
            "{USE_SELECT} WHERE ?1 IS NULL OR u.manifest_id = (SELECT id FROM blobs WHERE digest = ?1)
             ORDER BY u.since, u.id"
        ))?;
        collect_rows(&mut stmt, [digest], use_row)
    }

    /// Records a use of `manifest_digest` and refreshes `last_used_at` of `touch` references.
    /// Idempotent per (holder, manifest): a second acquire returns the first use, with the new
    /// expiry (so a holder renews its lease by acquiring again).
    pub fn add_use(&mut self, new: &UseRow, touch: &[String]) -> Result<UseRow> {
        self.add_use_with(|_| Ok((new.clone(), touch.to_vec())))
    }

    /// [`Index::add_use`] for the use `build` decides, in one write transaction (`BEGIN
    /// IMMEDIATE`) that `build` reads in: what it resolves (the reference, its manifest) is
    /// what the use pins, since no other connection can delete it before the commit. An error
    /// of `build` (say, the reference is not found) rolls back and is returned.
    pub fn add_use_with(
        &mut self,
        build: impl FnOnce(&Index) -> Result<(UseRow, Vec<String>)>,
    ) -> Result<UseRow> {
        let this: &Index = self;
        let tx = Transaction::new_unchecked(&this.conn, TransactionBehavior::Immediate)?;
        let (new, touch) = build(this)?;
        let row = insert_use_in(&tx, &new)?;
        {
            let mut stmt =
                tx.prepare_cached("UPDATE image_refs SET last_used_at = ?2 WHERE reference = ?1")?;
            for r in &touch {
                stmt.execute(params![r, new.since])?;
            }
        }
        tx.commit()?;
        Ok(row)
    }

    /// Deletes every use of one holder; returns how many there were.
    pub fn remove_uses_of(&mut self, holder_kind: &str, holder_id: &str) -> Result<usize> {
        Ok(self
            .conn
            .prepare_cached("DELETE FROM uses WHERE holder_kind = ?1 AND holder_id = ?2")?
            .execute(params![holder_kind, holder_id])?)
    }

    /// Points the canonical reference `build` returns at the manifest it returns, in one write
    /// transaction (`BEGIN IMMEDIATE`) that `build` resolves in, so a prune in another process
    /// either commits first (and `build` finds nothing) or sees the new reference. A reference
    /// already there is re-pointed (created now, never used) unless it points there already.
    pub fn add_tag_with(
        &mut self,
        now: i64,
        build: impl FnOnce(&Index) -> Result<(String, String)>,
    ) -> Result<()> {
        let this: &Index = self;
        let tx = Transaction::new_unchecked(&this.conn, TransactionBehavior::Immediate)?;
        let (reference, manifest) = build(this)?;
        let manifest_id = manifest_id_in(&tx, &manifest)?.ok_or_else(|| Error::ImageNotFound {
            reference: reference.clone(),
        })?;
        tx.prepare_cached(
            "INSERT INTO image_refs (reference, manifest_id, created_at, last_used_at)
                 VALUES (?1, ?2, ?3, NULL)
                 ON CONFLICT (reference) DO UPDATE SET
                     manifest_id = excluded.manifest_id,
                     created_at = excluded.created_at,
                     last_used_at = NULL
                 WHERE image_refs.manifest_id <> excluded.manifest_id",
        )?
        .execute(params![reference, manifest_id, now])?;
        tx.commit()?;
        Ok(())
    }

    /// Deletes a use; returns whether it existed.
    pub fn remove_use(&mut self, id: &str) -> Result<bool> {
        Ok(self
            .conn
            .prepare_cached("DELETE FROM uses WHERE id = ?1")?
            .execute([id])?
            == 1)
    }

    /// Removes the selected references, then every manifest no reference or use names and every
    /// config, layer and blob nothing left names, in one transaction. Returns what went; the
    /// caller then deletes the blob files. With `dry_run` the transaction is rolled back and the
    /// same report is returned.
    pub fn collect_garbage(
        &mut self,
        refs: RefSelection<'_>,
        now: i64,
        dry_run: bool,
    ) -> Result<Collected> {
        let (collected, ()) = self.collect_planned(now, dry_run, |ix| {
            let graph = ix.size_graph(now)?;
            let references = match refs {
                RefSelection::These(list) => {
                    let mut ids = Vec::with_capacity(list.len());
                    for r in list {
                        if let Some(row) = ix.get(r)? {
                            ids.push(row.id);
                        }
                    }
                    ids
                }
                RefSelection::AllUnused => {
                    let mut ids = Vec::new();
                    ix.prune_candidates(
                        &CandidateFilter {
                            now,
                            ..CandidateFilter::default()
                        },
                        |c| {
                            ids.push(c.id);
                            Ok(())
                        },
                    )?;
                    ids
                }
            };
            Ok((Removal { graph, references }, ()))
        })?;
        Ok(collected)
    }

    /// Removes the references `decide` picks, then every manifest no remaining reference or
    /// unexpired use names and every config, layer and blob nothing left names, where `decide`
    /// reads the index inside the same write transaction (`BEGIN IMMEDIATE`) that deletes:
    /// candidates, holders, sizes and the graph cannot change between the decision and the
    /// deletion, so a use another process records meanwhile is either seen by `decide` or
    /// recorded after the commit (and then finds its reference gone). `decide` returns the
    /// [`Removal`] (the references and the graph it read them with) and a value passed
    /// through (a plan, a size); its error rolls back and is returned. With `dry_run` the
    /// transaction is rolled back and the same report is returned.
    ///
    /// Rows are deleted by id, as the graph planned them; the counters of what stays are
    /// recounted from the graph. The WAL is not checkpointed at the commit (a collection can
    /// leave tens of megabytes in it): call [`Index::checkpoint`] once the files are being
    /// deleted.
    pub fn collect_planned<T>(
        &mut self,
        now: i64,
        dry_run: bool,
        decide: impl FnOnce(&Index) -> Result<(Removal, T)>,
    ) -> Result<(Collected, T)> {
        self.gc_transaction(dry_run, |ix, tx| {
            let (removal, decided) = decide(ix)?;
            Ok((collect::collect_in(tx, &removal, now)?, decided))
        })
    }

    /// The checkpoint a collection's commit skipped: when the WAL holds at least
    /// [`AUTOCHECKPOINT_PAGES`] pages (as SQLite's automatic checkpoint would have found
    /// it), copies it into the database file without waiting for readers (`PASSIVE`). Safe
    /// at any time, from any connection.
    pub fn checkpoint(&self) -> Result<()> {
        // NOOP checkpoints nothing and reports the WAL's frames and those already copied.
        let (log, copied): (i64, i64) =
            self.conn
                .query_row("PRAGMA wal_checkpoint(NOOP)", [], |r| {
                    Ok((r.get(1)?, r.get(2)?))
                })?;
        if log - copied >= AUTOCHECKPOINT_PAGES {
            self.conn
                .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))?;
        }
        Ok(())
    }

    /// Runs `body` in one immediate transaction with a larger page cache and without the
    /// automatic checkpoint at its commit, then commits (or, with `dry_run`, rolls back).
    /// `body` gets the index, whose queries run inside the transaction, and the transaction
    /// for its changes.
    fn gc_transaction<R>(
        &mut self,
        dry_run: bool,
        body: impl FnOnce(&Index, &Transaction<'_>) -> Result<R>,
    ) -> Result<R> {
        // Deleting tens of thousands of rows touches pages all over the tables and their
        // indexes, which SQLite's default 2 MiB page cache keeps reading again: give this
        // transaction a larger cache, then shrink it back (freeing the pages). The automatic
        // checkpoint would copy the whole transaction into the database file inside the
        // commit, before a single file could be deleted.
        let previous: i64 = self.conn.query_row("PRAGMA cache_size", [], |r| r.get(0))?;
        let autocheckpoint: i64 = self
            .conn
            .query_row("PRAGMA wal_autocheckpoint", [], |r| r.get(0))?;
        self.conn.pragma_update(None, "cache_size", -GC_CACHE_KIB)?;
        self.conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        let result = (|| -> Result<R> {
            let this: &Index = self;
            let tx = Transaction::new_unchecked(&this.conn, TransactionBehavior::Immediate)?;
            let out = body(this, &tx)?;
            if dry_run {
                tx.rollback()?;
            } else {
                // Always write, even when nothing was collected. A writer killed inside its
                // commit, after its WAL frames were synced but before the WAL index was
                // updated, leaves a commit that this connection does not see, and that the
                // next process to open the index alone would find in the WAL and keep: the
                // files this collection deleted as named by nothing would then be named again.
                // A frame written here lands on that commit's first frame and discards it for
                // good. Setting the version to itself is the smallest write (one page).
                tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
                tx.commit()?;
            }
            Ok(out)
        })();
        let restored = self
            .conn
            .pragma_update(None, "cache_size", previous)
            .and_then(|()| {
                self.conn
                    .pragma_update(None, "wal_autocheckpoint", autocheckpoint)
            });
        let out = result?;
        restored?;
        Ok(out)
    }

    /// Digests of every recorded blob (for reconciling the disk with the index).
    pub fn blob_digests(&self) -> Result<HashSet<DigestBytes>> {
        self.digest_set("SELECT digest FROM blobs", "blobs")
    }

    /// Everything the index names, by artifact kind (for reconciling the disk with the index).
    pub fn live_artifacts(&self) -> Result<LiveArtifacts> {
        Ok(LiveArtifacts {
            blobs: self.digest_set("SELECT digest FROM blobs", "blobs")?,
            layers: self.digest_set(
                "SELECT diff_id FROM layers WHERE erofs_size IS NOT NULL",
                "layers",
            )?,
            manifests: self.digest_set(
                "SELECT b.digest FROM manifests m JOIN blobs b ON b.id = m.id",
                "blobs",
            )?,
        })
    }

    fn digest_set(&self, sql: &str, column: &str) -> Result<HashSet<DigestBytes>> {
        let mut stmt = self.conn.prepare_cached(sql)?;
        let mut rows = stmt.query([])?;
        let mut out = HashSet::new();
        while let Some(row) = rows.next()? {
            out.insert(*digest_at(row, 0, column)?);
        }
        Ok(out)
    }
}

/// SQL condition: use `u` still pins its manifest at time `?1`.
const LIVE_USE: &str = "(u.expires_at IS NULL OR u.expires_at > ?1)";

const HANDLE_SELECT: &str = "SELECT r.reference, b.digest, r.created_at, r.last_used_at,
        m.architecture, m.os, m.variant, m.layer_count, m.disk_size, r.id, r.manifest_id
    FROM image_refs r JOIN manifests m ON m.id = r.manifest_id JOIN blobs b ON b.id = m.id";

/// `list()`: the references in the order of `image_refs_listed`, which covers every column read
/// from `image_refs`.
const LIST_SELECT: &str = "SELECT r.reference, b.digest, r.created_at, r.last_used_at,
        m.architecture, m.os, m.variant, m.layer_count, m.disk_size, r.id, r.manifest_id
    FROM image_refs r JOIN manifests m ON m.id = r.manifest_id JOIN blobs b ON b.id = m.id
    ORDER BY r.created_at DESC, r.reference";

const USE_SELECT: &str =
    "SELECT u.id, u.holder_kind, u.holder_id, u.reference, b.digest, u.since, u.expires_at
    FROM uses u JOIN blobs b ON b.id = u.manifest_id";

fn handle_row(r: &Row<'_>) -> Result<HandleRow> {
    Ok(HandleRow {
        reference: r.get(0)?,
        manifest_digest: digest_text(digest_at(r, 1, "blobs")?),
        created_at: r.get(2)?,
        last_used_at: r.get(3)?,
        architecture: r.get(4)?,
        os: r.get(5)?,
        variant: r.get(6)?,
        layer_count: r.get(7)?,
        disk_size: r.get(8)?,
        id: r.get(9)?,
        manifest_id: r.get(10)?,
        tagged: true,
    })
}

fn use_row(r: &Row<'_>) -> Result<UseRow> {
    Ok(UseRow {
        id: r.get(0)?,
        holder_kind: r.get(1)?,
        holder_id: r.get(2)?,
        reference: r.get(3)?,
        manifest_digest: digest_text(digest_at(r, 4, "blobs")?),
        since: r.get(5)?,
        expires_at: r.get(6)?,
    })
}

/// The row id of manifest `digest` (text), if it is recorded.
fn manifest_id_in(tx: &Transaction<'_>, digest: &str) -> Result<Option<i64>> {
    let Some(digest) = digest_bytes(digest) else {
        return Ok(None);
    };
    Ok(tx
        .prepare_cached(
            "SELECT m.id FROM blobs b JOIN manifests m ON m.id = b.id WHERE b.digest = ?1",
        )?
        .query_row([digest], |r| r.get(0))
        .optional()?)
}

/// Records a use (idempotent per holder and manifest, renewing its expiry) and returns the
/// stored row. A manifest that is not recorded is [`Error::ImageNotFound`].
fn insert_use_in(tx: &Transaction<'_>, new: &UseRow) -> Result<UseRow> {
    let Some(manifest_id) = manifest_id_in(tx, &new.manifest_digest)? else {
        return Err(Error::ImageNotFound {
            reference: new.reference.clone(),
        });
    };
    tx.prepare_cached(
        "INSERT INTO uses (id, holder_kind, holder_id, reference, manifest_id, since, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (holder_kind, holder_id, manifest_id) DO UPDATE SET expires_at = excluded.expires_at",
    )?
    .execute(params![
        new.id,
        new.holder_kind,
        new.holder_id,
        new.reference,
        manifest_id,
        new.since,
        new.expires_at
    ])?;
    let mut stmt = tx.prepare_cached(&format!(
        "{USE_SELECT} WHERE u.holder_kind = ?1 AND u.holder_id = ?2 AND u.manifest_id = ?3"
    ))?;
    let mut rows = stmt.query(params![new.holder_kind, new.holder_id, manifest_id])?;
    match rows.next()? {
        Some(r) => use_row(r),
        None => Err(Error::internal("the use just recorded is not there")),
    }
}

/// The id of blob `digest`, recording it (with `size`, `kind` and `now`) if it is new.
fn blob_id(
    tx: &Transaction<'_>,
    digest: &DigestBytes,
    size: i64,
    kind: &str,
    now: i64,
) -> Result<i64> {
    tx.prepare_cached(
        "INSERT INTO blobs (digest, size, kind, created_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (digest) DO NOTHING",
    )?
    .execute(params![digest, size, kind, now])?;
    Ok(tx
        .prepare_cached("SELECT id FROM blobs WHERE digest = ?1")?
        .query_row([digest], |r| r.get(0))?)
}

/// The id of blob `digest`, which this image's blobs or an earlier load recorded.
fn recorded_blob(
    tx: &Transaction<'_>,
    new: &HashMap<DigestBytes, i64>,
    digest: &DigestBytes,
) -> Result<i64> {
    if let Some(&id) = new.get(digest) {
        return Ok(id);
    }
    tx.prepare_cached("SELECT id FROM blobs WHERE digest = ?1")?
        .query_row([digest], |r| r.get(0))
        .optional()?
        .ok_or_else(|| Error::internal(format!("blob {} is not recorded", digest_text(digest))))
}

/// The id of media type `text`, recording it if it is new.
fn media_type_id(
    tx: &Transaction<'_>,
    text: &str,
    known: &mut HashMap<String, i64>,
) -> Result<i64> {
    if let Some(&id) = known.get(text) {
        return Ok(id);
    }
    tx.prepare_cached("INSERT INTO media_types (media_type) VALUES (?1) ON CONFLICT DO NOTHING")?
        .execute([text])?;
    let id: i64 = tx
        .prepare_cached("SELECT id FROM media_types WHERE media_type = ?1")?
        .query_row([text], |r| r.get(0))?;
    known.insert(text.to_owned(), id);
    Ok(id)
}

/// Writes the rows of one image (see [`Index::insert_images`]) and keeps the counters: the
/// manifest's, and those of a manifest that shared nothing with anyone and now shares its
/// config or a layer with this one. A new reference is last used now; one recorded again is
/// used again now (`last_used_at` refreshed), and keeps its `created_at` unless it is
/// re-pointed.
fn insert_in(tx: &Transaction<'_>, image: &NewImage, now: i64) -> Result<()> {
    let mut media_types = HashMap::new();
    let manifest_digest = new_digest(&image.manifest_digest)?;
    let mut blob_ids = HashMap::new();
    for b in &image.blobs {
        let digest = new_digest(&b.digest)?;
        blob_ids.insert(digest, blob_id(tx, &digest, b.size, b.kind, now)?);
    }
    let c = &image.config;
    let config_digest = new_digest(&c.digest)?;
    let config_id = recorded_blob(tx, &blob_ids, &config_digest)?;
    tx.prepare_cached(
        "INSERT INTO configs (id, env, cmd, entrypoint, working_dir, user, labels, stop_signal, manifest_count)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 0) ON CONFLICT (id) DO NOTHING",
    )?
    .execute(params![config_id, c.env, c.cmd, c.entrypoint, c.working_dir, c.user, c.labels, c.stop_signal])?;
    let manifest_id = recorded_blob(tx, &blob_ids, &manifest_digest)?;
    let media_type = media_type_id(tx, &image.media_type, &mut media_types)?;
    let inserted = tx
        .prepare_cached(
            "INSERT INTO manifests (id, media_type_id, architecture, os, variant, layer_count,
                 config_id, total_size, disk_size, created_at, fsmeta_size, vmdk_size,
                 shared_bytes, exclusive_bytes, fsmeta_hash, vmdk_hash, origin)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, 0, 0, ?13, ?14, ?15)
             ON CONFLICT (id) DO NOTHING",
        )?
        .execute(params![
            manifest_id,
            media_type,
            image.architecture,
            image.os,
            image.variant,
            image.layers.len() as i64,
            config_id,
            image.total_size,
            image.disk_size,
            now,
            image.fsmeta_size,
            image.vmdk_size,
            image.fsmeta_hash,
            image.vmdk_hash,
            image.origin
        ])?;
    // Manifests whose shared and exclusive bytes change with this image.
    let mut recount: Vec<i64> = Vec::new();
    if inserted == 0 {
        // A manifest recorded before its artifacts existed (schema 1) gets them now.
        let updated = tx
            .prepare_cached(
                "UPDATE manifests SET fsmeta_size = ?2, vmdk_size = ?3, disk_size = ?4
                 WHERE id = ?1 AND (fsmeta_size IS NULL OR vmdk_size IS NULL)",
            )?
            .execute(params![
                manifest_id,
                image.fsmeta_size,
                image.vmdk_size,
                image.disk_size
            ])?;
        if updated > 0 {
            recount.push(manifest_id);
        }
        // Artifacts this load wrote (say, after a repair took a damaged one away) have hashes.
        tx.prepare_cached(
            "UPDATE manifests SET fsmeta_hash = COALESCE(?2, fsmeta_hash), vmdk_hash = COALESCE(?3, vmdk_hash)
             WHERE id = ?1",
        )?
        .execute(params![manifest_id, image.fsmeta_hash, image.vmdk_hash])?;
        if image.origin.is_some() {
            tx.prepare_cached(
                "UPDATE manifests SET origin = ?2 WHERE id = ?1 AND origin IS NOT ?2",
            )?
            .execute(params![manifest_id, image.origin])?;
        }
    }
    // Everything the image boots from is in place now: a load of it clears its broken mark.
    tx.prepare_cached("UPDATE manifests SET broken = NULL WHERE id = ?1 AND broken IS NOT NULL")?
        .execute([manifest_id])?;
    let mut layer_ids = Vec::with_capacity(image.layers.len());
    for l in &image.layers {
        let diff_id = new_digest(&l.diff_id)?;
        // A layer converted again (a version-1 row without an image, or one whose damaged
        // image a repair took away) gets its size and hash. Only a size that changes changes
        // the figures of the manifests using it: a layer every image shares, listed again by
        // each image of a load with the hash it was written with, recounts nothing.
        let recorded: Option<(i64, Option<i64>, Option<String>, i64)> = tx
            .prepare_cached(
                "SELECT id, erofs_size, erofs_hash, manifest_count FROM layers WHERE diff_id = ?1",
            )?
            .query_row([diff_id], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .optional()?;
        let (id, sized) = match recorded {
            None => (
                tx.prepare_cached(
                    "INSERT INTO layers (diff_id, erofs_size, created_at, manifest_count, erofs_hash)
                     VALUES (?1, ?2, ?3, 0, ?4) RETURNING id",
                )?
                .query_row(params![diff_id, l.erofs_size, now, l.erofs_hash], |r| {
                    r.get(0)
                })?,
                false,
            ),
            Some((id, size, hash, users)) => {
                let written = l.erofs_size.is_some();
                let resized = written
                    && (size.is_none() || (l.erofs_hash.is_some() && l.erofs_size != size));
                let rehashed = written && l.erofs_hash.is_some() && l.erofs_hash != hash;
                if resized || rehashed {
                    tx.prepare_cached(
                        "UPDATE layers SET erofs_size = ?2, erofs_hash = ?3 WHERE id = ?1",
                    )?
                    .execute(params![id, l.erofs_size, l.erofs_hash])?;
                }
                (id, resized && users > 0)
            }
        };
        if sized {
            let mut users = tx.prepare_cached(
                "SELECT DISTINCT manifest_id FROM manifest_layers WHERE layer_id = ?1",
            )?;
            for user in collect_rows(&mut users, [id], |r| Ok(r.get::<_, i64>(0)?))? {
                recount.push(user);
            }
        }
        layer_ids.push(id);
    }
    if inserted == 1 {
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO manifest_layers (manifest_id, position, layer_id, blob_digest, media_type_id, compressed_size)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for (l, &layer_id) in image.layers.iter().zip(&layer_ids) {
                let blob = new_digest(&l.blob_digest)?;
                let media_type = media_type_id(tx, &l.media_type, &mut media_types)?;
                stmt.execute(params![
                    manifest_id,
                    l.position,
                    layer_id,
                    blob,
                    media_type,
                    l.compressed_size
                ])?;
            }
        }
        // One more user of the config and of each distinct layer. A config or layer that had
        // exactly one user is now shared: that user's figures change too.
        let config_users: i64 = tx
            .prepare_cached(
                "UPDATE configs SET manifest_count = manifest_count + 1 WHERE id = ?1
                 RETURNING manifest_count",
            )?
            .query_row([config_id], |r| r.get(0))?;
        if config_users == 2 {
            let mut others =
                tx.prepare_cached("SELECT id FROM manifests WHERE config_id = ?1 AND id <> ?2")?;
            recount.extend(collect_rows(
                &mut others,
                params![config_id, manifest_id],
                |r| Ok(r.get::<_, i64>(0)?),
            )?);
        }
        let mut seen = HashSet::new();
        for &layer_id in &layer_ids {
            if !seen.insert(layer_id) {
                continue;
            }
            let users: i64 = tx
                .prepare_cached(
                    "UPDATE layers SET manifest_count = manifest_count + 1 WHERE id = ?1
                     RETURNING manifest_count",
                )?
                .query_row([layer_id], |r| r.get(0))?;
            if users == 2 {
                let mut others = tx.prepare_cached(
                    "SELECT DISTINCT manifest_id FROM manifest_layers WHERE layer_id = ?1 AND manifest_id <> ?2",
                )?;
                recount.extend(collect_rows(
                    &mut others,
                    params![layer_id, manifest_id],
                    |r| Ok(r.get::<_, i64>(0)?),
                )?);
            }
        }
        recount.push(manifest_id);
    }
    recount.sort_unstable();
    recount.dedup();
    for id in recount {
        recount_manifest(tx, id)?;
    }
    {
        let mut stmt = tx.prepare_cached(
            "INSERT INTO image_refs (reference, manifest_id, created_at, last_used_at)
             VALUES (?1, ?2, ?3, ?3)
             ON CONFLICT (reference) DO UPDATE SET
                 created_at = CASE WHEN image_refs.manifest_id <> excluded.manifest_id
                              THEN excluded.created_at ELSE image_refs.created_at END,
                 manifest_id = excluded.manifest_id,
                 last_used_at = excluded.last_used_at",
        )?;
        for r in &image.references {
            stmt.execute(params![r, manifest_id, now])?;
        }
    }
    Ok(())
}

/// Recomputes the shared and exclusive bytes of manifest `id` from its rows and the user
/// counts of its config and layers.
fn recount_manifest(tx: &Transaction<'_>, id: i64) -> Result<()> {
    tx.prepare_cached(
        "UPDATE manifests SET
             shared_bytes =
                 (SELECT CASE WHEN c.manifest_count > 1 THEN b.size ELSE 0 END
                  FROM configs c JOIN blobs b ON b.id = c.id WHERE c.id = manifests.config_id)
               + (SELECT COALESCE(SUM(COALESCE(l.erofs_size, 0)), 0) FROM layers l
                  WHERE l.manifest_count > 1
                    AND l.id IN (SELECT ml.layer_id FROM manifest_layers ml WHERE ml.manifest_id = manifests.id)),
             exclusive_bytes =
                 (SELECT b.size FROM blobs b WHERE b.id = manifests.id)
               + COALESCE(fsmeta_size, 0) + COALESCE(vmdk_size, 0)
               + (SELECT CASE WHEN c.manifest_count = 1 THEN b.size ELSE 0 END
                  FROM configs c JOIN blobs b ON b.id = c.id WHERE c.id = manifests.config_id)
               + (SELECT COALESCE(SUM(COALESCE(l.erofs_size, 0)), 0) FROM layers l
                  WHERE l.manifest_count = 1
                    AND l.id IN (SELECT ml.layer_id FROM manifest_layers ml WHERE ml.manifest_id = manifests.id))
         WHERE id = ?1",
    )?
    .execute([id])?;
    Ok(())
}

/// SQLite reports a full disk as `SQLITE_FULL`: that is [`Error::NoSpace`] on the index file.
fn no_space(e: Error, path: &Path) -> Error {
    match e {
        Error::Index {
            source: rusqlite::Error::SqliteFailure(f, _),
        } if f.code == rusqlite::ErrorCode::DiskFull => Error::NoSpace {
            path: path.to_path_buf(),
            source: std::io::Error::from(std::io::ErrorKind::StorageFull),
        },
        other => other,
    }
}

/// Pause between attempts to switch a busy database to WAL.
const WAL_RETRY: Duration = Duration::from_millis(10);

/// Switches the database to WAL mode (a setting kept in the file, so only the first open of a
/// new cache changes anything). SQLite answers `SQLITE_BUSY` to the switch at once, without
/// waiting in its busy handler, while another connection holds a lock on the file: two
/// processes opening a new cache at the same moment (two loads, which open the index first).
/// So the switch is retried for up to [`BUSY_TIMEOUT`], as any other lock would be waited for.
fn enable_wal(conn: &Connection) -> Result<()> {
    let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
    loop {
        match conn.pragma_update(None, "journal_mode", "WAL") {
            Ok(()) => return Ok(()),
            Err(e)
                if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy)
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(WAL_RETRY);
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Brings the schema to [`SCHEMA_VERSION`] in one immediate transaction (foreign keys are off:
/// see [`Index::open`]). A migration that leaves a row naming a missing one is refused.
fn migrate(conn: &mut Connection) -> Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    match version {
        0 => {
            tx.execute_batch(include_str!("schema.sql"))?;
            tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        }
        SCHEMA_VERSION => {}
        older if (1..SCHEMA_VERSION).contains(&older) => {
            for script in &MIGRATIONS[(older - 1) as usize..] {
                tx.execute_batch(script)?;
            }
            let broken: Option<String> = tx
                .query_row("PRAGMA foreign_key_check", [], |r| r.get(0))
                .optional()?;
            if let Some(table) = broken {
                return Err(Error::CorruptCache {
                    reason: format!(
                        "migrating the index from version {older}: a row of {table} names a missing row"
                    ),
                });
            }
            tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        }
        newer => {
            return Err(Error::CorruptCache {
                reason: format!(
                    "index schema version {newer} is newer than this ocicache understands ({SCHEMA_VERSION})"
                ),
            });
        }
    }
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(n: u8) -> String {
        format!("sha256:{}", hex::encode([n; 32]))
    }

    fn b(n: u8) -> DigestBytes {
        [n; 32]
    }

    /// Every counter the rows keep equals the one computed from the graph's edges: the user
    /// counts of configs and layers, and each manifest's shared and exclusive bytes.
    fn assert_counters(ix: &Index) {
        let g = ix.size_graph(0).unwrap();
        let (config_users, layer_users) = g.user_counts();
        for (c, node) in g.configs.iter().enumerate() {
            assert_eq!(node.users, config_users[c], "config row {}", node.id);
        }
        for (l, node) in g.layers.iter().enumerate() {
            assert_eq!(node.users, layer_users[l], "layer row {}", node.id);
        }
        for (m, node) in g.manifests.iter().enumerate() {
            assert_eq!(
                (node.shared, node.exclusive),
                g.split(m, &config_users, &layer_users),
                "manifest row {}",
                node.id
            );
        }
    }

    /// A cache written by schema version 1 (layer blobs kept, no artifact sizes) opens, migrates
    /// to the current version in place, and keeps every row.
    #[test]
    fn version_1_index_migrates() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.db");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(include_str!("testdata/schema_v1.sql"))
                .unwrap();
            conn.pragma_update(None, "user_version", 1).unwrap();
            conn.execute_batch(&format!(
                "INSERT INTO blobs VALUES ('{m}', 100, 'manifest', 1), ('{c}', 10, 'config', 1), ('{b}', 1000, 'layer', 1);
                 INSERT INTO configs (digest) VALUES ('{c}');
                 INSERT INTO manifests VALUES ('{m}', 'mt', 'amd64', 'linux', NULL, 1, '{c}', 1110, 1110, 1);
                 INSERT INTO layers VALUES ('{l}', NULL, 1);
                 INSERT INTO manifest_layers VALUES ('{m}', 0, '{l}', '{b}', 'lt', 1000);
                 INSERT INTO image_refs VALUES ('docker.io/library/a:1', '{m}', 1, NULL);",
                m = d(1),
                c = d(2),
                b = d(3),
                l = d(4)
            ))
            .unwrap();
        }
        let ix = Index::open(&path).unwrap();
        let version: i64 = ix
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        assert_eq!(ix.list().unwrap().len(), 1);
        let layers = ix.layers_of(&d(1)).unwrap();
        assert_eq!(layers.len(), 1);
        assert_eq!(layers[0].blob_digest, d(3));
        assert_eq!(layers[0].erofs_size, None);
        // The version-1 layer blob stays named while its manifest lives.
        assert!(ix.blob_digests().unwrap().contains(&b(3)));
        assert_counters(&ix);
        // The migrated schema has the same tables and indexes as a new one.
        let fresh_dir = tempfile::tempdir().unwrap();
        let fresh = Index::open(&fresh_dir.path().join("index.db")).unwrap();
        assert_eq!(schema_names(&ix), schema_names(&fresh));
        drop(ix);
        // Opening again is a no-op.
        let mut ix = Index::open(&path).unwrap();
        // A prune takes the version-1 layer blob with its manifest, and only then.
        let kept = ix
            .collect_garbage(RefSelection::These(&[]), 0, false)
            .unwrap();
        assert!(kept.blobs.is_empty(), "{kept:?}");
        let gone = ix
            .collect_garbage(RefSelection::AllUnused, 0, false)
            .unwrap();
        let blobs: Vec<DigestBytes> = gone.blobs.iter().map(|(b, _)| *b).collect();
        assert_eq!(blobs, [b(1), b(2), b(3)]);
        assert!(ix.blob_digests().unwrap().is_empty());
    }

    /// The rows of a schema-3 index (the version ocicache 0.1 writes), or of schema 4 (which
    /// added content hash and broken columns at the end of `manifests` and `layers`), in their
    /// own text form.
    fn v3_rows(conn: &Connection) -> Vec<String> {
        let queries = [
            "SELECT 'blob', digest, size, kind, created_at FROM blobs",
            "SELECT 'config', * FROM configs",
            "SELECT 'manifest', * FROM manifests",
            "SELECT 'layer', * FROM layers",
            "SELECT 'manifest_layer', * FROM manifest_layers",
            "SELECT 'image_ref', * FROM image_refs",
            "SELECT 'use', * FROM uses",
        ];
        rows_of(conn, &queries)
    }

    /// The same rows read back from schema 5, with digests and media types as text again;
    /// `hashes` adds the columns schema 4 added, in its order.
    fn v5_rows(conn: &Connection, hashes: bool) -> Vec<String> {
        let (manifest_hashes, layer_hashes) = if hashes {
            (", fsmeta_hash, vmdk_hash, broken", ", erofs_hash")
        } else {
            ("", "")
        };
        let manifests = format!(
            "SELECT 'manifest', 'sha256:' || lower(hex(b.digest)), t.media_type, architecture, os, variant, layer_count,
                    'sha256:' || lower(hex(cb.digest)), total_size, disk_size, m.created_at, fsmeta_size, vmdk_size{manifest_hashes}
             FROM manifests m JOIN blobs b ON b.id = m.id JOIN blobs cb ON cb.id = m.config_id
                 JOIN media_types t ON t.id = m.media_type_id"
        );
        let layers = format!(
            "SELECT 'layer', 'sha256:' || lower(hex(diff_id)), erofs_size, created_at{layer_hashes} FROM layers"
        );
        let queries = [
            "SELECT 'blob', 'sha256:' || lower(hex(digest)), size, kind, created_at FROM blobs",
            "SELECT 'config', 'sha256:' || lower(hex(b.digest)), env, cmd, entrypoint, working_dir, user, labels, stop_signal
             FROM configs c JOIN blobs b ON b.id = c.id",
            &manifests,
            &layers,
            "SELECT 'manifest_layer', 'sha256:' || lower(hex(b.digest)), position, 'sha256:' || lower(hex(l.diff_id)),
                    'sha256:' || lower(hex(ml.blob_digest)), t.media_type, compressed_size
             FROM manifest_layers ml JOIN blobs b ON b.id = ml.manifest_id JOIN layers l ON l.id = ml.layer_id
                 JOIN media_types t ON t.id = ml.media_type_id",
            "SELECT 'image_ref', reference, 'sha256:' || lower(hex(b.digest)), r.created_at, last_used_at
             FROM image_refs r JOIN blobs b ON b.id = r.manifest_id",
            "SELECT 'use', u.id, holder_kind, holder_id, reference, 'sha256:' || lower(hex(b.digest)), since, expires_at
             FROM uses u JOIN blobs b ON b.id = u.manifest_id",
        ];
        rows_of(conn, &queries)
    }

    fn rows_of(conn: &Connection, queries: &[&str]) -> Vec<String> {
        let mut out = Vec::new();
        for q in queries {
            let mut stmt = conn.prepare(q).unwrap();
            let columns = stmt.column_count();
            let mut rows = stmt.query([]).unwrap();
            while let Some(row) = rows.next().unwrap() {
                let line: Vec<String> = (0..columns)
                    .map(|c| format!("{:?}", row.get_ref(c).unwrap()))
                    .collect();
                out.push(line.join("|"));
            }
        }
        out.sort();
        out
    }

    /// The rows of the schema-3 migration tests: blobs (a version-1 layer blob among them),
    /// configs, manifests sharing a config and a layer, a manifest listing a layer twice,
    /// references (one never used, one used), uses (one pinning, one expired) and a manifest no
    /// reference names.
    fn v3_fixture(conn: &Connection) {
        conn.execute_batch(&format!(
        "INSERT INTO blobs VALUES ('{m1}', 100, 'manifest', 1), ('{m2}', 200, 'manifest', 2),
             ('{m3}', 300, 'manifest', 3), ('{c1}', 10, 'config', 1), ('{c3}', 30, 'config', 3),
             ('{lb}', 5000, 'layer', 1);
         INSERT INTO configs VALUES ('{c1}', '[\"A=1\"]', '[\"sh\"]', NULL, '/w', 'u', '{{\"k\":\"v\"}}', 'SIGTERM'),
             ('{c3}', NULL, NULL, NULL, NULL, NULL, NULL, NULL);
         INSERT INTO manifests VALUES
             ('{m1}', 'application/vnd.oci.image.manifest.v1+json', 'amd64', 'linux', NULL, 3, '{c1}', 1, 9110, 1, 4096, 500),
             ('{m2}', 'application/vnd.oci.image.manifest.v1+json', 'arm64', 'linux', 'v8', 1, '{c1}', 2, 8210, 2, 4096, 500),
             ('{m3}', 'application/vnd.docker.distribution.manifest.v2+json', 'amd64', 'linux', NULL, 1, '{c3}', 3, 330, 3, NULL, NULL);
         INSERT INTO layers VALUES ('{l1}', 4096, 1), ('{l2}', 8192, 1), ('{l3}', NULL, 3);
         INSERT INTO manifest_layers VALUES
             ('{m1}', 0, '{l1}', '{g1}', 'application/vnd.oci.image.layer.v1.tar+gzip', 40),
             ('{m1}', 1, '{l2}', '{g2}', 'application/vnd.oci.image.layer.v1.tar+zstd', 80),
             ('{m1}', 2, '{l1}', '{g1}', 'application/vnd.oci.image.layer.v1.tar+gzip', 40),
             ('{m2}', 0, '{l2}', '{g2}', 'application/vnd.oci.image.layer.v1.tar+zstd', 80),
             ('{m3}', 0, '{l3}', '{lb}', 'application/vnd.docker.image.rootfs.diff.tar.gzip', 5000);
         INSERT INTO image_refs VALUES ('docker.io/library/a:1', '{m1}', 1, NULL),
             ('docker.io/library/a:2', '{m1}', 2, 7), ('ghcr.io/o/b:1', '{m2}', 2, NULL);
         INSERT INTO uses VALUES ('u1', 'sandbox', 's', 'ghcr.io/o/b:1', '{m2}', 5, NULL),
             ('u2', 'snapshot', 't', 'docker.io/library/c:1', '{m3}', 5, 6);",
        m1 = d(1),
        m2 = d(2),
        m3 = d(3),
        c1 = d(11),
        c3 = d(13),
        l1 = d(21),
        l2 = d(22),
        l3 = d(23),
        g1 = d(31),
        g2 = d(32),
        lb = d(40),
    ))
    .unwrap();
    }

    /// A schema-3 index migrates in one transaction and keeps every row of every table: blobs
    /// (a version-1 layer blob among them), configs, manifests sharing a config and a layer, a
    /// manifest listing a layer twice, references (one never used, one used), uses (one
    /// pinning, one expired) and a manifest no reference names. The counters come out as a
    /// new index would keep them.
    #[test]
    fn version_3_index_migrates_keeping_every_row() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.db");
        let before = {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(include_str!("testdata/schema_v3.sql"))
                .unwrap();
            conn.pragma_update(None, "user_version", 3).unwrap();
            v3_fixture(&conn);
            v3_rows(&conn)
        };
        let ix = Index::open(&path).unwrap();
        let version: i64 = ix
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        assert_eq!(v5_rows(&ix.conn, false), before, "every row, every column");
        let fresh_dir = tempfile::tempdir().unwrap();
        let fresh = Index::open(&fresh_dir.path().join("index.db")).unwrap();
        assert_eq!(schema_names(&ix), schema_names(&fresh));
        assert_counters(&ix);
        // m1 and m2 share c1 (10) and l2 (8192); m1 has l1 (4096) once.
        let mut usage = Vec::new();
        ix.image_usage(10, |r| {
            usage.push((r.reference, r.shared, r.exclusive, r.reclaimable));
            Ok(())
        })
        .unwrap();
        let own1 = 100 + 4096 + 500 + 4096;
        assert_eq!(
            usage,
            [
                ("docker.io/library/a:1".into(), 10 + 8192, own1, 0),
                ("docker.io/library/a:2".into(), 10 + 8192, own1, 0),
                ("ghcr.io/o/b:1".into(), 10 + 8192, 200 + 4096 + 500, 0),
            ]
        );
        // Opening again changes nothing.
        drop(ix);
        let mut ix = Index::open(&path).unwrap();
        assert_eq!(v5_rows(&ix.conn, false), before);
        // The unreferenced manifest (its use expired) goes with its config, layer, layer blob
        // and use; a's references go too, b is pinned.
        let gone = ix
            .collect_garbage(RefSelection::AllUnused, 10, false)
            .unwrap();
        assert_eq!(gone.image_refs.len(), 2);
        assert_eq!(gone.manifests, [b(1), b(3)]);
        assert_eq!(gone.layers, [b(21), b(23)]);
        let blobs: Vec<DigestBytes> = gone.blobs.iter().map(|(b, _)| *b).collect();
        assert_eq!(blobs, [b(1), b(3), b(13), b(40)]);
        assert_eq!(ix.uses(None).unwrap().len(), 1);
        assert_counters(&ix);
    }

    /// A schema-4 index (content hashes and broken marks on digest-keyed tables) migrates to
    /// integer keys keeping every row and every hash and mark.
    #[test]
    fn version_4_index_migrates_keeping_hashes_and_broken_marks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.db");
        let before = {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(include_str!("testdata/schema_v3.sql"))
                .unwrap();
            v3_fixture(&conn);
            conn.execute_batch(include_str!("migrate_v4.sql")).unwrap();
            conn.pragma_update(None, "user_version", 4).unwrap();
            conn.execute_batch(&format!(
                "UPDATE manifests SET fsmeta_hash = 'blake3:aa', vmdk_hash = 'blake3:bb' WHERE digest = '{m1}';
                 UPDATE manifests SET broken = 'layer damaged' WHERE digest = '{m2}';
                 UPDATE layers SET erofs_hash = 'blake3:cc' WHERE diff_id = '{l2}';",
                m1 = d(1),
                m2 = d(2),
                l2 = d(22),
            ))
            .unwrap();
            let marked: i64 = conn
                .query_row(
                    "SELECT (SELECT COUNT(*) FROM layers WHERE erofs_hash IS NOT NULL)
                          + (SELECT COUNT(*) FROM manifests WHERE broken IS NOT NULL)",
                    [],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(marked, 2);
            v3_rows(&conn)
        };
        let ix = Index::open(&path).unwrap();
        assert_eq!(v5_rows(&ix.conn, true), before, "every row, every column");
        let art = ix.artifacts_of(&d(1)).unwrap().unwrap();
        assert_eq!(art.fsmeta_hash.as_deref(), Some("blake3:aa"));
        assert_eq!(art.vmdk_hash.as_deref(), Some("blake3:bb"));
        let broken = ix.artifacts_of(&d(2)).unwrap().unwrap().broken;
        assert_eq!(broken.as_deref(), Some("layer damaged"));
        assert_counters(&ix);
    }

    /// A schema-5 index gains the origin column, NULL for every manifest it had, and keeps
    /// every row; then a pull records its repository, a load of the same manifest keeps it,
    /// and a pull from another repository replaces it.
    #[test]
    fn version_5_index_migrates_and_pulls_record_their_origin() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.db");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(include_str!("testdata/schema_v3.sql"))
                .unwrap();
            v3_fixture(&conn);
            // As Index::open migrates: with foreign keys off while tables are rebuilt.
            conn.pragma_update(None, "foreign_keys", false).unwrap();
            for script in &MIGRATIONS[2..4] {
                conn.execute_batch(script).unwrap();
            }
            conn.pragma_update(None, "user_version", 5).unwrap();
        }
        let before = v5_rows(&Connection::open(&path).unwrap(), true);
        let mut ix = Index::open(&path).unwrap();
        let version: i64 = ix
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        assert_eq!(v5_rows(&ix.conn, true), before, "every row, every column");
        let origins: i64 = ix
            .conn
            .query_row(
                "SELECT COUNT(*) FROM manifests WHERE origin IS NOT NULL",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(origins, 0);
        assert_eq!(ix.artifacts_of(&d(1)).unwrap().unwrap().origin, None);

        let origin = |ix: &Index| ix.artifacts_of(&d(70)).unwrap().unwrap().origin;
        let mut pulled = image(70, 71, &[(72, 73)], &["127.0.0.1:5000/a:1"]);
        pulled.origin = Some("127.0.0.1:5000/a".into());
        ix.insert_images(&[pulled], 10, || Ok(())).unwrap();
        assert_eq!(origin(&ix).as_deref(), Some("127.0.0.1:5000/a"));
        let loaded = image(70, 71, &[(72, 73)], &["docker.io/library/a:1"]);
        ix.insert_images(&[loaded], 11, || Ok(())).unwrap();
        assert_eq!(
            origin(&ix).as_deref(),
            Some("127.0.0.1:5000/a"),
            "a load keeps it"
        );
        let mut again = image(70, 71, &[(72, 73)], &[]);
        again.origin = Some("ghcr.io/o/a".into());
        ix.insert_images(&[again], 12, || Ok(())).unwrap();
        assert_eq!(
            origin(&ix).as_deref(),
            Some("ghcr.io/o/a"),
            "the last pull's"
        );
        assert_counters(&ix);
    }

    /// A cache of schema 1 migrated to the current version has the columns of a new one, in
    /// the same order (the content hash and broken columns of version 4 included).
    #[test]
    fn migrated_tables_have_the_columns_of_a_new_index() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.db");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(include_str!("testdata/schema_v1.sql"))
                .unwrap();
            conn.pragma_update(None, "user_version", 1).unwrap();
        }
        let migrated = Index::open(&path).unwrap();
        let fresh = Index::open(&dir.path().join("fresh.db")).unwrap();
        let columns = |ix: &Index| -> Vec<(String, String)> {
            let mut stmt = ix
                .conn
                .prepare(
                    "SELECT m.name, p.name FROM sqlite_schema m, pragma_table_info(m.name) p
                     WHERE m.type = 'table' ORDER BY m.name, p.cid",
                )
                .unwrap();
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap()
        };
        let got = columns(&migrated);
        assert_eq!(got, columns(&fresh));
        for (table, column) in [
            ("layers", "erofs_hash"),
            ("manifests", "fsmeta_hash"),
            ("manifests", "vmdk_hash"),
            ("manifests", "broken"),
        ] {
            assert!(
                got.contains(&(table.into(), column.into())),
                "{table}.{column}"
            );
        }
    }

    /// Tables and indexes of an index, by type and name.
    fn schema_names(ix: &Index) -> Vec<(String, String)> {
        let mut stmt = ix
            .conn
            .prepare("SELECT type, name FROM sqlite_schema ORDER BY type, name")
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    }

    fn image(manifest: u8, config: u8, layers: &[(u8, u8)], refs: &[&str]) -> NewImage {
        let mut blobs = vec![
            NewBlob {
                digest: d(manifest),
                size: 100,
                kind: "manifest",
            },
            NewBlob {
                digest: d(config),
                size: 10,
                kind: "config",
            },
        ];
        blobs.extend(layers.iter().map(|(b, _)| NewBlob {
            digest: d(*b),
            size: 1000,
            kind: "layer",
        }));
        NewImage {
            blobs,
            config: ConfigRow {
                digest: d(config),
                env: None,
                cmd: None,
                entrypoint: None,
                working_dir: None,
                user: None,
                labels: None,
                stop_signal: None,
            },
            manifest_digest: d(manifest),
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
            layers: layers
                .iter()
                .enumerate()
                .map(|(i, (b, diff))| LayerRow {
                    position: i as i64,
                    diff_id: d(*diff),
                    blob_digest: d(*b),
                    media_type: "l".into(),
                    compressed_size: 1000,
                    erofs_size: None,
                    erofs_hash: None,
                })
                .collect(),
            references: refs.iter().map(|s| s.to_string()).collect(),
            origin: None,
        }
    }

    #[test]
    fn shared_layers_survive_until_their_last_manifest_goes() {
        let dir = tempfile::tempdir().unwrap();
        let mut ix = Index::open(&dir.path().join("i.db")).unwrap();
        ix.insert_image(&image(1, 2, &[(10, 20), (11, 21)], &["a"]), 1)
            .unwrap();
        ix.insert_image(&image(3, 4, &[(10, 20), (12, 22)], &["b"]), 2)
            .unwrap();
        assert_eq!(
            ix.list()
                .unwrap()
                .iter()
                .map(|r| r.reference.as_str())
                .collect::<Vec<_>>(),
            ["b", "a"]
        );
        let dry = ix
            .collect_garbage(RefSelection::These(&["a".into()]), 0, true)
            .unwrap();
        let got = ix
            .collect_garbage(RefSelection::These(&["a".into()]), 0, false)
            .unwrap();
        assert_eq!(dry, got, "a dry run reports exactly what the real run does");
        assert_eq!(got.image_refs.len(), 1);
        assert_eq!(got.manifests, [b(1)]);
        assert_eq!(got.layers, [b(21)]);
        let gone: Vec<_> = got.blobs.iter().map(|(b, _)| *b).collect();
        assert_eq!(gone, [b(1), b(2), b(11)]);
        assert_eq!(ix.blob_digests().unwrap().len(), 4);
        assert_counters(&ix);
        // The transaction's larger page cache is given back, and so is the checkpoint.
        let cache: i64 = ix
            .conn
            .query_row("PRAGMA cache_size", [], |r| r.get(0))
            .unwrap();
        assert_eq!(cache, -2000, "SQLite's default page cache again");
        let autocheckpoint: i64 = ix
            .conn
            .query_row("PRAGMA wal_autocheckpoint", [], |r| r.get(0))
            .unwrap();
        assert_eq!(autocheckpoint, 1000, "SQLite's default checkpoint again");
    }

    /// The size graph and per-reference usage: a layer listed twice by one manifest counts once,
    /// shared configs and layers are shared, uses pin, and every byte is attributed.
    #[test]
    fn size_graph_and_usage_count_each_artifact_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut ix = Index::open(&dir.path().join("i.db")).unwrap();
        let mut one = image(1, 2, &[(10, 20), (11, 21), (10, 20)], &["a", "a2"]);
        let mut two = image(3, 2, &[(11, 21), (12, 22)], &["b"]);
        for (img, fsmeta) in [(&mut one, 7000), (&mut two, 9000)] {
            img.fsmeta_size = Some(fsmeta);
            img.vmdk_size = Some(500);
            for (l, size) in img.layers.iter_mut().zip([4096, 8192, 4096]) {
                l.erofs_size = Some(size);
            }
        }
        two.layers[0].erofs_size = Some(8192);
        two.layers[1].erofs_size = Some(12288);
        ix.insert_image(&one, 1).unwrap();
        assert_counters(&ix);
        ix.insert_image(&two, 1).unwrap();
        assert_counters(&ix);
        let u = UseRow {
            id: "u".into(),
            holder_kind: "sandbox".into(),
            holder_id: "s".into(),
            reference: "b".into(),
            manifest_digest: d(3),
            since: 1,
            expires_at: None,
        };
        ix.add_use(&u, &[]).unwrap();

        let g = ix.size_graph(0).unwrap();
        let id = |r: &str| ix.get(r).unwrap().unwrap().manifest_id;
        let m1 = &g.manifests[g.manifest_ids[&id("a")]];
        let m2 = &g.manifests[g.manifest_ids[&id("b")]];
        assert_eq!(m1.layers.len(), 2, "layer 20 is listed twice, counted once");
        assert_eq!((m1.own, m1.refs, m1.pinned), (100 + 7000 + 500, 2, false));
        assert_eq!((m2.own, m2.refs, m2.pinned), (100 + 9000 + 500, 1, true));
        assert_eq!(m1.config, m2.config);
        assert_eq!(g.configs.iter().map(|c| c.bytes).collect::<Vec<_>>(), [10]);
        let mut layers: Vec<u64> = g.layers.iter().map(|l| l.bytes).collect();
        layers.sort();
        assert_eq!(layers, [4096, 8192, 12288]);

        let mut rows = Vec::new();
        ix.image_usage(0, |r| {
            rows.push((r.reference, r.shared, r.exclusive, r.reclaimable));
            Ok(())
        })
        .unwrap();
        // Shared: the config (10) and layer 21 (8192). Exclusive: own bytes and own layers.
        let (own1, own2) = (100 + 7000 + 500 + 4096, 100 + 9000 + 500 + 12288);
        assert_eq!(
            rows,
            [
                ("a".to_string(), 10 + 8192, own1, 0),
                ("a2".to_string(), 10 + 8192, own1, 0),
                ("b".to_string(), 10 + 8192, own2, 0),
            ],
            "two references share a's manifest, and a use pins b's"
        );
        assert!(ix.remove_use("u").unwrap());
        let mut b = None;
        ix.image_usage(0, |r| {
            if r.reference == "b" {
                b = Some(r.reclaimable);
            }
            Ok(())
        })
        .unwrap();
        assert_eq!(
            b,
            Some(own2),
            "unpinned and alone, b reclaims its exclusive bytes"
        );
        // Once b goes, a uses the config and layer 21 alone: they are exclusive to it now.
        ix.collect_garbage(RefSelection::These(&["b".into()]), 0, false)
            .unwrap();
        assert_counters(&ix);
        let mut rows = Vec::new();
        ix.image_usage(0, |r| {
            rows.push((r.reference, r.shared, r.exclusive));
            Ok(())
        })
        .unwrap();
        assert_eq!(
            rows,
            [
                ("a".to_string(), 0, own1 + 10 + 8192),
                ("a2".to_string(), 0, own1 + 10 + 8192),
            ]
        );
    }

    /// The counters the rows keep stay equal to those computed from the graph through every
    /// kind of change: loads sharing configs and layers (one at a time and several in one
    /// transaction), a re-pointed reference, a rebuilt fsmeta, a version-1 layer converted
    /// again, removals and prunes.
    #[test]
    fn counters_follow_every_change() {
        let dir = tempfile::tempdir().unwrap();
        let mut ix = Index::open(&dir.path().join("i.db")).unwrap();
        let sized = |mut img: NewImage, fsmeta: i64| {
            img.fsmeta_size = Some(fsmeta);
            img.vmdk_size = Some(300);
            for (k, l) in img.layers.iter_mut().enumerate() {
                l.erofs_size = Some(4096 * (k as i64 + 1));
            }
            img
        };
        ix.insert_image(&sized(image(1, 2, &[(10, 20), (11, 21)], &["a"]), 1000), 1)
            .unwrap();
        assert_counters(&ix);
        ix.insert_images(
            &[
                sized(image(3, 2, &[(10, 20)], &["b"]), 2000),
                sized(image(4, 5, &[(12, 22), (11, 21)], &["c", "a"]), 3000),
            ],
            2,
            || Ok(()),
        )
        .unwrap();
        assert_counters(&ix);
        // A layer recorded without an image (version 1) gets one: its users' figures change.
        ix.insert_image(&image(6, 7, &[(13, 23)], &["d"]), 3)
            .unwrap();
        ix.insert_image(&image(8, 7, &[(13, 23)], &["e"]), 3)
            .unwrap();
        assert_counters(&ix);
        ix.insert_image(&sized(image(9, 7, &[(13, 23)], &["f"]), 10), 4)
            .unwrap();
        assert_counters(&ix);
        ix.set_image_artifacts(&d(1), (5000, None), (400, None))
            .unwrap();
        assert_counters(&ix);
        ix.collect_garbage(RefSelection::These(&["c".into()]), 5, false)
            .unwrap();
        assert_counters(&ix);
        ix.collect_garbage(RefSelection::These(&["b".into(), "d".into()]), 5, false)
            .unwrap();
        assert_counters(&ix);
        ix.collect_garbage(RefSelection::AllUnused, 5, false)
            .unwrap();
        assert_counters(&ix);
        assert!(ix.list().unwrap().is_empty());
        assert!(ix.size_graph(0).unwrap().manifests.is_empty());
    }

    /// A counter that disagrees with the rows (an index edited by hand, or an older bug) is
    /// rewritten by the next collection, and never decides what goes.
    #[test]
    fn a_collection_rewrites_counters_that_disagree_with_the_rows() {
        let dir = tempfile::tempdir().unwrap();
        let mut ix = Index::open(&dir.path().join("i.db")).unwrap();
        ix.insert_image(&image(1, 2, &[(10, 20)], &["a"]), 1)
            .unwrap();
        ix.insert_image(&image(3, 2, &[(10, 20)], &["b"]), 1)
            .unwrap();
        ix.conn
            .execute_batch(
                "UPDATE layers SET manifest_count = 1; UPDATE configs SET manifest_count = 7;
                 UPDATE manifests SET shared_bytes = 0, exclusive_bytes = 1;",
            )
            .unwrap();
        let got = ix
            .collect_garbage(RefSelection::These(&["a".into()]), 0, false)
            .unwrap();
        assert_eq!(
            got.layers,
            Vec::<DigestBytes>::new(),
            "b still uses layer 20"
        );
        assert_eq!(got.manifests, [b(1)]);
        assert_counters(&ix);
    }

    #[test]
    fn uses_pin_manifests_through_prune() {
        let dir = tempfile::tempdir().unwrap();
        let mut ix = Index::open(&dir.path().join("i.db")).unwrap();
        ix.insert_image(&image(1, 2, &[(10, 20)], &["a"]), 1)
            .unwrap();
        ix.insert_image(&image(3, 4, &[(11, 21)], &["b"]), 1)
            .unwrap();
        let u = UseRow {
            id: "u1".into(),
            holder_kind: "snapshot".into(),
            holder_id: "s".into(),
            reference: "a".into(),
            manifest_digest: d(1),
            since: 5,
            expires_at: None,
        };
        assert_eq!(ix.add_use(&u, &["a".into()]).unwrap(), u);
        let b_id = ix.get("b").unwrap().unwrap().id;
        let got = ix
            .collect_garbage(RefSelection::AllUnused, 0, false)
            .unwrap();
        assert_eq!(got.image_refs, [b_id]);
        assert_eq!(got.manifests, [b(3)]);
        assert_eq!(ix.get("a").unwrap().unwrap().last_used_at, Some(5));
        // A snapshot keeps the manifest after its references go.
        let got = ix
            .collect_garbage(RefSelection::These(&["a".into()]), 0, false)
            .unwrap();
        assert!(got.manifests.is_empty());
        assert!(ix.remove_use("u1").unwrap());
        assert!(!ix.remove_use("u1").unwrap());
        let got = ix
            .collect_garbage(RefSelection::AllUnused, 0, false)
            .unwrap();
        assert_eq!(got.manifests, [b(1)]);
        assert_counters(&ix);
    }

    /// A digest that is both a manifest and a config (one document valid as both) is one
    /// blob: it stays while either still needs it, and its file is deleted once, with the
    /// last.
    #[test]
    fn a_blob_that_is_a_manifest_and_a_config_goes_with_its_last_user() {
        let dir = tempfile::tempdir().unwrap();
        let mut ix = Index::open(&dir.path().join("i.db")).unwrap();
        ix.insert_image(&image(1, 2, &[(10, 20)], &["a"]), 1)
            .unwrap();
        // b's config is a's manifest document.
        ix.insert_image(&image(3, 1, &[(10, 20)], &["b"]), 1)
            .unwrap();
        assert_counters(&ix);
        let got = ix
            .collect_garbage(RefSelection::These(&["a".into()]), 0, false)
            .unwrap();
        assert_eq!(got.manifests, [b(1)], "a's fsmeta and VMDK go");
        let blobs: Vec<_> = got.blobs.iter().map(|(b, _)| *b).collect();
        assert_eq!(blobs, [b(2)], "the blob b's config still needs stays");
        assert!(ix.blob_digests().unwrap().contains(&b(1)));
        assert_counters(&ix);
        let got = ix
            .collect_garbage(RefSelection::These(&["b".into()]), 0, false)
            .unwrap();
        let blobs: Vec<_> = got.blobs.iter().map(|(b, _)| *b).collect();
        assert_eq!(
            blobs,
            [b(1), b(3), b(10)],
            "with the (version-1) layer blob"
        );
        assert!(ix.blob_digests().unwrap().is_empty());
    }

    /// Digests cross this module's edge as text and are stored as 32 bytes.
    #[test]
    fn digests_convert_between_text_and_bytes() {
        let text = d(0xab);
        assert_eq!(digest_bytes(&text), Some(b(0xab)));
        assert_eq!(digest_text(&b(0xab)), text);
        let mut buf = [0u8; DIGEST_TEXT_LEN];
        assert_eq!(digest_text_in(&b(0xab), &mut buf).unwrap(), text);
        for bad in [
            "",
            "sha256:",
            "sha256:AB",
            "md5:00",
            &text.to_uppercase(),
            &text[1..],
        ] {
            assert_eq!(digest_bytes(bad), None, "{bad}");
        }
    }

    /// A stored digest that is not 32 bytes (an edited index) is CORRUPT_CACHE, not a panic.
    #[test]
    fn a_stored_digest_of_the_wrong_length_is_corrupt_cache() {
        let dir = tempfile::tempdir().unwrap();
        let mut ix = Index::open(&dir.path().join("i.db")).unwrap();
        ix.insert_image(&image(1, 2, &[(10, 20)], &["a"]), 1)
            .unwrap();
        ix.conn
            .execute_batch(
                "PRAGMA ignore_check_constraints = ON; UPDATE layers SET diff_id = x'0102';
                 PRAGMA ignore_check_constraints = OFF;",
            )
            .unwrap();
        assert_eq!(
            ix.layers_of(&d(1)).err().map(|e| e.code()),
            Some("CORRUPT_CACHE")
        );
        assert_eq!(
            ix.collect_garbage(RefSelection::AllUnused, 0, false)
                .err()
                .map(|e| e.code()),
            Some("CORRUPT_CACHE")
        );
        assert_eq!(
            ix.list().unwrap().len(),
            1,
            "the failed collection rolled back"
        );
    }

    /// Two processes (or connections) opening a new cache at the same moment: SQLite refused
    /// the switch to WAL with "database is locked" at once, without waiting, so one of two
    /// concurrent first loads failed with `INDEX`.
    #[test]
    fn concurrent_first_opens_of_a_new_index_all_succeed() {
        let dir = tempfile::tempdir().unwrap();
        for round in 0..100 {
            let path = dir.path().join(format!("index-{round}.db"));
            let opens: Vec<_> = (0..4)
                .map(|_| {
                    let path = path.clone();
                    std::thread::spawn(move || Index::open(&path).map(|_| ()))
                })
                .collect();
            for open in opens {
                let result = open.join().unwrap();
                assert!(result.is_ok(), "round {round}: {:?}", result.err());
            }
        }
    }

    #[test]
    fn refuses_newer_schema() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("i.db");
        drop(Index::open(&path).unwrap());
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", 99)
            .unwrap();
        assert_eq!(
            Index::open(&path).err().map(|e| e.code()),
            Some("CORRUPT_CACHE")
        );
    }

    /// Regression: SQLite resolves symlinks in the path it opens by itself, so an `index.db`
    /// that is a symlink (swapped in after the cache checked it) opened the file it points to.
    #[cfg(unix)]
    #[test]
    fn a_symlinked_index_file_is_refused_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside.db");
        drop(Index::open(&outside).unwrap());
        let before = std::fs::read(&outside).unwrap();
        let cache = dir.path().join("cache");
        std::fs::create_dir(&cache).unwrap();
        std::os::unix::fs::symlink(&outside, cache.join("index.db")).unwrap();
        match Index::open(&cache.join("index.db")) {
            Err(Error::CorruptCacheEntry { path, found, .. }) => {
                assert_eq!((path, found), (cache.join("index.db"), "a symlink"));
            }
            Err(e) => panic!("expected CorruptCacheEntry, got {e}"),
            Ok(_) => panic!("expected CorruptCacheEntry, got an open index"),
        }
        assert_eq!(std::fs::read(&outside).unwrap(), before);
        // The folder itself may be reached through a symlink.
        let linked = dir.path().join("linked");
        std::os::unix::fs::symlink(dir.path(), &linked).unwrap();
        drop(Index::open(&linked.join("fresh.db")).unwrap());
        assert!(dir.path().join("fresh.db").exists());
    }
}
