//! The final filesystem of an image, indexed from its layers without
//! extracting them: each layer is streamed once (gzip, zstd or plain tar)
//! and each of its entries applied by one routine ([`FsIndex::apply`]) with
//! the rules a runtime applies when it unpacks the layer (umoci's
//! `oci/layer/tar_extract.go`, containerd's `archive/tar.go`, OCI
//! image-spec `layer.md`); `docs/images.md` lists each rule with its
//! source. Only metadata is kept; file content is read on the way for the
//! files a control needs, or in a second pass ([`read_contents`]).
//!
//! The tree is an arena of nodes ([`super::tree`]), each holding its own
//! name component as bytes (never a whole path, never a lossy
//! conversion). Memory is bounded by the number of nodes ([`MAX_NODES`],
//! implicit parents included) and the bytes of their names and link
//! targets ([`MAX_NAME_BYTES`]), whatever the layers' paths look like.
//!
//! Every layer's bytes are hashed as they stream and checked against the
//! manifest's digest and the config's diff_id at the end of the layer; a
//! mismatch fails the whole image, so no fact ever comes from unverified
//! bytes.

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{self, BufRead, BufReader, Read};
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use sha2::{Digest as _, Sha256};

use super::ImageError;
use super::manifest::LayerRef;
use super::source::Store;
use crate::facts::Kind;

use super::tree::Tree;
pub(crate) use super::tree::{Id, MAX_NAME_BYTES, MAX_NODES, Node, ROOT};

/// Longest member name or link target (PATH_MAX).
const MAX_PATH: usize = 4096;
/// Longest name component (NAME_MAX): no runtime can create a longer one.
const MAX_NAME: usize = 255;
/// Symlinks followed while resolving one member's parent directory
/// (filepath-securejoin, which umoci uses, stops at 255).
const MAX_APPLY_LINKS: u32 = 255;

/// The final filesystem: `/` is always a directory.
#[derive(Default)]
pub(crate) struct FsIndex {
    tree: Tree,
    /// Content read on the way (see [`build`]), by (layer, ordinal).
    pub prefetched: Contents,
}

/// Why one layer entry cannot be applied: the runtime's unpack fails
/// there too, so the image is refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApplyError {
    /// A name or link target past PATH_MAX, or a component past NAME_MAX.
    #[error("a name longer than {0} bytes (a runtime cannot create it)")]
    TooLong(usize),
    /// The root entry is not a directory.
    #[error("it would change the image root into a {0} (umoci refuses this)")]
    RootType(&'static str),
    /// A parent resolves to something that is not a directory.
    #[error("a parent directory is a {0}, not a directory")]
    NotDir(&'static str),
    /// Symlinks in a parent loop or chain too long.
    #[error("resolving its directory follows more than {MAX_APPLY_LINKS} symlinks")]
    Loop,
    /// A whiteout that names no entry (`.wh.`, `.wh..`, `.wh...`).
    #[error("a whiteout that names no entry; runtimes disagree on what it removes")]
    EmptyWhiteout,
    /// A symlink with an empty target.
    #[error("a symlink with an empty target (symlink(2) refuses it)")]
    EmptySymlink,
    /// A hard link to nothing, to the root or to a directory.
    #[error("a hard link to {0}")]
    BadLink(&'static str),
    /// A tar entry type no runtime unpacks (sparse, contiguous, unknown).
    #[error("tar entry type {0:?}, which runtimes do not unpack")]
    Unsupported(u8),
    /// Past the node or name caps.
    #[error(
        "more than {MAX_NODES} files or {} of names; refused",
        crate::safeio::human_bytes(MAX_NAME_BYTES as u64)
    )]
    TooMany,
}

/// One layer entry, as [`FsIndex::apply`] needs it.
pub(crate) struct Member<'a> {
    /// The member name, as bytes.
    pub name: &'a [u8],
    /// The tar type flag.
    pub kind: tar::EntryType,
    /// The flag byte is NUL (an old-style regular entry).
    pub old_style: bool,
    /// The mode field.
    pub mode: u32,
    /// Owner (pax `uid` when present).
    pub uid: u32,
    /// Group (pax `gid` when present).
    pub gid: u32,
    /// Data size.
    pub size: u64,
    /// Link target (symlinks and hard links).
    pub link: Option<&'a [u8]>,
    /// (layer, ordinal) of its data.
    pub at: (u32, u32),
}

