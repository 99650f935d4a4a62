//! The runner under load and faults, against the test API server: limits
//! that hold (counted on the server side), the shared API rate limit,
//! retries on transient errors only.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::fakeapi::FakeApiServer;
use crate::util::{TempDir, install_busybox, is_root, repo, rootfs_fixtures};

struct Setup {
    _fixtures: TempDir,
    dir: TempDir,
    server: FakeApiServer,
}

/// `n` pods over `namespaces` namespaces and `nodes` nodes, all alpine-like
/// with a busybox shell.
fn setup(n: usize, namespaces: usize, nodes: usize) -> Option<Setup> {
    if !is_root() || !Path::new("/bin/busybox").is_file() {
        assert!(
            std::env::var_os("VIGIL_REQUIRE_INTEROP").is_none(),
            "the runner tests need root and busybox-static"
        );
        return None;
    }
    let fx = rootfs_fixtures();
    let root = fx.path().join("rootfs/alpine");
    install_busybox(&root);
    let mut pods = Vec::new();
    let mut rootfs: HashMap<(String, String), PathBuf> = HashMap::new();
    for i in 0..n {
        let ns = format!("ns-{}", i % namespaces);
        let name = format!("pod-{i:04}");
        pods.push(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "labels": {"app": "load"}, "uid": format!("uid-{i}")},
            "spec": {"nodeName": format!("node-{}", i % nodes), "containers": [{"name": "app", "image": "registry.example/app:1"}]},
            "status": {"phase": "Running", "containerStatuses": [{"name": "app", "ready": true, "restartCount": 0, "image": "x", "imageID": "", "state": {"running": {}}}]}
        }));
        rootfs.insert((ns, name), root.clone());
    }
    let dir = TempDir::new("runner");
    let server = FakeApiServer::start(dir.path(), pods, rootfs);
    Some(Setup {
        _fixtures: fx,
        dir,
        server,
    })
}

fn write_policy(s: &Setup, namespaces: usize, limits: &str) {
    let targets: String = (0..namespaces)
        .map(|i| format!("    - {{namespace: ns-{i}, selector: {{matchLabels: {{app: load}}}}, approach: api}}\n"))
        .collect();
    s.dir.write(
        "p.yaml",
        format!("apiVersion: vigil/v1\nkind: ScanPolicy\nmetadata: {{name: load}}\nspec:\n  profiles: [container-baseline]\n  limits: {limits}\n  targets:\n{targets}"),
    );
}

fn run(s: &Setup) -> (crate::util::Run, Value) {
    let out: crate::util::Run = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["run", "p.yaml"])
        .arg(repo().join("policies/profiles"))
        .args([
            "--out",
            "out",
            "--unsigned",
            "--plaintext",
            "--format",
            "json",
        ])
        .current_dir(s.dir.path())
        .env("KUBECONFIG", &s.server.kubeconfig)
        .output()
        .unwrap()
        .into();
    assert!(out.code == 0 || out.code == 1, "{}", out.stderr);
    let summary: Value = serde_json::from_str(&out.stdout).unwrap();
    (out, summary)
}

