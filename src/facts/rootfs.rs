//! The rootfs collector: gathers [`Facts`] from a directory that is a
//! container's root filesystem (a fixture, an unpacked image, and — through
//! the probe — `/proc/<pid>/root` of a running container).
//!
//! # Guarantees
//!
//! - Every path resolves inside the root ([`Root`]); no byte from outside it
//!   is returned.
//! - FIFOs, sockets and devices are never opened for reading: a path is
//!   first opened with `O_PATH` (which opens nothing) and inspected; only a
//!   regular file is then opened for reading, with `O_NONBLOCK`, and the
//!   inode is checked again on the open descriptor.
//! - Reads stop at the cap; truncation is recorded.
//! - A permission error, a symlink loop or a vanished file is an error on
//!   that one fact, never a failed collection.
//! - Walks never follow symlinks and stop at their depth and entry limits.
//! - Pseudo filesystems (procfs, sysfs, cgroupfs, …) are never evidence: a
//!   path resolving onto one is an error, a walk does not enter one, and a
//!   path whose content is wanted but is not a regular file is an error.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::path::Path;

use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags, openat, statat};

use super::resolve::{Root, fstat};
use super::{
    Content, FactRequest, Facts, FileFact, Kind, StatFact, WalkEntry, WalkFact, WalkRequest,
};

/// Collect every requested fact from the root at `dir`. Fails only when the
/// root itself cannot be opened.
pub fn collect(dir: &Path, req: &FactRequest) -> io::Result<Facts> {
    collect_from(&Root::open(dir)?, req)
}

/// Collect from an already opened root. All content read is charged to
/// one budget of [`super::MAX_CONTENT_BYTES`].
pub fn collect_from(root: &Root, req: &FactRequest) -> io::Result<Facts> {
    let mut facts = Facts::default();
    let mut budget = Budget(super::MAX_CONTENT_BYTES);
    for path in req.stat.iter().chain(req.read.iter()) {
        if facts.files.contains_key(path) {
            continue;
        }
        let cap = req.read_cap(path);
        let want_content = req.read.contains(path);
        facts.files.insert(
            path.clone(),
            file_fact(root, path, want_content.then_some(cap), &mut budget),
        );
    }
    for dir in &req.read_dirs {
        match read_dir(root, dir, req.max_file_bytes, &mut budget) {
            // A missing directory lists as empty, as the shell gatherer
            // reports it.
            Ok(files) => {
                facts.dirs.insert(dir.clone(), files.unwrap_or_default());
            }
            Err(why) => {
                facts.dir_errors.insert(dir.clone(), why);
            }
        }
    }
    for w in &req.walks {
        facts.walks.insert(w.path.clone(), walk(root, w));
    }
    Ok(facts)
}

fn stat_fact(st: &rustix::fs::Stat) -> StatFact {
    StatFact {
        kind: kind_of(FileType::from_raw_mode(st.st_mode)),
        mode: st.st_mode & 0o7777,
        uid: st.st_uid,
        gid: st.st_gid,
        size: u64::try_from(st.st_size).unwrap_or(0),
    }
}

fn kind_of(t: FileType) -> Kind {
    match t {
        FileType::RegularFile => Kind::File,
        FileType::Directory => Kind::Directory,
        FileType::Symlink => Kind::Symlink,
        FileType::Fifo => Kind::Fifo,
        FileType::Socket => Kind::Socket,
        FileType::CharacterDevice => Kind::Char,
        FileType::BlockDevice => Kind::Block,
        FileType::Unknown => Kind::Unknown,
    }
}

/// Describe an error without any path (facts name their path already).
fn reason(e: &io::Error) -> String {
    match e.raw_os_error().map(rustix::io::Errno::from_raw_os_error) {
        Some(rustix::io::Errno::ACCESS) | Some(rustix::io::Errno::PERM) => {
            "permission denied".into()
        }
        Some(rustix::io::Errno::LOOP) => "too many levels of symbolic links".into(),
        Some(rustix::io::Errno::NOTDIR) => "a path component is not a directory".into(),
        Some(rustix::io::Errno::XDEV) => "the path crosses out of the root".into(),
        _ => e.kind().to_string(),
    }
}

