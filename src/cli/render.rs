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
    /// An audit.k8s.io/v1 Policy: RequestResponse for exec, ephemeral
    /// containers and logs; Metadata only for TokenRequest (tokens never
    /// reach audit logs).
    #[command(
        after_help = "Example:\n  vigil render audit-policy > /etc/kubernetes/audit-policy.yaml"
    )]
    AuditPolicy,
    /// A NetworkPolicy for in-cluster vigil pods: no ingress, egress to the
    /// API server and cluster DNS only.
    #[command(
        after_help = "Example:\n  vigil render networkpolicy --namespace vigil --api-server-cidr 10.0.0.1/32 --api-server-port 443"
    )]
    Networkpolicy {
        /// Namespace vigil runs in.
        #[arg(long, value_name = "NS")]
        namespace: String,
        /// The API server's address range (e.g. 10.0.0.1/32).
        #[arg(long, value_name = "CIDR")]
        api_server_cidr: String,
        /// The API server's port.
        #[arg(long, value_name = "PORT", default_value_t = 443)]
        api_server_port: u16,
    },
}

pub fn run(args: Args) -> anyhow::Result<Exit> {
    match args.what {
        What::Rbac(input) => {
            let (_, plan, _) = super::load_plan(&input)?;
            print_stdout(&rbac_yaml(&plan)?)?;
            Ok(Exit::Success)
        }
        What::AuditPolicy => {
            print_stdout(&serde_saphyr::to_string(
                &crate::plan::manifests::audit_policy(),
            )?)?;
            Ok(Exit::Success)
        }
        What::Networkpolicy {
            namespace,
            api_server_cidr,
            api_server_port,
        } => {
            if !crate::policy::selector::is_dns_label(&namespace) {
                return Err(
                    super::InvalidInput(format!("{namespace:?} is not a namespace name")).into(),
                );
            }
            let cidr_ok = api_server_cidr.split_once('/').is_some_and(|(ip, bits)| {
                ip.parse::<std::net::IpAddr>().is_ok() && bits.parse::<u8>().is_ok_and(|b| b <= 128)
            });
            if !cidr_ok {
                return Err(super::InvalidInput(format!(
                    "--api-server-cidr {api_server_cidr:?} is not a CIDR such as 10.0.0.1/32"
                ))
                .into());
            }
            let np = crate::plan::manifests::network_policy(
                &namespace,
                &api_server_cidr,
                api_server_port,
            );
            print_stdout(&serde_saphyr::to_string(&np)?)?;
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
