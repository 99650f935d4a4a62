//! Facts: what a collector gathers from one target in one pass, and the
//! request that says what to gather.
//!
//! "Gather once, evaluate locally": a profile's controls are compiled into a
//! [`FactRequest`]; a collector (the rootfs collector here, the probe inside
//! a pod later) visits the target once and returns [`Facts`]; controls are
//! then evaluated in-process on those facts. Facts cross process and network
//! boundaries as framed JSON ([`frame`]), so every type here is plain data.

pub mod compile;
pub mod frame;
pub(crate) mod parse;
pub(crate) mod probe;
pub(crate) mod procfs;
pub mod resolve;
pub mod rootfs;
pub mod shell;
pub(crate) mod workload;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// Default cap on bytes read from one file.
pub const DEFAULT_MAX_FILE_BYTES: u64 = 1024 * 1024;
/// Cap for package databases, which are legitimately larger than config files.
pub const MAX_PACKAGE_DB_BYTES: u64 = 32 * 1024 * 1024;
/// Bytes of file content one target's facts may carry in all. A collector
/// reads no more (what is left is an error on the facts that wanted it, so
/// no control passes on it), which keeps a frame below
/// [`frame::MAX_FRAME_BYTES`] and the probe's memory bounded whatever the
/// per-file caps and the number of files.
pub const MAX_CONTENT_BYTES: u64 = 40 * 1024 * 1024;
/// Largest ratio of encoded content to bytes read ([`Content::from_bytes`]).
pub const ENCODED_RATIO: f64 = 1.34;
/// Default depth of a directory walk.
pub const DEFAULT_WALK_DEPTH: u32 = 16;
/// Default cap on entries visited by one walk.
pub const DEFAULT_WALK_LIMIT: u32 = 100_000;

impl FactRequest {
    /// Asks for nothing from a filesystem, processes or commands (its
    /// controls are all workload controls).
    pub fn needs_nothing(&self) -> bool {
        self.stat.is_empty()
            && self.read.is_empty()
            && self.read_dirs.is_empty()
            && self.walks.is_empty()
            && !self.processes
            && self.commands.is_empty()
    }
}

/// What to gather from a target. Paths are absolute inside the target's root.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FactRequest {
    /// Per-run nonce that frames the answer (see [`frame`]).
    #[serde(default)]
    pub nonce: String,
    /// Cap on bytes read from one file (package databases get
    /// [`MAX_PACKAGE_DB_BYTES`]).
    pub max_file_bytes: u64,
    /// Paths to `lstat` and `stat` (following links inside the root).
    pub stat: BTreeSet<String>,
    /// Paths whose content is read (implies `stat`).
    pub read: BTreeSet<String>,
    /// Directories whose regular files are all read (e.g. dpkg `status.d`).
    pub read_dirs: BTreeSet<String>,
    /// Bounded walks.
    pub walks: BTreeSet<WalkRequest>,
    /// Whether to list processes (only where the collector can see them).
    pub processes: bool,
    /// Commands to run (only where the approach can run commands).
    pub commands: BTreeSet<String>,
}

impl FactRequest {
    /// The cap on bytes read from `path`: package databases are
    /// legitimately larger than configuration files.
    pub fn read_cap(&self, path: &str) -> u64 {
        if [compile::DPKG_STATUS, compile::APK_DB].contains(&path) {
            MAX_PACKAGE_DB_BYTES.max(self.max_file_bytes)
        } else {
            self.max_file_bytes
        }
    }
}

/// A bounded directory walk.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WalkRequest {
    /// Directory to walk.
    pub path: String,
    /// Maximum depth below it.
    pub depth: u32,
    /// Maximum entries visited.
    pub limit: u32,
    /// Record every entry (for owner/mode checks), not only entries with
    /// setuid, setgid or world-writable bits.
    pub all: bool,
}

/// File types as `lstat` reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[allow(missing_docs)]
pub enum Kind {
    File,
    Directory,
    Symlink,
    Fifo,
    Socket,
    Char,
    Block,
    Unknown,
}

impl Kind {
    /// Lower-case name, as in policies.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::File => "file",
            Kind::Directory => "directory",
            Kind::Symlink => "symlink",
            Kind::Fifo => "fifo",
            Kind::Socket => "socket",
            Kind::Char => "char",
            Kind::Block => "block",
            Kind::Unknown => "unknown",
        }
    }
}

/// Metadata of one inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatFact {
    /// Type.
    pub kind: Kind,
    /// Permission bits including setuid/setgid/sticky (`mode & 0o7777`).
    pub mode: u32,
    /// Owner uid.
    pub uid: u32,
    /// Owner gid.
    pub gid: u32,
    /// Size in bytes.
    pub size: u64,
}

/// File content: UTF-8 text as is, anything else base64-encoded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Content {
    /// Valid UTF-8.
    Text(String),
    /// Base64 of the raw bytes.
    Base64(String),
}

