//! The standard verdict (`vigil attest`): for each image digest a verified
//! bundle scanned (image targets, and containers by the kubelet's
//! `imageID`), a DSSE envelope over an in-toto Statement v1 whose subject
//! is that digest and whose predicate is the vetted in-toto Test Result
//! (`https://in-toto.io/attestation/test-result/v0.1`), for verifiers that
//! know only the standard (Kyverno, sigstore policy-controller). vigil's
//! own detailed statement stays the record; this one is derived from it,
//! and only from a bundle that verifies.
//!
//! Per digest, over every target that ran it:
//! - `failedTests`: controls failed or in error anywhere (an error is
//!   unverified evidence, never a pass); `warnedTests`: not reviewed
//!   (skipped) anywhere; `passedTests`: passed everywhere they ran;
//!   not-applicable and waived controls are listed nowhere;
//! - `result`: `FAILED` when a target could not be scanned, missed its
//!   threshold, or has failed controls and no threshold that accepts them;
//!   `WARNED` when every threshold held but some controls failed or were
//!   not reviewed; `PASSED` otherwise;
//! - `configuration`: the policy (by the sha256 its statement records) and
//!   the bundle's signed statement, as resource descriptors.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use ed25519_dalek::VerifyingKey;
use serde_json::json;
use sha2::{Digest as _, Sha256};

use super::dsse::{IN_TOTO_PAYLOAD_TYPE, sign};
use super::keys::Signer;
use super::statement::{STATEMENT_TYPE, TargetResult};
use super::verify::{Identities, verify};
use crate::cosign::attestation::TEST_RESULT_PREDICATE;
use crate::report::run::TargetStatus;
use crate::report::summary::ControlStatus;

/// One image's verdict, signed.
#[derive(Debug, Clone)]
pub(crate) struct ImageVerdict {
    /// `sha256:<hex>`.
    pub digest: String,
    /// The digests the image was named by besides `digest` (the index an
    /// image target was pinned by, when vigil scanned one of its platform
    /// manifests): subjects too, and where `--push` stores it as well, since
    /// an admission controller looks under the digest the pod names.
    pub also: Vec<String>,
    /// The image's repository when the bundle names it (image targets read
    /// from a registry): where `--push` stores the attestation.
    pub repository: Option<String>,
    /// `PASSED`, `WARNED` or `FAILED`.
    pub result: &'static str,
    /// The DSSE envelope, JSON.
    pub envelope: Vec<u8>,
}

/// Why no verdict could be made.
#[derive(Debug, thiserror::Error)]
pub(crate) enum VerdictError {
    /// The bundle does not verify: nothing is attested from it.
    #[error("the bundle does not verify, so nothing is attested from it: {0}")]
    NotVerified(String),
    /// No target has an image digest.
    #[error(
        "no target of the bundle has an image digest (image targets have one, and containers whose kubelet reported an imageID): nothing to attest"
    )]
    NoImages,
    /// A result could not be read.
    #[error("{file}: {cause}")]
    Read {
        /// The bundle file.
        file: String,
        /// Why.
        cause: String,
    },
}

