//! Reading files that vigil does not control, and printing text that it did
//! not write.
//!
//! Every file a user or a container hands to vigil (policies, keys,
//! thresholds, inventories, requests, reports, evidence) is hostile until
//! read. This leaf module holds the rules all of them share, so that no
//! reader can forget one:
//!
//! - **Bounded while reading.** At most `cap + 1` bytes are ever read; more
//!   is an error, not a truncation. `/dev/zero` cannot grow memory.
//! - **Never hangs.** Files are opened `O_NONBLOCK`. A FIFO or pipe (process
//!   substitution, `<(…)`, keeps working) is read with `poll` and a deadline
//!   that restarts whenever bytes arrive: a FIFO nobody writes to is refused
//!   after [`PIPE_IDLE`], never waited on forever.
//! - **No devices, sockets or directories.** Only regular files and pipes.
//! - **No pseudo filesystems.** A regular file on procfs, sysfs, cgroupfs,
//!   debugfs, … is not data: `/proc/self/environ` would hand vigil its own
//!   environment (signing keys included). The check is `fstatfs` on the
//!   opened descriptor, so no symlink trick or path spelling avoids it.
//! - **Errors name the file** and what to do, never its content.

use std::borrow::Cow;
use std::fmt;
use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::fs::{FileType, Mode, OFlags};

/// How long a pipe may stay silent before vigil gives up on it.
pub(crate) const PIPE_IDLE: Duration = Duration::from_secs(5);

/// Filesystems whose files describe the kernel or a process rather than
/// hold data (`f_type` values from Linux's `include/uapi/linux/magic.h`).
/// devtmpfs reports tmpfs's magic; its entries are devices, which are never
/// read anyway.
const PSEUDO_FILESYSTEMS: &[(i64, &str)] = &[
    (0x9fa0, "procfs"),
    (0x6265_6572, "sysfs"),
    (0x6462_6720, "debugfs"),
    (0x7472_6163, "tracefs"),
    (0x0027_e0eb, "cgroupfs"),
    (0x6367_7270, "cgroup2"),
    (0x7363_6673, "securityfs"),
    (0xf97c_ff8c, "selinuxfs"),
    (0x4341_5d53, "smackfs"),
    (0xcafe_4a11, "bpffs"),
    (0x6165_676c, "pstorefs"),
    (0x6265_6570, "configfs"),
    (0xde5e_81e4, "efivarfs"),
    (0x6573_5543, "fusectl"),
    (0x4249_4e4d, "binfmt_misc"),
    (0x1cd1, "devpts"),
    (0x1980_0202, "mqueue"),
    (0x6e73_6673, "nsfs"),
];

/// Returns the name of the pseudo filesystem `fd` lives on, if it does.
/// An `fstatfs` that fails counts as a pseudo filesystem ("unknown"): what
/// cannot be identified is not read.
pub(crate) fn pseudo_filesystem(fd: impl AsFd) -> Option<&'static str> {
    match rustix::fs::fstatfs(fd) {
        #[allow(clippy::unnecessary_cast)]
        Ok(st) => {
            let magic = st.f_type as i64;
            PSEUDO_FILESYSTEMS
                .iter()
                .find(|(m, _)| *m == magic)
                .map(|(_, name)| *name)
        }
        Err(_) => Some("unknown filesystem"),
    }
}

/// Why an input could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// `open` or `read` failed (the reason, without the path).
    Io(String),
    /// A directory, device or socket.
    NotRegular(&'static str),
    /// Not a regular file, where only one can be streamed (a pipe would
    /// make a reader wait on its writer).
    NotStreamable(&'static str),
    /// A file on a pseudo filesystem.
    Pseudo(&'static str),
    /// Larger than the cap.
    TooLarge(u64),
    /// A pipe that stayed silent.
    Silent,
}

/// An input that was refused: which kind of input, which file, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct InputError {
    /// What the file was meant to be ("signing key", "threshold file", …).
    pub what: &'static str,
    /// The file, as given.
    pub path: PathBuf,
    /// Why it was refused.
    pub problem: Problem,
}

impl fmt::Display for Problem {
    /// The reason alone, for callers that name the file themselves.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Io(reason) => f.write_str(reason),
            Problem::NotRegular(kind) => {
                write!(f, "a {kind}, not a file; pass a regular file (or a pipe)")
            }
            Problem::NotStreamable(kind) => {
                write!(f, "a {kind}, not a regular file; pass the file itself")
            }
            Problem::Pseudo(fs) => write!(
                f,
                "on a pseudo filesystem ({fs}); vigil reads no input from kernel or process files"
            ),
            Problem::TooLarge(cap) => write!(
                f,
                "larger than the {} limit; check that this is the file you meant",
                human_bytes(*cap)
            ),
            Problem::Silent => write!(
                f,
                "a pipe that sent nothing for {} s; nothing is writing to it",
                PIPE_IDLE.as_secs()
            ),
        }
    }
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = printable(&self.path.to_string_lossy()).into_owned();
        write!(f, "cannot read {} {path}: {}", self.what, self.problem)
    }
}

