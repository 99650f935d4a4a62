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

/// Fails each target its own way, and counts its calls; when `polled` has
/// a runtime, its collections are futures polled there, which note the
/// threads they ran on and how many were in flight at once.
struct Scripted {
    calls: AtomicUsize,
    polled: Option<tokio::runtime::Runtime>,
    in_flight: AtomicUsize,
    peak: AtomicUsize,
    threads: std::sync::Mutex<std::collections::BTreeSet<String>>,
    /// Two scans meet here: two in flight at once, or a timeout.
    pair: tokio::sync::Barrier,
    unpaired: AtomicUsize,
}

impl Scripted {
    fn new() -> Scripted {
        Scripted {
            calls: AtomicUsize::new(0),
            polled: None,
            in_flight: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            threads: Default::default(),
            pair: tokio::sync::Barrier::new(2),
            unpaired: AtomicUsize::new(0),
        }
    }

    fn polled() -> Scripted {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        Scripted {
            polled: Some(runtime),
            ..Scripted::new()
        }
    }
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

    fn polled_on(&self, _: &PlannedTarget) -> Option<&tokio::runtime::Handle> {
        self.polled.as_ref().map(|r| r.handle())
    }

    fn collect_polled<'a>(
        &'a self,
        t: &'a PlannedTarget,
        req: &'a FactRequest,
        scan_id: &'a str,
    ) -> crate::approach::collector::Polled<'a> {
        Box::pin(async move {
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.peak.fetch_max(now, Ordering::SeqCst);
            let thread = std::thread::current().name().unwrap_or("").to_string();
            self.threads.lock().unwrap().insert(thread);
            let wait = std::time::Duration::from_secs(10);
            if tokio::time::timeout(wait, self.pair.wait()).await.is_err() {
                self.unpaired.fetch_add(1, Ordering::SeqCst);
            }
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            self.collect(t, req, scan_id)
        })
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

/// Both ways of gathering (a thread per slot, or futures polled on one
/// thread) file failures alike and catch a collector's panic.
#[test]
fn failures_are_filed_by_kind_and_a_panic_fails_only_its_target() {
    for collector in [Scripted::new(), Scripted::polled()] {
        failures_are_filed_by_kind(&collector);
    }
}

