//! A sealed bundle: `OUT/<policy>/<run-id>/` holding age-encrypted result
//! files and, written last, `statement.dsse.json`.
//!
//! [`SealedDir`] is a [`RunOutput`]: the runner writes plaintext through it
//! unchanged; each file is encrypted while it streams to its place in the
//! hidden run directory (hashing the ciphertext on the way).
//! [`SealedDir::seal`] then syncs the directory, writes the signed
//! statement and renames the directory into place, so a run that dies
//! before the end leaves no statement, and nothing that verifies.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use sha2::{Digest, Sha256};

use super::dsse;
use super::keys::Signer;
use super::statement::{
    AuditRef, FileRef, PREDICATE_TYPE, STATEMENT_TYPE, Statement, Subject, predicate,
};
use crate::encoding::hex;
use crate::report::output::{RunOutput, Written, check_name};
use crate::report::run::RunSummary;

pub use super::layout::{STATEMENT_FILE, SUMMARY_FILE};

/// Where a sealed run writes.
///
/// # Guarantees
///
/// A bundle appears whole or not at all: files are written into a hidden
/// staging directory beside the destination (`.<run-id>.partial`), which
/// is renamed into place (`RENAME_NOREPLACE`) only once the statement is
/// written. A `SealedDir` dropped before that (a failed import or merge)
/// removes its staging directory; one killed by SIGKILL leaves only the
/// hidden `.partial` directory, never a bundle that looks finished.
pub struct SealedDir {
    /// The staging directory every file is written into.
    root: PathBuf,
    /// Where the bundle appears when sealed.
    dest: PathBuf,
    sealed: std::sync::atomic::AtomicBool,
    recipients: Vec<Box<dyn age::Recipient + Send + Sync>>,
    armor: bool,
    /// Every file written or adopted: its stored name and the sha256 of
    /// its bytes on disk (hex). Kept as pairs, not as [`Subject`]s, whose
    /// digest map costs a B-tree node (about 0.5 KB) per file of a run.
    subjects: Mutex<Vec<(String, String)>>,
}

impl std::fmt::Debug for SealedDir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SealedDir({}, {} recipient(s))",
            self.root.display(),
            self.recipients.len()
        )
    }
}

/// Hash (and count) what passes through to a file.
struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    size: u64,
}

