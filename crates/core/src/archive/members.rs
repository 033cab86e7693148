//! Member names of a tar archive and the links between them, resolved inside the archive's own
//! namespace (never against the host filesystem).
//!
//! Names are normalized (`./a//b/` is `a/b`); absolute names and names with `..` components are
//! rejected. A symlink's target is resolved lexically against the link's folder when the member
//! is recorded, and must stay inside the archive root; a hard link's target is a member name
//! (tar hard links name their target from the archive root). Lookups follow links, also through
//! linked folders, up to [`MAX_LINK_HOPS`].

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::tar::{Entry, Kind};

/// Links followed by one lookup before it fails, as the kernel's `ELOOP` limit does (40 on
/// Linux). Lowering it can reject archives with long link chains; a cycle always fails.
const MAX_LINK_HOPS: usize = 40;

/// One recorded member.
#[derive(Debug, Clone)]
enum Member<T> {
    /// A regular file, where it can be read.
    File(T),
    /// A symlink or hard link, as the normalized member name it points to.
    Link(String),
}

/// The namespace of an archive: member name to a regular file (where it can be read) or a link.
#[derive(Debug)]
pub(crate) struct Members<T> {
    map: HashMap<String, Member<T>>,
}

impl<T> Default for Members<T> {
    fn default() -> Self {
        Members {
            map: HashMap::new(),
        }
    }
}

impl<T> Members<T> {
    /// Records the member `entry`: a regular file as what `file` makes of it (given its
    /// normalized name), a symlink or a hard link as a link; folders, devices, FIFOs and unknown
    /// types carry nothing an image needs and are not recorded. Fails on a bad name, a file
    /// named as the archive root, or a link without a target.
    pub(crate) fn insert_entry(
        &mut self,
        entry: &Entry,
        file: impl FnOnce(&str) -> Result<T>,
    ) -> Result<()> {
        let name = normalize_name(&String::from_utf8_lossy(&entry.path))?;
        match entry.kind {
            Kind::File => {
                if name.is_empty() {
                    return Err(Error::invalid_archive(
                        "a file member is named as the archive root",
                    ));
                }
                let file = file(&name)?;
                self.insert_file(name, file);
            }
            Kind::Symlink => self.insert_symlink(name, &link_target(&entry.link)?)?,
            Kind::Link => self.insert_hardlink(name, &link_target(&entry.link)?)?,
            _ => {}
        }
        Ok(())
    }

    /// Records a regular file (a later member of the same name replaces it, as tar extraction
    /// does).
    pub(crate) fn insert_file(&mut self, name: String, file: T) {
        self.map.insert(name, Member::File(file));
    }

    /// Records a symlink `name -> target`, with `target` relative to `name`'s folder.
    pub(crate) fn insert_symlink(&mut self, name: String, target: &str) -> Result<()> {
        let resolved = symlink_target(&name, target)?;
        self.map.insert(name, Member::Link(resolved));
        Ok(())
    }

    /// Records a hard link `name -> target`, with `target` a member name.
    pub(crate) fn insert_hardlink(&mut self, name: String, target: &str) -> Result<()> {
        let resolved = normalize_name(target)?;
        self.map.insert(name, Member::Link(resolved));
        Ok(())
    }

    /// The file `name` designates after following links, or `None` when no regular file has
    /// that name.
    pub(crate) fn resolve(&self, name: &str) -> Result<Option<&T>> {
        let mut path = normalize_name(name)?;
        for _ in 0..MAX_LINK_HOPS {
            match self.first_link(&path) {
                Some((target, rest)) => path = join(target, rest),
                None => {
                    return Ok(match self.map.get(&path) {
                        Some(Member::File(file)) => Some(file),
                        _ => None,
                    });
                }
            }
        }
        Err(Error::invalid_archive(format!(
            "too many levels of links resolving member {name:?}"
        )))
    }

    /// The first link among `path`'s prefixes (shortest first), with the rest of the path.
    fn first_link<'a>(&'a self, path: &'a str) -> Option<(&'a str, &'a str)> {
        let ends = path
            .match_indices('/')
            .map(|(i, _)| i)
            .chain(std::iter::once(path.len()));
        for end in ends {
            if let Some(Member::Link(target)) = self.map.get(&path[..end]) {
                let rest = path.get(end + 1..).unwrap_or("");
                return Some((target, rest));
            }
        }
        None
    }
}

fn join(target: &str, rest: &str) -> String {
    match (target.is_empty(), rest.is_empty()) {
        (true, _) => rest.to_owned(),
        (false, true) => target.to_owned(),
        (false, false) => format!("{target}/{rest}"),
    }
}