/// The verdicts of the bundle in `dir`, verified with `trusted` (and, for
/// encrypted results, opened with `identities`), signed by `signer`; `url`
/// (a CI job, say) goes into each predicate.
pub(crate) fn attest(
    dir: &Path,
    trusted: &[VerifyingKey],
    identities: &Identities,
    signer: &Signer,
    url: Option<&str>,
) -> Result<Vec<ImageVerdict>, VerdictError> {
    let v = verify(dir, trusted, identities);
    let statement = match (v.ok(), &v.statement) {
        (true, Some(s)) => s.clone(),
        _ => {
            let why: Vec<String> = v
                .problems
                .iter()
                .take(5)
                .map(|p| format!("{}: {}", p.file, p.message))
                .collect();
            return Err(VerdictError::NotVerified(
                crate::safeio::printable(&why.join("; ")).into_owned(),
            ));
        }
    };
    let p = &statement.predicate;
    let statement_file = dir.join(super::bundle::STATEMENT_FILE);
    let statement_sha = crate::safeio::read(
        &statement_file,
        super::verify::MAX_PLAINTEXT_BYTES,
        "statement",
    )
    .map(|b| crate::encoding::hex(&Sha256::digest(&b)))
    .map_err(|e| VerdictError::Read {
        file: super::bundle::STATEMENT_FILE.into(),
        cause: e.to_string(),
    })?;
    let mut groups: BTreeMap<String, Group> = BTreeMap::new();
    for t in &p.targets {
        let Some(digest) = t
            .image_digest
            .as_deref()
            .filter(|d| crate::registry::is_sha256_digest(d))
        else {
            continue;
        };
        let hdf = read_result(dir, t, p.encrypted, identities)?;
        let g = groups.entry(digest.to_string()).or_default();
        g.add(t, &hdf);
        let named = t.image.as_deref().or(hdf.image.as_deref());
        if g.repository.is_none() {
            g.repository = named.and_then(|i| repository_of(i, digest));
        }
        if let Some(pinned) = named
            .and_then(|i| i.rsplit_once('@'))
            .map(|(_, d)| d)
            .filter(|d| crate::registry::is_sha256_digest(d) && *d != digest)
        {
            g.also.insert(pinned.to_string());
        }
    }
    if groups.is_empty() {
        return Err(VerdictError::NoImages);
    }
    let configuration = json!([
        {"name": format!("policy/{}", p.policy.name), "digest": {"sha256": p.policy.sha256}},
        {"name": format!("vigil-bundle/{}/{}", p.run_id, super::bundle::STATEMENT_FILE), "digest": {"sha256": statement_sha}},
    ]);
    Ok(groups
        .into_iter()
        .map(|(digest, g)| {
            let result = g.result();
            let mut predicate = json!({
                "result": result,
                "configuration": configuration,
                "passedTests": g.passed.difference(&g.not_passed()).collect::<Vec<_>>(),
                "warnedTests": g.warned.difference(&g.failed).collect::<Vec<_>>(),
                "failedTests": g.failed,
            });
            if let Some(u) = url {
                predicate["url"] = u.into();
            }
            let name = g.repository.clone().unwrap_or_else(|| "_".into());
            let subject: Vec<serde_json::Value> = std::iter::once(&digest)
                .chain(&g.also)
                .map(|d| json!({"name": name, "digest": {"sha256": d.trim_start_matches("sha256:")}}))
                .collect();
            let statement = json!({
                "_type": STATEMENT_TYPE,
                "subject": subject,
                "predicateType": TEST_RESULT_PREDICATE,
                "predicate": predicate,
            });
            let payload = serde_json::to_vec(&statement).expect("a statement serializes");
            let envelope = sign(IN_TOTO_PAYLOAD_TYPE, &payload, signer);
            ImageVerdict {
                digest,
                also: g.also.into_iter().collect(),
                repository: g.repository,
                result,
                envelope: serde_json::to_vec_pretty(&envelope).expect("an envelope serializes"),
            }
        })
        .collect())
}

/// A target's HDF, decrypted when the bundle is encrypted.
fn read_result(
    dir: &Path,
    t: &TargetResult,
    encrypted: bool,
    identities: &Identities,
) -> Result<crate::report::import::Hdf, VerdictError> {
    let bytes =
        super::verify::target_result(dir, t, encrypted, identities).map_err(|e| match e {
            super::verify::ResultError::Read { file, cause } => VerdictError::Read { file, cause },
            unsafe_name => VerdictError::Read {
                file: crate::safeio::printable(&t.hdf.file).into_owned(),
                cause: unsafe_name.to_string(),
            },
        })?;
    crate::report::import::read(&bytes).map_err(|e| VerdictError::Read {
        file: crate::safeio::printable(&t.hdf.file).into_owned(),
        cause: e.to_string(),
    })
}

/// Every target of one image digest.
#[derive(Default)]
struct Group {
    passed: BTreeSet<String>,
    warned: BTreeSet<String>,
    failed: BTreeSet<String>,
    /// A target not scanned, or one that missed its threshold.
    refused: bool,
    /// A target with failed controls and no threshold to accept them.
    unjudged_failures: bool,
    repository: Option<String>,
    also: BTreeSet<String>,
}

