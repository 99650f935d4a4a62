//! The stores behind image sources ([`Source`], parsed in
//! `crate::image_source`): an OCI layout directory or a tar archive (OCI
//! or `docker save`), read in place; the registry's is in `image`.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::ImageError;
pub use crate::image_source::Source;

/// An opened member and its size; `None` when absent.
pub(crate) type Member<'a> = Option<(Box<dyn Read + Send + 'a>, u64)>;

/// A file of an image layout or archive, by name relative to its root.
pub(crate) trait Store: Send + Sync {
    /// Open `name` for streaming, with its size; `None` when absent.
    fn open(&self, name: &str) -> Result<Member<'_>, ImageError>;

    /// Read `name` whole, refusing it past `cap`; `None` when absent.
    fn read(&self, name: &str, cap: u64) -> Result<Option<Vec<u8>>, ImageError> {
        let Some((r, size)) = self.open(name)? else {
            return Ok(None);
        };
        if size > cap {
            return Err(ImageError::TooLarge {
                what: name.to_string(),
                cap: crate::safeio::human_bytes(cap),
            });
        }
        let mut out = Vec::new();
        r.take(cap + 1)
            .read_to_end(&mut out)
            .map_err(|e| ImageError::Read(format!("{name}: {}", crate::safeio::io_reason(&e))))?;
        if out.len() as u64 > cap {
            return Err(ImageError::TooLarge {
                what: name.to_string(),
                cap: crate::safeio::human_bytes(cap),
            });
        }
        Ok(Some(out))
    }
}

/// The blob of `digest` in an OCI layout: `blobs/<alg>/<hex>`.
pub(crate) fn blob_name(digest: &str) -> Result<String, ImageError> {
    if !crate::registry::is_sha256_digest(digest) {
        return Err(ImageError::Invalid(format!(
            "{}: not a sha256 digest",
            crate::safeio::excerpt(digest, 80)
        )));
    }
    Ok(format!("blobs/sha256/{}", &digest[7..]))
}

/// Split a member name into clean components; `None` when it climbs out
/// (`..`) or is empty.
pub(crate) fn clean(name: &str) -> Option<Vec<&str>> {
    let mut parts = Vec::new();
    for c in name.split('/') {
        match c {
            "" | "." => {}
            ".." => return None,
            c => parts.push(c),
        }
    }
    (!parts.is_empty()).then_some(parts)
}

/// An OCI layout directory. Names resolve inside it (a symlink cannot lead
/// out), and only regular files are opened: a FIFO or device in a hostile
/// layout is refused, never read.
pub(crate) struct DirStore {
    root: crate::facts::resolve::Root,
    shown: String,
}

impl DirStore {
    /// Open the layout at `dir`.
    pub(crate) fn open(dir: &Path) -> Result<DirStore, ImageError> {
        let root = crate::facts::resolve::Root::open(dir).map_err(|e| {
            ImageError::Read(format!(
                "{}: {}",
                crate::safeio::printable(&dir.display().to_string()),
                crate::safeio::io_reason(&e)
            ))
        })?;
        Ok(DirStore {
            root,
            shown: crate::safeio::printable(&dir.display().to_string()).into_owned(),
        })
    }
}

impl Store for DirStore {
    fn open(&self, name: &str) -> Result<Member<'_>, ImageError> {
        use rustix::fs::OFlags;
        let fail = |why: String| ImageError::Read(format!("{}/{name}: {why}", self.shown));
        let fd = match self.root.open_in(name, OFlags::RDONLY | OFlags::NONBLOCK) {
            Ok(fd) => fd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(fail(crate::safeio::io_reason(&e))),
        };
        let st =
            crate::facts::resolve::fstat(&fd).map_err(|e| fail(crate::safeio::io_reason(&e)))?;
        if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile {
            return Err(fail("not a regular file; refused".into()));
        }
        if crate::safeio::pseudo_filesystem(&fd).is_some() {
            return Err(fail("on a pseudo filesystem; refused".into()));
        }
        Ok(Some((Box::new(std::fs::File::from(fd)), st.st_size as u64)))
    }
}

/// A root filesystem as one tar archive (`docker export`, `podman export`,
/// `tar -C root -c .`; plain, gzip or zstd): a store of one member,
/// [`ArchiveStore::MEMBER`], read as a single layer. The file is opened
/// once and read by offset, so every pass reads the same file.
pub(crate) struct ArchiveStore {
    file: std::sync::Arc<std::fs::File>,
    size: u64,
}

impl ArchiveStore {
    /// The one member's name.
    pub(crate) const MEMBER: &'static str = "rootfs";

