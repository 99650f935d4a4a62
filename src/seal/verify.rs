//! Offline verification of a sealed bundle.
//!
//! Needs only trusted public keys: the envelope must be signed by one of
//! them, every subject must exist with its digest, and nothing may be in the
//! bundle that the statement does not name. With an age identity it also
//! decrypts every result, checks the plaintext digests, parses the HDF and
//! recounts it. Subject names come from the (signed, but possibly forged
//! with a stolen key) statement and are treated as hostile: they must be
//! plain relative paths, and are opened inside the bundle directory only.

use std::collections::BTreeSet;
use std::fs;
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::path::Path;

use ed25519_dalek::VerifyingKey;
use rustix::fs::{AtFlags, FileType, OFlags, statat};
use sha2::{Digest, Sha256};

use super::dsse::{self, Envelope};
use super::layout::{AUDIT_CHECK_FILE, STATEMENT_FILE};
use super::statement::{PREDICATE_TYPE, STATEMENT_TYPE, Statement};
use crate::encoding::hex;
use crate::facts::resolve::Root;
use crate::report::run::StatusCounts;

pub use super::layout::MAX_STATEMENT_BYTES;
/// Largest decrypted result accepted.
pub const MAX_PLAINTEXT_BYTES: u64 = 1024 * 1024 * 1024;

/// One thing wrong, with the file it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// File (relative to the bundle), or `statement.dsse.json`.
    pub file: String,
    /// What is wrong.
    pub message: String,
}

/// The outcome of verifying a bundle.
#[derive(Debug, Default)]
pub struct Verification {
    /// Everything wrong; empty means verified.
    pub problems: Vec<Problem>,
    /// The statement, when its signature verified.
    pub statement: Option<Statement>,
    /// Key id of the trusted key that signed it.
    pub signed_by: Option<String>,
    /// Files whose plaintext was checked (with an identity, or unencrypted).
    pub plaintext_checked: usize,
    /// Audit trails (run id, JSON lines) whose digest and hash chain
    /// verified against the statement: what `vigil audit-check` reads.
    pub trails: Vec<(String, Vec<u8>)>,
    /// The predicate of a verified `audit-check.dsse.json`, when the bundle
    /// has one.
    pub audit_check: Option<serde_json::Value>,
}

impl Verification {
    /// Every problem as `file: message`, joined by `; `.
    pub fn problems_text(&self) -> String {
        self.problems
            .iter()
            .map(|p| format!("{}: {}", p.file, p.message))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Returns true if and only if nothing is wrong.
    pub fn ok(&self) -> bool {
        self.problems.is_empty() && self.statement.is_some()
    }

    fn problem(&mut self, file: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            file: file.to_string(),
            message: message.into(),
        });
    }
}

/// Identities to decrypt with.
pub type Identities = [Box<dyn age::Identity + Send + Sync>];

