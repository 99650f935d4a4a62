//! Policy-core benchmark: validating 1,000 generated policy files, and
//! planning 20 policies against a generated 10,000-pod snapshot.
//!
//! Run with `cargo bench --bench policy`. Prints wall time (best of 5) and
//! peak RSS (VmHWM) for each phase, each measured in a process of its own.

use std::path::{Path, PathBuf};
use std::time::Instant;

use vigil::inventory::{Inventory, Snapshot};
use vigil::plan::{PlanOptions, plan};

#[path = "common.rs"]
mod common;

fn main() {
    // Data is generated in one process and each phase is measured in its own,
    // so that a phase's peak RSS is its own and not the generator's.
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--phase") {
        return run_phase(&args[i + 1], Path::new(&args[i + 2]));
    }
    let dir = std::env::temp_dir().join(format!("vigil-bench-policy-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for phase in ["prepare", "validate", "plan"] {
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--phase", phase, dir.to_str().unwrap()])
            .status()
            .unwrap();
        assert!(status.success(), "phase {phase} failed");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

const RUNS: usize = 5;

fn run_phase(phase: &str, dir: &Path) {
    let files_dir = dir.join("many");
    let plan_dir = dir.join("plan");
    let snapshot_path = dir.join("snapshot.json");
    match phase {
        "prepare" => {
            let profile =
                std::fs::read_to_string(repo().join("policies/profiles/container-baseline.yaml"))
                    .unwrap();
            std::fs::create_dir_all(&files_dir).unwrap();
            std::fs::write(files_dir.join("profile.yaml"), &profile).unwrap();
            for i in 0..999 {
                std::fs::write(
                    files_dir.join(format!("policy-{i:04}.yaml")),
                    policy_text(&format!("p{i:04}"), i % 7),
                )
                .unwrap();
            }
            std::fs::create_dir_all(&plan_dir).unwrap();
            std::fs::write(plan_dir.join("profile.yaml"), &profile).unwrap();
            for i in 0..20 {
                std::fs::write(
                    plan_dir.join(format!("policy-{i:02}.yaml")),
                    policy_text(&format!("q{i:02}"), i),
                )
                .unwrap();
            }
            write_snapshot(&snapshot_path, 10_000);
        }
        "validate" => {
            let mut best = f64::MAX;
            for _ in 0..RUNS {
                let t = Instant::now();
                let (set, diags) = vigil::policy::load(std::slice::from_ref(&files_dir));
                let took = t.elapsed().as_secs_f64();
                assert!(diags.iter().all(|d| !d.is_error()), "{:?}", diags.first());
                assert_eq!(set.files, 1000);
                best = best.min(took);
            }
            println!(
                "validate: 1000 files (999 ScanPolicy + 1 Profile): best of {RUNS} {best:.3} s ({:.0} files/s), peak RSS {} MB",
                1000.0 / best,
                peak_mb()
            );
        }
        "plan" => {
            let mut best = f64::MAX;
            let mut targets = 0;
            for _ in 0..RUNS {
                let t = Instant::now();
                let (set, diags) = vigil::policy::load(std::slice::from_ref(&plan_dir));
                assert!(diags.iter().all(|d| !d.is_error()));
                let snapshot = Snapshot::from_path(&snapshot_path).unwrap();
                assert_eq!(snapshot.len(), 10_000);
                let (p, _) = plan(
                    &set,
                    &[],
                    Some(&snapshot as &dyn Inventory),
                    &PlanOptions::default(),
                )
                .unwrap();
                let json = serde_json::to_string(&p).unwrap();
                let took = t.elapsed().as_secs_f64();
                targets = p.policies.iter().map(|p| p.targets.len()).sum::<usize>();
                assert!(json.len() > 1000);
                best = best.min(took);
            }
            println!(
                "plan: 20 policies x 10000 pods ({} MB snapshot) -> {targets} targets: best of {RUNS} {best:.3} s (load policies + parse snapshot + plan + JSON), peak RSS {} MB",
                std::fs::metadata(&snapshot_path).unwrap().len() >> 20,
                peak_mb()
            );
        }
        other => panic!("unknown phase {other}"),
    }
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A realistic policy: selectors, access, limits, schedule, threshold, waivers.
fn policy_text(name: &str, ns: usize) -> String {
    format!(
        r#"# yaml-language-server: $schema=../schemas/policy.schema.json
apiVersion: vigil/v1
kind: ScanPolicy
metadata: {{name: {name}, description: generated}}
spec:
  profiles: [container-baseline]
  targets:
    - namespace: ns-{ns:02}
      selector:
        matchLabels: {{tier: backend}}
        matchExpressions:
          - {{key: app, operator: In, values: [app-1, app-2, app-3, app-4]}}
          - {{key: track, operator: DoesNotExist}}
    - namespace: ns-{ns2:02}
      selector: {{matchLabels: {{tier: web}}}}
      containers: [main]
  access: {{mode: per-run, tokenTTL: 15m, labels: {{team: t{ns}}}}}
  debug:
    image: registry.example/vigil@sha256:{digest}
    resources: {{limits: {{cpu: 500m, memory: 256Mi}}}}
  limits: {{concurrency: 16, perNamespace: 4, perNode: 2, apiQps: 20, scanTimeout: 2m, retries: 2}}
  schedule: "0 2 * * *"
  threshold: {{compliance: {{min: 90}}, failed: {{critical: {{max: 0}}}}}}
  waivers:
    - {{control: CB-20, expires: "2030-01-01T00:00:00Z", justification: generated, approver: bench@example.com}}
  output: {{dir: results, recipients: [age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p]}}
"#,
        ns2 = (ns + 1) % 20,
        digest = "1".repeat(64)
    )
}

/// A `kubectl get pods -A -o json`-shaped snapshot with `n` pods in 20
/// namespaces over 50 nodes, two containers each, 5% not running.
fn write_snapshot(path: &Path, n: usize) {
    let mut items = Vec::with_capacity(n);
    for i in 0..n {
        let ns = format!("ns-{:02}", i % 20);
        let tier = ["backend", "web", "cache"][i % 3];
        let phase = if i % 20 == 7 { "Succeeded" } else { "Running" };
        let running = phase == "Running";
        let state = if running {
            serde_json::json!({"running": {"startedAt": "2026-11-20T10:00:00Z"}})
        } else {
            serde_json::json!({"terminated": {"exitCode": 0}})
        };
        let image = if i % 4 == 0 {
            format!("gcr.io/distroless/static@sha256:{}", "2".repeat(64))
        } else {
            format!("registry.example/app-{}:1.{}", i % 5, i % 9)
        };
        items.push(serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": format!("pod-{i:05}"), "namespace": ns, "uid": format!("uid-{i}"),
                "labels": {"app": format!("app-{}", i % 5), "tier": tier, "pod-template-hash": "abc123"},
                "annotations": {"kubectl.kubernetes.io/default-container": "main"}},
            "spec": {"nodeName": format!("node-{:02}", i % 50),
                "securityContext": {"runAsUser": 10001, "runAsNonRoot": true},
                "containers": [
                    {"name": "main", "image": image, "resources": {"limits": {"cpu": "1", "memory": "512Mi"}}},
                    {"name": "proxy", "image": "envoyproxy/envoy:v1.31.0"}]},
            "status": {"phase": phase, "podIP": "10.0.0.1",
                "containerStatuses": [
                    {"name": "main", "ready": running, "restartCount": 0, "image": "x", "imageID": "", "state": state},
                    {"name": "proxy", "ready": running, "restartCount": 0, "image": "x", "imageID": "", "state": state}]}
        }));
    }
    let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items});
    std::fs::write(path, serde_json::to_vec(&list).unwrap()).unwrap();
}

/// Peak RSS of this process, in MB.
fn peak_mb() -> u64 {
    common::peak_rss_kib() / 1024
}
