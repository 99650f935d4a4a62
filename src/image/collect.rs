//! Facts from an image's index, under the rootfs collector's rules: paths
//! resolve inside the image (`..` stops at `/`, absolute symlinks start at
//! the image's root, at most 40 links), content only from regular files,
//! within the per-file caps and one budget per target, walks that never
//! follow symlinks and stop at their depth and entry limits.

use std::collections::BTreeMap;

use super::index::{FsIndex, Id, Node, ROOT};
use crate::facts::{
    Content, FactRequest, Facts, FileFact, Kind, StatFact, WalkEntry, WalkFact, WalkRequest,
};

/// Symlinks followed in one resolution (Linux's MAXSYMLINKS).
const MAX_LINKS: u32 = 40;
/// Entries of one `read_dirs` directory (as the rootfs collector).
const MAX_DIR_ENTRIES: usize = 10_000;

/// Why a path does not resolve.
enum Miss {
    /// Nothing there (a dangling link included).
    NotFound,
    /// A loop, or a file used as a directory.
    Error(String),
}

impl FsIndex {
    /// Resolve `path` inside the image as the kernel resolves it inside a
    /// root; the last component's symlink is followed when `follow`.
    fn resolve(&self, path: &str, follow: bool) -> Result<Id, Miss> {
        let mut todo: Vec<Vec<u8>> = path
            .as_bytes()
            .split(|b| *b == b'/')
            .filter(|c| !c.is_empty())
            .rev()
            .map(<[u8]>::to_vec)
            .collect();
        let mut cur: Vec<Id> = Vec::new();
        let mut links = 0;
        while let Some(c) = todo.pop() {
            match &c[..] {
                b"." => continue,
                b".." => {
                    cur.pop();
                    continue;
                }
                _ => {}
            }
            let dir = cur.last().copied().unwrap_or(ROOT);
            let id = self.child(dir, &c).ok_or(Miss::NotFound)?;
            let node = self.node(id);
            let last = todo.is_empty();
            match (&node.kind, &node.link) {
                (Kind::Symlink, Some(target)) if !last || follow => {
                    links += 1;
                    if links > MAX_LINKS {
                        return Err(Miss::Error("too many levels of symbolic links".into()));
                    }
                    if target.first() == Some(&b'/') {
                        cur.clear();
                    }
                    todo.extend(
                        target
                            .split(|b| *b == b'/')
                            .filter(|c| !c.is_empty())
                            .rev()
                            .map(<[u8]>::to_vec),
                    );
                }
                (Kind::Directory, _) => cur.push(id),
                _ if last => cur.push(id),
                _ => return Err(Miss::Error("a path component is not a directory".into())),
            }
        }
        Ok(cur.last().copied().unwrap_or(ROOT))
    }

    fn lookup(&self, path: &str, follow: bool) -> Result<(Id, &Node), Miss> {
        let id = self.resolve(path, follow)?;
        Ok((id, self.node(id)))
    }
}

fn stat(n: &Node) -> StatFact {
    StatFact {
        kind: n.kind,
        mode: n.mode,
        uid: n.uid,
        gid: n.gid,
        size: n.size,
    }
}

/// The entries whose content `req` needs: (layer, ordinal) → cap. Read
/// them with [`super::index::read_contents`], then call [`facts`].
pub(crate) fn wanted(index: &FsIndex, req: &FactRequest) -> BTreeMap<(u32, u32), u64> {
    let mut out = BTreeMap::new();
    let mut want = |n: &Node, cap: u64| {
        if let (Kind::File, Some(at)) = (n.kind, n.data) {
            let e = out.entry(at).or_insert(0);
            *e = (*e).max(cap);
        }
    };
    for path in &req.read {
        if let Ok((_, n)) = index.lookup(path, true) {
            want(n, req.read_cap(path));
        }
    }
    for dir in &req.read_dirs {
        if let Ok((p, n)) = index.lookup(dir, true)
            && n.kind == Kind::Directory
        {
            for (_, c) in index.children(p).into_iter().take(MAX_DIR_ENTRIES) {
                want(index.node(c), req.max_file_bytes);
            }
        }
    }
    out
}

pub(crate) use super::index::Contents;

/// Content bytes one target may still carry (the rootfs collector's budget).
struct Budget(u64);

impl Budget {
    fn take(&mut self, n: &Node, cap: u64, contents: &Contents) -> Result<(Content, bool), String> {
        let Some(at) = n.data else {
            return Err("a sparse file in the layer; its content is not read".into());
        };
        let (bytes, truncated) = contents
            .get(&at)
            .ok_or("its content was not read from the layer")?;
        let len = (bytes.len() as u64).min(cap);
        if len > self.0 {
            return Err(format!(
                "not read: the facts of one target carry at most {} of file content",
                crate::safeio::human_bytes(crate::facts::MAX_CONTENT_BYTES)
            ));
        }
        self.0 -= len;
        Ok((
            Content::from_bytes(bytes[..len as usize].to_vec()),
            *truncated || (bytes.len() as u64) > cap,
        ))
    }
}