/// Verify the bundle at `dir`.
pub fn verify(dir: &Path, trusted: &[VerifyingKey], identities: &Identities) -> Verification {
    let mut v = Verification::default();
    let root = match Root::open(dir) {
        Ok(r) => r,
        Err(e) => {
            v.problem(
                ".",
                format!(
                    "cannot open bundle directory: {}",
                    crate::safeio::io_reason(&e)
                ),
            );
            return v;
        }
    };
    let Some(bytes) = read_regular(&root, STATEMENT_FILE, MAX_STATEMENT_BYTES, &mut v) else {
        return v;
    };
    let envelope: Envelope = match serde_json::from_slice(&bytes) {
        Ok(e) => e,
        Err(e) => {
            v.problem(STATEMENT_FILE, format!("not a DSSE envelope: {e}"));
            return v;
        }
    };
    let (payload, key) = match dsse::verify(&envelope, trusted) {
        Ok(x) => x,
        Err(e) => {
            v.problem(STATEMENT_FILE, e.to_string());
            return v;
        }
    };
    v.signed_by = Some(super::keys::keyid(key));
    let statement: Statement = match serde_json::from_slice(&payload) {
        Ok(s) => s,
        Err(e) => {
            v.problem(
                STATEMENT_FILE,
                format!("payload is not a vigil statement: {e}"),
            );
            return v;
        }
    };
    if statement.statement_type != STATEMENT_TYPE || statement.predicate_type != PREDICATE_TYPE {
        v.problem(
            STATEMENT_FILE,
            format!(
                "unexpected statement type {} / predicate type {}",
                statement.statement_type, statement.predicate_type
            ),
        );
        return v;
    }
    // Subjects: safe names, present, regular, with their digests.
    let mut named = BTreeSet::new();
    for s in &statement.subject {
        if !is_safe_name(&s.name) {
            v.problem(
                &s.name,
                "subject name is not a plain relative path inside the bundle; refusing to read it",
            );
            continue;
        }
        if !named.insert(s.name.clone()) {
            v.problem(&s.name, "subject listed twice");
            continue;
        }
        let Some(want) = s.digest.get("sha256") else {
            v.problem(&s.name, "subject has no sha256 digest");
            continue;
        };
        match hash_regular(&root, &s.name) {
            Ok(got) if &got == want => {}
            Ok(got) => v.problem(&s.name, format!("sha256 mismatch: statement says {want}, file has {got} (modified, truncated or swapped)")),
            Err(why) => v.problem(&s.name, why),
        }
    }
    // Nothing outside the statement.
    let mut found = Vec::new();
    match rustix::fs::openat(
        root.fd(),
        ".",
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    ) {
        Ok(fd) => list_files(&fd, "", 0, &mut found, &mut v),
        Err(e) => v.problem(
            ".",
            format!(
                "cannot list the bundle: {}",
                crate::safeio::io_reason(&e.into())
            ),
        ),
    }
    let statement_sha256 = crate::encoding::hex(&Sha256::digest(&bytes));
    for f in found {
        if f == AUDIT_CHECK_FILE {
            match read_regular(&root, &f, MAX_STATEMENT_BYTES, &mut v)
                .map(|b| super::attest::check(&b, &statement_sha256, trusted))
            {
                Some(Ok(predicate)) => v.audit_check = Some(predicate),
                Some(Err(why)) => v.problem(&f, why),
                None => {}
            }
            continue;
        }
        if f != STATEMENT_FILE && !named.contains(&f) {
            v.problem(
                &f,
                "file is not named in the statement (added after signing)",
            );
        }
    }
    // The predicate's own files must be subjects.
    let p = &statement.predicate;
    let audit_file = p.audit.as_ref().map(|a| &a.log.file);
    for f in std::iter::once(&p.summary.file)
        .chain(p.targets.iter().map(|t| &t.hdf.file))
        .chain(
            p.targets
                .iter()
                .filter_map(|t| t.inventory.as_ref().map(|i| &i.file)),
        )
        .chain(audit_file)
    {
        if !named.contains(f) {
            v.problem(f, "named in the predicate but not a subject");
        }
    }
    // Plaintext checks.
    if p.encrypted && identities.is_empty() {
        v.statement = Some(statement);
        return v;
    }
    // The run's audit trail, and in a merged run each shard's, each bound
    // to its own run id.
    let audits = p.audit.iter().map(|a| (a, p.run_id.as_str())).chain(
        p.shards
            .iter()
            .filter_map(|sh| sh.audit.as_ref().map(|a| (a, sh.run_id.as_str()))),
    );
    for (a, run_id) in audits {
        if let Some(bytes) = plaintext(&root, &a.log.file, p.encrypted, identities, &mut v)
            && check_digest(&a.log.file, &bytes, &a.log.plaintext_sha256, &mut v)
        {
            match crate::audit::verify_chain(&bytes, run_id) {
                Ok((head, n)) if head == a.final_hash && n == a.entries => {
                    v.trails.push((run_id.to_string(), bytes));
                }
                Ok((_, n)) => v.problem(&a.log.file, format!("audit chain ends elsewhere than the signed head ({n} entries, statement says {})", a.entries)),
                Err(e) => v.problem(&a.log.file, format!("audit chain: {e}")),
            }
        }
    }
    let summary = p.summary.clone();
    if let Some(bytes) = plaintext(&root, &summary.file, p.encrypted, identities, &mut v) {
        check_digest(&summary.file, &bytes, &summary.plaintext_sha256, &mut v);
    }
    for t in &p.targets {
        if let Some(inv) = &t.inventory
            && let Some(bytes) = plaintext(&root, &inv.file, p.encrypted, identities, &mut v)
        {
            check_digest(&inv.file, &bytes, &inv.plaintext_sha256, &mut v);
        }
        let Some(bytes) = plaintext(&root, &t.hdf.file, p.encrypted, identities, &mut v) else {
            continue;
        };
        if !check_digest(&t.hdf.file, &bytes, &t.hdf.plaintext_sha256, &mut v) {
            continue;
        }
        match crate::report::import::read(&bytes) {
            Ok(hdf) => {
                // vigil's own results name their run and target; imported
                // reports were produced elsewhere (the signed statement says
                // so) and carry their producer's identifiers.
                // (In a merged run, a target's run is one of its shards.)
                let run = hdf.run_id.as_deref();
                let run_ok = run == Some(p.run_id.as_str())
                    || p.shards.iter().any(|sh| run == Some(sh.run_id.as_str()));
                let bound = run_ok && hdf.target_id.as_deref() == Some(t.id.as_str());
                if !bound && t.approach != crate::policy::model::Approach::Imported {
                    v.problem(&t.hdf.file, "HDF belongs to another run or target");
                }
                let counts = recount(&hdf);
                if counts != t.counts {
                    v.problem(
                        &t.hdf.file,
                        format!(
                            "HDF counts {counts:?} differ from the statement's {:?}",
                            t.counts
                        ),
                    );
                }
            }
            Err(e) => v.problem(&t.hdf.file, format!("decrypted file is not HDF: {e}")),
        }
    }
    v.statement = Some(statement);
    v
}

