//! `vigil attest`: the standard verdict of a verified bundle, per image,
//! as an in-toto Test Result attestation (and stored next to the image).

use std::path::PathBuf;

use super::{Exit, InvalidInput, print_stdout};

const AFTER_HELP: &str = "\
Examples:
  K=fixtures/keys/demo-signing
  vigil attest IMAGE_BUNDLE --trusted-key $K.pub.pem --signing-key $K.key.pem --out verdicts
  vigil attest IMAGE_BUNDLE --trusted-key $K.pub.pem --signing-key $K.key.pem --push

Per image digest the bundle scanned (image targets; containers by their
kubelet's imageID), writes OUT/sha256-<hex>.intoto.json: a DSSE envelope
over an in-toto statement whose subject is the digest and whose predicate
is the in-toto Test Result (result PASSED, WARNED or FAILED; the controls
passed, not reviewed and failed; the policy and the bundle's statement by
digest). The bundle must verify first. --push stores each one next to its
image as `cosign attest` does (the sha256-<hex>.att tag, and an OCI 1.1
referrer where the registry offers the API); images read from a registry
only. Exit 0 when every verdict was written (and pushed), whatever the
verdicts say; 1 when the bundle does not verify or a push fails.";

/// Write (and push) the standard verdict attestation of a bundle's images.
#[derive(Debug, clap::Args)]
#[command(after_help = AFTER_HELP)]
pub(super) struct Args {
    /// The bundle (a sealed run's directory).
    #[arg(value_name = "BUNDLE")]
    bundle: PathBuf,
    #[command(flatten)]
    trusted: super::trust_args::TrustedKeys,
    #[command(flatten)]
    identities: super::trust_args::Identities,
    /// The Ed25519 private key (PKCS#8 PEM) that signs the attestations.
    #[arg(long = "signing-key", value_name = "FILE")]
    signing_key: PathBuf,
    /// Where the envelopes are written.
    #[arg(long, value_name = "DIR", default_value = "attestations")]
    out: PathBuf,
    /// A link to the run (a CI job, say), recorded as the predicate's url.
    #[arg(long, value_name = "URL")]
    url: Option<String>,
    /// Also store each attestation in its image's registry.
    #[arg(long)]
    push: bool,
    #[command(flatten)]
    registry: super::scanner_args::RegistryArgs,
}

pub(super) fn run(args: Args) -> anyhow::Result<Exit> {
    let trusted = args.trusted.load()?;
    let identities = args.identities.load()?;
    let signer = crate::seal::keys::Signer::from_file(&args.signing_key)
        .map_err(|e| InvalidInput(e.to_string()))?;
    let verdicts = match crate::seal::verdict::attest(
        &args.bundle,
        &trusted,
        &identities,
        &signer,
        args.url.as_deref(),
    ) {
        Ok(v) => v,
        Err(e @ crate::seal::verdict::VerdictError::NotVerified(_)) => {
            tracing::error!("{e}");
            return Ok(Exit::Failed);
        }
        Err(e) => return Err(InvalidInput(e.to_string()).into()),
    };
    std::fs::create_dir_all(&args.out)?;
    let mut out = String::new();
    for v in &verdicts {
        let file = args
            .out
            .join(format!("{}.intoto.json", v.digest.replace(':', "-")));
        crate::safeio::write_private(&file, &v.envelope, true)?;
        out.push_str(&format!("{} {} {}\n", v.digest, v.result, file.display()));
    }
    print_stdout(&out)?;
    if args.push {
        return push(&args, &verdicts);
    }
    Ok(Exit::Success)
}

/// Store each verdict next to its image; one whose repository the bundle
/// does not name is said, and fails the command.
fn push(args: &Args, verdicts: &[crate::seal::verdict::ImageVerdict]) -> anyhow::Result<Exit> {
    use crate::registry::Reference;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let client = args.registry.client()?;
    let mut exit = Exit::Success;
    for v in verdicts {
        let Some(repo) = &v.repository else {
            tracing::error!(
                "{}: not pushed: the bundle does not name its repository (only images read from a registry are)",
                v.digest
            );
            exit = Exit::Failed;
            continue;
        };
        for digest in std::iter::once(&v.digest).chain(&v.also) {
            let image = Reference::parse(&format!("{repo}@{digest}"))
                .map_err(|e| InvalidInput(e.to_string()))?;
            let stored = rt.block_on(crate::cosign::attestation::store(
                &client,
                &image,
                &v.envelope,
                crate::cosign::attestation::TEST_RESULT_PREDICATE,
            ));
            match stored {
                Ok(s) => print_stdout(&format!(
                    "pushed {} to {}{}\n",
                    s.layer,
                    s.tag,
                    s.referrer
                        .map(|r| format!(" and referrer {r}"))
                        .unwrap_or_default()
                ))?,
                Err(e) => {
                    tracing::error!("{image}: not pushed: {e}");
                    exit = Exit::Failed;
                }
            }
        }
    }
    Ok(exit)
}
