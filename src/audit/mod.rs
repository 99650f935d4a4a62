//! The run's audit trail: one JSON line per Kubernetes write or exec, each
//! carrying the sha256 of the line before it, so that removing, reordering
//! or editing a line breaks the chain. The last hash goes into the signed
//! statement; the log itself is sealed in the bundle and `vigil verify`
//! checks the chain.
//!
//! Entries name the identity used (`caller` or the run's ServiceAccount),
//! never a credential: a TokenRequest is recorded, the token is not.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::encoding::hex;

/// The hash that starts every chain.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One audited operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// Position in the log, from 1.
    pub seq: u64,
    /// sha256 of the previous line's bytes ([`GENESIS`] for the first).
    pub prev: String,
    /// Run id.
    pub run_id: String,
    /// Scan id, for operations on one target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scan_id: Option<String>,
    /// RFC 3339 time the operation finished.
    pub time: String,
    /// `caller` or `system:serviceaccount:NS:NAME`.
    pub identity: String,
    /// `create`, `delete`, `exec`, …
    pub verb: String,
    /// `serviceaccount ns/name`, `token for serviceaccount ns/name`, `pods/exec ns/pod/container`.
    pub object: String,
    /// `ok`, or the error (never containing a credential).
    pub outcome: String,
    /// Milliseconds the operation took.
    pub duration_ms: u64,
    /// The API request, typed (absent in trails written before vigil
    /// recorded it: `audit-check` then reads `verb` and `object`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call: Option<Call>,
    /// What `vigil audit-check` needs to tie the API server's event for
    /// this operation to this line: [`CREDENTIAL_ID`] of a minted token,
    /// [`COMMAND_SHA256`] of an exec's argv, [`IMAGE`] of an ephemeral
    /// container. Never a secret.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
}

/// The API request an audit line stands for, typed, so that `vigil
/// audit-check` matches it with the API server's events without reading
/// the line's prose back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Call {
    /// The caller's SelfSubjectReview (who it is).
    WhoAmI,
    /// The caller's SelfSubjectAccessReviews before anything is created.
    CallerRights,
    /// SelfSubjectAccessReviews made with the run's token, until granted.
    TokenRights {
        /// Namespace of the ServiceAccount.
        namespace: String,
        /// Its name.
        service_account: String,
    },
    /// A TokenRequest for the run's ServiceAccount.
    Token {
        /// Namespace of the ServiceAccount.
        namespace: String,
        /// Its name.
        service_account: String,
    },
    /// A create of an object the run owns.
    Create {
        /// Its resource, plural (`serviceaccounts`, `roles`, `rolebindings`,
        /// `secrets`).
        resource: String,
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
    /// A delete of an object the run owns.
    Delete {
        /// Its resource, plural.
        resource: String,
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
    /// `pods/exec` into a container.
    Exec {
        /// Namespace.
        namespace: String,
        /// Pod.
        pod: String,
        /// Container.
        container: String,
    },
    /// A `pods/ephemeralcontainers` patch adding vigil's probe.
    AddEphemeral {
        /// Namespace.
        namespace: String,
        /// Pod.
        pod: String,
    },
    /// Watching a pod (until the probe terminates).
    WatchPod {
        /// Namespace.
        namespace: String,
        /// Pod.
        pod: String,
    },
    /// `pods/log` of a container.
    PodLog {
        /// Namespace.
        namespace: String,
        /// Pod.
        pod: String,
        /// Container.
        container: String,
    },
}

impl Call {
    /// The trail's verb word for this request.
    pub fn verb(&self) -> &'static str {
        match self {
            Call::WhoAmI | Call::Token { .. } | Call::Create { .. } => "create",
            Call::CallerRights | Call::TokenRights { .. } => "check",
            Call::Delete { .. } => "delete",
            Call::Exec { .. } => "exec",
            Call::AddEphemeral { .. } => "patch",
            Call::WatchPod { .. } => "watch",
            Call::PodLog { .. } => "get",
        }
    }
}

/// The credential id (`JTI=<uuid>`, KEP-4193) of a token vigil minted: the
/// API server's TokenRequest event carries it as the
/// `authentication.kubernetes.io/issued-credential-id` annotation, and every
/// request made with the token as `user.extra["authentication.kubernetes.io/credential-id"]`.
pub const CREDENTIAL_ID: &str = "credential_id";
/// sha256 of an exec's argv as JSON (`["/bin/sh","-c",…]`): the API server
/// logs the argv as `command=` query parameters.
pub const COMMAND_SHA256: &str = "command_sha256";
/// The image of an ephemeral container vigil added.
pub const IMAGE: &str = "image";

/// sha256 (hex) of an exec's argv, the form [`COMMAND_SHA256`] records.
pub fn command_sha256(argv: &[String]) -> String {
    hex(&Sha256::digest(
        serde_json::to_vec(argv).expect("strings serialize"),
    ))
}

/// An append-only, hash-chained log kept in memory during a run.
#[derive(Debug)]
pub struct AuditLog {
    run_id: String,
    /// The lines written so far (each exactly its length: serializing
    /// leaves up to twice a line's length reserved, per target of a run),
    /// and the hash of the last.
    lines: Mutex<(Vec<Box<str>>, String)>,
}

impl AuditLog {
    /// An empty log for a run.
    pub fn new(run_id: &str) -> AuditLog {
        AuditLog {
            run_id: run_id.to_string(),
            lines: Mutex::new((Vec::new(), GENESIS.to_string())),
        }
    }

