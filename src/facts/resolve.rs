//! Resolving paths *inside* a container root, so that nothing a container
//! controls (absolute symlinks, `..`, symlink loops) can make vigil read a
//! file outside it.
//!
//! On Linux ≥ 5.6 this is `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`:
//! the kernel treats the root as `/` for every component and symlink. Where
//! `openat2` is missing (older kernels, seccomp profiles that block it), the
//! same semantics are implemented in user space: one component at a time,
//! each opened with `O_NOFOLLOW` relative to its parent's descriptor, symlinks
//! read and re-resolved against the root, `..` never climbing above it, and
//! at most [`MAX_SYMLINKS`] links followed (Linux's own limit).

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use rustix::fs::{AtFlags, Mode, OFlags, ResolveFlags, openat, openat2, readlinkat, statat};

/// Links followed before giving up with `ELOOP`.
pub const MAX_SYMLINKS: usize = 40;

/// A container root directory, held open.
#[derive(Debug)]
pub struct Root {
    fd: OwnedFd,
    use_openat2: bool,
}

impl Root {
    /// Open `dir` as a root. Probes once whether `openat2` works here.
    pub fn open(dir: &Path) -> io::Result<Root> {
        let fd = rustix::fs::open(
            dir,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let use_openat2 = openat2(
            &fd,
            ".",
            OFlags::PATH | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::IN_ROOT,
        )
        .is_ok();
        Ok(Root { fd, use_openat2 })
    }

    /// Open `dir` as a root and always use the user-space resolver (tests
    /// exercise both paths on kernels that have `openat2`).
    pub fn open_without_openat2(dir: &Path) -> io::Result<Root> {
        let mut r = Root::open(dir)?;
        r.use_openat2 = false;
        Ok(r)
    }

    /// Returns true if and only if the kernel resolver (`openat2`) is used.
    pub fn uses_openat2(&self) -> bool {
        self.use_openat2
    }

    /// The root's own descriptor.
    pub fn fd(&self) -> &OwnedFd {
        &self.fd
    }

    /// Open `path` (absolute or relative, always taken inside the root),
    /// following symlinks inside the root. `flags` must not ask to create.
    pub fn open_in(&self, path: &str, flags: OFlags) -> io::Result<OwnedFd> {
        // openat2 refuses flags O_PATH does not take (EINVAL), so NOCTTY
        // is added only for real opens.
        let flags = if flags.contains(OFlags::PATH) {
            flags | OFlags::CLOEXEC
        } else {
            flags | OFlags::CLOEXEC | OFlags::NOCTTY
        };
        if self.use_openat2 {
            // EAGAIN: the kernel asks to retry when a rename raced the lookup.
            for _ in 0..8 {
                match openat2(
                    &self.fd,
                    path,
                    flags,
                    Mode::empty(),
                    ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
                ) {
                    Err(e) if e == rustix::io::Errno::AGAIN => continue,
                    r => return r.map_err(io::Error::from),
                }
            }
            return Err(io::Error::from(rustix::io::Errno::AGAIN));
        }
        self.resolve_in_user_space(path, flags, true)
    }

    /// Open the parent directory of `path` inside the root and return it
    /// with the final component, for `lstat`-like operations. The root
    /// itself (`/`) has no parent: it is returned as `(root, ".")`.
    pub fn parent_of(&self, path: &str) -> io::Result<(OwnedFd, String)> {
        let trimmed = path.trim_end_matches('/');
        let (parent, name) = match trimmed.rsplit_once('/') {
            Some((p, n)) => (if p.is_empty() { "/" } else { p }, n),
            None => ("/", trimmed),
        };
        if name.is_empty() || name == "." {
            return Ok((
                self.open_in("/", OFlags::PATH | OFlags::DIRECTORY)?,
                ".".into(),
            ));
        }
        if name == ".." {
            // `a/..` names a directory; resolve it fully and stat it as such.
            return Ok((
                self.open_in(trimmed, OFlags::PATH | OFlags::DIRECTORY)?,
                ".".into(),
            ));
        }
        Ok((
            self.open_in(parent, OFlags::PATH | OFlags::DIRECTORY)?,
            name.to_string(),
        ))
    }

    fn resolve_in_user_space(
        &self,
        path: &str,
        flags: OFlags,
        follow_last: bool,
    ) -> io::Result<OwnedFd> {
        let dir_flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        // Descriptors from the root down to the current directory.
        let mut stack: Vec<OwnedFd> = vec![openat(&self.fd, ".", dir_flags, Mode::empty())?];
        let mut queue: VecDeque<String> = components(path).collect();
        let mut links = 0;
        while let Some(name) = queue.pop_front() {
            let cur = stack.last().expect("stack holds at least the root");
            match name.as_str() {
                "." => continue,
                ".." => {
                    if stack.len() > 1 {
                        stack.pop();
                    }
                    continue;
                }
                _ => {}
            }
            let last = queue.is_empty();
            let st = statat(cur, name.as_str(), AtFlags::SYMLINK_NOFOLLOW)?;
            let kind = rustix::fs::FileType::from_raw_mode(st.st_mode);
            if kind == rustix::fs::FileType::Symlink && (!last || follow_last) {
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(io::Error::from(rustix::io::Errno::LOOP));
                }
                let target = readlinkat(cur, name.as_str(), Vec::new())?;
                let target = target.to_string_lossy().into_owned();
                let mut rest: VecDeque<String> = components(&target).collect();
                rest.extend(queue.drain(..));
                queue = rest;
                if target.starts_with('/') {
                    stack.truncate(1);
                }
                continue;
            }
            if last {
                // O_NOFOLLOW: if the entry was swapped for a symlink since
                // the statat above, this fails instead of following it.
                return openat(cur, name.as_str(), flags | OFlags::NOFOLLOW, Mode::empty())
                    .map_err(io::Error::from);
            }
            if kind != rustix::fs::FileType::Directory {
                return Err(io::Error::from(rustix::io::Errno::NOTDIR));
            }
            let next = openat(cur, name.as_str(), dir_flags, Mode::empty())?;
            stack.push(next);
        }
        // The path named the root itself (or climbed back to it).
        let cur = stack.last().expect("stack holds at least the root");
        openat(cur, ".", flags, Mode::empty()).map_err(io::Error::from)
    }
}

