//! EROFS on-disk structures and constants, as the Linux kernel's `fs/erofs/erofs_fs.h` defines
//! them (all integers little-endian). Only what ocicache writes and reads is here: uncompressed
//! images with 4 KiB blocks, compact and extended inodes, plain, inline and chunk-based data,
//! inline and shared xattrs, and the device table.
//!
//! Encoders append to a `Vec<u8>`; decoders take a byte slice and never panic on short input.

/// Byte offset of the superblock in block 0. Bytes before it are left for a boot sector.
pub const SUPER_OFFSET: usize = 1024;
/// Size of the superblock without extension slots.
pub const SUPER_SIZE: usize = 128;
/// `erofs_super_block.magic`.
pub const MAGIC: u32 = 0xE0F5_E1E2;
/// log2 of the block size. 4 KiB matches the page size of the hosts and guests ocicache targets;
/// changing it changes every block address and breaks fsmeta images built for older layers.
pub const BLOCK_BITS: u8 = 12;
/// The block size in bytes.
pub const BLOCK_SIZE: u64 = 1 << BLOCK_BITS;
/// Inode slots are 32 bytes: a node id (nid) is `(offset - meta_blkaddr * BLOCK_SIZE) / 32`.
pub const INODE_SLOT: u64 = 32;
/// Size of a compact inode.
pub const COMPACT_INODE_SIZE: u64 = 32;
/// Size of an extended inode.
pub const EXTENDED_INODE_SIZE: u64 = 64;
/// Size of a directory entry (`erofs_dirent`): nid u64, nameoff u16, file_type u8, reserved u8.
pub const DIRENT_SIZE: u64 = 12;
/// The longest file name EROFS (and Linux) accept.
pub const MAX_NAME_LEN: usize = 255;
/// Size of the inline xattr header (`erofs_xattr_ibody_header`).
pub const XATTR_IBODY_HEADER_SIZE: u64 = 12;
/// Size of an xattr entry header (`erofs_xattr_entry`) before its name and value.
pub const XATTR_ENTRY_HEADER_SIZE: u64 = 4;
/// Xattr entries and shared xattr ids are aligned to 4 bytes.
pub const XATTR_ALIGN: u64 = 4;
/// Size of a chunk index entry (`erofs_inode_chunk_index`).
pub const CHUNK_INDEX_SIZE: u64 = 8;
/// Size of a device table slot (`erofs_deviceslot`).
pub const DEVICE_SLOT_SIZE: u64 = 128;
/// Block address meaning "no block" (a hole in a chunk-based file).
pub const NULL_ADDR: u32 = u32::MAX;

/// Permission bits of a directory the cache creates itself: the root of an image, and the
/// implicit parent directories of a layer (directories its tar never listed but whose contents
/// it did), root-owned with mtime 0, as `tar -x` creates them. Changing it changes the bytes of
/// every new image, so fsmeta images of one layer set would differ by cache version.
pub const IMPLICIT_DIR_PERMS: u32 = 0o755;

/// The xattr overlayfs reads to make a directory opaque, and its value: a layer image stores an
/// OCI opaque marker (`.wh..wh..opq`) so, and the fsmeta merge reads it back.
pub const OPAQUE_XATTR: (&[u8], &[u8]) = (b"trusted.overlay.opaque", b"y");

/// Most components a path of a layer may have: a path with more cannot be spelled within
/// Linux's `PATH_MAX` (4096 bytes with its NUL) from the image root, even with one-byte names
/// (2048 names and 2047 slashes), so no runtime or tool that opens files by path could use it,
/// and Docker could not have extracted it. The kernel mounts deeper images, but reading past
/// this depth needs relative opens. The layer converter refuses deeper paths
/// ([`crate::Error::InvalidArchive`]); the EROFS reader accepts more, so every image written
/// here reads back. (erofs-utils 1.5's `fsck.erofs` recurses with about 12 KiB of stack per
/// level: beyond some 640 levels it needs a larger `ulimit -s` than the default 8 MiB.)
pub const MAX_PATH_DEPTH: usize = 2048;

