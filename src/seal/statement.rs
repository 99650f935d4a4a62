//! The in-toto Statement v1 a sealed run signs: every file of the bundle as
//! a subject, and the run's results as the predicate.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::policy::model::{Approach, Evidence};
use crate::report::run::{RunSummary, StatusCounts};
use crate::report::view::{ReportRun, ReportTarget};

/// in-toto Statement type.
pub(crate) const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// vigil's predicate type.
pub(crate) const PREDICATE_TYPE: &str = "https://vigil.dev/attestations/scan-run/v1";

/// A statement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Statement {
    /// [`STATEMENT_TYPE`].
    #[serde(rename = "_type")]
    pub statement_type: String,
    /// Every file of the bundle but the statement itself.
    pub subject: Vec<Subject>,
    /// [`PREDICATE_TYPE`].
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
    /// The run.
    pub predicate: RunPredicate,
}

/// A file and its digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subject {
    /// Path relative to the bundle directory.
    pub name: String,
    /// `{"sha256": hex}` of the bytes on disk.
    pub digest: BTreeMap<String, String>,
}

/// What the run found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunPredicate {
    /// Run id (UUIDv7).
    pub run_id: String,
    /// Policy name and the sha256 of its source file.
    pub policy: PolicyRef,
    /// vigil version.
    pub vigil_version: String,
    /// Start (RFC 3339).
    pub started: String,
    /// End (RFC 3339).
    pub ended: String,
    /// Whether every planned target was scanned.
    pub complete: bool,
    /// Targets a signal kept from being scanned.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_scanned: Vec<String>,
    /// Whether result files are age-encrypted.
    pub encrypted: bool,
    /// The summary file (plaintext digest).
    pub summary: FileRef,
    /// Per target.
    pub targets: Vec<TargetResult>,
    /// The audit trail of Kubernetes writes and execs, when the run made any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit: Option<AuditRef>,
    /// Set when the results were produced elsewhere and sealed by `vigil
    /// import`: who imported them, from where, which files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imported: Option<crate::report::run::Imported>,
    /// The plan scanned: its digest, size, and the shard when sharded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<crate::report::run::PlanRef>,
    /// For a merged run: the shard runs it was made of, their signed
    /// statements and audit trails (carried over under `shards/<index>/`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shards: Vec<ShardRef>,
    /// `--run-label`s: who ran it (a pipeline id, for example).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// The scanner images' cosign signature checks: the digest that ran in
    /// the scanned pods, the key that signed it and the signature's digest
    /// (or why it was refused).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scanner_images: Vec<crate::report::run::ScannerImageCheck>,
    /// How much of what the run was to scan it scanned, and why not the
    /// rest (absent in statements from before vigil counted it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coverage: Option<crate::report::run::Coverage>,
    /// The threshold's coverage gate: held or not, absent without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coverage_passed: Option<bool>,
    /// `pass`, `fail` or `error`.
    pub verdict: crate::report::run::RunVerdict,
}

/// A policy reference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyRef {
    /// `metadata.name`.
    pub name: String,
    /// sha256 of the policy file.
    pub sha256: String,
}

/// A file of the bundle and the digest of its plaintext.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRef {
    /// Stored name (relative).
    pub file: String,
    /// sha256 of the plaintext.
    pub plaintext_sha256: String,
}

/// The sealed audit log and the hash its chain must end with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditRef {
    /// Stored name and plaintext digest.
    pub log: FileRef,
    /// sha256 of the last line (the chain's head).
    pub final_hash: String,
    /// Number of entries.
    pub entries: u64,
}

/// One target's results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetResult {
    /// Target id.
    pub id: String,
    /// Approach.
    pub approach: Approach,
    /// Evidence level; absent in bundles sealed before vigil recorded it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<Evidence>,
    /// `scanned` or `error`.
    pub status: crate::report::run::TargetStatus,
    /// Control counts.
    pub counts: StatusCounts,
    /// SAF compliance.
    pub compliance: u32,
    /// Threshold verdict: true/false, absent without a threshold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold_passed: Option<bool>,
    /// The HDF file and its plaintext digest.
    pub hdf: FileRef,
    /// The image digest: scanned (image targets) or reported by the
    /// kubelet (containers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_digest: Option<String>,
    /// The image as the target names it (a container's pod spec, an image
    /// target's source): where `vigil attest --push` stores its verdict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// The target's inventory file and its plaintext digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inventory: Option<FileRef>,
}