/// The target of a link member.
fn link_target(target: &[u8]) -> Result<String> {
    if target.is_empty() {
        return Err(Error::invalid_archive("a link member has no target"));
    }
    Ok(String::from_utf8_lossy(target).into_owned())
}

/// Normalizes a member name: drops `.` components, empty components and a trailing `/`.
/// Absolute names and `..` components are [`Error::InvalidArchive`]. The archive root itself
/// (`./`) normalizes to the empty string.
pub(crate) fn normalize_name(raw: &str) -> Result<String> {
    if raw.starts_with('/') {
        return Err(Error::invalid_archive(format!(
            "absolute member name {raw:?}"
        )));
    }
    let mut parts = Vec::new();
    for part in raw.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                return Err(Error::invalid_archive(format!(
                    "member name with '..': {raw:?}"
                )));
            }
            p => parts.push(p),
        }
    }
    Ok(parts.join("/"))
}

/// The member a symlink at `link` (normalized) pointing to `target` designates, resolved
/// lexically. Absolute targets and targets climbing above the root escape the archive.
fn symlink_target(link: &str, target: &str) -> Result<String> {
    let escapes = || {
        Error::invalid_archive(format!(
            "symlink {link:?} -> {target:?} points outside the archive"
        ))
    };
    if target.starts_with('/') {
        return Err(escapes());
    }
    let mut parts: Vec<&str> = link.split('/').filter(|p| !p.is_empty()).collect();
    parts.pop(); // the link's own name: its target is relative to its folder
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop().ok_or_else(escapes)?;
            }
            p => parts.push(p),
        }
    }
    Ok(parts.join("/"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn blob(tag: &str) -> PathBuf {
        PathBuf::from(tag)
    }

    #[test]
    fn normalize_table() {
        let ok: &[(&str, &str)] = &[
            ("manifest.json", "manifest.json"),
            ("./manifest.json", "manifest.json"),
            ("a//b/./c/", "a/b/c"),
            ("./", ""),
            (".", ""),
        ];
        for (raw, want) in ok {
            assert_eq!(normalize_name(raw).unwrap(), *want, "{raw}");
        }
        for raw in ["/etc/passwd", "../x", "a/../b", "a/..", "./../x"] {
            assert_eq!(
                normalize_name(raw).unwrap_err().code(),
                "INVALID_ARCHIVE",
                "{raw}"
            );
        }
    }

    #[test]
    fn symlink_target_table() {
        let ok: &[(&str, &str, &str)] = &[
            ("abc/layer.tar", "../def/layer.tar", "def/layer.tar"),
            ("abc/layer.tar", "layer2.tar", "abc/layer2.tar"),
            ("top", "./x/../y", "y"),
            ("a/b/c", "../../d", "d"),
        ];
        for (link, target, want) in ok {
            assert_eq!(
                symlink_target(link, target).unwrap(),
                *want,
                "{link} -> {target}"
            );
        }
        for (link, target) in [
            ("abc/layer.tar", "../../x"),
            ("x", "/etc/passwd"),
            ("x", ".."),
        ] {
            let err = symlink_target(link, target).unwrap_err();
            assert_eq!(err.code(), "INVALID_ARCHIVE", "{link} -> {target}");
        }
    }

    #[test]
    fn resolve_follows_file_and_folder_links() {
        let mut m = Members::default();
        m.insert_file("def/layer.tar".into(), blob("def"));
        m.insert_symlink("abc/layer.tar".into(), "../def/layer.tar")
            .unwrap();
        m.insert_symlink("dir".into(), "def").unwrap();
        m.insert_hardlink("hard".into(), "./abc/layer.tar").unwrap();
        for name in ["def/layer.tar", "abc/layer.tar", "./dir/layer.tar", "hard"] {
            assert_eq!(
                m.resolve(name).unwrap().cloned(),
                Some(PathBuf::from("def")),
                "{name}"
            );
        }
        assert!(m.resolve("missing").unwrap().is_none());
        assert!(m.resolve("dir").unwrap().is_none(), "a folder is no file");
    }

    #[test]
    fn resolve_rejects_cycles() {
        let mut m: Members<PathBuf> = Members::default();
        m.insert_symlink("a".into(), "b").unwrap();
        m.insert_symlink("b".into(), "a").unwrap();
        assert_eq!(m.resolve("a").unwrap_err().code(), "INVALID_ARCHIVE");
    }
}