    /// Open the archive at `path` (a regular file; never a FIFO or device).
    pub(crate) fn open(path: &Path) -> Result<ArchiveStore, ImageError> {
        let file = crate::safeio::open_regular(path, "root filesystem archive")
            .map_err(|e| ImageError::Read(e.to_string()))?;
        let size = file
            .metadata()
            .map_err(|e| ImageError::Read(crate::safeio::io_reason(&e)))?
            .len();
        Ok(ArchiveStore {
            file: std::sync::Arc::new(file),
            size,
        })
    }

    /// The archive's sha256 digest, as it is now.
    pub(crate) fn digest(&self) -> Result<String, ImageError> {
        use sha2::Digest as _;
        let mut hash = sha2::Sha256::new();
        let mut r = At {
            file: self.file.clone(),
            pos: 0,
        };
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = r
                .read(&mut buf)
                .map_err(|e| ImageError::Read(crate::safeio::io_reason(&e)))?;
            if n == 0 {
                break;
            }
            hash.update(&buf[..n]);
        }
        Ok(format!("sha256:{}", crate::encoding::hex(&hash.finalize())))
    }
}

/// A reader of a shared file at its own offset.
struct At {
    file: std::sync::Arc<std::fs::File>,
    pos: u64,
}

impl Read for At {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use std::os::unix::fs::FileExt as _;
        let n = self.file.read_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Store for ArchiveStore {
    fn open(&self, name: &str) -> Result<Member<'_>, ImageError> {
        if name != Self::MEMBER {
            return Ok(None);
        }
        Ok(Some((
            Box::new(At {
                file: self.file.clone(),
                pos: 0,
            }),
            self.size,
        )))
    }
}

/// A tar archive holding an image layout (`oci-archive`, `docker save`):
/// its members are indexed once (offsets, no extraction) and read in place.
pub(crate) struct TarStore {
    path: PathBuf,
    members: HashMap<String, (u64, u64)>,
}

/// Members an archive may hold (a layout has a few per layer).
const MAX_MEMBERS: usize = 100_000;

impl TarStore {
    /// Index the archive at `path`.
    pub(crate) fn open(path: &Path) -> Result<TarStore, ImageError> {
        let shown = crate::safeio::printable(&path.display().to_string()).into_owned();
        let fail = |why: String| ImageError::Read(format!("{shown}: {why}"));
        let file = crate::safeio::open_regular(path, "image archive")
            .map_err(|e| ImageError::Read(e.to_string()))?;
        let mut archive = tar::Archive::new(file);
        let mut members = HashMap::new();
        let mut links = Vec::new();
        let entries = archive
            .entries_with_seek()
            .map_err(|e| fail(e.to_string()))?;
        for entry in entries {
            let entry = entry.map_err(|e| fail(format!("not a tar archive ({e})")))?;
            if members.len() + links.len() > MAX_MEMBERS {
                return Err(fail(format!("more than {MAX_MEMBERS} members")));
            }
            let name = entry.path_bytes();
            let name = String::from_utf8_lossy(&name).into_owned();
            let Some(parts) = clean(&name) else { continue };
            let key = parts.join("/");
            match entry.header().entry_type() {
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    members.insert(key, (entry.raw_file_position(), entry.size()));
                }
                // `docker save` (legacy) links duplicate layers.
                tar::EntryType::Symlink | tar::EntryType::Link => {
                    if let Some(t) = entry.link_name_bytes() {
                        let target = String::from_utf8_lossy(&t).into_owned();
                        links.push((key, parts.len(), entry.header().entry_type(), target));
                    }
                }
                _ => {}
            }
        }
        for (key, depth, kind, target) in links {
            // A symlink is relative to its directory; a hard link names a
            // member from the archive's root. Neither may leave it.
            let joined = if kind == tar::EntryType::Symlink && !target.starts_with('/') {
                let dir: Vec<&str> = key.split('/').take(depth - 1).collect();
                format!("{}/{target}", dir.join("/"))
            } else {
                target
            };
            let mut stack: Vec<&str> = Vec::new();
            let mut escaped = false;
            for c in joined.split('/') {
                match c {
                    "" | "." => {}
                    ".." => escaped |= stack.pop().is_none(),
                    c => stack.push(c),
                }
            }
            if !escaped && let Some(m) = members.get(&stack.join("/")).copied() {
                members.insert(key, m);
            }
        }
        Ok(TarStore {
            path: path.to_path_buf(),
            members,
        })
    }
}

impl Store for TarStore {
    fn open(&self, name: &str) -> Result<Member<'_>, ImageError> {
        let Some(parts) = clean(name) else {
            return Ok(None);
        };
        let Some(&(offset, size)) = self.members.get(&parts.join("/")) else {
            return Ok(None);
        };
        let mut f = crate::safeio::open_regular(&self.path, "image archive")
            .map_err(|e| ImageError::Read(e.to_string()))?;
        f.seek(SeekFrom::Start(offset))
            .map_err(|e| ImageError::Read(crate::safeio::io_reason(&e)))?;
        Ok(Some((Box::new(f.take(size)), size)))
    }
}
