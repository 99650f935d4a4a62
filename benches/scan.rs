//! Scan benchmark: 200 local rootfs targets with the baseline profile.
//!
//! Prints targets per second and peak RSS for the full pipeline (plan,
//! collect, evaluate, write HDF and summary), and, in the same run, a lower
//! bound that only collects the same facts (the same stats, reads and walks)
//! with no evaluation and no output. Each phase runs in its own process so
//! its peak RSS is its own. Run with `cargo bench --bench scan`.

use std::path::{Path, PathBuf};
use std::time::Instant;

const TARGETS: usize = 200;
const CONCURRENCY: u32 = 4;
const RUNS: usize = 5;

#[path = "common.rs"]
mod common;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--phase") {
        return run_phase(&args[i + 1], Path::new(&args[i + 2]));
    }
    let dir = std::env::temp_dir().join(format!("vigil-bench-scan-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for phase in ["prepare", "lower-bound", "full"] {
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--phase", phase, dir.to_str().unwrap()])
            .status()
            .unwrap();
        assert!(status.success(), "phase {phase} failed");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn load(dir: &Path) -> (vigil::policy::PolicySet, vigil::plan::Plan) {
    let (set, diags) =
        vigil::policy::load(&[dir.join("policy.yaml"), repo().join("policies/profiles")]);
    assert!(diags.iter().all(|d| !d.is_error()), "{:?}", diags.first());
    let (plan, _) =
        vigil::plan::plan(&set, &[], None, &vigil::plan::PlanOptions::default()).unwrap();
    (set, plan)
}

fn run_phase(phase: &str, dir: &Path) {
    match phase {
        "prepare" => prepare(dir),
        "lower-bound" => {
            let (set, plan) = load(dir);
            let pp = &plan.policies[0];
            let profiles: Vec<_> = pp.targets[0]
                .profiles
                .iter()
                .filter_map(|n| set.profile(n))
                .collect();
            let req = vigil::facts::compile::compile(
                profiles.iter().flat_map(|p| p.value.controls.iter()),
                1 << 20,
            );
            let mut best = f64::MAX;
            for _ in 0..RUNS {
                let t = Instant::now();
                // The same worker shape as the runner: CONCURRENCY threads
                // taking the next target.
                let next = std::sync::atomic::AtomicUsize::new(0);
                let n = std::sync::atomic::AtomicUsize::new(0);
                std::thread::scope(|s| {
                    for _ in 0..CONCURRENCY {
                        s.spawn(|| {
                            while let Some(t) = pp
                                .targets
                                .get(next.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
                            {
                                let files =
                                    vigil::facts::rootfs::collect(t.rootfs.as_ref().unwrap(), &req)
                                        .unwrap()
                                        .files
                                        .len();
                                n.fetch_add(files, std::sync::atomic::Ordering::Relaxed);
                            }
                        });
                    }
                });
                let n = n.into_inner();
                assert!(n > 0);
                best = best.min(t.elapsed().as_secs_f64());
            }
            std::fs::write(dir.join("lower.txt"), best.to_string()).unwrap();
            println!(
                "scan lower bound (collect only): {TARGETS} targets in {best:.3} s = {:.0} targets/s, peak RSS {} MB",
                TARGETS as f64 / best,
                peak_mb()
            );
        }
        "full" => {
            let (set, plan) = load(dir);
            let pp = &plan.policies[0];
            let policy = &set.policies[0];
            let mut best = f64::MAX;
            for i in 0..RUNS {
                let t = Instant::now();
                let run_id = format!("bench-{i}");
                let out =
                    vigil::report::output::PlainDir::create(&dir.join("out"), "bench", &run_id)
                        .unwrap();
                let opts = vigil::runner::RunOptions {
                    labels: Default::default(),
                    cancel: Default::default(),
                    run_id,
                    threshold: None,
                    progress: Box::new(|_, _| {}),
                    deadline: None,
                    scanner: Default::default(),
                    keep_controls: false,
                };
                let (summary, _) = vigil::runner::run_policy(
                    &set,
                    policy,
                    pp,
                    &opts,
                    &out,
                    &vigil::runner::LocalCollector::default(),
                )
                .unwrap();
                assert_eq!(summary.targets.len(), TARGETS);
                assert!(!summary.has_errors());
                best = best.min(t.elapsed().as_secs_f64());
            }
            let lower: f64 = std::fs::read_to_string(dir.join("lower.txt"))
                .unwrap()
                .parse()
                .unwrap();
            println!(
                "scan full (collect + evaluate 24 controls + write HDF): {TARGETS} targets in {best:.3} s = {:.0} targets/s, peak RSS {} MB, {:.2}x the lower bound",
                TARGETS as f64 / best,
                peak_mb(),
                best / lower
            );
        }
        other => panic!("unknown phase {other}"),
    }
}

/// 200 copies of the fixture trees (cycling debian/alpine/distroless), each
/// with 300 extra files under /usr so that walks do real work.
fn prepare(dir: &Path) {
    let kinds = ["debian", "alpine", "distroless"];
    let mut targets = String::new();
    for i in 0..TARGETS {
        let kind = kinds[i % 3];
        let dest = dir.join(format!("t{i:03}"));
        std::fs::create_dir_all(&dest).unwrap();
        let status = std::process::Command::new("cp")
            .args([
                "-a",
                &format!("{}/.", repo().join("fixtures/rootfs").join(kind).display()),
                dest.to_str().unwrap(),
            ])
            .status()
            .unwrap();
        assert!(status.success());
        for d in 0..10 {
            let sub = dest.join(format!("usr/share/pkg{d}"));
            std::fs::create_dir_all(&sub).unwrap();
            for f in 0..30 {
                std::fs::write(sub.join(format!("file{f}.txt")), "data\n").unwrap();
            }
        }
        targets.push_str(&format!(
            "    - {{rootfs: {}, name: t{i:03}}}\n",
            dest.display()
        ));
    }
    std::fs::write(
        dir.join("policy.yaml"),
        format!("apiVersion: vigil/v1\nkind: ScanPolicy\nmetadata: {{name: bench}}\nspec:\n  profiles: [container-baseline]\n  limits: {{concurrency: {CONCURRENCY}}}\n  targets:\n{targets}"),
    )
    .unwrap();
}

fn peak_mb() -> u64 {
    common::peak_rss_kib() / 1024
}
