//! The runner under load and faults, against the test API server: limits
//! that hold (counted on the server side), the shared API rate limit,
//! retries on transient errors only.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::fakeapi::FakeApiServer;
use crate::util::{TempDir, install_busybox, repo, rootfs_fixtures};

struct Setup {
    _fixtures: TempDir,
    dir: TempDir,
    server: FakeApiServer,
}

/// `n` pods over `namespaces` namespaces and `nodes` nodes, all alpine-like
/// with a busybox shell.
fn setup(n: usize, namespaces: usize, nodes: usize) -> Option<Setup> {
    if !crate::util::root_and_busybox() {
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
    crate::util::run_json(s.dir.path(), &s.server.kubeconfig, &["--unsigned"])
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
fn the_run_waits_only_for_the_round_trips_its_dependencies_need() {
    let Some(s) = setup(6, 2, 3) else { return };
    write_policy(&s, 2, "{concurrency: 8, apiQps: 1000}");
    // With 150 ms on every request, requests sent together all arrive
    // before the first of them is answered; each round trip the run
    // waits for shows as one more link in the chain.
    s.server.set_latency(Duration::from_millis(150));
    let (_, summary) = run(&s);
    assert!(
        summary[0]["targets"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["status"] == "scanned"),
        "{summary}"
    );
    let log = s.server.request_log();
    let is_exec = |l: &&crate::fakeapi::Logged| l.path.contains("/exec?");
    let first_exec = log.iter().filter(is_exec).map(|l| l.at).min().unwrap();
    let last_exec = log.iter().filter(is_exec).map(|l| l.done).max().unwrap();
    let setup: Vec<_> = log.iter().filter(|l| l.at < first_exec).collect();
    let execs: Vec<_> = log.iter().filter(is_exec).collect();
    let cleanup: Vec<_> = log.iter().filter(|l| l.at >= last_exec).collect();
    let show = |ls: &[&crate::fakeapi::Logged]| {
        ls.iter()
            .map(|l| format!("{} {}", l.method, l.path))
            .collect::<Vec<_>>()
    };
    // Pod lists; the caller's access reviews with the SelfSubjectReview
    // beside them; the ServiceAccount, Role and anchor creates; each
    // RoleBinding with its TokenRequest beside it; the token's access
    // reviews. Nothing more in sequence.
    assert_eq!(
        crate::fakeapi::round_trips(&setup),
        5,
        "{:#?}",
        show(&setup)
    );
    // Six execs, eight at a time: one round.
    assert_eq!(crate::fakeapi::round_trips(&execs), 1);
    // Every delete at once.
    assert_eq!(cleanup.len(), 8, "{:#?}", show(&cleanup));
    assert!(cleanup.iter().all(|l| l.method == "DELETE"));
    assert_eq!(crate::fakeapi::round_trips(&cleanup), 1);
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
    // 1 SelfSubjectReview (who the caller is, for audit-check) + 2 lists
    // + 22 of the caller's own access reviews before anything is created
    // (per namespace: create and delete of 4 objects, the token, escalate
    // and bind) + 8 creates + 2 tokens + 4 access reviews of the run's
    // token (get and create pods/exec, per namespace) + 30 execs + 8
    // deletes.
    assert_eq!(at.len(), 77);
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
        exec_hang: 0,
        ..Default::default()
    });
    crate::util::signing_key(s.dir.path());
    let (_, summary) = crate::util::run_json(
        s.dir.path(),
        &s.server.kubeconfig,
        &["--signing-key", "signer.key.pem"],
    );
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
    s.server.assert_no_access_objects();
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

fn spawn_run(s: &Setup, signed: bool) -> std::process::Child {
    let key: &[&str] = if signed {
        &["--signing-key", "signer.key.pem"]
    } else {
        &["--unsigned"]
    };
    crate::util::run_cmd(s.dir.path(), &s.server.kubeconfig, key)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

fn interrupt(child: &std::process::Child) {
    crate::util::signal(child, rustix::process::Signal::INT);
}

fn execs(log: &[crate::fakeapi::Logged]) -> usize {
    log.iter().filter(|l| l.path.contains("/exec?")).count()
}

#[test]
fn sigint_at_half_of_a_200_target_run_seals_an_incomplete_bundle_that_verifies() {
    let Some(s) = setup(200, 4, 5) else { return };
    write_policy(&s, 4, "{concurrency: 8, apiQps: 1000}");
    s.server.set_latency(Duration::from_millis(20));
    crate::util::signing_key(s.dir.path());
    let child = spawn_run(&s, true);
    s.server
        .wait_for(Duration::from_secs(120), |log| execs(log) >= 100);
    interrupt(&child);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    let summary: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {stderr}"));
    let targets = summary[0]["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 200, "every planned target has a result");
    let scanned = targets.iter().filter(|t| t["status"] == "scanned").count();
    let not_scanned: Vec<&str> = summary[0]["not_scanned"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!((100..200).contains(&scanned), "{scanned} scanned");
    assert_eq!(
        scanned + not_scanned.len(),
        200,
        "scanned or listed, nothing lost"
    );
    // Scans in flight finished: they were given the grace period.
    assert!(!stderr.contains("warning: second signal"), "{stderr}");
    s.server.assert_no_access_objects();
    let bundle = s
        .dir
        .path()
        .join("out/load")
        .join(summary[0]["run_id"].as_str().unwrap());
    let st = crate::util::statement_payload(&bundle);
    assert_eq!(st["predicate"]["complete"], false);
    let listed: Vec<&str> = st["predicate"]["not_scanned"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(listed, not_scanned);
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
}

#[test]
fn a_second_signal_stops_scans_in_flight_and_still_cleans_up() {
    let Some(s) = setup(8, 1, 1) else { return };
    write_policy(&s, 1, "{concurrency: 4, apiQps: 1000, scanTimeout: 5m}");
    // Every exec hangs: scans stay in flight.
    s.server.inject(crate::fakeapi::Faults {
        exec_hang: 100,
        ..Default::default()
    });
    let mut child = spawn_run(&s, false);
    s.server
        .wait_for_arrivals(Duration::from_secs(60), |paths| {
            paths.iter().filter(|p| p.contains("/exec?")).count() >= 4
        });
    // Read stderr as it comes, to send the second signal only once the
    // first has been taken.
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let reader = std::io::BufReader::new(child.stderr.take().unwrap());
    let lines = std::thread::spawn(move || {
        use std::io::BufRead;
        let mut all = String::new();
        for line in reader.lines().map_while(Result::ok) {
            let _ = tx.send(line.clone());
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let started = std::time::Instant::now();
    interrupt(&child);
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("vigil reports the signal");
        if line.contains("signal received") {
            break;
        }
    }
    interrupt(&child);
    let out = child.wait_with_output().unwrap();
    let stderr = lines.join().unwrap();
    assert!(stderr.contains("vigil: warning: second signal"), "{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "stopped long before the 30 s grace period: {:?}",
        started.elapsed()
    );
    let summary: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {stderr}"));
    let targets = summary[0]["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 8);
    assert_eq!(
        summary[0]["not_scanned"].as_array().unwrap().len(),
        8,
        "{summary}"
    );
    assert!(
        targets.iter().any(|t| t["error"]
            .as_str()
            .is_some_and(|e| e.contains("stopped in flight"))),
        "{summary}"
    );
    s.server.assert_no_access_objects();
}

/// Canaries in a token, a kubeconfig, an error body and a file's content:
/// none reaches stdout, stderr (JSON log lines) or the results' errors.
#[test]
fn canaries_never_reach_logs_errors_or_results() {
    let Some(s) = setup(6, 1, 1) else { return };
    // A pod whose "shell" prints a secret file to stderr and fails: its
    // output lands in the error vigil reports for it.
    let leaky = s.dir.path().join("leaky-root");
    assert!(
        Command::new("cp")
            .args(["-a"])
            .arg(s._fixtures.path().join("rootfs/alpine"))
            .arg(&leaky)
            .status()
            .unwrap()
            .success()
    );
    std::fs::write(leaky.join("etc/site-secret"), "SITE-SECRET-424242\n").unwrap();
    let _ = std::fs::remove_file(leaky.join("bin/sh"));
    std::fs::write(
        leaky.join("bin/sh"),
        "#!/bin/busybox sh\n/bin/busybox cat /etc/site-secret >&2\nexit 127\n",
    )
    .unwrap();
    std::fs::set_permissions(
        leaky.join("bin/sh"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    s.server.set_rootfs("ns-0", "pod-0000", &leaky);
    // The kubeconfig carries a second, unused user with a canary password.
    let kubeconfig = std::fs::read_to_string(&s.server.kubeconfig)
        .unwrap()
        .replace(
            "users:\n",
            "users:\n- name: unused\n  user:\n    password: CANARY-KUBECONFIG-9911\n",
        );
    let kc = s.dir.write("kubeconfig-canary", kubeconfig);
    // One exec answers 500 with a body quoting a canary.
    s.server.inject(crate::fakeapi::Faults {
        exec_500: 1,
        ..Default::default()
    });
    let text = String::from(
        "apiVersion: vigil/v1\nkind: ScanPolicy\nmetadata: {name: load}\nspec:\n  profiles: [container-baseline]\n  redact: ['SITE-SECRET-[0-9]+']\n  limits: {concurrency: 2, apiQps: 1000, retries: 1}\n  targets:\n    - {namespace: ns-0, selector: {matchLabels: {app: load}}, approach: api}\n",
    );
    s.dir.write("p.yaml", text);
    let out: crate::util::Run =
        crate::util::run_cmd(s.dir.path(), &kc, &["--unsigned", "--log-format", "json"])
            .output()
            .unwrap()
            .into();
    assert_eq!(out.code, 3, "{}", out.stderr);
    // Every stderr line is a JSON object.
    for line in out.stderr.lines() {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(v["level"].is_string() && v["message"].is_string(), "{line}");
    }
    let summary: Value = serde_json::from_str(&out.stdout).unwrap();
    let leaky_error = summary[0]["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == "ns-0/pod-0000/app")
        .unwrap()["error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        leaky_error.contains("<redacted>"),
        "the file content reached the error, redacted: {leaky_error}"
    );
    let mut written = String::new();
    for e in std::fs::read_dir(s.dir.path().join("out/load"))
        .unwrap()
        .flatten()
    {
        for f in crate::util::files_under(&e.path()) {
            written.push_str(&String::from_utf8_lossy(&std::fs::read(f).unwrap()));
        }
    }
    let mut canaries = vec![
        "SITE-SECRET-424242".to_string(),
        "CANARY-KUBECONFIG-9911".to_string(),
        crate::fakeapi::ERROR_BODY_CANARY.to_string(),
    ];
    canaries.extend(s.server.issued_tokens());
    for c in &canaries {
        assert!(!out.stdout.contains(c.as_str()), "{c} on stdout");
        assert!(!out.stderr.contains(c.as_str()), "{c} on stderr");
        assert!(!written.contains(c.as_str()), "{c} in the results");
    }
}

/// Three processes, one shard each, against the same server: together they
/// scan exactly what one process scans, target for target, and each
/// statement names the same plan and its own shard.
#[test]
fn shards_run_in_separate_processes_cover_the_plan_exactly() {
    let Some(s) = setup(24, 2, 3) else { return };
    write_policy(&s, 2, "{concurrency: 4, apiQps: 1000}");
    crate::util::signing_key(s.dir.path());
    let run = |extra: &[&str]| -> Value {
        let mut args = vec!["--signing-key", "signer.key.pem"];
        args.extend_from_slice(extra);
        crate::util::run_json(s.dir.path(), &s.server.kubeconfig, &args).1[0].clone()
    };
    let whole = run(&[]);
    let counts = |v: &Value| -> std::collections::BTreeMap<String, Value> {
        v["targets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| (t["id"].as_str().unwrap().to_string(), t["counts"].clone()))
            .collect()
    };
    let mut union = std::collections::BTreeMap::new();
    // The three shard processes run at the same time, as an Indexed Job's pods would.
    let parts: Vec<Value> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..3)
            .map(|i| {
                let run = &run;
                scope.spawn(move || run(&["--shard", &format!("{i}/3")]))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (i, part) in parts.iter().enumerate() {
        assert_eq!(part["plan"]["sha256"], whole["plan"]["sha256"], "one plan");
        assert_eq!(part["plan"]["targets"], 24);
        assert_eq!(part["plan"]["shard"]["index"], i as u64);
        for (id, c) in counts(part) {
            assert!(union.insert(id.clone(), c).is_none(), "{id} in two shards");
        }
        let bundle = s
            .dir
            .path()
            .join("out/load")
            .join(part["run_id"].as_str().unwrap());
        let st = crate::util::statement_payload(&bundle);
        assert_eq!(st["predicate"]["plan"]["shard"]["count"], 3);
    }
    assert_eq!(
        union,
        counts(&whole),
        "the shards together are the whole run"
    );

    // Merged: one bundle whose signed statement covers every target.
    let bundle = |v: &Value| {
        s.dir
            .path()
            .join("out/load")
            .join(v["run_id"].as_str().unwrap())
            .to_str()
            .unwrap()
            .to_string()
    };
    let shard_dirs: Vec<String> = parts.iter().map(bundle).collect();
    let merge = |dirs: &[&str]| merge_into_merged(s.dir.path(), dirs);
    let all: Vec<&str> = shard_dirs.iter().map(String::as_str).collect();
    let merged = merge(&all);
    assert_eq!(merged.code, 0, "{}", merged.stderr);
    let merged_dir = PathBuf::from(merged.stdout.trim());
    let merged_dir = if merged_dir.is_absolute() {
        merged_dir
    } else {
        s.dir.path().join(merged_dir)
    };
    let verify = crate::util::vigil_in(
        s.dir.path(),
        &[
            "verify",
            merged_dir.to_str().unwrap(),
            "--trusted-key",
            "signer.pub.pem",
        ],
    );
    assert_eq!(verify.code, 0, "{}{}", verify.stdout, verify.stderr);
    let st = crate::util::statement_payload(&merged_dir);
    let merged_ids: std::collections::BTreeSet<String> = st["predicate"]["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(merged_ids.len(), 24);
    assert!(
        merged_ids.iter().eq(counts(&whole).keys()),
        "target for target"
    );
    assert_eq!(st["predicate"]["shards"].as_array().unwrap().len(), 3);
    assert_eq!(st["predicate"]["complete"], true);
    // Refused: a shard twice, a missing shard, a bundle that is no shard.
    let whole_dir = bundle(&whole);
    for (dirs, want) in [
        (vec![all[0], all[0], all[1], all[2]], "given twice"),
        (vec![all[0], all[1]], "shards missing: 2 of 3"),
        (
            vec![all[0], all[1], all[2], whole_dir.as_str()],
            "not a shard",
        ),
    ] {
        let r = merge(&dirs);
        assert_eq!(r.code, 2, "{want}: {}", r.stderr);
        assert!(r.stderr.contains(want), "{want}: {}", r.stderr);
    }
    // Another policy (even one changed by a byte) is foreign.
    let text = std::fs::read_to_string(s.dir.path().join("p.yaml")).unwrap();
    std::fs::write(s.dir.path().join("p.yaml"), format!("{text}# changed\n")).unwrap();
    let r = merge(&all);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("another policy"), "{}", r.stderr);
    // A shard that does not verify is a failed verification (exit 1, as
    // `vigil verify` says it), not bad input.
    std::fs::write(s.dir.path().join("p.yaml"), &text).unwrap();
    let targets = s.dir.path().join(all[0]).join("targets");
    let victim = std::fs::read_dir(&targets)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut bytes = std::fs::read(&victim).unwrap();
    bytes.push(b' ');
    std::fs::write(&victim, bytes).unwrap();
    let r = merge(&all);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("does not verify"), "{}", r.stderr);
}

/// `vigil schedule` forwards SIGTERM to the run in flight, which stops its
/// hanging scans after the policy's grace period, cleans up and seals an
/// incomplete bundle; the scheduler then exits.
#[test]
fn schedule_forwards_sigterm_to_the_run_in_flight() {
    let Some(s) = setup(4, 1, 1) else { return };
    s.server.inject(crate::fakeapi::Faults {
        exec_hang: 100,
        ..Default::default()
    });
    s.dir.write(
        "p.yaml",
        "apiVersion: vigil/v1\nkind: ScanPolicy\nmetadata: {name: load}\nspec:\n  profiles: [container-baseline]\n  schedule: {cron: \"0 0 1 1 *\", catchUp: one}\n  limits: {concurrency: 4, apiQps: 1000, gracePeriod: 1s}\n  targets:\n    - {namespace: ns-0, selector: {matchLabels: {app: load}}, approach: api}\n",
    );
    let out = s.dir.path().join("out");
    std::fs::create_dir_all(out.join("load")).unwrap();
    // A fire was missed while down: the run starts at once.
    std::fs::write(
        out.join("load/.vigil-schedule"),
        "2020-01-01T00:00:00+00:00",
    )
    .unwrap();
    crate::util::signing_key(s.dir.path());
    let child = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["schedule", "p.yaml"])
        .arg(repo().join("policies/profiles"))
        .arg("--out")
        .arg(&out)
        .args(["--plaintext", "--signing-key", "signer.key.pem"])
        .current_dir(s.dir.path())
        .env("KUBECONFIG", &s.server.kubeconfig)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The run's scans are hanging in the pods.
    s.server
        .wait_for_arrivals(Duration::from_secs(60), |paths| {
            paths.iter().filter(|p| p.contains("/exec?")).count() >= 4
        });
    let started = std::time::Instant::now();
    crate::util::signal(&child, rustix::process::Signal::TERM);
    let done = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&done.stderr);
    assert_eq!(done.status.code(), Some(0), "{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert!(
        stderr.contains("grace period over"),
        "the run got the signal: {stderr}"
    );
    s.server.assert_no_access_objects();
    let sealed: Vec<PathBuf> = std::fs::read_dir(out.join("load"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("statement.dsse.json").is_file())
        .collect();
    assert_eq!(sealed.len(), 1, "{stderr}");
    let st = crate::util::statement_payload(&sealed[0]);
    assert_eq!(st["predicate"]["complete"], false);
}

/// An empty shard of a plan that has targets is not a run of nothing (its
/// targets are in other shards); shards of a plan with no target are, and
/// so is their merge: `error`, never `pass`.
#[test]
fn empty_shards_pass_and_a_plan_of_nothing_is_an_error_when_merged() {
    let Some(s) = setup(2, 1, 1) else { return };
    write_policy(&s, 1, "{concurrency: 2, apiQps: 1000}");
    crate::util::signing_key(s.dir.path());
    let shard = |i: u32, n: u32| -> (crate::util::Run, Value) {
        let out: crate::util::Run = crate::util::run_cmd(
            s.dir.path(),
            &s.server.kubeconfig,
            &[
                "--signing-key",
                "signer.key.pem",
                "--shard",
                &format!("{i}/{n}"),
            ],
        )
        .output()
        .unwrap()
        .into();
        let summary =
            serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stderr));
        (out, summary)
    };
    // 2 targets over 8 shards: at least 6 shards are empty.
    let mut empty = 0;
    for i in 0..8 {
        let (out, v) = shard(i, 8);
        if v[0]["targets"].as_array().unwrap().is_empty() {
            empty += 1;
            assert_eq!(v[0]["verdict"], "pass", "{}", out.stderr);
            assert_eq!(out.code, 0, "{}", out.stderr);
        }
    }
    assert!(empty >= 6, "{empty} empty shards");
    // A plan of nothing: every shard is an error, and so is the merge.
    s.dir.write(
        "p.yaml",
        "apiVersion: vigil/v1\nkind: ScanPolicy\nmetadata: {name: load}\nspec:\n  profiles: [container-baseline]\n  targets:\n    - {namespace: ns-0, selector: {matchLabels: {app: nothing}}, approach: api}\n",
    );
    let mut dirs = Vec::new();
    for i in 0..2 {
        let (out, v) = shard(i, 2);
        assert_eq!(out.code, 3, "{}", out.stderr);
        assert_eq!(v[0]["verdict"], "error");
        dirs.push(
            s.dir
                .path()
                .join("out/load")
                .join(v[0]["run_id"].as_str().unwrap())
                .display()
                .to_string(),
        );
    }
    let dirs: Vec<&str> = dirs.iter().map(String::as_str).collect();
    let merged = merge_into_merged(s.dir.path(), &dirs);
    assert_eq!(merged.code, 0, "{}", merged.stderr);
    let st = crate::util::statement_payload(&s.dir.path().join(merged.stdout.trim()));
    assert_eq!(st["predicate"]["verdict"], "error", "{st:#}");
}

/// `vigil merge DIRS… --policy-file p.yaml --policy-file policies/profiles/
/// --out merged` (signed with signer.key.pem, shards trusted by
/// signer.pub.pem) in `dir`.
pub(crate) fn merge_into_merged(dir: &Path, dirs: &[&str]) -> crate::util::Run {
    let profiles = repo().join("policies/profiles");
    let mut args = vec!["merge"];
    args.extend_from_slice(dirs);
    args.extend_from_slice(&[
        "--policy-file",
        "p.yaml",
        "--policy-file",
        profiles.to_str().unwrap(),
        "--trusted-key",
        "signer.pub.pem",
        "--signing-key",
        "signer.key.pem",
        "--plaintext",
        "--out",
        "merged",
    ]);
    crate::util::vigil_in(dir, &args)
}