/// The facts `req` asks for, from the index and the contents read.
pub(crate) fn facts(index: &FsIndex, req: &FactRequest, contents: &Contents) -> Facts {
    let mut facts = Facts::default();
    let mut budget = Budget(crate::facts::MAX_CONTENT_BYTES);
    for path in req.stat.iter().chain(req.read.iter()) {
        if facts.files.contains_key(path) {
            continue;
        }
        let cap = req.read.contains(path).then(|| req.read_cap(path));
        facts.files.insert(
            path.clone(),
            file_fact(index, path, cap, contents, &mut budget),
        );
    }
    for dir in &req.read_dirs {
        match read_dir(index, dir, req.max_file_bytes, contents, &mut budget) {
            Ok(files) => {
                facts.dirs.insert(dir.clone(), files);
            }
            Err(why) => {
                facts.dir_errors.insert(dir.clone(), why);
            }
        }
    }
    for w in &req.walks {
        facts.walks.insert(w.path.clone(), walk(index, w));
    }
    facts
}

fn file_fact(
    index: &FsIndex,
    path: &str,
    cap: Option<u64>,
    contents: &Contents,
    budget: &mut Budget,
) -> FileFact {
    let mut fact = FileFact::default();
    match index.lookup(path, false) {
        Ok((_, n)) => {
            fact.lstat = Some(stat(n));
            if n.kind == Kind::Symlink {
                fact.link_target = n
                    .link
                    .as_ref()
                    .map(|l| crate::encoding::name_text(l).into_owned());
            }
        }
        Err(Miss::NotFound) => return fact,
        Err(Miss::Error(e)) => {
            fact.error = Some(e);
            return fact;
        }
    }
    let n = match index.lookup(path, true) {
        Ok((_, n)) => n,
        Err(Miss::NotFound) => return fact, // a dangling link
        Err(Miss::Error(e)) => {
            fact.error = Some(e);
            return fact;
        }
    };
    fact.stat = Some(stat(n));
    let Some(cap) = cap else { return fact };
    if n.kind != Kind::File {
        fact.error = Some(crate::facts::not_a_regular_file(n.kind));
        return fact;
    }
    match budget.take(n, cap, contents) {
        Ok((c, truncated)) => {
            fact.content = Some(c);
            fact.truncated = truncated;
        }
        Err(e) => fact.error = Some(e),
    }
    fact
}

fn read_dir(
    index: &FsIndex,
    dir: &str,
    cap: u64,
    contents: &Contents,
    budget: &mut Budget,
) -> Result<BTreeMap<String, FileFact>, String> {
    let mut out = BTreeMap::new();
    let p = match index.lookup(dir, true) {
        Ok((p, n)) if n.kind == Kind::Directory => p,
        Ok(_) => return Err("a path component is not a directory".into()),
        // A missing directory lists as empty, as the other collectors say.
        Err(Miss::NotFound) => return Ok(out),
        Err(Miss::Error(e)) => return Err(e),
    };
    if index.has_more_children_than(p, MAX_DIR_ENTRIES) {
        return Err(format!("more than {MAX_DIR_ENTRIES} entries"));
    }
    for (name, c) in index.children(p) {
        let n = index.node(c);
        let mut fact = FileFact {
            lstat: Some(stat(n)),
            stat: Some(stat(n)),
            ..FileFact::default()
        };
        if n.kind == Kind::File {
            match budget.take(n, cap, contents) {
                Ok((c, truncated)) => {
                    fact.content = Some(c);
                    fact.truncated = truncated;
                }
                Err(e) => fact.error = Some(e),
            }
        }
        out.insert(crate::encoding::name_text(name).into_owned(), fact);
    }
    Ok(out)
}

fn walk(index: &FsIndex, req: &WalkRequest) -> WalkFact {
    let mut fact = WalkFact::default();
    let start = match index.lookup(&req.path, true) {
        Ok((p, n)) if n.kind == Kind::Directory => p,
        Ok(_) => {
            fact.errors.push((
                req.path.clone(),
                "a path component is not a directory".into(),
            ));
            return fact;
        }
        Err(Miss::NotFound) => {
            fact.missing = true;
            return fact;
        }
        Err(Miss::Error(e)) => {
            fact.errors.push((req.path.clone(), e));
            return fact;
        }
    };
    let base = req.path.trim_end_matches('/').to_string();
    walk_dir(index, start, &base, 0, req, &mut fact);
    fact.entries.sort_by(|a, b| a.path.cmp(&b.path));
    fact
}

fn walk_dir(
    index: &FsIndex,
    real: Id,
    shown: &str,
    depth: u32,
    req: &WalkRequest,
    fact: &mut WalkFact,
) {
    for (name, c) in index.children(real) {
        if fact.visited >= u64::from(req.limit) {
            fact.truncated = true;
            return;
        }
        fact.visited += 1;
        let path = format!("{shown}/{}", crate::encoding::name_text(name));
        let n = index.node(c);
        let st = stat(n);
        if req.all || (st.kind != Kind::Symlink && (st.mode & 0o6000 != 0 || st.mode & 0o002 != 0))
        {
            fact.entries.push(WalkEntry {
                path: path.clone(),
                stat: st,
            });
        }
        if n.kind == Kind::Directory && depth + 2 <= req.depth {
            walk_dir(index, c, &path, depth + 1, req, fact);
        }
    }
}
