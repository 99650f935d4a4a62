//! `vigil render`: print Kubernetes manifests derived from policies.

use super::{Exit, print_stdout};

mod admission;
mod incluster;
mod sidecar;

use admission::{ADMISSION_HELP, AdmissionArgs, admission};
use incluster::{INCLUSTER_HELP, InClusterArgs, in_cluster};
use sidecar::{SIDECAR_HELP, SidecarArgs, sidecar};

const AFTER_HELP: &str = "\
Examples:
  vigil render rbac policies/ --inventory fixtures/cluster/snapshot.json | kubectl apply -f -
  vigil render rbac policies/ --inventory snapshot.json --policy payments";

/// Print Kubernetes manifests derived from policies.
#[derive(Debug, clap::Args)]
#[command(after_help = AFTER_HELP)]
pub(super) struct Args {
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
    /// policy's spec.sidecar, or from --container/--scanner-image.
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
        /// Let the shards run on any node. Only with a ReadWriteMany results
        /// claim: by default the shards share one node, because a
        /// ReadWriteOnce claim (most cloud disks) attaches to one node and a
        /// shard elsewhere would never start.
        #[arg(long)]
        spread_shards: bool,
    },
    /// An audit.k8s.io/v1 Policy: None for health probes and lease
    /// renewals; Request for exec, ephemeral containers and logs; Metadata
    /// only for TokenRequest (tokens never reach audit logs); Metadata for
    /// everything else (a catch-all last).
    #[command(
        after_help = "A request that no rule matches is not audited, so the whole policy ends with a\ncatch-all at Metadata. To keep an existing policy, render only vigil's rules\n(--as-rules) and put them first in its `rules:` list (the first match wins).\n\nExamples:\n  vigil render audit-policy > audit-policy.yaml\n  vigil render audit-policy --as-rules > vigil-audit-rules.yaml"
    )]
    AuditPolicy {
        /// Print only vigil's rules (a YAML list) to merge into an existing
        /// policy, ahead of its own rules.
        #[arg(long)]
        as_rules: bool,
    },
    /// A ValidatingAdmissionPolicy and binding that hold vigil's identities
    /// to what vigil adds: pinned scanner images, hardened, named vigil-*.
    #[command(after_help = ADMISSION_HELP)]
    AdmissionPolicy(AdmissionArgs),
    /// A NetworkPolicy for in-cluster vigil pods: no ingress, egress to the
    /// API server and cluster DNS only.
    #[command(
        after_help = "Give the API server's endpoint addresses, not the `kubernetes` Service's ClusterIP:\nmost network plugins apply a NetworkPolicy after the Service address is\ntranslated. On Cilium an ipBlock does not match the API server when it runs on\na node's or the host's address (cilium/cilium#20550): allow it with a\nCiliumNetworkPolicy egress rule `toEntities: [kube-apiserver]` instead (see\ndocs/operations.md). A runner that verifies scanner images against their\nregistry (a policy's `verify` without a saved signature) needs --registry-cidr.\n\nExamples:\n  vigil render networkpolicy --namespace vigil --api-server-cidr 10.0.0.1/32\n  R=\"--registry-cidr 192.0.2.0/24\"\n  vigil render networkpolicy --namespace vigil --api-server-cidr 10.0.0.1/32 $R"
    )]
    Networkpolicy {
        /// Namespace vigil runs in.
        #[arg(long, value_name = "NS")]
        namespace: String,
        /// The API server's address range (e.g. 10.0.0.1/32): its endpoint
        /// addresses (`kubectl get endpointslices -n default -l
        /// kubernetes.io/service-name=kubernetes`), not the `kubernetes`
        /// Service's ClusterIP, since most network plugins apply
        /// NetworkPolicy after the Service address is translated.
        #[arg(long, value_name = "CIDR")]
        api_server_cidr: String,
        /// The API server's ports, repeatable: the `kubernetes` Service's
        /// (443) and its endpoints' (often 6443).
        #[arg(long, value_name = "PORT", default_values_t = [443, 6443])]
        api_server_port: Vec<u16>,
        /// A registry's address range vigil may reach (scanner image
        /// verification), repeatable.
        #[arg(long, value_name = "CIDR")]
        registry_cidr: Vec<String>,
        /// Those registries' ports, repeatable.
        #[arg(long, value_name = "PORT", default_values_t = [443])]
        registry_port: Vec<u16>,
    },
}

pub(super) fn run(args: Args) -> anyhow::Result<Exit> {
    match args.what {
        What::Rbac(input) => {
            let (set, plan, _) = super::load_plan(&input)?;
            // Per-run objects applied by hand expire when a run of the
            // longest-lived policy would have ended.
            let longest = set
                .policies
                .iter()
                .map(|p| {
                    let l = &p.value.spec;
                    l.access.token_ttl().max(l.limits.run_deadline())
                })
                .max()
                .unwrap_or_default();
            let expires = (chrono::Utc::now()
                + chrono::Duration::from_std(longest).unwrap_or_default())
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            if plan
                .policies
                .iter()
                .any(|p| p.access_mode == crate::policy::model::AccessMode::PerRun)
            {
                tracing::warn!(
                    "per-run policies create and delete these objects in each run; applied by hand they are standing rights, so they carry an expiry (vigil.dev/expires-at {expires}) that `vigil gc` honours. For standing rights, use access.mode: provisioned"
                );
            }
            print_stdout(&crate::plan::rbac::rbac_yaml(&plan, &expires))?;
            Ok(Exit::Success)
        }
        What::Gatherer(input) => {
            let (set, plan, _) = super::load_plan(&input)?;
            print_stdout(&crate::runner::gatherer_scripts(&set, &plan))?;
            Ok(Exit::Success)
        }
        What::Sidecar(a) => sidecar(a),
        What::AdmissionPolicy(a) => admission(a),
        What::Cronjob(a) => in_cluster(a, None, false),
        What::Job {
            args,
            shards,
            spread_shards,
        } => in_cluster(args, Some(shards), spread_shards),
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
            registry_cidr,
            registry_port,
        } => {
            if let Some(bad) = registry_cidr
                .iter()
                .find(|c| !crate::plan::manifests::is_cidr(c))
            {
                return Err(super::InvalidInput(format!(
                    "--registry-cidr {bad:?} is not a CIDR such as 192.0.2.0/24"
                ))
                .into());
            }
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
                (&registry_cidr, &registry_port),
            );
            print_stdout(&serde_saphyr::to_string(&np)?)?;
            Ok(Exit::Success)
        }
    }
}
