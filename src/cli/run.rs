//! `vigil run`: scan the planned targets and write results.

use std::fmt::Write as _;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Mutex;

use super::{Exit, InvalidInput, print_stdout};
use crate::report::output::PlainDir;
use crate::report::threshold::Threshold;
use crate::runner::{RunOptions, RunSummary, TargetSummary, output_dir, run_policy};

const AFTER_HELP: &str = "\
Examples:
  vigil run policies/demo.yaml policies/profiles/
  vigil run policies/ --policy demo --out /tmp/results --threshold threshold.yml

Results land in OUT/<policy>/<run-id>/: one HDF file per target under
targets/ and summary.json. Exit 0 when every threshold holds, 1 when one
fails, 2 on invalid input, 3 when a target could not be scanned.";

/// Scan targets, evaluate controls, write HDF results and a summary.
#[derive(Debug, clap::Args)]
#[command(after_help = AFTER_HELP)]
pub struct Args {
    #[command(flatten)]
    input: super::PlanInput,
    /// Results directory (default: each policy's `output.dir`).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// A SAF CLI threshold file (YAML or JSON) that replaces the policies' thresholds.
    #[arg(long, value_name = "FILE")]
    threshold: Option<PathBuf>,
    /// Summary format on stdout.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Format {
    /// A table per policy.
    Text,
    /// The run summaries as JSON.
    Json,
}

/// Read a SAF threshold file.
pub fn read_threshold(path: &PathBuf) -> anyhow::Result<Threshold> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        InvalidInput(format!(
            "cannot read threshold file {}: {}",
            path.display(),
            crate::policy::source::io_reason(&e)
        ))
    })?;
    let value: serde_json::Value = serde_saphyr::from_str(&text).map_err(|e| {
        InvalidInput(format!(
            "threshold file {} is not YAML/JSON: {}",
            path.display(),
            e.without_snippet()
        ))
    })?;
    Threshold::parse(&value).map_err(|errs| {
        let msgs: Vec<String> = errs.iter().map(|e| e.message.clone()).collect();
        InvalidInput(format!(
            "threshold file {}: {}",
            path.display(),
            msgs.join("; ")
        ))
        .into()
    })
}

pub fn run(args: Args) -> anyhow::Result<Exit> {
    let threshold = args.threshold.as_ref().map(read_threshold).transpose()?;
    let (set, plan) = super::load_plan(&args.input)?;
    let mut summaries = Vec::new();
    for pp in &plan.policies {
        let policy = set
            .policies
            .iter()
            .find(|p| p.value.metadata.name == pp.policy)
            .expect("planned policies come from the set");
        let run_id = uuid::Uuid::now_v7().to_string();
        let out = output_dir(&policy.value, args.out.as_ref());
        let output = PlainDir::create(&out, &pp.policy, &run_id).map_err(|e| {
            anyhow::anyhow!(
                "cannot create results directory under {}: {e}",
                out.display()
            )
        })?;
        let opts = RunOptions {
            run_id,
            threshold: threshold.clone(),
            progress: progress(&pp.policy, pp.targets.len()),
        };
        let summary = run_policy(&set, policy, pp, &opts, &output)?;
        eprintln!(
            "vigil: {}: results in {}",
            pp.policy,
            output.location_display()
        );
        summaries.push(summary);
    }
    let text = match args.format {
        Format::Text => summaries.iter().map(table).collect::<String>(),
        Format::Json => serde_json::to_string_pretty(&summaries)? + "\n",
    };
    print_stdout(&text)?;
    Ok(if summaries.iter().any(RunSummary::has_errors) {
        Exit::RunErrors
    } else if summaries.iter().any(RunSummary::threshold_failed) {
        Exit::Failed
    } else {
        Exit::Success
    })
}

trait LocationDisplay {
    fn location_display(&self) -> String;
}

impl LocationDisplay for PlainDir {
    fn location_display(&self) -> String {
        crate::report::output::RunOutput::location(self)
            .display()
            .to_string()
    }
}

/// A progress bar on a terminal, plain lines otherwise (both on stderr).
fn progress(policy: &str, total: usize) -> Box<dyn Fn(&TargetSummary, usize, usize) + Send + Sync> {
    if std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new(total as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{prefix} [{bar:30}] {pos}/{len} {per_sec} eta {eta} {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_prefix(policy.to_string());
        let failed = Mutex::new(0usize);
        Box::new(move |s, done, total| {
            if s.status == "error" {
                *failed.lock().unwrap_or_else(|e| e.into_inner()) += 1;
            }
            bar.set_position(done as u64);
            bar.set_message(format!("errors {}", failed.lock().map_or(0, |g| *g)));
            if done == total {
                bar.finish_and_clear();
            }
        })
    } else {
        let policy = policy.to_string();
        Box::new(move |s, done, total| {
            let c = &s.counts;
            match &s.error {
                Some(e) => eprintln!("vigil: {policy} [{done}/{total}] {}: error: {e}", s.id),
                None => eprintln!(
                    "vigil: {policy} [{done}/{total}] {}: {} passed, {} failed, {} skipped, {} error, {}%",
                    s.id, c.passed, c.failed, c.skipped, c.error, s.compliance
                ),
            }
        })
    }
}

fn table(s: &RunSummary) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "policy {} run {} ({} targets)",
        s.policy,
        s.run_id,
        s.targets.len()
    );
    let w = s
        .targets
        .iter()
        .map(|t| t.id.len())
        .max()
        .unwrap_or(6)
        .max(6);
    let _ = writeln!(
        out,
        "  {:<w$}  {:<8} {:>6} {:>6} {:>7} {:>4} {:>5} {:>10}  THRESHOLD",
        "TARGET", "APPROACH", "PASSED", "FAILED", "SKIPPED", "N/A", "ERROR", "COMPLIANCE"
    );
    for t in &s.targets {
        let c = &t.counts;
        let verdict = match (&t.error, &t.threshold) {
            (Some(e), _) => format!("error: {e}"),
            (None, None) => "none".into(),
            (None, Some(v)) if v.passed => "pass".into(),
            (None, Some(v)) => {
                let failed: Vec<&str> = v
                    .checks
                    .iter()
                    .filter(|c| !c.passed)
                    .map(|c| c.detail.as_str())
                    .collect();
                format!("fail ({})", failed.join("; "))
            }
        };
        let _ = writeln!(
            out,
            "  {:<w$}  {:<8} {:>6} {:>6} {:>7} {:>4} {:>5} {:>9}%  {}",
            t.id,
            t.approach.as_str(),
            c.passed,
            c.failed,
            c.skipped,
            c.no_impact,
            c.error,
            t.compliance,
            verdict
        );
    }
    let _ = writeln!(out, "  verdict: {}\n", s.verdict);
    out
}