/// `1048576` → `"1 MiB"`.
pub(crate) fn human_bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 && n % (1 << 30) == 0 => format!("{} GiB", n >> 30),
        n if n >= 1 << 20 && n % (1 << 20) == 0 => format!("{} MiB", n >> 20),
        n if n >= 1 << 10 && n % (1 << 10) == 0 => format!("{} KiB", n >> 10),
        n => format!("{n} bytes"),
    }
}

/// An I/O error's reason without the path (the caller names the path).
pub(crate) fn io_reason(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::NotFound => "no such file or directory".to_string(),
        io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        _ => match e.raw_os_error() {
            // "File exists (os error 17)" → "file exists".
            Some(_) => {
                let s = e.to_string();
                let s = s.split(" (os error").next().unwrap_or(&s);
                s.to_lowercase()
            }
            None => e.to_string(),
        },
    }
}

/// Read the whole of `path`, at most `cap` bytes, under the rules above.
pub(crate) fn read(path: &Path, cap: u64, what: &'static str) -> Result<Vec<u8>, InputError> {
    let fail = |problem| InputError {
        what,
        path: path.to_path_buf(),
        problem,
    };
    let fd = open_nonblocking(path).map_err(fail)?;
    read_fd(fd, cap).map_err(fail)
}

/// Open without blocking on a FIFO with no writer, and without taking a
/// terminal: what is behind the path is checked after it is open.
fn open_nonblocking(path: &Path) -> Result<OwnedFd, Problem> {
    rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY,
        Mode::empty(),
    )
    .map_err(|e| Problem::Io(io_reason(&e.into())))
}

/// Open `path` for streaming: only a regular file on a real filesystem (a
/// FIFO, a device or a /proc file is refused before anything is read).
/// For inputs too large to read whole, such as audit logs.
pub(crate) fn open_regular(path: &Path, what: &'static str) -> Result<std::fs::File, InputError> {
    let fail = |problem| InputError {
        what,
        path: path.to_path_buf(),
        problem,
    };
    let fd = open_nonblocking(path).map_err(fail)?;
    let st = rustix::fs::fstat(&fd).map_err(|e| fail(Problem::Io(io_reason(&e.into()))))?;
    match FileType::from_raw_mode(st.st_mode) {
        FileType::RegularFile => match pseudo_filesystem(&fd) {
            Some(fs) => Err(fail(Problem::Pseudo(fs))),
            None => Ok(std::fs::File::from(fd)),
        },
        FileType::Fifo => Err(fail(Problem::NotStreamable("pipe"))),
        other => Err(fail(Problem::NotStreamable(kind_name(other)))),
    }
}

/// Like [`read`], for text that must be UTF-8.
pub(crate) fn read_to_string(
    path: &Path,
    cap: u64,
    what: &'static str,
) -> Result<String, InputError> {
    let bytes = read(path, cap, what)?;
    String::from_utf8(bytes).map_err(|_| InputError {
        what,
        path: path.to_path_buf(),
        problem: Problem::Io("not UTF-8 text".into()),
    })
}

/// Read an opened descriptor under the rules above.
pub(crate) fn read_fd(fd: OwnedFd, cap: u64) -> Result<Vec<u8>, Problem> {
    let st = rustix::fs::fstat(&fd).map_err(|e| Problem::Io(io_reason(&e.into())))?;
    match FileType::from_raw_mode(st.st_mode) {
        FileType::RegularFile => {
            if let Some(fs) = pseudo_filesystem(&fd) {
                return Err(Problem::Pseudo(fs));
            }
            let mut bytes = Vec::new();
            std::fs::File::from(fd)
                .take(cap.saturating_add(1))
                .read_to_end(&mut bytes)
                .map_err(|e| Problem::Io(io_reason(&e)))?;
            if bytes.len() as u64 > cap {
                return Err(Problem::TooLarge(cap));
            }
            Ok(bytes)
        }
        FileType::Fifo => read_pipe(fd, cap),
        other => Err(Problem::NotRegular(kind_name(other))),
    }
}

