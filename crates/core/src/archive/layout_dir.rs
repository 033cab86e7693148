//! An OCI Image Layout directory as a source (OCI image spec `image-layout.md`):
//!
//! ```text
//! <dir>/
//!   oci-layout            {"imageLayoutVersion": "1.0.0"}
//!   index.json            the image index
//!   blobs/sha256/<hex>    content-addressed blobs
//! ```
//!
//! Files are read in place, only when needed: a layer blob is read once, by the conversion that
//! hashes it. Every file is resolved through the host filesystem and must stay inside the
//! directory: a symlink leading out of it is [`Error::InvalidArchive`].

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::archive::files::{
    BlobFile, Files, MAX_METADATA_SIZE, PathFile, check_metadata_size, open_regular,
};
use crate::archive::members::normalize_name;
use crate::error::{Error, IoContext, Result};

/// A layout directory, read in place.
#[derive(Debug)]
pub(crate) struct DirFiles {
    root: PathBuf,
}

impl DirFiles {
    /// Opens the directory `root`.
    pub(crate) fn open(root: &Path) -> Result<Self> {
        let root = fs::canonicalize(root).at(root)?;
        Ok(DirFiles { root })
    }

    /// The real path of the regular file `name`, or `None` when it does not exist (a dangling
    /// symlink counts as absent).
    fn locate(&self, name: &str) -> Result<Option<(PathBuf, u64)>> {
        let normalized = normalize_name(name)?;
        let joined = self.root.join(&normalized);
        let real = match fs::canonicalize(&joined) {
            Ok(real) => real,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(joined, e)),
        };
        if !real.starts_with(&self.root) {
            return Err(Error::invalid_archive(format!(
                "{normalized} resolves to {}, outside the layout directory",
                real.display()
            )));
        }
        let meta = fs::metadata(&real).at(&real)?;
        if !meta.is_file() {
            return Err(Error::invalid_archive(format!(
                "{normalized} is not a regular file"
            )));
        }
        Ok(Some((real, meta.len())))
    }
}

impl Files for DirFiles {
    fn contains(&self, name: &str) -> Result<bool> {
        Ok(self.locate(name)?.is_some())
    }

    fn read_metadata(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let Some((path, size)) = self.locate(name)? else {
            return Ok(None);
        };
        check_metadata_size(size, name)?;
        let mut bytes = Vec::new();
        // Bounded even if the file grew since it was measured.
        open_regular(&path)?
            .take(MAX_METADATA_SIZE + 1)
            .read_to_end(&mut bytes)
            .at(&path)?;
        check_metadata_size(bytes.len() as u64, name)?;
        Ok(Some(bytes))
    }

    fn blob(&self, name: &str) -> Result<Option<Arc<dyn BlobFile>>> {
        Ok(self.locate(name)?.map(|(path, size)| {
            Arc::new(PathFile {
                path,
                size,
                digest: None,
            }) as Arc<dyn BlobFile>
        }))
    }
}