/// Split a member name as umoci's `CleanPath` does: lexically, rooted at
/// `/`, so `..` stops at the root and `etc/../etc/shadow` is
/// `etc/shadow`. No name ever leaves the image.
fn clean(name: &[u8]) -> Vec<&[u8]> {
    let mut out: Vec<&[u8]> = Vec::new();
    for c in name.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out
}

/// A step of a directory resolved as filepath-securejoin resolves it.
enum Step {
    /// An existing node.
    At(Id),
    /// A name that does not exist (or sits under a non-directory).
    Missing(Vec<u8>),
}

impl FsIndex {
    /// Nodes in the final filesystem, the root included.
    pub(crate) fn nodes(&self) -> usize {
        self.tree.len()
    }

    /// The node `id`.
    pub(crate) fn node(&self, id: Id) -> &Node {
        self.tree.node(id)
    }

    /// The entry `name` of directory `dir`.
    pub(crate) fn child(&self, dir: Id, name: &[u8]) -> Option<Id> {
        self.tree.child(dir, name)
    }

    /// The entries of directory `dir`, in byte order of their names.
    pub(crate) fn children(&self, dir: Id) -> Vec<(&[u8], Id)> {
        self.tree.children(dir)
    }

    /// Whether directory `dir` has more than `n` entries.
    pub(crate) fn has_more_children_than(&self, dir: Id, n: usize) -> bool {
        self.tree.has_more_children_than(dir, n)
    }

    /// The absolute path of `id`, as bytes.
    pub(crate) fn path(&self, id: Id) -> Vec<u8> {
        self.tree.path(id)
    }

    fn alloc(&mut self, parent: Id, name: &[u8], node: Node) -> Result<Id, ApplyError> {
        self.tree
            .insert(parent, name, node)
            .map_err(|_| ApplyError::TooMany)
    }

    fn remove(&mut self, id: Id) {
        self.tree.remove(id);
    }

    /// Mark `id` and its ancestors as written by layer `li`: umoci's
    /// `upperPaths`, which that layer's whiteouts never remove.
    fn touch(&mut self, id: Id, li: usize) {
        self.tree.touch(id, li as u32 + 1);
    }

    /// Resolve directory components inside the image as
    /// filepath-securejoin does for umoci (containerd's `fs.RootPath` is
    /// the same): every symlink is followed, an absolute target restarts
    /// at the image root, `..` stops at the root and works on the
    /// resolved path; a name that does not exist, and anything below it,
    /// is `Missing`.
    fn secure_join(&self, comps: &[&[u8]]) -> Result<Vec<Step>, ApplyError> {
        let mut todo: Vec<Vec<u8>> = comps.iter().rev().map(|c| c.to_vec()).collect();
        let mut stack: Vec<Step> = Vec::new();
        let mut links = 0;
        while let Some(c) = todo.pop() {
            match &c[..] {
                b"" | b"." => continue,
                b".." => {
                    stack.pop();
                    continue;
                }
                _ => {}
            }
            let here = match stack.last() {
                None => Some(ROOT),
                Some(Step::At(id)) if self.node(*id).kind == Kind::Directory => Some(*id),
                _ => None,
            };
            let Some(found) = here.and_then(|d| self.child(d, &c)) else {
                stack.push(Step::Missing(c));
                continue;
            };
            let n = self.node(found);
            if let (Kind::Symlink, Some(target)) = (n.kind, &n.link) {
                links += 1;
                if links > MAX_APPLY_LINKS {
                    return Err(ApplyError::Loop);
                }
                if target.first() == Some(&b'/') {
                    stack.clear();
                }
                todo.extend(target.split(|b| *b == b'/').rev().map(<[u8]>::to_vec));
                continue;
            }
            stack.push(Step::At(found));
        }
        Ok(stack)
    }

    /// The existing directory `steps` lead to, if every step exists and
    /// is one (whiteouts and hard-link targets never create parents).
    fn existing_dir(&self, steps: &[Step]) -> Option<Id> {
        let mut at = ROOT;
        for s in steps {
            match s {
                Step::At(id) if self.node(*id).kind == Kind::Directory => at = *id,
                _ => return None,
            }
        }
        Some(at)
    }

