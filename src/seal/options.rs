//! Which key signs a policy's bundle, who can read it and where it goes:
//! the precedence of flags, environment and policy, in one place for
//! `vigil run`, `import` and `merge`.

use std::path::{Path, PathBuf};

use crate::policy::Loaded;
use crate::policy::model::ScanPolicy;

use super::bundle::SealedDir;
use super::keys::{Signer, parse_recipients};

/// Why a bundle cannot be sealed as asked.
#[derive(Debug, thiserror::Error)]
pub enum SealOptionError {
    /// The flags or the policy ask for something that cannot be (bad
    /// input: no key, no recipients, an unreadable key file).
    #[error("{0}")]
    Invalid(String),
    /// The bundle directory could not be created.
    #[error("{0}")]
    Io(String),
}

/// The signing key: `signing_key`, else `VIGIL_SIGNING_KEY`, else the
/// policy's `output.signingKey` (relative to the policy file); none only
/// when `unsigned` allows it.
pub fn signer(
    signing_key: Option<&Path>,
    unsigned: bool,
    policy: &Loaded<ScanPolicy>,
) -> Result<Option<Signer>, SealOptionError> {
    // Asked for no signature: no key is read, so a key that is missing,
    // unreadable or too open is no reason to stop.
    if unsigned && signing_key.is_none() {
        return Ok(None);
    }
    let loaded = if let Some(path) = signing_key {
        Some(Signer::from_file(path))
    } else if let Some(r) = Signer::from_env() {
        Some(r)
    } else {
        policy
            .value
            .spec
            .output
            .signing_key
            .as_ref()
            .map(|k| Signer::from_file(&policy.base_dir().join(k)))
    };
    match loaded {
        Some(r) => Ok(Some(
            r.map_err(|e| SealOptionError::Invalid(e.to_string()))?,
        )),
        None if unsigned => Ok(None),
        None => Err(SealOptionError::Invalid(format!(
            "policy {} has no signing key: set output.signingKey, pass --signing-key FILE or VIGIL_SIGNING_KEY, or run with --unsigned",
            policy.value.metadata.name
        ))),
    }
}

/// The age/ssh recipients of a policy's results; none only with
/// `plaintext`.
pub fn recipients(
    policy: &Loaded<ScanPolicy>,
    plaintext: bool,
) -> Result<Vec<Box<dyn age::Recipient + Send + Sync>>, SealOptionError> {
    let recipients = parse_recipients(&policy.value.spec.output.recipients)
        .map_err(|e| SealOptionError::Invalid(e.to_string()))?;
    if recipients.is_empty() && !plaintext {
        return Err(SealOptionError::Invalid(format!(
            "policy {} names no output.recipients: results would be readable by anyone; add an age or ssh recipient, or pass --plaintext",
            policy.value.metadata.name
        )));
    }
    Ok(recipients)
}

/// Create the bundle directory `OUT/<policy>/<run-id>/`.
pub fn open_bundle(
    policy: &Loaded<ScanPolicy>,
    out: Option<&PathBuf>,
    run_id: &str,
    recipients: Vec<Box<dyn age::Recipient + Send + Sync>>,
) -> Result<SealedDir, SealOptionError> {
    let out = super::layout::output_dir(&policy.value, out);
    SealedDir::create(
        &out,
        &policy.value.metadata.name,
        run_id,
        recipients,
        policy.value.spec.output.armor,
    )
    .map_err(|e| {
        SealOptionError::Io(format!(
            "cannot create the bundle directory under {}: {}",
            crate::safeio::printable(&out.display().to_string()),
            crate::safeio::io_reason(&e)
        ))
    })
}
