//! The SQLite index (`index.db`): the only module with SQL.
//!
//! The schema lives in `schema.sql` (version in `PRAGMA user_version`); [`Index::open`] creates
//! it on a new cache and refuses a newer version it does not know. Every change runs in one
//! transaction, so readers and other processes see a load, a removal or a prune whole or not at
//! all. The database runs in WAL mode with a busy timeout, so several processes can share it.
//!
//! Garbage collection is set-based here ([`Index::collect_garbage`]): roots are references and
//! uses; a manifest no root names goes, then configs, layers and blobs nothing left names. The
//! caller deletes the files of the blobs it returns *after* the commit (see [`crate::gc`]).
//!
//! Decisions that depend on the index run inside the write transaction that acts on them
//! (`BEGIN IMMEDIATE`, so no other connection writes between the reads and the commit): a
//! prune's candidates and a remove's holder check inside the transaction that deletes
//! ([`Index::collect_planned`]), an acquire's resolution of its reference inside the one that
//! records the use ([`Index::add_use_with`]). Whichever of two racing processes takes the
//! write lock first, the second sees its commit.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{
    Connection, OpenFlags, OptionalExtension, Transaction, TransactionBehavior, params,
};

use crate::error::{Error, Result};

mod rows;
mod usage;

pub use rows::JsonObject;
pub use usage::{Candidate, CandidateFilter, ImageUsageRow, KindTotals, ManifestNode, SizeGraph};

/// Current schema version, stored in `PRAGMA user_version`.
pub const SCHEMA_VERSION: i64 = 4;
/// Migration scripts: entry `i` takes version `i + 1` to `i + 2`.
const MIGRATIONS: &[&str] = &[
    include_str!("migrate_v2.sql"),
    include_str!("migrate_v3.sql"),
    include_str!("migrate_v4.sql"),
];
/// Page cache (KiB) of the garbage-collecting transaction.
const GC_CACHE_KIB: i64 = 64 * 1024;
/// How long a writer waits for another process's transaction before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(60);

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
    /// Whether `reference` is an `image_refs` row (false: a name given to a manifest that only
    /// uses hold, see [`Index::manifest_row`]).
    pub tagged: bool,
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
}

/// What one garbage collection removed from the index.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Collected {
    /// References deleted.
    pub image_refs: Vec<String>,
    /// Manifest digests deleted.
    pub manifests: Vec<String>,
    /// Layer diff_ids deleted.
    pub layers: Vec<String>,
    /// Blob digests whose files must now be deleted, with recorded sizes.
    pub blobs: Vec<(String, i64)>,
}

