//! What a hand-written layer tar entry is ([`Body`]), shared by the tests that write their tars
//! header by header.

/// What a tar entry is: its data, link target or device numbers.
#[derive(Debug, Clone)]
pub enum Body {
    File(Vec<u8>),
    Dir,
    Symlink(Vec<u8>),
    Hardlink(Vec<u8>),
    Char(u32, u32),
    Block(u32, u32),
    Fifo,
}

impl Body {
    /// The link target of a symlink or hardlink.
    pub fn link(&self) -> Option<&[u8]> {
        match self {
            Body::Symlink(t) | Body::Hardlink(t) => Some(t),
            _ => None,
        }
    }

    /// Sets `h`'s entry type, device numbers (character and block devices) and size, and
    /// returns the entry's data.
    pub fn fill_header(&self, h: &mut tar::Header) -> &[u8] {
        let (kind, data): (tar::EntryType, &[u8]) = match self {
            Body::File(d) => (tar::EntryType::Regular, d),
            Body::Dir => (tar::EntryType::Directory, &[]),
            Body::Symlink(_) => (tar::EntryType::Symlink, &[]),
            Body::Hardlink(_) => (tar::EntryType::Link, &[]),
            Body::Char(..) => (tar::EntryType::Char, &[]),
            Body::Block(..) => (tar::EntryType::Block, &[]),
            Body::Fifo => (tar::EntryType::Fifo, &[]),
        };
        h.set_entry_type(kind);
        if let Body::Char(major, minor) | Body::Block(major, minor) = *self {
            h.set_device_major(major).unwrap();
            h.set_device_minor(minor).unwrap();
        }
        h.set_size(data.len() as u64);
        data
    }
}