    /// Create the missing directories of `steps` (umoci's `MkdirAll`:
    /// mode 0755 with a 022 umask, owned by root), refusing a step that is
    /// not a directory.
    fn make_dirs(&mut self, steps: Vec<Step>) -> Result<Id, ApplyError> {
        let mut at = ROOT;
        for s in steps {
            at = match s {
                Step::At(id) => {
                    let k = self.node(id).kind;
                    if k != Kind::Directory {
                        return Err(ApplyError::NotDir(k.as_str()));
                    }
                    id
                }
                Step::Missing(name) => self.alloc(at, &name, Node::dir())?,
            };
        }
        Ok(at)
    }

    /// A whiteout of layer `li` at `id`: remove what no entry of that
    /// layer wrote, keeping what it did (umoci's `ociWhiteout`, containerd
    /// the same); an opaque marker keeps the directory itself.
    fn whiteout(&mut self, id: Id, li: usize, keep_top: bool) {
        let mark = li as u32 + 1;
        let mut todo = vec![(id, keep_top)];
        while let Some((at, keep)) = todo.pop() {
            if !self.tree.is_live(at) {
                continue;
            }
            if self.tree.touched(at) != mark && !keep {
                self.remove(at);
                continue;
            }
            if self.node(at).kind == Kind::Directory {
                todo.extend(self.children(at).into_iter().map(|(_, c)| (c, false)));
            }
        }
    }

    /// Apply one layer entry to the tree. Returns the node it made, if
    /// any, for content to be kept.
    pub(crate) fn apply(&mut self, m: &Member<'_>, li: usize) -> Result<Option<Id>, ApplyError> {
        if m.name.len() > MAX_PATH || m.link.is_some_and(|l| l.len() > MAX_PATH) {
            return Err(ApplyError::TooLong(MAX_PATH));
        }
        use tar::EntryType as T;
        let kind = match m.kind {
            // Go's archive/tar reads an old-style ('\0') regular entry whose
            // name ends in `/` as a directory (reader.go, TypeRegA).
            T::Regular if m.old_style && m.name.ends_with(b"/") => Kind::Directory,
            T::Regular => Kind::File,
            T::Directory => Kind::Directory,
            T::Symlink => Kind::Symlink,
            T::Link => Kind::Unknown, // resolved below
            T::Char => Kind::Char,
            T::Block => Kind::Block,
            T::Fifo => Kind::Fifo,
            // Metadata-only entries the tar reader passes on; a pax global
            // header is skipped as containerd skips it ("PAX Global
            // Extended Headers found and ignored"; umoci refuses it).
            T::XGlobalHeader | T::XHeader | T::GNULongName | T::GNULongLink => {
                return Ok(None);
            }
            other => return Err(ApplyError::Unsupported(other.as_byte())),
        };
        let comps = clean(m.name);
        let Some((file, dir)) = comps.split_last() else {
            // The root's own entry: only its metadata can change.
            if kind != Kind::Directory {
                return Err(ApplyError::RootType(if m.kind == T::Link {
                    "hard link"
                } else {
                    kind.as_str()
                }));
            }
            let root = self.tree.node_mut(ROOT);
            root.mode = m.mode & 0o7777;
            root.uid = m.uid;
            root.gid = m.gid;
            return Ok(None);
        };
        if comps.iter().any(|c| c.len() > MAX_NAME) {
            return Err(ApplyError::TooLong(MAX_NAME));
        }
        if let Some(hidden) = file.strip_prefix(b".wh.") {
            let steps = self.secure_join(dir)?;
            // A whiteout naming no entry names its directory: where nothing
            // is there, every runtime does nothing; where something is,
            // containerd removes it and umoci fails, so it is refused.
            if matches!(hidden, b"" | b"." | b"..") {
                if steps.iter().any(|s| matches!(s, Step::Missing(_))) {
                    return Ok(None);
                }
                return Err(ApplyError::EmptyWhiteout);
            }
            let Some(dir) = self.existing_dir(&steps) else {
                return Ok(None); // nothing there to hide
            };
            if hidden == b".wh..opq" {
                self.whiteout(dir, li, true);
            } else if let Some(id) = self.child(dir, hidden) {
                self.whiteout(id, li, false);
            }
            return Ok(None);
        }
        let steps = self.secure_join(dir)?;
        let dir = self.make_dirs(steps)?;
        let existing = self.child(dir, file);
        if let Some(e) = existing
            && !(kind == Kind::Directory && self.node(e).kind == Kind::Directory)
        {
            self.remove(e);
        }
        let meta = Node {
            kind,
            mode: m.mode & 0o7777,
            uid: m.uid,
            gid: m.gid,
            size: 0,
            link: None,
            data: None,
        };
        let id = match kind {
            Kind::Directory => match existing.filter(|e| self.tree.is_live(*e)) {
                Some(e) => {
                    let n = self.tree.node_mut(e);
                    (n.mode, n.uid, n.gid) = (meta.mode, meta.uid, meta.gid);
                    e
                }
                None => self.alloc(dir, file, meta)?,
            },
            Kind::File => self.alloc(
                dir,
                file,
                Node {
                    size: m.size,
                    data: Some(m.at),
                    ..meta
                },
            )?,
            Kind::Symlink => {
                let link = m.link.unwrap_or_default();
                if link.is_empty() {
                    // symlink(2) refuses an empty target (ENOENT).
                    return Err(ApplyError::EmptySymlink);
                }
                self.alloc(
                    dir,
                    file,
                    Node {
                        mode: 0o777,
                        size: link.len() as u64,
                        link: Some(link.into()),
                        ..meta
                    },
                )?
            }
            Kind::Unknown => {
                // A hard link: the same inode as the entry it names, its
                // directory resolved in the image and its last component
                // not followed (umoci; link(2) does not follow either).
                let target = clean(m.link.unwrap_or_default());
                let Some((tfile, tdir)) = target.split_last() else {
                    return Err(ApplyError::BadLink("the image root"));
                };
                let steps = self.secure_join(tdir)?;
                let found = self
                    .existing_dir(&steps)
                    .and_then(|d| self.child(d, tfile))
                    .ok_or(ApplyError::BadLink("nothing in the image"))?;
                let node = self.node(found).clone();
                if node.kind == Kind::Directory {
                    return Err(ApplyError::BadLink("a directory"));
                }
                self.alloc(dir, file, node)?
            }
            _ => self.alloc(dir, file, meta)?,
        };
        self.touch(id, li);
        Ok(Some(id))
    }
}

