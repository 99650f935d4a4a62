//! The final filesystem of an image, indexed from its layers without
//! extracting them: each layer is streamed once (gzip, zstd or plain tar),
//! its whiteouts (`.wh.NAME`) and opaque directories (`.wh..wh..opq`)
//! applied to the layers below it, hard links resolved to the entry that
//! holds their data. Only metadata is kept; file content is read in a
//! second pass, for the files a control needs ([`read_contents`]).
//!
//! Every layer's bytes are hashed as they stream and checked against the
//! manifest's digest and the config's diff_id at the end of the layer; a
//! mismatch fails the whole image, so no fact ever comes from unverified
//! bytes. Entries that would climb out of the image (`../x`) are ignored
//! and recorded; absolute names are taken inside the image, as container
//! runtimes do.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{self, BufRead, BufReader, Read};
use std::sync::{Arc, Mutex};

use sha2::{Digest as _, Sha256};

use super::ImageError;
use super::manifest::LayerRef;
use super::source::Store;
use crate::facts::Kind;

/// Entries in the final filesystem (a large distribution image has ~50k).
const MAX_NODES: usize = 1_000_000;
/// Longest path or link target kept (PATH_MAX).
const MAX_PATH: usize = 4096;

/// One file of the final filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Its type.
    pub kind: Kind,
    /// `mode & 0o7777`.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Size (regular files).
    pub size: u64,
    /// Symlink target, as written.
    pub link: Option<String>,
    /// Where its bytes are: (layer, entry ordinal in that layer).
    pub data: Option<(usize, u64)>,
}

/// The final filesystem: absolute paths (`/etc/passwd`) to nodes; `/` is
/// always a directory.
#[derive(Debug, Default)]
pub struct FsIndex {
    /// Every path.
    pub nodes: BTreeMap<String, Node>,
    /// Directory → the names in it, sorted.
    pub children: HashMap<String, BTreeSet<String>>,
    /// Entries ignored, and why (a name climbing out of the image, a hard
    /// link to nothing).
    pub ignored: Vec<String>,
    /// Content read on the way (see [`build`]), by (layer, ordinal).
    pub prefetched: Contents,
}

fn dir_node() -> Node {
    Node {
        kind: Kind::Directory,
        mode: 0o755,
        uid: 0,
        gid: 0,
        size: 0,
        link: None,
        data: None,
    }
}

/// `/a/b` from a member name, or `None` when it climbs out of the image.
fn absolute(name: &str) -> Option<String> {
    let parts = super::source::clean(name)?;
    Some(format!("/{}", parts.join("/")))
}

fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

/// Remove `path` and everything under it.
fn remove_tree(nodes: &mut BTreeMap<String, Node>, path: &str) {
    nodes.remove(path);
    remove_below(nodes, path);
}