fn check_digest(file: &str, bytes: &[u8], want: &str, v: &mut Verification) -> bool {
    let got = hex(&Sha256::digest(bytes));
    v.plaintext_checked += 1;
    if got != want {
        v.problem(
            file,
            format!("plaintext sha256 {got} differs from the statement's {want}"),
        );
        return false;
    }
    true
}

pub use super::layout::is_safe_name;

/// Open `name` inside the root; it must be a regular file, not a link.
fn open_regular(root: &Root, name: &str) -> Result<fs::File, String> {
    let (parent, last) = root
        .parent_of(name)
        .map_err(|e| format!("missing or unreadable: {}", crate::safeio::io_reason(&e)))?;
    let st = statat(&parent, last.as_str(), AtFlags::SYMLINK_NOFOLLOW)
        .map_err(|e| format!("missing: {}", crate::safeio::io_reason(&e.into())))?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Err("not a regular file (links and special files are refused)".into());
    }
    let fd = rustix::fs::openat(
        &parent,
        last.as_str(),
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(|e| format!("cannot open: {}", crate::safeio::io_reason(&e.into())))?;
    Ok(fs::File::from(fd))
}

fn hash_regular(root: &Root, name: &str) -> Result<String, String> {
    let mut f = open_regular(root, name)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf).map_err(|e| format!("read error: {e}"))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

fn read_regular(root: &Root, name: &str, cap: u64, v: &mut Verification) -> Option<Vec<u8>> {
    match open_regular(root, name) {
        Ok(f) => {
            let mut bytes = Vec::new();
            if let Err(e) = f.take(cap + 1).read_to_end(&mut bytes) {
                v.problem(name, format!("read error: {e}"));
                return None;
            }
            if bytes.len() as u64 > cap {
                v.problem(name, "file is larger than vigil accepts");
                return None;
            }
            Some(bytes)
        }
        Err(why) => {
            v.problem(name, why.to_string());
            None
        }
    }
}

/// The plaintext of `file` of the bundle at `dir` (decrypted when the
/// bundle is encrypted), checked against `file`'s digest in the
/// statement. For commands that read a verified bundle's results.
pub(crate) fn read_checked(
    dir: &Path,
    file: &super::statement::FileRef,
    encrypted: bool,
    identities: &Identities,
) -> Result<Vec<u8>, String> {
    let root = Root::open(dir)
        .map_err(|e| format!("{}: {}", dir.display(), crate::safeio::io_reason(&e)))?;
    let mut v = Verification::default();
    let bytes = plaintext(&root, &file.file, encrypted, identities, &mut v);
    match bytes {
        Some(b) if check_digest(&file.file, &b, &file.plaintext_sha256, &mut v) => Ok(b),
        _ => Err(v.problems_text()),
    }
}