/// Go's `archive/tar` (and so containerd and umoci) ends an archive at the
/// end of the stream when it comes at a header boundary or anywhere in
/// the padding after the last entry's data (`umoci insert` writes layers
/// with no padding and no end blocks); the tar crate wants the padding.
/// This reader supplies the missing padding, only past the current
/// entry's data: a stream cut inside an entry's data stays an error.
struct Padded<R> {
    inner: R,
    pos: u64,
    /// Where the current entry's data ends in the stream.
    data_end: Rc<Cell<u64>>,
    pad: u64,
}

impl<R: Read> Read for Padded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.pad == 0 {
            let n = self.inner.read(buf)?;
            if n > 0 || self.pos.is_multiple_of(512) || self.pos < self.data_end.get() {
                self.pos += n as u64;
                return Ok(n);
            }
            self.pad = 512 - self.pos % 512;
        }
        let n = (self.pad as usize).min(buf.len());
        buf[..n].fill(0);
        self.pad -= n as u64;
        self.pos += n as u64;
        Ok(n)
    }
}

/// The tar entries of a layer stream, tolerating a missing end as Go does.
fn tar_archive<R: Read>(stream: R) -> (tar::Archive<Padded<R>>, Rc<Cell<u64>>) {
    let data_end = Rc::new(Cell::new(0));
    let padded = Padded {
        inner: stream,
        pos: 0,
        data_end: data_end.clone(),
        pad: 0,
    };
    (tar::Archive::new(padded), data_end)
}

/// An entry's owner and group, pax records first (Go applies them).
fn owner<R: Read>(entry: &mut tar::Entry<'_, R>) -> (u32, u32) {
    let h = entry.header();
    let (mut uid, mut gid) = (h.uid().unwrap_or(0), h.gid().unwrap_or(0));
    if let Ok(Some(pax)) = entry.pax_extensions() {
        for ext in pax.flatten() {
            let value = || ext.value().ok().and_then(|v| v.parse::<u64>().ok());
            match ext.key() {
                Ok("uid") => uid = value().unwrap_or(uid),
                Ok("gid") => gid = value().unwrap_or(gid),
                _ => {}
            }
        }
    }
    (
        u32::try_from(uid).unwrap_or(u32::MAX),
        u32::try_from(gid).unwrap_or(u32::MAX),
    )
}

