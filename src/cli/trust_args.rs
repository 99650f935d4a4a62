//! The keys a sealed bundle is checked and opened with, declared once for
//! `verify`, `open`, `drift`, `audit-check` and `merge`.

use std::path::PathBuf;

use super::InvalidInput;
use crate::seal::keys::load_identities;

/// The public keys a bundle's signature must verify with.
#[derive(Debug, clap::Args)]
pub(super) struct TrustedKeys {
    /// A trusted Ed25519 public key (SPKI PEM); repeat for key rotation.
    /// Required (`open` takes `--no-verify` instead).
    #[arg(long = "trusted-key", value_name = "PUB")]
    pub trusted_keys: Vec<PathBuf>,
}

impl TrustedKeys {
    /// The keys, loaded; none given is an error naming the flag.
    pub(super) fn load(&self) -> anyhow::Result<Vec<ed25519_dalek::VerifyingKey>> {
        if self.trusted_keys.is_empty() {
            return Err(InvalidInput(
                "pass --trusted-key PUB: the Ed25519 public key the bundle was signed with".into(),
            )
            .into());
        }
        self.load_given()
    }

    /// The keys given, loaded (perhaps none).
    pub(super) fn load_given(&self) -> anyhow::Result<Vec<ed25519_dalek::VerifyingKey>> {
        self.trusted_keys
            .iter()
            .map(|p| {
                crate::seal::keys::load_public_key(p)
                    .map_err(|e| anyhow::Error::from(InvalidInput(e.to_string())))
            })
            .collect()
    }
}

/// The age identities (or unencrypted ssh keys) that open encrypted
/// results.
#[derive(Debug, clap::Args)]
pub(super) struct Identities {
    /// An age identity (or unencrypted ssh key) to decrypt encrypted
    /// results and audit trails; repeatable.
    #[arg(long = "identity", value_name = "KEY")]
    pub identities: Vec<PathBuf>,
}

impl Identities {
    /// Every identity of every file given, loaded.
    pub(super) fn load(&self) -> anyhow::Result<Vec<Box<dyn age::Identity + Send + Sync>>> {
        let mut out = Vec::new();
        for p in &self.identities {
            out.extend(load_identities(p).map_err(|e| InvalidInput(e.to_string()))?);
        }
        Ok(out)
    }
}
