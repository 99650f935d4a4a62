//! `vigil drift`: compare running containers with the scans of their images.

use std::path::PathBuf;

use super::{Exit, InvalidInput, print_stdout};

const AFTER_HELP: &str = "\
Examples:
  vigil drift IMAGE_BUNDLE RUNTIME_BUNDLE --trusted-key signer.pub.pem --identity age.key
  vigil drift IMAGE_BUNDLE RUNTIME_BUNDLE --trusted-key signer.pub.pem --format json --fail-on-drift

Both bundles must verify. Each container of the runtime bundle whose
kubelet-reported image digest (imageID) is an image target of the image
bundle is compared with it: controls whose status changed, and files and
packages added, removed or modified at runtime, within the paths both scans
looked at. --out FILE --signing-key KEY writes the report as a signed
in-toto statement over both bundles' statements. Exit 0, or 1 with
--fail-on-drift when anything drifted; 2 on invalid input, and when
nothing was compared (bundles of the wrong kind, or no container runs a
scanned image).";

/// Compare running containers with the scans of their images.
#[derive(Debug, clap::Args)]
#[command(after_help = AFTER_HELP)]
pub(super) struct Args {
    /// A bundle of image scans (`image:` targets or `vigil run --image`).
    #[arg(value_name = "IMAGE_BUNDLE")]
    image: PathBuf,
    /// A bundle of a cluster run.
    #[arg(value_name = "RUNTIME_BUNDLE")]
    runtime: PathBuf,
    #[command(flatten)]
    trusted: super::trust_args::TrustedKeys,
    #[command(flatten)]
    identities: super::trust_args::Identities,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Exit 1 when anything drifted.
    #[arg(long)]
    fail_on_drift: bool,
    /// Write the report, signed, to FILE (a DSSE envelope; needs
    /// --signing-key). `--out` is its old name.
    #[arg(
        long = "attestation",
        alias = "out",
        value_name = "FILE",
        requires = "signing_key"
    )]
    out: Option<PathBuf>,
    /// The Ed25519 key that signs the report.
    #[arg(long, value_name = "FILE")]
    signing_key: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Format {
    Text,
    Json,
}

pub(super) fn run(args: Args) -> anyhow::Result<Exit> {
    let trusted = args.trusted.load()?;
    let identities = args.identities.load()?;
    let signer = args
        .signing_key
        .as_deref()
        .map(crate::seal::keys::Signer::from_file)
        .transpose()
        .map_err(|e| InvalidInput(e.to_string()))?;
    let (drifts, statements) =
        crate::seal::drift::drift(&args.image, &args.runtime, &trusted, &identities)
            .map_err(|e| InvalidInput(e.to_string()))?;
    if let (Some(out), Some(signer)) = (&args.out, &signer) {
        let bytes = crate::seal::drift::signed_report(&drifts, &statements, signer);
        crate::safeio::write_private_new(out, &bytes).map_err(|e| {
            InvalidInput(format!(
                "cannot write {}: {}",
                out.display(),
                crate::safeio::io_reason(&e)
            ))
        })?;
    }
    print_stdout(&match args.format {
        Format::Text => crate::report::drift::render(&drifts),
        Format::Json => serde_json::to_string_pretty(&drifts)? + "\n",
    })?;
    Ok(
        if args.fail_on_drift && drifts.iter().any(|d| d.drifted()) {
            Exit::Failed
        } else {
            Exit::Success
        },
    )
}
