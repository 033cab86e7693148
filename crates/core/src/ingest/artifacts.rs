//! The files of a load: each built in the staging folder ([`Staged`]), then published into the
//! cache inside the index transaction ([`publish`]), and taken back when that transaction does
//! not commit ([`Published::undo`]); and a manifest's fsmeta image and VMDK descriptor, built
//! from its layer images alone ([`prepare_image`], which `boot_disk` uses to rebuild them too).
//!
//! Trust boundary: existing artifacts are measured, staged files published into the cache and
//! published files taken back by name beneath the folder handles of a [`Root`] and of the
//! [`StagingDir`], never through a symlink (see [`crate::store`]). Layer images are read by
//! path to build an fsmeta: reading cannot write or delete anything, and a VM reads them by
//! path through the descriptor anyway (see `docs/cache-layout.md`, trust model).

use std::collections::HashMap;
use std::path::PathBuf;

use crate::erofs::{LayerImage, build_fsmeta, volume_uuid};
use crate::error::{Error, Result};
use crate::oci::Digest;
use crate::store::{self, Entry, Folder, Root, StagingDir};
use crate::vmdk::{self, Extent};

/// A file built in the staging folder, and where it is published.
#[derive(Debug, Clone)]
pub(crate) struct Staged<'r> {
    /// The complete file, directly in the staging folder (a [`StagingDir::path`]-based path).
    pub from: PathBuf,
    /// Its place in the cache, beneath a folder handle of the [`Root`].
    pub to: Entry<'r>,
    /// Whether its writer fsynced it already (layer and fsmeta images are), so that
    /// publishing does not again.
    pub synced: bool,
}

/// A manifest's fsmeta image and VMDK descriptor: their sizes, and those built now.
#[derive(Debug, Clone)]
pub(crate) struct ImageArtifacts<'r> {
    /// fsmeta bytes.
    pub fsmeta: u64,
    /// VMDK descriptor bytes.
    pub vmdk: u64,
    /// Content hash of the fsmeta image, when built now.
    pub fsmeta_hash: Option<String>,
    /// Content hash of the VMDK descriptor, when built now.
    pub vmdk_hash: Option<String>,
    /// What was built in the staging folder, to publish in this order (fsmeta first: the
    /// descriptor names it).
    pub staged: Vec<Staged<'r>>,
}

/// Ensures the manifest's fsmeta image and VMDK descriptor exist or are built, from `layers`
/// (bottom to top, at paths they can be read from now, of the sizes `layer_sizes` gives by
/// `diff_id`): when absent from the cache (checked beneath the folder handles; a symlink there
/// is [`Error::CorruptCacheEntry`]), each is built in `staging`, not published. The same
/// layers always give the same bytes, so an fsmeta or VMDK that exists (even one a killed load
/// left) is as good as a new one.
///
/// The caller holds the manifest's artifact lock (see [`Root::lock_artifacts`]).
pub(crate) fn prepare_image<'r>(
    root: &'r Root,
    staging: &StagingDir,
    manifest: &Digest,
    layers: &[LayerImage],
    layer_sizes: &HashMap<Digest, u64>,
) -> Result<ImageArtifacts<'r>> {
    let layout = root.layout();
    let mut staged = Vec::new();
    let (mut fsmeta_hash, mut vmdk_hash) = (None, None);
    let fsmeta = match root.fsmeta(manifest).file_size()? {
        Some(size) => size,
        None => {
            let built_at = staging
                .path()
                .join(format!("fsmeta-{}.erofs", manifest.hex()));
            let built = build_fsmeta(layers, &built_at, volume_uuid(manifest))?;
            staged.push(Staged {
                from: built_at,
                to: root.fsmeta(manifest),
                synced: true,
            });
            fsmeta_hash = Some(built.hash);
            built.size
        }
    };
    let vmdk = match root.vmdk(manifest).file_size()? {
        Some(size) => size,
        None => {
            let mut extents = vec![Extent {
                path: layout.relative_to_vmdk(&layout.fsmeta(manifest)),
                size: fsmeta,
            }];
            for layer in layers {
                let size = layer_sizes.get(&layer.diff_id).copied().ok_or_else(|| {
                    Error::CorruptCache {
                        reason: format!(
                            "layer image {} is missing",
                            layout.layer(&layer.diff_id).display()
                        ),
                    }
                })?;
                extents.push(Extent {
                    path: layout.relative_to_vmdk(&layout.layer(&layer.diff_id)),
                    size,
                });
            }
            let text = vmdk::descriptor(&extents, vmdk::cid(manifest))?;
            let built_at =
                staging.write(&format!("vmdk-{}.vmdk", manifest.hex()), text.as_bytes())?;
            staged.push(Staged {
                from: built_at,
                to: root.vmdk(manifest),
                synced: false,
            });
            vmdk_hash = Some(crate::hash::content_hash(text.as_bytes()));
            text.len() as u64
        }
    };
    Ok(ImageArtifacts {
        fsmeta,
        vmdk,
        fsmeta_hash,
        vmdk_hash,
        staged,
    })
}