/// One shard run inside a merged run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShardRef {
    /// The shard's index.
    pub index: u32,
    /// The shard run's id (its audit chain is bound to it).
    pub run_id: String,
    /// The shard's own signed statement, carried over.
    pub statement: String,
    /// The shard's audit trail, carried over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit: Option<AuditRef>,
}

impl TargetResult {
    /// This target as the reports show it, with its failing `findings`
    /// and, with `every_control`, all its decrypted HDF's controls (for CI
    /// reports).
    pub(crate) fn report_target(
        &self,
        hdf: &crate::report::import::Hdf,
        findings: Vec<crate::report::findings::Finding>,
        every_control: bool,
    ) -> ReportTarget {
        use crate::report::run::{TargetStatus, ThresholdOutcome};
        ReportTarget {
            id: self.id.clone(),
            approach: self.approach,
            evidence: self.evidence,
            image_digest: self.image_digest.clone(),
            hdf: (self.hdf.file.clone(), self.hdf.plaintext_sha256.clone()),
            counts: self.counts.clone(),
            compliance: self.compliance,
            threshold: match (self.status, self.threshold_passed) {
                (TargetStatus::Error, _) => ThresholdOutcome::Error,
                (_, Some(true)) => ThresholdOutcome::Pass,
                (_, Some(false)) => ThresholdOutcome::Fail,
                (_, None) => ThresholdOutcome::None,
            },
            error: (self.status == TargetStatus::Error)
                .then(|| "it could not be scanned".to_string()),
            controls: if every_control {
                crate::report::findings::all_controls(hdf)
            } else {
                Vec::new()
            },
            findings,
        }
    }
}

impl RunPredicate {
    /// This run as the reports show it, with its targets read from the
    /// bundle: the same model `vigil run` builds from its summary.
    pub(crate) fn report_run(&self, targets: Vec<ReportTarget>) -> ReportRun {
        ReportRun {
            policy: self.policy.name.clone(),
            run_id: self.run_id.clone(),
            verdict: self.verdict,
            started: self.started.clone(),
            ended: self.ended.clone(),
            imported: self.imported.is_some(),
            targets,
            coverage: self.coverage.clone(),
            coverage_passed: self.coverage_passed,
        }
    }
}

/// Build the predicate from a run summary.
pub(crate) fn predicate(
    summary: &RunSummary,
    policy_sha256: &str,
    summary_file: FileRef,
    stored: &dyn Fn(&str) -> String,
    encrypted: bool,
    audit: Option<AuditRef>,
) -> RunPredicate {
    RunPredicate {
        run_id: summary.run_id.clone(),
        policy: PolicyRef {
            name: summary.policy.clone(),
            sha256: policy_sha256.to_string(),
        },
        vigil_version: summary.vigil_version.to_string(),
        started: summary.started.to_rfc3339(),
        ended: summary.ended.to_rfc3339(),
        complete: summary.complete,
        not_scanned: summary.not_scanned.clone(),
        encrypted,
        summary: summary_file,
        targets: summary
            .targets
            .iter()
            .map(|t| TargetResult {
                id: t.id.clone(),
                approach: t.approach,
                evidence: Some(t.evidence),
                status: t.status,
                counts: t.counts.clone(),
                compliance: t.compliance,
                threshold_passed: t.threshold.as_ref().map(|v| v.passed),
                hdf: FileRef {
                    file: stored(&t.hdf.name),
                    plaintext_sha256: t.hdf.sha256.clone(),
                },
                image_digest: t.image_digest.clone(),
                image: t.image.clone(),
                inventory: t.inventory.as_ref().map(|w| FileRef {
                    file: stored(&w.name),
                    plaintext_sha256: w.sha256.clone(),
                }),
            })
            .collect(),
        verdict: summary.verdict,
        audit,
        imported: summary.imported.clone(),
        plan: summary.plan.clone(),
        labels: summary.labels.clone(),
        scanner_images: summary.scanner_images.clone(),
        shards: Vec::new(),
        coverage: Some(summary.coverage.clone()),
        coverage_passed: summary.coverage_threshold.as_ref().map(|v| v.passed),
    }
}
