//! One run from its inputs to sealed bundles: every policy's keys checked
//! before anything is scanned, then per policy the bundle opened, the
//! targets scanned (locally, or in the cluster with the run's access set up
//! and always cleaned up), and the bundle sealed. `vigil run` parses its
//! flags into a [`RunRequest`], calls [`run_policies`] and prints; `vigil
//! import` seals through the same [`seal_bundle`] step.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use sha2::{Digest, Sha256};

use crate::plan::Plan;
use crate::policy::model::ScanPolicy;
use crate::policy::threshold::Threshold;
use crate::policy::{Loaded, PolicySet};
use crate::report::output::{RunOutput, Written};
use crate::seal::bundle::SealedDir;
use crate::seal::keys::Signer;
use crate::seal::options::{SealOptionError, Sealing};

use super::lifecycle::{LifecycleError, SealedAudit};
use super::session::Session;
use super::{Progress, RunOptions, RunSummary};

/// Everything one `vigil run` needs besides the policies' own settings.
pub struct RunRequest<'a> {
    /// The loaded policies and profiles.
    pub set: &'a PolicySet,
    /// Their plan (shard and run id applied).
    pub plan: &'a Plan,
    /// The cluster connection, when a planned target needs one.
    pub session: Option<&'a Session>,
    /// Where bundles go, which key signs them, whether they are encrypted.
    pub sealing: Sealing,
    /// This run's id (UUIDv7): names the bundles and the access objects.
    pub run_id: String,
    /// Labels put on every object the run creates and on its statement.
    pub labels: BTreeMap<String, String>,
    /// Replaces the policies' thresholds.
    pub threshold: Option<Threshold>,
    /// How scanner images are verified, and registry settings.
    pub scanner: super::scanner::ScannerTrust,
    /// Keep every control per target (a CI report will be written).
    pub keep_controls: bool,
    /// The progress reporter of one policy's run, given its name and
    /// number of targets.
    pub progress: &'a dyn Fn(&str, usize) -> Progress,
}

/// One policy's run, sealed.
pub struct SealedRun {
    /// Its summary.
    pub summary: RunSummary,
    /// Whether the statement is unsigned (`vigil verify` rejects it).
    pub unsigned: bool,
    /// Where the sealed bundle is.
    pub bundle: PathBuf,
}

