//! A run's findings, held on disk while the run goes on.
//!
//! A run of thousands of targets held every target's failed and error
//! controls (id, title, message, NIST tags: about 8 KB a target) until it
//! wrote `summary.json`: most of a 2,000-target run's heap, and the part
//! that grew with the run. Once a target is finished and its progress
//! line printed, the runner writes its findings here and keeps only where
//! they are; `summary.json`, the terminal and the reports read them back
//! one target at a time.
//!
//! The file is unlinked as soon as it is created, so nothing is left
//! behind however the run ends, and each target's findings are sealed
//! with ChaCha20-Poly1305 under a key that lives only in the process: an
//! encrypted bundle's results never reach the disk in plaintext (the same
//! AEAD age itself uses; the crate is age's own dependency).

use std::fmt;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Arc, Mutex};

use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use serde::{Deserialize, Serialize};

use super::findings::Finding;
use super::import::ControlWaiver;
use super::summary::{ControlStatus, Severity};

/// Most bytes one target's sealed findings may take: a target has at most
/// a few thousand controls, each finding a few hundred bytes.
const MAX_RECORD_BYTES: usize = 64 << 20;

/// The file findings are spooled to, and the key that seals them.
pub(crate) struct Spool {
    file: File,
    cipher: ChaCha20Poly1305,
    /// Where the next record goes; also what makes each nonce unique.
    tail: Mutex<u64>,
}

impl fmt::Debug for Spool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Spool").finish_non_exhaustive()
    }
}

/// Findings that could not be read back from the spool.
#[derive(Debug, thiserror::Error)]
#[error("cannot read a target's findings back from the run's spool file: {0}")]
pub struct SpoolError(String);

impl Spool {
    /// A spool in `dir` (the run's output directory): created, then
    /// unlinked at once.
    pub(crate) fn create(dir: &Path) -> io::Result<Arc<Spool>> {
        let mut key = [0u8; 32];
        getrandom::getrandom(&mut key).map_err(io::Error::other)?;
        let mut tag = [0u8; 8];
        getrandom::getrandom(&mut tag).map_err(io::Error::other)?;
        let path = dir.join(format!(".vigil-spool-{}", crate::encoding::hex(&tag)));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)?;
        std::fs::remove_file(&path)?;
        Ok(Arc::new(Spool {
            file,
            cipher: ChaCha20Poly1305::new(Key::from_slice(&key)),
            tail: Mutex::new(0),
        }))
    }

    fn nonce(at: u64) -> Nonce {
        let mut n = [0u8; 12];
        n[..8].copy_from_slice(&at.to_le_bytes());
        *Nonce::from_slice(&n)
    }

    /// Write `findings` and say where they are.
    fn put(self: &Arc<Self>, findings: &[Finding]) -> io::Result<Findings> {
        let plain = serde_json::to_vec(&findings.iter().map(Stored::of).collect::<Vec<_>>())
            .map_err(io::Error::other)?;
        let mut tail = self.tail.lock().unwrap_or_else(|e| e.into_inner());
        let at = *tail;
        let sealed = self
            .cipher
            .encrypt(&Spool::nonce(at), plain.as_slice())
            .map_err(|_| io::Error::other("cannot seal findings"))?;
        if sealed.len() > MAX_RECORD_BYTES {
            return Err(io::Error::other("findings too large to spool"));
        }
        self.file.write_all_at(&sealed, at)?;
        *tail = at + sealed.len() as u64;
        Ok(Findings(Repr::Spooled {
            spool: Arc::clone(self),
            at,
            len: sealed.len() as u32,
            count: findings.len() as u32,
        }))
    }

    fn get(&self, at: u64, len: u32) -> Result<Vec<Finding>, SpoolError> {
        let mut sealed = vec![0u8; len as usize];
        self.file
            .read_exact_at(&mut sealed, at)
            .map_err(|e| SpoolError(e.to_string()))?;
        let plain = self
            .cipher
            .decrypt(&Spool::nonce(at), sealed.as_slice())
            .map_err(|_| SpoolError("a record does not authenticate".into()))?;
        let stored: Vec<Stored> =
            serde_json::from_slice(&plain).map_err(|e| SpoolError(e.to_string()))?;
        stored.into_iter().map(Stored::into_finding).collect()
    }
}

/// A target's failed and error controls: in memory, or in the run's spool.
#[derive(Debug, Clone)]
pub struct Findings(Repr);

#[derive(Debug, Clone)]
enum Repr {
    Held(Vec<Finding>),
    Spooled {
        spool: Arc<Spool>,
        at: u64,
        len: u32,
        count: u32,
    },
}

impl Default for Findings {
    fn default() -> Findings {
        Findings(Repr::Held(Vec::new()))
    }
}

impl From<Vec<Finding>> for Findings {
    fn from(v: Vec<Finding>) -> Findings {
        Findings(Repr::Held(v))
    }
}

impl Findings {
    /// How many there are.
    pub(crate) fn len(&self) -> usize {
        match &self.0 {
            Repr::Held(v) => v.len(),
            Repr::Spooled { count, .. } => *count as usize,
        }
    }