fn failures_are_filed_by_kind(collector: &Scripted) {
    let dir = Scratch::new("kinds");
    let summary = run(&dir.0, collector, false, None);
    assert_eq!(collector.calls.load(Ordering::Relaxed), 4);
    let threads = collector.threads.lock().unwrap().clone();
    if collector.polled.is_some() {
        // concurrency: 2 scans polled together, never more, and never on
        // a thread of their own.
        assert_eq!(collector.peak.load(Ordering::SeqCst), 2);
        assert_eq!(collector.unpaired.load(Ordering::SeqCst), 0);
        assert!(
            threads.iter().all(|t| !t.starts_with("vigil-")),
            "{threads:?}"
        );
    } else {
        assert!(threads.is_empty(), "nothing polled: {threads:?}");
    }
    assert_eq!(kind_of(&summary, "a"), Some(FailureKind::Timeout));
    assert_eq!(kind_of(&summary, "b"), Some(FailureKind::Other));
    assert_eq!(kind_of(&summary, "c"), Some(FailureKind::NotScanned));
    assert_eq!(kind_of(&summary, "d"), Some(FailureKind::Other));
    assert_eq!(summary.stats.timeouts, 1, "only a's kind is Timeout");
    // Coverage groups them by the same kinds.
    use crate::report::run::Gap;
    let gaps: Vec<(Gap, usize)> = summary
        .coverage
        .gaps
        .iter()
        .map(|g| (g.reason, g.count))
        .collect();
    assert_eq!(
        gaps,
        [(Gap::Error, 2), (Gap::Timeout, 1), (Gap::NotScanned, 1)]
    );
    assert_eq!(
        (summary.coverage.expected, summary.coverage.scanned),
        (4, 0)
    );
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
    let stops = [(true, None), (false, Some(std::time::Instant::now()))];
    for ((cancel, deadline), polled) in stops.into_iter().flat_map(|s| [(s, false), (s, true)]) {
        let dir = Scratch::new("stop");
        let collector = if polled {
            Scripted::polled()
        } else {
            Scripted::new()
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

/// An external scanner is a collector like vigil's own: its report is
/// bound and counted as it came, its evidence is its own word, and a scan
/// that panics fails its target while the others are scanned.
#[test]
fn a_panicking_external_scan_fails_only_its_target() {
    struct Reporting;
    impl Collector for Reporting {
        fn collect(
            &self,
            t: &PlannedTarget,
            _: &FactRequest,
            _: &str,
        ) -> Result<Gathered, Failure> {
            if t.id.ends_with("/d") {
                panic!("a bug in the external pipeline");
            }
            Ok(Gathered {
                collected: Collected::Report(br#"{"profiles": [{"name": "p", "controls": [{"id": "C-1", "impact": 0.5, "results": [{"status": "passed", "code_desc": "ok"}]}]}]}"#.to_vec()),
                approach: t.approach,
                attempts: 1,
            })
        }
        fn evidence(&self, _: Approach) -> crate::policy::model::Evidence {
            crate::policy::model::Evidence::External
        }
    }
    let dir = Scratch::new("external-panic");
    let (set, plan) = planned(&dir.0);
    let out = crate::report::output::PlainDir::create(&dir.0.join("out"), "life", "r1").unwrap();
    let opts = options(false, None);
    let (summary, _) = run_policy(
        &set,
        &set.policies[0],
        &plan.policies[0],
        &opts,
        &out,
        &Reporting,
    )
    .unwrap();
    assert_eq!(summary.targets.len(), 4);
    for t in &summary.targets {
        assert_eq!(
            t.evidence,
            crate::policy::model::Evidence::External,
            "{t:?}"
        );
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
            assert_eq!((t.counts.passed, t.counts.error), (1, 0), "{t:?}");
        }
    }
}

/// Fails a, b and c with the kinds the API and the approaches report;
/// gathers d from its (empty) root.
struct Refused;

impl Collector for Refused {
    fn collect(&self, t: &PlannedTarget, r: &FactRequest, id: &str) -> Result<Gathered, Failure> {
        match t.id.rsplit('/').next().unwrap() {
            "a" => Err(Failure::new(FailureKind::Forbidden, "403")),
            "b" => Err(Failure::new(FailureKind::NoShell, "no /bin/sh")),
            "c" => Err(Failure::new(FailureKind::Transient, "503 three times")),
            _ => LocalCollector {
                registry: Default::default(),
            }
            .collect(t, r, id),
        }
    }
}

/// The matched containers a plan did not make targets: `n` of each code.
fn skipped(codes: &[(crate::plan::SkipCode, usize)]) -> Vec<crate::plan::Skipped> {
    let mut out = Vec::new();
    for (code, n) in codes {
        for i in 0..*n {
            out.push(crate::plan::Skipped {
                id: format!("ns/{code:?}-{i}/app"),
                code: *code,
                reason: "planned so".into(),
            });
        }
    }
    out
}

/// Coverage counts every reason a target may go unscanned, each once: the
/// run's own failures by kind and the plan's lost containers, while what
/// the policy left out by its own settings is listed but not counted. The
/// gate compares exactly (25% meets `coverage.min: 25`, not 25.001) and a
/// missed gate fails the run, never an error without one.
#[test]
fn coverage_counts_each_reason_a_target_goes_unscanned() {
    use crate::plan::SkipCode;
    use crate::report::run::Gap;
    let lost = [
        (SkipCode::Windows, 1),
        (SkipCode::ContainerNotRunning, 1),
        (SkipCode::NoApproach, 12),
        (SkipCode::InitContainer, 2),
        (SkipCode::EphemeralContainer, 1),
        (SkipCode::PodNotRunning, 1),
    ];
    let run_with = |collector: &dyn Collector, threshold: &str, codes: &[(SkipCode, usize)]| {
        let dir = Scratch::new("coverage");
        let (set, mut plan) = planned(&dir.0);
        for n in ["a", "b", "c", "d"] {
            std::fs::create_dir_all(dir.0.join(n).join("etc")).unwrap();
        }
        plan.policies[0].skipped = skipped(codes);
        let out =
            crate::report::output::PlainDir::create(&dir.0.join("out"), "life", "r1").unwrap();
        let mut opts = options(false, None);
        let value: serde_json::Value = serde_json::from_str(threshold).unwrap();
        opts.threshold = Some(Threshold::parse(&value).unwrap());
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
    };
    let groups = |gs: &[crate::report::run::GapGroup]| -> Vec<(Gap, usize)> {
        gs.iter().map(|g| (g.reason, g.count)).collect()
    };

    // Three targets refused, one scanned, 14 containers lost in the plan.
    let s = run_with(&Refused, r#"{"coverage": {"min": 50}}"#, &lost);
    assert_eq!(
        (s.coverage.expected, s.coverage.scanned),
        (4 + 14, 1),
        "{:?}",
        s.targets.iter().map(|t| &t.error).collect::<Vec<_>>()
    );
    assert_eq!(
        groups(&s.coverage.gaps),
        [
            (Gap::NoApproach, 12),
            (Gap::Forbidden, 1),
            (Gap::NoShell, 1),
            (Gap::Transient, 1),
            (Gap::Windows, 1),
            (Gap::ContainerNotRunning, 1),
        ]
    );
    assert_eq!(
        groups(&s.coverage.excluded),
        [
            (Gap::InitContainer, 2),
            (Gap::EphemeralContainer, 1),
            (Gap::PodNotRunning, 1)
        ]
    );
    // The count is exact, the ids a pointer.
    let no_approach = &s.coverage.gaps[0];
    assert_eq!(no_approach.examples.len(), crate::report::run::GAP_EXAMPLES);
    assert_eq!(no_approach.examples[0], "ns/NoApproach-0/app");
    assert_eq!(
        no_approach.examples[2], "ns/NoApproach-2/app",
        "natural order"
    );
    assert!(!s.coverage_threshold.as_ref().unwrap().passed);
    assert_eq!(
        s.verdict,
        RunVerdict::Error,
        "refused targets are errors first"
    );

    // Every target scanned, 12 lost: 4 of 16 is 25% exactly.
    let local = LocalCollector {
        registry: Default::default(),
    };
    let codes = &lost[2..];
    let s = run_with(&local, r#"{"coverage.min": 25}"#, codes);
    assert_eq!((s.coverage.expected, s.coverage.scanned), (16, 4));
    assert!(
        s.coverage_threshold.as_ref().unwrap().passed,
        "{:?}",
        s.coverage_threshold
    );
    assert_eq!(s.verdict, RunVerdict::Pass);
    let s = run_with(&local, r#"{"coverage.min": 25.001}"#, codes);
    let gate = s.coverage_threshold.as_ref().unwrap();
    assert!(!gate.passed);
    assert_eq!(
        gate.checks[0].detail,
        "coverage 25.0% (4 of 16 targets scanned), min 25.001%"
    );
    assert_eq!(s.verdict, RunVerdict::Fail, "a missed gate fails the run");
    let text = crate::report::text::table(&s, false, Default::default(), 10);
    assert!(
        text.contains("coverage: 4 of 16 targets scanned (25.0%), coverage threshold FAIL")
            && text.contains("not scanned: 12 no-approach (ns/NoApproach-0/app, ns/NoApproach-1/app, ns/NoApproach-2/app, …)")
            && text.contains("left out by the policy: 2 init-container"),
        "{text}"
    );
    // Target rules still judge each target; coverage-only thresholds none.
    assert!(s.targets.iter().all(|t| t.threshold.is_none()));
    // Only the policy's own exclusions: nothing lost, 100%.
    let s = run_with(&local, r#"{"coverage.min": 100}"#, &lost[3..]);
    assert_eq!((s.coverage.expected, s.coverage.scanned), (4, 4));
    assert_eq!(s.verdict, RunVerdict::Pass);

    // Shards add up to the whole run: each part's coverage added equals the
    // coverage of all of it at once.
    let whole = crate::report::run::Coverage::of(
        &[],
        (0..30).map(|i| {
            (
                if i % 3 == 0 { "a/b/c" } else { "d/e/f" },
                [Gap::Windows, Gap::NoApproach, Gap::InitContainer][i % 3],
            )
        }),
    );
    let mut parts = crate::report::run::Coverage::of(
        &[],
        (0..15).map(|i| {
            (
                if i % 3 == 0 { "a/b/c" } else { "d/e/f" },
                [Gap::Windows, Gap::NoApproach, Gap::InitContainer][i % 3],
            )
        }),
    );
    parts.add(&crate::report::run::Coverage::of(
        &[],
        (15..30).map(|i| {
            (
                if i % 3 == 0 { "a/b/c" } else { "d/e/f" },
                [Gap::Windows, Gap::NoApproach, Gap::InitContainer][i % 3],
            )
        }),
    ));
    assert_eq!(parts, whole);
}

/// A policy's threshold that does not parse (only a policy built without
/// lint has one) stops the run before any scan: it is never a run judged
/// without its gate.
#[test]
fn a_threshold_that_does_not_parse_is_an_error_not_a_missing_gate() {
    let dir = Scratch::new("bad-threshold");
    let (mut set, plan) = planned(&dir.0);
    set.policies[0].value.spec.threshold = Some(serde_json::json!({"compliance": {"min": "most"}}));
    let out = crate::report::output::PlainDir::create(&dir.0.join("out"), "life", "r1").unwrap();
    let collector = Scripted::new();
    let run = run_policy(
        &set,
        &set.policies[0],
        &plan.policies[0],
        &options(false, None),
        &out,
        &collector,
    );
    assert!(
        matches!(run, Err(RunError::Threshold(ref e)) if e.to_string().starts_with("spec.threshold/compliance/min")),
        "{:?}",
        run.map(|(s, _)| s.verdict)
    );
    assert_eq!(
        collector.calls.load(Ordering::Relaxed),
        0,
        "nothing scanned"
    );
}