/// A reader that hashes what passes through it.
struct Hashing<R> {
    inner: R,
    hash: Arc<Mutex<Sha256>>,
    /// Bytes that came through.
    count: Arc<std::sync::atomic::AtomicU64>,
    /// For the decompressed end: the stored end's count, to stop a
    /// decompression bomb.
    stored: Option<Arc<std::sync::atomic::AtomicU64>>,
}

/// Decompressed bytes a layer may have before its ratio is watched.
const BOMB_FREE: u64 = 1 << 30;
/// Past [`BOMB_FREE`], the most a layer may inflate (real layers stay
/// under 20×; zeros or repeated text go to 1000×).
const BOMB_RATIO: u64 = 200;

/// Returns true when `plain` decompressed bytes from `stored` bytes look
/// like a decompression bomb.
fn is_bomb(plain: u64, stored: u64) -> bool {
    plain > BOMB_FREE && plain / stored.max(1) > BOMB_RATIO
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use std::sync::atomic::Ordering::Relaxed;
        let n = self.inner.read(buf)?;
        self.hash
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .update(&buf[..n]);
        let total = self.count.fetch_add(n as u64, Relaxed) + n as u64;
        if let Some(stored) = &self.stored
            && is_bomb(total, stored.load(Relaxed))
        {
            return Err(io::Error::other(format!(
                "it inflates more than {BOMB_RATIO} times past {}: a decompression bomb; refused",
                crate::safeio::human_bytes(BOMB_FREE)
            )));
        }
        Ok(n)
    }
}

/// zstd with any number of frames (zstd:chunked layers have many).
struct Zstd<R: BufRead> {
    current: Option<ruzstd::decoding::StreamingDecoder<R, ruzstd::decoding::FrameDecoder>>,
    idle: Option<R>,
}

impl<R: BufRead> Read for Zstd<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if let Some(d) = &mut self.current {
                let n = d.read(buf)?;
                if n > 0 || buf.is_empty() {
                    return Ok(n);
                }
                let d = self.current.take().expect("checked above");
                self.idle = Some(d.into_inner());
            }
            let mut src = self.idle.take().expect("one of the two is set");
            if src.fill_buf()?.is_empty() {
                self.idle = Some(src);
                return Ok(0);
            }
            let d = ruzstd::decoding::StreamingDecoder::new(src).map_err(io::Error::other)?;
            self.current = Some(d);
        }
    }
}

/// A layer's tar stream, with the hashes of its stored and its
/// uncompressed bytes (final once the stream is read to its end).
type LayerStream<'a> = (Box<dyn Read + 'a>, Arc<Mutex<Sha256>>, Arc<Mutex<Sha256>>);

/// Content per entry ((layer, ordinal) → bytes, truncated).
pub(crate) type Contents = HashMap<(u32, u32), (Vec<u8>, bool)>;

/// The layer's tar stream, decompressed by what its first bytes say (media
/// types are missing in `docker save` archives), with both ends hashed.
fn open_layer<'a>(store: &'a dyn Store, layer: &LayerRef) -> Result<LayerStream<'a>, ImageError> {
    let (raw, _) = store
        .open(&layer.name)?
        .ok_or_else(|| ImageError::Missing(format!("layer {}", layer_label(layer))))?;
    let stored = Arc::new(Mutex::new(Sha256::new()));
    let plain = Arc::new(Mutex::new(Sha256::new()));
    let stored_count = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut buffered = BufReader::with_capacity(
        256 * 1024,
        Hashing {
            inner: raw,
            hash: stored.clone(),
            count: stored_count.clone(),
            stored: None,
        },
    );
    let magic = buffered.fill_buf().map_err(|e| {
        ImageError::Read(format!(
            "layer {}: {}",
            layer_label(layer),
            crate::safeio::io_reason(&e)
        ))
    })?;
    let decompressed: Box<dyn Read + 'a> = if magic.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::bufread::MultiGzDecoder::new(buffered))
    } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(Zstd {
            current: None,
            idle: Some(buffered),
        })
    } else {
        Box::new(buffered)
    };
    Ok((
        Box::new(Hashing {
            inner: decompressed,
            hash: plain.clone(),
            count: Arc::new(std::sync::atomic::AtomicU64::new(0)),
            stored: Some(stored_count),
        }),
        stored,
        plain,
    ))
}