fn is_not_found(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound
}

/// Content bytes a collection may still read.
struct Budget(u64);

impl Budget {
    /// Read one file within `cap` and what is left of the budget. A file
    /// that the budget cuts where its own cap would not is an error.
    fn read(
        &mut self,
        cap: u64,
        read: impl FnOnce(u64) -> io::Result<(Vec<u8>, bool)>,
    ) -> Result<(Vec<u8>, bool), String> {
        let (bytes, truncated) = read(cap.min(self.0)).map_err(|e| reason(&e))?;
        if truncated && self.0 < cap {
            return Err(format!(
                "not read: the facts of one target carry at most {} of file content",
                crate::safeio::human_bytes(super::MAX_CONTENT_BYTES)
            ));
        }
        self.0 -= bytes.len() as u64;
        Ok((bytes, truncated))
    }
}

/// Why a descriptor on a pseudo filesystem is not evidence.
fn pseudo(fd: &OwnedFd) -> Option<String> {
    crate::safeio::pseudo_filesystem(fd).map(|fs| {
        format!("it resolves into a pseudo filesystem ({fs}), which is not part of the image")
    })
}

/// lstat, stat (followed), link text and, when `cap` is given, content.
///
/// A path that resolves onto a pseudo filesystem (procfs, sysfs, …) is an
/// error, never a fact: in a live root, `/etc/os-release → /proc/self/environ`
/// resolves inside the root to procfs's `self`, the scanner itself, and
/// `RESOLVE_NO_MAGICLINKS` does not stop that (`/proc/self` is an ordinary
/// procfs symlink). The check is `fstatfs` on the opened descriptor, under
/// both resolvers.
fn file_fact(root: &Root, path: &str, cap: Option<u64>, budget: &mut Budget) -> FileFact {
    let mut fact = FileFact::default();
    match root.parent_of(path) {
        Ok((parent, _)) if pseudo(&parent).is_some() => {
            fact.error = pseudo(&parent);
            return fact;
        }
        Ok((parent, name)) => match statat(&parent, name.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => {
                let sf = stat_fact(&st);
                if sf.kind == Kind::Symlink {
                    fact.link_target = rustix::fs::readlinkat(&parent, name.as_str(), Vec::new())
                        .ok()
                        .map(|t| crate::encoding::name_text(t.as_bytes()).into_owned());
                }
                fact.lstat = Some(sf);
            }
            Err(e) if e == rustix::io::Errno::NOENT => return fact,
            Err(e) => {
                fact.error = Some(reason(&e.into()));
                return fact;
            }
        },
        Err(e) if is_not_found(&e) => return fact,
        Err(e) => {
            fact.error = Some(reason(&e));
            return fact;
        }
    }
    // Follow links inside the root; O_PATH opens nothing, so a FIFO or
    // device is inspected without being opened.
    let handle = match root.open_in(path, OFlags::PATH) {
        Ok(fd) => fd,
        Err(e) if is_not_found(&e) => return fact, // dangling link
        Err(e) => {
            fact.error = Some(reason(&e));
            return fact;
        }
    };
    if let Some(why) = pseudo(&handle) {
        fact.error = Some(why);
        return fact;
    }
    let st = match fstat(&handle) {
        Ok(st) => st,
        Err(e) => {
            fact.error = Some(reason(&e));
            return fact;
        }
    };
    let sf = stat_fact(&st);
    fact.stat = Some(sf);
    let Some(cap) = cap else { return fact };
    if sf.kind != Kind::File {
        // Content was asked for (a database, a config file) and this is a
        // FIFO, a directory or a device: never opened, and not evidence.
        fact.error = Some(super::not_a_regular_file(sf.kind));
        return fact;
    }
    match budget.read(cap, |cap| read_capped(root, path, &st, cap)) {
        Ok((bytes, truncated)) => {
            fact.content = Some(Content::from_bytes(bytes));
            fact.truncated = truncated;
        }
        Err(why) => fact.error = Some(why),
    }
    fact
}

