//! `vigil import`: seal and sign HDF reports produced elsewhere (a CI job
//! that ran InSpec, a Heimdall export), so that offline verification covers
//! them too. The statement records that they were imported, by whom and
//! from where.

use std::path::PathBuf;

use super::{Exit, InvalidInput, print_stdout};
use crate::runner::ImportError;

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
pub(super) struct Args {
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

pub(super) fn run(args: Args) -> anyhow::Result<Exit> {
    let threshold = args
        .threshold
        .as_ref()
        .map(|p| super::run::read_threshold(p))
        .transpose()?;
    let (set, index) = super::load_one_policy(&args.policy, args.name.as_deref(), "--policy")?;
    // Read every report before writing anything.
    let files = args
        .reports
        .iter()
        .map(|path| read_report(path))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let sealed = crate::runner::pipeline::import_reports(&crate::runner::pipeline::ImportRequest {
        policy: &set.policies[index],
        files: &files,
        threshold,
        sealing: args.seal.sealing(),
        source: args.source.clone(),
        by: args.by.clone(),
    })
    .map_err(|e| match e {
        ImportError::Run(r) => anyhow::Error::from(r),
        ImportError::Sealing(s) if !s.is_bad_input() => anyhow::Error::from(s),
        other => anyhow::Error::from(InvalidInput(other.to_string())),
    })?;
    let summary = &sealed.summary;
    print_stdout(&match args.format {
        super::run::Format::Text => crate::report::text::table(
            summary,
            sealed.unsigned,
            crate::report::findings::Details::Failed,
            10,
        ),
        super::run::Format::Json => serde_json::to_string_pretty(summary)? + "\n",
    })?;
    Ok(if summary.threshold_failed() {
        Exit::Failed
    } else {
        Exit::Success
    })
}

/// One report as read: its name and bytes, after its HDF is checked and
/// its departures from the SAF CLI's reading warned about.
fn read_report(path: &std::path::Path) -> anyhow::Result<(String, Vec<u8>)> {
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
    if doc.saf_uncounted > 0 {
        tracing::warn!(
            "{shown}: {} profiles: Heimdall and vigil count the controls of all of them (overlays linked as Heimdall links them), the SAF CLI's threshold and summary only the first profile's, {} fewer",
            doc.profiles,
            doc.saf_uncounted
        );
    }
    Ok((path.display().to_string(), bytes))
}
