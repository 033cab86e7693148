//! An OCI Image Layout directory as a source (OCI image spec `image-layout.md`):
//!
//! ```text
//! <dir>/
//!   oci-layout            {"imageLayoutVersion": "1.0.0"}
//!   index.json            the image index
//!   blobs/sha256/<hex>    content-addressed blobs
//! ```
//!
//! Files are read only when needed and copied into the staging folder while hashed (the layout
//! is not the cache's, so it cannot be renamed from). Every file is resolved through the host
//! filesystem and must stay inside the directory: a symlink leading out of it is
//! [`Error::InvalidArchive`].

use std::collections::HashMap;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::archive::StagedBlob;
use crate::archive::member::normalize_name;
use crate::archive::source::{
    MAX_METADATA_SIZE, Source, Staging, check_metadata_size, open_regular,
};
use crate::codec::COPY_BUFFER_SIZE;
use crate::error::{Error, IoContext, Result};

/// A layout directory, with the files staged from it so far.
#[derive(Debug)]
pub(crate) struct DirSource<'a> {
    root: PathBuf,
    staging: &'a Staging,
    staged: Mutex<HashMap<String, StagedBlob>>,
}

impl<'a> DirSource<'a> {
    /// Opens the directory `root`.
    pub(crate) fn open(root: &Path, staging: &'a Staging) -> Result<Self> {
        let root = fs::canonicalize(root).at(root)?;
        Ok(DirSource {
            root,
            staging,
            staged: Mutex::new(HashMap::new()),
        })
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

impl Source for DirSource<'_> {
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

    fn stage(&self, name: &str) -> Result<Option<StagedBlob>> {
        if let Some(blob) = self.lock()?.get(name) {
            return Ok(Some(blob.clone()));
        }
        let Some((path, _)) = self.locate(name)? else {
            return Ok(None);
        };
        let file = open_regular(&path)?;
        let mut buf = vec![0u8; COPY_BUFFER_SIZE];
        let blob = self
            .staging
            .stage_reader(file, &mut buf, |e| Error::io(&path, e))?;
        self.lock()?.insert(name.to_owned(), blob.clone());
        Ok(Some(blob))
    }
}

impl DirSource<'_> {
    fn lock(&self) -> Result<std::sync::MutexGuard<'_, HashMap<String, StagedBlob>>> {
        self.staged
            .lock()
            .map_err(|_| Error::internal("a staging thread panicked"))
    }
}
