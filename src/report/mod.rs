//! Results: evaluating a target's controls into a [`TargetReport`], its HDF
//! document, summaries, SAF thresholds and waivers.

pub(crate) mod ci;
pub(crate) mod drift;
pub(crate) mod findings;
pub(crate) mod hdf;
pub mod import;
pub mod inventory;
pub(crate) mod junit;
pub(crate) mod markdown;
pub(crate) mod oscal;
pub mod output;
pub(crate) mod overlay;
pub(crate) mod render;
pub(crate) mod run;
pub(crate) mod sarif;
pub(crate) mod spool;
pub(crate) mod summary;
pub(crate) mod text;
pub(crate) mod threshold;
pub(crate) mod view;
pub(crate) mod waiver;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::checks::{Context, TestResult, evaluate};
use crate::facts::Facts;
use crate::policy::Loaded;
use crate::policy::model::{Approach, Evidence, Profile, Waiver};
use summary::{ControlStatus, Counts, control_status};
use waiver::WaiverState;

/// One control's outcome on one target.
#[derive(Debug, Clone, Serialize)]
pub struct ControlOutcome {
    /// Control id.
    pub id: String,
    /// Title.
    pub title: String,
    /// Description.
    pub desc: Option<String>,
    /// HDF impact.
    pub impact: f64,
    /// Tags carried from the profile (shared by every target's report).
    pub tags: Arc<BTreeMap<String, Value>>,
    /// The check as written, for HDF `code`.
    pub code: Arc<str>,
    /// Where the control is defined (file, line).
    pub source: (Arc<str>, u32),
    /// Evaluated expectations.
    pub results: Vec<TestResult>,
    /// The waiver that bears on it, if any.
    pub waiver: Option<WaiverState>,
    /// Derived status.
    pub status: ControlStatus,
    /// Evaluation time, seconds.
    pub run_time: f64,
    /// How its facts were obtained: the target's evidence for filesystem
    /// controls, `spec` for workload controls.
    pub evidence: Evidence,
}

/// One profile's outcomes on one target.
#[derive(Debug, Clone, Serialize)]
pub struct ProfileOutcome {
    /// Profile name.
    pub name: String,
    /// Profile version.
    pub version: String,
    /// Description.
    pub summary: String,
    /// sha256 of the profile's source file.
    pub sha256: Arc<str>,
    /// Controls in profile order.
    pub controls: Vec<ControlOutcome>,
}

/// Everything known about one scanned target.
#[derive(Debug, Clone, Serialize)]
pub struct TargetReport {
    /// Run id (UUIDv7).
    pub run_id: String,
    /// Scan id of this target (UUIDv7).
    pub scan_id: String,
    /// Target id.
    pub target_id: String,
    /// Approach used.
    pub approach: Approach,
    /// os-release ID and VERSION_ID, when known.
    pub platform: (String, String),
    /// For an image target: the source scanned and the digest read.
    pub image: Option<(String, String)>,
    /// Profiles.
    pub profiles: Vec<ProfileOutcome>,
    /// When the scan started.
    pub started: DateTime<Utc>,
    /// Seconds the scan took.
    pub duration: f64,
    /// Why the target could not be scanned at all, if so.
    pub error: Option<String>,
}

impl TargetReport {
    /// Counts over the controls of every profile as Heimdall counts the
    /// HDF written for them (`overlay`): a control id two profiles share
    /// counts as inspecjs links it, so `vigil verify`'s recount of the
    /// document agrees.
    pub fn counts(&self) -> Counts {
        let profiles: Vec<overlay::ProfileLinks> = self
            .profiles
            .iter()
            .map(|p| overlay::ProfileLinks {
                name: Some(p.name.clone()),
                parent: None,
            })
            .collect();
        let all: Vec<(usize, &ControlOutcome)> = self
            .profiles
            .iter()
            .enumerate()
            .flat_map(|(i, p)| p.controls.iter().map(move |c| (i, c)))
            .collect();
        let refs: Vec<overlay::ControlRef<'_>> = all
            .iter()
            .map(|(i, c)| overlay::ControlRef {
                profile: *i,
                id: &c.id,
                has_results: !c.results.is_empty(),
            })
            .collect();
        // Profiles without parents never form a cycle.
        let times = overlay::multiplicity(&profiles, &refs).unwrap_or_else(|_| vec![1; all.len()]);
        let mut c = Counts::default();
        for ((_, ctl), n) in all.iter().zip(times) {
            for _ in 0..n {
                c.add(&ctl.id, ctl.status, ctl.impact);
            }
        }
        c
    }
}

