//! Verifying the scanner images before any pod sees them.
//!
//! RBAC can say which pods a run may patch, not which image the patch
//! adds; a signature check says who built the digest vigil is about to
//! start in every scanned pod. A refused image makes the targets that need
//! it error results (api targets still run), and every check, passed or
//! not, is recorded in the signed statement.

use std::path::PathBuf;

use crate::cosign::PublicKey;
use crate::plan::PolicyPlan;
use crate::policy::Loaded;
use crate::policy::model::{Approach, ImageVerify, ScanPolicy};
use crate::registry::{Client, Credentials, Reference};
use crate::report::run::ScannerImageCheck;

/// Command-line settings that apply to every scanner image of a run.
#[derive(Debug, Clone, Default)]
pub struct ScannerTrust {
    /// `--scanner-key`: replaces the policies' `verify.key`, and turns the
    /// check on for images the policy does not ask to verify.
    pub key: Option<PublicKey>,
    /// `--scanner-signature`: a saved signature, for air-gapped runs.
    pub signature: Option<PathBuf>,
    /// `--insecure-registry` hosts (plain HTTP; test registries only).
    pub insecure_registries: Vec<String>,
    /// `--registry-timeout` and `--registry-min-rate` (each replaces the
    /// policy's `limits`).
    pub registry_deadlines: crate::registry::DeadlineFlags,
}

/// Check the signature of each scanner image `pp`'s targets may start: the
/// debug image for `debug` and `auto` targets, the sidecar image for
/// `sidecar` ones. Images with neither a policy `verify` nor a
/// `--scanner-key` are not checked (and not recorded).
pub async fn check(
    policy: &Loaded<ScanPolicy>,
    pp: &PolicyPlan,
    trust: &ScannerTrust,
) -> Vec<ScannerImageCheck> {
    // The plan says which scanner images the targets use.
    let spec = &policy.value.spec;
    let wanted = pp.scanner_images.iter().map(|s| {
        let verify = match s.role {
            Approach::Debug => spec.debug.as_ref().and_then(|d| d.verify.as_ref()),
            _ => spec.sidecar.as_ref().and_then(|d| d.verify.as_ref()),
        };
        (s.role, s.image.clone(), verify)
    });
    let mut out = Vec::new();
    for (role, image, verify) in wanted {
        let key = match (&trust.key, verify) {
            (Some(k), _) => Ok(k.clone()),
            (None, Some(v)) => {
                PublicKey::resolve(&v.key, policy.base_dir()).map_err(|e| e.to_string())
            }
            (None, None) => continue,
        };
        let outcome = match key {
            Ok(key) => check_one(policy, &image, &key, verify, trust).await,
            Err(e) => Err(e),
        };
        out.push(ScannerImageCheck {
            role,
            image,
            verified: outcome.as_ref().ok().cloned(),
            refused: outcome.err(),
        });
    }
    out
}

async fn check_one(
    policy: &Loaded<ScanPolicy>,
    image: &str,
    key: &PublicKey,
    verify: Option<&ImageVerify>,
    trust: &ScannerTrust,
) -> Result<crate::cosign::Verified, String> {
    let base = policy.base_dir();
    let reference = Reference::parse(image).map_err(|e| e.to_string())?;
    let signature = trust.signature.clone().or_else(|| {
        verify
            .and_then(|v| v.signature.as_ref())
            .map(|s| base.join(s))
    });
    let credentials = Credentials::from_environment().map_err(|e| e.to_string())?;
    let client = Client::new(&trust.insecure_registries, credentials)
        .map_err(|e| e.to_string())?
        .with_deadlines(
            policy
                .value
                .spec
                .limits
                .registry_deadlines(&trust.registry_deadlines),
        );
    crate::cosign::verify(&client, &reference, key, signature.as_deref())
        .await
        .map_err(|e| e.to_string())
}
