//! `vigil merge`: one bundle from the bundles of a sharded run.

use std::path::PathBuf;

use sha2::{Digest, Sha256};

use super::{Exit, InvalidInput};
use crate::report::output::RunOutput;

const AFTER_HELP: &str = "\
Examples:
  P=\"--policy-file policies/demo.yaml --policy-file policies/profiles/\" K=fixtures/keys/demo-signing
  vigil run policies/demo.yaml policies/profiles/ --shard 0/2   # and --shard 1/2
  vigil merge SHARD_0 SHARD_1 $P --trusted-key $K.pub.pem --signing-key $K.key.pem
  vigil verify results/demo/MERGED_RUN --trusted-key $K.pub.pem

Every shard bundle must verify, come from this policy (same digest) and the
same plan, and the shards must be disjoint and complete. Shard files are
carried over as they are (not re-encrypted); the merged statement covers
every target and names each shard run.";

/// Merge the bundles of a sharded run into one signed bundle.
#[derive(Debug, clap::Args)]
#[command(after_help = AFTER_HELP)]
pub(super) struct Args {
    /// The shard bundles (directories).
    #[arg(required = true, value_name = "BUNDLE")]
    bundles: Vec<PathBuf>,
    /// The policy (and profile) files or directories the shards ran.
    #[arg(long = "policy-file", required = true, value_name = "PATH")]
    policy: Vec<PathBuf>,
    /// The policy, when the files hold several.
    #[arg(long = "policy", alias = "name", value_name = "NAME")]
    name: Option<String>,
    #[command(flatten)]
    trusted: super::trust_args::TrustedKeys,
    #[command(flatten)]
    seal: super::seal_args::SealArgs,
}

pub(super) fn run(args: Args) -> anyhow::Result<Exit> {
    let trusted = args.trusted.load()?;
    let (set, index) = super::load_one_policy(&args.policy, args.name.as_deref(), "--policy")?;
    let policy = &set.policies[index];
    let sealing = args.seal.sealing();
    let keys = sealing.keys(policy).map_err(super::seal_args::cli_error)?;
    let policy_sha = crate::encoding::hex(&Sha256::digest(policy.source.text.as_bytes()));
    let run_id = uuid::Uuid::now_v7().to_string();
    let name = &policy.value.metadata.name;
    let output = sealing
        .open_bundle(policy, &run_id, keys.recipients)
        .map_err(super::seal_args::cli_error)?;
    let merged = crate::seal::merge::merge(
        &args.bundles,
        &trusted,
        &policy_sha,
        &run_id,
        &output,
        keys.signer.as_ref(),
        crate::policy::threshold::Threshold::of_policy(&policy.value.spec)
            .map_err(|e| InvalidInput(e.to_string()))?
            .as_ref(),
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
            // Nothing half-merged stays behind: the unsealed staging
            // directory goes when `output` drops.
            // A shard that does not verify is a failed verification (exit
            // 1), like `vigil verify`; anything else is bad input (2).
            if let crate::seal::merge::MergeError::NotVerified { .. } = e {
                tracing::error!("{}", crate::safeio::printable(&e.to_string()));
                return Ok(Exit::Failed);
            }
            Err(InvalidInput(e.to_string()).into())
        }
    }
}