/// Read a regular file up to `cap` bytes. The file is reopened for reading
/// and must still be the same regular inode that was inspected.
fn read_capped(
    root: &Root,
    path: &str,
    expected: &rustix::fs::Stat,
    cap: u64,
) -> io::Result<(Vec<u8>, bool)> {
    let fd = root.open_in(path, OFlags::RDONLY | OFlags::NONBLOCK)?;
    read_fd_capped(fd, Some(expected), cap)
}

fn read_fd_capped(
    fd: OwnedFd,
    expected: Option<&rustix::fs::Stat>,
    cap: u64,
) -> io::Result<(Vec<u8>, bool)> {
    let st = fstat(&fd)?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile
        || expected.is_some_and(|e| e.st_dev != st.st_dev || e.st_ino != st.st_ino)
    {
        return Err(io::Error::other("file changed while it was read"));
    }
    let mut file = std::fs::File::from(fd);
    let mut bytes = Vec::with_capacity(
        usize::try_from(cap.min(u64::try_from(st.st_size).unwrap_or(0))).unwrap_or(0),
    );
    (&mut file).take(cap).read_to_end(&mut bytes)?;
    // One more byte tells whether the file went on past the cap.
    let mut probe = [0u8; 1];
    let truncated = bytes.len() as u64 == cap && file.read(&mut probe)? > 0;
    Ok((bytes, truncated))
}

/// Most entries read from one `read_dirs` directory; more is an error,
/// not a silent cut (a package missed is a package "not installed").
const MAX_DIR_ENTRIES: usize = 10_000;

