//! Merging the bundles of a sharded run (`vigil run --shard I/N`) into one
//! bundle whose signed statement covers every target.
//!
//! Every shard bundle must verify against the trusted keys, come from the
//! same policy (by digest) and the same plan (by the digest of its target
//! ids), and the shards must be disjoint and complete (each index of
//! `0..N` exactly once; together, every planned target). Shard files are
//! carried over byte for byte — results are not re-encrypted — results
//! under their own names, each shard's summary, audit trail and signed
//! statement under `shards/<index>/`. The merged statement names every
//! file, every target's result, and each shard run (whose audit chains
//! `vigil verify` checks against their own run ids).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use ed25519_dalek::VerifyingKey;

use super::bundle::SealedDir;
use super::keys::Signer;
use super::statement::{AuditRef, FileRef, PolicyRef, RunPredicate, ShardRef, TargetResult};
use crate::report::output::RunOutput;
use crate::report::run::RunVerdict;

/// Why shards were not merged.
#[derive(Debug, thiserror::Error)]
pub(crate) enum MergeError {
    /// A bundle does not verify.
    #[error("{bundle}: does not verify: {problems}")]
    NotVerified {
        /// The bundle.
        bundle: String,
        /// What is wrong.
        problems: String,
    },
    /// A bundle is not a shard, or belongs to another policy or plan.
    #[error("{bundle}: {why}")]
    Foreign {
        /// The bundle.
        bundle: String,
        /// How it differs.
        why: String,
    },
    /// Two bundles overlap.
    #[error("{bundle}: {why}")]
    Overlap {
        /// The bundle.
        bundle: String,
        /// What overlaps.
        why: String,
    },
    /// Shards are missing.
    #[error("shards missing: {0}")]
    Missing(String),
    /// Reading or writing failed.
    #[error("{0}")]
    Io(String),
}

struct Shard {
    dir: PathBuf,
    statement_bytes: Vec<u8>,
    statement: super::statement::Statement,
}

fn name(dir: &Path) -> String {
    dir.display().to_string()
}

/// The shard bundles, each verified and checked against the others: one
/// policy and plan, one shard count and encryption, no shard or target
/// twice, none missing.
struct Verified {
    shards: BTreeMap<u32, Shard>,
    plan: crate::report::run::PlanRef,
    encrypted: bool,
}