/// A profile with what every target's report repeats computed once per
/// run: its digest, each control's code and source line.
#[derive(Debug, Clone)]
pub struct PreparedProfile<'a> {
    /// The profile.
    pub profile: &'a Loaded<Profile>,
    sha256: Arc<str>,
    file: Arc<str>,
    codes: Vec<Arc<str>>,
    lines: Vec<u32>,
    tags: Vec<Arc<BTreeMap<String, Value>>>,
}

impl<'a> PreparedProfile<'a> {
    /// Prepare a profile for evaluation on many targets.
    pub fn new(profile: &'a Loaded<Profile>) -> PreparedProfile<'a> {
        let controls = &profile.value.controls;
        PreparedProfile {
            profile,
            sha256: crate::encoding::hex(&Sha256::digest(profile.source.text.as_bytes())).into(),
            file: profile.source.path.display().to_string().into(),
            codes: controls
                .iter()
                .map(|c| Arc::from(serde_json::to_string(&c.check).unwrap_or_default()))
                .collect(),
            tags: controls.iter().map(|c| Arc::new(c.tags.clone())).collect(),
            lines: (0..controls.len())
                .map(|i| profile.doc.value_position(&format!("/controls/{i}")).line)
                .collect(),
        }
    }
}

/// Inputs to evaluating one target.
pub struct Evaluation<'a> {
    /// Run id.
    pub run_id: &'a str,
    /// Scan id.
    pub scan_id: &'a str,
    /// Target id.
    pub target_id: &'a str,
    /// Approach used.
    pub approach: Approach,
    /// Profiles to evaluate.
    pub profiles: &'a [PreparedProfile<'a>],
    /// Policy waivers.
    pub waivers: &'a [Waiver],
    /// The clock for waivers.
    pub now: DateTime<Utc>,
    /// When the scan started.
    pub started: DateTime<Utc>,
    /// The target's pod configuration (live pods and manifests): workload
    /// controls are judged on it whether or not the filesystem could be
    /// read.
    pub workload: Option<&'a crate::facts::workload::Workload>,
    /// The policy's `podSecurityVersion`.
    pub pod_security_version: Option<&'a str>,
}

/// Evaluate every control on the facts (or record, for every control, why
/// the target could not be scanned).
pub fn evaluate_target(ev: &Evaluation<'_>, facts: Result<&Facts, &str>) -> TargetReport {
    let mut ctx = Context::new(ev.approach).with_workload(ev.workload);
    ctx.pod_security_version = ev.pod_security_version;
    let fs_evidence = ev.approach.evidence();
    let platform = facts
        .ok()
        .map(platform)
        .unwrap_or_else(|| ("unknown".into(), String::new()));
    let profiles = ev
        .profiles
        .iter()
        .map(|pp| {
            let p = &pp.profile.value;
            let controls = p
                .controls
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let t = std::time::Instant::now();
                    let on_spec = c.check.is_workload();
                    let results = match facts {
                        Ok(f) => evaluate(c, f, &ctx),
                        // The pod's configuration is known even when its
                        // filesystem could not be read.
                        Err(_) if on_spec && ev.workload.is_some() => {
                            evaluate(c, &Facts::default(), &ctx)
                        }
                        Err(why) => vec![TestResult {
                            status: crate::checks::Status::Error,
                            code_desc: format!("Target {} is scanned", ev.target_id),
                            message: format!("the target could not be scanned: {why}"),
                            location: None,
                            not_applicable: false,
                        }],
                    };
                    let waiver = waiver::find(ev.waivers, &c.id, ev.target_id, ev.now);
                    // Not applicable here at all: impact 0, as HDF says it.
                    let impact = if !results.is_empty() && results.iter().all(|r| r.not_applicable)
                    {
                        0.0
                    } else {
                        c.impact
                    };
                    let status = control_status(
                        &results,
                        impact,
                        waiver.as_ref().is_some_and(WaiverState::is_active),
                    );
                    ControlOutcome {
                        id: c.id.clone(),
                        title: c.title.clone(),
                        desc: c.desc.clone(),
                        impact,
                        tags: pp.tags[i].clone(),
                        code: pp.codes[i].clone(),
                        source: (pp.file.clone(), pp.lines[i]),
                        results,
                        waiver,
                        status,
                        run_time: t.elapsed().as_secs_f64(),
                        evidence: if on_spec { Evidence::Spec } else { fs_evidence },
                    }
                })
                .collect();
            ProfileOutcome {
                name: p.metadata.name.clone(),
                version: p.metadata.version.clone().unwrap_or_default(),
                summary: p.metadata.description.clone().unwrap_or_default(),
                sha256: pp.sha256.clone(),
                controls,
            }
        })
        .collect();
    TargetReport {
        run_id: ev.run_id.to_string(),
        scan_id: ev.scan_id.to_string(),
        target_id: ev.target_id.to_string(),
        approach: ev.approach,
        platform,
        image: facts
            .ok()
            .and_then(|f| f.image.as_ref())
            .map(|i| (i.reference.clone(), i.digest.clone())),
        profiles,
        started: ev.started,
        duration: (Utc::now() - ev.started).num_microseconds().unwrap_or(0) as f64 / 1e6,
        error: facts.err().map(str::to_string),
    }
}

