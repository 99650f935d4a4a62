//! The run lifecycle with a fake collector: failures are filed by their
//! kind (never by their text), cancellation and the deadline stop targets
//! from starting, and a panicking collector fails only its own target.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use super::*;

/// A scratch directory removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!(
            "vigil-runner-{name}-{}-{}",
            std::process::id(),
            uuid::Uuid::now_v7()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A policy of rootfs targets `a`, `b`, `c` and `d` (empty directories),
/// loaded and planned.
fn planned(dir: &Path) -> (PolicySet, crate::plan::Plan) {
    let mut targets = String::new();
    for name in ["a", "b", "c", "d"] {
        std::fs::create_dir_all(dir.join(name)).unwrap();
        targets.push_str(&format!("    - {{rootfs: {}}}\n", dir.join(name).display()));
    }
    std::fs::write(
        dir.join("p.yaml"),
        format!(
            "apiVersion: vigil/v1\nkind: ScanPolicy\nmetadata: {{name: life}}\nspec:\n  profiles: [container-baseline]\n  targets:\n{targets}  limits: {{concurrency: 2}}\n"
        ),
    )
    .unwrap();
    let profiles = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/profiles");
    let (set, diags) = crate::policy::load(&[dir.join("p.yaml"), profiles]);
    assert!(diags.iter().all(|d| !d.is_error()), "{:?}", diags.first());
    let (plan, _) =
        crate::plan::plan(&set, &[], None, &crate::plan::PlanOptions::default()).unwrap();
    (set, plan)
}

/// Fails each target its own way, and counts its calls.
struct Scripted {
    calls: AtomicUsize,
}

impl Collector for Scripted {
    fn collect(&self, t: &PlannedTarget, _: &FactRequest, _: &str) -> Result<Gathered, Failure> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        match t.id.rsplit('/').next().unwrap() {
            "a" => Err(Failure::timeout(
                "the scan",
                std::time::Duration::from_secs(1),
            )),
            // Text that reads like a timeout or a skip is still neither.
            "b" => Err(Failure::from(
                "not scanned: did not finish within scanTimeout (said the container)",
            )),
            "c" => Err(Failure::new(FailureKind::NotScanned, "stopped")),
            _ => panic!("a bug in a collector"),
        }
    }
}

/// Run `r1`'s options: cancelled or not, with or without a deadline.
fn options(cancel: bool, deadline: Option<std::time::Instant>) -> RunOptions {
    RunOptions {
        labels: Default::default(),
        run_id: "r1".into(),
        threshold: None,
        progress: Box::new(|_, _| {}),
        cancel: std::sync::Arc::new(AtomicBool::new(cancel)),
        deadline,
        scanner: Default::default(),
        keep_controls: true,
    }
}

fn run(
    dir: &Path,
    collector: &dyn Collector,
    cancel: bool,
    deadline: Option<std::time::Instant>,
) -> RunSummary {
    let (set, plan) = planned(dir);
    let out = crate::report::output::PlainDir::create(&dir.join("out"), "life", "r1").unwrap();
    let opts = options(cancel, deadline);
    run_policy(
        &set,
        &set.policies[0],
        &plan.policies[0],
        &opts,
        &out,
        collector,
    )
    .unwrap()
    .0
}

fn kind_of(summary: &RunSummary, name: &str) -> Option<FailureKind> {
    summary
        .targets
        .iter()
        .find(|t| t.id.ends_with(&format!("/{name}")))
        .unwrap_or_else(|| panic!("no target {name}"))
        .failure
}

#[test]
fn failures_are_filed_by_kind_and_a_panic_fails_only_its_target() {
    let dir = Scratch::new("kinds");
    let collector = Scripted {
        calls: AtomicUsize::new(0),
    };
    let summary = run(&dir.0, &collector, false, None);
    assert_eq!(collector.calls.load(Ordering::Relaxed), 4);
    assert_eq!(kind_of(&summary, "a"), Some(FailureKind::Timeout));
    assert_eq!(kind_of(&summary, "b"), Some(FailureKind::Other));
    assert_eq!(kind_of(&summary, "c"), Some(FailureKind::NotScanned));
    assert_eq!(kind_of(&summary, "d"), Some(FailureKind::Other));
    assert_eq!(summary.stats.timeouts, 1, "only a's kind is Timeout");
    assert_eq!(summary.not_scanned.len(), 1, "{:?}", summary.not_scanned);
    assert!(summary.not_scanned[0].ends_with("/c"));
    assert!(!summary.complete);
    let d = summary
        .targets
        .iter()
        .find(|t| t.id.ends_with("/d"))
        .unwrap();
    assert!(
        d.error.as_deref().unwrap().contains("a bug in a collector"),
        "{d:?}"
    );
    let json = serde_json::to_value(&summary).unwrap();
    assert!(
        json["targets"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["failure"] == "not-scanned")
    );
}

#[test]
fn cancellation_and_a_passed_deadline_start_no_target() {
    for (cancel, deadline) in [(true, None), (false, Some(std::time::Instant::now()))] {
        let dir = Scratch::new("stop");
        let collector = Scripted {
            calls: AtomicUsize::new(0),
        };
        let summary = run(&dir.0, &collector, cancel, deadline);
        assert_eq!(collector.calls.load(Ordering::Relaxed), 0);
        assert_eq!(summary.not_scanned.len(), 4);
        assert!(
            summary
                .targets
                .iter()
                .all(|t| t.failure == Some(FailureKind::NotScanned) && t.attempts == 0)
        );
        assert_eq!(summary.stats.timeouts, 0);
    }
}

/// The external scanner's pipeline has the same guard as vigil's own: a
/// scan that panics fails its target, and the other targets are scanned.
#[test]
fn a_panicking_external_scan_fails_only_its_target() {
    let dir = Scratch::new("external-panic");
    let (set, plan) = planned(&dir.0);
    let out = crate::report::output::PlainDir::create(&dir.0.join("out"), "life", "r1").unwrap();
    let opts = options(false, None);
    let scan = |t: &PlannedTarget, _: &str| -> Result<Vec<u8>, Failure> {
        if t.id.ends_with("/d") {
            panic!("a bug in the external pipeline");
        }
        Ok(br#"{"profiles": [{"name": "p", "controls": [{"id": "C-1", "impact": 0.5, "results": [{"status": "passed", "code_desc": "ok"}]}]}]}"#.to_vec())
    };
    let (summary, _) =
        run_external(&set.policies[0], &plan.policies[0], &opts, &out, &scan).unwrap();
    assert_eq!(summary.targets.len(), 4);
    for t in &summary.targets {
        if t.id.ends_with("/d") {
            assert_eq!(t.status, TargetStatus::Error, "{t:?}");
            assert!(
                t.error
                    .as_deref()
                    .unwrap()
                    .contains("a bug in the external pipeline"),
                "{t:?}"
            );
        } else {
            assert_eq!(t.status, TargetStatus::Scanned, "{t:?}");
        }
    }
}
