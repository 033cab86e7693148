//! VMDK descriptors: a pure function from extents to the text of a `twoGbMaxExtentFlat`
//! descriptor that stitches files into one virtual disk.
//!
//! Rules (checked against qemu-img, see `docs/cache-layout.md`):
//! - every extent is a `RW <sectors> FLAT "<path>" <offset>` line, sizes and offsets in 512-byte
//!   sectors; a file longer than 2 GiB is split into several lines over the same file;
//! - a comment line precedes the extent lines, never a blank line (qemu 7.2 reads an extent
//!   twice when a blank line comes right before it);
//! - `parentCID=ffffffff` (no parent) and `createType` are required by qemu; the CID is derived
//!   from the caller's seed so the same image always gives the same descriptor.

use std::fmt::Write as _;

use crate::error::{Error, Result};
use crate::oci::Digest;

/// Sector size of VMDK extents.
pub const SECTOR: u64 = 512;
/// Largest extent of a `twoGbMaxExtentFlat` disk.
pub const MAX_EXTENT: u64 = 2 * 1024 * 1024 * 1024;
/// Disk geometry used for the disk database: 16 heads, 63 sectors per track (the BIOS
/// convention qemu also writes); cylinders follow from the size, capped at 16383.
const HEADS: u64 = 16;
const SECTORS_PER_TRACK: u64 = 63;
const MAX_CYLINDERS: u64 = 16383;

/// The content id (`CID`) of the disk of the manifest `manifest`: its digest's first four
/// bytes, so the same image always gets the same descriptor.
pub fn cid(manifest: &Digest) -> u32 {
    u32::from_be_bytes(manifest.leading_bytes())
}

/// One file of the disk, in disk order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extent {
    /// Path as written in the descriptor (relative paths resolve against the descriptor's
    /// folder).
    pub path: String,
    /// Size of the file in bytes: a multiple of [`SECTOR`].
    pub size: u64,
}

/// The descriptor text for `extents`. `cid` identifies the disk content.
///
/// Errors: [`Error::InvalidArgument`] for a size that is not a whole number of sectors, an
/// empty list, or a path containing a double quote or a line break.
pub fn descriptor(extents: &[Extent], cid: u32) -> Result<String> {
    if extents.is_empty() {
        return Err(Error::InvalidArgument {
            name: "extents".into(),
            reason: "a disk needs at least one extent".into(),
        });
    }
    let mut lines = String::new();
    let mut total = 0u64;
    for e in extents {
        if e.size % SECTOR != 0 || e.size == 0 {
            return Err(Error::InvalidArgument {
                name: "extents".into(),
                reason: format!(
                    "{} is {} bytes, not a whole number of sectors",
                    e.path, e.size
                ),
            });
        }
        if e.path.contains(['"', '\n', '\r']) {
            return Err(Error::InvalidArgument {
                name: "extents".into(),
                reason: format!("{:?} cannot be quoted in a descriptor", e.path),
            });
        }
        let mut offset = 0u64;
        while offset < e.size {
            let len = (e.size - offset).min(MAX_EXTENT);
            // Writing to a String cannot fail.
            let _ = writeln!(
                lines,
                "RW {} FLAT \"{}\" {}",
                len / SECTOR,
                e.path,
                offset / SECTOR
            );
            offset += len;
        }
        total += e.size / SECTOR;
    }
    let cylinders = (total / (HEADS * SECTORS_PER_TRACK)).clamp(1, MAX_CYLINDERS);
    let mut out = String::new();
    let _ = write!(
        out,
        "# Disk DescriptorFile\n\
         version=1\n\
         CID={cid:08x}\n\
         parentCID=ffffffff\n\
         createType=\"twoGbMaxExtentFlat\"\n\
         \n\
         # Extent description\n\
         {lines}\
         \n\
         # The Disk Data Base\n\
         #DDB\n\
         \n\
         ddb.virtualHWVersion = \"4\"\n\
         ddb.geometry.cylinders = \"{cylinders}\"\n\
         ddb.geometry.heads = \"{HEADS}\"\n\
         ddb.geometry.sectors = \"{SECTORS_PER_TRACK}\"\n\
         ddb.adapterType = \"ide\"\n"
    );
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]
mod tests {
    use super::*;

    #[test]
    fn extents_in_sectors_split_at_two_gib() {
        let text = descriptor(
            &[
                Extent {
                    path: "a".into(),
                    size: 4096,
                },
                Extent {
                    path: "b c".into(),
                    size: MAX_EXTENT + 8192,
                },
            ],
            0xabc,
        )
        .unwrap();
        let extents: Vec<&str> = text.lines().filter(|l| l.starts_with("RW ")).collect();
        assert_eq!(
            extents,
            [
                "RW 8 FLAT \"a\" 0",
                "RW 4194304 FLAT \"b c\" 0",
                "RW 16 FLAT \"b c\" 4194304"
            ]
        );
        assert!(text.contains("CID=00000abc\n"));
        assert!(text.contains("parentCID=ffffffff\n"));
        // No blank line directly before an extent line (qemu 7.2 would read it twice).
        let lines: Vec<&str> = text.lines().collect();
        for pair in lines.windows(2) {
            assert!(
                !(pair[0].is_empty() && pair[1].starts_with("RW ")),
                "{text}"
            );
        }
    }

    #[test]
    fn rejects_partial_sectors_and_bad_paths() {
        for bad in [
            vec![Extent {
                path: "a".into(),
                size: 1000,
            }],
            vec![Extent {
                path: "a\"b".into(),
                size: 512,
            }],
            vec![],
        ] {
            assert_eq!(descriptor(&bad, 1).unwrap_err().code(), "INVALID_ARGUMENT");
        }
    }
}