impl Content {
    /// Wrap raw bytes: as text when it is UTF-8 that JSON carries at most a
    /// third larger, otherwise as base64 (4/3 of the bytes). A file of NULs
    /// or quotes therefore never travels as `\u0000` escapes six times its
    /// size: an encoded fact is at most [`ENCODED_RATIO`] of what was read.
    pub fn from_bytes(bytes: Vec<u8>) -> Content {
        use base64::Engine as _;
        let text_is_compact = |s: &str| {
            let extra: usize = s
                .bytes()
                .map(|b| match b {
                    b'"' | b'\\' | b'\n' | b'\t' | b'\r' | 0x08 | 0x0c => 1,
                    0..0x20 => 5,
                    _ => 0,
                })
                .sum();
            extra * 3 <= s.len()
        };
        match String::from_utf8(bytes) {
            Ok(s) if text_is_compact(&s) => Content::Text(s),
            Ok(s) => Content::Base64(base64::engine::general_purpose::STANDARD.encode(s)),
            Err(e) => {
                Content::Base64(base64::engine::general_purpose::STANDARD.encode(e.as_bytes()))
            }
        }
    }

    /// The raw bytes.
    pub fn bytes(&self) -> Vec<u8> {
        match self {
            Content::Text(s) => s.clone().into_bytes(),
            Content::Base64(b) => {
                use base64::Engine as _;
                base64::engine::general_purpose::STANDARD
                    .decode(b)
                    .unwrap_or_default()
            }
        }
    }

    /// The content as text (invalid UTF-8 replaced).
    pub fn text(&self) -> std::borrow::Cow<'_, str> {
        match self {
            Content::Text(s) => std::borrow::Cow::Borrowed(s),
            Content::Base64(_) => {
                std::borrow::Cow::Owned(String::from_utf8_lossy(&self.bytes()).into_owned())
            }
        }
    }
}

/// What is known about one path.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileFact {
    /// `lstat` of the path itself (a symlink is reported as a symlink).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lstat: Option<StatFact>,
    /// `stat` after following links inside the root; `None` when the path
    /// (or the link's target) does not exist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stat: Option<StatFact>,
    /// The link text, for symlinks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_target: Option<String>,
    /// Content, when requested and the path is a regular file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Content>,
    /// The content was cut at the read cap.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
    /// Why the path could not be inspected (permission denied, a symlink
    /// loop, …); absent when it simply does not exist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl FileFact {
    /// Returns true if and only if the path exists (following links).
    pub fn exists(&self) -> bool {
        self.stat.is_some()
    }

    /// The content as evidence: `Ok(None)` only when the path really does
    /// not exist; an error, a path that is not a regular file (a FIFO, a
    /// directory, a device where a database should be) or content that was
    /// requested but not collected is `Err(why)`, never "absent". This is
    /// the one rule by which checks read file content, whichever collector
    /// produced the fact.
    pub fn evidence(&self) -> Result<Option<&Content>, EvidenceError> {
        if let Some(why) = &self.error {
            return Err(EvidenceError::Unreadable(why.clone()));
        }
        match (&self.stat, &self.content) {
            (_, Some(c)) => Ok(Some(c)),
            (None, None) => Ok(None),
            (Some(st), None) if st.kind != Kind::File => Err(EvidenceError::NotRegular(st.kind)),
            (Some(_), None) => Err(EvidenceError::NotCollected),
        }
    }
}

/// Why a fact is not evidence. Checks turn it into an `error` result, never
/// "absent" (no false pass).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvidenceError {
    /// The collector could not read the path.
    #[error("it could not be read: {0}")]
    Unreadable(String),
    /// Content was requested from something that is not a regular file.
    #[error("it is a {}, not a regular file", .0.as_str())]
    NotRegular(Kind),
    /// The path exists but its content is not among the facts.
    #[error("its content was not collected")]
    NotCollected,
    /// The collector returned nothing for a requested path.
    #[error("the collector returned no fact for it")]
    NoFact,
    /// A `read_dirs` directory could not be listed completely.
    #[error("it could not be listed: {0}")]
    Unlisted(String),
}

/// An [`EvidenceError`] at a path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {why}")]
pub struct PathEvidenceError {
    /// The requested path.
    pub path: String,
    /// Why it is not evidence.
    pub why: EvidenceError,
}

impl EvidenceError {
    /// This error at `path`.
    pub fn at(self, path: impl Into<String>) -> PathEvidenceError {
        PathEvidenceError {
            path: path.into(),
            why: self,
        }
    }
}

/// Why content requested from a path of kind `kind` is not evidence; every
/// collector says it in these words, so their facts compare equal.
pub fn not_a_regular_file(kind: Kind) -> String {
    EvidenceError::NotRegular(kind).to_string()
}

/// One entry found by a walk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WalkEntry {
    /// Absolute path inside the root (non-UTF-8 bytes replaced).
    pub path: String,
    /// `lstat` of the entry.
    pub stat: StatFact,
}

