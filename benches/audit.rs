//! `vigil audit-check` benchmark: a generated API server audit log of 1 GiB
//! (`VIGIL_BENCH_AUDIT_MB` to change it): a busy cluster's events around a
//! run's few hundred, checked against the run's trail. Prints the
//! throughput and the peak RSS (VmHWM) of the check, measured in a process
//! of its own; the goal is under 100 MB for the 1 GiB log.
//!
//! Then a log of large events made with the run's credential (600 MiB,
//! `VIGIL_BENCH_AUDIT_LARGE_MB`): ephemeral-container patches whose
//! request objects carry 3 MiB each. What the token holder sends must not
//! stay in memory: the goal is under 100 MB here too.
//!
//! Run with `cargo bench --bench audit`.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use vigil::audit::{CREDENTIAL_ID, Entry};
use vigil::monitor::{Run, check, trail};

const SA: &str = "system:serviceaccount:team-a:vigil-bench";
const JTI: &str = "JTI=0b7d6f6e-0000-4000-8000-000000000001";
const PODS: usize = 200;

#[path = "common.rs"]
mod common;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--check") {
        return measure(Path::new(&args[i + 1]));
    }
    let mb: u64 = std::env::var("VIGIL_BENCH_AUDIT_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let dir = std::env::temp_dir().join(format!("vigil-bench-audit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("audit.log");
    let started = Instant::now();
    generate(&log, mb << 20, false);
    eprintln!(
        "audit bench: generated {} MiB in {:.1} s",
        std::fs::metadata(&log).unwrap().len() >> 20,
        started.elapsed().as_secs_f64()
    );
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--check", log.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(status.success(), "the check failed");
    let large: u64 = std::env::var("VIGIL_BENCH_AUDIT_LARGE_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(600);
    generate(&log, large << 20, true);
    eprintln!(
        "audit bench: large events: generated {} MiB",
        std::fs::metadata(&log).unwrap().len() >> 20
    );
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--check", log.to_str().unwrap()])
        .status()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(status.success(), "the check of large events failed");
}

fn time(s: u32) -> String {
    format!("2026-01-01T10:{:02}:{:02}.000000Z", s / 60 % 60, s % 60)
}

/// The run: a token, then one exec per pod, 10:00:00 to 10:05:00.
fn run() -> Run {
    let mut entries = Vec::new();
    let mut token = entry(
        1,
        &time(1),
        "caller",
        "create",
        "token for serviceaccount team-a/vigil-bench (ttl 600s)",
    );
    token.attributes.insert(CREDENTIAL_ID.into(), JTI.into());
    entries.push(token);
    for p in 0..PODS {
        entries.push(entry(
            p as u64 + 2,
            &time(10 + p as u32),
            SA,
            "watch",
            &format!("pods team-a/web-{p} (until vigil-x terminates)"),
        ));
    }
    let t = |s: &str| {
        chrono::DateTime::parse_from_rfc3339(s)
            .unwrap()
            .with_timezone(&chrono::Utc)
    };
    Run {
        run_id: "bench".into(),
        started: t("2026-01-01T10:00:00Z"),
        ended: t("2026-01-01T10:05:00Z"),
        trail: trail::read(&entries),
    }
}

fn entry(seq: u64, time: &str, identity: &str, verb: &str, object: &str) -> Entry {
    Entry {
        seq,
        prev: String::new(),
        run_id: "bench".into(),
        scan_id: None,
        time: time.into(),
        identity: identity.into(),
        verb: verb.into(),
        object: object.into(),
        outcome: "ok".into(),
        duration_ms: 900,
        call: None,
        attributes: BTreeMap::new(),
    }
}

/// A log of `bytes`: the run's token request and watches among a busy
/// cluster's get, list, update and watch events (Metadata level, as most
/// of a real log), spread over 10:00 to 10:05. With `large`, the filler is
/// instead ephemeral-container patches made with the run's credential,
/// each with a 3 MiB request object.
fn generate(path: &Path, bytes: u64, large: bool) {
    let mut w = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path).unwrap());
    let mut written = 0u64;
    let mut n = 0u64;
    let run_event = |i: usize| -> String {
        if i == 0 {
            return format!(
                r#"{{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"run-token","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/team-a/serviceaccounts/vigil-bench/token","verb":"create","user":{{"username":"admin","groups":["system:masters"]}},"sourceIPs":["10.0.0.9"],"userAgent":"vigil","objectRef":{{"resource":"serviceaccounts","namespace":"team-a","name":"vigil-bench","apiVersion":"v1","subresource":"token"}},"responseStatus":{{"metadata":{{}},"code":201}},"requestReceivedTimestamp":"{}","stageTimestamp":"{}","annotations":{{"authentication.kubernetes.io/issued-credential-id":"{JTI}"}}}}"#,
                time(1),
                time(1)
            );
        }
        let p = i - 1;
        format!(
            r#"{{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"run-{p}","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/team-a/pods?fieldSelector=metadata.name%3Dweb-{p}&watch=true","verb":"watch","user":{{"username":"{SA}","groups":["system:serviceaccounts"],"extra":{{"authentication.kubernetes.io/credential-id":["{JTI}"]}}}},"sourceIPs":["10.0.0.9"],"userAgent":"vigil","objectRef":{{"resource":"pods","namespace":"team-a","name":"web-{p}","apiVersion":"v1"}},"responseStatus":{{"metadata":{{}},"code":200}},"requestReceivedTimestamp":"{}","stageTimestamp":"{}","annotations":{{"authorization.k8s.io/decision":"allow","authorization.k8s.io/reason":"RBAC"}}}}"#,
            time(10 + p as u32),
            time(10 + p as u32)
        )
    };
    let mut next_run = 0usize;
    while written < bytes {
        // Seconds 0..300 across the file.
        let second = (written * 300 / bytes.max(1)) as u32;
        if next_run <= PODS
            && second
                >= if next_run == 0 {
                    1
                } else {
                    10 + next_run as u32 - 1
                }
        {
            let line = run_event(next_run) + "\n";
            written += line.len() as u64;
            w.write_all(line.as_bytes()).unwrap();
            next_run += 1;
            continue;
        }
        if large {
            let pad = "a".repeat(3 << 20);
            let line = format!(
                r#"{{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"RequestResponse","auditID":"big-{n}","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/team-a/pods/web-0/ephemeralcontainers","verb":"patch","user":{{"username":"{SA}","extra":{{"authentication.kubernetes.io/credential-id":["{JTI}"]}}}},"sourceIPs":["10.0.0.9"],"userAgent":"vigil","objectRef":{{"resource":"pods","namespace":"team-a","name":"web-0","apiVersion":"v1","subresource":"ephemeralcontainers"}},"responseStatus":{{"metadata":{{}},"code":200}},"requestObject":{{"spec":{{"ephemeralContainers":[{{"name":"x-{n}","image":"busybox","env":[{{"name":"PAD","value":"{pad}"}}]}}]}}}},"requestReceivedTimestamp":"{t}","stageTimestamp":"{t}"}}"#,
                t = time(second),
            ) + "\n";
            written += line.len() as u64;
            w.write_all(line.as_bytes()).unwrap();
            n += 1;
            continue;
        }
        let (verb, ns, user) = match n % 4 {
            0 => ("get", "kube-system", "system:kube-controller-manager"),
            1 => ("list", "shop", "system:serviceaccount:shop:app"),
            2 => ("update", "kube-system", "system:node:node-7"),
            _ => (
                "watch",
                "monitoring",
                "system:serviceaccount:monitoring:prometheus",
            ),
        };
        let line = format!(
            r#"{{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"00000000-0000-4000-8000-{n:012}","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/{ns}/configmaps/cm-{m}","verb":"{verb}","user":{{"username":"{user}","groups":["system:authenticated"],"extra":{{"authentication.kubernetes.io/credential-id":["JTI=ffffffff-0000-4000-8000-{n:012}"]}}}},"sourceIPs":["10.1.{a}.{b}"],"userAgent":"kube-controller-manager/v1.33.1 (linux/amd64) kubernetes/abcdef0","objectRef":{{"resource":"configmaps","namespace":"{ns}","name":"cm-{m}","apiVersion":"v1"}},"responseStatus":{{"metadata":{{}},"code":200}},"requestReceivedTimestamp":"{t}","stageTimestamp":"{t}","annotations":{{"authorization.k8s.io/decision":"allow","authorization.k8s.io/reason":"RBAC: allowed by ClusterRoleBinding"}}}}"#,
            m = n % 997,
            a = n % 250,
            b = n % 199,
            t = time(second),
        ) + "\n";
        written += line.len() as u64;
        w.write_all(line.as_bytes()).unwrap();
        n += 1;
    }
    w.flush().unwrap();
}

fn measure(log: &Path) {
    let size = std::fs::metadata(log).unwrap().len();
    let run = run();
    let started = Instant::now();
    let report = check(&run, &[PathBuf::from(log)]).unwrap();
    let secs = started.elapsed().as_secs_f64();
    let hwm_kib: u64 = common::peak_rss_kib();
    let codes: Vec<&str> = report.findings.iter().map(|f| f.code.as_str()).collect();
    println!(
        "audit-check: {} MiB, {} events, {} of the run: {:.1} s, {:.0} MiB/s, peak RSS {} MiB (goal: under 100 MB for 1 GiB); findings {:?}",
        size >> 20,
        report.files[0].events,
        report.run_events,
        secs,
        (size as f64 / (1 << 20) as f64) / secs,
        hwm_kib / 1024,
        codes
    );
    assert_eq!(report.trail_matched, report.trail_lines, "{codes:?}");
    assert!(
        report.run_events > 0,
        "no event of the run was seen: the check checked nothing"
    );
    assert!(hwm_kib * 1024 < 100_000_000, "peak RSS over 100 MB");
}
