//! The sealing flags `vigil run`, `import` and `merge` share, declared
//! once; what they mean is `seal::options`.

use std::path::PathBuf;

use super::InvalidInput;
use crate::policy::Loaded;
use crate::policy::model::ScanPolicy;
use crate::seal::bundle::SealedDir;
use crate::seal::keys::Signer;
use crate::seal::options::{self, SealOptionError};

/// Where results go, which key signs them and whether they are encrypted.
#[derive(Debug, clap::Args)]
pub struct SealArgs {
    /// Results directory (default: each policy's `output.dir`).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Ed25519 signing key (PKCS#8 PEM, mode 0600); overrides `output.signingKey`
    /// and the VIGIL_SIGNING_KEY environment variable.
    #[arg(long, value_name = "FILE")]
    pub signing_key: Option<PathBuf>,
    /// Seal without a signing key: the bundle's statement carries no
    /// signature and `vigil verify` will reject it. No key is read (the
    /// policy's output.signingKey and VIGIL_SIGNING_KEY are ignored).
    #[arg(long, conflicts_with = "signing_key")]
    pub unsigned: bool,
    /// Write results unencrypted (allowed only when the policy names no
    /// recipients; for `merge`: the shards are plaintext).
    #[arg(long)]
    pub plaintext: bool,
}

fn cli_error(e: SealOptionError) -> anyhow::Error {
    match e {
        SealOptionError::Invalid(m) => InvalidInput(m).into(),
        SealOptionError::Io(m) => anyhow::anyhow!(m),
    }
}

impl SealArgs {
    /// The policy's signing key under these flags.
    pub fn signer(&self, policy: &Loaded<ScanPolicy>) -> anyhow::Result<Option<Signer>> {
        options::signer(self.signing_key.as_deref(), self.unsigned, policy).map_err(cli_error)
    }

    /// The policy's recipients under these flags.
    pub fn recipients(
        &self,
        policy: &Loaded<ScanPolicy>,
    ) -> anyhow::Result<Vec<Box<dyn age::Recipient + Send + Sync>>> {
        options::recipients(policy, self.plaintext).map_err(cli_error)
    }

    /// The bundle directory for one run of the policy.
    pub fn open_bundle(
        &self,
        policy: &Loaded<ScanPolicy>,
        run_id: &str,
        recipients: Vec<Box<dyn age::Recipient + Send + Sync>>,
    ) -> anyhow::Result<SealedDir> {
        options::open_bundle(policy, self.out.as_ref(), run_id, recipients).map_err(cli_error)
    }
}
