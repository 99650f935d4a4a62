//! `vigil render`: print Kubernetes manifests derived from policies.

use super::{Exit, print_stdout};

const AFTER_HELP: &str = "\
Examples:
  vigil render rbac policies/ --inventory fixtures/cluster/snapshot.json | kubectl apply -f -
  vigil render rbac policies/ --inventory snapshot.json --policy payments";

/// Print Kubernetes manifests derived from policies.
#[derive(Debug, clap::Args)]
#[command(after_help = AFTER_HELP)]
pub struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(Debug, clap::Subcommand)]
enum What {
    /// The ServiceAccounts, Roles and RoleBindings a run uses, as applyable YAML.
    ///
    /// For `access.mode: provisioned` this is what the platform team applies
    /// once (for example through GitOps); each run then only requests a
    /// short-lived token for the ServiceAccount.
    #[command(after_help = AFTER_HELP)]
    Rbac(super::PlanInput),
}

pub fn run(args: Args) -> anyhow::Result<Exit> {
    match args.what {
        What::Rbac(input) => {
            let (_, plan, _) = super::load_plan(&input)?;
            print_stdout(&rbac_yaml(&plan)?)?;
            Ok(Exit::Success)
        }
    }
}

/// Multi-document YAML: per policy and namespace, ServiceAccount, Role, RoleBinding.
pub fn rbac_yaml(plan: &crate::plan::Plan) -> anyhow::Result<String> {
    let mut out = String::new();
    for p in &plan.policies {
        for a in &p.access {
            out.push_str(&format!(
                "# vigil policy {}, namespace {}\n",
                p.policy, a.namespace
            ));
            for doc in [
                serde_saphyr::to_string(&a.service_account)?,
                serde_saphyr::to_string(&a.role)?,
                serde_saphyr::to_string(&a.role_binding)?,
            ] {
                out.push_str("---\n");
                out.push_str(&doc);
                if !doc.ends_with('\n') {
                    out.push('\n');
                }
            }
        }
    }
    Ok(out)
}
