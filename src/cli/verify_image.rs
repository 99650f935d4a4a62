//! `vigil verify-image`: check an image's cosign signature with a public key.

use std::path::PathBuf;

use super::{Exit, InvalidInput, print_stdout};
use crate::cosign::{PublicKey, Refused};
use crate::registry::Reference;

const AFTER_HELP: &str = "\
Examples:
  IMAGE=r.example/vigil@sha256:3e795451fa14e4746ebd409fcbb9c2149745534a55d43e9b72b7475f00873e23
  vigil verify-image $IMAGE --key fixtures/cosign/key.pub --signature fixtures/cosign/sig.json
  vigil verify-image $IMAGE --key fixtures/cosign/key.pub --insecure-registry r.example

The signature is looked for under the tag sha256-<hex>.sig and through the
OCI 1.1 referrers API; with --signature, only in that file (JSON lines as
`cosign download signature` writes them), and the registry is not contacted.
Credentials come from REGISTRY_AUTH_FILE or ~/.docker/config.json.
Exit 0 when a signature by the key names the pinned digest, 1 when none
does (or the registry cannot be read), 2 on invalid input.";

/// Verify an image's cosign signature against a public key.
#[derive(Debug, clap::Args)]
#[command(after_help = AFTER_HELP)]
pub(super) struct Args {
    /// The image, pinned: NAME@sha256:<64 hex digits>.
    #[arg(value_name = "IMAGE")]
    image: String,
    /// The signer's public key: PEM, ECDSA P-256 (cosign.pub) or Ed25519.
    #[arg(long, value_name = "PUB")]
    key: PathBuf,
    /// A saved signature (`cosign download signature` output): verify
    /// offline, without contacting the registry.
    #[arg(long, value_name = "FILE")]
    signature: Option<PathBuf>,
    #[command(flatten)]
    registry: super::scanner_args::RegistryArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Format {
    Text,
    Json,
}

pub(super) fn run(args: Args) -> anyhow::Result<Exit> {
    let image = Reference::parse(&args.image).map_err(|e| InvalidInput(e.to_string()))?;
    let key = PublicKey::from_file(&args.key).map_err(|e| InvalidInput(e.to_string()))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let client = args.registry.client()?;
    let outcome = rt.block_on(crate::cosign::verify(
        &client,
        &image,
        &key,
        args.signature.as_deref(),
    ));
    match outcome {
        Ok(v) => {
            print_stdout(&match args.format {
                Format::Json => serde_json::to_string_pretty(&v)? + "\n",
                Format::Text => format!(
                    "verified: {}\n  signed by key {} ({})\n  signature {} from {}\n",
                    v.image, v.key, v.algorithm, v.signature, v.source
                ),
            })?;
            Ok(Exit::Success)
        }
        Err(e @ Refused::SignatureFile { .. }) => Err(InvalidInput(e.to_string()).into()),
        Err(e) => {
            if matches!(args.format, Format::Json) {
                let out = serde_json::json!({"image": image.to_string(), "verified": false, "error": e.to_string()});
                print_stdout(&(serde_json::to_string_pretty(&out)? + "\n"))?;
            }
            tracing::error!("not verified: {e}");
            Ok(Exit::Failed)
        }
    }
}