/// `feature_compat`: the superblock carries a crc32c checksum.
pub const COMPAT_SB_CHKSUM: u32 = 0x1;
/// `feature_incompat`: chunk-based files exist.
pub const INCOMPAT_CHUNKED_FILE: u32 = 0x4;
/// `feature_incompat`: the superblock has a device table.
pub const INCOMPAT_DEVICE_TABLE: u32 = 0x8;

/// `i_format` bit 0: the inode is extended (64 bytes).
pub const FORMAT_EXTENDED: u16 = 0x1;
/// Data layouts (`i_format` bits 1..3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataLayout {
    /// Data in consecutive blocks from `raw_blkaddr`.
    FlatPlain = 0,
    /// Whole blocks from `raw_blkaddr`, the tail right after the inode (and its xattrs).
    FlatInline = 2,
    /// A table of chunk indexes after the inode.
    ChunkBased = 4,
}

impl DataLayout {
    /// Decodes `i_format` bits 1..3.
    pub fn from_format(format: u16) -> Option<Self> {
        match (format >> 1) & 0x7 {
            0 => Some(DataLayout::FlatPlain),
            2 => Some(DataLayout::FlatInline),
            4 => Some(DataLayout::ChunkBased),
            _ => None,
        }
    }
}

/// `erofs_inode_chunk_info.format` bit: chunk indexes (with a device id) rather than plain block
/// addresses.
pub const CHUNK_FORMAT_INDEXES: u16 = 0x20;
/// `erofs_inode_chunk_info.format` mask of `chunkbits - blkbits`.
pub const CHUNK_FORMAT_BLKBITS_MASK: u16 = 0x1f;
/// The largest chunk size the chunk format encodes: `2^(blkbits + 31)` bytes (8 TiB).
pub const MAX_CHUNK_BITS: u8 = BLOCK_BITS + CHUNK_FORMAT_BLKBITS_MASK as u8;

/// `S_IFMT` and the file types, as in `stat(2)`.
pub mod mode {
    /// Type mask.
    pub const IFMT: u32 = 0o170000;
    /// Socket.
    pub const IFSOCK: u32 = 0o140000;
    /// Symbolic link.
    pub const IFLNK: u32 = 0o120000;
    /// Regular file.
    pub const IFREG: u32 = 0o100000;
    /// Block device.
    pub const IFBLK: u32 = 0o060000;
    /// Directory.
    pub const IFDIR: u32 = 0o040000;
    /// Character device.
    pub const IFCHR: u32 = 0o020000;
    /// FIFO.
    pub const IFIFO: u32 = 0o010000;
    /// Permission bits including setuid, setgid and sticky.
    pub const PERMS: u32 = 0o7777;
}

/// `erofs_dirent.file_type` values (the kernel's `FT_*`).
pub fn dirent_file_type(mode: u32) -> u8 {
    match mode & mode::IFMT {
        mode::IFREG => 1,
        mode::IFDIR => 2,
        mode::IFCHR => 3,
        mode::IFBLK => 4,
        mode::IFIFO => 5,
        mode::IFSOCK => 6,
        mode::IFLNK => 7,
        _ => 0,
    }
}

/// Xattr name prefixes EROFS stores as an index (`EROFS_XATTR_INDEX_*`). The posix ACL names
/// are whole names (their suffix is empty).
pub const XATTR_PREFIXES: &[(u8, &[u8])] = &[
    (2, b"system.posix_acl_access"),
    (3, b"system.posix_acl_default"),
    (1, b"user."),
    (4, b"trusted."),
    (5, b"lustre."),
    (6, b"security."),
];

