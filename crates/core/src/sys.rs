//! Platform differences, behind one function each: the only module with `cfg(unix)` or
//! `cfg(windows)` code. Everything else in the core is portable `std`.
//!
//! | function | Linux, macOS (Unix) | Windows |
//! | --- | --- | --- |
//! | [`read_exact_at`] | `pread` (`FileExt::read_exact_at`), no shared cursor | `seek_read` in a loop (moves the handle's cursor, which no caller uses) |
//! | [`sync_dir`], [`sync_folder`] | fsync of the folder (by path, or open as a handle), so renames and unlinks in it are durable | nothing: a folder cannot be fsynced; NTFS journals renames and deletions itself |
//! | [`no_space`] | `ENOSPC` | `ERROR_DISK_FULL` |
//! | [`allocated_bytes`] | `st_blocks * 512` | the apparent size (std has no allocation figure) |
//! | [`device`] | `st_dev`, to keep a walk on one file system | none (a walk cannot tell) |
//! | [`handle_path`] | Linux: `/proc/self/fd/<n>`, a path that leads to the open folder itself; other Unix: none | none |
//! | [`resolve_folder`] | the folder of a path with its symlinks resolved (`realpath`), as SQLite would resolve them | the path as given |
//! | [`open_nonblocking`] | `O_NONBLOCK \| O_NOCTTY`: opening a FIFO never waits for a writer, a terminal never becomes the process's | a plain open |
//! | [`file_kind`] | names FIFOs, devices and sockets | a directory, a symlink or a special file |
//! | [`Stdin`] | standard input read with `poll`, waking to check for cancellation | blocking reads |
//!
//! What needs no function here, because `std` is portable: cross-process locks
//! (`File::lock`, `flock` on Unix and `LockFileEx` on Windows), atomic replacement by rename
//! (`rename(2)`, `MoveFileExW` with `MOVEFILE_REPLACE_EXISTING`), and the platform cache
//! folder (the `dirs` crate). The core never reads host extended attributes, never calls
//! `statx` and never mounts anything: xattrs come from tar records, and mounting the images
//! it writes is the VM's (or a test's) business.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use cap_std::fs::{Dir, Metadata};

/// Reads exactly `buf.len()` bytes at `offset` of `file`; `UnexpectedEof` if the file ends
/// first. Safe to call from several threads on one `File` on Unix; on Windows each call moves
/// the handle's cursor, which nothing in the core relies on.
#[cfg(unix)]
pub fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

/// Reads exactly `buf.len()` bytes at `offset` of `file`; `UnexpectedEof` if the file ends
/// first. Safe to call from several threads on one `File` on Unix; on Windows each call moves
/// the handle's cursor, which nothing in the core relies on.
#[cfg(windows)]
pub fn read_exact_at(file: &File, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        match file.seek_read(buf, offset) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Reads up to `buf.len()` bytes at `offset` of `file`, returning how many (0 at its end).
/// Safe to call from several threads on one `File` on Unix; on Windows each call moves the
/// handle's cursor, which nothing in the core relies on.
#[cfg(unix)]
pub fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(file, buf, offset)
}

/// Reads up to `buf.len()` bytes at `offset` of `file`, returning how many (0 at its end).
/// Safe to call from several threads on one `File` on Unix; on Windows each call moves the
/// handle's cursor, which nothing in the core relies on.
#[cfg(windows)]
pub fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    std::os::windows::fs::FileExt::seek_read(file, buf, offset)
}

/// Writes all of `buf` at `offset` of `file` (the positional twin of [`read_at`]).
#[cfg(unix)]
pub fn write_all_at(file: &File, buf: &[u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(file, buf, offset)
}

/// Writes all of `buf` at `offset` of `file` (the positional twin of [`read_at`]).
#[cfg(windows)]
pub fn write_all_at(file: &File, mut buf: &[u8], mut offset: u64) -> io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        match file.seek_write(buf, offset) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                buf = &buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Whether the open file `file` is the file `by_name` describes (same device and inode), so
/// that a lock taken on an open file can be known to guard the name it was opened by, and not
/// a file unlinked since. On Windows, where std does not tell, a file open without
/// `FILE_SHARE_DELETE` (std's default) cannot be unlinked, so the answer is yes.
#[cfg(unix)]
pub fn same_file(file: &File, by_name: &Metadata) -> io::Result<bool> {
    use cap_std::fs::MetadataExt as _;
    use std::os::unix::fs::MetadataExt as _;
    let open = file.metadata()?;
    Ok(open.dev() == by_name.dev() && open.ino() == by_name.ino())
}

/// Whether the open file `file` is the file `by_name` describes (same device and inode), so
/// that a lock taken on an open file can be known to guard the name it was opened by, and not
/// a file unlinked since. On Windows, where std does not tell, a file open without
/// `FILE_SHARE_DELETE` (std's default) cannot be unlinked, so the answer is yes.
#[cfg(windows)]
pub fn same_file(file: &File, by_name: &Metadata) -> io::Result<bool> {
    let _ = (file, by_name);
    Ok(true)
}

/// Makes the renames and unlinks done in folder `dir` durable (fsync of the folder). On
/// Windows there is nothing to do: a folder cannot be opened as a file to flush, and NTFS
/// journals the metadata change itself.
#[cfg(unix)]
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Makes the renames and unlinks done in folder `dir` durable (fsync of the folder). On
/// Windows there is nothing to do: a folder cannot be opened as a file to flush, and NTFS
/// journals the metadata change itself.
#[cfg(windows)]
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    let _ = dir;
    Ok(())
}

