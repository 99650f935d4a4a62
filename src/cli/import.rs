//! `vigil import`: seal and sign HDF reports produced elsewhere (a CI job
//! that ran InSpec, a Heimdall export), so that offline verification covers
//! them too. The statement records that they were imported, by whom and
//! from where.

use std::path::PathBuf;

use sha2::{Digest, Sha256};

use super::{Exit, InvalidInput, print_stdout};
use crate::report::output::RunOutput;
use crate::seal::keys::keyid;

const AFTER_HELP: &str = "\
Examples:
  P=\"--policy-file policies/payments.yaml --policy-file policies/profiles/\"
  vigil import report.json $P --signing-key signer.key.pem --source https://ci.example/job/1
  vigil verify results/payments/RUN_ID --trusted-key signer.pub.pem

The policy gives the output directory, the age recipients, the signing key
and the threshold (or --threshold FILE). Each report becomes one target:
its platform.target_id when it has one, else imported/<file name>. Reports
are sealed as they came; vigil's waivers do not apply to them (their own
waiver_data does).";

/// Warnings printed per report before the rest are counted.
const MAX_WARNINGS: usize = 20;

/// Reports larger than this are refused.
const MAX_REPORT_BYTES: u64 = 256 * 1024 * 1024;

/// Seal and sign HDF reports produced elsewhere.
#[derive(Debug, clap::Args)]
#[command(after_help = AFTER_HELP)]
pub struct Args {
    /// HDF / InSpec JSON reports.
    #[arg(required = true, value_name = "HDF")]
    reports: Vec<PathBuf>,
    /// Policy (and profile) files or directories; exactly one ScanPolicy,
    /// or name it with --policy.
    #[arg(long = "policy-file", required = true, value_name = "PATH")]
    policy: Vec<PathBuf>,
    /// The policy to use when the files hold several.
    #[arg(long = "policy", alias = "name", value_name = "NAME")]
    name: Option<String>,
    #[command(flatten)]
    seal: super::seal_args::SealArgs,
    /// A SAF CLI threshold file that replaces the policy's threshold.
    #[arg(long, value_name = "FILE")]
    threshold: Option<PathBuf>,
    /// Where the reports come from (a CI job URL, a ticket), recorded in the statement.
    #[arg(long, value_name = "TEXT")]
    source: Option<String>,
    /// Who imports them (a person or a pipeline), recorded next to the signing key's id.
    #[arg(long, value_name = "TEXT")]
    by: Option<String>,
    /// Summary format on stdout: the table `vigil run` prints, or the
    /// summary as JSON.
    #[arg(long, value_enum, default_value_t = super::run::Format::Text)]
    format: super::run::Format,
}

pub fn run(args: Args) -> anyhow::Result<Exit> {
    let threshold = args
        .threshold
        .as_ref()
        .map(|p| super::run::read_threshold(p))
        .transpose()?;
    let (set, index) = super::load_one_policy(&args.policy, args.name.as_deref(), "--policy")?;
    let policy = &set.policies[index];
    let spec = &policy.value.spec;
    let threshold = match threshold {
        Some(t) => Some(t),
        None => crate::policy::threshold::Threshold::of_policy(spec),
    };
    let signer = args.seal.signer(policy)?;
    let recipients = args.seal.recipients(policy)?;
    // Read every report before writing anything.
    let mut files = Vec::new();
    for path in &args.reports {
        let bytes = crate::safeio::read(path, MAX_REPORT_BYTES, "report")
            .map_err(|e| InvalidInput(e.to_string()))?;
        let shown = crate::safeio::printable(&path.display().to_string()).into_owned();
        let mut warnings = 0usize;
        let doc = crate::report::import::read_each(&bytes, &mut |c| {
            // A few say what differs; a count says how much more does.
            if let Some(w) = c.saf_difference() {
                warnings += 1;
                if warnings <= MAX_WARNINGS {
                    tracing::warn!("{shown}: {w}");
                }
            }
        })
        .map_err(|e| InvalidInput(format!("{shown}: {e}")))?;
        if warnings > MAX_WARNINGS {
            tracing::warn!(
                "{shown}: {} more controls the SAF CLI counts otherwise",
                warnings - MAX_WARNINGS
            );
        }
        if doc.profiles > 1 {
            tracing::warn!(
                "{shown}: {} profiles (overlays linked as Heimdall links them): Heimdall and vigil count the controls of all of them, the SAF CLI's threshold and summary only those of the first",
                doc.profiles
            );
        }
        files.push((path.display().to_string(), bytes));
    }
    let run_id = uuid::Uuid::now_v7().to_string();
    let name = &policy.value.metadata.name;
    let output = args.seal.open_bundle(policy, &run_id, recipients)?;
    let key = signer
        .as_ref()
        .map_or_else(|| "unsigned".to_string(), |s| keyid(&s.verifying_key()));
    let imported = crate::runner::Imported {
        by: match &args.by {
            Some(who) => format!("{who} ({key})"),
            None => key,
        },
        source: args.source.clone(),
        files: files.iter().map(|(n, _)| n.clone()).collect(),
    };
    let (summary, summary_file) =
        crate::runner::import(&run_id, name, &files, threshold.as_ref(), imported, &output)
            .map_err(|e| match e {
                crate::runner::ImportError::Run(r) => anyhow::Error::from(r),
                other => anyhow::Error::from(InvalidInput(other.to_string())),
            })?;
    let policy_sha = crate::encoding::hex(&Sha256::digest(policy.source.text.as_bytes()));
    output
        .seal(&summary, &summary_file, &policy_sha, signer.as_ref(), None)
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot write the statement in {}: {e}",
                output.location().display()
            )
        })?;
    tracing::info!(
        policy = %name,
        bundle = %output.location().display(),
        "{name}: imported {} report(s) into {}",
        files.len(),
        output.location().display()
    );
    print_stdout(&match args.format {
        super::run::Format::Text => crate::report::text::table(
            &summary,
            signer.is_none(),
            crate::report::findings::Details::Failed,
            10,
        ),
        super::run::Format::Json => serde_json::to_string_pretty(&summary)? + "\n",
    })?;
    Ok(if summary.threshold_failed() {
        Exit::Failed
    } else {
        Exit::Success
    })
}