    /// Whether there are none.
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The findings, read back from the spool when they are there.
    pub fn get(&self) -> Result<std::borrow::Cow<'_, [Finding]>, SpoolError> {
        match &self.0 {
            Repr::Held(v) => Ok(std::borrow::Cow::Borrowed(v)),
            Repr::Spooled { spool, at, len, .. } => {
                spool.get(*at, *len).map(std::borrow::Cow::Owned)
            }
        }
    }

    /// The same findings in `spool`, or held as they are when it cannot
    /// take them (never lost: a full disk only costs memory).
    pub(crate) fn spool(self, spool: &Arc<Spool>) -> Findings {
        match &self.0 {
            Repr::Held(v) if !v.is_empty() => match spool.put(v) {
                Ok(spooled) => spooled,
                Err(e) => {
                    tracing::debug!("findings kept in memory: the spool file refused them: {e}");
                    self
                }
            },
            _ => self,
        }
    }
}

impl Serialize for Findings {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let v = self.get().map_err(serde::ser::Error::custom)?;
        v.serialize(s)
    }
}

/// A finding as the spool keeps it: every field, so what is read back is
/// what was written.
#[derive(Serialize, Deserialize)]
struct Stored {
    id: String,
    status: ControlStatus,
    severity: String,
    title: String,
    message: String,
    location: Option<(String, u32, u32)>,
    nist: Vec<String>,
    waiver: Option<(String, String, bool)>,
    evidence: Option<crate::policy::model::Evidence>,
}

impl Stored {
    fn of(f: &Finding) -> Stored {
        Stored {
            id: f.id.clone(),
            status: f.status,
            severity: f.severity.as_str().to_string(),
            title: f.title.clone(),
            message: f.message.clone(),
            location: f
                .location
                .as_ref()
                .map(|l| (l.file.clone(), l.line, l.column)),
            nist: f.nist.clone(),
            waiver: f
                .waiver
                .as_ref()
                .map(|w| (w.justification.clone(), w.expires.clone(), w.active)),
            evidence: f.evidence,
        }
    }

    fn into_finding(self) -> Result<Finding, SpoolError> {
        Ok(Finding {
            id: self.id,
            status: self.status,
            severity: Severity::from_name(&self.severity)
                .ok_or_else(|| SpoolError(format!("unknown severity {:?}", self.severity)))?,
            title: self.title,
            message: self.message,
            location: self
                .location
                .map(|(file, line, column)| crate::facts::workload::Location {
                    file,
                    line,
                    column,
                }),
            nist: self.nist,
            waiver: self
                .waiver
                .map(|(justification, expires, active)| ControlWaiver {
                    justification,
                    expires,
                    active,
                }),
            evidence: self.evidence,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(i: usize) -> Finding {
        Finding {
            id: format!("CB-{i:02}"),
            status: if i % 2 == 0 {
                ControlStatus::Failed
            } else {
                ControlStatus::Error
            },
            severity: Severity::of_impact(i as f64 / 10.0),
            title: format!("title {i}"),
            message: format!("message \u{1b}[31m {i}"),
            location: (i % 3 == 0).then(|| crate::facts::workload::Location {
                file: "m.yaml".into(),
                line: i as u32,
                column: 3,
            }),
            nist: vec!["AC-6(1)".into(); i % 3],
            waiver: (i % 4 == 0).then(|| ControlWaiver {
                justification: "j".into(),
                expires: "2099-01-01".into(),
                active: i % 8 == 0,
            }),
            evidence: (i % 5 == 0).then_some(crate::policy::model::Evidence::Local),
        }
    }

    /// Findings come back from the spool as they went in, every field,
    /// records of many targets side by side; the file has no name; a
    /// record changed on disk is refused, never read as other findings.
    #[test]
    fn findings_come_back_as_they_went_in_and_a_changed_record_is_refused() {
        let dir = std::env::temp_dir().join(format!("vigil-spool-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let spool = Spool::create(&dir).unwrap();
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0, "unlinked");
        let sets: Vec<Vec<Finding>> = (0..20).map(|n| (0..n).map(finding).collect()).collect();
        let spooled: Vec<Findings> = sets
            .iter()
            .map(|s| Findings::from(s.clone()).spool(&spool))
            .collect();
        for (s, f) in sets.iter().zip(&spooled) {
            assert_eq!(f.len(), s.len());
            assert_eq!(&*f.get().unwrap(), s.as_slice());
            assert_eq!(
                serde_json::to_value(f).unwrap(),
                serde_json::to_value(s).unwrap()
            );
            if !s.is_empty() {
                assert!(matches!(f.0, Repr::Spooled { .. }));
            }
        }
        // Flip one byte of the last record.
        let Repr::Spooled { at, .. } = spooled[19].0 else {
            panic!()
        };
        let mut b = [0u8; 1];
        spool.file.read_exact_at(&mut b, at + 3).unwrap();
        spool.file.write_all_at(&[b[0] ^ 1], at + 3).unwrap();
        assert!(spooled[19].get().is_err());
        assert!(serde_json::to_vec(&spooled[19]).is_err());
        assert_eq!(&*spooled[18].get().unwrap(), sets[18].as_slice());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
