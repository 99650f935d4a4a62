//! `vigil verify-attestation`: is there a signed attestation about this
//! image (by digest), of this predicate type, and does it pass?

use std::path::PathBuf;

use super::{Exit, InvalidInput, print_stdout};
use crate::cosign::PublicKey;
use crate::cosign::attestation::{MAX_ENVELOPE, TEST_RESULT_PREDICATE, Wanted, fetch, judge};
use crate::registry::Reference;

const AFTER_HELP: &str = "\
Examples:
  vigil verify-attestation r.example/a@sha256:4f1c2a9be0d3... --key k.pub --require passed
  vigil verify-attestation r.example/a@sha256:4f1c2a9be0d3... --key k.pub --attestation v.json

Looks under the image's sha256-<hex>.att tag and its OCI 1.1 referrers
(or only in --attestation FILE, offline). Exit 0 only for a DSSE envelope
whose signature verifies with the key (ECDSA P-256 or Ed25519) over an
in-toto statement naming exactly this digest, of the predicate type asked
for (default: the in-toto Test Result), and with --require passed, whose
result is PASSED; 1 otherwise; 2 on invalid input.";

/// Verify an image's attestation against a public key.
#[derive(Debug, clap::Args)]
#[command(after_help = AFTER_HELP)]
pub(super) struct Args {
    /// The image, pinned: NAME@sha256:<64 hex digits>.
    #[arg(value_name = "IMAGE")]
    image: String,
    /// The signer's public key (PEM: ECDSA P-256 or Ed25519).
    #[arg(long, value_name = "PUB")]
    key: PathBuf,
    /// The predicate type required.
    #[arg(long = "predicate-type", value_name = "URI", default_value = TEST_RESULT_PREDICATE)]
    predicate_type: String,
    /// Require a passing result (`passed`: a Test Result of PASSED).
    #[arg(long, value_enum)]
    require: Option<Require>,
    /// A saved envelope (JSON): verify offline, without the registry.
    #[arg(long, value_name = "FILE")]
    attestation: Option<PathBuf>,
    #[command(flatten)]
    registry: super::scanner_args::RegistryArgs,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Require {
    Passed,
}

pub(super) fn run(args: Args) -> anyhow::Result<Exit> {
    let image = Reference::parse(&args.image).map_err(|e| InvalidInput(e.to_string()))?;
    let key = PublicKey::from_file(&args.key).map_err(|e| InvalidInput(e.to_string()))?;
    let (envelopes, looked) = match &args.attestation {
        Some(path) => {
            let bytes = crate::safeio::read(path, MAX_ENVELOPE, "attestation")
                .map_err(|e| InvalidInput(e.to_string()))?;
            let shown = crate::safeio::printable(&path.display().to_string()).into_owned();
            (vec![(bytes, shown.clone())], format!("in {shown}"))
        }
        None => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let client = args.registry.client()?;
            match rt.block_on(fetch(&client, &image)) {
                Ok(found) => (
                    found,
                    format!("the .att tag and the referrers of {}", image.registry),
                ),
                Err(e) => {
                    tracing::error!("not verified: {image}: {e}");
                    return Ok(Exit::Failed);
                }
            }
        }
    };
    let wanted = Wanted {
        digest: &image.digest,
        predicate_type: &args.predicate_type,
        passed: matches!(args.require, Some(Require::Passed)),
    };
    match judge(&envelopes, &key, &wanted, &looked) {
        Ok(a) => {
            print_stdout(&format!(
                "verified: {image}\n  signed by key {}\n  predicate {}{}\n  from {}\n",
                a.key,
                a.predicate_type,
                a.result
                    .map(|r| format!(", result {r}"))
                    .unwrap_or_default(),
                a.source
            ))?;
            Ok(Exit::Success)
        }
        Err(e) => {
            tracing::error!("not verified: {image}: {e}");
            Ok(Exit::Failed)
        }
    }
}
