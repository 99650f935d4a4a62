//! `vigil drift`: read two verified bundles — an image scan and a cluster
//! run — pair each container with the image it runs (by the digest its
//! kubelet reports) and compare them; the report can be signed as an
//! in-toto statement over both bundles' statements.

use std::collections::BTreeMap;
use std::path::Path;

use ed25519_dalek::VerifyingKey;
use sha2::{Digest as _, Sha256};

use super::layout::STATEMENT_FILE;
use super::statement::{STATEMENT_TYPE, Statement, Subject};
use super::verify::{Identities, read_checked, verify};
use crate::report::drift::{Drift, Side, compare};
use crate::report::inventory::Inventory;

/// The predicate type of a signed drift report.
pub(crate) const DRIFT_PREDICATE_TYPE: &str = "https://vigil.dev/attestations/drift/v1";

/// Why no comparison could be made.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DriftError {
    /// A bundle does not verify.
    #[error("{bundle} does not verify: {problems}")]
    Unverified {
        /// The bundle.
        bundle: String,
        /// Its problems.
        problems: String,
    },
    /// A result or inventory cannot be read.
    #[error("{0}")]
    Unreadable(String),
    /// A bundle of the wrong kind: no image scans in the first, or no
    /// containers with a reported image digest in the second.
    #[error("{bundle} {why}")]
    WrongKind {
        /// The bundle.
        bundle: String,
        /// What it lacks, and what to give instead.
        why: &'static str,
    },
    /// No container runs an image that was scanned: a comparison of
    /// nothing, never "no drift".
    #[error(
        "no container of the runtime bundle runs an image of the image bundle (images scanned: {images}; images the containers run: {containers}); nothing was compared"
    )]
    NothingCompared {
        /// The digests scanned.
        images: String,
        /// The digests the containers run.
        containers: String,
    },
}

/// Which side of a comparison a bundle is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Image scans (`image:` targets, `run --image`).
    Images,
    /// A cluster run's containers.
    Containers,
}

/// The sides of `bundle`'s targets that name an image digest and carry an
/// inventory, by digest.
fn sides(
    bundle: &Path,
    kind: Kind,
    trusted: &[VerifyingKey],
    identities: &Identities,
) -> Result<(Statement, Vec<Side>), DriftError> {
    let shown = crate::safeio::printable(&bundle.display().to_string()).into_owned();
    let v = verify(bundle, trusted, identities);
    let problems = v.problems_text();
    let statement = match (v.ok(), v.statement) {
        (true, Some(s)) => s,
        _ => {
            return Err(DriftError::Unverified {
                bundle: shown,
                problems,
            });
        }
    };
    let p = &statement.predicate;
    let mut out = Vec::new();
    for t in &p.targets {
        let image_target = t.approach == crate::policy::model::Approach::Image;
        if image_target != (kind == Kind::Images) {
            continue;
        }
        let (Some(digest), Some(inv)) = (&t.image_digest, &t.inventory) else {
            continue;
        };
        let unreadable = |e: String| DriftError::Unreadable(format!("{shown}: {e}"));
        let inventory: Inventory = serde_json::from_slice(
            &read_checked(bundle, inv, p.encrypted, identities).map_err(unreadable)?,
        )
        .map_err(|e| DriftError::Unreadable(format!("{shown}: {}: {e}", inv.file)))?;
        let hdf = crate::report::import::read(
            &read_checked(bundle, &t.hdf, p.encrypted, identities).map_err(unreadable)?,
        )
        .map_err(|e| DriftError::Unreadable(format!("{shown}: {}: {e}", t.hdf.file)))?;
        let statuses = crate::report::findings::control_statuses(&hdf);
        out.push(Side {
            bundle: shown.clone(),
            run_id: p.run_id.clone(),
            target: t.id.clone(),
            digest: digest.clone(),
            statuses,
            inventory,
        });
    }
    if out.is_empty() {
        return Err(DriftError::WrongKind {
            bundle: shown,
            why: match kind {
                Kind::Images => {
                    "holds no image scans with an inventory: give a bundle of `image:` targets or `vigil run --image` first"
                }
                Kind::Containers => {
                    "holds no containers with a reported image digest and an inventory: give a cluster run's bundle second"
                }
            },
        });
    }
    Ok((statement, out))
}

/// Compare every container of `runtime` with the scan of its image in
/// `image` (both verified with `trusted`; decrypted with `identities`).
/// Returns the drifts and the digests of both statements.
pub(crate) fn drift(
    image: &Path,
    runtime: &Path,
    trusted: &[VerifyingKey],
    identities: &Identities,
) -> Result<(Vec<Drift>, [String; 2]), DriftError> {
    let (_, images) = sides(image, Kind::Images, trusted, identities)?;
    let (_, containers) = sides(runtime, Kind::Containers, trusted, identities)?;
    // A container reports the digest it was pulled by: the manifest's, or
    // a multi-platform image's index.
    let by_digest: BTreeMap<&str, &Side> = images
        .iter()
        .flat_map(|s| {
            std::iter::once(s.digest.as_str())
                .chain(s.inventory.index_digests.iter().map(String::as_str))
                .map(move |d| (d, s))
        })
        .collect();
    let drifts: Vec<Drift> = containers
        .iter()
        .filter_map(|c| {
            by_digest
                .get(c.digest.as_str())
                .map(|i| compare((*i).clone(), c.clone()))
        })
        .collect();
    if drifts.is_empty() {
        let list = |sides: &[Side]| {
            let set: std::collections::BTreeSet<&str> =
                sides.iter().map(|s| s.digest.as_str()).collect();
            set.into_iter().collect::<Vec<_>>().join(", ")
        };
        return Err(DriftError::NothingCompared {
            images: list(&images),
            containers: list(&containers),
        });
    }
    let digest = |b: &Path| -> Result<String, DriftError> {
        let bytes = crate::safeio::read(
            &b.join(STATEMENT_FILE),
            super::layout::MAX_STATEMENT_BYTES,
            "statement",
        )
        .map_err(|e| DriftError::Unreadable(e.to_string()))?;
        Ok(crate::encoding::hex(&Sha256::digest(&bytes)))
    };
    Ok((drifts, [digest(image)?, digest(runtime)?]))
}

/// A DSSE envelope over an in-toto statement whose subjects are the two
/// bundles' statements and whose predicate is the report.
pub(crate) fn signed_report(
    drifts: &[Drift],
    statements: &[String; 2],
    signer: &super::keys::Signer,
) -> Vec<u8> {
    let subject: Vec<Subject> = ["image", "runtime"]
        .iter()
        .zip(statements)
        .map(|(side, d)| Subject {
            name: format!("{side}/{STATEMENT_FILE}"),
            digest: BTreeMap::from([("sha256".to_string(), d.clone())]),
        })
        .collect();
    let statement = serde_json::json!({
        "_type": STATEMENT_TYPE,
        "subject": subject,
        "predicateType": DRIFT_PREDICATE_TYPE,
        "predicate": {"drifts": drifts, "drifted": drifts.iter().any(Drift::drifted)},
    });
    let payload = serde_json::to_vec(&statement).expect("statements serialize");
    let envelope = super::dsse::sign(super::dsse::IN_TOTO_PAYLOAD_TYPE, &payload, signer);
    serde_json::to_vec_pretty(&envelope).expect("envelopes serialize")
}