/// Bytes a file occupies on disk according to its metadata: `st_blocks * 512` on Unix (less
/// than the length for a sparse file, more for a small file in a large block), the length on
/// Windows.
#[cfg(unix)]
pub fn allocated_bytes(meta: &Metadata) -> u64 {
    /// `st_blocks` counts 512-byte units whatever the file system's block size (POSIX
    /// `<sys/stat.h>`, Linux `stat(2)`, macOS `stat(2)`).
    const STAT_BLOCK_SIZE: u64 = 512;
    cap_std::fs::MetadataExt::blocks(meta) * STAT_BLOCK_SIZE
}

/// Bytes a file occupies on disk according to its metadata: `st_blocks * 512` on Unix (less
/// than the length for a sparse file, more for a small file in a large block), the length on
/// Windows.
#[cfg(windows)]
pub fn allocated_bytes(meta: &Metadata) -> u64 {
    meta.len()
}

/// The device of the file or folder of `meta` (`st_dev`), so that a walk deleting a tree stays
/// on one file system; `None` on Windows, where std does not tell.
#[cfg(unix)]
pub fn device(meta: &Metadata) -> Option<u64> {
    Some(cap_std::fs::MetadataExt::dev(meta))
}

/// The device of the file or folder of `meta` (`st_dev`), so that a walk deleting a tree stays
/// on one file system; `None` on Windows, where std does not tell.
#[cfg(windows)]
pub fn device(meta: &Metadata) -> Option<u64> {
    let _ = meta;
    None
}

/// Makes the renames and unlinks done in the folder open as `dir` durable (fsync of the
/// folder). Directory handles are `O_PATH` on Linux, which fsync refuses, so the folder itself
/// (`.`, which cannot be a symlink) is opened for reading. Nothing on Windows (see
/// [`sync_dir`]).
#[cfg(unix)]
pub fn sync_folder(dir: &Dir) -> io::Result<()> {
    dir.open(".")?.sync_all()
}

/// Makes the renames and unlinks done in the folder open as `dir` durable (fsync of the
/// folder). Directory handles are `O_PATH` on Linux, which fsync refuses, so the folder itself
/// (`.`, which cannot be a symlink) is opened for reading. Nothing on Windows (see
/// [`sync_dir`]).
#[cfg(windows)]
pub fn sync_folder(dir: &Dir) -> io::Result<()> {
    let _ = dir;
    Ok(())
}

/// A path by which code that opens files by path reaches the folder open as `dir` itself,
/// which no rename or symlink swapped in for the folder's name can redirect: on Linux
/// `/proc/self/fd/<n>`, when `/proc` is mounted and that path leads to `dir` (same device and
/// inode); `None` elsewhere.
#[cfg(target_os = "linux")]
pub fn handle_path(dir: &Dir) -> Option<PathBuf> {
    use cap_std::fs::MetadataExt as _;
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::MetadataExt as _;
    let fd_path = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()));
    let (by_path, by_handle) = (std::fs::metadata(&fd_path).ok()?, dir.dir_metadata().ok()?);
    (by_path.dev() == by_handle.dev() && by_path.ino() == by_handle.ino()).then_some(fd_path)
}

/// A path by which code that opens files by path reaches the folder open as `dir` itself,
/// which no rename or symlink swapped in for the folder's name can redirect: on Linux
/// `/proc/self/fd/<n>`, when `/proc` is mounted and that path leads to `dir` (same device and
/// inode); `None` elsewhere.
#[cfg(not(target_os = "linux"))]
pub fn handle_path(dir: &Dir) -> Option<PathBuf> {
    let _ = dir;
    None
}

/// `path` with its folder resolved to a path without symlinks (`realpath`) on Unix, where
/// SQLite resolves them itself when it opens a database, so that `SQLITE_OPEN_NOFOLLOW` only
/// refuses a symlink at the file itself. A folder that cannot be resolved is left as given
/// (the open then reports the problem); so is every path on Windows.
#[cfg(unix)]
pub fn resolve_folder(path: &Path) -> PathBuf {
    if let (Some(dir), Some(name)) = (path.parent(), path.file_name()) {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        if let Ok(real) = std::fs::canonicalize(dir) {
            return real.join(name);
        }
    }
    path.to_owned()
}

/// `path` with its folder resolved to a path without symlinks (`realpath`) on Unix, where
/// SQLite resolves them itself when it opens a database, so that `SQLITE_OPEN_NOFOLLOW` only
/// refuses a symlink at the file itself. A folder that cannot be resolved is left as given
/// (the open then reports the problem); so is every path on Windows.
#[cfg(windows)]
pub fn resolve_folder(path: &Path) -> PathBuf {
    path.to_owned()
}

