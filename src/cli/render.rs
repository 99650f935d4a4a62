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
    /// The exact shell script the api approach runs in each container (one
    /// per distinct profile list), for review before a run. A run uses a
    /// fresh random nonce where this prints `NONCE`.
    #[command(
        after_help = "Examples:\n  vigil render gatherer policies/shop.yaml policies/profiles/ --inventory fixtures/cluster/snapshot.json\n  vigil render gatherer policies/ --inventory snapshot.json --policy payments > gather.sh"
    )]
    Gatherer(super::PlanInput),
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
        What::Gatherer(input) => {
            let (set, plan, _) = super::load_plan(&input)?;
            print_stdout(&gatherer_scripts(&set, &plan))?;
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

/// Every distinct gatherer script of `plan`, each headed by the policy and
/// profiles it serves.
fn gatherer_scripts(set: &crate::policy::PolicySet, plan: &crate::plan::Plan) -> String {
    let mut out = String::new();
    for p in &plan.policies {
        let Some(policy) = set
            .policies
            .iter()
            .find(|l| l.value.metadata.name == p.policy)
        else {
            continue;
        };
        for (profiles, (_, mut req)) in crate::runner::fact_requests(set, &policy.value.spec, p) {
            req.nonce = "NONCE".into();
            out.push_str(&format!(
                "# vigil policy {}, profiles {}\n",
                p.policy,
                profiles.join(", ")
            ));
            out.push_str(&crate::facts::shell::script(&req));
        }
    }
    out
}