fn kind_name(t: FileType) -> &'static str {
    match t {
        FileType::Directory => "directory",
        FileType::CharacterDevice => "character device",
        FileType::BlockDevice => "block device",
        FileType::Socket => "socket",
        FileType::Symlink => "symbolic link",
        _ => "special file",
    }
}

/// Read a non-blocking pipe until end of file, waiting at most
/// [`PIPE_IDLE`] for each chunk.
///
/// `poll` comes before every read: a FIFO opened before any writer reads
/// as end-of-file at once, while `poll` reports it readable (or hung up)
/// only once a writer has come (Linux `fs/pipe.c`, `pipe_poll`).
fn read_pipe(fd: OwnedFd, cap: u64) -> Result<Vec<u8>, Problem> {
    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut deadline = Instant::now() + PIPE_IDLE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Problem::Silent);
        }
        let timeout = Timespec {
            tv_sec: left.as_secs() as _,
            tv_nsec: left.subsec_nanos() as _,
        };
        let mut fds = [PollFd::new(&fd, PollFlags::IN)];
        match poll(&mut fds, Some(&timeout)) {
            Ok(0) | Err(rustix::io::Errno::INTR) => continue,
            Ok(_) => {}
            Err(e) => return Err(Problem::Io(io_reason(&e.into()))),
        }
        loop {
            match rustix::io::read(&fd, &mut buf) {
                Ok(0) => return Ok(out),
                Ok(n) => {
                    out.extend_from_slice(&buf[..n]);
                    if out.len() as u64 > cap {
                        return Err(Problem::TooLarge(cap));
                    }
                    deadline = Instant::now() + PIPE_IDLE;
                }
                Err(rustix::io::Errno::AGAIN) | Err(rustix::io::Errno::INTR) => break,
                Err(e) => return Err(Problem::Io(io_reason(&e.into()))),
            }
        }
    }
}

/// Text safe to print on a terminal: control characters (ESC, CR, LF, NUL,
/// DEL, C1 controls, bidi overrides) are shown escaped (`\u{1b}`), so that
/// names from directories, containers or imported reports cannot move the
/// cursor, rewrite earlier lines or hide text.
pub(crate) fn printable(s: &str) -> Cow<'_, str> {
    fn bad(c: char) -> bool {
        c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    }
    if !s.chars().any(bad) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if bad(c) {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Like [`printable`], but keeps line breaks and tabs: for whole blocks of
/// output (a log line, a rendered diagnostic) whose layout vigil made,
/// with untrusted text inside.
pub(crate) fn printable_block(s: &str) -> Cow<'_, str> {
    if !s.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c.is_control() && c != '\n' && c != '\t' {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// At most `max` characters of `s`, cut on a character boundary with `…`,
/// and printable: the form in which file content may appear in a result
/// message or a diagnostic.
pub(crate) fn excerpt(s: &str, max: usize) -> String {
    let shown = printable(s);
    let mut chars = shown.chars();
    let head: String = chars.by_ref().take(max).collect();
    if chars.next().is_some() {
        format!("{head}…")
    } else {
        head
    }
}

/// Write `bytes` to `path` for this user only (mode 0600). Without
/// `replace`, a file that exists is never touched (`AlreadyExists`). With
/// it, an existing regular file is replaced whole (a new file renamed over
/// it, so a reader never sees half of either); a symlink, directory or
/// other special file at `path` is still refused, never followed.
pub(crate) fn write_private(path: &Path, bytes: &[u8], replace: bool) -> io::Result<()> {
    if !replace {
        return write_private_new(path, bytes);
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) if !m.file_type().is_file() => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "exists and is not a regular file; not replaced",
            ));
        }
        _ => {}
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(
        ".{name}.vigil-{}-{}",
        std::process::id(),
        crate::encoding::hex(&rand_bytes())
    ));
    write_private_new(&tmp, bytes)
        .and_then(|()| std::fs::rename(&tmp, path))
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
}

