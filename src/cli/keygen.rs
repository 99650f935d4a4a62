//! `vigil keygen`: create signing keys and age identities.

use std::path::PathBuf;

use super::{Exit, InvalidInput};
use crate::seal::keys::{Signer, keyid, write_age_identity};

const AFTER_HELP: &str = "\
Examples:
  vigil keygen signing --out keys/signer     # keys/signer.key.pem (0600), keys/signer.pub.pem
  vigil keygen age --out keys/auditor        # keys/auditor.key (0600), keys/auditor.pub

Signing keys are Ed25519 in PKCS#8 v1 / SPKI PEM, readable by OpenSSL.
age identities use the age CLI's own format (`age -d -i keys/auditor.key`).
Existing files are never overwritten.";

/// Create an ed25519 signing key or an age identity.
#[derive(Debug, clap::Args)]
#[command(after_help = AFTER_HELP)]
pub(super) struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(Debug, clap::Subcommand)]
enum What {
    /// An Ed25519 signing key pair: PREFIX.key.pem (PKCS#8 v1, mode 0600) and PREFIX.pub.pem (SPKI).
    #[command(after_help = AFTER_HELP)]
    Signing {
        /// Path prefix of the files to create.
        #[arg(long, value_name = "PREFIX")]
        out: PathBuf,
    },
    /// An age X25519 identity: PREFIX.key (mode 0600) and PREFIX.pub (the recipient).
    #[command(after_help = AFTER_HELP)]
    Age {
        /// Path prefix of the files to create.
        #[arg(long, value_name = "PREFIX")]
        out: PathBuf,
    },
}

pub(super) fn run(args: Args) -> anyhow::Result<Exit> {
    match args.what {
        What::Signing { out } => {
            let signer = Signer::generate();
            let (key, public) = signer
                .write(&out)
                .map_err(|e| InvalidInput(e.to_string()))?;
            eprintln!("vigil: wrote {} and {}", key.display(), public.display());
            println!("{}", keyid(&signer.verifying_key()));
        }
        What::Age { out } => {
            let (key, public, recipient) =
                write_age_identity(&out).map_err(|e| InvalidInput(e.to_string()))?;
            eprintln!("vigil: wrote {} and {}", key.display(), public.display());
            println!("{recipient}");
        }
    }
    Ok(Exit::Success)
}