fn layer_label(layer: &LayerRef) -> String {
    layer
        .digest
        .clone()
        .unwrap_or_else(|| crate::safeio::excerpt(&layer.name, 120))
}

/// Read what is left of a layer (the tar reader stops at its end marker)
/// and check both digests.
fn finish_layer(
    mut rest: impl Read,
    layer: &LayerRef,
    stored: &Mutex<Sha256>,
    plain: &Mutex<Sha256>,
) -> Result<(), ImageError> {
    io::copy(&mut rest, &mut io::sink()).map_err(|e| layer_error(layer, &e))?;
    let take = |h: &Mutex<Sha256>| {
        let h = std::mem::take(&mut *h.lock().unwrap_or_else(|e| e.into_inner()));
        format!("sha256:{}", crate::encoding::hex(&h.finalize()))
    };
    let (stored, plain) = (take(stored), take(plain));
    for (expected, actual, what) in [
        (&layer.digest, stored, "layer"),
        (&layer.diff_id, plain, "uncompressed layer"),
    ] {
        if let Some(expected) = expected
            && *expected != actual
        {
            return Err(ImageError::DigestMismatch {
                what: format!("{what} {}", layer_label(layer)),
                expected: expected.clone(),
                actual,
            });
        }
    }
    if layer.digest.is_none() && layer.diff_id.is_none() {
        return Err(ImageError::Invalid(format!(
            "layer {} has no digest to check it against",
            layer_label(layer)
        )));
    }
    Ok(())
}

fn layer_error(layer: &LayerRef, e: &io::Error) -> ImageError {
    ImageError::Layer {
        layer: layer_label(layer),
        why: crate::safeio::printable(&e.to_string()).into_owned(),
    }
}

/// A layer that does not read as a tar stream: when its stored bytes do
/// not match their digest, that is the cause to report (the layer was
/// altered), not the decompressor's complaint.
fn unreadable(store: &dyn Store, layer: &LayerRef, e: &io::Error) -> ImageError {
    if let Some(expected) = &layer.digest
        && let Ok(Some((mut raw, _))) = store.open(&layer.name)
    {
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            match raw.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => h.update(&buf[..n]),
                Err(_) => return layer_error(layer, e),
            }
        }
        let actual = format!("sha256:{}", crate::encoding::hex(&h.finalize()));
        if actual != *expected {
            return ImageError::DigestMismatch {
                what: format!("layer {}", layer_label(layer)),
                expected: expected.clone(),
                actual,
            };
        }
    }
    layer_error(layer, e)
}

/// An entry's place: (layer, ordinal), refused past 2^32 entries.
fn entry_at(li: usize, ordinal: usize, layer: &LayerRef) -> Result<(u32, u32), ImageError> {
    match (u32::try_from(li), u32::try_from(ordinal)) {
        (Ok(l), Ok(o)) => Ok((l, o)),
        _ => Err(ImageError::Layer {
            layer: layer_label(layer),
            why: "more than 2^32 entries; refused".into(),
        }),
    }
}

/// One tar entry of a layer being streamed.
type LayerEntry<'e, 's> = tar::Entry<'e, Padded<Box<dyn Read + 's>>>;

/// What [`each_entry`] does with an entry and its (layer, ordinal).
type OnEntry<'f> = dyn FnMut(&mut LayerEntry<'_, '_>, (u32, u32)) -> Result<(), ImageError> + 'f;

/// Stream layer `li` once, handing each tar entry and its (layer,
/// ordinal) to `each`, then check the layer's digests: the one pass that
/// indexing and reading contents both make, so both read a layer with the
/// same framing, padding and checks.
fn each_entry(
    store: &dyn Store,
    layer: &LayerRef,
    li: usize,
    each: &mut OnEntry<'_>,
) -> Result<(), ImageError> {
    let (stream, stored, plain) = open_layer(store, layer)?;
    let (mut archive, data_end) = tar_archive(stream);
    let entries = archive
        .entries()
        .map_err(|e| unreadable(store, layer, &e))?;
    for (ordinal, entry) in entries.enumerate() {
        let mut entry = entry.map_err(|e| unreadable(store, layer, &e))?;
        let at = entry_at(li, ordinal, layer)?;
        data_end.set(entry.raw_file_position() + entry.size());
        each(&mut entry, at)?;
    }
    finish_layer(archive.into_inner(), layer, &stored, &plain).map_err(|e| match e {
        ImageError::Layer { .. } => unreadable(store, layer, &io::Error::other(e.to_string())),
        e => e,
    })
}

