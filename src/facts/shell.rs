//! The shell gatherer: a POSIX `sh` script generated from a [`FactRequest`]
//! that gathers every fact in ONE process inside the target container (one
//! `pods/exec` for the api approach), and the strict parser of its output.
//!
//! The script needs only tools that both busybox and GNU coreutils provide:
//! `stat -c`, `stat -L -c`, `readlink`, `head -c`, `base64 -w 0`, `find
//! -xdev -maxdepth -perm -print0 -exec … +`, `tr`, `wc -c`. Everything that comes from the
//! container (file contents, names, link targets) is base64-encoded on one
//! line, so nothing a file contains can look like a record or a frame
//! marker. The script writes nothing to files and does not rely on
//! `/dev/null` (minimal images may lack it): diagnostics go to stderr,
//! which the parser never reads. The output is wrapped in begin/end lines carrying a per-run
//! nonce and the record count; the parser accepts exactly that shape and
//! nothing else.
//!
//! Output records (one per line, fields separated by one space; `B()` is
//! base64, `ST` is `<raw mode hex>:<uid>:<gid>:<size>` or `-`):
//!
//! ```text
//! VIGIL-GATHER v1 <nonce>
//! SB 0|1                                        begin of a stat block (0: lstat, 1: stat -L)
//! ST <path>                                     in a block: one line per requested path that exists
//! SE 0|1                                        end of the block
//! K B(path) B(link)                             a requested path that is a symbolic link
//! F B(path) ST(lstat) ST(stat) B(link)|-        a path stat'ed on its own (names with CR/LF)
//! C B(path) B(content)                          content: up to cap + 1 bytes (more than cap: cut)
//! X <tool>                                      a tool the script needs is missing
//! P B(path)                                     the shell's own test says the path exists
//! E B(path) <reason>                            a per-fact error
//! D B(dir) B(name) ST                           an entry of a read_dirs directory
//! DC B(dir) B(name) B(content)                  its content (up to cap + 1 bytes)
//! WV B(walk) <visited> 0|1                      a walk: entries seen, missing
//! W B(walk) ST|-|! B(entry path)               a recorded walk entry (`-`: gone when stat'ed;
//!                                               `!`: still there, but `stat` failed)
//! WE B(walk) <reason>                           the walk's `find` failed
//! VIGIL-GATHER-END <nonce> <records>
//! ```
//!
//! Stat blocks are how the script stays cheap: two `stat` processes cover
//! every requested path, where one per path would cost a fork and an exec
//! each. Their lines carry the path raw, but those paths come from the
//! policy, not the container: the parser accepts a block line only when it
//! names a requested path (once per block), and paths that could break the
//! line format (CR or LF) are stat'ed on their own into `F` records. Block
//! lines are not counted in the end line's record count; a block that is
//! not closed leaves the output without its end line, which is refused.
//! Contents are read one byte past the cap so the parser can tell a cut
//! file without another `stat` per file.
//!
//! # No false pass
//!
//! A tool that is missing or a command that fails must never read as
//! "absent" or "empty". The script checks every tool it needs with
//! `command -v` (an `X` record each missing one), captures the exit status
//! of `head`, `base64` and `find` (the POSIX pipe-status idiom: the status
//! travels on fd 5 while the data goes to fd 4, the script's stdout), and
//! reports, for every requested path, whether the shell's builtin `test`
//! sees it (`P`): a path the shell sees but `stat` reported nothing about
//! is an error. The parser then marks exactly the facts that depended on a
//! missing tool as errors ([`finish`]).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use base64::Engine as _;

use super::{Content, FactRequest, Facts, Kind, StatFact, WalkEntry};

/// Why gatherer output was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutputError {
    /// No begin line with the expected nonce.
    #[error("no gatherer output with the expected nonce (is there a shell in the container?)")]
    NoOutput,
    /// The end line is missing (the stream was cut).
    #[error("gatherer output is truncated (no end line)")]
    Truncated,
    /// The record count in the end line does not match.
    #[error("gatherer output has {got} records, its end line says {want}")]
    Count {
        /// Records seen.
        got: usize,
        /// Records announced.
        want: usize,
    },
    /// A line is not a well-formed record.
    #[error("malformed gatherer record on line {0}")]
    Malformed(usize),
    /// A walk entry with no name: the container's `base64` printed nothing
    /// for it (a busybox `sh` without its applet links, say).
    #[error(
        "gatherer record on line {0} is a walk entry with no name: the container's base64 printed nothing (a busybox shell without its applet links? base64, stat and find must run as commands)"
    )]
    NamelessEntry(usize),
    /// A record names a path the request did not ask for.
    #[error("gatherer record on line {0} is about a path that was not requested")]
    Unrequested(usize),
    /// A line is longer than any answer to the request can have.
    #[error("gatherer output has a line longer than {0} bytes (no answer to this request has one)")]
    LineTooLong(usize),
    /// Too much output before the begin line for a banner.
    #[error("more than {0} bytes of output before the gatherer's begin line")]
    Preamble(usize),
    /// More output than vigil keeps from one container.
    #[error("gatherer output exceeds {0} bytes")]
    TooLarge(usize),
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s.as_bytes())
}

/// Single-quote a string for sh.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Whether a requested path can go in a stat block: block lines are split
/// on line ends, so a path holding CR or LF is stat'ed on its own.
fn batchable(path: &str) -> bool {
    !path.contains(['\n', '\r'])
}

