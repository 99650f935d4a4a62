//! Workload manifests at scale (#33): 10,000 generated workloads of mixed
//! kinds (Pods, Deployments, StatefulSets, DaemonSets, Jobs, CronJobs; a
//! third hardened, a third baseline-only, a third loose), 100 per file in
//! 100 multi-document files, checked by the vigil binary as users run it
//! (`vigil run --manifest DIR`) with `pod-security-restricted` and
//! `scanner-hardening`: 32 controls per workload, one HDF document each,
//! the whole run unsigned and in plaintext so only the checking is timed.
//!
//! Prints the wall time and peak RSS next to the goals (< 1 s on 2 cores,
//! < 200 MB), and the same for reading and planning alone (`vigil plan`).
//! `VIGIL_BENCH_WORKLOADS` changes the count.
//!
//! Run with `cargo bench --bench workload`.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

#[path = "common.rs"]
mod common;

const KINDS: [&str; 6] = [
    "Pod",
    "Deployment",
    "StatefulSet",
    "DaemonSet",
    "Job",
    "CronJob",
];

fn spec(i: usize) -> String {
    // Hardness is independent of the kind (kinds cycle every 6).
    let hardness = (i / KINDS.len()) % 3;
    let image = format!("registry.example/team-{}/svc-{i}@sha256:{:064x}", i % 50, i);
    match hardness {
        // Hardened.
        0 => format!(
            "serviceAccountName: svc-{i}
automountServiceAccountToken: false
securityContext:
  runAsNonRoot: true
  runAsUser: 10001
  runAsGroup: 10001
  seccompProfile: {{type: RuntimeDefault}}
containers:
  - name: app
    image: {image}
    imagePullPolicy: IfNotPresent
    ports: [{{containerPort: 8080, name: http}}]
    env:
      - {{name: LOG_LEVEL, value: info}}
      - {{name: DB_HOST, value: db.svc}}
    resources:
      requests: {{cpu: 100m, memory: 64Mi}}
      limits: {{cpu: 500m, memory: 256Mi}}
    readinessProbe: {{httpGet: {{path: /ready, port: 8080}}}}
    livenessProbe: {{httpGet: {{path: /live, port: 8080}}}}
    securityContext:
      allowPrivilegeEscalation: false
      readOnlyRootFilesystem: true
      capabilities: {{drop: [ALL]}}
    volumeMounts: [{{name: tmp, mountPath: /tmp}}]
volumes:
  - name: tmp
    emptyDir: {{}}
"
        ),
        // Baseline only: an app and a sidecar, no restricted settings.
        1 => format!(
            "containers:
  - name: app
    image: registry.example/app-{i}:1.{i}
    ports: [{{containerPort: 80}}]
    env: [{{name: API_TOKEN, value: t-{i}}}]
  - name: proxy
    image: registry.example/proxy:2
    securityContext: {{runAsUser: 1337}}
initContainers:
  - name: init
    image: {image}
volumes:
  - {{name: conf, configMap: {{name: conf-{i}}}}}
"
        ),
        // Loose: host access and privilege.
        _ => "hostNetwork: true
containers:
  - name: agent
    image: registry.example/agent:latest
    ports: [{containerPort: 9100}]
    securityContext:
      privileged: true
      capabilities: {add: [SYS_ADMIN, NET_RAW]}
volumes:
  - {name: root, hostPath: {path: /}}
"
        .to_string(),
    }
}

fn indent(text: &str, by: usize) -> String {
    let pad = " ".repeat(by);
    text.lines()
        .map(|l| format!("{pad}{l}\n"))
        .collect::<String>()
}

fn manifest(i: usize) -> String {
    let kind = KINDS[i % KINDS.len()];
    let ns = format!("team-{}", i % 50);
    let name = format!("svc-{i}");
    let pod = spec(i);
    match kind {
        "Pod" => format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: {ns}\n  labels: {{app: {name}}}\nspec:\n{}",
            indent(&pod, 2)
        ),
        "CronJob" => format!(
            "apiVersion: batch/v1\nkind: CronJob\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n  schedule: \"0 3 * * *\"\n  jobTemplate:\n    spec:\n      template:\n        metadata:\n          labels: {{app: {name}}}\n        spec:\n          restartPolicy: OnFailure\n{}",
            indent(&pod, 10)
        ),
        _ => format!(
            "apiVersion: {}\nkind: {kind}\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n  selector:\n    matchLabels: {{app: {name}}}\n  template:\n    metadata:\n      labels: {{app: {name}}}\n    spec:\n{}",
            if kind == "Job" { "batch/v1" } else { "apps/v1" },
            indent(&pod, 6)
        ),
    }
}

