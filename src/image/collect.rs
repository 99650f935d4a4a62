//! Facts from an image's index, under the rootfs collector's rules: paths
//! resolve inside the image (`..` stops at `/`, absolute symlinks start at
//! the image's root, at most 40 links), content only from regular files,
//! within the per-file caps and one budget per target, walks that never
//! follow symlinks and stop at their depth and entry limits.

use std::collections::BTreeMap;

use super::index::{FsIndex, Node};
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
    /// Resolve `path` inside the image; the last component's symlink is
    /// followed when `follow`. Returns the final absolute path.
    fn resolve(&self, path: &str, follow: bool) -> Result<String, Miss> {
        let mut todo: Vec<String> = path
            .split('/')
            .filter(|c| !c.is_empty())
            .map(str::to_string)
            .rev()
            .collect();
        let mut cur: Vec<String> = Vec::new();
        let mut links = 0;
        while let Some(c) = todo.pop() {
            match c.as_str() {
                "." => continue,
                ".." => {
                    cur.pop();
                    continue;
                }
                _ => {}
            }
            let here = format!(
                "/{}",
                cur.iter()
                    .map(String::as_str)
                    .chain([c.as_str()])
                    .collect::<Vec<_>>()
                    .join("/")
            );
            let node = self.nodes.get(&here).ok_or(Miss::NotFound)?;
            let last = todo.is_empty();
            match (&node.kind, &node.link) {
                (Kind::Symlink, Some(target)) if !last || follow => {
                    links += 1;
                    if links > MAX_LINKS {
                        return Err(Miss::Error("too many levels of symbolic links".into()));
                    }
                    if target.starts_with('/') {
                        cur.clear();
                    }
                    todo.extend(
                        target
                            .split('/')
                            .filter(|c| !c.is_empty())
                            .map(str::to_string)
                            .rev(),
                    );
                }
                (Kind::Directory, _) => cur.push(c),
                _ if last => cur.push(c),
                _ => return Err(Miss::Error("a path component is not a directory".into())),
            }
        }
        Ok(format!("/{}", cur.join("/")))
    }

    fn node(&self, path: &str, follow: bool) -> Result<(String, &Node), Miss> {
        let p = self.resolve(path, follow)?;
        let n = self.nodes.get(&p).ok_or(Miss::NotFound)?;
        Ok((p, n))
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
pub fn wanted(index: &FsIndex, req: &FactRequest) -> BTreeMap<(usize, u64), u64> {
    let mut out = BTreeMap::new();
    let mut want = |n: &Node, cap: u64| {
        if let (Kind::File, Some(at)) = (n.kind, n.data) {
            let e = out.entry(at).or_insert(0);
            *e = (*e).max(cap);
        }
    };
    for path in &req.read {
        if let Ok((_, n)) = index.node(path, true) {
            want(n, req.read_cap(path));
        }
    }
    for dir in &req.read_dirs {
        if let Ok((p, n)) = index.node(dir, true)
            && n.kind == Kind::Directory
        {
            for name in index
                .children
                .get(&p)
                .into_iter()
                .flatten()
                .take(MAX_DIR_ENTRIES)
            {
                if let Some(n) = index.nodes.get(&join(&p, name)) {
                    want(n, req.max_file_bytes);
                }
            }
        }
    }
    out
}

fn join(dir: &str, name: &str) -> String {
    if dir == "/" {
        format!("/{name}")
    } else {
        format!("{dir}/{name}")
    }
}

pub use super::index::Contents;

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
pub fn facts(index: &FsIndex, req: &FactRequest, contents: &Contents) -> Facts {
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
    match index.node(path, false) {
        Ok((_, n)) => {
            fact.lstat = Some(stat(n));
            if n.kind == Kind::Symlink {
                fact.link_target = n.link.clone();
            }
        }
        Err(Miss::NotFound) => return fact,
        Err(Miss::Error(e)) => {
            fact.error = Some(e);
            return fact;
        }
    }
    let n = match index.node(path, true) {
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
    let p = match index.node(dir, true) {
        Ok((p, n)) if n.kind == Kind::Directory => p,
        Ok(_) => return Err("a path component is not a directory".into()),
        // A missing directory lists as empty, as the other collectors say.
        Err(Miss::NotFound) => return Ok(out),
        Err(Miss::Error(e)) => return Err(e),
    };
    let names = index.children.get(&p).cloned().unwrap_or_default();
    if names.len() > MAX_DIR_ENTRIES {
        return Err(format!("more than {MAX_DIR_ENTRIES} entries"));
    }
    for name in names {
        let Some(n) = index.nodes.get(&join(&p, &name)) else {
            continue;
        };
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
        out.insert(name, fact);
    }
    Ok(out)
}

fn walk(index: &FsIndex, req: &WalkRequest) -> WalkFact {
    let mut fact = WalkFact::default();
    let start = match index.node(&req.path, true) {
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
    walk_dir(index, &start, &base, 0, req, &mut fact);
    fact.entries.sort_by(|a, b| a.path.cmp(&b.path));
    fact
}

fn walk_dir(
    index: &FsIndex,
    real: &str,
    shown: &str,
    depth: u32,
    req: &WalkRequest,
    fact: &mut WalkFact,
) {
    let names = index.children.get(real).cloned().unwrap_or_default();
    for name in names {
        if fact.visited >= u64::from(req.limit) {
            fact.truncated = true;
            return;
        }
        fact.visited += 1;
        let path = format!("{shown}/{name}");
        let Some(n) = index.nodes.get(&join(real, &name)) else {
            continue;
        };
        let st = stat(n);
        if req.all || (st.kind != Kind::Symlink && (st.mode & 0o6000 != 0 || st.mode & 0o002 != 0))
        {
            fact.entries.push(WalkEntry {
                path: path.clone(),
                stat: st,
            });
        }
        if n.kind == Kind::Directory && depth + 2 <= req.depth {
            walk_dir(index, &join(real, &name), &path, depth + 1, req, fact);
        }
    }
}
