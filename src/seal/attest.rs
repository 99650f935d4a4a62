//! A second signed statement in a bundle: `vigil audit-check --attest`
//! records what the API server's audit log showed about the run. Its one
//! subject is the run's own statement (by digest), so it cannot be moved to
//! another bundle; `vigil verify` checks its signature and that binding.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::dsse;
use super::keys::Signer;
use super::layout::{AUDIT_CHECK_FILE, STATEMENT_FILE};
use super::statement::{STATEMENT_TYPE, Subject};

/// The predicate type of an audit-check attestation.
pub(crate) const AUDIT_CHECK_PREDICATE_TYPE: &str = "https://vigil.dev/attestations/audit-check/v1";

/// An in-toto statement over the run's statement, with the check as its
/// predicate (kept as JSON: `monitor` owns its shape).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuditCheckStatement {
    /// In-toto statement type.
    #[serde(rename = "_type")]
    pub statement_type: String,
    /// The run's `statement.dsse.json`.
    pub subject: Vec<Subject>,
    /// [`AUDIT_CHECK_PREDICATE_TYPE`].
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
    /// The check: log files and their sha256, findings, verdict.
    pub predicate: serde_json::Value,
}

/// Why an attestation cannot be written.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AttestError {
    /// One is there already: attestations are never replaced.
    #[error(
        "{0} already exists; an attestation is never replaced (check a copy of the bundle to attest again)"
    )]
    Exists(String),
    /// The run's statement or the file cannot be read or written.
    #[error("{0}")]
    Io(String),
}

/// sha256 (hex) of the run's statement file.
fn statement_digest(bundle: &Path) -> Result<String, String> {
    let bytes = crate::safeio::read(
        &bundle.join(STATEMENT_FILE),
        super::layout::MAX_STATEMENT_BYTES,
        "statement",
    )
    .map_err(|e| e.to_string())?;
    Ok(crate::encoding::hex(&Sha256::digest(&bytes)))
}

/// Sign `predicate` over the bundle's statement and write it into the
/// bundle (never over an existing one).
pub(crate) fn write(
    bundle: &Path,
    predicate: serde_json::Value,
    signer: &Signer,
) -> Result<PathBuf, AttestError> {
    let path = bundle.join(AUDIT_CHECK_FILE);
    if std::fs::symlink_metadata(&path).is_ok() {
        return Err(AttestError::Exists(path.display().to_string()));
    }
    let statement = AuditCheckStatement {
        statement_type: STATEMENT_TYPE.into(),
        subject: vec![Subject {
            name: STATEMENT_FILE.into(),
            digest: BTreeMap::from([(
                "sha256".to_string(),
                statement_digest(bundle).map_err(AttestError::Io)?,
            )]),
        }],
        predicate_type: AUDIT_CHECK_PREDICATE_TYPE.into(),
        predicate,
    };
    let payload = serde_json::to_vec(&statement).expect("statements serialize");
    let envelope = dsse::sign(dsse::IN_TOTO_PAYLOAD_TYPE, &payload, signer);
    let bytes = serde_json::to_vec_pretty(&envelope).expect("envelopes serialize");
    crate::safeio::write_private_new(&path, &bytes).map_err(|e| {
        AttestError::Io(format!(
            "cannot write {}: {}",
            path.display(),
            crate::safeio::io_reason(&e)
        ))
    })?;
    Ok(path)
}

/// Check an attestation's bytes: a trusted signature, the statement and
/// predicate types, and the run statement's digest as its one subject.
/// Returns the predicate.
pub(crate) fn check(
    bytes: &[u8],
    statement_sha256: &str,
    trusted: &[ed25519_dalek::VerifyingKey],
) -> Result<serde_json::Value, String> {
    let envelope: dsse::Envelope =
        serde_json::from_slice(bytes).map_err(|e| format!("not a DSSE envelope: {e}"))?;
    let (payload, _) = dsse::verify(&envelope, trusted).map_err(|e| e.to_string())?;
    let st: AuditCheckStatement = serde_json::from_slice(&payload)
        .map_err(|e| format!("payload is not an audit-check statement: {e}"))?;
    if st.statement_type != STATEMENT_TYPE || st.predicate_type != AUDIT_CHECK_PREDICATE_TYPE {
        return Err(format!(
            "unexpected statement type {} / predicate type {}",
            st.statement_type, st.predicate_type
        ));
    }
    match st.subject.as_slice() {
        [s] if s.name == STATEMENT_FILE
            && s.digest.get("sha256").map(String::as_str) == Some(statement_sha256) => {}
        _ => {
            return Err(format!(
                "its subject is not this bundle's {STATEMENT_FILE} (an attestation of another run)"
            ));
        }
    }
    if !st.predicate["verdict"].is_string() {
        return Err("its predicate has no verdict".into());
    }
    Ok(st.predicate)
}