/// Splits an xattr name into its EROFS prefix index and suffix; `None` when no prefix applies.
pub fn split_xattr_name(name: &[u8]) -> Option<(u8, &[u8])> {
    XATTR_PREFIXES.iter().find_map(|(index, prefix)| {
        let suffix = name.strip_prefix(*prefix)?;
        // The ACL names are whole names; `system.posix_acl_accessX` is not one.
        if (*index == 2 || *index == 3) && !suffix.is_empty() {
            return None;
        }
        Some((*index, suffix))
    })
}

/// The full xattr name of an EROFS prefix index and suffix.
pub fn join_xattr_name(index: u8, suffix: &[u8]) -> Option<Vec<u8>> {
    let (_, prefix) = XATTR_PREFIXES.iter().find(|(i, _)| *i == index)?;
    let mut name = prefix.to_vec();
    name.extend_from_slice(suffix);
    Some(name)
}

/// Largest device major number `i_u.rdev` holds (12 bits, as Linux's `dev_t` in the kernel).
pub const MAX_DEV_MAJOR: u32 = 0xfff;
/// Largest device minor number `i_u.rdev` holds (20 bits).
pub const MAX_DEV_MINOR: u32 = 0xf_ffff;

/// Linux `new_encode_dev`: the 32-bit device number EROFS stores in `i_u.rdev` (numbers over
/// [`MAX_DEV_MAJOR`] and [`MAX_DEV_MINOR`] lose their high bits; the writer refuses them).
pub fn encode_dev(major: u32, minor: u32) -> u32 {
    (minor & 0xff) | ((major & 0xfff) << 8) | ((minor & !0xff) << 12)
}

/// Linux `new_decode_dev`: `(major, minor)` of an `i_u.rdev`.
pub fn decode_dev(dev: u32) -> (u32, u32) {
    ((dev & 0xfff00) >> 8, (dev & 0xff) | ((dev >> 12) & 0xfff00))
}

/// Rounds `n` up to a multiple of `align` (a power of two).
pub const fn align_up(n: u64, align: u64) -> u64 {
    (n + align - 1) & !(align - 1)
}

/// Blocks needed for `bytes`.
pub const fn blocks_for(bytes: u64) -> u64 {
    bytes.div_ceil(BLOCK_SIZE)
}

/// The superblock fields ocicache sets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SuperBlock {
    /// `feature_compat` (the checksum bit is added by [`SuperBlock::encode_block0`]).
    pub feature_compat: u32,
    /// `feature_incompat`.
    pub feature_incompat: u32,
    /// nid of the root directory.
    pub root_nid: u16,
    /// Number of inodes.
    pub inos: u64,
    /// mtime of every compact inode, seconds.
    pub build_time: u64,
    /// mtime of every compact inode, nanoseconds.
    pub build_time_nsec: u32,
    /// Total blocks of the primary device.
    pub blocks: u32,
    /// First block of the inode area.
    pub meta_blkaddr: u32,
    /// First block of the shared xattr area.
    pub xattr_blkaddr: u32,
    /// Volume uuid.
    pub uuid: [u8; 16],
    /// Number of devices besides the primary one.
    pub extra_devices: u16,
    /// Offset of the device table in 128-byte units.
    pub devt_slotoff: u16,
}

