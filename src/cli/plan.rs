//! `vigil plan`: show what a run will scan and which objects it will create.

use std::fmt::Write as _;

use super::{Exit, print_stdout};
use crate::plan::{Plan, PolicyPlan};

const AFTER_HELP: &str = "\
Examples:
  vigil plan policies/ --inventory fixtures/cluster/snapshot.json
  vigil plan policies/ --inventory snapshot.json --policy payments --format json

The inventory is the JSON of `kubectl get pods -A -o json`. Output is sorted,
so plans diff cleanly in pull requests.";

/// Resolve targets offline and show approach, profiles, RBAC objects and batches.
#[derive(Debug, clap::Args)]
#[command(after_help = AFTER_HELP)]
pub(super) struct Args {
    #[command(flatten)]
    pub input: super::PlanInput,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Format {
    /// A readable summary.
    Text,
    /// The full plan as JSON.
    Json,
    /// The full plan as YAML.
    Yaml,
}

pub(super) fn run(args: Args) -> anyhow::Result<Exit> {
    let (_, plan, _) = super::load_plan(&args.input)?;
    let text = match args.format {
        Format::Text => render_text(&plan),
        Format::Json => serde_json::to_string_pretty(&plan)? + "\n",
        Format::Yaml => serde_saphyr::to_string(&plan)?,
    };
    print_stdout(&text)?;
    Ok(Exit::Success)
}

fn render_text(plan: &Plan) -> String {
    let mut out = String::new();
    for p in &plan.policies {
        policy_text(p, &mut out);
    }
    out
}

fn policy_text(p: &PolicyPlan, out: &mut String) {
    // Access is worth a line only for targets in a cluster; a provisioned
    // ServiceAccount is used, not created.
    let in_cluster = p.targets.iter().any(|t| !t.approach.is_local());
    let access = match (in_cluster, p.access_mode) {
        (false, _) => "local targets only: no Kubernetes access".to_string(),
        (true, crate::policy::model::AccessMode::PerRun) => format!(
            "creates ServiceAccount {} for the run (token TTL {})",
            p.service_account, p.token_ttl
        ),
        (true, crate::policy::model::AccessMode::Provisioned) => format!(
            "uses the pre-applied ServiceAccount {} (token TTL {})",
            p.service_account, p.token_ttl
        ),
    };
    let _ = writeln!(
        out,
        "policy {}: {} target(s), {access}",
        p.policy,
        p.targets.len(),
    );
    let id_w = p
        .targets
        .iter()
        .map(|t| t.id.len())
        .max()
        .unwrap_or(6)
        .max(6);
    let _ = writeln!(
        out,
        "  {:<id_w$}  {:<8} {:<28} REASON",
        "TARGET", "APPROACH", "PROFILES"
    );
    for t in &p.targets {
        let _ = writeln!(
            out,
            "  {:<id_w$}  {:<8} {:<28} {}",
            t.id,
            t.approach.as_str(),
            t.profiles.join(","),
            t.reason
        );
    }
    if !p.skipped.is_empty() {
        let _ = writeln!(out, "  skipped:");
        for s in &p.skipped {
            let _ = writeln!(out, "    {}: {}", s.id, s.reason);
        }
    }
    if !p.caller_reads.is_empty() {
        let _ = writeln!(
            out,
            "  read while planning, as you (workload controls ask):"
        );
        for r in &p.caller_reads {
            let _ = writeln!(out, "    {r}");
        }
    }
    for a in &p.access {
        let ns = match &a.cluster {
            Some(c) => format!("{c}/{}", a.namespace),
            None => a.namespace.clone(),
        };
        let _ = writeln!(
            out,
            "  namespace {ns}: creates ServiceAccount, Role and RoleBinding {}",
            p.service_account
        );
        for r in a.role.rules.iter().flatten() {
            let _ = writeln!(
                out,
                "    {} {} on {}",
                r.verbs.join(","),
                r.resources.as_deref().unwrap_or_default().join(","),
                r.resource_names.as_deref().unwrap_or_default().join(", ")
            );
        }
    }
    for s in &p.scanner_images {
        let check = match (&s.key, &s.signature) {
            (Some(k), Some(sig)) if sig == "registry" => {
                format!("its cosign signature is checked with key {k} before use")
            }
            (Some(k), Some(sig)) => format!(
                "its cosign signature ({}) is checked with key {k} before use",
                crate::safeio::printable(sig)
            ),
            _ => "its signature is not checked (set verify, or run with --scanner-key)".into(),
        };
        let _ = writeln!(out, "  {} scanner image {}: {check}", s.role, s.image);
    }
    let mut lim = format!("concurrency {}", p.limits.concurrency);
    if let Some(n) = p.limits.per_namespace {
        let _ = write!(lim, ", perNamespace {n}");
    }
    if let Some(n) = p.limits.per_node {
        let _ = write!(lim, ", perNode {n}");
    }
    let _ = writeln!(
        out,
        "  batches: {} ({lim}; scanTimeout {}, runDeadline {})",
        p.batches.len(),
        p.limits.scan_timeout,
        p.limits.run_deadline
    );
    for (i, b) in p.batches.iter().enumerate() {
        let _ = writeln!(out, "    {}: {}", i + 1, b.join(" "));
    }
    out.push('\n');
}