/// Why a run stopped before sealing every policy's bundle (a target's own
/// failure is a result, never one of these).
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// A policy's key, recipients or bundle directory.
    #[error(transparent)]
    Sealing(#[from] SealOptionError),
    /// A policy's threshold does not parse (a policy that skipped lint).
    #[error("policy {policy}: its threshold does not parse")]
    Threshold {
        /// The policy.
        policy: String,
        /// What is wrong.
        source: crate::policy::threshold::InvalidThreshold,
    },
    /// The run's access, signals, or the summary's writing.
    #[error(transparent)]
    Lifecycle(#[from] LifecycleError),
    /// The statement could not be written (the bundle stays unsealed).
    #[error("cannot write the statement in {bundle}")]
    Statement {
        /// The bundle directory.
        bundle: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

impl PipelineError {
    /// Whether the flags or the policies are at fault (exit 2) rather than
    /// the run (exit 3).
    pub fn is_bad_input(&self) -> bool {
        match self {
            PipelineError::Sealing(e) => e.is_bad_input(),
            PipelineError::Threshold { .. } => true,
            _ => false,
        }
    }
}

/// Run every planned policy and seal its bundle. Every policy's signing
/// key and recipients are checked first, so a run never scans and then
/// finds it cannot seal.
pub fn run_policies(req: &RunRequest<'_>) -> Result<Vec<SealedRun>, PipelineError> {
    let mut keyed = Vec::with_capacity(req.plan.policies.len());
    for pp in &req.plan.policies {
        let policy = req
            .set
            .policies
            .iter()
            .find(|p| p.value.metadata.name == pp.policy)
            .expect("planned policies come from the set");
        if req.threshold.is_none() {
            Threshold::of_policy(&policy.value.spec).map_err(|source| {
                PipelineError::Threshold {
                    policy: pp.policy.clone(),
                    source,
                }
            })?;
        }
        keyed.push((pp, policy, req.sealing.keys(policy)?));
    }
    let mut sealed = Vec::with_capacity(keyed.len());
    for (pp, policy, keys) in keyed {
        let output = req
            .sealing
            .open_bundle(policy, &req.run_id, keys.recipients)?;
        let opts = RunOptions {
            run_id: req.run_id.clone(),
            labels: req.labels.clone(),
            threshold: req.threshold.clone(),
            progress: (req.progress)(&pp.policy, pp.targets.len()),
            cancel: Arc::new(AtomicBool::new(false)),
            deadline: Some(std::time::Instant::now() + policy.value.spec.limits.run_deadline()),
            scanner: req.scanner.clone(),
            keep_controls: req.keep_controls,
        };
        let needs_cluster = pp.targets.iter().any(|t| !t.approach.is_local());
        let (summary, summary_file, audit) = match (req.session, needs_cluster) {
            (Some(session), true) => super::lifecycle::run_in_cluster(
                &session.runtime,
                &session.caller,
                req.set,
                policy,
                pp,
                &opts,
                &output,
            )?,
            _ => {
                let (s, f) = super::lifecycle::run_local(req.set, policy, pp, &opts, &output)?;
                (s, f, None)
            }
        };
        let bundle = seal_bundle(
            &output,
            policy,
            &summary,
            &summary_file,
            keys.signer.as_ref(),
            audit.as_ref(),
        )?;
        sealed.push(SealedRun {
            summary,
            unsigned: keys.signer.is_none(),
            bundle,
        });
    }
    Ok(sealed)
}

/// The one seal step of every run, scanned or imported: the statement
/// over the bundle's files, signed by `signer`, written last, and the
/// bundle moved into place; logged with whether it is encrypted and
/// signed. Returns where the bundle is.
pub(crate) fn seal_bundle(
    output: &SealedDir,
    policy: &Loaded<ScanPolicy>,
    summary: &RunSummary,
    summary_file: &Written,
    signer: Option<&Signer>,
    audit: Option<&SealedAudit>,
) -> Result<PathBuf, PipelineError> {
    let policy_sha = crate::encoding::hex(&Sha256::digest(policy.source.text.as_bytes()));
    output
        .seal(
            summary,
            summary_file,
            &policy_sha,
            signer,
            audit.map(|(w, h, n)| (w, h.clone(), *n)),
        )
        .map_err(|source| PipelineError::Statement {
            bundle: output.location().to_path_buf(),
            source,
        })?;
    let name = &policy.value.metadata.name;
    let bundle = output.location().to_path_buf();
    let enc = if output.encrypted() {
        "encrypted"
    } else {
        "NOT ENCRYPTED"
    };
    match signer {
        Some(s) => tracing::info!(
            policy = %name,
            bundle = %bundle.display(),
            "{name}: sealed bundle {} ({enc}, signed by {})",
            bundle.display(),
            crate::seal::keys::keyid(&s.verifying_key())
        ),
        None => tracing::warn!(
            policy = %name,
            bundle = %bundle.display(),
            "{name}: bundle {} is UNSIGNED ({enc}); `vigil verify` rejects it and nobody can tell whether it was altered",
            bundle.display()
        ),
    }
    Ok(bundle)
}

/// HDF reports produced elsewhere, to seal as one run of a policy.
pub struct ImportRequest<'a> {
    /// The policy: output directory, recipients, signing key, threshold.
    pub policy: &'a Loaded<ScanPolicy>,
    /// (file name, its bytes), each one target.
    pub files: &'a [(String, Vec<u8>)],
    /// Replaces the policy's threshold.
    pub threshold: Option<Threshold>,
    /// Where the bundle goes, which key signs it.
    pub sealing: Sealing,
    /// Where the reports come from, recorded in the statement.
    pub source: Option<String>,
    /// Who imports them, recorded next to the signing key's id.
    pub by: Option<String>,
}

/// Seal HDF reports produced elsewhere as one run (see [`super::import`]),
/// through the same seal step as a scan.
pub fn import_reports(req: &ImportRequest<'_>) -> Result<SealedRun, super::ImportError> {
    let policy = req.policy;
    let threshold = match &req.threshold {
        Some(t) => Some(t.clone()),
        None => Threshold::of_policy(&policy.value.spec).map_err(super::ImportError::Threshold)?,
    };
    let keys = req
        .sealing
        .keys(policy)
        .map_err(|e| super::ImportError::Sealing(e.into()))?;
    let key = keys.signer.as_ref().map_or_else(
        || "unsigned".to_string(),
        |s| crate::seal::keys::keyid(&s.verifying_key()),
    );
    let imported = super::Imported {
        by: match &req.by {
            Some(who) => format!("{who} ({key})"),
            None => key,
        },
        source: req.source.clone(),
        files: req.files.iter().map(|(n, _)| n.clone()).collect(),
    };
    let run_id = uuid::Uuid::now_v7().to_string();
    let output = req
        .sealing
        .open_bundle(policy, &run_id, keys.recipients)
        .map_err(|e| super::ImportError::Sealing(e.into()))?;
    let name = &policy.value.metadata.name;
    let (summary, summary_file) = super::import(
        &run_id,
        name,
        req.files,
        threshold.as_ref(),
        imported,
        &output,
    )?;
    let bundle = seal_bundle(
        &output,
        policy,
        &summary,
        &summary_file,
        keys.signer.as_ref(),
        None,
    )
    .map_err(super::ImportError::Sealing)?;
    tracing::info!(
        policy = %name,
        bundle = %bundle.display(),
        "{name}: imported {} report(s) into {}",
        req.files.len(),
        bundle.display()
    );
    Ok(SealedRun {
        summary,
        unsigned: keys.signer.is_none(),
        bundle,
    })
}