impl SuperBlock {
    /// Block 0 of the image: zeros, the superblock at [`SUPER_OFFSET`], and `tail` (the device
    /// table) right after it, with the crc32c checksum over bytes 1024..4096 (the kernel's rule:
    /// Castagnoli, seed `!0`, no final xor, checksum field zeroed).
    pub fn encode_block0(&self, tail: &[u8]) -> Vec<u8> {
        let mut block = vec![0u8; BLOCK_SIZE as usize];
        let mut sb = Vec::with_capacity(SUPER_SIZE);
        put_u32(&mut sb, MAGIC);
        put_u32(&mut sb, 0); // checksum, filled below
        put_u32(&mut sb, self.feature_compat | COMPAT_SB_CHKSUM);
        sb.push(BLOCK_BITS);
        sb.push(0); // sb_extslots
        put_u16(&mut sb, self.root_nid);
        put_u64(&mut sb, self.inos);
        put_u64(&mut sb, self.build_time);
        put_u32(&mut sb, self.build_time_nsec);
        put_u32(&mut sb, self.blocks);
        put_u32(&mut sb, self.meta_blkaddr);
        put_u32(&mut sb, self.xattr_blkaddr);
        sb.extend_from_slice(&self.uuid);
        sb.extend_from_slice(&[0u8; 16]); // volume_name
        put_u32(&mut sb, self.feature_incompat);
        put_u16(&mut sb, 0); // available_compr_algs
        put_u16(&mut sb, self.extra_devices);
        put_u16(&mut sb, self.devt_slotoff);
        sb.push(0); // dirblkbits: directory blocks are filesystem blocks
        sb.resize(SUPER_SIZE, 0);
        block[SUPER_OFFSET..SUPER_OFFSET + SUPER_SIZE].copy_from_slice(&sb);
        let tail_at = SUPER_OFFSET + SUPER_SIZE;
        let tail_len = tail.len().min(block.len() - tail_at);
        block[tail_at..tail_at + tail_len].copy_from_slice(&tail[..tail_len]);
        let checksum = superblock_checksum(&block);
        block[SUPER_OFFSET + 4..SUPER_OFFSET + 8].copy_from_slice(&checksum.to_le_bytes());
        block
    }

    /// Decodes the superblock of `block0` (at least one block), checking magic, block size and
    /// checksum.
    pub fn decode(block0: &[u8]) -> Result<Self, String> {
        if block0.len() < BLOCK_SIZE as usize {
            return Err("image is shorter than one block".into());
        }
        let sb = &block0[SUPER_OFFSET..SUPER_OFFSET + SUPER_SIZE];
        if le_u32(sb, 0) != MAGIC {
            return Err("bad EROFS magic".into());
        }
        if sb[12] != BLOCK_BITS {
            return Err(format!("unsupported block size 2^{}", sb[12]));
        }
        let compat = le_u32(sb, 8);
        if compat & COMPAT_SB_CHKSUM != 0 {
            let stored = le_u32(sb, 4);
            let computed = superblock_checksum(&block0[..BLOCK_SIZE as usize]);
            if stored != computed {
                return Err(format!(
                    "superblock checksum {stored:#x} does not match {computed:#x}"
                ));
            }
        }
        let mut uuid = [0u8; 16];
        uuid.copy_from_slice(&sb[48..64]);
        Ok(SuperBlock {
            feature_compat: compat & !COMPAT_SB_CHKSUM,
            feature_incompat: le_u32(sb, 80),
            root_nid: le_u16(sb, 14),
            inos: le_u64(sb, 16),
            build_time: le_u64(sb, 24),
            build_time_nsec: le_u32(sb, 32),
            blocks: le_u32(sb, 36),
            meta_blkaddr: le_u32(sb, 40),
            xattr_blkaddr: le_u32(sb, 44),
            uuid,
            extra_devices: le_u16(sb, 86),
            devt_slotoff: le_u16(sb, 88),
        })
    }
}

/// crc32c of bytes 1024..4096 of block 0 with the checksum field zeroed, seeded with `!0` and
/// without the final inversion (what `crc32c(~0, ...)` gives in the kernel).
pub fn superblock_checksum(block0: &[u8]) -> u32 {
    let mut data = block0[SUPER_OFFSET..BLOCK_SIZE as usize].to_vec();
    data[4..8].fill(0);
    // The crc32c crate applies the standard initial and final inversions; undo the final one.
    !crc32c::crc32c(&data)
}

/// One device table slot: a layer image that chunk indexes with this slot's device id address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceSlot {
    /// Free-form tag (ignored by the kernel), at most 64 bytes.
    pub tag: Vec<u8>,
    /// Blocks of the device.
    pub blocks: u32,
    /// Block at which the device starts when the primary image and all devices are
    /// concatenated in order (the kernel's flat-device mapping).
    pub mapped_blkaddr: u32,
}

