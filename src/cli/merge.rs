//! `vigil merge`: one bundle from the bundles of a sharded run.

use std::path::PathBuf;

use sha2::{Digest, Sha256};

use super::{Exit, InvalidInput};
use crate::report::output::RunOutput;
use crate::seal::bundle::SealedDir;
use crate::seal::keys::{load_public_key, parse_recipients};

const AFTER_HELP: &str = "\
Examples:
  vigil merge results/payments/<shard-0-run> results/payments/<shard-1-run> \\
    --policy policies/payments.yaml --policy policies/profiles/ \\
    --trusted-key signer.pub.pem --signing-key signer.key.pem
  vigil verify results/payments/<merged-run> --trusted-key signer.pub.pem

Every shard bundle must verify, come from this policy (same digest) and the
same plan, and the shards must be disjoint and complete. Shard files are
carried over as they are (not re-encrypted); the merged statement covers
every target and names each shard run.";

/// Merge the bundles of a sharded run into one signed bundle.
#[derive(Debug, clap::Args)]
#[command(after_help = AFTER_HELP)]
pub struct Args {
    /// The shard bundles (directories).
    #[arg(required = true, value_name = "BUNDLE")]
    bundles: Vec<PathBuf>,
    /// The policy (and profile) files or directories the shards ran.
    #[arg(long = "policy", required = true, value_name = "PATH")]
    policy: Vec<PathBuf>,
    /// The policy, when the files hold several.
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    /// A trusted Ed25519 public key the shards are signed with; repeat for rotation.
    #[arg(long = "trusted-key", required = true, value_name = "PUB")]
    trusted_keys: Vec<PathBuf>,
    /// Results directory (default: the policy's `output.dir`).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Ed25519 signing key for the merged statement.
    #[arg(long, value_name = "FILE")]
    signing_key: Option<PathBuf>,
    /// Seal without a signature (`vigil verify` will reject the bundle).
    #[arg(long)]
    unsigned: bool,
    /// The shards are plaintext (run with --plaintext).
    #[arg(long)]
    plaintext: bool,
}

pub fn run(args: Args) -> anyhow::Result<Exit> {
    let trusted = args
        .trusted_keys
        .iter()
        .map(|p| load_public_key(p).map_err(|e| InvalidInput(e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    let (set, diags) = crate::policy::load(&args.policy);
    if super::report_diagnostics(&diags) {
        return Err(InvalidInput("the policies are invalid; fix the errors above".into()).into());
    }
    let candidates: Vec<_> = set
        .policies
        .iter()
        .filter(|p| {
            args.name
                .as_ref()
                .is_none_or(|n| &p.value.metadata.name == n)
        })
        .collect();
    let [policy] = candidates.as_slice() else {
        return Err(InvalidInput(format!(
            "{} policies match; pass one policy, or name it with --name",
            candidates.len()
        ))
        .into());
    };
    let signer = super::run::load_signer(args.signing_key.as_deref(), args.unsigned, policy)?;
    let recipients =
        parse_recipients(&policy.value.spec.output.recipients).map_err(InvalidInput)?;
    if recipients.is_empty() && !args.plaintext {
        return Err(InvalidInput(format!(
            "policy {} names no output.recipients; merging plaintext shards needs --plaintext",
            policy.value.metadata.name
        ))
        .into());
    }
    let policy_sha = crate::facts::frame::hex(&Sha256::digest(policy.source.text.as_bytes()));
    let run_id = uuid::Uuid::now_v7().to_string();
    let name = &policy.value.metadata.name;
    let out = crate::runner::output_dir(&policy.value, args.out.as_ref());
    let output = SealedDir::create(
        &out,
        name,
        &run_id,
        recipients,
        policy.value.spec.output.armor,
    )
    .map_err(|e| {
        anyhow::anyhow!(
            "cannot create results directory under {}: {e}",
            out.display()
        )
    })?;
    let merged = crate::seal::merge::merge(
        &args.bundles,
        &trusted,
        &policy_sha,
        &run_id,
        &output,
        signer.as_ref(),
    );
    match merged {
        Ok(_) => {
            tracing::info!(
                policy = %name,
                bundle = %output.location().display(),
                "{name}: merged {} shards into {}",
                args.bundles.len(),
                output.location().display()
            );
            println!("{}", output.location().display());
            Ok(Exit::Success)
        }
        Err(e) => {
            // Nothing half-merged stays behind.
            let _ = std::fs::remove_dir_all(output.location());
            Err(InvalidInput(e.to_string()).into())
        }
    }
}