#[test]
fn concurrency_caps_hold_on_the_server_side() {
    let Some(s) = setup(36, 2, 3) else { return };
    write_policy(
        &s,
        2,
        "{concurrency: 8, perNamespace: 3, perNode: 2, apiQps: 1000}",
    );
    // Latency on every request makes the execs overlap.
    s.server.set_latency(Duration::from_millis(40));
    let (_, summary) = run(&s);
    let targets = summary[0]["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 36);
    assert!(
        targets.iter().all(|t| t["status"] == "scanned"),
        "{summary}"
    );
    let peaks = s.server.exec_peaks();
    for ns in 0..2 {
        let p = peaks[&format!("ns:ns-{ns}")];
        assert!(p <= 3, "namespace ns-{ns}: {p} execs at once");
    }
    for node in 0..3 {
        let p = peaks[&format!("node:node-{node}")];
        assert!(p <= 2, "node-{node}: {p} execs at once");
    }
    assert!(peaks["all"] <= 8);
    // The caps were reached, not merely respected by running one at a time.
    assert!(peaks["all"] >= 4, "{peaks:?}");
}

#[test]
fn the_request_rate_seen_by_the_server_stays_within_the_limit() {
    let Some(s) = setup(30, 2, 3) else { return };
    // 20 requests per second; the limiter's burst is ⌈20/10⌉ = 2.
    write_policy(&s, 2, "{concurrency: 16, apiQps: 20}");
    let (_, summary) = run(&s);
    assert!(
        summary[0]["targets"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["status"] == "scanned")
    );
    let mut at: Vec<std::time::Instant> = s.server.request_log().iter().map(|l| l.at).collect();
    at.sort();
    // 2 lists + 8 creates + 2 tokens + 30 execs + 8 deletes.
    assert_eq!(at.len(), 50);
    for (i, &a) in at.iter().enumerate() {
        for window in [0.0, 0.5, 1.0] {
            let n = at[i..]
                .iter()
                .take_while(|&&b| (b - a).as_secs_f64() <= window)
                .count();
            // Requests leave vigil within the limit; a few milliseconds of
            // scheduling on the way can bunch two of them: one of tolerance.
            assert!(
                n as f64 <= 2.0 + 20.0 * window + 1.0,
                "{n} requests within {window} s"
            );
        }
    }
    // The limit is used, not undershot: 50 requests take about 50/20 s.
    let span = (*at.last().unwrap() - at[0]).as_secs_f64();
    assert!(span >= 2.2, "{span}");
}

#[test]
fn a_fault_run_accounts_for_every_target_and_counts_the_retries() {
    let Some(s) = setup(200, 4, 5) else { return };
    write_policy(
        &s,
        4,
        "{concurrency: 32, apiQps: 1000, retries: 4, scanTimeout: 60s}",
    );
    // 10% of the execs answer 500, 5% 429 with Retry-After, 2% are cut
    // midway; ten requests are a second late.
    s.server.inject(crate::fakeapi::Faults {
        exec_500: 20,
        exec_429: 10,
        exec_cut: 4,
        latency_spikes: 10,
    });
    assert_eq!(
        crate::util::vigil_in(s.dir.path(), &["keygen", "signing", "--out", "signer"]).code,
        0
    );
    let out: crate::util::Run = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["run", "p.yaml"])
        .arg(repo().join("policies/profiles"))
        .args([
            "--out",
            "out",
            "--plaintext",
            "--signing-key",
            "signer.key.pem",
            "--format",
            "json",
        ])
        .current_dir(s.dir.path())
        .env("KUBECONFIG", &s.server.kubeconfig)
        .output()
        .unwrap()
        .into();
    assert!(out.code == 0 || out.code == 1, "{}", out.stderr);
    let summary: Value = serde_json::from_str(&out.stdout).unwrap();
    let targets = summary[0]["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 200);
    let not_scanned: Vec<&Value> = targets
        .iter()
        .filter(|t| t["status"] != "scanned")
        .collect();
    assert!(not_scanned.is_empty(), "{not_scanned:?}");
    // Each injected fault cost exactly one attempt, and was retried.
    let attempts: u64 = targets
        .iter()
        .map(|t| t["attempts"].as_u64().unwrap())
        .sum();
    assert_eq!(attempts, 200 + 34);
    assert_eq!(summary[0]["stats"]["retries"], 34);
    assert_eq!(summary[0]["complete"], true);
    // The server saw every failure and a successful exec for every target.
    let log = s.server.request_log();
    let count = |status: u16| {
        log.iter()
            .filter(|l| l.path.contains("/exec?") && l.status == status)
            .count()
    };
    assert_eq!(count(500), 20);
    assert_eq!(count(429), 10);
    assert_eq!(
        count(101),
        200 + 4,
        "every target once, plus the 4 cut streams"
    );
    // Nothing left behind; the sealed statement says complete and verifies.
    for r in ["serviceaccounts", "roles", "rolebindings", "secrets"] {
        assert_eq!(s.server.objects(r), Vec::<String>::new(), "{r} left behind");
    }
    let bundle = s
        .dir
        .path()
        .join("out/load")
        .join(summary[0]["run_id"].as_str().unwrap());
    let statement = crate::util::statement_payload(&bundle);
    assert_eq!(statement["predicate"]["complete"], true);
    let verify = crate::util::vigil_in(
        s.dir.path(),
        &[
            "verify",
            bundle.to_str().unwrap(),
            "--trusted-key",
            "signer.pub.pem",
        ],
    );
    assert_eq!(verify.code, 0, "{}{}", verify.stdout, verify.stderr);
    // The audit log has every attempt.
    let audit = std::fs::read_to_string(bundle.join("audit.jsonl")).unwrap();
    assert_eq!(
        audit
            .lines()
            .filter(|l| l.contains("\"verb\":\"exec\""))
            .count(),
        234
    );
}