impl<W> HashingWriter<W> {
    fn new(inner: W) -> HashingWriter<W> {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            size: 0,
        }
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl SealedDir {
    /// Create the run directory. With no recipients, files are written in
    /// plaintext (the statement says so).
    pub fn create(
        out: &Path,
        policy: &str,
        run_id: &str,
        recipients: Vec<Box<dyn age::Recipient + Send + Sync>>,
        armor: bool,
    ) -> io::Result<SealedDir> {
        let dest = out.join(policy).join(run_id);
        let root = out.join(policy).join(format!(".{run_id}.partial"));
        fs::create_dir_all(out.join(policy))?;
        if fs::symlink_metadata(&dest).is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} already exists; runs never overwrite", dest.display()),
            ));
        }
        fs::create_dir(&root)?;
        Ok(SealedDir {
            root,
            dest,
            sealed: std::sync::atomic::AtomicBool::new(false),
            recipients,
            armor,
            subjects: Mutex::new(Vec::new()),
        })
    }

    /// Returns true if and only if files are encrypted.
    pub fn encrypted(&self) -> bool {
        !self.recipients.is_empty()
    }

    /// The name a plaintext name is stored under.
    pub fn stored_name(&self, name: &str) -> String {
        if self.encrypted() {
            format!("{name}{}", super::layout::ENCRYPTED_SUFFIX)
        } else {
            name.to_string()
        }
    }

    /// Write what `produce` writes (encrypted when the bundle is) to
    /// `file`; the sha256 of what was stored, and the sha256 and size of
    /// the plaintext. All come from the one pass that writes: each piece
    /// is hashed as plaintext as it enters the encryption (still in cache)
    /// and as stored on its way to the file; a plaintext bundle stores the
    /// plaintext, one digest.
    fn write_encrypted(
        &self,
        file: fs::File,
        produce: &mut dyn FnMut(&mut dyn Write) -> io::Result<()>,
    ) -> io::Result<(String, String, u64)> {
        let mut w = HashingWriter::new(io::BufWriter::new(file));
        if self.encrypted() {
            let enc = age::Encryptor::with_recipients(
                self.recipients
                    .iter()
                    .map(|r| r.as_ref() as &dyn age::Recipient),
            )
            .map_err(|e| io::Error::other(format!("cannot encrypt: {e}")))?;
            let format = if self.armor {
                age::armor::Format::AsciiArmor
            } else {
                age::armor::Format::Binary
            };
            let armored = age::armor::ArmoredWriter::wrap_output(&mut w, format)?;
            let mut plain = HashingWriter::new(enc.wrap_output(armored)?);
            produce(&mut plain)?;
            let (stream, hasher, size) = (plain.inner, plain.hasher, plain.size);
            stream.finish()?.finish()?;
            w.flush()?;
            Ok((hex(&w.hasher.finalize()), hex(&hasher.finalize()), size))
        } else {
            produce(&mut w)?;
            w.flush()?;
            let size = w.size;
            let digest = hex(&w.hasher.finalize());
            Ok((digest.clone(), digest, size))
        }
    }

    /// Every file written or adopted so far, by name.
    fn sorted_subjects(&self) -> Vec<Subject> {
        let mut subject: Vec<Subject> = self
            .subjects
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(name, sha256)| Subject {
                name: name.clone(),
                digest: [("sha256".to_string(), sha256.clone())]
                    .into_iter()
                    .collect(),
            })
            .collect();
        subject.sort_by(|a, b| a.name.cmp(&b.name));
        subject
    }

    /// Take a file over as it is (already sealed elsewhere: `vigil merge`
    /// carries shard files over without re-encrypting them), under its
    /// stored name, and name it in the statement.
    pub fn adopt(&self, stored: &str, bytes: &[u8]) -> io::Result<()> {
        if !super::layout::is_safe_name(stored) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("unsafe name {stored:?}"),
            ));
        }
        let path = self.root.join(stored);
        fs::create_dir_all(path.parent().unwrap_or(&self.root))?;
        crate::report::output::write_atomic(&path, bytes)?;
        self.subjects
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((stored.to_string(), hex(&Sha256::digest(bytes))));
        Ok(())
    }

    /// Seal a merged run: the statement over every file written or adopted,
    /// with `pred` as built by the merge.
    pub fn seal_merged(
        &self,
        pred: super::statement::RunPredicate,
        signer: Option<&Signer>,
    ) -> io::Result<PathBuf> {
        self.sync()?;
        let subject = self.sorted_subjects();
        self.seal_predicate(subject, pred, signer)
    }

    /// Sync everything written, then write the signed statement (last).
    /// Sync, then write the statement (signed when `signer` is given) last.
    pub fn seal(
        &self,
        summary: &RunSummary,
        summary_file: &Written,
        policy_sha256: &str,
        signer: Option<&Signer>,
        audit: Option<(&Written, String, u64)>,
    ) -> io::Result<PathBuf> {
        self.sync()?;
        let subject = self.sorted_subjects();
        let pred = predicate(
            summary,
            policy_sha256,
            FileRef {
                file: self.stored_name(&summary_file.name),
                plaintext_sha256: summary_file.sha256.clone(),
            },
            &|n| self.stored_name(n),
            self.encrypted(),
            audit.map(|(w, final_hash, entries)| AuditRef {
                log: FileRef {
                    file: self.stored_name(&w.name),
                    plaintext_sha256: w.sha256.clone(),
                },
                final_hash,
                entries,
            }),
        );
        self.seal_predicate(subject, pred, signer)
    }

    /// Write the statement over `subject` with `pred`, signed by `signer`.
    fn seal_predicate(
        &self,
        subject: Vec<Subject>,
        pred: super::statement::RunPredicate,
        signer: Option<&Signer>,
    ) -> io::Result<PathBuf> {
        let statement = Statement {
            statement_type: STATEMENT_TYPE.into(),
            subject,
            predicate_type: PREDICATE_TYPE.into(),
            predicate: pred,
        };
        let payload = serde_json::to_vec(&statement).expect("statement serializes");
        let envelope = match signer {
            Some(s) => dsse::sign(dsse::IN_TOTO_PAYLOAD_TYPE, &payload, s),
            None => dsse::Envelope {
                payload_type: dsse::IN_TOTO_PAYLOAD_TYPE.into(),
                payload: base64::Engine::encode(
                    &base64::engine::general_purpose::STANDARD,
                    &payload,
                ),
                signatures: vec![],
            },
        };
        let path = self.root.join(STATEMENT_FILE);
        crate::report::output::write_atomic(
            &path,
            &serde_json::to_vec_pretty(&envelope).expect("envelope serializes"),
        )?;
        self.sync()?;
        rustix::fs::renameat_with(
            rustix::fs::CWD,
            &self.root,
            rustix::fs::CWD,
            &self.dest,
            rustix::fs::RenameFlags::NOREPLACE,
        )
        .map_err(|e| {
            io::Error::new(
                io::Error::from(e).kind(),
                format!(
                    "cannot move the sealed bundle into place at {}: {}",
                    self.dest.display(),
                    crate::safeio::io_reason(&e.into())
                ),
            )
        })?;
        self.sealed.store(true, std::sync::atomic::Ordering::SeqCst);
        Ok(self.dest.join(STATEMENT_FILE))
    }
}

impl Drop for SealedDir {
    /// An unsealed bundle is debris: remove the staging directory.
    fn drop(&mut self) {
        if !self.sealed.load(std::sync::atomic::Ordering::SeqCst) {
            let _ = fs::remove_dir_all(&self.root);
        }
    }
}

impl RunOutput for SealedDir {
    fn write(&self, name: &str, bytes: &[u8]) -> io::Result<Written> {
        self.write_from(name, &mut |w| w.write_all(bytes))
    }

    fn write_from(
        &self,
        name: &str,
        produce: &mut dyn FnMut(&mut dyn Write) -> io::Result<()>,
    ) -> io::Result<Written> {
        check_name(name)?;
        let stored = self.stored_name(name);
        let path = self.root.join(&stored);
        let dir = path.parent().unwrap_or(&self.root);
        fs::create_dir_all(dir)?;
        // Straight to its name: the run directory is hidden (`.RUN.partial`)
        // until `seal` renames it whole, so no reader sees a half-written
        // file, and a temporary name and a rename per file would only cost
        // (a create and a rename per file is most of a cluster run's local
        // work on a slow filesystem). `create_new`: a name is written once.
        let file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)?;
        let (digest, plain_digest, size) = match self.write_encrypted(file, produce) {
            Ok(d) => d,
            Err(e) => {
                let _ = fs::remove_file(&path);
                return Err(e);
            }
        };
        self.subjects
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((stored, digest));
        Ok(Written {
            name: name.to_string(),
            sha256: plain_digest,
            size,
        })
    }

    fn location(&self) -> &Path {
        &self.dest
    }

    fn sync(&self) -> io::Result<()> {
        let dir = fs::File::open(&self.root)?;
        rustix::fs::syncfs(&dir).map_err(io::Error::from)
    }
}