/// What a walk found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WalkFact {
    /// Recorded entries (all, or only the special ones; see [`WalkRequest::all`]).
    pub entries: Vec<WalkEntry>,
    /// Entries visited.
    pub visited: u64,
    /// The walk hit its entry limit (entries past it were not visited).
    /// Reaching the depth bound is not truncation: depth is part of the check.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
    /// The walked path does not exist.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub missing: bool,
    /// Per-entry errors (path, reason).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<(String, String)>,
    /// Entries listed by the walk that were gone when they were inspected
    /// (a live root changes while it is walked): skipped, and named in the
    /// result's message.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vanished: Vec<String>,
    /// Mount points of pseudo filesystems (procfs, sysfs, …) met by the walk
    /// and not entered: their entries describe the kernel, not the image.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pseudo_skipped: Vec<String>,
}

/// A running process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessFact {
    /// Process id (in the target's pid namespace).
    pub pid: u32,
    /// Real uid.
    pub uid: u32,
    /// Command line, arguments joined by spaces.
    pub cmdline: String,
}

/// A command's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandFact {
    /// Exit status.
    pub exit_status: i32,
    /// Standard output (capped).
    pub stdout: String,
}

impl Facts {
    /// The content of a requested file as evidence ([`FileFact::evidence`]);
    /// a path the collector returned nothing for is an error too.
    pub fn content_of(&self, path: &str) -> Result<Option<&Content>, PathEvidenceError> {
        match self.files.get(path) {
            Some(f) => f.evidence().map_err(|why| why.at(path)),
            None => Err(EvidenceError::NoFact.at(path)),
        }
    }

    /// The files of a `read_dirs` directory as evidence: `Err` when the
    /// directory could not be listed completely.
    pub fn dir_of(
        &self,
        dir: &str,
    ) -> Result<Option<&BTreeMap<String, FileFact>>, PathEvidenceError> {
        if let Some(why) = self.dir_errors.get(dir) {
            return Err(EvidenceError::Unlisted(why.clone()).at(dir));
        }
        Ok(self.dirs.get(dir))
    }
}

/// Everything gathered from one target.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Facts {
    /// Facts per requested path (`stat` and `read`).
    pub files: BTreeMap<String, FileFact>,
    /// Per `read_dirs` entry: file name → fact.
    pub dirs: BTreeMap<String, BTreeMap<String, FileFact>>,
    /// Per `read_dirs` entry that exists but could not be listed completely
    /// (permission denied, not a directory, too many entries): why. Its
    /// files are then not evidence of anything.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub dir_errors: BTreeMap<String, String>,
    /// Per walked path.
    pub walks: BTreeMap<String, WalkFact>,
    /// Processes, when the collector can see them (`None`: it cannot).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processes: Option<Vec<ProcessFact>>,
    /// Command results, when the approach can run commands (`None`: it cannot).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commands: Option<BTreeMap<String, CommandFact>>,
    /// The image's configuration, for image targets (`None`: not an image).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageFacts>,
}

/// An image's configuration (`vigil run --image`, `image:` targets).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageFacts {
    /// The source scanned, as written (`oci-dir:…`, `registry:…`).
    pub reference: String,
    /// The manifest digest scanned (for a legacy `docker save` archive,
    /// the config digest: Docker's image ID).
    pub digest: String,
    /// The config's digest.
    pub config_digest: String,
    /// The digests of the indexes that lead to it (a multi-platform
    /// image's), outermost first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub index_digests: Vec<String>,
    /// `config.User` (empty: root).
    pub user: String,
    /// `config.ExposedPorts` (`80/tcp`).
    pub exposed_ports: Vec<String>,
    /// Names of every `config.Env` variable (values are never kept).
    pub env_names: Vec<String>,
    /// Names of the variables whose name or value looks like a secret.
    pub secret_env: Vec<String>,
    /// A `HEALTHCHECK` other than `NONE`.
    pub healthcheck: bool,
    /// `config.Labels`.
    pub labels: BTreeMap<String, String>,
    /// `created` (RFC 3339), when the config says.
    pub created: Option<String>,
    /// Layers.
    pub layers: usize,
}

/// An environment variable that looks like it carries a secret: by its
/// name (`*_PASSWORD`, `*TOKEN*`, `*SECRET*`, `*_KEY`, …) with a value, or
/// by a value that is a known credential shape (the redactor's patterns).
pub fn looks_secret(name: &str, value: &str) -> bool {
    let n = name.to_ascii_uppercase();
    let by_name = [
        "PASSWORD",
        "PASSWD",
        "SECRET",
        "TOKEN",
        "API_KEY",
        "APIKEY",
        "PRIVATE_KEY",
        "ACCESS_KEY",
        "CREDENTIAL",
    ]
    .iter()
    .any(|w| n.contains(w))
        || n.ends_with("_KEY");
    // A name that says secret with no value, or a file path, holds none.
    let holds_value = !value.is_empty() && !value.starts_with('/');
    (by_name && holds_value) || crate::redact::redact(value) != value
}
