//! `vigil render sidecar`: the patch that adds vigil's sidecar.

use super::super::{Exit, print_stdout};

pub(super) const SIDECAR_HELP: &str = "\
Examples:
  vigil render sidecar policies/shop.yaml --run-as-user 101 > patch.yaml
  kubectl patch deployment web --patch-file patch.yaml
  vigil render sidecar policies/shop.yaml --workload deployment/web > kustomize-patch.yaml

The sidecar must run as the uid and gid of the containers it scans
(--run-as-user, --run-as-group): reading another process's /proc/<pid>/root
needs the same uid and gid (and, for root, at least its capabilities) or
CAP_SYS_PTRACE, which vigil never asks for. The sidecar drops every
capability, so a root sidecar (--run-as-user 0) reads only root containers
that drop ALL too; `vigil plan` sends the containers a sidecar cannot read
to the debug approach and says why. Changing a pod template restarts the
workload's pods.";

/// Options of `vigil render sidecar`.
#[derive(Debug, clap::Args)]
pub(super) struct SidecarArgs {
    /// Policy files or directories (the sidecar settings come from spec.sidecar).
    #[arg(value_name = "POLICY")]
    paths: Vec<std::path::PathBuf>,
    /// The policy to take spec.sidecar from, when the files hold several.
    #[arg(long = "policy", value_name = "NAME")]
    only: Option<String>,
    /// The sidecar's container name (default: the policy's, or vigil-scanner).
    #[arg(long, value_name = "NAME")]
    container: Option<String>,
    /// The scanner image, pinned by digest (default: the policy's spec.sidecar.image).
    #[arg(long = "scanner-image", alias = "image", value_name = "IMAGE")]
    image: Option<String>,
    /// The uid the sidecar runs as: the uid of the containers it scans
    /// (Linux lets it read their roots only as their uid and gid).
    #[arg(long, value_name = "UID", default_value_t = 65532)]
    run_as_user: i64,
    /// The gid the sidecar runs as: the gid of the containers it scans
    /// (default: the same number as --run-as-user).
    #[arg(long, value_name = "GID")]
    run_as_group: Option<i64>,
    /// Make a kustomize patch for this workload: KIND/NAME, e.g. deployment/web.
    #[arg(long, value_name = "KIND/NAME")]
    workload: Option<String>,
}

pub(super) fn sidecar(args: SidecarArgs) -> anyhow::Result<Exit> {
    let set = if args.paths.is_empty() {
        None
    } else {
        Some(super::super::input::load_one_policy_without_profiles(
            &args.paths,
            args.only.as_deref(),
            "--policy",
        )?)
    };
    let policy = set.as_ref().map(|(set, i)| &set.policies[*i].value);
    let request = crate::plan::manifests::SidecarRequest {
        container: args.container,
        image: args.image,
        run_as_user: args.run_as_user,
        run_as_group: args.run_as_group,
        workload: args.workload,
    };
    if args.run_as_user == 0 {
        tracing::warn!(
            "a root sidecar holds no capability, and Linux lets it read a root container only if that container holds none either (capabilities.drop: [ALL]); root containers that keep capabilities are scanned with the debug approach (see docs/kubernetes.md, \"The sidecar approach\")"
        );
    }
    let patch = crate::plan::manifests::render_sidecar(policy, request)
        .map_err(|e| super::super::InvalidInput(e.to_string()))?;
    print_stdout(&serde_saphyr::to_string(&patch)?)?;
    Ok(Exit::Success)
}