fn platform(facts: &Facts) -> (String, String) {
    let rel = crate::facts::compile::OS_RELEASE
        .iter()
        .find_map(|p| facts.files.get(*p).and_then(|f| f.content.as_ref()))
        .map(|c| crate::facts::parse::os_release(&c.text()))
        .unwrap_or_default();
    (
        rel.get("ID").cloned().unwrap_or_else(|| "unknown".into()),
        rel.get("VERSION_ID").cloned().unwrap_or_default(),
    )
}

/// File name for a target's HDF: `/` becomes `_`, letters, digits, `-`
/// and `.` stay, and every other byte is escaped as `~xx` (hex), so the
/// mapping is injective: two ids never share a file (`rootfs/a_b` →
/// `rootfs_a~5fb`, `rootfs/a/b` → `rootfs_a_b`).
pub fn hdf_file_name(target_id: &str) -> PathBuf {
    let mut safe = String::with_capacity(target_id.len());
    for b in target_id.bytes() {
        match b {
            b'/' => safe.push('_'),
            b if b.is_ascii_alphanumeric() || b == b'-' || b == b'.' => safe.push(b as char),
            b => safe.push_str(&format!("~{b:02x}")),
        }
    }
    PathBuf::from(format!("{safe}.hdf.json"))
}

/// Longest file name a target's result may have (Linux's `NAME_MAX`, less
/// room for `.age` and a temporary prefix).
pub const MAX_HDF_FILE_NAME: usize = 255 - ".age".len() - ".tmp".len() - 1;

/// Returns true if and only if `target_id` makes a file name that every
/// Linux filesystem accepts.
pub fn fits_a_file_name(target_id: &str) -> bool {
    !target_id.is_empty() && hdf_file_name(target_id).as_os_str().len() <= MAX_HDF_FILE_NAME
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: `rootfs/a_b` and `rootfs/a/b` once shared a file, and the
    /// second result silently replaced the first.
    #[test]
    fn file_names_never_collide() {
        let ids = [
            "rootfs/a_b",
            "rootfs/a/b",
            "rootfs/a~5fb",
            "rootfs/a b",
            "rootfs/a.b",
            "ns/pod/c",
            "ns_pod/c",
            "ns/pod_c",
            "é",
            "~c3~a9",
        ];
        let names: std::collections::BTreeSet<_> = ids.iter().map(|i| hdf_file_name(i)).collect();
        assert_eq!(names.len(), ids.len(), "{names:?}");
        assert_eq!(
            hdf_file_name("payments/api-0/api"),
            PathBuf::from("payments_api-0_api.hdf.json")
        );
        assert!(fits_a_file_name("rootfs/debian"));
        assert!(!fits_a_file_name(&"x".repeat(300)));
        assert!(!fits_a_file_name(""));
    }
}