fn plaintext(
    root: &Root,
    name: &str,
    encrypted: bool,
    identities: &Identities,
    v: &mut Verification,
) -> Option<Vec<u8>> {
    if !encrypted {
        return read_regular(root, name, MAX_PLAINTEXT_BYTES, v);
    }
    let f = match open_regular(root, name) {
        Ok(f) => f,
        Err(why) => {
            v.problem(name, why);
            return None;
        }
    };
    match decrypt(io::BufReader::new(f), identities) {
        Ok(bytes) => Some(bytes),
        Err(why) => {
            v.problem(name, why.to_string());
            None
        }
    }
}

/// Why a target's result could not be read from its bundle.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ResultError {
    /// The statement names a file outside the bundle (or no plain name).
    #[error("{0:?}: an unsafe file name in the statement")]
    UnsafeName(String),
    /// The file could not be read or decrypted.
    #[error("{file}: {cause}")]
    Read {
        /// The bundle file, printable.
        file: String,
        /// Why.
        cause: String,
    },
}

/// A target's result as its bundle holds it: the file its statement entry
/// names (a plain name inside `dir`, read capped), decrypted with
/// `identities` when the bundle is encrypted. The one reader of results
/// for `open` and the standard verdict.
pub(crate) fn target_result(
    dir: &Path,
    t: &super::statement::TargetResult,
    encrypted: bool,
    identities: &Identities,
) -> Result<Vec<u8>, ResultError> {
    if !is_safe_name(&t.hdf.file) {
        return Err(ResultError::UnsafeName(
            crate::safeio::printable(&t.hdf.file).into_owned(),
        ));
    }
    let err = |cause: String| ResultError::Read {
        file: crate::safeio::printable(&t.hdf.file).into_owned(),
        cause,
    };
    let bytes = crate::safeio::read(&dir.join(&t.hdf.file), MAX_PLAINTEXT_BYTES, "result")
        .map_err(|e| err(e.to_string()))?;
    if encrypted {
        decrypt(&bytes[..], identities).map_err(|e| err(e.to_string()))
    } else {
        Ok(bytes)
    }
}

/// Returns `Some(false)` when none of `identities` is a recipient of the age
/// file at `path` (age's own `NoMatchingKeys`), `Some(true)` when one is,
/// and `None` when that cannot be told (not an age file, unreadable).
pub fn is_recipient(path: &Path, identities: &Identities) -> Option<bool> {
    let bytes = crate::safeio::read(path, MAX_PLAINTEXT_BYTES, "bundle file").ok()?;
    let decryptor =
        age::Decryptor::new_buffered(age::armor::ArmoredReader::new(&bytes[..])).ok()?;
    match decryptor.decrypt(identities.iter().map(|i| i.as_ref() as &dyn age::Identity)) {
        Ok(_) => Some(true),
        Err(age::DecryptError::NoMatchingKeys) => Some(false),
        Err(_) => None,
    }
}

/// Why an age file did not open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecryptError {
    /// No age header.
    #[error("not an age file: {0}")]
    NotAge(String),
    /// None of the identities is a recipient.
    #[error("none of the identities can decrypt it")]
    NoMatchingKeys,
    /// The payload fails authentication.
    #[error("decryption failed (corrupted or tampered)")]
    Corrupted,
    /// More plaintext than [`MAX_PLAINTEXT_BYTES`].
    #[error("plaintext larger than vigil accepts")]
    TooLarge,
}

/// Decrypt an age file (binary or armored) with any of the identities.
pub fn decrypt(input: impl io::BufRead, identities: &Identities) -> Result<Vec<u8>, DecryptError> {
    let armored = age::armor::ArmoredReader::new(input);
    let decryptor =
        age::Decryptor::new_buffered(armored).map_err(|e| DecryptError::NotAge(e.to_string()))?;
    let mut reader = decryptor
        .decrypt(identities.iter().map(|i| i.as_ref() as &dyn age::Identity))
        .map_err(|e| match e {
            age::DecryptError::NoMatchingKeys => DecryptError::NoMatchingKeys,
            _ => DecryptError::Corrupted,
        })?;
    let mut out = Vec::new();
    (&mut reader)
        .take(MAX_PLAINTEXT_BYTES + 1)
        .read_to_end(&mut out)
        .map_err(|_| DecryptError::Corrupted)?;
    if out.len() as u64 > MAX_PLAINTEXT_BYTES {
        return Err(DecryptError::TooLarge);
    }
    Ok(out)
}