/// Read every regular file directly inside `dir` (no recursion).
/// `Ok(None)` when the directory does not exist; `Err` when it exists but
/// cannot be listed completely.
fn read_dir(
    root: &Root,
    dir: &str,
    cap: u64,
    budget: &mut Budget,
) -> Result<Option<BTreeMap<String, FileFact>>, String> {
    let mut out = BTreeMap::new();
    let dfd = match root.open_in(dir, OFlags::RDONLY | OFlags::DIRECTORY) {
        Ok(fd) => fd,
        Err(e) if is_not_found(&e) => return Ok(None),
        Err(e) => return Err(reason(&e)),
    };
    if let Some(why) = pseudo(&dfd) {
        return Err(why);
    }
    let mut entries = Dir::read_from(&dfd).map_err(|e| reason(&e.into()))?;
    let mut count = 0;
    while let Some(entry) = entries.read() {
        let entry = entry.map_err(|e| reason(&e.into()))?;
        let name = crate::encoding::name_text(entry.file_name().to_bytes()).into_owned();
        if name == "." || name == ".." {
            continue;
        }
        count += 1;
        if count > MAX_DIR_ENTRIES {
            return Err(format!("more than {MAX_DIR_ENTRIES} entries"));
        }
        let mut fact = FileFact::default();
        match statat(&dfd, entry.file_name(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => {
                let sf = stat_fact(&st);
                fact.lstat = Some(sf);
                fact.stat = Some(sf);
                if sf.kind == Kind::File {
                    let opened = openat(
                        &dfd,
                        entry.file_name(),
                        OFlags::RDONLY
                            | OFlags::NONBLOCK
                            | OFlags::NOFOLLOW
                            | OFlags::CLOEXEC
                            | OFlags::NOCTTY,
                        Mode::empty(),
                    );
                    let read = budget.read(cap, |cap| {
                        opened
                            .map_err(io::Error::from)
                            .and_then(|fd| read_fd_capped(fd, Some(&st), cap))
                    });
                    match read {
                        Ok((bytes, truncated)) => {
                            fact.content = Some(Content::from_bytes(bytes));
                            fact.truncated = truncated;
                        }
                        Err(why) => fact.error = Some(why),
                    }
                }
            }
            // Vanished between the listing and the stat: not an entry.
            Err(rustix::io::Errno::NOENT) => continue,
            Err(e) => fact.error = Some(reason(&e.into())),
        }
        out.insert(name, fact);
    }
    Ok(Some(out))
}

/// Returns true if and only if an entry is worth recording in a walk that
/// records only special entries.
fn is_special(st: &StatFact) -> bool {
    st.kind != Kind::Symlink && (st.mode & 0o6000 != 0 || st.mode & 0o002 != 0)
}

/// A bounded walk that never follows symlinks.
fn walk(root: &Root, req: &WalkRequest) -> WalkFact {
    let mut fact = WalkFact::default();
    let start = match root.open_in(&req.path, OFlags::RDONLY | OFlags::DIRECTORY) {
        Ok(fd) => fd,
        Err(e) if is_not_found(&e) => {
            fact.missing = true;
            return fact;
        }
        Err(e) => {
            fact.errors.push((req.path.clone(), reason(&e)));
            return fact;
        }
    };
    if let Some(why) = pseudo(&start) {
        fact.errors.push((req.path.clone(), why));
        return fact;
    }
    let base = req.path.trim_end_matches('/').to_string();
    walk_dir(&start, &base, 0, req, &mut fact);
    fact.entries.sort_by(|a, b| a.path.cmp(&b.path));
    fact
}

/// Visit one directory, then each subdirectory depth-first. Only the
/// descriptors along the current path are open (at most `depth` of them).
fn walk_dir(dfd: &OwnedFd, dpath: &str, depth: u32, req: &WalkRequest, fact: &mut WalkFact) {
    let mut entries = match Dir::read_from(dfd) {
        Ok(d) => d,
        Err(e) => {
            fact.errors.push((dpath.to_string(), reason(&e.into())));
            return;
        }
    };
    let mut names = Vec::new();
    while let Some(entry) = entries.read() {
        match entry {
            Ok(entry) => {
                let name = entry.file_name();
                if name.to_bytes() != b"." && name.to_bytes() != b".." {
                    names.push(name.to_owned());
                }
            }
            Err(e) => {
                fact.errors.push((dpath.to_string(), reason(&e.into())));
                break;
            }
        }
    }
    drop(entries);
    names.sort();
    for name in names {
        if fact.visited >= u64::from(req.limit) {
            fact.truncated = true;
            return;
        }
        fact.visited += 1;
        let path = format!("{dpath}/{}", crate::encoding::name_text(name.to_bytes()));
        let st = match statat(dfd, name.as_c_str(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => stat_fact(&st),
            // Vanished since the listing (a live root): not an entry.
            Err(rustix::io::Errno::NOENT) => {
                fact.vanished.push(path);
                continue;
            }
            Err(e) => {
                fact.errors.push((path, reason(&e.into())));
                continue;
            }
        };
        if req.all || is_special(&st) {
            fact.entries.push(WalkEntry {
                path: path.clone(),
                stat: st,
            });
        }
        if st.kind == Kind::Directory {
            // Entries listed here are at level depth + 1; their children
            // would be at depth + 2. `depth: N` lists levels 1..=N, like
            // `find -mindepth 1 -maxdepth N`.
            if depth + 2 > req.depth {
                continue; // depth is a documented bound, not a truncation
            }
            match openat(
                dfd,
                name.as_c_str(),
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            ) {
                // A mount of procfs, sysfs, cgroupfs, … (live roots): its
                // entries describe the kernel, not the image; not entered.
                Ok(fd) if crate::safeio::pseudo_filesystem(&fd).is_some() => {
                    fact.pseudo_skipped.push(path);
                }
                Ok(fd) => walk_dir(&fd, &path, depth + 1, req, fact),
                Err(rustix::io::Errno::NOENT) => {}
                Err(e) => fact.errors.push((path, reason(&e.into()))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// For any root of files made of NULs, quotes, control characters,
    /// text or random bytes, and any caps, the encoded frame stays within
    /// ENCODED_RATIO × the bytes read plus a constant per fact.
    #[test]
    fn frame_size_is_bounded_by_the_bytes_read() {
        let dir = std::env::temp_dir().join(format!("vigil-amp-{}", std::process::id()));
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for round in 0..24 {
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(dir.join("etc")).unwrap();
            let mut req = FactRequest {
                nonce: "n".into(),
                max_file_bytes: 1024 + next() % (256 * 1024),
                ..FactRequest::default()
            };
            let files = 1 + next() % 12;
            for i in 0..files {
                let len = (next() % (300 * 1024)) as usize;
                let fill: Vec<u8> = match (round + i) % 6 {
                    0 => vec![0; len],
                    1 => vec![b'"'; len],
                    2 => (0..len).map(|_| (next() % 32) as u8).collect(),
                    3 => (0..len).map(|_| next() as u8).collect(),
                    4 => "plain text line\n".repeat(len / 16 + 1).into_bytes(),
                    _ => vec![b'\\'; len],
                };
                let p = format!("/etc/f{i}");
                std::fs::write(dir.join(&p[1..]), &fill).unwrap();
                req.stat.insert(p.clone());
                req.read.insert(p);
            }
            let facts = collect(&dir, &req).unwrap();
            let read: usize = facts
                .files
                .values()
                .filter_map(|f| f.content.as_ref())
                .map(|c| c.bytes().len())
                .sum();
            let frame = super::super::frame::encode("n", &facts);
            let bound = (read as f64 * crate::facts::ENCODED_RATIO) as usize + 512 * files as usize;
            assert!(
                frame.len() <= bound,
                "round {round}: {} > {bound}",
                frame.len()
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// More content than one target may carry: what the budget cuts is an
    /// error, never a silently short fact.
    #[test]
    fn the_content_budget_makes_errors_not_truncations() {
        let dir = std::env::temp_dir().join(format!("vigil-budget-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("etc")).unwrap();
        let f = std::fs::File::create(dir.join("etc/sparse")).unwrap();
        f.set_len(super::super::MAX_CONTENT_BYTES * 4).unwrap();
        std::fs::write(dir.join("etc/small"), "x").unwrap();
        let mut req = FactRequest {
            max_file_bytes: 256 * 1024 * 1024,
            ..FactRequest::default()
        };
        for p in ["/etc/sparse", "/etc/small"] {
            req.stat.insert(p.into());
            req.read.insert(p.into());
        }
        let facts = collect(&dir, &req).unwrap();
        let sparse = &facts.files["/etc/sparse"];
        assert!(sparse.content.is_none());
        assert!(sparse.error.as_deref().unwrap().contains("at most 40 MiB"));
        assert!(facts.files["/etc/small"].content.is_some());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The machine's own `/` is a live root: procfs and sysfs are mounted.
    /// Under both resolvers, a link into them, a direct path, a listed
    /// directory and a walk never return their content.
    #[test]
    fn pseudo_filesystems_are_refused_under_both_resolvers() {
        let dir = std::env::temp_dir().join(format!("vigil-live-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::os::unix::fs::symlink("/proc/self/environ", dir.join("os-release")).unwrap();
        let link = dir.join("os-release").display().to_string();
        let mut req = FactRequest {
            max_file_bytes: 4096,
            ..FactRequest::default()
        };
        for p in [link.as_str(), "/proc/self/environ", "/sys/kernel/mm"] {
            req.stat.insert(p.into());
            req.read.insert(p.into());
        }
        req.read_dirs.insert("/proc/self".into());
        for root in [
            Root::open(Path::new("/")).unwrap(),
            Root::open_without_openat2(Path::new("/")).unwrap(),
        ] {
            let facts = collect_from(&root, &req).unwrap();
            for (path, f) in &facts.files {
                assert!(f.content.is_none(), "{path}");
                assert!(
                    f.error
                        .as_deref()
                        .unwrap_or("")
                        .contains("pseudo filesystem"),
                    "{path}: {f:?} (openat2: {})",
                    root.uses_openat2()
                );
                assert!(f.evidence().is_err());
            }
            assert!(facts.dir_of("/proc/self").is_err());
            assert!(!facts.dirs.contains_key("/proc/self"));
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