/// Eight random bytes (names of temporary files).
fn rand_bytes() -> [u8; 8] {
    let mut b = [0u8; 8];
    let _ = getrandom::getrandom(&mut b);
    b
}

/// Create `path` for this user only (mode 0600), never replacing a file
/// that exists, and write `bytes` to it.
pub(crate) fn write_private_new(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("vigil-safeio-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn caps_while_reading_and_refuses_devices_and_pseudo_files() {
        let d = dir("caps");
        let f = d.join("f");
        std::fs::write(&f, vec![b'a'; 100]).unwrap();
        assert_eq!(read(&f, 100, "test file").unwrap().len(), 100);
        let e = read(&f, 99, "test file").unwrap_err();
        assert_eq!(e.problem, Problem::TooLarge(99));
        // Endless devices: refused before a byte is read.
        for dev in ["/dev/zero", "/dev/urandom", "/dev/null"] {
            let e = read(Path::new(dev), 10, "key").unwrap_err();
            assert_eq!(e.problem, Problem::NotRegular("character device"), "{dev}");
        }
        assert_eq!(
            read(&d, 10, "key").unwrap_err().problem,
            Problem::NotRegular("directory")
        );
        // Pseudo filesystems, directly and through a symlink.
        symlink("/proc/self/environ", d.join("env")).unwrap();
        for p in [
            PathBuf::from("/proc/self/environ"),
            d.join("env"),
            PathBuf::from("/proc/self/status"),
            PathBuf::from("/sys/kernel/mm/transparent_hugepage/enabled"),
        ] {
            if !p.exists() {
                continue;
            }
            let e = read(&p, 1 << 20, "policy file").unwrap_err();
            assert!(matches!(e.problem, Problem::Pseudo(_)), "{p:?}: {e}");
            assert!(!e.to_string().contains("PATH="), "{e}");
        }
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn pipes_are_read_and_silent_fifos_refused() {
        let d = dir("fifo");
        let fifo = d.join("fifo");
        rustix::fs::mkfifoat(rustix::fs::CWD, &fifo, Mode::from_raw_mode(0o600)).unwrap();
        // No writer at all: refused after PIPE_IDLE, never a hang.
        let started = Instant::now();
        let e = read(&fifo, 10, "threshold file").unwrap_err();
        assert_eq!(e.problem, Problem::Silent);
        assert!(started.elapsed() < PIPE_IDLE * 3);
        // A writer that sends its bytes (as `<(cat file)` does) works, and a
        // writer that never stops is cut at the cap.
        let writer = std::thread::spawn({
            let fifo = fifo.clone();
            move || std::fs::write(&fifo, b"min: 90\n").unwrap()
        });
        assert_eq!(read(&fifo, 100, "threshold file").unwrap(), b"min: 90\n");
        writer.join().unwrap();
        let writer = std::thread::spawn({
            let fifo = fifo.clone();
            move || {
                let mut f = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
                let chunk = vec![0u8; 1 << 16];
                while io::Write::write_all(&mut f, &chunk).is_ok() {}
            }
        });
        let e = read(&fifo, 1 << 20, "threshold file").unwrap_err();
        assert_eq!(e.problem, Problem::TooLarge(1 << 20));
        drop(e);
        writer.join().unwrap();
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn printable_escapes_every_control_character() {
        assert_eq!(printable("plain/name-1"), "plain/name-1");
        assert_eq!(printable("a\x1b[2Jb"), "a\\u{1b}[2Jb");
        assert_eq!(
            printable("a\nb\rc\0d\u{7f}"),
            "a\\u{a}b\\u{d}c\\u{0}d\\u{7f}"
        );
        assert_eq!(printable("x\u{202e}y\u{9b}"), "x\\u{202e}y\\u{9b}");
        assert_eq!(excerpt("abcdef", 3), "abc…");
        assert_eq!(printable_block("a\tb\n\x1b[1mc\n"), "a\tb\n\\u{1b}[1mc\n");
        assert_eq!(excerpt("ab\x07", 10), "ab\\u{7}");
    }

    #[test]
    fn io_reasons_are_short() {
        let e = io::Error::from_raw_os_error(17);
        assert_eq!(io_reason(&e), "file exists");
    }
}