impl Group {
    fn add(&mut self, t: &TargetResult, hdf: &crate::report::import::Hdf) {
        self.refused |= t.status == TargetStatus::Error || t.threshold_passed == Some(false);
        let mut failed_here = false;
        for c in &hdf.controls {
            match c.status {
                ControlStatus::Passed => {
                    self.passed.insert(c.id.clone());
                }
                ControlStatus::Skipped => {
                    self.warned.insert(c.id.clone());
                }
                ControlStatus::Failed | ControlStatus::Error => {
                    failed_here = true;
                    self.failed.insert(c.id.clone());
                }
                ControlStatus::NoImpact => {}
            }
        }
        self.unjudged_failures |= failed_here && t.threshold_passed.is_none();
    }

    /// Controls that did not pass somewhere.
    fn not_passed(&self) -> BTreeSet<String> {
        self.failed.union(&self.warned).cloned().collect()
    }

    fn result(&self) -> &'static str {
        if self.refused || self.unjudged_failures {
            "FAILED"
        } else if !self.failed.is_empty() || !self.warned.is_empty() {
            "WARNED"
        } else {
            "PASSED"
        }
    }
}

/// The repository of an image as a target names it (a container's
/// `registry.example/app:1`, an image target's `registry:HOST/REPO@…`),
/// normalized as registries name it (`docker.io/library/nginx`); `None` for
/// images read from files (`oci-dir:`, `oci-archive:`, `docker-archive:`).
fn repository_of(image: &str, digest: &str) -> Option<String> {
    if ["oci-dir:", "oci-archive:", "docker-archive:"]
        .iter()
        .any(|p| image.starts_with(p))
    {
        return None;
    }
    let name = image.strip_prefix("registry:").unwrap_or(image);
    let name = name.split('@').next()?;
    crate::registry::Reference::parse(&format!("{name}@{digest}"))
        .ok()
        .map(|r| r.name())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// FAILED for a target not scanned, a missed threshold, or failures no
    /// threshold accepted; WARNED when thresholds held over failed or
    /// unreviewed controls; PASSED only when nothing failed or was skipped.
    #[test]
    fn results_follow_thresholds_and_controls() {
        let set = |ids: &[&str]| ids.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
        let g = |refused, unjudged, failed: &[&str], warned: &[&str]| Group {
            passed: set(&["A", "B", "C"]),
            warned: set(warned),
            failed: set(failed),
            refused,
            unjudged_failures: unjudged,
            repository: None,
            also: BTreeSet::new(),
        };
        assert_eq!(g(true, false, &[], &[]).result(), "FAILED");
        assert_eq!(g(false, true, &["B"], &[]).result(), "FAILED");
        assert_eq!(g(false, false, &["B"], &[]).result(), "WARNED");
        assert_eq!(g(false, false, &[], &["C"]).result(), "WARNED");
        assert_eq!(g(false, false, &[], &[]).result(), "PASSED");
        // A control that failed on one container of the image is not
        // listed as passed, though it passed on another.
        let mixed = g(false, false, &["B"], &["C"]);
        assert_eq!(
            mixed
                .passed
                .difference(&mixed.not_passed())
                .collect::<Vec<_>>(),
            ["A"]
        );
    }

    #[test]
    fn the_repository_of_an_image() {
        let d = format!("sha256:{}", "a".repeat(64));
        for (image, repo) in [
            (
                "registry:127.0.0.1:5000/team/app@sha256:ab",
                Some("127.0.0.1:5000/team/app"),
            ),
            ("registry:ghcr.io/o/app:1.2", Some("ghcr.io/o/app")),
            ("nginx:1.25", Some("docker.io/library/nginx")),
            ("registry.example/app:1", Some("registry.example/app")),
            ("oci-dir:/tmp/x:v1", None),
            ("docker-archive:image.tar", None),
        ] {
            assert_eq!(repository_of(image, &d).as_deref(), repo, "{image}");
        }
    }
}