/// The operating system's "no space left on the device" error, for a write the core refuses
/// because it would fill the disk (see [`crate::budget::WriteBudget::free_space`]).
#[cfg(unix)]
pub fn no_space() -> io::Error {
    io::Error::from_raw_os_error(libc::ENOSPC)
}

/// The operating system's "no space left on the device" error, for a write the core refuses
/// because it would fill the disk (see [`crate::budget::WriteBudget::free_space`]).
#[cfg(windows)]
pub fn no_space() -> io::Error {
    /// `ERROR_DISK_FULL` (winerror.h).
    const ERROR_DISK_FULL: i32 = 112;
    io::Error::from_raw_os_error(ERROR_DISK_FULL)
}

/// Opens `path` for reading without blocking: without `O_NONBLOCK` opening a FIFO waits for a
/// writer forever (`O_NONBLOCK` changes nothing for reads of a regular file), and `O_NOCTTY`
/// keeps a terminal device from becoming the process's controlling terminal.
#[cfg(unix)]
pub fn open_nonblocking(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
}

/// Opens `path` for reading (Windows has no FIFOs to block an open).
#[cfg(windows)]
pub fn open_nonblocking(path: &Path) -> io::Result<File> {
    File::open(path)
}

/// What kind of file `file_type` is, for an error refusing it: `a FIFO`, `a character device`,
/// `a block device`, `a socket`, `a directory`, `a symlink` or `a special file`.
pub fn file_kind(file_type: std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if file_type.is_fifo() {
            return "a FIFO";
        }
        if file_type.is_char_device() {
            return "a character device";
        }
        if file_type.is_block_device() {
            return "a block device";
        }
        if file_type.is_socket() {
            return "a socket";
        }
    }
    if file_type.is_dir() {
        "a directory"
    } else if file_type.is_symlink() {
        "a symlink"
    } else {
        "a special file"
    }
}

/// How long a read of standard input waits for data before it looks at its cancellation flag
/// again. Longer only delays a cancelled load's exit; shorter costs wakeups.
#[cfg(unix)]
const STDIN_POLL_MS: u16 = 100;

/// The process's standard input as a reader that a cancelled load stops waiting on: it waits
/// for data with `poll` (so an input left in non-blocking mode by another reader is waited for
/// rather than failing with `EAGAIN`) and asks `check` before each read and every
/// [`STDIN_POLL_MS`] while it waits; an error `check` returns is the read's.
pub struct Stdin {
    check: Box<dyn Fn() -> io::Result<()> + Send>,
}

impl Stdin {
    /// Standard input, failing a read with the error `check` returns.
    pub fn new(check: impl Fn() -> io::Result<()> + Send + 'static) -> Self {
        Stdin {
            check: Box::new(check),
        }
    }
}

#[cfg(unix)]
impl io::Read for Stdin {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use rustix::event::{PollFd, PollFlags, poll};
        use std::os::fd::AsFd;
        let stdin = io::stdin();
        loop {
            (self.check)()?;
            let fd = stdin.as_fd();
            let mut fds = [PollFd::new(&fd, PollFlags::IN)];
            let timeout = rustix::event::Timespec {
                tv_sec: 0,
                tv_nsec: i64::from(STDIN_POLL_MS) * 1_000_000,
            };
            match poll(&mut fds, Some(&timeout)) {
                Ok(0) => continue,
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
            match rustix::io::read(fd, &mut *buf) {
                Ok(n) => return Ok(n),
                Err(rustix::io::Errno::AGAIN | rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
}

#[cfg(windows)]
impl io::Read for Stdin {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use std::io::Read as _;
        (self.check)()?;
        io::stdin().read(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_exact_at_reads_at_the_offset_and_reports_eof() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"0123456789").unwrap();
        let file = File::open(&path).unwrap();
        let mut buf = [0u8; 4];
        read_exact_at(&file, &mut buf, 3).unwrap();
        assert_eq!(&buf, b"3456");
        let err = read_exact_at(&file, &mut buf, 8).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn sync_dir_accepts_a_folder_and_fails_on_a_missing_one() {
        let dir = tempfile::tempdir().unwrap();
        sync_dir(dir.path()).unwrap();
        if cfg!(unix) {
            assert!(sync_dir(&dir.path().join("missing")).is_err());
        }
    }

    #[test]
    fn allocated_bytes_covers_the_data_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        // Incompressible bytes, so a compressing file system still allocates them.
        let mut x = 0x9e37_79b9_u32;
        let data: Vec<u8> = (0..10_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x.to_le_bytes()[0]
            })
            .collect();
        std::fs::write(&path, data).unwrap();
        let file = File::open(&path).unwrap();
        file.sync_all().unwrap();
        let meta = Metadata::from_just_metadata(std::fs::metadata(&path).unwrap());
        assert!(allocated_bytes(&meta) >= 10_000);
    }
}
