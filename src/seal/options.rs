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

/// How a run's bundles are sealed, as the flags of `vigil run`, `import`
/// and `merge` ask: where they go, which key signs them and whether they
/// are encrypted.
#[derive(Debug, Clone, Default)]
pub struct Sealing {
    /// Results directory (default: each policy's `output.dir`).
    pub out: Option<PathBuf>,
    /// The signing key file; overrides `VIGIL_SIGNING_KEY` and the policy.
    pub signing_key: Option<PathBuf>,
    /// Seal without a signature (no key is read unless `signing_key`).
    pub unsigned: bool,
    /// Write results unencrypted (allowed only for a policy without
    /// recipients).
    pub plaintext: bool,
}

/// A policy's keys under the sealing settings, checked before anything
/// is scanned or written: the key that signs its statement (`None` only
/// when unsigned) and who can read its results (none only in plaintext).
pub struct Keys {
    /// Signs the statement.
    pub signer: Option<Signer>,
    /// Can decrypt the results.
    pub recipients: Vec<Box<dyn age::Recipient + Send + Sync>>,
}

impl Sealing {
    /// The policy's signing key under these settings.
    pub fn signer(&self, policy: &Loaded<ScanPolicy>) -> Result<Option<Signer>, SealOptionError> {
        signer(self.signing_key.as_deref(), self.unsigned, policy)
    }

    /// The policy's recipients under these settings.
    pub fn recipients(
        &self,
        policy: &Loaded<ScanPolicy>,
    ) -> Result<Vec<Box<dyn age::Recipient + Send + Sync>>, SealOptionError> {
        recipients(policy, self.plaintext)
    }

    /// The policy's signing key and recipients, both checked.
    pub fn keys(&self, policy: &Loaded<ScanPolicy>) -> Result<Keys, SealOptionError> {
        Ok(Keys {
            signer: self.signer(policy)?,
            recipients: self.recipients(policy)?,
        })
    }

    /// Create the policy's bundle directory for one run, encrypted to
    /// `recipients`.
    pub fn open_bundle(
        &self,
        policy: &Loaded<ScanPolicy>,
        run_id: &str,
        recipients: Vec<Box<dyn age::Recipient + Send + Sync>>,
    ) -> Result<SealedDir, SealOptionError> {
        open_bundle(policy, self.out.as_ref(), run_id, recipients)
    }
}

impl SealOptionError {
    /// Whether the flags or the policy are at fault (rather than the disk).
    pub fn is_bad_input(&self) -> bool {
        matches!(self, SealOptionError::Invalid(_))
    }
}

/// The signing key: `signing_key`, else `VIGIL_SIGNING_KEY`, else the
/// policy's `output.signingKey` (relative to the policy file); none only
/// when `unsigned` allows it.
fn signer(
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
fn recipients(
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
fn open_bundle(
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