/// The tools the script for `req` runs, beyond the shell's builtins.
fn tools(req: &FactRequest) -> Vec<&'static str> {
    let files = !req.stat.is_empty() || !req.read.is_empty();
    let mut t = Vec::new();
    if files || !req.read_dirs.is_empty() || !req.walks.is_empty() {
        t.extend(["stat", "base64"]);
    }
    if req.stat.union(&req.read).any(|p| batchable(p)) {
        t.push("readlink");
    }
    if !req.read.is_empty() || !req.read_dirs.is_empty() {
        t.push("head");
    }
    if !req.walks.is_empty() {
        t.extend(["find", "tr", "wc"]);
    }
    t
}

/// Every tool [`tools`] may name: the parser accepts `X` only for these.
const KNOWN_TOOLS: [&str; 7] = ["stat", "base64", "readlink", "head", "find", "tr", "wc"];

/// Generate the script for `req`. The nonce must be letters, digits and `-`.
pub fn script(req: &FactRequest) -> String {
    let mut s = String::new();
    let nonce = &req.nonce;
    s.push_str(
        "#!/bin/sh\n# vigil gatherer: one process, every fact.\nexport LC_ALL=C\n# Standard locations first: no failed exec lookups per command.\nPATH=/bin:/usr/bin:/sbin:/usr/sbin:$PATH\numask 077\nn=0\n# fd 4: the real stdout, for data piped past a status capture.\nexec 4>&1\n",
    );
    s.push_str("r() { n=$((n+1)); }\n");
    s.push_str("st() { stat -c '%f:%u:%g:%s' \"$1\" || echo -; }\n");
    s.push_str("stl() { stat -L -c '%f:%u:%g:%s' \"$1\" || echo -; }\n");
    s.push_str("enc() { printf '%s' \"$1\" | base64 -w 0; }\n");
    // content: $1 path, $2 record tag, $3 error record tag, $4 encoded
    // name(s), $5 bytes to read
    // head's status comes back on fd 5, base64's as the substitution's.
    s.push_str(
        "cnt() { if [ ! -r \"$1\" ]; then echo \"$3 $4 permission-denied\"; r; return; fi\n  printf '%s %s ' \"$2\" \"$4\"; hs=$( { { head -c \"$5\" \"$1\"; echo $? >&5; } | base64 -w 0 >&4; } 5>&1 ); bs=$?; echo; r\n  if [ \"$hs\" != 0 ] || [ \"$bs\" != 0 ]; then echo \"$3 $4 read-failed\"; r; fi; }\n",
    );
    let _ = writeln!(s, "echo 'VIGIL-GATHER v1 {nonce}'");
    let needed = tools(req);
    if !needed.is_empty() {
        let _ = writeln!(
            s,
            "for t in {}; do command -v \"$t\" >&2 || {{ echo \"X $t\"; r; eval \"no_$t=1\"; }}; done",
            needed.join(" ")
        );
    }
    let paths: Vec<&String> = req.stat.union(&req.read).collect();
    let batched: Vec<String> = paths
        .iter()
        .filter(|p| batchable(p))
        .map(|p| quote(p))
        .collect();
    if !batched.is_empty() {
        let list = batched.join(" ");
        for (flag, follow) in [("0", ""), ("1", "-L ")] {
            let _ = writeln!(
                s,
                "echo 'SB {flag}'; r; stat {follow}-c '%f:%u:%g:%s %n' -- {list}; echo 'SE {flag}'; r"
            );
        }
    }
    for path in paths {
        let (q, b) = (quote(path), b64(path));
        let _ = writeln!(s, "p={q}");
        if batchable(path) {
            let _ = writeln!(
                s,
                "if [ -L \"$p\" ]; then echo \"P {b}\"; r; if t=$(readlink \"$p\"); then echo \"K {b} $(enc \"$t\")\"; else echo \"E {b} readlink-failed\"; fi; r; elif [ -e \"$p\" ]; then echo \"P {b}\"; r; fi"
            );
        } else {
            let _ = writeln!(
                s,
                "if [ -e \"$p\" ] || [ -L \"$p\" ]; then echo \"P {b}\"; r"
            );
            let _ = writeln!(
                s,
                "  if [ -L \"$p\" ]; then t=$(enc \"$(readlink \"$p\")\"); else t=-; fi"
            );
            let _ = writeln!(s, "  echo \"F {b} $(st \"$p\") $(stl \"$p\") $t\"; r");
            let _ = writeln!(s, "else echo \"F {b} - - -\"; r; fi");
        }
        if req.read.contains(path) {
            let _ = writeln!(
                s,
                "if [ -f \"$p\" ]; then cnt \"$p\" C E {b} {}; fi",
                req.read_cap(path) + 1
            );
        }
    }
    for dir in &req.read_dirs {
        let (q, b) = (quote(dir), b64(dir));
        let cap = req.max_file_bytes + 1;
        // Without base64 no name can be sent (the `X` record marks the
        // directory an error); the listing is skipped, not sent empty.
        let _ = writeln!(
            s,
            "[ -n \"$no_base64\" ] || for f in {q}/* {q}/.[!.]*; do [ -e \"$f\" ] || [ -L \"$f\" ] || continue"
        );
        let _ = writeln!(
            s,
            "  nm=$(enc \"${{f##*/}}\"); echo \"D {b} $nm $(st \"$f\")\"; r"
        );
        let _ = writeln!(
            s,
            "  if [ -f \"$f\" ] && [ ! -L \"$f\" ]; then cnt \"$f\" DC DE \"{b} $nm\" {cap}; fi; done"
        );
    }
    // No globbing from here on: find's output is split into words below.
    s.push_str("set -f\n");
    for w in &req.walks {
        let (q, b) = (quote(&w.path), b64(&w.path));
        let filter = if w.all {
            String::new()
        } else {
            "! -type l \\( -perm -4000 -o -perm -2000 -o -perm -0002 \\) ".to_string()
        };
        let _ = writeln!(s, "if [ -d {q} ] && [ ! -L {q} ]; then");
        let _ = writeln!(
            s,
            "  fs=$( {{ {{ find {q} -xdev -mindepth 1 -maxdepth {} -print0; echo $? >&5; }} | tr -dc '\\000' | wc -c | {{ read v; echo \"WV {b} ${{v:-0}} 0\"; }} >&4; }} 5>&1 ); r",
            w.depth
        );
        let _ = writeln!(
            s,
            "  if [ \"$fs\" != 0 ]; then echo \"WE {b} find-failed\"; r; fi"
        );
        // Each recorded entry's name is encoded in a child shell: names are
        // container-controlled and may hold newlines.
        let _ = writeln!(
            s,
            "  [ -n \"$no_base64$no_find\" ] || for x in $(find {q} -xdev -mindepth 1 -maxdepth {} {filter}-exec sh -c 'for f; do s=$(stat -c %f:%u:%g:%s \"$f\") || {{ s=-; [ -e \"$f\" ] || [ -L \"$f\" ] && s=!; }}; printf \"%s:%s\\n\" \"$s\" \"$(printf %s \"$f\" | base64 -w 0)\"; done' vigil {{}} +); do",
            w.depth
        );
        let _ = writeln!(s, "    echo \"W {b} ${{x%:*}} ${{x##*:}}\"; r; done");
        let _ = writeln!(s, "else echo \"WV {b} 0 1\"; r; fi");
    }
    let _ = writeln!(s, "echo \"VIGIL-GATHER-END {nonce} $n\"");
    s
}

