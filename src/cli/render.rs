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
        after_help = "Examples:\n  vigil render gatherer policies/ --inventory fixtures/cluster/snapshot.json --policy shop\n  vigil render gatherer policies/ --inventory snapshot.json --policy payments > gather.sh"
    )]
    Gatherer(super::PlanInput),
    /// A strategic merge patch that adds the hardened vigil scanner sidecar
    /// to a workload and turns on shareProcessNamespace (for `approach:
    /// sidecar`). Takes the container name, image and resources from a
    /// policy's spec.sidecar, or from --container/--image.
    #[command(after_help = SIDECAR_HELP)]
    Sidecar(SidecarArgs),
    /// A CronJob that runs a policy on its schedule in the cluster, with the
    /// runner's ServiceAccount, Roles and RoleBindings (and a NetworkPolicy
    /// with --api-server-cidr), all hardened.
    #[command(after_help = INCLUSTER_HELP)]
    Cronjob(InClusterArgs),
    /// An Indexed Job that runs a policy in --shards pods, each scanning its
    /// shard (`--shard $(JOB_COMPLETION_INDEX)/N`), with the runner's RBAC.
    #[command(after_help = INCLUSTER_HELP)]
    Job {
        #[command(flatten)]
        args: InClusterArgs,
        /// How many pods (shards).
        #[arg(long, value_name = "N")]
        shards: u32,
    },
    /// An audit.k8s.io/v1 Policy: RequestResponse for exec, ephemeral
    /// containers and logs; Metadata only for TokenRequest (tokens never
    /// reach audit logs); Metadata for everything else (a catch-all last).
    #[command(
        after_help = "A request that no rule matches is not audited, so the whole policy ends with a\ncatch-all at Metadata. To keep an existing policy, render only vigil's rules\n(--as-rules) and put them first in its `rules:` list (the first match wins).\n\nExamples:\n  vigil render audit-policy > audit-policy.yaml\n  vigil render audit-policy --as-rules > vigil-audit-rules.yaml"
    )]
    AuditPolicy {
        /// Print only vigil's rules (a YAML list) to merge into an existing
        /// policy, ahead of its own rules.
        #[arg(long)]
        as_rules: bool,
    },
    /// A NetworkPolicy for in-cluster vigil pods: no ingress, egress to the
    /// API server and cluster DNS only.
    #[command(
        after_help = "Example:\n  vigil render networkpolicy --namespace vigil --api-server-cidr 10.0.0.1/32"
    )]
    Networkpolicy {
        /// Namespace vigil runs in.
        #[arg(long, value_name = "NS")]
        namespace: String,
        /// The API server's address range (e.g. 10.0.0.1/32).
        #[arg(long, value_name = "CIDR")]
        api_server_cidr: String,
        /// The API server's ports, repeatable: the `kubernetes` Service's
        /// (443) and its endpoints' (often 6443), since most network plugins
        /// apply NetworkPolicy after the Service address is translated.
        #[arg(long, value_name = "PORT", default_values_t = [443, 6443])]
        api_server_port: Vec<u16>,
    },
}

const SIDECAR_HELP: &str = "\
Examples:
  vigil render sidecar policies/shop.yaml --run-as-user 101 > patch.yaml
  kubectl patch deployment web --patch-file patch.yaml
  vigil render sidecar policies/shop.yaml --workload deployment/web > kustomize-patch.yaml

The sidecar must run as the uid and gid of the containers it scans
(--run-as-user, --run-as-group): reading another process's /proc/<pid>/root
needs the same uid and gid (and, for root, at least its capabilities) or
CAP_SYS_PTRACE, which vigil never asks for. Changing a pod template
restarts the workload's pods.";

const INCLUSTER_HELP: &str = "\
Examples:
  IMAGE=registry.example/vigil@sha256:1111111111111111111111111111111111111111111111111111111111111111
  F=\"--namespace vigil --image $IMAGE --pvc vigil-results --signing-secret vigil-signing-key\"
  vigil render cronjob policies/shop.yaml policies/profiles/ $F --api-server-cidr 10.0.0.1/32
  vigil render job policies/payments.yaml policies/profiles/ --shards 4 $F | kubectl apply -f -