/// The files one [`publish`] call created, so that a load failing before its index rows
/// commit can take them back.
#[derive(Debug, Default)]
pub(crate) struct Published<'r> {
    created: Vec<Entry<'r>>,
}

/// Publishes `files`, each directly in `staging`, in order ([`store::publish_file`]: fsync unless
/// its writer did, rename beneath the folder handles, fsync the folder); a destination that
/// already exists is
/// kept (content-addressed and deterministic files of one name have the same bytes), a
/// destination that is a symlink or a folder is [`Error::CorruptCacheEntry`]. Records in
/// `published` every file it creates, also when it fails part way.
///
/// The caller holds the artifact locks of every destination.
pub(crate) fn publish<'r>(
    staging: &StagingDir,
    files: &[Staged<'r>],
    published: &mut Published<'r>,
) -> Result<()> {
    for file in files {
        match store::publish_file(staging, &file.from, &file.to, file.synced) {
            Ok(true) => published.created.push(file.to.clone()),
            Ok(false) => {}
            Err(e) => {
                // The rename may have happened before the folder's fsync failed.
                if !staging.holds(&file.from) && matches!(file.to.file_size(), Ok(Some(_))) {
                    published.created.push(file.to.clone());
                }
                return Err(e);
            }
        }
    }
    Ok(())
}

impl Published<'_> {
    /// Deletes the files created, newest first, by name beneath their folders' handles (never
    /// through a symlink), and fsyncs those folders: for a load whose index rows did not
    /// commit. No index row names these files, and the caller still holds their artifact
    /// locks, so no other load can have started to count on them. Best effort: a file that
    /// cannot be deleted stays an orphan, which the next prune reclaims.
    pub(crate) fn undo(self) {
        let mut folders: Vec<&Folder> = Vec::new();
        for entry in self.created.iter().rev() {
            if entry.remove_file().is_ok()
                && !folders.iter().any(|f| std::ptr::eq(*f, entry.folder()))
            {
                folders.push(entry.folder());
            }
        }
        for folder in folders {
            let _ = folder.sync();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Layout, StagingPurpose};
    use std::fs;

    /// Regression: a failed load took back the files it had published by path, so a cache
    /// folder swapped for a symlink after the files were published made the undo delete the
    /// files of the same names wherever the link pointed. It now deletes beneath the folder
    /// handles the files were published through, and never follows the link.
    #[cfg(unix)]
    #[test]
    fn undo_deletes_beneath_the_folder_handles_never_through_a_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path().join("cache"));
        let root = Root::open(&layout).unwrap();
        let staging = root.staging_dir(StagingPurpose::Load).unwrap();
        let digest = Digest::of_bytes(b"blob");
        let files = vec![Staged {
            from: staging.write("staged-blob", b"blob").unwrap(),
            to: root.blob(&digest),
            synced: false,
        }];
        let mut published = Published::default();
        publish(&staging, &files, &mut published).unwrap();
        assert_eq!(fs::read(layout.blob(&digest)).unwrap(), b"blob");
        // `blobs/sha256` moves away; a symlink to a folder with a decoy of the same name
        // takes its place.
        let moved = dir.path().join("moved");
        fs::rename(layout.blobs_dir(), &moved).unwrap();
        let outside = dir.path().join("outside");
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join(digest.hex()), b"decoy").unwrap();
        std::os::unix::fs::symlink(&outside, layout.blobs_dir()).unwrap();
        published.undo();
        assert_eq!(fs::read(outside.join(digest.hex())).unwrap(), b"decoy");
        assert!(
            !moved.join(digest.hex()).exists(),
            "the published file is deleted through the folder's handle"
        );
    }
}