fn unb64(field: &str, line: usize) -> Result<Vec<u8>, OutputError> {
    base64::engine::general_purpose::STANDARD
        .decode(field)
        .map_err(|_| OutputError::Malformed(line))
}

/// A requested path, echoed back: the bytes of the request.
fn unb64_str(field: &str, line: usize) -> Result<String, OutputError> {
    String::from_utf8(unb64(field, line)?).map_err(|_| OutputError::Malformed(line))
}

/// A name found in the target (a listed entry, a link target), rendered as
/// every collector renders names ([`crate::encoding::name_text`]).
fn unb64_name(field: &str, line: usize) -> Result<String, OutputError> {
    Ok(crate::encoding::name_text(&unb64(field, line)?).into_owned())
}

fn parse_stat(field: &str, line: usize) -> Result<Option<StatFact>, OutputError> {
    if field == "-" {
        return Ok(None);
    }
    let parts: Vec<&str> = field.split(':').collect();
    let [mode, uid, gid, size] = parts.as_slice() else {
        return Err(OutputError::Malformed(line));
    };
    let raw = u32::from_str_radix(mode, 16).map_err(|_| OutputError::Malformed(line))?;
    let kind = match raw & 0o170000 {
        0o100000 => Kind::File,
        0o040000 => Kind::Directory,
        0o120000 => Kind::Symlink,
        0o010000 => Kind::Fifo,
        0o140000 => Kind::Socket,
        0o020000 => Kind::Char,
        0o060000 => Kind::Block,
        _ => Kind::Unknown,
    };
    let num = |s: &str| s.parse::<u64>().map_err(|_| OutputError::Malformed(line));
    Ok(Some(StatFact {
        kind,
        mode: raw & 0o7777,
        uid: u32::try_from(num(uid)?).map_err(|_| OutputError::Malformed(line))?,
        gid: u32::try_from(num(gid)?).map_err(|_| OutputError::Malformed(line))?,
        size: num(size)?,
    }))
}

/// Largest decoded output the parser accepts from one container (the same
/// bound as a probe's facts frame): a hostile shell cannot make vigil hold
/// more.
pub const MAX_GATHER_BYTES: usize = super::frame::MAX_FRAME_BYTES;

/// Output accepted before the begin line (a login banner, a profile
/// script's greeting); more is refused rather than read to the cap.
pub const MAX_PREAMBLE_BYTES: usize = 64 * 1024;

/// What a line did to the parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fed {
    /// More records are expected.
    More,
    /// The end line was accepted; the rest of the stream is not read.
    Done,
}

/// The gatherer output parser, fed one line at a time while the exec
/// streams (see [`Lines`]), so that memory stays bounded by the facts it
/// keeps and a refused line ends the exec at once.
pub struct Parser<'r> {
    req: &'r FactRequest,
    begin: String,
    end_prefix: String,
    started: bool,
    done: bool,
    line_no: usize,
    kept_bytes: usize,
    facts: Facts,
    records: usize,
    missing: BTreeSet<&'static str>,
    seen_by_shell: BTreeSet<String>,
    blocks_seen: [bool; 2],
    /// Inside a stat block: which one (0: lstat, 1: stat -L) and the paths
    /// it has named so far.
    block: Option<(bool, BTreeSet<&'r str>)>,
    /// The line being received (never more than its shape allows).
    partial: Vec<u8>,
    /// Before the begin line, a line already too long to be it is dropped
    /// as it arrives, up to its end of line.
    skipping: bool,
    /// Bytes seen before the begin line.
    preamble: usize,
    /// The longest a content record of this request can be.
    max_line: usize,
}