    /// Append an entry for an operation that started at `started`.
    /// `object` is the line's words for people; `call` is what
    /// `audit-check` reads, with `attributes` ([`Entry::attributes`]).
    #[allow(clippy::too_many_arguments)]
    pub fn record(
        &self,
        scan_id: Option<&str>,
        identity: &str,
        call: Call,
        object: &str,
        outcome: Result<(), String>,
        started: Instant,
        attributes: BTreeMap<String, String>,
    ) {
        let mut guard = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        let (lines, prev) = &mut *guard;
        let entry = Entry {
            seq: lines.len() as u64 + 1,
            prev: prev.clone(),
            run_id: self.run_id.clone(),
            scan_id: scan_id.map(str::to_string),
            time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            identity: identity.to_string(),
            verb: call.verb().to_string(),
            object: object.to_string(),
            call: Some(call),
            outcome: match outcome {
                Ok(()) => "ok".into(),
                Err(e) => crate::redact::redact(&e),
            },
            duration_ms: started.elapsed().as_millis() as u64,
            attributes,
        };
        let line = serde_json::to_string(&entry).expect("entries serialize");
        *prev = hex(&Sha256::digest(line.as_bytes()));
        lines.push(line.into_boxed_str());
    }

    /// The log as JSONL and the final hash.
    pub fn finish(&self) -> (Vec<u8>, String, u64) {
        let mut out = Vec::new();
        let (head, n) = self
            .write_jsonl(&mut out)
            .expect("writing to memory cannot fail");
        (out, head, n)
    }

    /// Write the log as JSONL to `w` (a run's trail streams to its bundle
    /// instead of being copied whole first); gives the final hash and the
    /// number of entries written.
    pub(crate) fn write_jsonl(&self, w: &mut dyn std::io::Write) -> std::io::Result<(String, u64)> {
        use std::io::Write as _;
        let guard = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        let mut b = std::io::BufWriter::with_capacity(64 * 1024, w);
        for l in &guard.0 {
            b.write_all(l.as_bytes())?;
            b.write_all(b"\n")?;
        }
        b.flush()?;
        Ok((guard.1.clone(), guard.0.len() as u64))
    }
}

/// Where and how a trail's hash chain breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    /// The trail is not text.
    #[error("audit log is not UTF-8")]
    NotUtf8,
    /// A line is not an [`Entry`].
    #[error("line {line}: not an audit entry: {reason}")]
    NotAnEntry {
        /// 1-based line number.
        line: usize,
        /// The JSON error.
        reason: String,
    },
    /// The previous-line hash does not match: a line was edited, dropped
    /// or moved.
    #[error("line {0}: the chain is broken (previous-line hash does not match)")]
    Broken(usize),
    /// The sequence number is not the line number.
    #[error("line {line}: sequence number {seq} out of order")]
    OutOfOrder {
        /// 1-based line number.
        line: usize,
        /// The entry's sequence number.
        seq: u64,
    },
    /// The entry belongs to another run.
    #[error("line {line}: entry of another run ({run_id})")]
    OtherRun {
        /// 1-based line number.
        line: usize,
        /// The entry's run id.
        run_id: String,
    },
}

/// Check a JSONL log's chain; returns the final hash and the entry count,
/// or the first broken line.
pub fn verify_chain(jsonl: &[u8], run_id: &str) -> Result<(String, u64), ChainError> {
    let text = std::str::from_utf8(jsonl).map_err(|_| ChainError::NotUtf8)?;
    let mut prev = GENESIS.to_string();
    let mut n = 0u64;
    for (i, line) in text.lines().enumerate() {
        let entry: Entry = serde_json::from_str(line).map_err(|e| ChainError::NotAnEntry {
            line: i + 1,
            reason: e.to_string(),
        })?;
        if entry.prev != prev {
            return Err(ChainError::Broken(i + 1));
        }
        if entry.seq != i as u64 + 1 {
            return Err(ChainError::OutOfOrder {
                line: i + 1,
                seq: entry.seq,
            });
        }
        if entry.run_id != run_id {
            return Err(ChainError::OtherRun {
                line: i + 1,
                run_id: entry.run_id,
            });
        }
        prev = hex(&Sha256::digest(line.as_bytes()));
        n += 1;
    }
    Ok((prev, n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_detects_edits_drops_and_reorders() {
        let log = AuditLog::new("r1");
        for i in 0..4 {
            log.record(
                None,
                "caller",
                Call::Create {
                    resource: "secrets".into(),
                    namespace: "ns".into(),
                    name: format!("s{i}"),
                },
                &format!("secret ns/s{i}"),
                Ok(()),
                Instant::now(),
                BTreeMap::new(),
            );
        }
        let (bytes, last, n) = log.finish();
        assert_eq!(verify_chain(&bytes, "r1").unwrap(), (last.clone(), 4));
        assert_eq!(n, 4);
        let text = String::from_utf8(bytes).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let edited = text.replace("secret ns/s2", "secret ns/sX");
        assert_eq!(
            verify_chain(edited.as_bytes(), "r1").unwrap_err(),
            ChainError::Broken(4)
        );
        let dropped = [lines[0], lines[2], lines[3]].join("\n");
        assert!(verify_chain(dropped.as_bytes(), "r1").is_err());
        let swapped = [lines[1], lines[0], lines[2], lines[3]].join("\n");
        assert!(verify_chain(swapped.as_bytes(), "r1").is_err());
        let truncated = [lines[0], lines[1]].join("\n");
        let (h, n) = verify_chain(truncated.as_bytes(), "r1").unwrap();
        assert!(
            h != last && n == 2,
            "a truncated log verifies as a chain but not against the signed final hash"
        );
        assert!(verify_chain(text.as_bytes(), "other").is_err());
    }
}