fn verified_shards(
    bundles: &[PathBuf],
    trusted: &[VerifyingKey],
    policy_sha256: &str,
) -> Result<Verified, MergeError> {
    let mut shards: BTreeMap<u32, Shard> = BTreeMap::new();
    let mut first: Option<(crate::report::run::PlanRef, u32, bool)> = None;
    let mut owner: BTreeMap<String, u32> = BTreeMap::new();
    for dir in bundles {
        let v = super::verify::verify(dir, trusted, &[]);
        let Some(statement) = v.statement.clone().filter(|_| v.ok()) else {
            return Err(MergeError::NotVerified {
                bundle: name(dir),
                problems: v.problems_text(),
            });
        };
        let p = &statement.predicate;
        let foreign = |why: String| MergeError::Foreign {
            bundle: name(dir),
            why,
        };
        if p.policy.sha256 != policy_sha256 {
            return Err(foreign(format!(
                "made with another policy (or another version of {})",
                p.policy.name
            )));
        }
        let (Some(plan), Some(shard)) = (&p.plan, p.plan.as_ref().and_then(|pl| pl.shard)) else {
            return Err(foreign("not a shard (run with --shard I/N)".into()));
        };
        match &first {
            None => first = Some((plan.clone(), shard.count, p.encrypted)),
            Some((pl, count, encrypted)) => {
                if pl.sha256 != plan.sha256 || pl.targets != plan.targets {
                    return Err(foreign(
                        "a shard of another plan (the inventory changed between shards, or another run)"
                            .into(),
                    ));
                }
                if *count != shard.count {
                    return Err(foreign(format!(
                        "one of {} shards, the others of {count}",
                        shard.count
                    )));
                }
                if *encrypted != p.encrypted {
                    return Err(foreign(
                        "encrypted differently from the other shards".into(),
                    ));
                }
            }
        }
        if shards.contains_key(&shard.index) {
            return Err(MergeError::Overlap {
                bundle: name(dir),
                why: format!("shard {} is given twice", shard.index),
            });
        }
        for t in &p.targets {
            if let Some(other) = owner.insert(t.id.clone(), shard.index) {
                return Err(MergeError::Overlap {
                    bundle: name(dir),
                    why: format!("target {} is in shards {other} and {}", t.id, shard.index),
                });
            }
        }
        let statement_bytes = crate::safeio::read(
            &dir.join(super::bundle::STATEMENT_FILE),
            super::layout::MAX_STATEMENT_BYTES,
            "statement",
        )
        .map_err(|e| MergeError::Io(e.to_string()))?;
        shards.insert(
            shard.index,
            Shard {
                dir: dir.clone(),
                statement_bytes,
                statement,
            },
        );
    }
    let Some((plan, count, encrypted)) = first else {
        return Err(MergeError::Missing("no bundles given".into()));
    };
    let missing: Vec<String> = (0..count)
        .filter(|i| !shards.contains_key(i))
        .map(|i| i.to_string())
        .collect();
    if !missing.is_empty() {
        return Err(MergeError::Missing(format!(
            "{} of {count} (have {})",
            missing.join(", "),
            shards
                .keys()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    if owner.len() != plan.targets {
        return Err(MergeError::Missing(format!(
            "the shards hold {} targets, the plan has {}",
            owner.len(),
            plan.targets
        )));
    }
    Ok(Verified {
        shards,
        plan,
        encrypted,
    })
}

/// The labels every shard carries with the same value.
fn common_labels(predicates: &[&RunPredicate]) -> BTreeMap<String, String> {
    predicates[0]
        .labels
        .iter()
        .filter(|(k, v)| predicates.iter().all(|p| p.labels.get(*k) == Some(*v)))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The merged run's verdict and coverage.
struct Judged {
    verdict: RunVerdict,
    coverage: Option<crate::report::run::Coverage>,
    coverage_threshold: Option<crate::report::threshold::Verdict>,
}

/// Judge the merged run: `error` when a shard was in error (or the whole
/// run scanned nothing), `fail` when a target's threshold failed or the
/// coverage gate fails over the shards' coverage added up (one shard's
/// part may miss the gate while the whole meets it), else `pass`. A shard
/// that missed a gate the policy does not hold fails the merge. Shards
/// sealed before vigil counted coverage keep their own verdicts.
fn judge(
    predicates: &[&RunPredicate],
    targets: &[TargetResult],
    threshold: Option<&crate::policy::threshold::Threshold>,
) -> Judged {
    let coverage =
        predicates
            .iter()
            .try_fold(crate::report::run::Coverage::default(), |mut all, p| {
                all.add(p.coverage.as_ref()?);
                Some(all)
            });
    let coverage_threshold = coverage
        .as_ref()
        .zip(threshold)
        .and_then(|(c, t)| t.evaluate_coverage(c.scanned, c.expected));
    let shard_says = |v: RunVerdict| predicates.iter().any(|p| p.verdict == v);
    // Shards whose targets are all elsewhere are legitimately empty; a
    // merged run of nothing at all is an error, never a pass.
    let verdict = RunVerdict::judge(
        shard_says(RunVerdict::Error) || targets.is_empty(),
        targets.iter().any(|t| t.threshold_passed == Some(false))
            || coverage_threshold.as_ref().is_some_and(|v| !v.passed)
            || (coverage.is_none() && shard_says(RunVerdict::Fail))
            // A gate the policy does not hold (a shard's --threshold file)
            // cannot be judged over the whole: a shard that missed it stands.
            || (coverage_threshold.is_none()
                && predicates.iter().any(|p| p.coverage_passed == Some(false))),
    );
    Judged {
        verdict,
        coverage,
        coverage_threshold,
    }
}

/// Check the shard bundles, then write the merged bundle through `output`
/// (created for the merged run id) and seal it.
pub(crate) fn merge(
    bundles: &[PathBuf],
    trusted: &[VerifyingKey],
    policy_sha256: &str,
    run_id: &str,
    output: &SealedDir,
    signer: Option<&Signer>,
    threshold: Option<&crate::policy::threshold::Threshold>,
) -> Result<PathBuf, MergeError> {
    let Verified {
        shards,
        plan,
        encrypted,
    } = verified_shards(bundles, trusted, policy_sha256)?;
    if output.encrypted() != encrypted {
        return Err(MergeError::Io(format!(
            "the shards are {}, the merged bundle would be {}: the policy's recipients (or --plaintext) must match",
            if encrypted { "encrypted" } else { "plaintext" },
            if output.encrypted() {
                "encrypted"
            } else {
                "plaintext"
            }
        )));
    }
    // Carry every file over.
    let io = |e: std::io::Error| MergeError::Io(e.to_string());
    let moved = |index: u32, file: &str| {
        if file.starts_with("targets/") {
            file.to_string()
        } else {
            format!("shards/{index}/{file}")
        }
    };
    let mut targets: Vec<TargetResult> = Vec::new();
    let mut refs = Vec::new();
    for (index, sh) in &shards {
        for s in &sh.statement.subject {
            let bytes = crate::safeio::read(
                &sh.dir.join(&s.name),
                super::verify::MAX_PLAINTEXT_BYTES,
                "bundle file",
            )
            .map_err(|e| MergeError::Io(e.to_string()))?;
            output.adopt(&moved(*index, &s.name), &bytes).map_err(io)?;
        }
        let statement_file = format!("shards/{index}/{}", super::bundle::STATEMENT_FILE);
        output
            .adopt(&statement_file, &sh.statement_bytes)
            .map_err(io)?;
        let p = &sh.statement.predicate;
        targets.extend(p.targets.iter().cloned().map(|mut t| {
            t.hdf.file = moved(*index, &t.hdf.file);
            if let Some(inv) = &mut t.inventory {
                inv.file = moved(*index, &inv.file);
            }
            t
        }));
        refs.push(ShardRef {
            index: *index,
            run_id: p.run_id.clone(),
            statement: statement_file,
            audit: p.audit.clone().map(|a| AuditRef {
                log: FileRef {
                    file: moved(*index, &a.log.file),
                    plaintext_sha256: a.log.plaintext_sha256,
                },
                ..a
            }),
        });
    }
    targets.sort_by(|a, b| a.id.cmp(&b.id));
    let predicates: Vec<&RunPredicate> = shards.values().map(|s| &s.statement.predicate).collect();
    let not_scanned: BTreeSet<String> = predicates
        .iter()
        .flat_map(|p| p.not_scanned.iter().cloned())
        .collect();
    let judged = judge(&predicates, &targets, threshold);
    let verdict = judged.verdict;
    let complete = predicates.iter().all(|p| p.complete);
    let summary = serde_json::json!({
        "run_id": run_id,
        "policy": predicates[0].policy.name,
        "merged_from": refs.iter().map(|r| serde_json::json!({"index": r.index, "run_id": r.run_id})).collect::<Vec<_>>(),
        "complete": complete,
        "not_scanned": not_scanned,
        "verdict": verdict,
        "coverage": judged.coverage,
        "coverage_threshold": judged.coverage_threshold,
        "targets": targets,
    });
    let written = output
        .write(
            super::bundle::SUMMARY_FILE,
            &serde_json::to_vec_pretty(&summary).expect("summaries serialize"),
        )
        .map_err(io)?;
    let pred = RunPredicate {
        run_id: run_id.to_string(),
        policy: PolicyRef {
            name: predicates[0].policy.name.clone(),
            sha256: policy_sha256.to_string(),
        },
        vigil_version: env!("CARGO_PKG_VERSION").to_string(),
        started: predicates
            .iter()
            .map(|p| p.started.clone())
            .min()
            .unwrap_or_default(),
        ended: predicates
            .iter()
            .map(|p| p.ended.clone())
            .max()
            .unwrap_or_default(),
        complete,
        not_scanned: not_scanned.into_iter().collect(),
        encrypted,
        summary: FileRef {
            file: output.stored_name("summary.json"),
            plaintext_sha256: written.sha256,
        },
        targets,
        labels: common_labels(&predicates),
        // Every shard's scanner image checks, each once.
        scanner_images: predicates.iter().fold(Vec::new(), |mut all, p| {
            for c in &p.scanner_images {
                if !all.contains(c) {
                    all.push(c.clone());
                }
            }
            all
        }),
        audit: None,
        verdict,
        coverage: judged.coverage,
        coverage_passed: judged.coverage_threshold.map(|v| v.passed),
        imported: None,
        plan: Some(crate::report::run::PlanRef {
            shard: None,
            ..plan
        }),
        shards: refs,
    };
    output.seal_merged(pred, signer).map_err(io)
}
