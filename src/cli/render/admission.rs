//! `vigil render admission-policy`: the admission guard for vigil's footprint.

use super::super::{Exit, InvalidInput, print_stdout};

pub(super) const ADMISSION_HELP: &str = "\
Examples:
  vigil render admission-policy policies/payments.yaml > admission.yaml
  vigil render admission-policy policies/ | kubectl apply -f -

RBAC pins which pods a run's token may patch, not what a patch adds:
admission sees the object. The policy admits an ephemeral container named
vigil-* only from a vigil run identity, running a pinned image from the
policies (spec.debug.image, spec.sidecar.image) or --scanner-image, with the hardened
securityContext; a vigil identity may add nothing else; a vigil-* sidecar
must run a pinned image, hardened (judged when a request adds or changes
one, so pods still running the previous scanner digest stay updatable); a
token for a vigil scan identity must be short-lived (60 minutes at most)
and bound to an object. Run identities are ServiceAccounts named vigil-*
and the policies' provisioned access.serviceAccount names. kube-system is
left alone. To rotate the scanner digest, admit the previous one as well
(--scanner-image) until no pod template uses it. Needs Kubernetes 1.31+
(ValidatingAdmissionPolicy is GA from 1.30; the kubelet's reported uid,
which the root check reads, is in the Pod schema from 1.31).";

/// Options of `vigil render admission-policy`.
#[derive(Debug, clap::Args)]
pub(super) struct AdmissionArgs {
    /// Policy files or directories: their scanner images are admitted.
    #[arg(value_name = "POLICY")]
    paths: Vec<std::path::PathBuf>,
    /// Another scanner image to admit, pinned by digest (repeatable).
    #[arg(long = "scanner-image", alias = "image", value_name = "IMAGE")]
    image: Vec<String>,
}

pub(super) fn admission(args: AdmissionArgs) -> anyhow::Result<Exit> {
    let mut images = std::collections::BTreeSet::new();
    // Provisioned ServiceAccounts named otherwise than vigil-*: run
    // identities too.
    let mut accounts = std::collections::BTreeSet::new();
    if !args.paths.is_empty() {
        let (set, mut diags) = crate::policy::load(&args.paths);
        diags.retain(|d| !matches!(d.code, "unresolved-profile" | "unknown-control"));
        if super::super::report_diagnostics(&diags) {
            return Err(
                InvalidInput("the policies are invalid; fix the errors above".into()).into(),
            );
        }
        for p in &set.policies {
            let spec = &p.value.spec;
            images.extend(spec.debug.as_ref().map(|d| d.image.clone()));
            images.extend(spec.sidecar.as_ref().and_then(|s| s.image.clone()));
            accounts.extend(
                spec.access
                    .service_account
                    .clone()
                    .filter(|a| !a.starts_with("vigil-")),
            );
        }
    }
    for i in &args.image {
        if !crate::policy::lint::is_pinned(i) {
            return Err(InvalidInput(format!(
                "--scanner-image {}: not pinned by digest; write NAME@sha256:<64 hex digits> (tags can be moved)",
                crate::safeio::printable(i)
            ))
            .into());
        }
        images.insert(i.clone());
    }
    if images.is_empty() {
        return Err(InvalidInput(
            "no scanner image to admit: give policies with spec.debug.image or spec.sidecar.image, or --scanner-image".into(),
        )
        .into());
    }
    let images: Vec<String> = images.into_iter().collect();
    let accounts: Vec<String> = accounts.into_iter().collect();
    let docs = crate::plan::admission::render(&images, &accounts)
        .iter()
        .map(serde_saphyr::to_string)
        .collect::<Result<Vec<_>, _>>()?;
    print_stdout(&docs.join("---\n"))?;
    Ok(Exit::Success)
}