fn components(path: &str) -> impl Iterator<Item = String> + '_ {
    path.split('/')
        .filter(|c| !c.is_empty())
        .map(str::to_string)
}

/// `fstat` a descriptor and describe it.
pub fn fstat(fd: impl AsFd) -> io::Result<rustix::fs::Stat> {
    rustix::fs::fstat(fd).map_err(io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn tree() -> std::path::PathBuf {
        let base = std::env::temp_dir().join(format!(
            "vigil-resolve-{}-{}",
            std::process::id(),
            rand_suffix()
        ));
        let root = base.join("root");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::create_dir_all(root.join("usr/lib")).unwrap();
        std::fs::write(base.join("canary"), "OUTSIDE").unwrap();
        std::fs::write(root.join("etc/passwd"), "root:x:0:0::/root:/bin/sh\n").unwrap();
        std::fs::write(root.join("canary"), "inside").unwrap();
        symlink("/etc/passwd", root.join("abs")).unwrap();
        symlink("../../../../canary", root.join("usr/lib/up")).unwrap();
        symlink("/../canary", root.join("absup")).unwrap();
        symlink("loop2", root.join("loop1")).unwrap();
        symlink("loop1", root.join("loop2")).unwrap();
        symlink("../usr", root.join("etc/usrlink")).unwrap();
        root
    }

    fn rand_suffix() -> u128 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    }

    fn read(root: &Root, path: &str) -> io::Result<String> {
        let fd = root.open_in(path, OFlags::RDONLY)?;
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::fs::File::from(fd), &mut s)?;
        Ok(s)
    }

    #[test]
    fn path_handles_and_parents() {
        let dir = tree();
        for root in [
            Root::open(&dir).unwrap(),
            Root::open_without_openat2(&dir).unwrap(),
        ] {
            let fd = root
                .open_in("/etc", OFlags::PATH | OFlags::DIRECTORY)
                .unwrap();
            assert!(fstat(&fd).is_ok());
            let (parent, name) = root.parent_of("/abs").unwrap();
            assert_eq!(name, "abs");
            let st = statat(&parent, "abs", AtFlags::SYMLINK_NOFOLLOW).unwrap();
            assert_eq!(
                rustix::fs::FileType::from_raw_mode(st.st_mode),
                rustix::fs::FileType::Symlink
            );
            assert_eq!(root.parent_of("/").unwrap().1, ".");
        }
        std::fs::remove_dir_all(dir.parent().unwrap()).unwrap();
    }

    #[test]
    fn never_escapes_with_either_resolver() {
        let dir = tree();
        for root in [
            Root::open(&dir).unwrap(),
            Root::open_without_openat2(&dir).unwrap(),
        ] {
            assert!(
                read(&root, "/abs").unwrap().starts_with("root:"),
                "absolute link stays inside"
            );
            assert_eq!(
                read(&root, "/usr/lib/up").unwrap(),
                "inside",
                "relative .. link clamps at the root"
            );
            assert_eq!(read(&root, "/absup").unwrap(), "inside");
            assert_eq!(read(&root, "/../../canary").unwrap(), "inside");
            assert_eq!(read(&root, "/etc/usrlink/lib/up").unwrap(), "inside");
            let e = read(&root, "/loop1").unwrap_err();
            assert_eq!(
                e.raw_os_error(),
                Some(rustix::io::Errno::LOOP.raw_os_error()),
                "{e}"
            );
            assert_eq!(
                read(&root, "/nope").unwrap_err().kind(),
                io::ErrorKind::NotFound
            );
        }
        std::fs::remove_dir_all(dir.parent().unwrap()).unwrap();
    }
}