/// Count controls of an HDF document with Heimdall's status rules (the same
/// code that counts imported results).
pub fn recount(hdf: &crate::report::import::Hdf) -> StatusCounts {
    StatusCounts::from(&hdf.counts())
}

/// Deepest directory nesting a bundle may have: `shards/<i>/targets/<file>`
/// is three levels; anything deeper is not vigil's and is a problem, so a
/// file cannot hide below a chain of directories longer than `PATH_MAX`.
const MAX_BUNDLE_DEPTH: usize = 8;

/// Every entry under the directory `dfd` (not following links), as relative
/// names, walked by descriptor (`openat`), so no path length limits it.
/// Anything that cannot be listed is a problem: a file the verifier cannot
/// see is a file it cannot vouch for.
fn list_files(dfd: &OwnedFd, rel: &str, depth: usize, out: &mut Vec<String>, v: &mut Verification) {
    use rustix::fs::{Dir, Mode, openat};
    let shown = if rel.is_empty() { "." } else { rel };
    if depth > MAX_BUNDLE_DEPTH {
        v.problem(
            shown,
            format!("directories nested deeper than {MAX_BUNDLE_DEPTH} levels; no bundle has them"),
        );
        return;
    }
    let reason = |e: rustix::io::Errno| crate::safeio::io_reason(&e.into());
    let mut entries = match Dir::read_from(dfd) {
        Ok(d) => d,
        Err(e) => {
            v.problem(shown, format!("cannot list directory: {}", reason(e)));
            return;
        }
    };
    let mut names = Vec::new();
    while let Some(entry) = entries.read() {
        match entry {
            Ok(e) if matches!(e.file_name().to_bytes(), b"." | b"..") => {}
            Ok(e) => names.push(e.file_name().to_owned()),
            Err(e) => {
                v.problem(shown, format!("cannot list directory: {}", reason(e)));
                return;
            }
        }
    }
    names.sort();
    for name in names {
        let text = name.to_string_lossy();
        let child = if rel.is_empty() {
            text.into_owned()
        } else {
            format!("{rel}/{text}")
        };
        let kind = match statat(dfd, name.as_c_str(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => FileType::from_raw_mode(st.st_mode),
            Err(e) => {
                v.problem(&child, format!("cannot inspect: {}", reason(e)));
                continue;
            }
        };
        if kind != FileType::Directory {
            out.push(child);
            continue;
        }
        match openat(
            dfd,
            name.as_c_str(),
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => list_files(&fd, &child, depth + 1, out, v),
            Err(e) => v.problem(&child, format!("cannot open directory: {}", reason(e))),
        }
    }
}

/// A statement that cannot be read even without verifying it.
#[derive(Debug, thiserror::Error)]
#[error("cannot read the statement: {0}")]
pub struct UnreadableStatement(String);

/// The bundle's statement, read without checking its signature (for
/// `vigil open --no-verify`, forensics only).
pub fn read_statement_unverified(
    bundle: &Path,
) -> Result<super::statement::Statement, UnreadableStatement> {
    let bytes = crate::safeio::read(
        &bundle.join(STATEMENT_FILE),
        MAX_STATEMENT_BYTES,
        "statement",
    )
    .map_err(|e| UnreadableStatement(e.to_string()))?;
    let env: super::dsse::Envelope =
        serde_json::from_slice(&bytes).map_err(|e| UnreadableStatement(e.to_string()))?;
    let payload = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, &env.payload)
        .map_err(|e| UnreadableStatement(e.to_string()))?;
    serde_json::from_slice(&payload).map_err(|e| UnreadableStatement(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_names() {
        for ok in ["summary.json.age", "targets/a.hdf.json.age"] {
            assert!(is_safe_name(ok), "{ok}");
        }
        for bad in [
            "../x",
            "/etc/passwd",
            "targets/../../x",
            "",
            "./a",
            "a/",
            "a\\b",
            "a\0b",
        ] {
            assert!(!is_safe_name(bad), "{bad:?}");
        }
    }
}
