//! What `plan`, `render` and `run` plan from (`PlanInput`), the cluster
//! session `gc` and runs use, and the one policy `import`, `merge` and
//! `render` pick: arguments in, library calls out, diagnostics printed.

use super::{InvalidInput, report_diagnostics};
use crate::diag::Diagnostic;

/// Inputs shared by `plan` and `render`.
#[derive(Debug, clap::Args)]
pub(super) struct PlanInput {
    /// Policy and profile files or directories.
    #[arg(required = true, value_name = "POLICY")]
    paths: Vec<std::path::PathBuf>,
    /// Cluster snapshot: the JSON of `kubectl get pods -A -o json`.
    #[arg(long, value_name = "FILE")]
    inventory: Option<std::path::PathBuf>,
    /// Only these policies (by metadata.name); all when not given.
    #[arg(long = "policy", value_name = "NAME")]
    only: Vec<String>,
    /// Run id used in per-run object names (a real run uses a fresh UUIDv7).
    #[arg(long, value_name = "ID", default_value = "plan")]
    pub(super) run_id: String,
    /// Accept a kubeconfig that disables TLS verification of the API server.
    #[arg(long)]
    insecure_skip_tls_verify: bool,
    /// Only shard I of N (0-based): the targets whose stable hash falls in
    /// it, e.g. `--shard $JOB_COMPLETION_INDEX/4` in an Indexed Job.
    #[arg(long, value_name = "I/N")]
    shard: Option<String>,
    /// Name the run's access objects after its slot (`run`, or `s<I>` with
    /// --shard), not its id, and replace leftovers of an interrupted run:
    /// for in-cluster runs (one at a time per slot), whose runner's Role is
    /// pinned to those names. Set by `vigil render cronjob|job`.
    #[arg(long)]
    stable_names: bool,
    /// Scan this image instead of the policies' targets (the policies
    /// still give profiles, thresholds and output): oci-dir:PATH[:TAG],
    /// oci-archive:FILE[:TAG], docker-archive:FILE or registry:REF@sha256:…;
    /// repeatable.
    #[arg(long = "image", value_name = "SOURCE")]
    images: Vec<String>,
    /// Check these workload manifests instead of the policies' targets (a
    /// YAML or JSON file, a directory of them, or - for standard input):
    /// each Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, Job and
    /// CronJob is a target, judged by the policies' workload controls;
    /// repeatable.
    #[arg(long = "manifest", value_name = "PATH")]
    manifests: Vec<String>,
}

pub(crate) use crate::runner::session::Session;

/// A session error as the CLI reports it (bad input exits 2).
pub(super) fn session_error(e: crate::runner::session::SessionError) -> anyhow::Error {
    if e.is_bad_input() {
        InvalidInput(e.to_string()).into()
    } else {
        e.into()
    }
}

/// Connect as the kubeconfig's identity (for `vigil gc`, which has no
/// offline mode: the cluster error alone, without the planner's
/// `--inventory` hint).
pub(super) fn connect(context: Option<&str>, insecure: bool) -> anyhow::Result<Session> {
    Session::connect(context, insecure).map_err(|e| match e {
        crate::runner::session::SessionError::NoCluster(c) => InvalidInput(c.to_string()).into(),
        other => session_error(other),
    })
}