/// Remove everything under directory `path` (not `path` itself).
fn remove_below(nodes: &mut BTreeMap<String, Node>, path: &str) {
    let prefix = if path == "/" {
        "/".to_string()
    } else {
        format!("{path}/")
    };
    let doomed: Vec<String> = nodes
        .range(prefix.clone()..)
        .take_while(|(k, _)| k.starts_with(&prefix))
        .map(|(k, _)| k.clone())
        .collect();
    for k in doomed {
        nodes.remove(&k);
    }
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
pub type Contents = HashMap<(usize, u64), (Vec<u8>, bool)>;

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

/// Index the layers, lowest first. Entries whose path `prefetch` names
/// (with a cap) have their content kept on the way, within the content
/// budget, so that most scans need no second pass; it is used only after
/// the layer's digests were checked (a mismatch fails the build).
pub fn build(
    store: &dyn Store,
    layers: &[LayerRef],
    prefetch: &dyn Fn(&str) -> Option<u64>,
) -> Result<FsIndex, ImageError> {
    let mut index = FsIndex::default();
    let mut budget = crate::facts::MAX_CONTENT_BYTES;
    index.nodes.insert("/".into(), dir_node());
    for (li, layer) in layers.iter().enumerate() {
        let (stream, stored, plain) = open_layer(store, layer)?;
        let mut archive = tar::Archive::new(stream);
        let mut upper: BTreeMap<String, Node> = BTreeMap::new();
        let mut whiteouts: Vec<String> = Vec::new();
        let mut opaque: Vec<String> = Vec::new();
        let entries = archive
            .entries()
            .map_err(|e| unreadable(store, layer, &e))?;
        for (ordinal, entry) in entries.enumerate() {
            let entry = entry.map_err(|e| unreadable(store, layer, &e))?;
            let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            if raw.len() > MAX_PATH {
                index
                    .ignored
                    .push(format!("layer {li}: a name longer than {MAX_PATH} bytes"));
                continue;
            }
            let Some(path) = absolute(&raw) else {
                // `./`: the root directory's own metadata.
                if !raw.split('/').any(|c| c == "..") {
                    let h = entry.header();
                    if h.entry_type() == tar::EntryType::Directory
                        && let Some(root) = index.nodes.get_mut("/")
                    {
                        root.mode = h.mode().unwrap_or(0o755) & 0o7777;
                        root.uid = h.uid().unwrap_or(0) as u32;
                        root.gid = h.gid().unwrap_or(0) as u32;
                    }
                } else {
                    index.ignored.push(format!(
                        "layer {li}: {:?} climbs out of the image; ignored",
                        crate::safeio::excerpt(&raw, 120)
                    ));
                }
                continue;
            };
            let name = path.rsplit('/').next().unwrap_or_default();
            if name == ".wh..wh..opq" {
                opaque.push(parent(&path).to_string());
                continue;
            }
            if let Some(hidden) = name.strip_prefix(".wh.") {
                let dir = parent(&path);
                whiteouts.push(if dir == "/" {
                    format!("/{hidden}")
                } else {
                    format!("{dir}/{hidden}")
                });
                continue;
            }
            let h = entry.header();
            let meta = |kind| Node {
                kind,
                mode: h.mode().unwrap_or(0) & 0o7777,
                uid: h.uid().unwrap_or(0) as u32,
                gid: h.gid().unwrap_or(0) as u32,
                size: 0,
                link: None,
                data: None,
            };
            let link_text = || -> Option<String> {
                entry
                    .link_name_bytes()
                    .map(|t| String::from_utf8_lossy(&t).into_owned())
                    .filter(|t| t.len() <= MAX_PATH)
            };
            let kind = h.entry_type();
            let node = match kind {
                tar::EntryType::Regular
                | tar::EntryType::Continuous
                | tar::EntryType::GNUSparse => Node {
                    size: entry.size(),
                    data: (h.entry_type() != tar::EntryType::GNUSparse)
                        .then_some((li, ordinal as u64)),
                    ..meta(Kind::File)
                },
                tar::EntryType::Directory => meta(Kind::Directory),
                tar::EntryType::Symlink => {
                    let link = link_text();
                    Node {
                        // lstat's size of a symlink is its target's length.
                        size: link.as_ref().map_or(0, |l| l.len() as u64),
                        link,
                        ..meta(Kind::Symlink)
                    }
                }
                tar::EntryType::Char => meta(Kind::Char),
                tar::EntryType::Block => meta(Kind::Block),
                tar::EntryType::Fifo => meta(Kind::Fifo),
                tar::EntryType::Link => {
                    // The same inode as an entry above (in this layer or a
                    // lower one), named from the image's root.
                    let target = link_text().as_deref().and_then(absolute);
                    let found = target
                        .as_ref()
                        .and_then(|t| upper.get(t).or_else(|| index.nodes.get(t)))
                        .filter(|n| n.kind != Kind::Directory)
                        .cloned();
                    match found {
                        Some(n) => n,
                        None => {
                            index.ignored.push(format!(
                                "layer {li}: hard link {:?} names nothing in the image; ignored",
                                crate::safeio::excerpt(&raw, 120)
                            ));
                            continue;
                        }
                    }
                }
                _ => continue, // pax/GNU metadata entries are folded in by tar
            };
            // Parents a layer does not list exist as plain directories.
            let mut p = parent(&path).to_string();
            while p != "/"
                && !upper.contains_key(&p)
                && !index
                    .nodes
                    .get(&p)
                    .is_some_and(|n| n.kind == Kind::Directory)
            {
                upper.insert(p.clone(), dir_node());
                p = parent(&p).to_string();
            }
            if node.kind != Kind::Directory {
                // A file replacing a directory of this layer hides its contents.
                remove_below(&mut upper, &path);
            }
            if matches!(kind, tar::EntryType::Regular | tar::EntryType::Continuous)
                && let Some(cap) = prefetch(&path)
                && cap.min(node.size) <= budget
            {
                let size = node.size;
                let mut bytes = Vec::new();
                entry
                    .take(cap)
                    .read_to_end(&mut bytes)
                    .map_err(|e| unreadable(store, layer, &e))?;
                budget -= bytes.len() as u64;
                index
                    .prefetched
                    .insert((li, ordinal as u64), (bytes, size > cap));
            }
            upper.insert(path, node);
            if upper.len() + index.nodes.len() > MAX_NODES {
                return Err(ImageError::Invalid(format!(
                    "more than {MAX_NODES} files; refused"
                )));
            }
        }
        finish_layer(archive.into_inner(), layer, &stored, &plain).map_err(|e| match e {
            ImageError::Layer { .. } => unreadable(store, layer, &io::Error::other(e.to_string())),
            e => e,
        })?;
        // Whiteouts and opaque directories hide what the lower layers had.
        for dir in &opaque {
            remove_below(&mut index.nodes, dir);
        }
        for path in &whiteouts {
            remove_tree(&mut index.nodes, path);
        }
        for (path, node) in upper {
            if node.kind != Kind::Directory {
                remove_below(&mut index.nodes, &path);
            } else if let Some(lower) = index.nodes.get(&path)
                && lower.kind != Kind::Directory
            {
                index.nodes.remove(&path);
            }
            index.nodes.insert(path, node);
        }
    }
    // A node whose parent is gone (a whiteout of a directory above a later
    // layer's file, or a parent replaced by a file) is unreachable.
    let orphans: Vec<String> = index
        .nodes
        .keys()
        .filter(|p| {
            *p != "/"
                && !index
                    .nodes
                    .get(parent(p))
                    .is_some_and(|n| n.kind == Kind::Directory)
        })
        .cloned()
        .collect();
    for o in orphans {
        index.nodes.remove(&o);
    }
    for path in index.nodes.keys().filter(|p| *p != "/") {
        let name = path.rsplit('/').next().unwrap_or_default().to_string();
        index
            .children
            .entry(parent(path).to_string())
            .or_default()
            .insert(name);
    }
    Ok(index)
}

/// Read the content of the entries in `wanted` ((layer, ordinal) → cap):
/// each layer that holds one is streamed again and checked again against
/// its digests. Returns (bytes, truncated) per entry.
pub fn read_contents(
    store: &dyn Store,
    layers: &[LayerRef],
    wanted: &BTreeMap<(usize, u64), u64>,
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
    let by_layer: BTreeSet<usize> = wanted.keys().map(|(l, _)| *l).collect();
    for li in by_layer {
        let layer = &layers[li];
        let (stream, stored, plain) = open_layer(store, layer)?;
        let mut archive = tar::Archive::new(stream);
        let entries = archive
            .entries()
            .map_err(|e| unreadable(store, layer, &e))?;
        for (ordinal, entry) in entries.enumerate() {
            let entry = entry.map_err(|e| unreadable(store, layer, &e))?;
            let Some(&cap) = wanted.get(&(li, ordinal as u64)) else {
                continue;
            };
            let size = entry.size();
            let mut bytes = Vec::new();
            entry
                .take(cap)
                .read_to_end(&mut bytes)
                .map_err(|e| unreadable(store, layer, &e))?;
            out.insert((li, ordinal as u64), (bytes, size > cap));
        }
        finish_layer(archive.into_inner(), layer, &stored, &plain).map_err(|e| match e {
            ImageError::Layer { .. } => unreadable(store, layer, &io::Error::other(e.to_string())),
            e => e,
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