/// Digests the index names, by kind (`sha256:<hex>`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LiveArtifacts {
    /// Blob digests (files under `blobs/`).
    pub blobs: HashSet<String>,
    /// diff_ids of layers with an EROFS image (files under `layers/`).
    pub layers: HashSet<String>,
    /// Manifest digests (their fsmeta and VMDK files).
    pub manifests: HashSet<String>,
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
        // WAL lets readers run during a writer's transaction and survives a killed writer;
        // FULL makes each commit durable before a load reports success.
        enable_wal(&conn)?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", true)?;
        migrate(&mut conn)?;
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
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
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
        for r in references {
            tx.execute(
                "UPDATE image_refs SET last_used_at = ?2 WHERE reference = ?1",
                params![r, now],
            )?;
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
        let tx = self.conn.transaction()?;
        tx.execute(
            "UPDATE manifests SET
                 disk_size = disk_size - COALESCE(fsmeta_size, 0) - COALESCE(vmdk_size, 0) + ?2 + ?3,
                 fsmeta_size = ?2, vmdk_size = ?3,
                 fsmeta_hash = COALESCE(?4, fsmeta_hash), vmdk_hash = COALESCE(?5, vmdk_hash)
             WHERE digest = ?1",
            params![manifest_digest, fsmeta.0, vmdk.0, fsmeta.1, vmdk.1],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// What the index records of a manifest's fsmeta and VMDK, and its broken mark.
    pub fn artifacts_of(&self, manifest_digest: &str) -> Result<Option<ManifestArtifacts>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT fsmeta_size, fsmeta_hash, vmdk_size, vmdk_hash, broken FROM manifests WHERE digest = ?1",
        )?;
        Ok(stmt
            .query_row([manifest_digest], |r| {
                Ok(ManifestArtifacts {
                    fsmeta_size: r.get(0)?,
                    fsmeta_hash: r.get(1)?,
                    vmdk_size: r.get(2)?,
                    vmdk_hash: r.get(3)?,
                    broken: r.get(4)?,
                })
            })
            .optional()?)
    }

    /// Marks a manifest broken (with the reason `boot_disk` gives) or, with `None`, sound.
    pub fn set_broken(&mut self, manifest_digest: &str, reason: Option<&str>) -> Result<()> {
        self.conn.execute(
            "UPDATE manifests SET broken = ?2 WHERE digest = ?1",
            params![manifest_digest, reason],
        )?;
        Ok(())
    }

    /// Every manifest digest, sorted.
    pub fn manifest_digests(&self) -> Result<Vec<String>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT digest FROM manifests ORDER BY digest")?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Manifest digests starting with `prefix` (`sha256:` and at least one hex digit), sorted.
    pub fn manifests_with_prefix(&self, prefix: &str) -> Result<Vec<String>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT digest FROM manifests WHERE substr(digest, 1, length(?1)) = ?1 ORDER BY digest",
        )?;
        let rows = stmt.query_map([prefix], |r| r.get::<_, String>(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Rows of every reference pointing at `digest`, newest first.
    pub fn refs_of(&self, digest: &str) -> Result<Vec<HandleRow>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "{HANDLE_SELECT} WHERE r.manifest_digest = ?1 ORDER BY r.created_at DESC, r.reference"
        ))?;
        let rows = stmt.query_map([digest], handle_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// A row for manifest `digest` under the name `reference` (no `image_refs` row needed):
    /// created when the manifest was recorded, last used when a use last acquired it.
    pub fn manifest_row(&self, digest: &str, reference: &str) -> Result<Option<HandleRow>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT ?2, m.digest, m.created_at, (SELECT max(u.since) FROM uses u WHERE u.manifest_digest = m.digest),
                 m.architecture, m.os, m.variant, m.layer_count, m.disk_size
             FROM manifests m WHERE m.digest = ?1",
        )?;
        Ok(stmt
            .query_row(params![digest, reference], |r| {
                handle_row(r).map(|row| HandleRow {
                    tagged: false,
                    ..row
                })
            })
            .optional()?)
    }

    /// Whether a use of repository `name` (canonical, without tag) holds `digest`.
    pub fn used_in_repo(&self, name: &str, digest: &str) -> Result<bool> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM uses WHERE manifest_digest = ?2
                AND (substr(reference, 1, length(?1) + 1) = ?1 || ':'
                  OR substr(reference, 1, length(?1) + 1) = ?1 || '@'))",
        )?;
        Ok(stmt.query_row(params![name, digest], |r| r.get(0))?)
    }

    /// The manifests listing layer `diff_id`, sorted.
    pub fn manifests_using_layer(&self, diff_id: &str) -> Result<Vec<String>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT DISTINCT manifest_digest FROM manifest_layers WHERE diff_id = ?1 ORDER BY manifest_digest",
        )?;
        let rows = stmt.query_map([diff_id], |r| r.get::<_, String>(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The size recorded for blob `digest`.
    pub fn blob_size(&self, digest: &str) -> Result<Option<i64>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT size FROM blobs WHERE digest = ?1")?;
        Ok(stmt.query_row([digest], |r| r.get(0)).optional()?)
    }

    /// The config digest of a manifest.
    pub fn config_digest_of(&self, manifest_digest: &str) -> Result<Option<String>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT config_digest FROM manifests WHERE digest = ?1")?;
        Ok(stmt.query_row([manifest_digest], |r| r.get(0)).optional()?)
    }

    /// Manifests no reference names that a use holds (expired or not: the files are there
    /// until a prune), each with the canonical references its uses acquired, oldest use first.
    pub fn untagged_in_use(&self) -> Result<Vec<(String, Vec<String>)>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT u.manifest_digest, u.reference FROM uses u
             WHERE NOT EXISTS (SELECT 1 FROM image_refs r WHERE r.manifest_digest = u.manifest_digest)
             ORDER BY u.manifest_digest, u.since, u.id",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        for row in rows {
            let (digest, reference) = row?;
            match out.last_mut() {
                Some((d, refs)) if *d == digest => refs.push(reference),
                _ => out.push((digest, vec![reference])),
            }
        }
        Ok(out)
    }

    /// Every reference, newest first (ties by reference).
    pub fn list(&self) -> Result<Vec<HandleRow>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "{HANDLE_SELECT} ORDER BY r.created_at DESC, r.reference"
        ))?;
        let rows = stmt.query_map([], handle_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The row of one canonical reference.
    pub fn get(&self, reference: &str) -> Result<Option<HandleRow>> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!("{HANDLE_SELECT} WHERE r.reference = ?1"))?;
        Ok(stmt.query_row([reference], handle_row).optional()?)
    }

    /// Rows of references in repository `name` (canonical, without tag) pointing at `digest`.
    pub fn find_by_digest(&self, name: &str, digest: &str) -> Result<Vec<HandleRow>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "{HANDLE_SELECT} WHERE r.manifest_digest = ?2
                AND (substr(r.reference, 1, length(?1) + 1) = ?1 || ':'
                  OR substr(r.reference, 1, length(?1) + 1) = ?1 || '@')
             ORDER BY r.created_at DESC, r.reference"
        ))?;
        let rows = stmt.query_map(params![name, digest], handle_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The config of a manifest, if recorded.
    pub fn config_of(&self, manifest_digest: &str) -> Result<Option<ConfigRow>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT c.digest, c.env, c.cmd, c.entrypoint, c.working_dir, c.user, c.labels, c.stop_signal
             FROM manifests m JOIN configs c ON c.digest = m.config_digest WHERE m.digest = ?1",
        )?;
        Ok(stmt
            .query_row([manifest_digest], |r| {
                Ok(ConfigRow {
                    digest: r.get(0)?,
                    env: r.get(1)?,
                    cmd: r.get(2)?,
                    entrypoint: r.get(3)?,
                    working_dir: r.get(4)?,
                    user: r.get(5)?,
                    labels: r.get(6)?,
                    stop_signal: r.get(7)?,
                })
            })
            .optional()?)
    }

    /// The layers of a manifest, bottom to top.
    pub fn layers_of(&self, manifest_digest: &str) -> Result<Vec<LayerRow>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT ml.position, ml.diff_id, ml.blob_digest, ml.media_type, ml.compressed_size, l.erofs_size, l.erofs_hash
             FROM manifest_layers ml JOIN layers l ON l.diff_id = ml.diff_id
             WHERE ml.manifest_digest = ?1 ORDER BY ml.position",
        )?;
        let rows = stmt.query_map([manifest_digest], |r| {
            Ok(LayerRow {
                position: r.get(0)?,
                diff_id: r.get(1)?,
                blob_digest: r.get(2)?,
                media_type: r.get(3)?,
                compressed_size: r.get(4)?,
                erofs_size: r.get(5)?,
                erofs_hash: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Uses, optionally only those pinning `manifest_digest`, oldest first.
    pub fn uses(&self, manifest_digest: Option<&str>) -> Result<Vec<UseRow>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, holder_kind, holder_id, reference, manifest_digest, since, expires_at FROM uses
             WHERE ?1 IS NULL OR manifest_digest = ?1 ORDER BY since, id",
        )?;
        let rows = stmt.query_map([manifest_digest], use_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
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
        for r in &touch {
            tx.execute(
                "UPDATE image_refs SET last_used_at = ?2 WHERE reference = ?1",
                params![r, new.since],
            )?;
        }
        tx.commit()?;
        Ok(row)
    }

    /// Deletes every use of one holder; returns how many there were.
    pub fn remove_uses_of(&mut self, holder_kind: &str, holder_id: &str) -> Result<usize> {
        Ok(self.conn.execute(
            "DELETE FROM uses WHERE holder_kind = ?1 AND holder_id = ?2",
            params![holder_kind, holder_id],
        )?)
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
        tx.execute(
            "INSERT INTO image_refs (reference, manifest_digest, created_at, last_used_at)
                 VALUES (?1, ?2, ?3, NULL)
                 ON CONFLICT (reference) DO UPDATE SET
                     manifest_digest = excluded.manifest_digest,
                     created_at = excluded.created_at,
                     last_used_at = NULL
                 WHERE image_refs.manifest_digest <> excluded.manifest_digest",
            params![reference, manifest, now],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Deletes a use; returns whether it existed.
    pub fn remove_use(&mut self, id: &str) -> Result<bool> {
        Ok(self.conn.execute("DELETE FROM uses WHERE id = ?1", [id])? == 1)
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
        self.gc_transaction(dry_run, |_, tx| collect_in(tx, refs, now))
    }

    /// [`Index::collect_garbage`] of the references `decide` picks, where `decide` reads the
    /// index inside the same write transaction (`BEGIN IMMEDIATE`) that deletes: candidates,
    /// holders and sizes cannot change between the decision and the deletion, so a use another
    /// process records meanwhile is either seen by `decide` or recorded after the commit (and
    /// then finds its reference gone). `decide` returns the canonical references to remove and
    /// a value passed through (a plan, a size); its error rolls back and is returned. With
    /// `dry_run` the transaction is rolled back.
    pub fn collect_planned<T>(
        &mut self,
        now: i64,
        dry_run: bool,
        decide: impl FnOnce(&Index) -> Result<(Vec<String>, T)>,
    ) -> Result<(Collected, T)> {
        self.gc_transaction(dry_run, |ix, tx| {
            let (refs, decided) = decide(ix)?;
            Ok((collect_in(tx, RefSelection::These(&refs), now)?, decided))
        })
    }

    /// Runs `body` in one immediate transaction with a larger page cache, then commits (or,
    /// with `dry_run`, rolls back). `body` gets the index, whose queries run inside the
    /// transaction, and the transaction for its changes.
    fn gc_transaction<R>(
        &mut self,
        dry_run: bool,
        body: impl FnOnce(&Index, &Transaction<'_>) -> Result<R>,
    ) -> Result<R> {
        // Deleting tens of thousands of rows touches pages all over the tables and their
        // indexes, which SQLite's default 2 MiB page cache keeps reading again: give this
        // transaction a larger cache, then shrink it back (freeing the pages).
        let previous: i64 = self.conn.query_row("PRAGMA cache_size", [], |r| r.get(0))?;
        self.conn.pragma_update(None, "cache_size", -GC_CACHE_KIB)?;
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
        let restored = self.conn.pragma_update(None, "cache_size", previous);
        let out = result?;
        restored?;
        Ok(out)
    }

    /// Digests of every recorded blob (for reconciling the disk with the index).
    pub fn blob_digests(&self) -> Result<HashSet<String>> {
        self.column_set("SELECT digest FROM blobs")
    }

    /// Everything the index names, by artifact kind (for reconciling the disk with the index).
    pub fn live_artifacts(&self) -> Result<LiveArtifacts> {
        Ok(LiveArtifacts {
            blobs: self.column_set("SELECT digest FROM blobs")?,
            layers: self.column_set("SELECT diff_id FROM layers WHERE erofs_size IS NOT NULL")?,
            manifests: self.column_set("SELECT digest FROM manifests")?,
        })
    }

    fn column_set(&self, sql: &str) -> Result<HashSet<String>> {
        let mut stmt = self.conn.prepare_cached(sql)?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

/// SQL condition: use `u` still pins its manifest at time `?1`.
const LIVE_USE: &str = "(u.expires_at IS NULL OR u.expires_at > ?1)";

const HANDLE_SELECT: &str = "SELECT r.reference, r.manifest_digest, r.created_at, r.last_used_at,
        m.architecture, m.os, m.variant, m.layer_count, m.disk_size
    FROM image_refs r JOIN manifests m ON m.digest = r.manifest_digest";

fn handle_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<HandleRow> {
    Ok(HandleRow {
        reference: r.get(0)?,
        manifest_digest: r.get(1)?,
        created_at: r.get(2)?,
        last_used_at: r.get(3)?,
        architecture: r.get(4)?,
        os: r.get(5)?,
        variant: r.get(6)?,
        layer_count: r.get(7)?,
        disk_size: r.get(8)?,
        tagged: true,
    })
}

fn use_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<UseRow> {
    Ok(UseRow {
        id: r.get(0)?,
        holder_kind: r.get(1)?,
        holder_id: r.get(2)?,
        reference: r.get(3)?,
        manifest_digest: r.get(4)?,
        since: r.get(5)?,
        expires_at: r.get(6)?,
    })
}

/// Records a use (idempotent per holder and manifest, renewing its expiry) and returns the
/// stored row.
fn insert_use_in(tx: &Transaction<'_>, new: &UseRow) -> Result<UseRow> {
    tx.execute(
        "INSERT INTO uses (id, holder_kind, holder_id, reference, manifest_digest, since, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (holder_kind, holder_id, manifest_digest) DO UPDATE SET expires_at = excluded.expires_at",
        params![new.id, new.holder_kind, new.holder_id, new.reference, new.manifest_digest, new.since, new.expires_at],
    )?;
    Ok(tx.query_row(
        "SELECT id, holder_kind, holder_id, reference, manifest_digest, since, expires_at FROM uses
         WHERE holder_kind = ?1 AND holder_id = ?2 AND manifest_digest = ?3",
        params![new.holder_kind, new.holder_id, new.manifest_digest],
        use_row,
    )?)
}

/// Writes the rows of one image (see [`Index::insert_images`]). A new reference is last used
/// now; one recorded again is used again now (`last_used_at` refreshed), and keeps its
/// `created_at` unless it is re-pointed.
fn insert_in(tx: &Transaction<'_>, image: &NewImage, now: i64) -> Result<()> {
    for b in &image.blobs {
        tx.execute(
            "INSERT OR IGNORE INTO blobs (digest, size, kind, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![b.digest, b.size, b.kind, now],
        )?;
    }
    let c = &image.config;
    tx.execute(
            "INSERT OR IGNORE INTO configs (digest, env, cmd, entrypoint, working_dir, user, labels, stop_signal)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![c.digest, c.env, c.cmd, c.entrypoint, c.working_dir, c.user, c.labels, c.stop_signal],
        )?;
    let inserted = tx.execute(
            "INSERT OR IGNORE INTO manifests (digest, media_type, architecture, os, variant, layer_count,
                 config_digest, total_size, disk_size, created_at, fsmeta_size, vmdk_size, fsmeta_hash, vmdk_hash)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
            params![
                image.manifest_digest,
                image.media_type,
                image.architecture,
                image.os,
                image.variant,
                image.layers.len() as i64,
                c.digest,
                image.total_size,
                image.disk_size,
                now,
                image.fsmeta_size,
                image.vmdk_size,
                image.fsmeta_hash,
                image.vmdk_hash
            ],
        )?;
    if inserted == 0 {
        // A manifest recorded before its artifacts existed (schema 1) gets them now.
        tx.execute(
            "UPDATE manifests SET fsmeta_size = ?2, vmdk_size = ?3, disk_size = ?4
                 WHERE digest = ?1 AND (fsmeta_size IS NULL OR vmdk_size IS NULL)",
            params![
                image.manifest_digest,
                image.fsmeta_size,
                image.vmdk_size,
                image.disk_size
            ],
        )?;
        // Artifacts this load wrote (say, after a repair took a damaged one away) have hashes.
        tx.execute(
            "UPDATE manifests SET fsmeta_hash = COALESCE(?2, fsmeta_hash), vmdk_hash = COALESCE(?3, vmdk_hash)
                 WHERE digest = ?1",
            params![image.manifest_digest, image.fsmeta_hash, image.vmdk_hash],
        )?;
    }
    // Everything the image boots from is in place now: a load of it clears its broken mark.
    tx.execute(
        "UPDATE manifests SET broken = NULL WHERE digest = ?1 AND broken IS NOT NULL",
        [&image.manifest_digest],
    )?;
    for l in &image.layers {
        // A layer converted again (a version-1 row without an image, or one whose damaged
        // image a repair took away) gets its size and hash.
        tx.execute(
            "INSERT INTO layers (diff_id, erofs_size, created_at, erofs_hash) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (diff_id) DO UPDATE SET erofs_size = excluded.erofs_size,
                     erofs_hash = excluded.erofs_hash
                 WHERE layers.erofs_size IS NULL OR excluded.erofs_hash IS NOT NULL",
            params![l.diff_id, l.erofs_size, now, l.erofs_hash],
        )?;
    }
    if inserted == 1 {
        for l in &image.layers {
            tx.execute(
                    "INSERT INTO manifest_layers (manifest_digest, position, diff_id, blob_digest, media_type, compressed_size)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![image.manifest_digest, l.position, l.diff_id, l.blob_digest, l.media_type, l.compressed_size],
                )?;
        }
    }
    for r in &image.references {
        tx.execute(
            "INSERT INTO image_refs (reference, manifest_digest, created_at, last_used_at)
                 VALUES (?1, ?2, ?3, ?3)
                 ON CONFLICT (reference) DO UPDATE SET
                     created_at = CASE WHEN image_refs.manifest_digest <> excluded.manifest_digest
                                  THEN excluded.created_at ELSE image_refs.created_at END,
                     manifest_digest = excluded.manifest_digest,
                     last_used_at = excluded.last_used_at",
            params![r, image.manifest_digest, now],
        )?;
    }
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

fn strings(tx: &Transaction<'_>, sql: &str, p: impl rusqlite::Params) -> Result<Vec<String>> {
    let mut stmt = tx.prepare(sql)?;
    let rows = stmt.query_map(p, |r| r.get::<_, String>(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

fn collect_in(tx: &Transaction<'_>, refs: RefSelection<'_>, now: i64) -> Result<Collected> {
    let mut out = Collected::default();
    match refs {
        RefSelection::These(list) => {
            let mut del = tx.prepare_cached("DELETE FROM image_refs WHERE reference = ?1")?;
            for r in list {
                if del.execute([r])? == 1 {
                    out.image_refs.push(r.clone());
                }
            }
        }
        RefSelection::AllUnused => {
            out.image_refs = strings(
                tx,
                &format!(
                    "DELETE FROM image_refs WHERE NOT EXISTS
                        (SELECT 1 FROM uses u WHERE u.manifest_digest = image_refs.manifest_digest AND {LIVE_USE})
                     RETURNING reference"
                ),
                [now],
            )?;
        }
    }
    // Reachability: the roots are references and unexpired uses; everything else hangs off
    // manifests.
    out.manifests = strings(
        tx,
        &format!(
            "SELECT digest FROM manifests m
             WHERE NOT EXISTS (SELECT 1 FROM image_refs r WHERE r.manifest_digest = m.digest)
               AND NOT EXISTS (SELECT 1 FROM uses u WHERE u.manifest_digest = m.digest AND {LIVE_USE})"
        ),
        [now],
    )?;
    {
        let mut uses = tx.prepare_cached("DELETE FROM uses WHERE manifest_digest = ?1")?;
        let mut layers =
            tx.prepare_cached("DELETE FROM manifest_layers WHERE manifest_digest = ?1")?;
        let mut manifests = tx.prepare_cached("DELETE FROM manifests WHERE digest = ?1")?;
        for m in &out.manifests {
            // Only expired uses can name a manifest that goes.
            uses.execute([m])?;
            layers.execute([m])?;
            manifests.execute([m])?;
        }
    }
    tx.execute(
        "DELETE FROM configs WHERE NOT EXISTS (SELECT 1 FROM manifests m WHERE m.config_digest = configs.digest)",
        [],
    )?;
    out.layers = strings(
        tx,
        "DELETE FROM layers WHERE NOT EXISTS (SELECT 1 FROM manifest_layers ml WHERE ml.diff_id = layers.diff_id)
         RETURNING diff_id",
        [],
    )?;
    // Manifest and config blobs go with their rows. 'layer' blobs only remain from version-1
    // caches: the set of blob digests manifests still list is built once, and only when such a
    // blob exists (there is no index on blob_digest).
    let mut stmt = tx.prepare(
        "DELETE FROM blobs WHERE NOT EXISTS (SELECT 1 FROM manifests m WHERE m.digest = blobs.digest)
           AND NOT EXISTS (SELECT 1 FROM configs c WHERE c.digest = blobs.digest)
           AND (kind <> 'layer' OR digest NOT IN (SELECT blob_digest FROM manifest_layers))
         RETURNING digest, size",
    )?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
    out.blobs = rows.collect::<rusqlite::Result<_>>()?;
    out.image_refs.sort();
    out.layers.sort();
    out.blobs.sort();
    Ok(out)
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
        assert!(ix.blob_digests().unwrap().contains(&d(3)));
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
        let mut blobs: Vec<&str> = gone.blobs.iter().map(|(b, _)| b.as_str()).collect();
        blobs.sort();
        let mut want = [d(1), d(2), d(3)];
        want.sort();
        assert_eq!(blobs, want.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(ix.blob_digests().unwrap().is_empty());
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

    fn d(n: u8) -> String {
        format!("sha256:{}", hex::encode([n; 32]))
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
        assert_eq!(got.manifests, [d(1)]);
        assert_eq!(got.layers, [d(21)]);
        let gone: Vec<_> = got.blobs.iter().map(|(b, _)| b.clone()).collect();
        assert_eq!(gone, [d(1), d(2), d(11)]);
        assert_eq!(ix.blob_digests().unwrap().len(), 4);
        // The transaction's larger page cache is given back.
        let cache: i64 = ix
            .conn
            .query_row("PRAGMA cache_size", [], |r| r.get(0))
            .unwrap();
        assert_eq!(cache, -2000, "SQLite's default page cache again");
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
        ix.insert_image(&two, 1).unwrap();
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
        let m1 = &g.manifests[g.manifest_ids[&d(1)]];
        let m2 = &g.manifests[g.manifest_ids[&d(3)]];
        assert_eq!(m1.layers.len(), 2, "layer 20 is listed twice, counted once");
        assert_eq!((m1.own, m1.refs, m1.pinned), (100 + 7000 + 500, 2, false));
        assert_eq!((m2.own, m2.refs, m2.pinned), (100 + 9000 + 500, 1, true));
        assert_eq!(m1.config, m2.config);
        assert_eq!(g.configs, [10]);
        let mut layers = g.layers.clone();
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
        let got = ix
            .collect_garbage(RefSelection::AllUnused, 0, false)
            .unwrap();
        assert_eq!(got.image_refs, ["b"]);
        assert_eq!(got.manifests, [d(3)]);
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
        assert_eq!(got.manifests, [d(1)]);
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
