//! `vigil audit-check` against the test API server's own audit log (the
//! audit.k8s.io/v1 format, at the levels `vigil render audit-policy` asks
//! for): a clean run is clean, and each abnormal access injected into a real
//! run is found with its code.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::kube::{Cluster, cluster, policy};
use crate::util::{repo, vigil_in};

/// The audit policy as a user installs it: `vigil render audit-policy`.
pub(crate) fn rendered_audit_policy(dir: &Path) -> Value {
    let r = vigil_in(dir, &["render", "audit-policy"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    serde_saphyr::from_str(&r.stdout).unwrap()
}

/// `vigil run` (signed, plaintext) started in the background.
fn start_run(c: &Cluster) -> std::process::Child {
    run_cmd(c, &policy(c), &["--plaintext"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// `vigil run POLICY policies/profiles/ --out out --signing-key
/// signer.key.pem --format json EXTRA…` against the cluster.
fn run_cmd(c: &Cluster, policy: &Path, extra: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vigil"));
    cmd.arg("run")
        .arg(policy)
        .arg(repo().join("policies/profiles"))
        .args([
            "--out",
            "out",
            "--signing-key",
            "signer.key.pem",
            "--format",
            "json",
        ])
        .args(extra)
        .current_dir(c.dir.path())
        .env("KUBECONFIG", &c.server.kubeconfig);
    cmd
}

/// Wait for a run to end; its bundle directory.
fn finish(c: &Cluster, child: std::process::Child) -> PathBuf {
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(matches!(out.status.code(), Some(0 | 1)), "{stderr}");
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    c.dir
        .path()
        .join("out/live")
        .join(summary[0]["run_id"].as_str().unwrap())
}

/// `vigil audit-check BUNDLE --audit-log LOG… --format json`: exit code and
/// the finding codes.
fn audit_check(c: &Cluster, bundle: &Path, logs: &[&Path]) -> (i32, Vec<String>, Value) {
    audit_check_in(c.dir.path(), bundle, logs)
}

/// [`audit_check`] in `dir` (where `signer.pub.pem` is).
pub(crate) fn audit_check_in(
    dir: &Path,
    bundle: &Path,
    logs: &[&Path],
) -> (i32, Vec<String>, Value) {
    let mut args = vec![
        "audit-check".to_string(),
        bundle.display().to_string(),
        "--trusted-key".into(),
        "signer.pub.pem".into(),
        "--format".into(),
        "json".into(),
    ];
    for l in logs {
        args.push("--audit-log".into());
        args.push(l.display().to_string());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let r = vigil_in(dir, &args);
    assert!(r.code == 0 || r.code == 1, "exit {}: {}", r.code, r.stderr);
    let report: Value = serde_json::from_str(&r.stdout).unwrap();
    let codes = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap().to_string())
        .collect();
    (r.code, codes, report)
}

/// A kube client with `token`, optionally claiming another source address
/// (the API server takes `X-Forwarded-For` into `sourceIPs`).
async fn client_with(c: &Cluster, token: &str, forwarded_for: Option<&str>) -> kube::Client {
    client_for(&c.server, token, forwarded_for).await
}

/// [`client_with`] for any test API server.
pub(crate) async fn client_for(
    server: &crate::fakeapi::FakeApiServer,
    token: &str,
    forwarded_for: Option<&str>,
) -> kube::Client {
    let mut config = config_for(server, token).await;
    if let Some(ip) = forwarded_for {
        config
            .headers
            .push(("x-forwarded-for".parse().unwrap(), ip.parse().unwrap()));
    }
    kube::Client::try_from(config).unwrap()
}

/// The test API server's kubeconfig, with `token` as the credential.
async fn config_for(server: &crate::fakeapi::FakeApiServer, token: &str) -> kube::Config {
    let kubeconfig = kube::config::Kubeconfig::read_from(&server.kubeconfig).unwrap();
    let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    config.auth_info.token = Some(token.to_string().into());
    config
}

/// A client whose connections reach the test API server from `local`
/// (another loopback address), through a TCP relay on this machine: the
/// server sees `local` as the peer, as a real API server would see a
/// client on another host.
pub(crate) async fn client_from(
    server: &crate::fakeapi::FakeApiServer,
    token: &str,
    local: &str,
) -> kube::Client {
    let mut config = config_for(server, token).await;
    let upstream: std::net::SocketAddr = config
        .cluster_url
        .authority()
        .unwrap()
        .as_str()
        .replace("localhost", "127.0.0.1")
        .parse()
        .unwrap();
    let relay = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = relay.local_addr().unwrap().port();
    let local: std::net::IpAddr = local.parse().unwrap();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = relay.accept().await {
            tokio::spawn(async move {
                let socket = tokio::net::TcpSocket::new_v4().unwrap();
                socket.bind(std::net::SocketAddr::new(local, 0)).unwrap();
                if let Ok(mut outbound) = socket.connect(upstream).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    let host = config.cluster_url.host().unwrap().to_string();
    config.cluster_url = format!("https://{host}:{port}").parse().unwrap();
    kube::Client::try_from(config).unwrap()
}

/// `vigil verify BUNDLE --trusted-key signer.pub.pem` in the cluster's directory.
fn verify(c: &Cluster, bundle: &Path) -> crate::util::Run {
    vigil_in(
        c.dir.path(),
        &[
            "verify",
            bundle.to_str().unwrap(),
            "--trusted-key",
            "signer.pub.pem",
        ],
    )
}

/// A token the server issued for a ServiceAccount of `ns` (its claims name
/// the namespace) that is not one of `before`.
fn token_for(c: &Cluster, ns: &str, before: &[String]) -> String {
    use base64::Engine as _;
    c.server
        .issued_tokens()
        .into_iter()
        .filter(|t| !before.contains(t))
        .find(|t| {
            let payload = t.split('.').nth(1).unwrap();
            let claims: Value = serde_json::from_slice(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(payload)
                    .unwrap(),
            )
            .unwrap();
            claims["kubernetes.io"]["namespace"] == ns
        })
        .unwrap()
}

/// A cluster that logs no credential ids (Kubernetes 1.29: the
/// ServiceAccountTokenJTI gate is off by default): a clean run is tied to
/// its events by user, verb, object and time, and the only finding is the
/// low policy gap that says the log cannot tell tokens apart, never a
/// foreign token request (untied tokens on such a cluster: the monitor's
/// unit tests).
#[test]
fn a_clean_run_on_a_cluster_without_credential_ids_has_only_the_policy_gap() {
    let Some(c) = cluster(false) else { return };
    crate::util::signing_key(c.dir.path());
    c.server.set_kubernetes_minor(29);
    c.server
        .set_audit_policy(rendered_audit_policy(c.dir.path()));
    let bundle = finish(&c, start_run(&c));
    let log = c.server.audit_log();
    assert!(
        !log.contains("credential-id"),
        "a 1.29 server logs no credential ids"
    );
    let clean = c.dir.write("clean.log", &log);
    let (code, codes, report) = audit_check(&c, &bundle, &[&clean]);
    assert_eq!(codes, ["policy-gap"], "{report:#}");
    assert_eq!(report["findings"][0]["severity"], "low", "{report:#}");
    assert_eq!(code, 0, "a low finding is under the default --fail-on");
    assert_eq!(report["trail_matched"], report["trail_lines"], "{report:#}");
}

#[test]
fn a_clean_run_reconciles_and_every_injected_abuse_is_found() {
    use k8s_openapi::api::authentication::v1::TokenRequest;
    use k8s_openapi::api::core::v1::{Pod, Secret, ServiceAccount};
    use kube::api::{Api, AttachParams, ListParams, PostParams};
    let Some(c) = cluster(false) else { return };
    crate::util::signing_key(c.dir.path());
    c.server
        .set_audit_policy(rendered_audit_policy(c.dir.path()));

    // 1. A clean run: exit 0, every trail line matched.
    let bundle = finish(&c, start_run(&c));
    let clean = c.dir.write("clean.log", c.server.audit_log());
    let (code, codes, report) = audit_check(&c, &bundle, &[&clean]);
    assert_eq!((code, codes.as_slice()), (0, &[][..]), "{report:#}");
    assert!(report["run_events"].as_u64().unwrap() >= 12, "{report:#}");
    assert_eq!(report["trail_matched"], report["trail_lines"], "{report:#}");
    // The table says so too.
    let r = vigil_in(
        c.dir.path(),
        &[
            "audit-check",
            bundle.to_str().unwrap(),
            "--audit-log",
            clean.to_str().unwrap(),
            "--trusted-key",
            "signer.pub.pem",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("clean: every use"), "{}", r.stdout);
    attest_and_verify(&c, &bundle, &clean);
    let first = bundle.clone();

    // Rotated and gzipped: the same verdict from two files, one compressed.
    let text = c.server.audit_log();
    let lines: Vec<&str> = text.lines().collect();
    let (older, newer) = lines.split_at(lines.len() / 2);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all((older.join("\n") + "\n").as_bytes()).unwrap();
    let rotated = c.dir.path().join("audit.log.1.gz");
    std::fs::write(&rotated, gz.finish().unwrap()).unwrap();
    let current = c.dir.write("audit.log", &(newer.join("\n") + "\n"));
    let (code, codes, _) = audit_check(&c, &bundle, &[&rotated, &current]);
    assert_eq!((code, codes.as_slice()), (0, &[][..]));

    // Only the newer half: the run's first requests are missing; never
    // "clean" (coverage of the window itself: the unit tests).
    let (code, codes, _) = audit_check(&c, &bundle, &[&current]);
    assert_eq!(code, 1);
    assert!(
        codes.contains(&"trail-without-event".to_string()),
        "{codes:?}"
    );
    // A log cut mid-line (rotation while writing) is said to be cut: a
    // coverage gap, not a log of something else.
    let cut = c.dir.write("cut.log", &text[..text.len() - 40]);
    let (code, codes, _) = audit_check(&c, &bundle, &[&cut]);
    assert_eq!(code, 1);
    assert!(codes.contains(&"coverage-gap".to_string()), "{codes:?}");
    assert!(!codes.contains(&"unreadable-log".to_string()), "{codes:?}");
    // Rotated just now: the live file holds only a torn line. The set is
    // checked (exit 1 for the gap), never refused as unreadable (exit 2).
    let torn = c.dir.write("torn.log", "{\"kind\":\"Event\",\"apiVer");
    let all = c.dir.write("all.log", &text);
    let (code, codes, _) = audit_check(&c, &bundle, &[&all, &torn]);
    assert_eq!(code, 1, "{codes:?}");
    assert!(codes.contains(&"coverage-gap".to_string()), "{codes:?}");
    // A webhook sink's lines: events without kind and apiVersion, and
    // EventList batches, are events all the same.
    let webhook: String = text
        .lines()
        .enumerate()
        .map(|(i, l)| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            if i % 2 == 0 {
                let o = v.as_object_mut().unwrap();
                o.remove("kind");
                o.remove("apiVersion");
                v.to_string() + "\n"
            } else {
                serde_json::json!({"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": [v]})
                    .to_string()
                    + "\n"
            }
        })
        .collect();
    let hooked = c.dir.write("webhook.log", &webhook);
    let (code, codes, _) = audit_check(&c, &bundle, &[&hooked]);
    assert_eq!((code, codes.as_slice()), (0, &[][..]));

    // 2. A run with abuse injected while it scans.
    c.server.set_token_cache_ttl(Duration::from_secs(120));
    c.server.inject(crate::fakeapi::Faults {
        exec_held: 1,
        ..Default::default()
    });
    let earlier = c.server.issued_tokens();
    let arrived = std::cell::Cell::new(0);
    c.server.wait_for_arrivals(Duration::from_secs(1), |paths| {
        arrived.replace(paths.len()) == 0
    });
    let child = start_run(&c);
    // This run's first exec in team-a (held, or answered while another is).
    c.server
        .wait_for_arrivals(Duration::from_secs(60), |paths| {
            paths[arrived.get()..]
                .iter()
                .any(|p| p.contains("/namespaces/team-a/pods/") && p.contains("/exec?"))
        });
    let token = token_for(&c, "team-a", &earlier);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        // The run's token, used as the run would not: a foreign command in a
        // scanned pod, a read outside its rights, from another address.
        let stolen = client_with(&c, &token, None).await;
        let pods: Api<Pod> = Api::namespaced(stolen.clone(), "team-a");
        let params = AttachParams::default().container("app").stderr(false);
        let mut attached = pods
            .exec("web-1", ["cat", "/etc/shadow"], &params)
            .await
            .unwrap();
        let _ = attached.take_status().unwrap().await;
        let secrets: Api<Secret> = Api::namespaced(stolen, "team-a");
        assert!(secrets.list(&ListParams::default()).await.is_err());
        // From another address: the connection really comes from
        // 127.0.0.2 (an X-Forwarded-For header would be the client's word,
        // which the audit API says not to trust, so it proves nothing).
        let elsewhere = client_from(&c.server, &token, "127.0.0.2").await;
        let pods: Api<Pod> = Api::namespaced(elsewhere, "team-a");
        let _ = pods.get("web-2").await;
        // The client's word alone: a spoofed X-Forwarded-For naming the
        // runner's address does not hide the request's real source (the
        // stolen client above, from the same address, is found by its
        // other findings; this one must not turn them clean).
        let spoofed = client_with(&c, &token, Some("127.0.0.1")).await;
        let pods: Api<Pod> = Api::namespaced(spoofed, "team-a");
        let _ = pods.get("web-2").await;
        // Another identity: a token for the run's ServiceAccount, and an
        // exec into a scanned pod.
        let admin = client_with(&c, crate::fakeapi::ADMIN_TOKEN, None).await;
        let sa = c.server.objects("serviceaccounts");
        let sa = sa.iter().find(|s| s.starts_with("team-a/vigil-")).unwrap();
        let name = sa.split('/').nth(1).unwrap();
        let accounts: Api<ServiceAccount> = Api::namespaced(admin.clone(), "team-a");
        accounts
            .create_token_request(name, &PostParams::default(), &TokenRequest::default())
            .await
            .unwrap();
        let pods: Api<Pod> = Api::namespaced(admin, "team-b");
        let mut attached = pods.exec("web-3", ["id"], &params).await.unwrap();
        let _ = attached.take_status().unwrap().await;
    });
    c.server.release_held();
    let bundle = finish(&c, child);
    // The first run's attestation moved into this bundle is refused.
    let moved = bundle.join("audit-check.dsse.json");
    std::fs::copy(first.join("audit-check.dsse.json"), &moved).unwrap();
    let v = verify(&c, &bundle);
    assert_eq!(v.code, 1, "{}", v.stdout);
    assert!(
        v.stderr.contains("an attestation of another run"),
        "{}",
        v.stderr
    );
    std::fs::remove_file(&moved).unwrap();
    // After the run: the token still authenticates for the cache's time.
    rt.block_on(async {
        let replay = client_with(&c, &token, None).await;
        let pods: Api<Pod> = Api::namespaced(replay, "team-a");
        let _ = pods.get("web-4").await;
    });
    let abused = c.dir.write("abused.log", c.server.audit_log());
    let (code, codes, report) = audit_check(&c, &bundle, &[&abused]);
    if std::env::var_os("VIGIL_SHOW_REPORT").is_some() {
        eprintln!(
            "{}",
            serde_json::to_string_pretty(&report["findings"]).unwrap()
        );
    }
    assert_eq!(code, 1);
    for want in [
        "foreign-exec-command",
        "forbidden-attempt",
        "foreign-source",
        "foreign-token-request",
        "other-identity-access",
        "credential-reuse",
        // The stolen token's reads of pods are forbidden attempts, not
        // unrecorded requests: an api-approach token holds only
        // `pods/exec` (approaches::audit_check_names_a_foreign_ephemeral_…
        // shows unrecorded-request with the debug approach's rights).
    ] {
        assert!(
            codes.iter().any(|c| c == want),
            "{want} missing: {}",
            serde_json::to_string_pretty(&report["findings"]).unwrap()
        );
    }
    // No finding about the run's own requests: they all matched.
    assert!(
        !codes.iter().any(|c| c == "trail-without-event"),
        "{report:#}"
    );
    // --fail-on critical still fails (foreign exec, reuse are critical);
    // the JSON names each event by its auditID.
    assert!(
        report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["code"] == "foreign-exec-command")
            .all(|f| f["audit_id"].is_string() && f["severity"] == "critical")
    );
}

/// `--attest` writes a signed statement over the run's statement into the
/// bundle; `vigil verify` checks it, and refuses it edited or moved to
/// another bundle. It is never replaced.
fn attest_and_verify(c: &Cluster, bundle: &Path, log: &Path) {
    let check = |extra: &[&str]| {
        let mut args = vec![
            "audit-check",
            bundle.to_str().unwrap(),
            "--audit-log",
            log.to_str().unwrap(),
            "--trusted-key",
            "signer.pub.pem",
        ];
        args.extend_from_slice(extra);
        vigil_in(c.dir.path(), &args)
    };
    let r = check(&["--attest", "--signing-key", "signer.key.pem"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let attestation = bundle.join("audit-check.dsse.json");
    let v = verify(c, bundle);
    assert_eq!(v.code, 0, "{}", v.stderr);
    assert!(
        v.stdout.contains("audit-check attested: clean"),
        "{}",
        v.stdout
    );
    // The payload names the log's sha256 and the verdict.
    let envelope: Value = serde_json::from_slice(&std::fs::read(&attestation).unwrap()).unwrap();
    use base64::Engine as _;
    let payload: Value = serde_json::from_slice(
        &base64::engine::general_purpose::STANDARD
            .decode(envelope["payload"].as_str().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        payload["predicateType"],
        "https://vigil.dev/attestations/audit-check/v1"
    );
    assert_eq!(payload["subject"][0]["name"], "statement.dsse.json");
    assert_eq!(payload["predicate"]["verdict"], "clean");
    assert_eq!(
        payload["predicate"]["audit_logs"][0]["sha256"]
            .as_str()
            .unwrap()
            .len(),
        64
    );
    // Never replaced.
    let again = check(&["--attest", "--signing-key", "signer.key.pem"]);
    assert_eq!(again.code, 2, "{}", again.stderr);
    assert!(again.stderr.contains("never replaced"), "{}", again.stderr);
    // Another verdict pasted in: the signature fails.
    let original = std::fs::read(&attestation).unwrap();
    let mut forged = envelope.clone();
    forged["payload"] = base64::engine::general_purpose::STANDARD
        .encode(
            serde_json::to_vec(&{
                let mut p = payload.clone();
                p["predicate"]["verdict"] = "findings".into();
                p
            })
            .unwrap(),
        )
        .into();
    std::fs::write(&attestation, serde_json::to_vec(&forged).unwrap()).unwrap();
    let v = verify(c, bundle);
    assert_eq!(v.code, 1, "{}", v.stdout);
    assert!(v.stderr.contains("audit-check.dsse.json"), "{}", v.stderr);
    std::fs::write(&attestation, original).unwrap();
    assert_eq!(verify(c, bundle).code, 0);
}

#[test]
fn bad_input_is_exit_2_with_the_reason() {
    let Some(c) = cluster(false) else { return };
    crate::util::signing_key(c.dir.path());
    c.server
        .set_audit_policy(rendered_audit_policy(c.dir.path()));
    let bundle = finish(&c, start_run(&c));
    let junk = c.dir.write("junk.log", "hello\nworld\n");
    for (log, want) in [
        (
            junk.to_str().unwrap(),
            "none of its 2 lines is an audit.k8s.io/v1 Event",
        ),
        ("/dev/zero", "a character device, not a regular file"),
        ("missing.log", "no such file"),
    ] {
        let r = vigil_in(
            c.dir.path(),
            &[
                "audit-check",
                bundle.to_str().unwrap(),
                "--audit-log",
                log,
                "--trusted-key",
                "signer.pub.pem",
            ],
        );
        assert_eq!(r.code, 2, "{log}: {}", r.stderr);
        assert!(r.stderr.contains(want), "{log}: {}", r.stderr);
    }
    // A tampered bundle is refused before any log is read.
    let st = bundle.join("summary.json");
    let mut bytes = std::fs::read(&st).unwrap();
    bytes[10] ^= 1;
    std::fs::write(&st, bytes).unwrap();
    let log = c.dir.write("audit.log", c.server.audit_log());
    let r = vigil_in(
        c.dir.path(),
        &[
            "audit-check",
            bundle.to_str().unwrap(),
            "--audit-log",
            log.to_str().unwrap(),
            "--trusted-key",
            "signer.pub.pem",
        ],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("does not verify"), "{}", r.stderr);
}

/// `spec.monitoring`: `vigil schedule` checks each run against the API
/// server's log file (written as events happen, as the log backend does)
/// and attests the result into the run's bundle.
#[test]
fn the_scheduler_checks_each_run_and_attests_it() {
    use std::io::BufRead as _;
    let Some(c) = cluster(false) else { return };
    crate::util::signing_key(c.dir.path());
    c.server
        .set_audit_policy(rendered_audit_policy(c.dir.path()));
    c.server.set_audit_log_file(&c.dir.path().join("audit.log"));
    c.dir.write(
        "sched.yaml",
        "apiVersion: vigil/v1\nkind: ScanPolicy\nmetadata: {name: live}\nspec:\n  profiles: [container-baseline]\n  schedule: {cron: \"0 0 1 1 *\", catchUp: one}\n  monitoring: {auditLog: [audit.log]}\n  targets:\n    - {namespace: team-a, selector: {matchLabels: {app: web}}, approach: api}\n",
    );
    let out = c.dir.path().join("out");
    std::fs::create_dir_all(out.join("live")).unwrap();
    std::fs::write(
        out.join("live/.vigil-schedule"),
        "2020-01-01T00:00:00+00:00",
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["schedule", "sched.yaml"])
        .arg(repo().join("policies/profiles"))
        .arg("--out")
        .arg(&out)
        .args(["--plaintext", "--signing-key", "signer.key.pem"])
        .current_dir(c.dir.path())
        .env("KUBECONFIG", &c.server.kubeconfig)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read the scheduler's log until it says what the check found.
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        seen.push_str(&line);
        seen.push('\n');
        if line.contains("audit-check") {
            break;
        }
    }
    crate::util::signal(&child, rustix::process::Signal::TERM);
    assert_eq!(child.wait().unwrap().code(), Some(0), "{seen}");
    assert!(
        seen.contains("audit-check clean, attested in the bundle"),
        "{seen}"
    );
    let bundle = vigil::monitor::newest_bundle(&out.join("live")).unwrap();
    let v = verify(&c, &bundle);
    assert_eq!(v.code, 0, "{}", v.stderr);
    assert!(
        v.stdout.contains("audit-check attested: clean"),
        "{}",
        v.stdout
    );
    // Without --signing-key the scheduler refuses to start.
    let r = vigil_in(
        c.dir.path(),
        &[
            "schedule",
            "sched.yaml",
            repo().join("policies/profiles").to_str().unwrap(),
            "--out",
            "out",
            "--plaintext",
        ],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("pass --signing-key"), "{}", r.stderr);
}

/// An encrypted bundle checked without `--identity`: the error says the
/// trail is encrypted and which flag reads it (the help's own example
/// once got "has no audit trail"); with the identity, the check runs.
#[test]
fn an_encrypted_trail_without_identity_says_to_pass_one() {
    let Some(c) = cluster(false) else { return };
    crate::util::signing_key(c.dir.path());
    c.server
        .set_audit_policy(rendered_audit_policy(c.dir.path()));
    let recipient = std::fs::read_to_string(repo().join("fixtures/keys/demo-age.pub")).unwrap();
    let p = c.dir.write(
        "enc.yaml",
        format!(
            "apiVersion: vigil/v1\nkind: ScanPolicy\nmetadata: {{name: enc}}\nspec:\n  profiles: [container-baseline]\n  targets:\n    - {{namespace: team-a, selector: {{matchLabels: {{app: web}}}}, approach: api}}\n  output: {{recipients: [\"{}\"]}}\n",
            recipient.trim()
        ),
    );
    let out = run_cmd(&c, &p, &[]).output().unwrap();
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    let bundle = c
        .dir
        .path()
        .join("out/enc")
        .join(summary[0]["run_id"].as_str().unwrap());
    let log = c.dir.write("audit.log", c.server.audit_log());
    let mut args = vec![
        "audit-check".to_string(),
        bundle.display().to_string(),
        "--audit-log".into(),
        log.display().to_string(),
        "--trusted-key".into(),
        "signer.pub.pem".into(),
    ];
    let r = vigil_in(
        c.dir.path(),
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("encrypted") && r.stderr.contains("--identity"),
        "{}",
        r.stderr
    );
    args.push("--identity".into());
    args.push(
        repo()
            .join("fixtures/keys/demo-age.key")
            .display()
            .to_string(),
    );
    let r = vigil_in(
        c.dir.path(),
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
}
