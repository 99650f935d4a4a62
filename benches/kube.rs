//! Kubernetes scan benchmark against the test API server with 50 ms of
//! latency injected on every request: 200 containers at concurrency 32.
//! Prints exec calls per container, total API requests, wall time, and the
//! latency bound, with the gatherers running live and in replay mode (exec
//! answers recorded once, then served without starting a process). Needs root and /bin/busybox (busybox-static), like the
//! tests: exec runs the gatherer under chroot on this machine.
//!
//! Run with `cargo bench --bench kube`.

// The test server serves the whole suite; this program uses part of it.
#[allow(dead_code)]
#[path = "../tests/fakeapi/mod.rs"]
mod fakeapi;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const CONTAINERS: usize = 200;
const CONCURRENCY: usize = 32;
const NAMESPACES: usize = 2;

fn main() {
    let latency_ms: u64 = std::env::var("VIGIL_BENCH_LATENCY_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    if !rustix::process::geteuid().is_root() || !Path::new("/bin/busybox").is_file() {
        eprintln!(
            "kube bench: needs root and /bin/busybox (apt-get install busybox-static); skipped"
        );
        return;
    }
    // VIGIL_BENCH_ONLY=load (or fleet) runs only those figures; =latency
    // only the 200-container ones (live and replay).
    let only = std::env::var("VIGIL_BENCH_ONLY").unwrap_or_default();
    let dir = std::env::temp_dir().join(format!("vigil-bench-kube-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    // One alpine-like root with busybox, shared by every pod.
    let root = dir.join("root");
    assert!(
        Command::new("cp")
            .args(["-a"])
            .arg(repo.join("fixtures/rootfs/alpine"))
            .arg(&root)
            .status()
            .unwrap()
            .success()
    );
    let _ = std::fs::remove_file(root.join("bin/busybox"));
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    for applet in [
        "sh", "stat", "readlink", "head", "base64", "find", "wc", "tr", "printf",
    ] {
        let _ = std::fs::remove_file(root.join("bin").join(applet));
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
    let vigil = std::env::var("VIGIL_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo.join("target/release/vigil"));
    assert!(
        vigil.is_file(),
        "build the binary first: cargo build --release (or set VIGIL_BIN)"
    );
    if only == "load" || only == "fleet" {
        if only == "load" {
            load(&dir, &root, &vigil, &repo);
        } else {
            fleet(&dir, &root, &vigil, &repo);
        }
        let _ = std::fs::remove_dir_all(&dir);
        return;
    }
    let mut pods = Vec::new();
    let mut rootfs = HashMap::new();
    for i in 0..CONTAINERS {
        let ns = format!("bench-{}", i % NAMESPACES);
        let name = format!("pod-{i:03}");
        pods.push(serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "labels": {"app": "bench"}},
            "spec": {"containers": [{"name": "app", "image": "registry.example/app:1"}]},
            "status": {"phase": "Running", "containerStatuses": [{"name": "app", "ready": true, "restartCount": 0, "image": "x", "imageID": "", "state": {"running": {}}}]}
        }));
        rootfs.insert((ns, name), root.clone());
    }
    let server = fakeapi::FakeApiServer::start(&dir, pods, rootfs);
    let targets: String = (0..NAMESPACES).map(|n| format!("    - {{namespace: bench-{n}, selector: {{matchLabels: {{app: bench}}}}, approach: api}}\n")).collect();
    std::fs::write(
        dir.join("p.yaml"),
        format!("apiVersion: vigil/v1\nkind: ScanPolicy\nmetadata: {{name: bench}}\nspec:\n  profiles: [container-baseline]\n  limits: {{concurrency: {CONCURRENCY}, apiQps: 1000}}\n  targets:\n{targets}"),
    )
    .unwrap();
    // Run once without latency (the floor: the gatherer scripts run under
    // chroot on this same 2-core machine, which a real cluster's nodes would
    // do), then with the injected latency.
    let timed_run = |n: usize| -> (f64, usize, usize, Timeline) {
        let before = server.request_log().len();
        let t = Instant::now();
        let out = Command::new(&vigil)
            .args(["run", "p.yaml"])
            .arg(repo.join("policies/profiles"))
            .args([
                "--out",
                &format!("out{n}"),
                "--unsigned",
                "--plaintext",
                "--format",
                "json",
            ])
            .current_dir(&dir)
            .env("KUBECONFIG", &server.kubeconfig)
            .output()
            .unwrap();
        let wall = t.elapsed().as_secs_f64();
        assert!(
            out.status.code().is_some_and(|c| c == 0 || c == 1),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let log = server.request_log();
        let execs = log[before..]
            .iter()
            .filter(|l| l.path.contains("/exec?"))
            .count();
        let timeline = Timeline::of(t, &log[before..]);
        (wall, log.len() - before, execs, timeline)
    };
    let run = |n: usize| -> (f64, usize, usize) {
        let (f, r, e, _) = timed_run(n);
        (f, r, e)
    };
    server.set_latency(Duration::ZERO);
    let (floor, _, _) = run(0);
    server.set_latency(Duration::from_millis(latency_ms));
    let (wall, requests, execs) = run(1);
    // The run's critical path in round trips: the pod lists (all namespaces
    // at once), the caller's access reviews (who it is, asked alongside),
    // the creates (ServiceAccount, Role and anchor Secret in every
    // namespace at once), each RoleBinding after its Role with the
    // TokenRequest beside it, the access reviews confirming the token's
    // rights, then the exec waves, then one round of deletes.
    let setup = 5;
    let cleanup = 1;
    // Some slot runs ceil(200/32) = 7 execs one after another: no schedule
    // finishes the execs in fewer than 7 round trips.
    let waves = CONTAINERS.div_ceil(CONCURRENCY);
    let exec_bound = waves as f64 * latency_ms as f64 / 1000.0;
    let bound = (setup + cleanup) as f64 * latency_ms as f64 / 1000.0 + exec_bound;
    println!(
        "kube: {CONTAINERS} containers in {NAMESPACES} namespaces, concurrency {CONCURRENCY}, {latency_ms} ms per request"
    );
    println!(
        "  exec calls per container: {:.2}; API requests: {requests} ({execs} exec + {} others)",
        execs as f64 / CONTAINERS as f64,
        requests - execs
    );
    println!(
        "  latency bound: {bound:.2} s ({setup} setup + {cleanup} cleanup round trips + {waves} exec round trips ({CONTAINERS} execs, {CONCURRENCY} at a time) x {latency_ms} ms)"
    );
    println!(
        "  wall: {wall:.2} s = {:.2}x the bound; without latency: {floor:.2} s (the containers' gatherer scripts run under chroot on this same machine)",
        wall / bound
    );
    println!(
        "  latency cost (wall - wall without latency): {:.2} s = {:.2}x the bound",
        wall - floor,
        (wall - floor) / bound
    );
    // Replay mode: exec answers come from a recording of the gatherer's
    // output (one recording run, then the measured one), so the figure is
    // vigil's own: its concurrency, rate limit and round trips.
    server.set_replay(true);
    server.set_latency(Duration::ZERO);
    let _ = run(2);
    let (replay_floor, _, _) = run(3);
    server.set_latency(Duration::from_millis(latency_ms));
    let (replay_wall, replay_requests, replay_execs, timeline) = timed_run(4);
    println!(
        "  replay mode (no process started per exec): wall {replay_wall:.2} s = {:.2}x the bound; exec calls per container: {:.2}; API requests: {replay_requests}",
        replay_wall / bound,
        replay_execs as f64 / CONTAINERS as f64
    );
    // What the latency costs vigil, apart from its own local work (start,
    // profiles, evaluation, 200 HDF files, sealing), which no schedule of
    // requests can hide: the figure the 1.5x goal is about.
    println!(
        "  replay without latency: {replay_floor:.2} s (vigil's local work); latency cost {:.2} s = {:.2}x the bound",
        replay_wall - replay_floor,
        (replay_wall - replay_floor) / bound
    );
    println!(
        "  the replay run's path: {} setup round trips (the bound: {setup}), the execs in {:.2} s (the bound: {waves} x {latency_ms} ms = {:.2} s), {} cleanup round trips (the bound: {cleanup}); first request {:.2} s after start, exit {:.2} s after the last answer",
        timeline.setup_rounds,
        timeline.exec_span,
        exec_bound,
        timeline.cleanup_rounds,
        timeline.head,
        timeline.tail,
    );
    drop(server);
    if only != "latency" {
        load(&dir, &root, &vigil, &repo);
        fleet(&dir, &root, &vigil, &repo);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The load figures: 2,000 targets at concurrency 64 against the test
/// server (no injected latency, no rate limit to speak of): throughput,
/// vigil's peak RSS and the p50/p99 scan latency.
fn load(dir: &Path, root: &Path, vigil: &Path, repo: &Path) {
    // VIGIL_BENCH_LOAD_TARGETS: another count, to tell the cost per target
    // from the fixed one.
    let targets_n: usize = std::env::var("VIGIL_BENCH_LOAD_TARGETS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    const NS: usize = 8;
    let mut pods = Vec::new();
    let mut rootfs = HashMap::new();
    for i in 0..targets_n {
        let ns = format!("load-{}", i % NS);
        let name = format!("pod-{i:04}");
        pods.push(serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "labels": {"app": "load"}},
            "spec": {"nodeName": format!("node-{}", i % 20), "containers": [{"name": "app", "image": "registry.example/app:1"}]},
            "status": {"phase": "Running", "containerStatuses": [{"name": "app", "ready": true, "restartCount": 0, "image": "x", "imageID": "", "state": {"running": {}}}]}
        }));
        rootfs.insert((ns, name), root.to_path_buf());
    }
    let sub = dir.join("load");
    std::fs::create_dir_all(&sub).unwrap();
    let server = fakeapi::FakeApiServer::start(&sub, pods, rootfs);
    let targets: String = (0..NS)
        .map(|n| format!("    - {{namespace: load-{n}, selector: {{matchLabels: {{app: load}}}}, approach: api}}\n"))
        .collect();
    std::fs::write(
        sub.join("p.yaml"),
        format!("apiVersion: vigil/v1\nkind: ScanPolicy\nmetadata: {{name: load}}\nspec:\n  profiles: [container-baseline]\n  limits: {{concurrency: 64, apiQps: 10000}}\n  targets:\n{targets}"),
    )
    .unwrap();
    let (wall, summary, rss_kb) = measured_run(&sub, vigil, repo, &server.kubeconfig);
    let mut durations: Vec<f64> = summary[0]["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["duration"].as_f64().unwrap())
        .collect();
    let scanned = summary[0]["targets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["status"] == "scanned")
        .count();
    durations.sort_by(f64::total_cmp);
    let pct = |p: f64| durations[((durations.len() as f64 - 1.0) * p).round() as usize];
    println!(
        "load: {targets_n} targets ({scanned} scanned) in {NS} namespaces at concurrency 64: wall {wall:.1} s = {:.0} targets/s; vigil peak RSS {} MB (goal <= 60 MB at 2,000 targets); scan latency p50 {:.0} ms, p99 {:.0} ms",
        targets_n as f64 / wall,
        rss_kb / 1024,
        pct(0.5) * 1000.0,
        pct(0.99) * 1000.0,
    );
}

/// What a run's requests took, read from the server's log, by phase:
/// setup (every request before the first exec), the execs, cleanup (every
/// request after the last exec's answer).
struct Timeline {
    /// The longest chain of setup requests each sent after the one before
    /// it was answered: the round trips setup waited for one after another.
    setup_rounds: usize,
    /// The same for cleanup.
    cleanup_rounds: usize,
    /// Seconds from the first exec's arrival to the last one's answer.
    exec_span: f64,
    /// Seconds from the process' start to its first request.
    head: f64,
    /// Seconds from the last answer to the process' exit.
    tail: f64,
}

impl Timeline {
    fn of(start: Instant, log: &[fakeapi::Logged]) -> Timeline {
        let end = Instant::now();
        let is_exec = |l: &&fakeapi::Logged| l.path.contains("/exec?");
        let execs: Vec<&fakeapi::Logged> = log.iter().filter(is_exec).collect();
        let first_exec = execs.iter().map(|l| l.at).min().unwrap_or(end);
        let last_exec = execs.iter().map(|l| l.done).max().unwrap_or(start);
        let setup: Vec<&fakeapi::Logged> = log.iter().filter(|l| l.at < first_exec).collect();
        let cleanup: Vec<&fakeapi::Logged> = log
            .iter()
            .filter(|l| l.at >= last_exec && !is_exec(l))
            .collect();
        Timeline {
            setup_rounds: fakeapi::round_trips(&setup),
            cleanup_rounds: fakeapi::round_trips(&cleanup),
            exec_span: last_exec
                .saturating_duration_since(first_exec)
                .as_secs_f64(),
            head: log
                .iter()
                .map(|l| l.at)
                .min()
                .map_or(0.0, |a| (a - start).as_secs_f64()),
            tail: log
                .iter()
                .map(|l| l.done)
                .max()
                .map_or(0.0, |d| (end - d).as_secs_f64()),
        }
    }
}

/// A realistic pod of a Deployment: labels, owner, env, probes, resources,
/// a projected token volume, tolerations, status with digests and IPs.
fn fleet_pod(ns: &str, i: usize) -> serde_json::Value {
    let app = format!("svc-{}", i % 40);
    let name = format!("{app}-7f9c{i:05}-x{:04}", i % 9973);
    let env: Vec<serde_json::Value> = (0..10)
        .map(|k| serde_json::json!({"name": format!("SETTING_{k}"), "value": format!("value-{k}-{i}")}))
        .collect();
    let container = |cname: &str, image: &str, port: u16| {
        serde_json::json!({
            "name": cname,
            "image": image,
            "imagePullPolicy": "IfNotPresent",
            "ports": [{"containerPort": port, "protocol": "TCP", "name": "http"}],
            "env": env,
            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
            "livenessProbe": {"httpGet": {"path": "/healthz", "port": port, "scheme": "HTTP"}, "periodSeconds": 10, "timeoutSeconds": 1, "successThreshold": 1, "failureThreshold": 3},
            "readinessProbe": {"httpGet": {"path": "/ready", "port": port, "scheme": "HTTP"}, "periodSeconds": 5, "timeoutSeconds": 1, "successThreshold": 1, "failureThreshold": 3},
            "volumeMounts": [{"name": "kube-api-access", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "readOnly": true}],
            "securityContext": {"runAsNonRoot": true, "runAsUser": 10001, "allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}},
            "terminationMessagePath": "/dev/termination-log",
            "terminationMessagePolicy": "File"
        })
    };
    let status = |cname: &str, image: &str, n: usize| {
        serde_json::json!({
            "name": cname, "ready": true, "restartCount": 0, "started": true,
            "image": image,
            "imageID": format!("{}@sha256:{:064x}", image.split(':').next().unwrap_or(image), n),
            "containerID": format!("containerd://{:064x}", i * 2 + n),
            "state": {"running": {"startedAt": "2026-12-01T10:00:00Z"}}
        })
    };
    let image = format!("registry.example/{app}:1.{}", i % 7);
    let conditions: Vec<serde_json::Value> = [
        "PodReadyToStartContainers",
        "Initialized",
        "Ready",
        "ContainersReady",
        "PodScheduled",
    ]
    .iter()
    .map(|t| serde_json::json!({"type": t, "status": "True", "lastTransitionTime": "2026-12-01T10:00:05Z"}))
    .collect();
    serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": name, "namespace": ns,
            "uid": format!("{:08x}-0000-4000-8000-{:012x}", i, i),
            "resourceVersion": format!("{}", 100000 + i),
            "creationTimestamp": "2026-12-01T10:00:00Z",
            "generateName": format!("{app}-7f9c{i:05}-"),
            "labels": {"app": app, "fleet": "yes", "pod-template-hash": "7f9c", "version": "v1", "team": format!("team-{}", i % 5)},
            "annotations": {"kubectl.kubernetes.io/restartedAt": "2026-12-01T09:59:00Z", "prometheus.io/scrape": "true", "prometheus.io/port": "9090"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": format!("{app}-7f9c"), "uid": format!("{:08x}-1111-4000-8000-000000000000", i % 40), "controller": true, "blockOwnerDeletion": true}]
        },
        "spec": {
            "serviceAccountName": "default",
            "nodeName": format!("node-{}", i % 100),
            "containers": [container("app", &image, 8080), container("proxy", "registry.example/proxy:1.22", 15001)],
            "volumes": [{"name": "kube-api-access", "projected": {"defaultMode": 420, "sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}
            ]}}],
            "tolerations": [
                {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
                {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
            ],
            "dnsPolicy": "ClusterFirst", "restartPolicy": "Always", "schedulerName": "default-scheduler",
            "terminationGracePeriodSeconds": 30, "enableServiceLinks": true, "preemptionPolicy": "PreemptLowerPriority", "priority": 0,
            "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}}
        },
        "status": {
            "phase": "Running", "qosClass": "Burstable",
            "hostIP": format!("10.0.{}.{}", i % 100 / 250, i % 100), "podIP": format!("10.244.{}.{}", i / 250 % 250, i % 250),
            "podIPs": [{"ip": format!("10.244.{}.{}", i / 250 % 250, i % 250)}],
            "startTime": "2026-12-01T10:00:00Z",
            "conditions": conditions,
            "containerStatuses": [status("app", &image, 1), status("proxy", "registry.example/proxy:1.22", 2)]
        }
    })
}

/// The fleet figures: 10,000 containers (5,000 two-container pods) in 50
/// namespaces, replay mode, the policy's rate limit at 200 requests a
/// second: the run's wall time against requests / QPS, its peak RSS, execs
/// per container, and the time `vigil plan` takes for the 5,000 pods.
fn fleet(dir: &Path, root: &Path, vigil: &Path, repo: &Path) {
    const PODS: usize = 5000;
    const NS: usize = 50;
    const QPS: f64 = 200.0;
    let sub = dir.join("fleet");
    std::fs::create_dir_all(&sub).unwrap();
    let mut pods = Vec::with_capacity(PODS);
    let mut rootfs = HashMap::new();
    for i in 0..PODS {
        let ns = format!("fleet-{:02}", i % NS);
        let pod = fleet_pod(&ns, i);
        rootfs.insert(
            (ns, pod["metadata"]["name"].as_str().unwrap().to_string()),
            root.to_path_buf(),
        );
        pods.push(pod);
    }
    let snapshot =
        serde_json::to_vec(&serde_json::json!({"apiVersion": "v1", "kind": "List", "items": pods}))
            .unwrap();
    let list_bytes = snapshot.len();
    std::fs::write(sub.join("pods.json"), &snapshot).unwrap();
    drop(snapshot);
    let server = fakeapi::FakeApiServer::start(&sub, pods, rootfs);
    server.set_replay(true);
    let targets: String = (0..NS)
        .map(|n| format!("    - {{namespace: fleet-{n:02}, selector: {{matchLabels: {{fleet: \"yes\"}}}}, approach: api}}\n"))
        .collect();
    std::fs::write(
        sub.join("p.yaml"),
        format!("apiVersion: vigil/v1\nkind: ScanPolicy\nmetadata: {{name: fleet}}\nspec:\n  profiles: [container-baseline]\n  limits: {{concurrency: 64, apiQps: {QPS}}}\n  targets:\n{targets}"),
    )
    .unwrap();
    // The plan alone, against the same server.
    let t = Instant::now();
    let plan = Command::new(vigil)
        .args(["plan", "p.yaml"])
        .arg(repo.join("policies/profiles"))
        .current_dir(&sub)
        .env("KUBECONFIG", &server.kubeconfig)
        .output()
        .unwrap();
    let plan_s = t.elapsed().as_secs_f64();
    assert!(
        plan.status.success(),
        "{}",
        String::from_utf8_lossy(&plan.stderr)
    );
    // The same plan from a snapshot: vigil's own work, no listing.
    let t = Instant::now();
    let offline = Command::new(vigil)
        .args(["plan", "p.yaml"])
        .arg(repo.join("policies/profiles"))
        .args(["--inventory", "pods.json"])
        .current_dir(&sub)
        .output()
        .unwrap();
    let offline_s = t.elapsed().as_secs_f64();
    assert!(
        offline.status.success(),
        "{}",
        String::from_utf8_lossy(&offline.stderr)
    );
    let before = server.request_log().len();
    let (wall, summary, rss_kb) = measured_run(&sub, vigil, repo, &server.kubeconfig);
    let targets = summary[0]["targets"].as_array().unwrap();
    let scanned = targets.iter().filter(|t| t["status"] == "scanned").count();
    let log = server.request_log();
    let requests = log.len() - before;
    let execs = log[before..]
        .iter()
        .filter(|l| l.path.contains("/exec?"))
        .count();
    let bound = requests as f64 / QPS;
    println!(
        "fleet: {} containers in {PODS} pods ({:.1} KB of JSON each) in {NS} namespaces, replay mode, apiQps {QPS}, concurrency 64",
        targets.len(),
        list_bytes as f64 / PODS as f64 / 1000.0
    );
    println!(
        "  plan: {plan_s:.2} s against the server ({NS} pod lists at apiQps {QPS}, the server serializing on this machine), {offline_s:.2} s from a snapshot of the same pods ({:.0} MB) (goal < 1 s)",
        list_bytes as f64 / 1e6
    );
    println!(
        "  run: {scanned} scanned; {requests} requests ({execs} exec = {:.2} per container); wall {wall:.1} s; the QPS bound {requests}/{QPS} = {bound:.1} s; wall / bound = {:.2} (goal <= 1.1); vigil peak RSS {} MB (goal < 300 MB)",
        execs as f64 / targets.len() as f64,
        wall / bound,
        rss_kb / 1024
    );
}

/// `vigil run p.yaml` in `sub` against the server: wall seconds, the
/// summaries it printed, and its peak RSS in KB (`/usr/bin/time`).
fn measured_run(
    sub: &Path,
    vigil: &Path,
    repo: &Path,
    kubeconfig: &Path,
) -> (f64, serde_json::Value, u64) {
    let rss_file = sub.join("rss.txt");
    let t = Instant::now();
    let out = Command::new("/usr/bin/time")
        .args(["-f", "%M", "-o"])
        .arg(&rss_file)
        .arg(vigil)
        .args(["run", "p.yaml"])
        .arg(repo.join("policies/profiles"))
        .args([
            "--out",
            "out",
            "--unsigned",
            "--plaintext",
            "--format",
            "json",
        ])
        .current_dir(sub)
        .env("KUBECONFIG", kubeconfig)
        .output()
        .expect("/usr/bin/time is installed (apt-get install time)");
    let wall = t.elapsed().as_secs_f64();
    assert!(
        out.status.code().is_some_and(|c| c == 0 || c == 1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rss_kb = std::fs::read_to_string(&rss_file)
        .unwrap()
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(0);
    (wall, serde_json::from_slice(&out.stdout).unwrap(), rss_kb)
}