/// Load policies and the inventory and compute the plan; diagnostics go to
/// stderr, and any error becomes [`InvalidInput`].
pub(super) fn load_plan(
    input: &PlanInput,
) -> anyhow::Result<(crate::policy::PolicySet, crate::plan::Plan, Option<Session>)> {
    use crate::runner::session::PlanError;
    let request = crate::runner::session::PlanRequest {
        inventory: input.inventory.clone(),
        only: input.only.clone(),
        insecure: input.insecure_skip_tls_verify,
        shard: input.shard.clone(),
        run_id: input.run_id.clone(),
        stable_names: input.stable_names,
        images: input
            .images
            .iter()
            .map(|s| {
                crate::image::Source::parse(s, std::path::Path::new("."))
                    .map(|src| src.spec())
                    .map_err(|e| InvalidInput(e.to_string()))
            })
            .collect::<Result<_, _>>()?,
        manifests: input
            .manifests
            .iter()
            .map(|m| {
                if m == "-" {
                    return Ok(m.clone());
                }
                std::path::absolute(m)
                    .map(|p| p.display().to_string())
                    .map_err(|e| InvalidInput(format!("--manifest {m}: {e}")))
            })
            .collect::<Result<_, _>>()?,
    };
    let planned = crate::runner::session::load(&input.paths).and_then(|(set, warnings)| {
        report_diagnostics(&warnings);
        crate::runner::session::plan(set, &request)
    });
    match planned {
        Ok(planned) => {
            report_diagnostics(&planned.warnings);
            // A plan of no policy does nothing; a pipeline whose path is
            // mistyped must not pass its gate on it.
            if planned.plan.policies.is_empty() {
                let given: Vec<String> = input
                    .paths
                    .iter()
                    .map(|p| crate::safeio::printable(&p.display().to_string()).into_owned())
                    .collect();
                return Err(InvalidInput(format!(
                    "no ScanPolicy to plan or run in {}{}: give a policy file (kind: ScanPolicy) as well as its profiles",
                    given.join(", "),
                    if input.only.is_empty() {
                        String::new()
                    } else {
                        format!(" named {}", input.only.join(", "))
                    }
                ))
                .into());
            }
            Ok((planned.set, planned.plan, planned.session))
        }
        Err(PlanError::Policies(diags)) => {
            report_diagnostics(&diags);
            Err(InvalidInput(
                "the policies are invalid; fix the errors above (`vigil validate` shows them too)"
                    .into(),
            )
            .into())
        }
        Err(PlanError::Plan(diags)) => {
            report_diagnostics(&diags);
            Err(InvalidInput("cannot plan; fix the errors above".into()).into())
        }
        Err(PlanError::Session(e)) => Err(session_error(e)),
        Err(e) => Err(InvalidInput(e.to_string()).into()),
    }
}

/// Load policy files and pick the one policy a command works on: the only
/// one, or the one called `name`. Returns the set and the policy's index.
pub(super) fn load_one_policy(
    paths: &[std::path::PathBuf],
    name: Option<&str>,
    flag: &str,
) -> anyhow::Result<(crate::policy::PolicySet, usize)> {
    pick_policy(crate::policy::load(paths), name, flag)
}

/// [`load_one_policy`] for commands that use no profile (`render sidecar`
/// reads only the policy's sidecar settings): profiles that are not loaded,
/// and waivers naming their controls, are no error there.
pub(super) fn load_one_policy_without_profiles(
    paths: &[std::path::PathBuf],
    name: Option<&str>,
    flag: &str,
) -> anyhow::Result<(crate::policy::PolicySet, usize)> {
    let (set, mut diags) = crate::policy::load(paths);
    diags.retain(|d| !matches!(d.code, "unresolved-profile" | "unknown-control"));
    pick_policy((set, diags), name, flag)
}

fn pick_policy(
    (set, diags): (crate::policy::PolicySet, Vec<Diagnostic>),
    name: Option<&str>,
    flag: &str,
) -> anyhow::Result<(crate::policy::PolicySet, usize)> {
    if report_diagnostics(&diags) {
        return Err(InvalidInput("the policies are invalid; fix the errors above".into()).into());
    }
    let matching: Vec<usize> = set
        .policies
        .iter()
        .enumerate()
        .filter(|(_, p)| name.is_none_or(|n| p.value.metadata.name == n))
        .map(|(i, _)| i)
        .collect();
    match matching.as_slice() {
        [i] => Ok((set, *i)),
        _ => Err(InvalidInput(format!(
            "{} policies match; pass one policy, or name it with {flag}",
            matching.len()
        ))
        .into()),
    }
}
