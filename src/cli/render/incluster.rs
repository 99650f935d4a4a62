//! `vigil render cronjob|job`: the in-cluster runner's manifests.

use super::super::{Exit, print_stdout};

pub(super) const INCLUSTER_HELP: &str = "\
Examples:
  IMAGE=registry.example/vigil@sha256:1111111111111111111111111111111111111111111111111111111111111111
  F=\"--namespace vigil --scanner-image $IMAGE --pvc results --signing-secret vigil-signing-key\"
  vigil render cronjob policies/shop.yaml policies/profiles/ $F --api-server-cidr 10.0.0.1/32
  vigil render job policies/payments.yaml policies/profiles/ --shards 4 $F | kubectl apply -f -

The runner reads the policy and its profiles from the ConfigMap
vigil-policy-<policy> (kubectl create configmap vigil-policy-payments
--from-file=policies/payments.yaml --from-file=policies/profiles/) and the
signing key `signing.key.pem` from the Secret; results go to the PVC.";

/// Options of `vigil render cronjob` and `vigil render job`.
#[derive(Debug, clap::Args)]
pub(super) struct InClusterArgs {
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
    #[arg(long = "scanner-image", alias = "image", value_name = "IMAGE")]
    image: String,
    /// PersistentVolumeClaim for the results.
    #[arg(long, value_name = "NAME")]
    pvc: String,
    /// Secret holding the signing key as `signing.key.pem`.
    #[arg(long, value_name = "NAME")]
    signing_secret: String,
    /// Add the NetworkPolicy: the API server's address range. Give its
    /// endpoint addresses (`kubectl get endpointslices -n default -l
    /// kubernetes.io/service-name=kubernetes`), not the `kubernetes`
    /// Service's ClusterIP: most network plugins apply NetworkPolicy after
    /// the Service address is translated (see `render networkpolicy`).
    #[arg(long, value_name = "CIDR")]
    api_server_cidr: Option<String>,
    /// The API server's ports, repeatable (default: 443 and 6443; see
    /// `render networkpolicy`).
    #[arg(long, value_name = "PORT", default_values_t = [443, 6443])]
    api_server_port: Vec<u16>,
    /// With --api-server-cidr: a registry's address range the runner may
    /// reach, repeatable; needed when the policy verifies scanner images
    /// (`verify`) against their registry.
    #[arg(long, value_name = "CIDR")]
    registry_cidr: Vec<String>,
    /// Those registries' ports, repeatable.
    #[arg(long, value_name = "PORT", default_values_t = [443])]
    registry_port: Vec<u16>,
}

pub(super) fn in_cluster(
    args: InClusterArgs,
    shards: Option<u32>,
    spread: bool,
) -> anyhow::Result<Exit> {
    let (set, index) =
        super::super::input::load_one_policy(&args.paths, args.only.as_deref(), "--policy")?;
    let request = crate::plan::incluster::Request {
        runner: crate::plan::incluster::InCluster {
            namespace: args.namespace,
            image: args.image,
            pvc: args.pvc,
            signing_secret: args.signing_secret,
        },
        shards,
        spread,
        api_server_cidr: args.api_server_cidr,
        registry_cidrs: args.registry_cidr,
        registry_ports: args.registry_port,
        api_server_ports: args.api_server_port,
    };
    let policy = &set.policies[index].value;
    let yaml = crate::plan::incluster::render(policy, &request)
        .map_err(|e| super::super::InvalidInput(e.to_string()))?;
    if policy.spec.access.mode == crate::policy::model::AccessMode::PerRun {
        let namespaces: std::collections::BTreeSet<&str> = policy
            .spec
            .targets
            .iter()
            .filter_map(|t| t.namespace.as_deref())
            .collect();
        tracing::warn!(
            "policy {} is per-run: the runner's Role holds the scan rights (exec, and for debug or auto ephemeral containers and logs) on every pod of {}, standing, because Kubernetes lets it grant each run's Role only rights it holds; with access.mode: provisioned the runner holds only token requests for one pre-applied ServiceAccount, pinned to the pods by `vigil render rbac`",
            policy.metadata.name,
            namespaces.into_iter().collect::<Vec<_>>().join(", ")
        );
    }
    print_stdout(&yaml)?;
    Ok(Exit::Success)
}