fn main() {
    let n: usize = std::env::var("VIGIL_BENCH_WORKLOADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let dir = std::env::temp_dir().join(format!("vigil-bench-workload-{}", std::process::id()));
    let manifests = dir.join("manifests");
    std::fs::create_dir_all(&manifests).unwrap();
    let per_file = 100;
    let mut bytes = 0;
    for f in 0..n.div_ceil(per_file) {
        let mut text = String::new();
        for i in f * per_file..((f + 1) * per_file).min(n) {
            let _ = writeln!(text, "---\n{}", manifest(i));
        }
        bytes += text.len();
        std::fs::write(manifests.join(format!("m-{f:03}.yaml")), text).unwrap();
    }
    std::fs::write(
        dir.join("p.yaml"),
        "apiVersion: vigil/v1\nkind: ScanPolicy\nmetadata: {name: bench}\nspec:\n  profiles: [pod-security-restricted, scanner-hardening]\n  targets: [{manifest: manifests}]\n  limits: {concurrency: 4}\n",
    )
    .unwrap();
    let profiles = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/profiles");
    println!(
        "workload bench: {n} workloads ({} kinds) in {} files, {:.1} MB of YAML",
        KINDS.len(),
        n.div_ceil(per_file),
        bytes as f64 / 1e6
    );
    // The checking alone, in this process: read and default every
    // manifest, then evaluate every control on every workload (what the
    // run does before it writes anything).
    let started = Instant::now();
    let (found, errors) =
        vigil::inventory::manifest::read(&manifests, &manifests.display().to_string());
    assert!(errors.is_empty(), "{errors:?}");
    let read = started.elapsed().as_secs_f64();
    let (set, _) = vigil::policy::load(std::slice::from_ref(&profiles));
    let prepared: Vec<vigil::report::PreparedProfile> = set
        .profiles
        .iter()
        .filter(|p| {
            p.value.metadata.name.starts_with("pod-security-restricted")
                || p.value.metadata.name == "scanner-hardening"
        })
        .map(vigil::report::PreparedProfile::new)
        .collect();
    // On every core, as the run schedules targets.
    let now = chrono::Utc::now();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = found.workloads.len().div_ceil(threads).max(1);
    let failed_controls: usize = std::thread::scope(|scope| {
        let handles: Vec<_> = found
            .workloads
            .chunks(chunk)
            .map(|part| {
                let prepared = &prepared;
                scope.spawn(move || {
                    let mut failed = 0;
                    for w in part {
                        let id = w.target_id();
                        let ev = vigil::report::Evaluation {
                            run_id: "bench",
                            scan_id: "bench",
                            target_id: &id,
                            approach: vigil::policy::model::Approach::Manifest,
                            profiles: prepared,
                            waivers: &[],
                            now,
                            started: now,
                            workload: Some(w),
                            pod_security_version: None,
                        };
                        let r = vigil::report::evaluate_target(
                            &ev,
                            Ok(&vigil::facts::Facts::default()),
                        );
                        failed += r
                            .profiles
                            .iter()
                            .flat_map(|p| &p.controls)
                            .filter(|c| {
                                c.results
                                    .iter()
                                    .any(|t| t.status == vigil::checks::Status::Failed)
                            })
                            .count();
                    }
                    failed
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    let checked = started.elapsed().as_secs_f64();
    println!(
        "workload bench: check in process (read + default + locate {read:.2} s, then {} controls): {checked:.2} s ({:.0} workloads/s), peak RSS {:.0} MB (goal < 1 s, < 200 MB){}; {failed_controls} failed controls",
        found.workloads.len() * 32,
        n as f64 / checked,
        (common::peak_rss_kib() << 10) as f64 / 1e6,
        if checked > 1.0 || common::peak_rss_kib() > 200_000 {
            "  ** over the goal **"
        } else {
            ""
        }
    );
    drop(found);
    let mut failed = false;
    for (what, args, goal) in [
        ("plan (read, default, locate)", vec!["plan", "p.yaml"], None),
        (
            "run (check 32 controls each, write HDF + summary)",
            vec!["run", "p.yaml"],
            Some(1.0),
        ),
    ] {
        let mut best = (f64::MAX, 0u64);
        for _ in 0..3 {
            let _ = std::fs::remove_dir_all(dir.join("out"));
            let started = Instant::now();
            let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"));
            cmd.current_dir(&dir).args(&args).arg(&profiles);
            if args[0] == "run" {
                cmd.args([
                    "--unsigned",
                    "--plaintext",
                    "--out",
                    "out",
                    "--details",
                    "none",
                ]);
            }
            let (code, kib) = common::child_peak_rss_kib(
                cmd.stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null()),
            );
            let secs = started.elapsed().as_secs_f64();
            if code != 0 && code != 1 {
                eprintln!("workload bench: vigil {} exited {code}", args[0]);
                failed = true;
            }
            if secs < best.0 {
                best = (secs, kib);
            }
        }
        let mb = (best.1 << 10) as f64 / 1e6;
        let over = goal.is_some_and(|g| best.0 > g) || mb > 200.0;
        println!(
            "workload bench: {what}: {:.2} s ({:.0} workloads/s), peak RSS {mb:.0} MB (goal{} < 200 MB){}",
            best.0,
            n as f64 / best.0,
            goal.map_or(String::new(), |g| format!(" < {g} s,")),
            if over { "  ** over the goal **" } else { "" }
        );
    }
    if std::env::var_os("VIGIL_BENCH_KEEP").is_some() {
        println!("workload bench: kept {}", dir.display());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
    assert!(!failed, "a run failed");
}