/// The longest a record other than a content record can be: three paths
/// of `PATH_MAX` bytes, base64-encoded, and the rest of the record.
const MAX_PLAIN_RECORD: usize = 3 * b64_len(4096) + 64;

impl<'r> Parser<'r> {
    /// A parser for the answer to `req` (its nonce included).
    pub fn new(req: &'r FactRequest) -> Parser<'r> {
        // A content record of the largest cap, base64-encoded, with its
        // paths.
        let content = req
            .read
            .iter()
            .map(|p| req.read_cap(p))
            .chain((!req.read_dirs.is_empty()).then_some(req.max_file_bytes))
            .max()
            .unwrap_or(0);
        let max_line = b64_len(usize::try_from(content.saturating_add(1)).unwrap_or(usize::MAX))
            .saturating_add(MAX_PLAIN_RECORD);
        let mut facts = Facts::default();
        for d in &req.read_dirs {
            facts.dirs.insert(d.clone(), BTreeMap::new());
        }
        Parser {
            req,
            begin: format!("VIGIL-GATHER v1 {}", req.nonce),
            end_prefix: format!("VIGIL-GATHER-END {} ", req.nonce),
            started: false,
            done: false,
            line_no: 0,
            kept_bytes: 0,
            facts,
            records: 0,
            missing: BTreeSet::new(),
            seen_by_shell: BTreeSet::new(),
            blocks_seen: [false; 2],
            block: None,
            partial: Vec::new(),
            skipping: false,
            preamble: 0,
            max_line,
        }
    }

    /// Feed a chunk of the stream as it arrives. Lines are checked against
    /// the longest their record can be while they grow: before the begin
    /// line nothing longer than it is kept, a content record (`C`, `DC`)
    /// may be [`Parser::max_line`] long, any other record only as long as
    /// three paths. So a flood without line ends is refused within a few
    /// KiB, and never buffered.
    pub fn push(&mut self, mut chunk: &[u8]) -> Result<Fed, OutputError> {
        while !chunk.is_empty() {
            if self.done {
                return Ok(Fed::Done);
            }
            let (part, ended) = match chunk.iter().position(|&b| b == b'\n') {
                Some(i) => (&chunk[..i], true),
                None => (chunk, false),
            };
            chunk = if ended { &chunk[part.len() + 1..] } else { &[] };
            if !self.started {
                self.preamble = self
                    .preamble
                    .saturating_add(part.len() + usize::from(ended));
                if self.preamble > MAX_PREAMBLE_BYTES {
                    return Err(OutputError::Preamble(MAX_PREAMBLE_BYTES));
                }
            }
            if !self.skipping {
                self.partial.extend_from_slice(part);
                let room = self.room();
                if self.partial.len() > room {
                    if self.started {
                        return Err(OutputError::LineTooLong(room));
                    }
                    self.partial.clear();
                    self.skipping = true;
                }
            }
            if ended {
                if self.skipping {
                    self.skipping = false;
                    self.line_no += 1;
                    continue;
                }
                let line = std::mem::take(&mut self.partial);
                if self.line(trim_cr(&String::from_utf8_lossy(&line)))? == Fed::Done {
                    return Ok(Fed::Done);
                }
            }
        }
        Ok(if self.done { Fed::Done } else { Fed::More })
    }

    /// The longest the line being received may grow, from what it starts
    /// with.
    fn room(&self) -> usize {
        if !self.started {
            // The begin line, and a `\r` a terminal may add.
            return self.begin.len() + 1;
        }
        let p = &self.partial;
        if p.starts_with(b"C ") || p.starts_with(b"DC ") || p.len() < 3 {
            self.max_line
        } else {
            MAX_PLAIN_RECORD
        }
    }

    /// The longest line a well-formed answer to this request can have: a
    /// content record of the largest cap, base64-encoded, with two paths of
    /// `PATH_MAX` bytes. A longer line is refused before it is buffered.
    pub fn max_line(&self) -> usize {
        self.max_line
    }

    /// Take one line (without its end of line).
    pub fn line(&mut self, line: &str) -> Result<Fed, OutputError> {
        self.line_no += 1;
        let n = self.line_no;
        if self.done {
            return Ok(Fed::Done);
        }
        if !self.started {
            // Anything before the begin line (a shell's banner) is ignored.
            self.started = line == self.begin;
            return Ok(Fed::More);
        }
        self.kept_bytes = self.kept_bytes.saturating_add(line.len() + 1);
        if self.kept_bytes > MAX_GATHER_BYTES * 4 / 3 + 4096 {
            return Err(OutputError::TooLarge(MAX_GATHER_BYTES));
        }
        let req = self.req;
        let end_prefix = self.end_prefix.as_str();
        let requested = |p: &str| req.stat.contains(p) || req.read.contains(p);
        if let Some((follow, seen)) = &mut self.block {
            let end = if *follow { "SE 1" } else { "SE 0" };
            if line == end {
                self.block = None;
                self.records += 1;
                return Ok(Fed::More);
            }
            let (st, p) = line.split_once(' ').ok_or(OutputError::Malformed(n))?;
            let (p, st) = (
                req.stat
                    .get(p)
                    .or_else(|| req.read.get(p))
                    .filter(|p| batchable(p))
                    .ok_or(OutputError::Unrequested(n))?,
                parse_stat(st, n)?.ok_or(OutputError::Malformed(n))?,
            );
            if !seen.insert(p) {
                return Err(OutputError::Malformed(n));
            }
            let e = self.facts.files.entry(p.clone()).or_default();
            if *follow {
                e.stat = Some(st);
            } else {
                e.lstat = Some(st);
            }
            return Ok(Fed::More);
        }
        if let Some(count) = line.strip_prefix(end_prefix) {
            let want: usize = count
                .trim()
                .parse()
                .map_err(|_| OutputError::Malformed(n))?;
            if want != self.records {
                return Err(OutputError::Count {
                    got: self.records,
                    want,
                });
            }
            self.done = true;
            return Ok(Fed::Done);
        }
        self.records += 1;
        let f: Vec<&str> = line.split(' ').collect();
        let path = |k: usize| -> Result<String, OutputError> {
            unb64_str(f.get(k).ok_or(OutputError::Malformed(n))?, n)
        };
        match (f.first().copied(), f.len()) {
            (Some("SB"), 2) => {
                let follow = match f[1] {
                    "0" => false,
                    "1" => true,
                    _ => return Err(OutputError::Malformed(n)),
                };
                if self.blocks_seen[usize::from(follow)] {
                    return Err(OutputError::Malformed(n));
                }
                self.blocks_seen[usize::from(follow)] = true;
                self.block = Some((follow, BTreeSet::new()));
            }
            (Some("X"), 2) => {
                let tool = KNOWN_TOOLS
                    .iter()
                    .find(|t| **t == f[1])
                    .ok_or(OutputError::Malformed(n))?;
                self.missing.insert(tool);
            }
            (Some("P"), 2) => {
                let p = path(1)?;
                if !requested(&p) {
                    return Err(OutputError::Unrequested(n));
                }
                self.seen_by_shell.insert(p);
            }
            (Some("WE"), 3) => {
                let w = path(1)?;
                if !req.walks.iter().any(|x| x.path == w) {
                    return Err(OutputError::Unrequested(n));
                }
                self.facts
                    .walks
                    .entry(w.clone())
                    .or_default()
                    .errors
                    .push((w, f[2].replace('-', " ")));
            }
            (Some("K"), 3) => {
                let p = path(1)?;
                if !requested(&p) {
                    return Err(OutputError::Unrequested(n));
                }
                self.facts.files.entry(p).or_default().link_target = Some(unb64_name(f[2], n)?);
            }
            (Some("F"), 5) => {
                let p = path(1)?;
                if !requested(&p) {
                    return Err(OutputError::Unrequested(n));
                }
                let e = self.facts.files.entry(p).or_default();
                e.lstat = parse_stat(f[2], n)?;
                e.stat = parse_stat(f[3], n)?;
                e.link_target = if f[4] == "-" {
                    None
                } else {
                    Some(unb64_name(f[4], n)?)
                };
            }
            (Some("C"), 3) => {
                let p = path(1)?;
                if !req.read.contains(&p) {
                    return Err(OutputError::Unrequested(n));
                }
                let (content, truncated) = capped(unb64(f[2], n)?, req.read_cap(&p));
                let e = self.facts.files.entry(p).or_default();
                e.truncated = truncated;
                e.content = Some(content);
            }
            (Some("E"), 3) => {
                let p = path(1)?;
                if !req.stat.contains(&p) && !req.read.contains(&p) {
                    return Err(OutputError::Unrequested(n));
                }
                self.facts.files.entry(p).or_default().error = Some(f[2].replace('-', " "));
            }
            (Some("D"), 4) => {
                let d = path(1)?;
                let name = unb64_name(f[2], n)?;
                let dir = self
                    .facts
                    .dirs
                    .get_mut(&d)
                    .ok_or(OutputError::Unrequested(n))?;
                let st = parse_stat(f[3], n)?;
                let e = dir.entry(name).or_default();
                e.lstat = st;
                e.stat = st;
                if st.is_none() {
                    // Listed by the shell, but `stat` said nothing.
                    e.error = Some("stat failed".into());
                }
            }
            (Some("DC"), 4) => {
                let e = self.listed_entry(&path(1)?, &unb64_name(f[2], n)?, n)?;
                let (content, truncated) = capped(unb64(f[3], n)?, req.max_file_bytes);
                e.truncated = truncated;
                e.content = Some(content);
            }
            (Some("DE"), 4) => {
                let e = self.listed_entry(&path(1)?, &unb64_name(f[2], n)?, n)?;
                e.error = Some(f[3].replace('-', " "));
            }
            (Some("WV"), 4) => {
                let w = path(1)?;
                let limit = req
                    .walks
                    .iter()
                    .find(|x| x.path == w)
                    .ok_or(OutputError::Unrequested(n))?
                    .limit;
                let visited: u64 = f[2].parse().map_err(|_| OutputError::Malformed(n))?;
                let missing_dir = match f[3] {
                    "0" => false,
                    "1" => true,
                    _ => return Err(OutputError::Malformed(n)),
                };
                let e = self.facts.walks.entry(w).or_default();
                e.visited = visited.min(u64::from(limit));
                e.truncated = visited > u64::from(limit);
                e.missing = missing_dir;
            }
            (Some("W"), 4) => {
                let w = path(1)?;
                if !req.walks.iter().any(|x| x.path == w) {
                    return Err(OutputError::Unrequested(n));
                }
                let failed = f[2] == "!";
                let stat = if failed { None } else { parse_stat(f[2], n)? };
                // The walk's own path as requested, then the names found
                // below it as every collector renders them.
                let prefix = format!("{}/", w.trim_end_matches('/'));
                if f[3].is_empty() {
                    return Err(OutputError::NamelessEntry(n));
                }
                let found = unb64(f[3], n)?;
                let Some(below) = found.strip_prefix(prefix.as_bytes()) else {
                    return Err(OutputError::Malformed(n));
                };
                let entry = format!("{prefix}{}", crate::encoding::name_text(below));
                let walk = self.facts.walks.entry(w).or_default();
                match stat {
                    Some(stat) => walk.entries.push(WalkEntry { path: entry, stat }),
                    None if failed => walk.errors.push((entry, "stat failed".into())),
                    // Found by `find`, gone when `stat` looked: skipped.
                    None => walk.vanished.push(entry),
                }
            }
            _ => return Err(OutputError::Malformed(n)),
        }
        Ok(Fed::More)
    }

    /// The entry `name` a `D` record already listed in requested directory
    /// `dir`, for the record on line `n` about it.
    fn listed_entry(
        &mut self,
        dir: &str,
        name: &str,
        n: usize,
    ) -> Result<&mut super::FileFact, OutputError> {
        self.facts
            .dirs
            .get_mut(dir)
            .ok_or(OutputError::Unrequested(n))?
            .get_mut(name)
            .ok_or(OutputError::Malformed(n))
    }

    /// The stream ended: a last line without an end of line still counts;
    /// then the facts, once the end line has been accepted.
    pub fn finish(mut self) -> Result<Facts, OutputError> {
        if !self.done && !self.skipping && !self.partial.is_empty() {
            let line = std::mem::take(&mut self.partial);
            self.line(trim_cr(&String::from_utf8_lossy(&line)))?;
        }
        if !self.started {
            return Err(OutputError::NoOutput);
        }
        if !self.done {
            return Err(OutputError::Truncated);
        }
        Ok(finish(
            self.req,
            self.facts,
            &self.missing,
            &self.seen_by_shell,
        ))
    }
}

/// Length of `n` bytes in base64 with padding.
const fn b64_len(n: usize) -> usize {
    n.saturating_add(2) / 3 * 4
}

fn trim_cr(line: &str) -> &str {
    line.strip_suffix('\r').unwrap_or(line)
}

/// Parse a whole gatherer output (see [`Parser::push`] for streaming).
pub fn parse(req: &FactRequest, output: &[u8]) -> Result<Facts, OutputError> {
    let mut parser = Parser::new(req);
    parser.push(output)?;
    parser.finish()
}

/// Content read up to one byte past `cap`: more than `cap` bytes means the
/// file was cut.
fn capped(mut bytes: Vec<u8>, cap: u64) -> (Content, bool) {
    let cap = usize::try_from(cap).unwrap_or(usize::MAX);
    let truncated = bytes.len() > cap;
    bytes.truncate(cap);
    (Content::from_bytes(bytes), truncated)
}

/// Sort walk entries, fill in facts for requested paths the output did not
/// mention, and turn every fact that depended on a missing tool or a failed
/// `stat` into an error.
fn finish(
    req: &FactRequest,
    mut facts: Facts,
    missing: &BTreeSet<&'static str>,
    seen_by_shell: &BTreeSet<String>,
) -> Facts {
    for w in facts.walks.values_mut() {
        w.entries.sort_by(|a, b| a.path.cmp(&b.path));
        w.vanished.sort();
    }
    for p in req.stat.iter().chain(req.read.iter()) {
        facts.files.entry(p.clone()).or_default();
    }
    let no = |tools: &[&str]| -> Option<String> {
        let gone: Vec<&str> = tools
            .iter()
            .copied()
            .filter(|t| missing.contains(t))
            .collect();
        (!gone.is_empty()).then(|| {
            format!(
                "the container has no `{}`, which gathering this needs",
                gone.join("`, `")
            )
        })
    };
    let set = |slot: &mut Option<String>, why: &Option<String>| {
        if slot.is_none() {
            slot.clone_from(why);
        }
    };
    // A path the shell's own `test` does not see is absent whatever tools
    // are missing; only facts about paths that exist needed them.
    for (p, f) in facts
        .files
        .iter_mut()
        .filter(|(p, _)| seen_by_shell.contains(*p))
    {
        let tools: &[&str] = if req.read.contains(p) {
            &["stat", "base64", "head"]
        } else {
            &["stat", "base64"]
        };
        set(&mut f.error, &no(tools));
        if f.lstat.is_some_and(|l| l.kind == Kind::Symlink) {
            set(&mut f.error, &no(&["readlink"]));
        }
        if f.lstat.is_none() {
            set(
                &mut f.error,
                &Some("the shell sees it, but `stat` reported nothing about it".into()),
            );
        }
    }
    // A directory the shell's glob found empty (or absent) needs no tool to
    // be known empty; one with entries does.
    for d in &req.read_dirs {
        if let Some(why) = no(&["stat", "base64", "head"])
            && facts.dirs.get(d).is_some_and(|entries| !entries.is_empty())
        {
            facts.dirs.remove(d);
            facts.dir_errors.insert(d.clone(), why);
        }
    }
    if let Some(why) = no(&["stat", "base64", "find", "tr", "wc"]) {
        for w in &req.walks {
            let walk = facts.walks.entry(w.path.clone()).or_default();
            if !walk.missing {
                walk.errors.push((w.path.clone(), why.clone()));
            }
        }
    }
    // Content asked for from a FIFO, a directory or a device: an error, as
    // the rootfs collector reports it, never an empty "absent" fact.
    for p in &req.read {
        let f = facts.files.get_mut(p).expect("inserted above");
        if let (Some(st), None, None) = (f.stat, &f.content, &f.error)
            && st.kind != super::Kind::File
        {
            f.error = Some(super::not_a_regular_file(st.kind));
        }
    }
    facts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req() -> FactRequest {
        serde_json::from_value(serde_json::json!({
            "nonce": "abc-123", "max_file_bytes": 100,
            "stat": ["/etc/passwd"], "read": ["/etc/passwd"], "read_dirs": [],
            "walks": [{"path": "/usr", "depth": 3, "limit": 10, "all": false}],
            "processes": false, "commands": []
        }))
        .unwrap()
    }

    /// A valid answer to [`req`] with a banner before it.
    fn good_output() -> String {
        let p = b64("/etc/passwd");
        let u = b64("/usr");
        format!(
            "banner\r\nVIGIL-GATHER v1 abc-123\nSB 0\n81a4:0:0:5 /etc/passwd\nSE 0\nSB 1\n81a4:0:0:5 /etc/passwd\nSE 1\nC {p} {}\nWV {u} 12 0\nW {u} 89ed:0:0:9 {}\nVIGIL-GATHER-END abc-123 7\n",
            b64("root\n"),
            b64("/usr/bin/su")
        )
    }

    #[test]
    fn streamed_in_any_chunks_it_parses_as_a_whole() {
        let r = req();
        let good = good_output();
        let whole = parse(&r, good.as_bytes()).unwrap();
        for size in [1, 2, 7, 64, 4096] {
            let mut p = Parser::new(&r);
            for chunk in good.as_bytes().chunks(size) {
                p.push(chunk).unwrap();
            }
            assert_eq!(p.finish().unwrap(), whole, "chunks of {size}");
        }
        // Without the last end of line, the end line still counts.
        assert_eq!(parse(&r, good.trim_end().as_bytes()).unwrap(), whole);
    }

    #[test]
    fn floods_without_line_ends_are_refused_early_and_never_buffered() {
        let r = req();
        let spaces = vec![b' '; 1 << 20];
        // After the begin line: refused within a few KiB.
        let mut p = Parser::new(&r);
        p.push(b"VIGIL-GATHER v1 abc-123\n").unwrap();
        let mut fed = 0;
        let err = loop {
            match p.push(&spaces[..4096]) {
                Ok(_) => fed += 4096,
                Err(e) => break e,
            }
            assert!(fed < 64 * 1024, "a line of spaces kept growing");
        };
        assert!(matches!(err, OutputError::LineTooLong(_)), "{err}");
        // A content record longer than any cap allows.
        let mut p = Parser::new(&r);
        p.push(b"VIGIL-GATHER v1 abc-123\nC ").unwrap();
        let long = vec![b'A'; p.max_line() + 1];
        assert!(matches!(p.push(&long), Err(OutputError::LineTooLong(_))));
        // Before it: dropped as it arrives, and the answer after it counts;
        // more than a banner's worth is refused.
        let mut p = Parser::new(&r);
        for _ in 0..15 {
            p.push(&spaces[..4096]).unwrap();
            assert!(p.partial.len() <= p.begin.len() + 1);
        }
        p.push(b"\n").unwrap();
        p.push(good_output().as_bytes()).unwrap();
        assert!(p.finish().is_ok());
        let mut p = Parser::new(&r);
        assert_eq!(
            p.push(&spaces),
            Err(OutputError::Preamble(MAX_PREAMBLE_BYTES))
        );
    }

    /// A walk entry whose name the container's base64 did not print (a
    /// busybox `sh` without its applet links) says so, instead of an
    /// anonymous "malformed record".
    #[test]
    fn a_nameless_walk_entry_names_the_likely_cause() {
        let good = good_output();
        let bad = good.replace(&format!(" {}\n", b64("/usr/bin/su")), " \n");
        assert_ne!(good, bad);
        let err = parse(&req(), bad.as_bytes()).unwrap_err();
        assert!(matches!(err, OutputError::NamelessEntry(_)), "{err}");
        assert!(err.to_string().contains("applet links"), "{err}");
    }

    #[test]
    fn parses_records_and_refuses_everything_else() {
        let r = req();
        let p = b64("/etc/passwd");
        let u = b64("/usr");
        let good = format!(
            "banner\nVIGIL-GATHER v1 abc-123\nSB 0\n81a4:0:0:5 /etc/passwd\nSE 0\nSB 1\n81a4:0:0:5 /etc/passwd\nSE 1\nC {p} {}\nWV {u} 12 0\nW {u} 89ed:0:0:9 {}\nVIGIL-GATHER-END abc-123 7\n",
            b64("root\n"),
            b64("/usr/bin/su")
        );
        let f = parse(&r, good.as_bytes()).unwrap();
        assert_eq!(
            f.files["/etc/passwd"].content.as_ref().unwrap().text(),
            "root\n"
        );
        assert_eq!(f.files["/etc/passwd"].stat.unwrap().mode, 0o644);
        let w = &f.walks["/usr"];
        assert_eq!((w.visited, w.truncated), (10, true), "12 > limit 10");
        assert_eq!(w.entries[0].stat.mode, 0o4755);
        // Variants that must be refused.
        assert_eq!(parse(&r, b"no frame"), Err(OutputError::NoOutput));
        assert_eq!(
            parse(
                &r,
                good.replace("VIGIL-GATHER-END abc-123 7\n", "").as_bytes()
            ),
            Err(OutputError::Truncated)
        );
        assert!(matches!(
            parse(
                &r,
                good.replace("END abc-123 7", "END abc-123 8").as_bytes()
            ),
            Err(OutputError::Count { .. })
        ));
        let other = good.replace(&p, &b64("/etc/shadow"));
        assert!(matches!(
            parse(&r, other.as_bytes()),
            Err(OutputError::Unrequested(_))
        ));
        // Stat blocks: only requested paths, each once, each block once,
        // and a block must be closed.
        for (from, to) in [
            ("0:5 /etc/passwd\nSE 0", "0:5 /etc/shadow\nSE 0"),
            ("0:5 /etc/passwd\nSE 0", "0:5 /etc/passwd \nSE 0"),
        ] {
            assert!(
                matches!(
                    parse(&r, good.replace(from, to).as_bytes()),
                    Err(OutputError::Unrequested(_))
                ),
                "{to:?}"
            );
        }
        for (from, to) in [
            ("SE 0\n", "81a4:0:0:5 /etc/passwd\nSE 0\n"),
            ("SB 1\n", "SB 0\n"),
            ("81a4:0:0:5 /etc/passwd\nSE 0", "81a4:0:0 /etc/passwd\nSE 0"),
            ("81a4:0:0:5 /etc/passwd\nSE 0", "- /etc/passwd\nSE 0"),
            ("SB 0", "SB 2"),
        ] {
            assert!(
                matches!(
                    parse(&r, good.replace(from, to).as_bytes()),
                    Err(OutputError::Malformed(_))
                ),
                "{to:?}"
            );
        }
        assert!(
            parse(&r, good.replace("SE 1\n", "").as_bytes()).is_err(),
            "an unclosed block refuses the records after it"
        );
        let cut = &good[..good.find("SE 1").unwrap()];
        assert_eq!(parse(&r, cut.as_bytes()), Err(OutputError::Truncated));
        // Content is read one byte past the cap: 101 bytes with a cap of 100 is cut.
        let long = good.replace(&b64("root\n"), &b64(&"x".repeat(101)));
        let f = parse(&r, long.as_bytes()).unwrap();
        let passwd = &f.files["/etc/passwd"];
        assert!(passwd.truncated);
        assert_eq!(passwd.content.as_ref().unwrap().text().len(), 100);
        assert!(
            !parse(
                &r,
                good.replace(&b64("root\n"), &b64(&"x".repeat(100)))
                    .as_bytes()
            )
            .unwrap()
            .files["/etc/passwd"]
                .truncated
        );
        let forged_entry = good.replace(&b64("/usr/bin/su"), &b64("/etc/x"));
        assert!(
            matches!(
                parse(&r, forged_entry.as_bytes()),
                Err(OutputError::Malformed(_))
            ),
            "walk entries stay under the walk"
        );
        assert!(matches!(
            parse(&r, good.replace("WV", "XX").as_bytes()),
            Err(OutputError::Malformed(_))
        ));
    }

    /// Property: whatever bytes a container returns, parsing never panics,
    /// and anything it accepts only describes requested paths.
    #[test]
    fn mutated_output_never_panics_or_leaks_unrequested_paths() {
        let r = req();
        let p = b64("/etc/passwd");
        let u = b64("/usr");
        let good = format!(
            "VIGIL-GATHER v1 abc-123\nSB 0\n81a4:0:0:5 /etc/passwd\nSE 0\nF {p} 81a4:0:0:5 81a4:0:0:5 -\nC {p} {}\nWV {u} 3 0\nW {u} 89ed:0:0:9 {}\nVIGIL-GATHER-END abc-123 6\n",
            b64("root\n"),
            b64("/usr/bin/su")
        )
        .into_bytes();
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let alphabet = b" :-=/+\nFCEDWVSBKabc0123456789VIGIL-GATHER";
        for _ in 0..20_000 {
            let mut m = good.clone();
            for _ in 0..(next() % 4 + 1) {
                let i = (next() as usize) % m.len();
                match next() % 3 {
                    0 => m[i] = alphabet[(next() as usize) % alphabet.len()],
                    1 => {
                        m.remove(i);
                    }
                    _ => m.insert(i, alphabet[(next() as usize) % alphabet.len()]),
                }
            }
            if let Ok(f) = parse(&r, &m) {
                assert!(f.files.keys().all(|k| k == "/etc/passwd"));
                assert!(f.walks.keys().all(|k| k == "/usr"));
                assert!(
                    f.walks
                        .values()
                        .flat_map(|w| &w.entries)
                        .all(|e| e.path.starts_with("/usr/"))
                );
            }
        }
    }

    #[test]
    fn quoting_survives_hostile_paths() {
        assert_eq!(quote("/a'b"), "'/a'\\''b'");
        let mut r = req();
        r.stat.insert("/tmp/x'; rm -rf /; echo '".into());
        assert!(script(&r).contains("p='/tmp/x'\\''; rm -rf /; echo '\\'''"));
    }
}