The runner reads the policy and its profiles from the ConfigMap
vigil-policy-<policy> (kubectl create configmap vigil-policy-payments
--from-file=policies/payments.yaml --from-file=policies/profiles/) and the
signing key `signing.key.pem` from the Secret; results go to the PVC.";

/// Options of `vigil render cronjob` and `vigil render job`.
#[derive(Debug, clap::Args)]
pub struct InClusterArgs {
    /// Policy (and profile) files or directories.
    #[arg(required = true, value_name = "POLICY")]
    paths: Vec<std::path::PathBuf>,
    /// The policy to render, when the files hold several.
    #[arg(long = "policy", value_name = "NAME")]
    only: Option<String>,
    /// Namespace the runner lives in.
    #[arg(long, value_name = "NS")]
    namespace: String,
    /// The vigil image, pinned by digest.
    #[arg(long, value_name = "IMAGE")]
    image: String,
    /// PersistentVolumeClaim for the results.
    #[arg(long, value_name = "NAME")]
    pvc: String,
    /// Secret holding the signing key as `signing.key.pem`.
    #[arg(long, value_name = "NAME")]
    signing_secret: String,
    /// Add the NetworkPolicy: the API server's address range.
    #[arg(long, value_name = "CIDR")]
    api_server_cidr: Option<String>,
    /// The API server's ports, repeatable (default: 443 and 6443; see
    /// `render networkpolicy`).
    #[arg(long, value_name = "PORT", default_values_t = [443, 6443])]
    api_server_port: Vec<u16>,
}

fn in_cluster(args: InClusterArgs, shards: Option<u32>) -> anyhow::Result<Exit> {
    let (set, index) = super::load_one_policy(&args.paths, args.only.as_deref(), "--policy")?;
    let request = crate::plan::incluster::Request {
        runner: crate::plan::incluster::InCluster {
            namespace: args.namespace,
            image: args.image,
            pvc: args.pvc,
            signing_secret: args.signing_secret,
        },
        shards,
        api_server_cidr: args.api_server_cidr,
        api_server_ports: args.api_server_port,
    };
    let yaml = crate::plan::incluster::render(&set.policies[index].value, &request)
        .map_err(|e| super::InvalidInput(e.to_string()))?;
    print_stdout(&yaml)?;
    Ok(Exit::Success)
}

/// Options of `vigil render sidecar`.
#[derive(Debug, clap::Args)]
pub struct SidecarArgs {
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
    #[arg(long, value_name = "IMAGE")]
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

fn sidecar(args: SidecarArgs) -> anyhow::Result<Exit> {
    let set = if args.paths.is_empty() {
        None
    } else {
        Some(super::load_one_policy_without_profiles(
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
    let patch = crate::plan::manifests::render_sidecar(policy, request)
        .map_err(|e| super::InvalidInput(e.to_string()))?;
    print_stdout(&serde_saphyr::to_string(&patch)?)?;
    Ok(Exit::Success)
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
        What::Sidecar(a) => sidecar(a),
        What::Cronjob(a) => in_cluster(a, None),
        What::Job { args, shards } => in_cluster(args, Some(shards)),
        What::AuditPolicy { as_rules } => {
            let doc = if as_rules {
                crate::plan::manifests::audit_rules()
            } else {
                crate::plan::manifests::audit_policy()
            };
            print_stdout(&serde_saphyr::to_string(&doc)?)?;
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
            if !crate::plan::manifests::is_cidr(&api_server_cidr) {
                return Err(super::InvalidInput(format!(
                    "--api-server-cidr {api_server_cidr:?} is not a CIDR such as 10.0.0.1/32"
                ))
                .into());
            }
            let np = crate::plan::manifests::network_policy(
                &namespace,
                &api_server_cidr,
                &api_server_port,
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
                serde_saphyr::to_string(&crate::plan::rbac::granted_role(a))?,
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
