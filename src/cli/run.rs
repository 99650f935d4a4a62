//! `vigil run`: scan the planned targets and write results.

use std::path::PathBuf;

use super::{Exit, InvalidInput};
use crate::policy::threshold::Threshold;
use crate::report::view::ReportRun;
use crate::runner::pipeline::SealedRun;

const AFTER_HELP: &str = "\
Examples:
  vigil run policies/demo.yaml policies/profiles/
  vigil run policies/ --policy demo --out /tmp/results --threshold threshold.yml
  vigil run policies/demo.yaml policies/profiles/ --image oci-dir:fixtures/images/demo:v1
  vigil run examples/manifests/policy.yaml policies/profiles/ --manifest examples/manifests/k8s

Results land in OUT/<policy>/<run-id>/, a sealed bundle: one age-encrypted
HDF file per target under targets/, summary.json.age, and, written last,
statement.dsse.json (an in-toto statement signed with ed25519). Check it with
`vigil verify`, read it with `vigil open`. Exit 0 when every threshold holds,
1 when one fails, 2 on invalid input, 3 when a target could not be scanned.";

/// Scan targets, evaluate controls, write HDF results and a summary.
#[derive(Debug, clap::Args)]
// A run makes its own run id: `--run-id` (plan and render) is not shown,
// and given anyway it is refused with the reason.
#[command(after_help = AFTER_HELP, mut_arg("run_id", |a| a.hide(true)))]
pub(super) struct Args {
    #[command(flatten)]
    input: super::PlanInput,
    #[command(flatten)]
    seal: super::seal_args::SealArgs,
    #[command(flatten)]
    scanner: super::scanner_args::ScannerArgs,
    /// A SAF CLI threshold file (YAML or JSON) that replaces the policies' thresholds.
    #[arg(long, value_name = "FILE")]
    threshold: Option<PathBuf>,
    /// Summary format on stdout.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Which failed and error controls to list under each target: of
    /// targets that fail their threshold or have errors (failed), of every
    /// target (all), or none.
    #[arg(long, value_enum, default_value_t = crate::report::findings::Details::Failed)]
    details: crate::report::findings::Details,
    /// At most this many controls listed per target ("and N more").
    #[arg(long, value_name = "N", default_value_t = 10)]
    details_limit: usize,
    /// Also write a report, in plaintext (the sealed bundle stays the
    /// record): junit=PATH (JUnit XML), sarif=PATH (SARIF 2.1.0),
    /// markdown=PATH or oscal=PATH (OSCAL 1.1 assessment results);
    /// repeatable.
    #[arg(long = "report", value_name = "FORMAT=PATH")]
    reports: Vec<crate::report::ci::Request>,
    /// Replace --report files that exist (regular files only; without it,
    /// reports never overwrite).
    #[arg(long)]
    force: bool,
    /// A label for this run (a pipeline id, for example): put on every
    /// Kubernetes object the run creates and recorded in the signed
    /// statement; repeatable.
    #[arg(long = "run-label", value_name = "KEY=VALUE", value_parser = crate::policy::selector::parse_run_label)]
    run_labels: Vec<(String, String)>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(super) enum Format {
    /// A table per policy.
    Text,
    /// The run summaries as JSON.
    Json,
}

/// A SAF threshold file (`--threshold FILE`), its departures from what
/// the SAF CLI accepts warned about.
pub(super) fn read_threshold(path: &std::path::Path) -> anyhow::Result<Threshold> {
    let (threshold, warnings) =
        crate::policy::threshold::read_file(path).map_err(|e| InvalidInput(e.to_string()))?;
    for w in warnings {
        tracing::warn!("{w}");
    }
    Ok(threshold)
}

pub(super) fn run(args: Args) -> anyhow::Result<Exit> {
    let threshold = args
        .threshold
        .as_ref()
        .map(|p| read_threshold(p))
        .transpose()?;
    // One run id for this invocation: it names the per-run access objects
    // (planned below), the bundles and the audit log, so concurrent runs —
    // shards of one plan included — never collide.
    let mut args = args;
    if args.input.run_id != "plan" {
        return Err(InvalidInput(
            "vigil run takes a fresh UUIDv7 run id for every run (it names the bundle and the access objects, so two runs never collide); --run-id is for plan and render".into(),
        )
        .into());
    }
    crate::report::ci::check_paths(&args.reports, args.force)
        .map_err(|e| InvalidInput(e.to_string()))?;
    let run_id = uuid::Uuid::now_v7().to_string();
    args.input.run_id = run_id.clone();
    let scanner = args.scanner.trust()?;
    let (set, plan, session) = super::load_plan(&args.input)?;
    let request = crate::runner::pipeline::RunRequest {
        set: &set,
        plan: &plan,
        session: session.as_ref(),
        sealing: args.seal.sealing(),
        run_id,
        labels: args.run_labels.iter().cloned().collect(),
        threshold,
        scanner,
        keep_controls: !args.reports.is_empty(),
        progress: &super::progress::progress,
    };
    let summaries = crate::runner::pipeline::run_policies(&request).map_err(|e| {
        if e.is_bad_input() {
            anyhow::Error::from(InvalidInput(e.to_string()))
        } else {
            anyhow::Error::from(e)
        }
    })?;
    print_summaries(&args, &summaries)?;
    if args.reports.is_empty() {
        return Ok(exit_of(&summaries));
    }
    let all = summaries
        .iter()
        .map(|s| ReportRun::try_from(&s.summary))
        .collect::<Result<Vec<_>, _>>()?;
    let policy_files = set
        .policies
        .iter()
        .map(|p| {
            (
                p.value.metadata.name.clone(),
                p.source.path.display().to_string(),
            )
        })
        .collect();
    crate::report::ci::write(
        &args.reports,
        &all,
        &crate::report::ci::locations(&set),
        &policy_files,
        args.force,
    )?;
    Ok(exit_of(&summaries))
}

/// Print the runs' summaries to stdout in the chosen format.
fn print_summaries(args: &Args, summaries: &[SealedRun]) -> anyhow::Result<()> {
    match args.format {
        // Streamed too: a table line and its findings at a time.
        Format::Text => {
            let mut out = crate::report::output::TextTo::new(std::io::stdout().lock());
            for s in summaries {
                let written = crate::report::text::write_table(
                    &mut out,
                    &s.summary,
                    s.unsigned,
                    args.details,
                    args.details_limit,
                );
                if written.is_err() {
                    break;
                }
            }
            out.finish()?;
        }
        // Streamed: a big run's summaries are never held whole as text.
        Format::Json => {
            use std::io::Write as _;
            let stdout = std::io::stdout();
            let mut w = stdout.lock();
            crate::report::output::write_json_pretty(
                &mut w,
                &summaries.iter().map(|s| &s.summary).collect::<Vec<_>>(),
            )?;
            w.write_all(b"\n")?;
            w.flush()?;
        }
    }
    Ok(())
}

/// How `vigil run` exits after its runs.
fn exit_of(summaries: &[SealedRun]) -> Exit {
    if summaries.iter().any(|s| s.summary.has_errors()) {
        Exit::RunErrors
    } else if summaries.iter().any(|s| s.summary.threshold_failed()) {
        Exit::Failed
    } else {
        Exit::Success
    }
}