/// Index the layers, lowest first. Entries whose path `prefetch` names
/// (with a cap) have their content kept on the way, within the content
/// budget, so that most scans need no second pass; it is used only after
/// the layer's digests were checked (a mismatch fails the build).
pub(crate) fn build(
    store: &dyn Store,
    layers: &[LayerRef],
    prefetch: &dyn Fn(&str) -> Option<u64>,
) -> Result<FsIndex, ImageError> {
    let mut index = FsIndex::default();
    let mut budget = crate::facts::MAX_CONTENT_BYTES;
    for (li, layer) in layers.iter().enumerate() {
        each_entry(store, layer, li, &mut |entry, at| {
            let (uid, gid) = owner(entry);
            let h = entry.header();
            let name = entry.path_bytes().into_owned();
            let link = entry.link_name_bytes().map(|l| l.into_owned());
            let member = Member {
                name: &name,
                kind: h.entry_type(),
                old_style: h.as_old().linkflag[0] == 0,
                mode: h.mode().unwrap_or(0),
                uid,
                gid,
                size: entry.size(),
                link: link.as_deref(),
                at,
            };
            let made = index.apply(&member, li).map_err(|e| ImageError::Layer {
                layer: layer_label(layer),
                why: format!(
                    "entry {:?}: {e}",
                    crate::safeio::excerpt(&crate::encoding::name_text(&name), 120)
                ),
            })?;
            let Some(id) = made else { return Ok(()) };
            if index.node(id).kind != Kind::File || index.node(id).data != Some(at) {
                return Ok(());
            }
            let path = index.path(id);
            let size = index.node(id).size;
            if let Some(cap) = prefetch(&crate::encoding::name_text(&path))
                && cap.min(size) <= budget
            {
                let mut bytes = Vec::new();
                entry
                    .take(cap)
                    .read_to_end(&mut bytes)
                    .map_err(|e| unreadable(store, layer, &e))?;
                budget -= bytes.len() as u64;
                index.prefetched.insert(at, (bytes, size > cap));
            }
            Ok(())
        })?;
    }
    Ok(index)
}

/// Read the content of the entries in `wanted` ((layer, ordinal) → cap):
/// each layer that holds one is streamed again and checked again against
/// its digests. Returns (bytes, truncated) per entry.
pub(crate) fn read_contents(
    store: &dyn Store,
    layers: &[LayerRef],
    wanted: &BTreeMap<(u32, u32), u64>,
    prefetched: &mut Contents,
) -> Result<Contents, ImageError> {
    let mut out = HashMap::new();
    let mut missing = BTreeMap::new();
    for (at, cap) in wanted {
        match prefetched.remove(at) {
            // Whole, or cut no shorter than this cap: enough.
            Some(c) if !c.1 || c.0.len() as u64 >= *cap => {
                out.insert(*at, c);
            }
            _ => {
                missing.insert(*at, *cap);
            }
        }
    }
    let wanted = &missing;
    let by_layer: BTreeSet<u32> = wanted.keys().map(|(l, _)| *l).collect();
    for li in by_layer {
        let layer = &layers[li as usize];
        each_entry(store, layer, li as usize, &mut |entry, at| {
            let Some(&cap) = wanted.get(&at) else {
                return Ok(());
            };
            let size = entry.size();
            let mut bytes = Vec::new();
            entry
                .take(cap)
                .read_to_end(&mut bytes)
                .map_err(|e| unreadable(store, layer, &e))?;
            out.insert(at, (bytes, size > cap));
            Ok(())
        })?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_layer_that_inflates_past_the_ratio_is_a_bomb() {
        assert!(!is_bomb(BOMB_FREE, 1), "the first GiB is free");
        assert!(
            !is_bomb(BOMB_FREE + 1, (BOMB_FREE + 1) / 20),
            "a real layer"
        );
        assert!(is_bomb(BOMB_FREE + 1, (BOMB_FREE + 1) / (BOMB_RATIO + 1)));
        assert!(is_bomb(4 * BOMB_FREE, 0));
    }
}