impl DeviceSlot {
    /// Appends the 128-byte slot.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut tag = [0u8; 64];
        let n = self.tag.len().min(64);
        tag[..n].copy_from_slice(&self.tag[..n]);
        out.extend_from_slice(&tag);
        put_u32(out, self.blocks);
        put_u32(out, self.mapped_blkaddr);
        out.resize(out.len() + (DEVICE_SLOT_SIZE as usize - 72), 0);
    }

    /// Decodes a slot.
    pub fn decode(slot: &[u8]) -> Self {
        let tag_len = slot[..64].iter().position(|b| *b == 0).unwrap_or(64);
        DeviceSlot {
            tag: slot[..tag_len].to_vec(),
            blocks: le_u32(slot, 64),
            mapped_blkaddr: le_u32(slot, 68),
        }
    }
}

/// Appends a little-endian u16.
pub fn put_u16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_le_bytes());
}
/// Appends a little-endian u32.
pub fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}
/// Appends a little-endian u64.
pub fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}
/// Reads a little-endian u16 at `at` (callers check bounds).
pub fn le_u16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
/// Reads a little-endian u32 at `at` (callers check bounds).
pub fn le_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
/// Reads a little-endian u64 at `at` (callers check bounds).
pub fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]
mod tests {
    use super::*;

    #[test]
    fn dev_numbers_round_trip() {
        for (major, minor) in [(0, 0), (1, 3), (8, 17), (259, 65536), (4095, 1 << 19)] {
            assert_eq!(decode_dev(encode_dev(major, minor)), (major, minor));
        }
        // Linux: makedev(1, 3) is 0x103.
        assert_eq!(encode_dev(1, 3), 0x103);
    }

    #[test]
    fn checksum_matches_the_kernel_rule() {
        // The value computed bit by bit, as the kernel's crc32c_le with seed ~0.
        let mut block = vec![0u8; BLOCK_SIZE as usize];
        block[SUPER_OFFSET..SUPER_OFFSET + 4].copy_from_slice(&MAGIC.to_le_bytes());
        let mut c: u32 = !0;
        let mut data = block[SUPER_OFFSET..].to_vec();
        data[4..8].fill(0);
        for b in data {
            c ^= u32::from(b);
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    (c >> 1) ^ 0x82F6_3B78
                } else {
                    c >> 1
                };
            }
        }
        assert_eq!(superblock_checksum(&block), c);
    }

    #[test]
    fn xattr_prefix_table() {
        assert_eq!(split_xattr_name(b"user.x"), Some((1, &b"x"[..])));
        assert_eq!(
            split_xattr_name(b"trusted.overlay.opaque"),
            Some((4, &b"overlay.opaque"[..]))
        );
        assert_eq!(
            split_xattr_name(b"security.capability"),
            Some((6, &b"capability"[..]))
        );
        assert_eq!(
            split_xattr_name(b"system.posix_acl_access"),
            Some((2, &b""[..]))
        );
        assert_eq!(split_xattr_name(b"system.posix_acl_accessX"), None);
        assert_eq!(split_xattr_name(b"other.x"), None);
        assert_eq!(
            join_xattr_name(6, b"capability").unwrap(),
            b"security.capability"
        );
    }

    #[test]
    fn superblock_round_trips() {
        let sb = SuperBlock {
            root_nid: 1,
            inos: 3,
            build_time: 1_700_000_000,
            build_time_nsec: 5,
            blocks: 9,
            meta_blkaddr: 4,
            xattr_blkaddr: 3,
            ..Default::default()
        };
        let block = sb.encode_block0(&[]);
        assert_eq!(SuperBlock::decode(&block).unwrap(), sb);
        let mut bad = block.clone();
        bad[SUPER_OFFSET + 40] ^= 1;
        assert!(SuperBlock::decode(&bad).is_err());
    }
}
