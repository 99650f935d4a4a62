//! The sealing flags `vigil run`, `import` and `merge` share, declared
//! once; what they mean is `seal::options`.

use std::path::PathBuf;

use super::InvalidInput;
use crate::seal::options::{SealOptionError, Sealing};

/// Where results go, which key signs them and whether they are encrypted.
#[derive(Debug, clap::Args)]
pub(super) struct SealArgs {
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

/// A sealing error as the CLI reports it (bad input exits 2).
pub(super) fn cli_error(e: SealOptionError) -> anyhow::Error {
    if e.is_bad_input() {
        InvalidInput(e.to_string()).into()
    } else {
        anyhow::Error::from(e)
    }
}

impl SealArgs {
    /// The sealing settings these flags ask for.
    pub(super) fn sealing(&self) -> Sealing {
        Sealing {
            out: self.out.clone(),
            signing_key: self.signing_key.clone(),
            unsigned: self.unsigned,
            plaintext: self.plaintext,
        }
    }
}
