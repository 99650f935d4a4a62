//! Scanning live pods through the Kubernetes API, against the test API
//! server (real HTTPS, real tokens, RBAC enforced, exec over WebSocket).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::fakeapi::FakeApiServer;
use crate::util::{TempDir, install_busybox, repo, rootfs_fixtures, vigil_in};

fn pod(ns: &str, name: &str, app: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": app}, "uid": format!("uid-{name}")},
        "spec": {"nodeName": "node-1", "containers": [{"name": "app", "image": format!("registry.example/{app}:1")}]},
        "status": {"phase": "Running", "containerStatuses": [{"name": "app", "ready": true, "restartCount": 0, "image": "x", "imageID": "", "state": {"running": {}}}]}
    })
}

pub(crate) struct Cluster {
    _fixtures: TempDir,
    pub(crate) dir: TempDir,
    pub(crate) server: FakeApiServer,
}

/// 6 alpine-like pods in team-a, 6 debian-like in team-b (all with a
/// static busybox shell), one unplanned pod in team-a, and a shell-less
/// distroless pod in team-b when `with_distroless`.
pub(crate) fn cluster(with_distroless: bool) -> Option<Cluster> {
    if !crate::util::root_and_busybox() {
        return None;
    }
    let fx = rootfs_fixtures();
    let roots = fx.path().join("rootfs");
    install_busybox(&roots.join("alpine"));
    install_busybox(&roots.join("debian"));
    let mut pods = Vec::new();
    let mut rootfs: HashMap<(String, String), PathBuf> = HashMap::new();
    for i in 0..6 {
        for (ns, tree) in [("team-a", "alpine"), ("team-b", "debian")] {
            let name = format!("web-{i}");
            pods.push(pod(ns, &name, "web"));
            rootfs.insert((ns.into(), name), roots.join(tree));
        }
    }
    pods.push(pod("team-a", "other-0", "other"));
    rootfs.insert(("team-a".into(), "other-0".into()), roots.join("alpine"));
    if with_distroless {
        pods.push(pod("team-b", "static-0", "web"));
        rootfs.insert(
            ("team-b".into(), "static-0".into()),
            roots.join("distroless"),
        );
    }
    let dir = TempDir::new("kube");
    let server = FakeApiServer::start(dir.path(), pods, rootfs);
    Some(Cluster {
        _fixtures: fx,
        dir,
        server,
    })
}

pub(crate) fn policy(c: &Cluster) -> PathBuf {
    c.dir.write(
        "p.yaml",
        "apiVersion: vigil/v1\nkind: ScanPolicy\nmetadata: {name: live}\nspec:\n  profiles: [container-baseline]\n  targets:\n    - {namespace: team-a, selector: {matchLabels: {app: web}}, approach: api}\n    - {namespace: team-b, selector: {matchLabels: {app: web}}, approach: api}\n  limits: {concurrency: 4}\n",
    )
}

fn run_vigil(c: &Cluster, extra: &[&str]) -> crate::util::Run {
    run_policy_as(c, &c.server.kubeconfig, &policy(c), extra)
}

/// `vigil run POLICY policies/profiles/ --out out --unsigned --plaintext
/// --format json EXTRA…` in the cluster's directory, with `kubeconfig`.
fn run_policy_cmd(c: &Cluster, kubeconfig: &Path, policy: &Path, extra: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vigil"));
    cmd.arg("run")
        .arg(policy)
        .arg(repo().join("policies/profiles"))
        .args(crate::util::PLAIN_JSON)
        .args(extra)
        .current_dir(c.dir.path())
        .env("KUBECONFIG", kubeconfig);
    cmd
}

/// [`run_policy_cmd`], run to its end.
fn run_policy_as(
    c: &Cluster,
    kubeconfig: &Path,
    policy: &Path,
    extra: &[&str],
) -> crate::util::Run {
    run_policy_cmd(c, kubeconfig, policy, extra)
        .output()
        .unwrap()
        .into()
}

fn assert_clean(c: &Cluster) {
    c.server.assert_no_access_objects();
    for t in c.server.issued_tokens() {
        assert!(!c.server.token_valid(&t), "a run token still authenticates");
    }
}

#[test]
fn a_run_scans_live_pods_with_only_the_scoped_token_and_cleans_up() {
    let Some(c) = cluster(false) else { return };
    let run = run_vigil(&c, &[]);
    assert!(run.code == 0 || run.code == 1, "{}", run.stderr);
    let summary: Value = serde_json::from_str(&run.stdout).unwrap();
    let targets = summary[0]["targets"].as_array().unwrap();
    assert_eq!(
        targets.len(),
        12,
        "12 planned containers, the unplanned pod excluded"
    );
    for t in targets {
        assert_eq!(t["status"], "scanned", "{t}");
        let id = t["id"].as_str().unwrap();
        // The same fixture trees as the local demo: the same verdicts.
        let failed = t["counts"]["failed"].as_u64().unwrap();
        if id.starts_with("team-a/") {
            assert!(failed >= 10, "alpine-like pods fail many controls: {t}");
        } else {
            assert!(failed >= 3, "debian-like: {t}");
        }
    }
    // One exec per container, all as the run's ServiceAccount.
    let log = c.server.request_log();
    let execs: Vec<_> = log.iter().filter(|l| l.path.contains("/exec?")).collect();
    assert_eq!(execs.len(), 12);
    assert!(
        execs
            .iter()
            .all(|l| l.identity.starts_with("system:serviceaccount:") && l.status == 101),
        "{execs:?}"
    );
    assert!(
        !log.iter().any(|l| l.path.contains("other-0/exec")),
        "nothing outside the plan"
    );
    // Cleanup deletes the anchors (revoking the tokens) before anything else.
    let deletes: Vec<&str> = log
        .iter()
        .filter(|l| l.method == "DELETE")
        .map(|l| l.path.as_str())
        .collect();
    assert_eq!(
        deletes.len(),
        8,
        "4 objects in each of 2 namespaces: {deletes:?}"
    );
    // All in one round (runner::the_run_waits_only_for_the_round_trips_its_dependencies_need).
    assert_clean(&c);
    // No token anywhere in what vigil printed or wrote.
    let mut written = String::new();
    for e in crate::util::files_under(&c.dir.path().join("out")) {
        written.push_str(&String::from_utf8_lossy(&std::fs::read(e).unwrap()));
    }
    for t in c.server.issued_tokens() {
        assert!(
            !run.stdout.contains(&t) && !run.stderr.contains(&t) && !written.contains(&t),
            "token leaked"
        );
    }
}

#[test]
fn the_scoped_token_is_forbidden_outside_the_plan() {
    let Some(c) = cluster(false) else { return };
    let set_dir = c.dir.path().to_path_buf();
    let policy = policy(&c);
    let (set, diags) = vigil::policy::load(&[policy, repo().join("policies/profiles")]);
    assert!(diags.iter().all(|d| !d.is_error()));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let caller = rt
        .block_on(vigil::cluster::Cluster::connect_with(
            Some(&c.server.kubeconfig),
            None,
            false,
        ))
        .unwrap();
    let live = vigil::inventory::Live::new(caller.clone(), rt.handle().clone());
    let (plan, _) = vigil::plan::plan(
        &set,
        &[],
        Some(&live),
        &vigil::plan::PlanOptions {
            run_id: "t0k3nt3st".into(),
            ..Default::default()
        },
    )
    .unwrap();
    let pp = &plan.policies[0];
    let audit = vigil::audit::AuditLog::new("t0k3nt3st");
    let mut access = rt
        .block_on(vigil::access::RunAccess::setup(
            &caller,
            &set.policies[0].value,
            pp,
            &audit,
        ))
        .unwrap();
    let scoped = access.scoped("team-a").unwrap().clone();
    let sh = |pod: &str| {
        rt.block_on(scoped.exec(
            "team-a",
            pod,
            "app",
            vec!["/bin/sh".into(), "-c".into(), "echo hi".into()],
            1024,
        ))
    };
    let ok = sh("web-0").unwrap();
    assert_eq!(ok.stdout, b"hi\n");
    let denied = sh("other-0").unwrap_err();
    assert!(denied.is_forbidden(), "{denied}");
    // Nor may it list pods, read secrets or touch another namespace.
    assert!(
        rt.block_on(scoped.list_pods("team-a", &Some))
            .unwrap_err()
            .is_forbidden()
    );
    assert!(
        rt.block_on(scoped.get_pod("team-b", "web-0"))
            .unwrap_err()
            .is_forbidden()
    );
    let leftovers = rt.block_on(access.cleanup(&caller, &audit));
    assert!(leftovers.is_empty(), "{leftovers:?}");
    assert_clean(&c);
    // After cleanup the token no longer authenticates at all (once the API
    // server's token cache forgets it: see
    // `revocation_takes_effect_within_the_token_cache_time`).
    c.server.set_token_cache_ttl(Duration::ZERO);
    let e = rt
        .block_on(scoped.exec("team-a", "web-0", "app", vec!["true".into()], 16))
        .unwrap_err();
    assert!(e.to_string().contains("401"), "{e}");
    let _ = set_dir;
}

#[test]
fn a_failing_target_is_an_error_result_and_cleanup_still_runs() {
    let Some(c) = cluster(true) else { return };
    let run = run_vigil(&c, &[]);
    assert_eq!(run.code, 3, "{}", run.stderr);
    let summary: Value = serde_json::from_str(&run.stdout).unwrap();
    let t = summary[0]["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == "team-b/static-0/app")
        .unwrap()
        .clone();
    assert_eq!(t["status"], "error");
    assert!(
        t["error"].as_str().unwrap().contains("no usable shell"),
        "{t}"
    );
    assert_eq!(
        summary[0]["targets"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["status"] == "scanned")
            .count(),
        12
    );
    // Coverage says which and why.
    let cov = &summary[0]["coverage"];
    assert_eq!(
        (cov["expected"].as_u64(), cov["scanned"].as_u64()),
        (Some(13), Some(12))
    );
    assert_eq!(
        cov["gaps"],
        json!([{"reason": "no-shell", "count": 1, "examples": ["team-b/static-0/app"]}])
    );
    assert_clean(&c);
}

#[test]
fn sigint_mid_run_finishes_cleanly() {
    let Some(c) = cluster(false) else { return };
    c.server.set_latency(Duration::from_millis(150));
    let profiles = repo().join("policies/profiles");
    let policy = policy(&c);
    let child = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["run", policy.to_str().unwrap(), profiles.to_str().unwrap()])
        .args(crate::util::PLAIN_JSON)
        .current_dir(c.dir.path())
        .env("KUBECONFIG", &c.server.kubeconfig)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the first exec, then interrupt.
    c.server.wait_for(Duration::from_secs(60), |log| {
        log.iter().any(|l| l.path.contains("/exec?"))
    });
    crate::util::signal(&child, rustix::process::Signal::INT);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("signal received"), "{stderr}");
    let summary: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {stderr}"));
    let targets = summary[0]["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 12, "every planned target has a result");
    assert!(
        targets.iter().any(|t| t["error"]
            .as_str()
            .is_some_and(|e| e.contains("interrupted"))),
        "some targets were not started"
    );
    assert_eq!(out.status.code(), Some(3));
    assert_clean(&c);
    // The sealed statement says the run is incomplete and names what was not scanned.
    let bundle = c
        .dir
        .path()
        .join("out/live")
        .join(summary[0]["run_id"].as_str().unwrap());
    let st = crate::util::statement_payload(&bundle);
    assert_eq!(st["predicate"]["complete"], false);
    let not_scanned = st["predicate"]["not_scanned"].as_array().unwrap();
    assert!(
        !not_scanned.is_empty() && not_scanned.len() < 12,
        "{not_scanned:?}"
    );
    assert_eq!(summary[0]["complete"], false);
    let _ = vigil_in;
}

fn run_with_kubeconfig(c: &Cluster, kubeconfig: &Path, args: &[&str]) -> crate::util::Run {
    vigil_against(c.dir.path(), kubeconfig, args)
}

/// `vigil ARGS…` in `dir` against the cluster `kubeconfig` names.
fn vigil_against(dir: &Path, kubeconfig: &Path, args: &[&str]) -> crate::util::Run {
    Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(args)
        .current_dir(dir)
        .env("KUBECONFIG", kubeconfig)
        .output()
        .unwrap()
        .into()
}

#[test]
fn gc_deletes_only_expired_leftovers() {
    let Some(c) = cluster(false) else { return };
    let leftover = |kind: &str, name: &str, expires: &str| {
        let api_version = if kind == "Role" {
            "rbac.authorization.k8s.io/v1"
        } else {
            "v1"
        };
        json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": name, "namespace": "team-a",
            "labels": {"app.kubernetes.io/managed-by": "vigil"}, "annotations": {"vigil.dev/expires-at": expires}}})
    };
    c.server.insert(
        "serviceaccounts",
        leftover("ServiceAccount", "vigil-old-1", "2020-01-01T00:00:00Z"),
    );
    c.server.insert(
        "secrets",
        leftover("Secret", "vigil-old-1-anchor", "2020-01-01T00:00:00Z"),
    );
    c.server.insert(
        "roles",
        leftover("Role", "vigil-old-1", "2020-01-01T00:00:00Z"),
    );
    c.server.insert(
        "serviceaccounts",
        leftover("ServiceAccount", "vigil-running", "2099-01-01T00:00:00Z"),
    );
    let mut unrelated = leftover("ServiceAccount", "not-vigil", "2020-01-01T00:00:00Z");
    unrelated["metadata"]["labels"] = json!({"app": "x"});
    c.server.insert("serviceaccounts", unrelated);
    let dry = run_with_kubeconfig(&c, &c.server.kubeconfig, &["gc", "--dry-run"]);
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    assert!(
        dry.stdout
            .contains("would delete secret team-a/vigil-old-1-anchor"),
        "{}",
        dry.stdout
    );
    assert_eq!(
        c.server.objects("roles"),
        vec!["team-a/vigil-old-1"],
        "dry run deletes nothing"
    );
    let run = run_with_kubeconfig(&c, &c.server.kubeconfig, &["gc"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout.lines().count(), 3, "{}", run.stdout);
    assert!(
        run.stdout
            .lines()
            .next()
            .unwrap()
            .starts_with("deleted secret"),
        "anchors go first: {}",
        run.stdout
    );
    assert_eq!(
        c.server.objects("serviceaccounts"),
        vec!["team-a/not-vigil", "team-a/vigil-running"]
    );
    assert!(c.server.objects("roles").is_empty());
}

#[test]
fn insecure_kubeconfigs_are_refused_unless_asked_for() {
    let Some(c) = cluster(false) else { return };
    let text = std::fs::read_to_string(&c.server.kubeconfig).unwrap();
    let insecure = text
        .lines()
        .filter(|l| !l.contains("certificate-authority-data"))
        .map(|l| {
            if l.trim_start().starts_with("server:") {
                format!("{l}\n    insecure-skip-tls-verify: true")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let path = c.dir.write("insecure-kubeconfig", insecure);
    let policy = policy(&c);
    let profiles = repo().join("policies/profiles");
    let args = ["plan", policy.to_str().unwrap(), profiles.to_str().unwrap()];
    let run = run_with_kubeconfig(&c, &path, &args);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("--insecure-skip-tls-verify"),
        "{}",
        run.stderr
    );
    let mut with_flag = args.to_vec();
    with_flag.push("--insecure-skip-tls-verify");
    let run = run_with_kubeconfig(&c, &path, &with_flag);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("team-a/web-0/app"), "{}", run.stdout);
    // And a kubeconfig without the CA fails TLS verification outright.
    let no_ca = text
        .lines()
        .filter(|l| !l.contains("certificate-authority-data"))
        .collect::<Vec<_>>()
        .join("\n");
    let path = c.dir.write("no-ca-kubeconfig", no_ca);
    let run = run_with_kubeconfig(&c, &path, &args);
    assert_ne!(run.code, 0);
    assert!(
        !run.stderr.contains(crate::fakeapi::ADMIN_TOKEN),
        "no credential in errors"
    );
}

/// Apply `vigil render rbac` output to the server as the platform team would.
/// `vigil render rbac POLICY policies/profiles/` against the test
/// server's pods: the YAML it prints.
fn render_rbac(c: &Cluster, policy: &Path) -> String {
    let profiles = repo().join("policies/profiles");
    let r = run_with_kubeconfig(
        c,
        &c.server.kubeconfig,
        &[
            "render",
            "rbac",
            policy.to_str().unwrap(),
            profiles.to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    r.stdout
}

fn apply_rendered(c: &Cluster, yaml: &str) {
    let docs: Vec<Value> = serde_saphyr::from_multiple(yaml).unwrap();
    for d in docs {
        let resource = match d["kind"].as_str().unwrap() {
            "ServiceAccount" => "serviceaccounts",
            "Role" => "roles",
            "RoleBinding" => "rolebindings",
            other => panic!("unexpected {other}"),
        };
        c.server.insert(resource, d);
    }
}

#[test]
fn provisioned_mode_checks_the_rights_and_only_requests_tokens() {
    let Some(c) = cluster(false) else { return };
    let text = std::fs::read_to_string(policy(&c)).unwrap().replace(
        "limits: {concurrency: 4}",
        "access: {mode: provisioned}\n  limits: {concurrency: 4}",
    );
    let prov = c.dir.write("prov.yaml", text);
    let rendered = render_rbac(&c, &prov);
    apply_rendered(&c, &rendered);
    let run_prov = || run_policy_as(&c, &c.server.kubeconfig, &prov, &[]);
    let run = run_prov();
    assert!(run.code == 0 || run.code == 1, "{}", run.stderr);
    let summary: Value = serde_json::from_str(&run.stdout).unwrap();
    assert!(
        summary[0]["targets"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["status"] == "scanned")
    );
    assert!(
        !run.stderr.contains("holds more"),
        "exact rights, no warning: {}",
        run.stderr
    );
    // The provisioned objects stay; the run's anchors are gone and its tokens dead.
    assert_eq!(
        c.server.objects("serviceaccounts"),
        vec!["team-a/vigil-live", "team-b/vigil-live"]
    );
    assert!(c.server.objects("secrets").is_empty());
    assert!(
        c.server
            .issued_tokens()
            .iter()
            .all(|t| !c.server.token_valid(t))
    );
    let creates: Vec<_> = c
        .server
        .request_log()
        .into_iter()
        .filter(|l| {
            l.method == "POST" && (l.path.contains("/roles") || l.path.contains("/rolebindings"))
        })
        .collect();
    assert!(
        creates.is_empty(),
        "a provisioned run creates no RBAC: {creates:?}"
    );

    // Excess rights are reported.
    c.server.insert(
        "roles",
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "too-much", "namespace": "team-a"},
        "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]}),
    );
    c.server.insert(
        "rolebindings",
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "too-much", "namespace": "team-a"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "too-much"},
        "subjects": [{"kind": "ServiceAccount", "name": "vigil-live", "namespace": "team-a"}]}),
    );
    let run = run_prov();
    assert!(run.code == 0 || run.code == 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("holds more than the plan needs") && run.stderr.contains("secrets"),
        "{}",
        run.stderr
    );

    // Missing rights refuse the run before any scan, and leave nothing behind.
    let mut role: Value = serde_saphyr::from_multiple::<Value>(&rendered)
        .unwrap()
        .into_iter()
        .find(|d| d["kind"] == "Role" && d["metadata"]["namespace"] == "team-b")
        .unwrap();
    role["rules"][0]["resourceNames"] = json!(["web-0"]);
    c.server.insert("roles", role);
    let execs_before = c
        .server
        .request_log()
        .iter()
        .filter(|l| l.path.contains("/exec?"))
        .count();
    let run = run_prov();
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(
        run.stderr.contains("do not cover the plan") && run.stderr.contains("web-1"),
        "{}",
        run.stderr
    );
    assert_eq!(
        c.server
            .request_log()
            .iter()
            .filter(|l| l.path.contains("/exec?"))
            .count(),
        execs_before,
        "nothing scanned"
    );
    assert!(c.server.objects("secrets").is_empty(), "anchors cleaned up");
}

#[test]
fn without_retries_injected_faults_become_error_results_and_cleanup_still_runs() {
    let Some(c) = cluster(false) else { return };
    c.server.inject(crate::fakeapi::Faults {
        exec_500: 1,
        exec_429: 1,
        exec_cut: 1,
        latency_spikes: 0,
        exec_hang: 0,
        ..Default::default()
    });
    // No retries; a short scan timeout bounds a stream that stalls instead
    // of closing.
    let text = std::fs::read_to_string(policy(&c)).unwrap().replace(
        "limits: {concurrency: 4}",
        "limits: {concurrency: 4, scanTimeout: 5s, retries: 0}",
    );
    std::fs::write(c.dir.path().join("p.yaml"), text).unwrap();
    let run = crate::util::vigil_cmd_with_deadline(
        Command::new(env!("CARGO_BIN_EXE_vigil"))
            .args([
                "run",
                "p.yaml",
                repo().join("policies/profiles").to_str().unwrap(),
                "--out",
                "out",
                "--unsigned",
                "--plaintext",
                "--format",
                "json",
            ])
            .env("KUBECONFIG", &c.server.kubeconfig),
        c.dir.path(),
        b"",
        60,
    );
    assert_eq!(run.code, 3, "{}", run.stderr);
    let summary: Value = serde_json::from_str(&run.stdout).unwrap();
    let targets = summary[0]["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 12, "every target has exactly one result");
    let errors: Vec<String> = targets
        .iter()
        .filter(|t| t["status"] == "error")
        .map(|t| t["error"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(errors.len(), 3, "{errors:?}");
    assert!(
        errors.iter().any(|e| e.contains("answered 500")),
        "{errors:?}"
    );
    assert!(
        errors.iter().any(|e| e.contains("answered 429")),
        "{errors:?}"
    );
    // A cut stream is never taken as complete: it is an error at once.
    assert!(
        errors.iter().any(|e| e.contains("exec stream cut")),
        "{errors:?}"
    );
    assert!(targets.iter().all(|t| t["attempts"] == 1), "no retries");
    assert_eq!(summary[0]["stats"]["retries"], 0);
    assert_clean(&c);
}

#[test]
fn the_audit_trail_is_chained_signed_and_verified() {
    let Some(c) = cluster(false) else { return };
    crate::util::signing_key(c.dir.path());
    let run = run_with_kubeconfig(
        &c,
        &c.server.kubeconfig,
        &[
            "run",
            policy(&c).to_str().unwrap(),
            repo().join("policies/profiles").to_str().unwrap(),
            "--out",
            "out",
            "--plaintext",
            "--signing-key",
            "signer.key.pem",
            "--format",
            "json",
        ],
    );
    assert!(run.code == 0 || run.code == 1, "{}", run.stderr);
    let summary: Value = serde_json::from_str(&run.stdout).unwrap();
    let bundle = c
        .dir
        .path()
        .join("out/live")
        .join(summary[0]["run_id"].as_str().unwrap());
    let log = std::fs::read(bundle.join("audit.jsonl")).unwrap();
    let (head, n) =
        vigil::audit::verify_chain(&log, summary[0]["run_id"].as_str().unwrap()).unwrap();
    let entries: Vec<vigil::audit::Entry> = String::from_utf8_lossy(&log)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(n as usize, entries.len());
    let count = |verb: &str, prefix: &str| {
        entries
            .iter()
            .filter(|e| e.verb == verb && e.object.starts_with(prefix))
            .count()
    };
    assert_eq!(count("create", "serviceaccount "), 2);
    assert_eq!(count("create", "token for "), 2);
    assert_eq!(count("exec", "pods/exec "), 12);
    assert_eq!(count("delete", ""), 8);
    assert!(
        entries
            .iter()
            .filter(|e| e.verb == "exec")
            .all(|e| e.identity.starts_with("system:serviceaccount:"))
    );
    assert!(
        entries
            .iter()
            .filter(|e| e.verb != "exec")
            .all(|e| e.identity == "caller")
    );
    // The deletes come last, every object of the run among them.
    let first_delete = entries.iter().position(|e| e.verb == "delete").unwrap();
    assert!(entries[first_delete..].iter().all(|e| e.verb == "delete"));
    assert_eq!(
        entries[first_delete..]
            .iter()
            .filter(|e| e.object.starts_with("secret "))
            .count(),
        2,
        "both anchors"
    );
    // The signed statement carries the chain's head; verify checks it.
    let st = crate::util::statement_payload(&bundle);
    assert_eq!(st["predicate"]["audit"]["final_hash"], head.as_str());
    let verify = vigil_in(
        c.dir.path(),
        &[
            "verify",
            bundle.to_str().unwrap(),
            "--trusted-key",
            "signer.pub.pem",
        ],
    );
    assert_eq!(verify.code, 0, "{}", verify.stderr);
    // Editing the log breaks it.
    let edited =
        String::from_utf8_lossy(&log).replacen("\"outcome\":\"ok\"", "\"outcome\":\"ko\"", 1);
    std::fs::write(bundle.join("audit.jsonl"), edited).unwrap();
    let verify = vigil_in(
        c.dir.path(),
        &[
            "verify",
            bundle.to_str().unwrap(),
            "--trusted-key",
            "signer.pub.pem",
        ],
    );
    assert_eq!(verify.code, 1);
    assert!(verify.stderr.contains("audit.jsonl"), "{}", verify.stderr);
    // So do deleting one line and swapping two.
    let text = String::from_utf8_lossy(&log).into_owned();
    let lines: Vec<&str> = text.lines().collect();
    let mut deleted = lines.clone();
    deleted.remove(3);
    let mut swapped = lines.clone();
    swapped.swap(2, 3);
    for (what, changed) in [("deleted", deleted), ("reordered", swapped)] {
        std::fs::write(bundle.join("audit.jsonl"), changed.join("\n") + "\n").unwrap();
        let verify = vigil_in(
            c.dir.path(),
            &[
                "verify",
                bundle.to_str().unwrap(),
                "--trusted-key",
                "signer.pub.pem",
            ],
        );
        assert_eq!(verify.code, 1, "{what}");
        assert!(
            verify.stderr.contains("audit.jsonl"),
            "{what}: {}",
            verify.stderr
        );
        // The chain alone also tells.
        assert!(
            vigil::audit::verify_chain(
                (changed.join("\n") + "\n").as_bytes(),
                summary[0]["run_id"].as_str().unwrap()
            )
            .is_err(),
            "{what}"
        );
    }
}

/// Three shards of one provisioned policy, run at once (as an Indexed Job
/// runs them): each binds its token to an anchor of its own, none collides
/// with another (once: 409 on a shared anchor name), and together they
/// scan the whole plan and leave nothing behind.
#[test]
fn provisioned_shards_run_at_once_without_colliding() {
    let Some(c) = cluster(false) else { return };
    let text = std::fs::read_to_string(policy(&c)).unwrap().replace(
        "limits: {concurrency: 4}",
        "access: {mode: provisioned}\n  limits: {concurrency: 4}",
    );
    let prov = c.dir.write("prov.yaml", text);
    let profiles = repo().join("policies/profiles");
    apply_rendered(&c, &render_rbac(&c, &prov));
    let children: Vec<_> = (0..3)
        .map(|i| {
            Command::new(env!("CARGO_BIN_EXE_vigil"))
                .args(["run", prov.to_str().unwrap(), profiles.to_str().unwrap()])
                .args([
                    "--out",
                    "out",
                    "--unsigned",
                    "--plaintext",
                    "--format",
                    "json",
                ])
                .args(["--shard", &format!("{i}/3")])
                .current_dir(c.dir.path())
                .env("KUBECONFIG", &c.server.kubeconfig)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut scanned = std::collections::BTreeSet::new();
    for child in children {
        let out: crate::util::Run = child.wait_with_output().unwrap().into();
        assert!(out.code == 0 || out.code == 1, "{}", out.stderr);
        // "answered 409", as ClusterError says it: a bare "409" also
        // turns up in random run ids (01a25326-…-76b409d3827a did once).
        assert!(
            !out.stderr.contains("answered 409") && !out.stderr.contains("already exists"),
            "{}",
            out.stderr
        );
        let summary: Value = serde_json::from_str(&out.stdout).unwrap();
        for t in summary[0]["targets"].as_array().unwrap() {
            assert_eq!(t["status"], "scanned", "{t}");
            assert!(
                scanned.insert(t["id"].as_str().unwrap().to_string()),
                "scanned twice: {t}"
            );
        }
    }
    assert_eq!(scanned.len(), 12, "every planned target once: {scanned:?}");
    // Each run created its own anchor, and deleted it.
    let anchors = c
        .server
        .request_log()
        .into_iter()
        .filter(|l| l.method == "POST" && l.path.contains("/secrets"))
        .count();
    // Three runs, two namespaces each.
    assert_eq!(anchors, 6);
    assert!(
        c.server.objects("secrets").is_empty(),
        "{:?}",
        c.server.objects("secrets")
    );
}

/// With `--stable-names` (in-cluster runs) the run's objects are named
/// after its slot; a leftover of an interrupted run under those names is
/// deleted and created again, not a 409, and the run cleans up after
/// itself.
#[test]
fn stable_names_replace_the_leftovers_of_an_interrupted_run() {
    let Some(c) = cluster(false) else { return };
    // What a run killed by SIGKILL leaves: its ServiceAccount and anchor.
    for (kind, name) in [
        ("serviceaccounts", "vigil-live-run"),
        ("secrets", "vigil-live-run-anchor"),
    ] {
        c.server.insert(
            kind,
            json!({"apiVersion": "v1", "kind": if kind == "secrets" { "Secret" } else { "ServiceAccount" },
                   "metadata": {"name": name, "namespace": "team-a",
                                "labels": {"app.kubernetes.io/managed-by": "vigil"}}}),
        );
    }
    let run = run_vigil(&c, &["--stable-names"]);
    assert!(run.code == 0 || run.code == 1, "{}", run.stderr);
    let summary: Value = serde_json::from_str(&run.stdout).unwrap();
    assert!(
        summary[0]["targets"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["status"] == "scanned")
    );
    let log = c.server.request_log();
    let deletes: Vec<String> = log
        .iter()
        .filter(|l| l.method == "DELETE")
        .map(|l| l.path.clone())
        .collect();
    assert!(
        deletes
            .iter()
            .filter(|p| p.contains("/serviceaccounts/vigil-live-run"))
            .count()
            >= 2,
        "the leftover was replaced, then the run's own deleted: {deletes:?}\n{}",
        run.stderr
    );
    assert!(
        c.server.objects("serviceaccounts").is_empty(),
        "{:?}",
        c.server.objects("serviceaccounts")
    );
    assert!(c.server.objects("secrets").is_empty());
}

/// Exec `true` in `ns/pod` as the bearer of `token`: the HTTP status the
/// API server answered the upgrade with (101 when it was allowed).
fn exec_status(c: &Cluster, token: &str, ns: &str, pod: &str) -> u16 {
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::{Api, AttachParams};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let kubeconfig = kube::config::Kubeconfig::read_from(&c.server.kubeconfig).unwrap();
        let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .unwrap();
        config.auth_info.token = Some(token.to_string().into());
        let client = kube::Client::try_from(config).unwrap();
        let pods: Api<Pod> = Api::namespaced(client, ns);
        let params = AttachParams::default().container("app").stderr(false);
        match pods.exec(pod, ["true"], &params).await {
            Ok(mut attached) => {
                let _ = attached.take_status().unwrap().await;
                101
            }
            Err(kube::Error::Api(status)) => status.code,
            Err(e) => panic!("exec: {e:?}"),
        }
    })
}

/// A WebSocket exec is an HTTP GET upgrade: the API server authorizes it as
/// `get` on `pods/exec`, and from 1.35 as `create` too. A Role with only
/// `create` (what vigil granted before) is refused on every version.
#[test]
fn websocket_exec_needs_get_and_from_1_35_create_on_pods_exec() {
    let Some(c) = cluster(false) else { return };
    let mut statuses = Vec::new();
    for (sa, verbs) in [
        ("only-create", json!(["create"])),
        ("only-get", json!(["get"])),
        ("both", json!(["get", "create"])),
    ] {
        let meta = json!({"name": sa, "namespace": "team-a"});
        c.server
            .insert("serviceaccounts", json!({"metadata": meta}));
        c.server.insert(
            "roles",
            json!({"metadata": meta, "rules": [{"apiGroups": [""], "resources": ["pods/exec"], "verbs": verbs, "resourceNames": ["web-0"]}]}),
        );
        c.server.insert(
            "rolebindings",
            json!({"metadata": meta, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": sa}, "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": "team-a"}]}),
        );
        let token = c.server.issue_token("team-a", sa);
        for minor in [34, 35] {
            c.server.set_kubernetes_minor(minor);
            statuses.push((sa, minor, exec_status(&c, &token, "team-a", "web-0")));
        }
        // Pinned by name: another pod is refused.
        assert_eq!(exec_status(&c, &token, "team-a", "web-1"), 403);
    }
    assert_eq!(
        statuses,
        [
            ("only-create", 34, 403),
            ("only-create", 35, 403),
            ("only-get", 34, 101),
            ("only-get", 35, 403),
            ("both", 34, 101),
            ("both", 35, 101),
        ]
    );
    // vigil's own per-run Roles work on both versions.
    for minor in [34, 35] {
        c.server.set_kubernetes_minor(minor);
        let run = run_vigil(&c, &[]);
        assert!(matches!(run.code, 0 | 1), "1.{minor}: {}", run.stderr);
        let summary: Value = serde_json::from_str(&run.stdout).unwrap();
        for t in summary[0]["targets"].as_array().unwrap() {
            assert_eq!(t["status"], "scanned", "1.{minor}: {t}");
        }
    }
}

/// A kubeconfig that exists but cannot be loaded is an error naming it:
/// never a silent fall back to the in-cluster identity, which in a CI pod
/// would scan another cluster. Without any kubeconfig outside a pod, the
/// error says where one is looked for.
#[test]
fn a_broken_kubeconfig_is_an_error_naming_it_never_the_in_cluster_identity() {
    let dir = TempDir::new("broken-kubeconfig");
    let broken = dir.write(
        "kubeconfig",
        "apiVersion: v1\nkind: Config\nclusters: {not: a list}\n",
    );
    let policy = dir.write(
        "p.yaml",
        "apiVersion: vigil/v1\nkind: ScanPolicy\nmetadata: {name: live}\nspec:\n  profiles: [container-baseline]\n  targets:\n    - {namespace: team-a, approach: api}\n",
    );
    let profiles = repo().join("policies/profiles");
    let plan = |env: &[(&str, &std::ffi::OsStr)]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_vigil"));
        cmd.args(["plan"]).arg(&policy).arg(&profiles);
        cmd.env_remove("KUBECONFIG")
            .env_remove("KUBERNETES_SERVICE_HOST")
            .env("HOME", dir.path());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let in_pod: [(&str, &std::ffi::OsStr); 2] = [
        ("KUBERNETES_SERVICE_HOST", "10.0.0.1".as_ref()),
        ("KUBERNETES_SERVICE_PORT", "443".as_ref()),
    ];
    // KUBECONFIG names a broken file, inside a pod.
    let (code, err) = plan(&[&in_pod[..], &[("KUBECONFIG", broken.as_os_str())]].concat());
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(&broken.display().to_string()) && !err.contains("serviceaccount"),
        "{err}"
    );
    // ~/.kube/config is the broken file.
    std::fs::create_dir_all(dir.path().join(".kube")).unwrap();
    std::fs::copy(&broken, dir.path().join(".kube/config")).unwrap();
    let (code, err) = plan(&in_pod);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(".kube/config") && !err.contains("serviceaccount"),
        "{err}"
    );
    // No kubeconfig anywhere, outside a pod.
    std::fs::remove_dir_all(dir.path().join(".kube")).unwrap();
    let (code, err) = plan(&[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("no kubeconfig") && err.contains("KUBECONFIG"),
        "{err}"
    );
}

/// New Roles and RoleBindings reach the API server's authorizer only after
/// its informer caches catch up. The run confirms its token's rights with
/// SelfSubjectAccessReviews (backing off) before the first scan, so no
/// scan meets a 403 while they settle.
#[test]
fn the_run_waits_until_its_new_rights_take_effect() {
    let Some(c) = cluster(false) else { return };
    c.server
        .set_rbac_propagation_delay(Duration::from_millis(1500));
    let run = run_vigil(&c, &[]);
    assert!(matches!(run.code, 0 | 1), "{}", run.stderr);
    let summary: Value = serde_json::from_str(&run.stdout).unwrap();
    for t in summary[0]["targets"].as_array().unwrap() {
        assert_eq!(t["status"], "scanned", "{t}");
    }
    let log = c.server.request_log();
    let reviews: Vec<_> = log
        .iter()
        .filter(|l| l.path.contains("selfsubjectaccessreviews"))
        .collect();
    assert!(
        reviews.len() > 6,
        "the reviews were repeated while the rights settled: {}",
        reviews.len()
    );
    let bound = log
        .iter()
        .filter(|l| l.path.contains("/rolebindings") && l.method == "POST")
        .map(|l| l.at)
        .max()
        .unwrap();
    for l in log.iter().filter(|l| l.path.contains("/exec?")) {
        assert_eq!(l.status, 101, "{l:?}");
        assert!(
            l.at >= bound + Duration::from_millis(1500),
            "an exec before the rights took effect"
        );
    }
    assert_clean(&c);
}

/// The API server's RBAC escalation prevention, for a caller that is not
/// cluster-admin: a Role may grant only rights the caller holds (unless it
/// may `escalate`), and a RoleBinding may name only an existing Role whose
/// rights the caller holds (unless it may `bind`). vigil creates the Role
/// before its binding, so a namespace deployer with just the rights it
/// hands out can run it.
#[test]
fn a_caller_without_escalate_or_bind_can_run_vigil() {
    use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
    use kube::api::{Api, PostParams};
    let Some(c) = cluster(false) else { return };
    let rule = |res: &[&str], verbs: &[&str], group: &str| json!({"apiGroups": [group], "resources": res, "verbs": verbs});
    let rbac = "rbac.authorization.k8s.io";
    let deployer = json!({"metadata": {"name": "deployer", "namespace": "team-a"}, "rules": [
        rule(&["serviceaccounts", "secrets"], &["create", "delete"], ""),
        rule(&["serviceaccounts/token"], &["create"], ""),
        rule(&["roles", "rolebindings"], &["create", "delete"], rbac),
        rule(&["pods"], &["get", "list", "watch"], ""),
        rule(&["pods/exec"], &["get", "create"], ""),
    ]});
    c.server.insert(
        "serviceaccounts",
        json!({"metadata": {"name": "deployer", "namespace": "team-a"}}),
    );
    c.server.insert("roles", deployer);
    c.server.insert("rolebindings", json!({"metadata": {"name": "deployer", "namespace": "team-a"}, "roleRef": {"apiGroup": rbac, "kind": "Role", "name": "deployer"}, "subjects": [{"kind": "ServiceAccount", "name": "deployer", "namespace": "team-a"}]}));
    let token = c.server.issue_token("team-a", "deployer");
    let text = std::fs::read_to_string(&c.server.kubeconfig).unwrap();
    let kubeconfig = c.dir.write(
        "deployer-kubeconfig",
        text.replace(crate::fakeapi::ADMIN_TOKEN, &token),
    );

    // What the API server refuses such a caller.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let codes = rt.block_on(async {
        let kc = kube::config::Kubeconfig::read_from(&kubeconfig).unwrap();
        let config = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await.unwrap();
        let client = kube::Client::try_from(config).unwrap();
        let roles: Api<Role> = Api::namespaced(client.clone(), "team-a");
        let bindings: Api<RoleBinding> = Api::namespaced(client, "team-a");
        fn code<T>(r: Result<T, kube::Error>) -> u16 {
            match r {
                Ok(_) => 201,
                Err(kube::Error::Api(s)) => s.code,
                Err(e) => panic!("{e}"),
            }
        }
        let role = |name: &str, rules: Value| -> Role {
            serde_json::from_value(json!({"metadata": {"name": name}, "rules": [rules]})).unwrap()
        };
        let binding = |name: &str, role: &str| -> RoleBinding {
            serde_json::from_value(json!({"metadata": {"name": name}, "roleRef": {"apiGroup": rbac, "kind": "Role", "name": role}, "subjects": [{"kind": "ServiceAccount", "name": "x", "namespace": "team-a"}]})).unwrap()
        };
        let pp = PostParams::default();
        vec![
            // Rights it holds, pinned or not: allowed.
            code(roles.create(&pp, &role("held", rule(&["pods/exec"], &["create"], ""))).await),
            // Rights it does not hold (delete pods): forbidden.
            code(roles.create(&pp, &role("more", rule(&["pods"], &["delete"], ""))).await),
            // A binding to a Role that does not exist: not found.
            code(bindings.create(&pp, &binding("b-missing", "absent")).await),
            // A binding to a Role it holds the rights of: allowed.
            code(bindings.create(&pp, &binding("b-held", "held")).await),
        ]
    });
    assert_eq!(codes, [201, 403, 404, 201]);

    // vigil as that caller, with the authorizer's caches a moment behind.
    c.server
        .set_rbac_propagation_delay(Duration::from_millis(500));
    let policy = policy(&c);
    c.dir.write(
        "p.yaml",
        "apiVersion: vigil/v1\nkind: ScanPolicy\nmetadata: {name: live}\nspec:\n  profiles: [container-baseline]\n  targets:\n    - {namespace: team-a, selector: {matchLabels: {app: web}}, approach: api}\n",
    );
    let run = run_policy_as(&c, &kubeconfig, &policy, &[]);
    assert!(matches!(run.code, 0 | 1), "{}", run.stderr);
    let summary: Value = serde_json::from_str(&run.stdout).unwrap();
    let targets = summary[0]["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 6);
    for t in targets {
        assert_eq!(t["status"], "scanned", "{t}");
    }

    // The same caller, a debug policy: like the built-in edit and admin
    // roles it lacks pods/ephemeralcontainers (and pods/log), so it may
    // not grant them. vigil asks first, creates nothing, and names every
    // missing right at once.
    c.server.set_rbac_propagation_delay(Duration::ZERO);
    let debug = c.dir.write(
        "debug.yaml",
        "apiVersion: vigil/v1\nkind: ScanPolicy\nmetadata: {name: live}\nspec:\n  profiles: [container-baseline]\n  debug: {image: \"registry.example/vigil@sha256:1111111111111111111111111111111111111111111111111111111111111111\"}\n  targets:\n    - {namespace: team-a, selector: {matchLabels: {app: web}}, approach: debug}\n",
    );
    let creates_before = c
        .server
        .request_log()
        .iter()
        .filter(|l| l.method == "POST" && !l.path.contains("/selfsubject"))
        .count();
    let run = run_policy_as(&c, &kubeconfig, &debug, &[]);
    assert_eq!(run.code, 3, "{}", run.stderr);
    for right in [
        "patch pods/ephemeralcontainers (to grant it",
        "get pods/log (to grant it",
        "kubernetes/kubernetes#121217",
        "in team-a",
    ] {
        assert!(run.stderr.contains(right), "{right}: {}", run.stderr);
    }
    assert!(
        !run.stderr.contains("watch pods"),
        "it holds watch: {}",
        run.stderr
    );
    assert_eq!(
        c.server
            .request_log()
            .iter()
            .filter(|l| l.method == "POST" && !l.path.contains("/selfsubject"))
            .count(),
        creates_before,
        "nothing created"
    );
}

/// A run longer than its token's life renews the token at 80% of it (a new
/// token bound to the same anchor), and new scans take the new one: no
/// request ever carries an expired token. The test server runs token time
/// 300× faster: a 10-minute token lives 2 s and is renewed after 1.6 s; 12
/// scans one at a time, each exec at least 300 ms, outlive two renewals.
#[test]
fn a_long_run_renews_its_token_before_it_expires() {
    let Some(c) = cluster(false) else { return };
    c.server.set_time_scale(300.0);
    c.server.set_latency(Duration::from_millis(300));
    let policy = c.dir.write(
        "long.yaml",
        "apiVersion: vigil/v1\nkind: ScanPolicy\nmetadata: {name: long}\nspec:\n  profiles: [container-baseline]\n  access: {tokenTTL: 10m}\n  targets:\n    - {namespace: team-a, selector: {matchLabels: {app: web}}, approach: api}\n    - {namespace: team-b, selector: {matchLabels: {app: web}}, approach: api}\n  limits: {concurrency: 1}\n",
    );
    let run = run_policy_as(&c, &c.server.kubeconfig, &policy, &[]);
    assert!(matches!(run.code, 0 | 1), "{}", run.stderr);
    let summary: Value = serde_json::from_str(&run.stdout).unwrap();
    for t in summary[0]["targets"].as_array().unwrap() {
        assert_eq!(t["status"], "scanned", "{t}");
    }
    let log = c.server.request_log();
    for ns in ["team-a", "team-b"] {
        let tokens = log
            .iter()
            .filter(|l| l.path.contains("/token") && l.path.contains(ns))
            .count();
        assert!(
            tokens >= 3,
            "{ns}: the first token and at least two renewals: {tokens}"
        );
    }
    assert!(
        !log.iter().any(|l| l.status == 401),
        "a request with an expired token: {:?}",
        log.iter().filter(|l| l.status == 401).collect::<Vec<_>>()
    );
    let execs: Vec<_> = log.iter().filter(|l| l.path.contains("/exec?")).collect();
    assert_eq!(execs.len(), 12);
    assert!(
        execs.last().unwrap().at - execs[0].at > Duration::from_secs(2),
        "the scans outlived the first token"
    );
    assert_clean(&c);
}

/// Deleting the anchor revokes the run's tokens within the API server's
/// token cache time (10 s by default, 1 s here), not at once: a token used
/// just before cleanup keeps working until the cache forgets it.
#[test]
fn revocation_takes_effect_within_the_token_cache_time() {
    let Some(c) = cluster(false) else { return };
    c.server.set_token_cache_ttl(Duration::from_secs(1));
    let meta = json!({"name": "cached", "namespace": "team-a"});
    c.server
        .insert("serviceaccounts", json!({"metadata": meta}));
    c.server.insert(
        "roles",
        json!({"metadata": meta, "rules": [{"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["get", "create"]}]}),
    );
    c.server.insert(
        "rolebindings",
        json!({"metadata": meta, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "cached"}, "subjects": [{"kind": "ServiceAccount", "name": "cached", "namespace": "team-a"}]}),
    );
    c.server.insert(
        "secrets",
        json!({"metadata": {"name": "cached-anchor", "namespace": "team-a", "uid": "anchor-uid-1"}}),
    );
    let token = c
        .server
        .issue_token_bound("team-a", "cached", "anchor-uid-1");
    assert_eq!(exec_status(&c, &token, "team-a", "web-0"), 101);
    c.server.remove("secrets", "team-a", "cached-anchor");
    assert!(!c.server.token_valid(&token), "revoked");
    let revoked_at = std::time::Instant::now();
    assert_eq!(
        exec_status(&c, &token, "team-a", "web-0"),
        101,
        "still cached right after the anchor went"
    );
    // Once the cached success is older than its TTL, the token is refused.
    let mut code = 101;
    while revoked_at.elapsed() < Duration::from_secs(5) && code == 101 {
        std::thread::sleep(Duration::from_millis(200));
        code = exec_status(&c, &token, "team-a", "web-0");
    }
    assert_eq!(code, 401);
}

/// `kubectl` works against the test API server as against a real one:
/// discovery and version, listing pods in every namespace, `auth can-i`
/// (SelfSubjectAccessReview), `auth whoami` (SelfSubjectReview), and `exec`
/// over WebSocket with stdout, stdin and the command's exit code.
#[test]
fn kubectl_works_against_the_test_server() {
    let Some(c) = cluster(false) else { return };
    if Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .output()
        .is_err()
    {
        assert!(
            std::env::var_os("VIGIL_REQUIRE_KUBECTL").is_none(),
            "kubectl is required here"
        );
        crate::util::skipped("kubectl");
        return;
    }
    let kubectl = |args: &[&str], stdin: Option<&str>| {
        let mut cmd = Command::new("kubectl");
        cmd.args(args)
            .env("KUBECONFIG", &c.server.kubeconfig)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        if let Some(input) = stdin {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .unwrap();
        }
        let out = child.wait_with_output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, err) = kubectl(&["version", "-o", "json"], None);
    assert_eq!(code, Some(0), "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["serverVersion"]["minor"], "35", "{v}");
    let (code, out, err) = kubectl(&["get", "pods", "-A", "-o", "name"], None);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("pod/web-0") && out.contains("pod/other-0"),
        "{out}"
    );
    let (code, out, err) = kubectl(
        &["auth", "can-i", "create", "pods/exec", "-n", "team-a"],
        None,
    );
    assert_eq!((code, out.trim()), (Some(0), "yes"), "{err}");
    let (code, out, err) = kubectl(&["auth", "whoami", "-o", "json"], None);
    assert_eq!(code, Some(0), "{err}");
    let who: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(who["status"]["userInfo"]["username"], "admin");
    // A ServiceAccount with no rights: can-i says no (exit 1).
    c.server.insert(
        "serviceaccounts",
        json!({"metadata": {"name": "nobody", "namespace": "team-a"}}),
    );
    let token = c.server.issue_token("team-a", "nobody");
    let (code, out, _) = kubectl(
        &[
            "auth", "can-i", "get", "pods", "-n", "team-a", "--token", &token,
        ],
        None,
    );
    assert_eq!((code, out.trim()), (Some(1), "no"));
    // exec: output, exit code, stdin.
    let (code, out, err) = kubectl(
        &[
            "exec",
            "-n",
            "team-a",
            "web-0",
            "-c",
            "app",
            "--",
            "sh",
            "-c",
            "echo hi; exit 3",
        ],
        None,
    );
    assert_eq!((code, out.as_str()), (Some(3), "hi\n"), "{err}");
    let (code, out, err) = kubectl(
        &[
            "exec", "-i", "-n", "team-a", "web-0", "-c", "app", "--", "cat",
        ],
        Some("from stdin\n"),
    );
    assert_eq!((code, out.as_str()), (Some(0), "from stdin\n"), "{err}");
}

/// A container that floods stderr (10 MiB) no longer stalls its exec until
/// `scanTimeout`: stderr beyond its 64 KiB is read and dropped, the command
/// finishes, and the scan is an error result at once (it printed no
/// frame), while the other targets scan normally.
/// Hostile output is refused as it streams: a container printing 256 MiB
/// of spaces (no line end) and one printing 10 MiB to stderr each give an
/// error result well before the scan deadline, while vigil's peak RSS stays under
/// 100 MB (measured by GNU time around the whole run).
#[test]
fn floods_on_stdout_or_stderr_are_error_results_at_once_in_bounded_memory() {
    let Some(c) = cluster(false) else { return };
    let flood_root = |name: &str, script: &str| {
        let root = c.dir.path().join(name);
        std::fs::create_dir_all(root.join("bin")).unwrap();
        std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
        std::fs::write(
            root.join("bin/sh"),
            format!("#!/bin/busybox sh\n{script}\n"),
        )
        .unwrap();
        std::fs::set_permissions(
            root.join("bin/sh"),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        root
    };
    let spaces = flood_root(
        "spaces-root",
        "/bin/busybox yes ' ' | /bin/busybox tr -d '\\n' | /bin/busybox head -c 268435456",
    );
    let stderr = flood_root(
        "stderr-root",
        "/bin/busybox yes 'an error, again and again' | /bin/busybox head -c 10485760 >&2",
    );
    c.server.set_rootfs("team-a", "web-0", &spaces);
    c.server.set_rootfs("team-a", "web-1", &stderr);
    let policy = c.dir.write(
        "flood.yaml",
        "apiVersion: vigil/v1\nkind: ScanPolicy\nmetadata: {name: flood}\nspec:\n  profiles: [container-baseline]\n  targets:\n    - {namespace: team-a, selector: {matchLabels: {app: web}}, approach: api}\n  limits: {scanTimeout: 120s, retries: 0}\n",
    );
    let time = Path::new("/usr/bin/time");
    let measured = crate::util::prerequisite(
        time.is_file(),
        "GNU time (/usr/bin/time) to measure peak RSS",
    );
    let rss_file = c.dir.path().join("rss");
    let vigil = run_policy_cmd(&c, &c.server.kubeconfig, &policy, &[]);
    let mut cmd = if measured {
        // The same command, under GNU time.
        let mut timed = Command::new(time);
        timed
            .arg("-o")
            .arg(&rss_file)
            .args(["-f", "%M"])
            .arg(vigil.get_program())
            .args(vigil.get_args())
            .current_dir(c.dir.path())
            .env("KUBECONFIG", &c.server.kubeconfig);
        timed
    } else {
        vigil
    };
    let started = std::time::Instant::now();
    let run: crate::util::Run = cmd.output().unwrap().into();
    let took = started.elapsed();
    assert_eq!(run.code, 3, "{}", run.stderr);
    let summary: Value = serde_json::from_str(&run.stdout).unwrap();
    for t in summary[0]["targets"].as_array().unwrap() {
        if t["id"] == "team-a/web-0/app" || t["id"] == "team-a/web-1/app" {
            assert_ne!(t["status"], "scanned", "{t}");
            assert!(!t["error"].as_str().unwrap_or_default().is_empty(), "{t}");
            // Refused as it streams, not at the 120 s scan deadline. (The
            // bound was 1 s; a CI run on a loaded machine took 1.8 s, so
            // the margin is wide: what proves "as it streams" is the
            // memory bound below, not a stopwatch.)
            let secs = t["duration"].as_f64().unwrap();
            assert!(secs < 10.0, "{} took {secs} s: {t}", t["id"]);
        } else {
            assert_eq!(t["status"], "scanned", "{t}");
        }
    }
    let spaces_error = summary[0]["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == "team-a/web-0/app")
        .unwrap()["error"]
        .to_string();
    assert!(
        spaces_error.contains("before the gatherer's begin line"),
        "{spaces_error}"
    );
    if measured {
        let kb: u64 = std::fs::read_to_string(&rss_file)
            .unwrap()
            .lines()
            .last()
            .and_then(|l| l.trim().parse().ok())
            .expect("GNU time wrote the peak RSS");
        assert!(kb < 100 * 1024, "vigil's peak RSS was {kb} KiB");
        eprintln!(
            "floods: the run took {took:?}, vigil's peak RSS {} MiB",
            kb / 1024
        );
    }
}

/// TokenRequest as the API server does it: tokens are JWTs with `aud`,
/// `exp`, the `kubernetes.io` claims and a credential id (`jti`, KEP-4193);
/// binding to a missing Secret is NotFound and to a recreated one (another
/// UID) a Conflict; a token whose audiences leave out the API server's own
/// is refused on every call, and vigil says why.
#[test]
fn token_requests_are_checked_as_kubernetes_checks_them() {
    use base64::Engine as _;
    let Some(c) = cluster(false) else { return };
    // vigil's own run: its tokens are real JWTs.
    let run = run_vigil(&c, &[]);
    assert!(matches!(run.code, 0 | 1), "{}", run.stderr);
    let token = c.server.issued_tokens().pop().unwrap();
    let payload = token.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["aud"], json!([crate::fakeapi::API_AUDIENCE]));
    assert!(claims["exp"].as_i64().unwrap() > claims["iat"].as_i64().unwrap());
    assert!(claims["jti"].as_str().is_some_and(|j| !j.is_empty()));
    assert!(
        claims["kubernetes.io"]["secret"]["name"]
            .as_str()
            .unwrap()
            .ends_with("-anchor")
    );

    // Bound objects: missing, or recreated under another UID.
    c.server.insert(
        "serviceaccounts",
        json!({"metadata": {"name": "tr", "namespace": "team-a"}}),
    );
    c.server.insert(
        "secrets",
        json!({"metadata": {"name": "tr-anchor", "namespace": "team-a", "uid": "uid-now"}}),
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let caller = rt
        .block_on(vigil::cluster::Cluster::connect_with(
            Some(&c.server.kubeconfig),
            None,
            false,
        ))
        .unwrap();
    let anchor = |name: &str, uid: &str| -> k8s_openapi::api::core::v1::Secret {
        serde_json::from_value(
            json!({"metadata": {"name": name, "namespace": "team-a", "uid": uid}}),
        )
        .unwrap()
    };
    let code = |a: k8s_openapi::api::core::v1::Secret| match rt.block_on(caller.request_token(
        "team-a",
        "tr",
        600,
        &[],
        &a,
    )) {
        Ok(_) => 201,
        Err(vigil::cluster::ClusterError::Api { code, .. }) => code,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(code(anchor("tr-anchor", "uid-now")), 201);
    assert_eq!(code(anchor("gone-anchor", "uid-x")), 404);
    assert_eq!(code(anchor("tr-anchor", "uid-before")), 409);
    c.server.remove("secrets", "team-a", "tr-anchor");
    c.server.remove("serviceaccounts", "team-a", "tr");

    // Audiences without the API server's: every call 401, and vigil says so.
    c.dir.write(
        "aud.yaml",
        "apiVersion: vigil/v1\nkind: ScanPolicy\nmetadata: {name: aud}\nspec:\n  profiles: [container-baseline]\n  access: {audiences: [vault]}\n  targets:\n    - {namespace: team-a, selector: {matchLabels: {app: web}}, approach: api}\n",
    );
    let aud = c.dir.path().join("aud.yaml");
    let run = run_policy_as(&c, &c.server.kubeconfig, &aud, &[]);
    assert_ne!(run.code, 0);
    assert!(
        run.stderr.contains("access.audiences") && run.stderr.contains("401"),
        "{}",
        run.stderr
    );
    assert_clean(&c);
}

/// `access.scope` for provisioned mode: `pods` (the default) pins the
/// rendered Role to the pods of render time, so after a rollout runs are
/// refused, naming the new pods, until it is rendered again; `namespace`
/// grants the scan verbs on every pod of the namespace and survives the
/// rollout, without a warning for the unpinned rules it chose.
#[test]
fn provisioned_scope_decides_whether_a_rollout_needs_a_re_render() {
    let Some(c) = cluster(false) else { return };
    let profiles = repo().join("policies/profiles");
    let base = std::fs::read_to_string(policy(&c)).unwrap();
    let render = |file: &Path| render_rbac(&c, file);
    let run = |file: &Path| run_policy_as(&c, &c.server.kubeconfig, file, &[]);
    let pinned = c.dir.write(
        "pinned.yaml",
        base.replace(
            "limits: {concurrency: 4}",
            "access: {mode: provisioned}\n  limits: {concurrency: 4}",
        ),
    );
    let whole = c.dir.write(
        "whole.yaml",
        base.replace("metadata: {name: live}", "metadata: {name: whole}")
            .replace(
                "limits: {concurrency: 4}",
                "access: {mode: provisioned, scope: namespace}\n  limits: {concurrency: 4}",
            ),
    );
    let pinned_rbac = render(&pinned);
    let whole_rbac = render(&whole);
    let roles = |yaml: &str| -> Vec<Value> {
        serde_saphyr::from_multiple::<Value>(yaml)
            .unwrap()
            .into_iter()
            .filter(|d| d["kind"] == "Role")
            .collect()
    };
    for role in roles(&whole_rbac) {
        for rule in role["rules"].as_array().unwrap() {
            assert!(rule["resourceNames"].is_null(), "namespace scope: {rule}");
        }
    }
    for role in roles(&pinned_rbac) {
        for rule in role["rules"].as_array().unwrap() {
            assert!(rule["resourceNames"].is_array(), "pods scope: {rule}");
        }
    }
    apply_rendered(&c, &pinned_rbac);
    apply_rendered(&c, &whole_rbac);
    let r = run(&whole);
    assert!(matches!(r.code, 0 | 1), "{}", r.stderr);
    assert!(!r.stderr.contains("holds more"), "{}", r.stderr);

    // A rollout: web-0 is replaced by web-9.
    c.server.remove("pods", "team-a", "web-0");
    c.server.insert("pods", pod("team-a", "web-9", "web"));
    let root = c.server.rootfs_of("team-a", "web-1").unwrap();
    c.server.set_rootfs("team-a", "web-9", &root);
    let r = run(&pinned);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(
        r.stderr.contains("do not cover the plan") && r.stderr.contains("web-9"),
        "{}",
        r.stderr
    );
    let r = run(&whole);
    assert!(matches!(r.code, 0 | 1), "{}", r.stderr);
    let summary: Value = serde_json::from_str(&r.stdout).unwrap();
    let ids: Vec<&str> = summary[0]["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            assert_eq!(t["status"], "scanned", "{t}");
            t["id"].as_str().unwrap()
        })
        .collect();
    assert!(ids.contains(&"team-a/web-9/app"), "{ids:?}");

    // `scope` means nothing for per-run access: validate says so.
    let per_run = c.dir.write(
        "per-run.yaml",
        base.replace(
            "limits: {concurrency: 4}",
            "access: {scope: namespace}\n  limits: {concurrency: 4}",
        ),
    );
    let v = vigil_in(
        c.dir.path(),
        &[
            "validate",
            per_run.to_str().unwrap(),
            profiles.to_str().unwrap(),
        ],
    );
    assert!(
        v.stderr
            .contains("access.scope applies to provisioned mode only"),
        "{}",
        v.stderr
    );
}

/// A forward proxy as corporate networks run them: HTTP `CONNECT` tunnels
/// only, optionally behind Basic proxy authentication (RFC 9110 §9.3.6,
/// §11.7.1). It records every tunnel's target and whether it was
/// authorised.
struct ConnectProxy {
    addr: std::net::SocketAddr,
    tunnels: std::sync::Arc<std::sync::Mutex<Vec<(String, bool)>>>,
}

impl ConnectProxy {
    fn start(required_auth: Option<&str>) -> ConnectProxy {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let tunnels = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = tunnels.clone();
        let required = required_auth.map(str::to_string);
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let seen = seen.clone();
                let required = required.clone();
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(client.try_clone().unwrap());
                    let mut head = Vec::new();
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                            break;
                        }
                        head.push(line.trim_end().to_string());
                    }
                    let mut client = client;
                    let Some(target) = head
                        .first()
                        .and_then(|l| l.strip_prefix("CONNECT "))
                        .and_then(|l| l.split(' ').next())
                        .map(str::to_string)
                    else {
                        let _ = client.write_all(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n");
                        return;
                    };
                    let authorised = match &required {
                        None => true,
                        Some(want) => head.iter().any(|h| {
                            h.to_ascii_lowercase().starts_with("proxy-authorization:")
                                && h["proxy-authorization:".len()..].trim() == want
                        }),
                    };
                    seen.lock().unwrap().push((target.clone(), authorised));
                    if !authorised {
                        let _ = client.write_all(
                            b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"corp\"\r\nContent-Length: 0\r\n\r\n",
                        );
                        return;
                    }
                    let Ok(upstream) = std::net::TcpStream::connect(&target) else {
                        let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n");
                        return;
                    };
                    client
                        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                        .unwrap();
                    // The reader may hold bytes the client sent after the
                    // request head (a TLS ClientHello): forward them first.
                    let early = reader.buffer().to_vec();
                    let mut up_w = upstream.try_clone().unwrap();
                    let mut up_r = upstream;
                    let mut down_w = client.try_clone().unwrap();
                    let mut down_r = client;
                    let t = std::thread::spawn(move || {
                        let _ = up_w.write_all(&early);
                        let _ = std::io::copy(&mut down_r, &mut up_w);
                        let _ = up_w.shutdown(std::net::Shutdown::Write);
                    });
                    let _ = std::io::copy(&mut up_r, &mut down_w);
                    let _ = down_w.shutdown(std::net::Shutdown::Write);
                    let _ = t.join();
                });
            }
        });
        ConnectProxy { addr, tunnels }
    }

    fn tunnels(&self) -> Vec<(String, bool)> {
        self.tunnels.lock().unwrap().clone()
    }
}

/// Corporate networks reach the API server through a forward proxy: the
/// kubeconfig's `proxy-url` (with credentials), or `HTTPS_PROXY` less
/// `NO_PROXY`, as kubectl reads them (client-go's `proxy-url`,
/// `net/http.ProxyFromEnvironment`). Every request of the run, the scoped
/// token's and the exec WebSockets included, goes through the tunnel; a
/// proxy that refuses is an error naming the proxy, never its password.
#[test]
fn the_proxy_from_the_kubeconfig_or_the_environment_carries_every_request() {
    use base64::Engine as _;
    let Some(c) = cluster(false) else { return };
    let server_addr = c.server.addr.to_string();
    let policy = c.dir.write(
        "proxied.yaml",
        "apiVersion: vigil/v1\nkind: ScanPolicy\nmetadata: {name: proxied}\nspec:\n  profiles: [container-baseline]\n  targets:\n    - {namespace: team-a, selector: {matchLabels: {app: web}}, approach: api}\n  limits: {concurrency: 3}\n",
    );
    let with_proxy_url = |name: &str, url: &str| {
        let text = std::fs::read_to_string(&c.server.kubeconfig)
            .unwrap()
            .replace(
                &format!("server: https://{server_addr}"),
                &format!("server: https://{server_addr}\n    proxy-url: {url}"),
            );
        c.dir.write(name, &text)
    };
    let run = |kubeconfig: &Path, env: &[(&str, String)]| -> crate::util::Run {
        let mut cmd = run_policy_cmd(&c, kubeconfig, &policy, &[]);
        for v in ["HTTPS_PROXY", "https_proxy", "NO_PROXY", "no_proxy"] {
            cmd.env_remove(v);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap().into()
    };
    let scanned = |run: &crate::util::Run| {
        assert!(run.code == 0 || run.code == 1, "{}", run.stderr);
        let summary: Value = serde_json::from_str(&run.stdout).unwrap();
        let targets = summary[0]["targets"].as_array().unwrap().clone();
        assert_eq!(targets.len(), 6);
        assert!(
            targets.iter().all(|t| t["status"] == "scanned"),
            "{targets:?}"
        );
    };

    // proxy-url with credentials, percent-encoded as URLs require.
    let proxy = ConnectProxy::start(Some(&format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("scan:p@ss")
    )));
    let kubeconfig = with_proxy_url(
        "proxied-kubeconfig",
        &format!("http://scan:p%40ss@{}", proxy.addr),
    );
    let before = c.server.request_log().len();
    let r = run(&kubeconfig, &[]);
    scanned(&r);
    let tunnels = proxy.tunnels();
    assert!(
        tunnels.len() >= 2 && tunnels.iter().all(|(t, ok)| *t == server_addr && *ok),
        "the caller's and the scoped token's clients both tunnel: {tunnels:?}"
    );
    let execs = c.server.request_log()[before..]
        .iter()
        .filter(|l| l.path.contains("/exec?"))
        .count();
    assert_eq!(execs, 6, "the exec WebSockets went through the tunnel too");
    assert_clean(&c);

    // The same proxy with a wrong password: a clear error, no password.
    let kubeconfig = with_proxy_url(
        "refused-kubeconfig",
        &format!("http://scan:wr0ng-s3cret@{}", proxy.addr),
    );
    let r = run(&kubeconfig, &[]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        !r.stderr.contains("wr0ng-s3cret") && !r.stdout.contains("wr0ng-s3cret"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("proxy authorization required")
            && !r.stderr.contains("failed with error"),
        "the proxy's refusal, said once: {}",
        r.stderr
    );

    // HTTPS_PROXY from the environment, without credentials.
    let open = ConnectProxy::start(None);
    let proxy_env = ("HTTPS_PROXY", format!("http://{}", open.addr));
    let r = run(&c.server.kubeconfig, std::slice::from_ref(&proxy_env));
    scanned(&r);
    assert!(open.tunnels().len() >= 2, "{:?}", open.tunnels());

    // NO_PROXY naming the API server's address: no tunnel at all.
    let bypassed = ConnectProxy::start(None);
    let r = run(
        &c.server.kubeconfig,
        &[
            ("HTTPS_PROXY", format!("http://{}", bypassed.addr)),
            ("NO_PROXY", "localhost,127.0.0.1".into()),
        ],
    );
    scanned(&r);
    assert_eq!(bypassed.tunnels(), Vec::new());
    assert_clean(&c);
}

/// The test server's replay mode (what `cargo bench --bench kube` measures
/// vigil with): the first exec of each command is recorded, later ones are
/// answered from the recording without starting a process, and give the
/// same results.
#[test]
fn replay_mode_answers_execs_from_a_recording_with_the_same_results() {
    let Some(c) = cluster(false) else { return };
    c.server.set_replay(true);
    let counts = |run: &crate::util::Run| -> Vec<(String, Value)> {
        assert!(run.code == 0 || run.code == 1, "{}", run.stderr);
        let summary: Value = serde_json::from_str(&run.stdout).unwrap();
        let mut v: Vec<(String, Value)> = summary[0]["targets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| (t["id"].as_str().unwrap().to_string(), t["counts"].clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    };
    let recorded = counts(&run_vigil(&c, &[]));
    // A replayed exec starts no process: give the debian-like pods a second
    // uid-0 account, and the recording still answers as before.
    let debian = c.server.rootfs_of("team-b", "web-0").unwrap();
    let passwd = debian.join("etc/passwd");
    let mut text = std::fs::read_to_string(&passwd).unwrap();
    text.push_str("evil:x:0:0::/root:/bin/sh\n");
    std::fs::write(&passwd, text).unwrap();
    let replayed = counts(&run_vigil(&c, &[]));
    assert_eq!(recorded.len(), 12);
    assert_eq!(recorded, replayed);
    // Live again, the new account is seen (so the replay did hide it).
    c.server.set_replay(false);
    let live = counts(&run_vigil(&c, &[]));
    assert_ne!(live, recorded);
    assert_clean(&c);
}

/// `--run-label KEY=VALUE` (a pipeline id): on every object the run
/// creates, and in the signed statement; vigil's own keys and bad syntax
/// are refused before anything is created.
#[test]
fn run_labels_mark_every_object_and_the_statement() {
    let Some(c) = cluster(false) else { return };
    c.server.inject(crate::fakeapi::Faults {
        exec_held: 1,
        ..Default::default()
    });
    let child = run_policy_cmd(
        &c,
        &c.server.kubeconfig,
        &policy(&c),
        &["--run-label", "ci.example.com/pipeline=4711"],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    c.server
        .wait_for_arrivals(Duration::from_secs(60), |paths| {
            paths.iter().any(|p| p.contains("/exec?"))
        });
    let mut seen = 0;
    for resource in ["serviceaccounts", "roles", "rolebindings", "secrets"] {
        for id in c.server.objects(resource) {
            let (ns, name) = id.split_once('/').unwrap();
            if !name.starts_with("vigil-") {
                continue;
            }
            let o = c.server.object(resource, ns, name).unwrap();
            assert_eq!(
                o["metadata"]["labels"]["ci.example.com/pipeline"], "4711",
                "{resource} {id}: {o:#}"
            );
            seen += 1;
        }
    }
    assert_eq!(seen, 8, "4 objects in each of 2 namespaces");
    c.server.release_held();
    let out = child.wait_with_output().unwrap();
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary[0]["labels"]["ci.example.com/pipeline"], "4711");
    let bundle = c
        .dir
        .path()
        .join("out/live")
        .join(summary[0]["run_id"].as_str().unwrap());
    let st = crate::util::statement_payload(&bundle);
    assert_eq!(st["predicate"]["labels"]["ci.example.com/pipeline"], "4711");
    assert_clean(&c);
    for (bad, want) in [
        (
            "app.kubernetes.io/managed-by=me",
            "vigil sets that key itself",
        ),
        ("pipeline", "is not KEY=VALUE"),
        ("ci/pipe line=1", "invalid"),
    ] {
        let r = run_vigil(&c, &["--run-label", bad]);
        assert_eq!(r.code, 2, "{bad}: {}", r.stderr);
        assert!(r.stderr.contains(want), "{bad}: {}", r.stderr);
    }
}

/// A run of nothing is an error, never a pass: a policy whose selectors
/// match no running container scans nothing, so it cannot say the cluster
/// complies.
#[test]
fn a_run_whose_targets_match_nothing_is_an_error() {
    let Some(c) = cluster(false) else { return };
    let p = c.dir.write(
        "none.yaml",
        "apiVersion: vigil/v1\nkind: ScanPolicy\nmetadata: {name: none}\nspec:\n  profiles: [container-baseline]\n  targets:\n    - {namespace: team-a, selector: {matchLabels: {app: nothing}}, approach: api}\n",
    );
    let run = run_policy_as(&c, &c.server.kubeconfig, &p, &[]);
    assert_eq!(run.code, 3, "a run with errors: {}", run.stderr);
    let summary: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(summary[0]["verdict"], "error", "{}", run.stdout);
    assert!(run.stderr.contains("no target to scan"), "{}", run.stderr);
    assert_clean(&c);
}

/// The caller's client retries what the API server refused before doing
/// any work (429), and 503 where a call may run twice, at most 3 times
/// with its own short backoff: a server's `Retry-After: 3600` does not
/// make the run wait an hour, and kube's 15-retry default is off.
#[test]
fn the_callers_calls_retry_briefly_and_never_for_the_servers_say_so() {
    let Some(c) = cluster(false) else { return };
    c.server.inject(crate::fakeapi::Faults {
        caller_429: 2,
        caller_503: 1,
        ..Default::default()
    });
    let started = std::time::Instant::now();
    let run = run_vigil(&c, &[]);
    assert!(matches!(run.code, 0 | 1), "{}", run.stderr);
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
    assert_clean(&c);
    // A server that keeps refusing: the run stops with the refusal after
    // 4 attempts, in seconds, and leaves nothing behind.
    c.server.inject(crate::fakeapi::Faults {
        caller_429: 1_000,
        ..Default::default()
    });
    let before = c.server.request_log().len();
    let started = std::time::Instant::now();
    let run = run_vigil(&c, &[]);
    let elapsed = started.elapsed();
    let refused = c.server.request_log().len() - before;
    c.server.inject(crate::fakeapi::Faults::default());
    // (Planning fails first: the pod list is refused, reported as the
    // inventory error it is, exit 2.)
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("list pods in team-a") && run.stderr.contains("429"),
        "{}",
        run.stderr
    );
    assert!(elapsed < Duration::from_secs(30), "{elapsed:?}");
    // Two namespaces listed once each (a failed list is not listed again),
    // each tried 4 times.
    assert_eq!(refused, 8, "{refused} requests for two refused calls");
}

/// The coverage gate end to end: a run loses a Windows pod, a crashing
/// container and a pod no approach the policy allows reaches (a sidecar
/// target without the sidecar); an init container is the policy's own
/// choice. 4 of 7 scanned misses `coverage.min: 90`: the run fails (exit
/// 1, not an error), and the summary, the signed statement, `vigil open`,
/// every CI report and OSCAL say so with the reasons. Two shards count each
/// lost container once, and their merge is the whole run's coverage.
#[test]
fn the_coverage_gate_counts_what_the_plan_and_the_run_lost() {
    if !crate::util::root_and_busybox() {
        return;
    }
    let fx = rootfs_fixtures();
    let alpine = fx.path().join("rootfs/alpine");
    install_busybox(&alpine);
    let mut pods: Vec<Value> = (0..3)
        .map(|i| pod("team-a", &format!("web-{i}"), "web"))
        .collect();
    let mut windows = pod("team-a", "win-0", "web");
    windows["spec"]["os"] = json!({"name": "windows"});
    let mut crashing = pod("team-a", "crash-0", "web");
    crashing["status"]["containerStatuses"][0]["state"] =
        json!({"waiting": {"reason": "CrashLoopBackOff"}});
    let mut init = pod("team-a", "init-0", "web");
    init["spec"]["initContainers"] =
        json!([{"name": "setup", "image": "registry.example/setup:1"}]);
    init["status"]["initContainerStatuses"] = json!([{"name": "setup", "ready": true, "restartCount": 0, "image": "x", "imageID": "", "state": {"terminated": {"exitCode": 0}}}]);
    pods.extend([windows, crashing, init, pod("team-a", "mesh-0", "mesh")]);
    let rootfs: HashMap<(String, String), PathBuf> = ["web-0", "web-1", "web-2", "init-0"]
        .iter()
        .map(|p| (("team-a".to_string(), p.to_string()), alpine.clone()))
        .collect();
    let dir = TempDir::new("coverage");
    let server = FakeApiServer::start(dir.path(), pods, rootfs);
    crate::util::signing_key(dir.path());
    assert_eq!(
        vigil_in(dir.path(), &["keygen", "age", "--out", "auditor"]).code,
        0
    );
    let recipient = std::fs::read_to_string(dir.path().join("auditor.pub")).unwrap();
    dir.write(
        "p.yaml",
        format!("apiVersion: vigil/v1\nkind: ScanPolicy\nmetadata: {{name: cov}}\nspec:\n  profiles: [container-baseline]\n  targets:\n    - {{namespace: team-a, selector: {{matchLabels: {{app: web}}}}, approach: api}}\n    - {{namespace: team-a, selector: {{matchLabels: {{app: mesh}}}}, approach: sidecar}}\n  threshold: {{coverage: {{min: 90}}}}\n  output: {{signingKey: signer.key.pem, recipients: [\"{}\"]}}\n", recipient.trim()),
    );
    let run = |extra: &[&str]| -> (crate::util::Run, Value) {
        let out: crate::util::Run = Command::new(env!("CARGO_BIN_EXE_vigil"))
            .args(["run", "p.yaml"])
            .arg(repo().join("policies/profiles"))
            .args(["--out", "out", "--format", "json"])
            .args(extra)
            .current_dir(dir.path())
            .env("KUBECONFIG", &server.kubeconfig)
            .output()
            .unwrap()
            .into();
        let v = serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stderr));
        (out, v)
    };
    let reports = [
        "--report",
        "junit=run.xml",
        "--report",
        "markdown=run.md",
        "--report",
        "sarif=run.sarif",
        "--report",
        "oscal=run.oscal.json",
    ];
    let (out, v) = run(&reports);
    assert_eq!(out.code, 1, "a missed gate fails the run: {}", out.stderr);
    let s = &v[0];
    assert_eq!(s["verdict"], "fail");
    let cov = &s["coverage"];
    assert_eq!(
        (cov["expected"].as_u64(), cov["scanned"].as_u64()),
        (Some(7), Some(4)),
        "{cov}"
    );
    let reasons = |groups: &Value| -> Vec<(String, u64, Vec<String>)> {
        groups
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|g| {
                        (
                            g["reason"].as_str().unwrap().to_string(),
                            g["count"].as_u64().unwrap(),
                            g["examples"]
                                .as_array()
                                .unwrap()
                                .iter()
                                .map(|e| e.as_str().unwrap().to_string())
                                .collect(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let lost = vec![
        (
            "windows".to_string(),
            1,
            vec!["team-a/win-0/app".to_string()],
        ),
        (
            "container-not-running".into(),
            1,
            vec!["team-a/crash-0/app".into()],
        ),
        ("no-approach".into(), 1, vec!["team-a/mesh-0/app".into()]),
    ];
    let mut got = reasons(&cov["gaps"]);
    got.sort();
    let mut want = lost.clone();
    want.sort();
    assert_eq!(got, want, "{cov}");
    assert_eq!(
        reasons(&cov["excluded"]),
        [(
            "init-container".to_string(),
            1,
            vec!["team-a/init-0/setup".to_string()]
        )]
    );
    assert_eq!(s["coverage_threshold"]["passed"], false);
    // The signed statement carries it; open says it.
    let bundle = dir
        .path()
        .join("out/cov")
        .join(s["run_id"].as_str().unwrap());
    let st = crate::util::statement_payload(&bundle);
    assert_eq!(st["predicate"]["coverage"], *cov);
    assert_eq!(st["predicate"]["coverage_passed"], false);
    let opened = vigil_in(
        dir.path(),
        &[
            "open",
            bundle.to_str().unwrap(),
            "--trusted-key",
            "signer.pub.pem",
            "--identity",
            "auditor.key",
            "--report",
            "markdown=open.md",
        ],
    );
    assert_eq!(opened.code, 0, "{}", opened.stderr);
    assert!(
        opened
            .stdout
            .contains("coverage: 4 of 7 targets scanned (57.1%), coverage threshold FAIL"),
        "{}",
        opened.stdout
    );
    // The reports, from the run and from the bundle.
    let read = |f: &str| std::fs::read_to_string(dir.path().join(f)).unwrap();
    for md in [read("run.md"), read("open.md")] {
        assert!(
            md.contains("Coverage: 4 of 7 targets scanned (57.1%) (threshold **fail**)"),
            "{md}"
        );
        assert!(
            md.contains("- not scanned, windows: 1 (team\\-a\\/win\\-0\\/app)"),
            "{md}"
        );
    }
    let junit = read("run.xml");
    assert!(
        junit.contains("<testsuite name=\"cov/coverage\" tests=\"1\" failures=\"1\""),
        "{junit}"
    );
    assert!(junit.contains("type=\"coverage\""), "{junit}");
    let sarif: Value = serde_json::from_str(&read("run.sarif")).unwrap();
    let results = sarif["runs"][0]["results"].as_array().unwrap();
    let gate = results
        .iter()
        .find(|r| r["ruleId"] == "vigil/coverage")
        .expect("a coverage result");
    assert_eq!(gate["level"], "error");
    assert_eq!(
        sarif["runs"][0]["properties"]["vigil"]["coverage"][0]["coverage"],
        *cov
    );
    let oscal: Value = serde_json::from_str(&read("run.oscal.json")).unwrap();
    let props = oscal["assessment-results"]["results"][0]["props"]
        .as_array()
        .unwrap();
    let prop = |n: &str| {
        props
            .iter()
            .find(|p| p["name"] == n)
            .map(|p| p["value"].clone())
    };
    assert_eq!(prop("coverage-expected"), Some(json!("7")));
    assert_eq!(prop("coverage-scanned"), Some(json!("4")));
    assert_eq!(prop("not-scanned-windows"), Some(json!("1")));
    assert_eq!(prop("coverage-threshold"), Some(json!("fail")));

    // Two shards: each counts its own part, and the merge adds them up.
    let mut dirs = Vec::new();
    let mut parts = (0, 0);
    for i in 0..2 {
        let (out, v) = run(&["--shard", &format!("{i}/2")]);
        assert!(out.code == 0 || out.code == 1, "{}", out.stderr);
        parts.0 += v[0]["coverage"]["expected"].as_u64().unwrap();
        parts.1 += v[0]["coverage"]["scanned"].as_u64().unwrap();
        dirs.push(format!("out/cov/{}", v[0]["run_id"].as_str().unwrap()));
    }
    assert_eq!(parts, (7, 4), "every lost container in exactly one shard");
    let dirs: Vec<&str> = dirs.iter().map(String::as_str).collect();
    let merged = crate::runner::merge_into_merged(dir.path(), &dirs);
    assert_eq!(merged.code, 0, "{}", merged.stderr);
    let st = crate::util::statement_payload(&dir.path().join(merged.stdout.trim()));
    let merged_cov = &st["predicate"]["coverage"];
    assert_eq!(
        (
            merged_cov["expected"].as_u64(),
            merged_cov["scanned"].as_u64()
        ),
        (Some(7), Some(4)),
        "{merged_cov}"
    );
    let mut got = reasons(&merged_cov["gaps"]);
    got.sort();
    assert_eq!(got, want);
    assert_eq!(st["predicate"]["coverage_passed"], false);
    assert_eq!(st["predicate"]["verdict"], "fail");
}

/// `vigil attest` on a cluster run: containers are attested by the digest
/// their kubelet reports (`imageID`), one verdict per image however many
/// pods run it, named after the repository their pod spec gives; a
/// container without a reported digest is not attested.
#[test]
fn containers_are_attested_by_the_digest_their_kubelet_reports() {
    if !crate::util::root_and_busybox() {
        return;
    }
    let fx = rootfs_fixtures();
    let alpine = fx.path().join("rootfs/alpine");
    install_busybox(&alpine);
    let digest = format!("sha256:{}", "b".repeat(64));
    let mut pods = Vec::new();
    for name in ["web-0", "web-1", "web-2"] {
        let mut p = pod("team-a", name, "web");
        if name != "web-2" {
            p["status"]["containerStatuses"][0]["imageID"] =
                format!("registry.example/web@{digest}").into();
        }
        pods.push(p);
    }
    let rootfs: HashMap<(String, String), PathBuf> = ["web-0", "web-1", "web-2"]
        .iter()
        .map(|p| (("team-a".to_string(), p.to_string()), alpine.clone()))
        .collect();
    let dir = TempDir::new("attest-containers");
    let server = FakeApiServer::start(dir.path(), pods, rootfs);
    crate::util::signing_key(dir.path());
    dir.write(
        "p.yaml",
        "apiVersion: vigil/v1\nkind: ScanPolicy\nmetadata: {name: live}\nspec:\n  profiles: [container-baseline]\n  targets:\n    - {namespace: team-a, selector: {matchLabels: {app: web}}, approach: api}\n  threshold: {compliance: {min: 99}}\n  output: {signingKey: signer.key.pem}\n",
    );
    let (out, v) = crate::util::run_json(dir.path(), &server.kubeconfig, &[]);
    assert_eq!(out.code, 1, "the threshold fails: {}", out.stderr);
    let bundle = format!("out/live/{}", v[0]["run_id"].as_str().unwrap());
    let a = crate::util::attest_in(dir.path(), &bundle, "verdicts", &[]);
    assert_eq!(a.code, 0, "{}", a.stderr);
    let lines: Vec<&str> = a.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "one image: {}", a.stdout);
    assert!(
        lines[0].starts_with(&format!("{digest} FAILED ")),
        "{}",
        a.stdout
    );
    let st = crate::util::statement_payload_of(
        &dir.path()
            .join(format!("verdicts/{}.intoto.json", digest.replace(':', "-"))),
    );
    assert_eq!(st["subject"][0]["name"], "registry.example/web");
    assert_eq!(st["subject"][0]["digest"]["sha256"], "b".repeat(64));
    assert_eq!(st["predicate"]["result"], "FAILED");
    let r = vigil_in(
        dir.path(),
        &[
            "verify-attestation",
            &format!("registry.example/web@{digest}"),
            "--key",
            "signer.pub.pem",
            "--attestation",
            &format!("verdicts/{}.intoto.json", digest.replace(':', "-")),
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    // A plaintext bundle opens without an identity.
    let opened = vigil_in(
        dir.path(),
        &["open", &bundle, "--trusted-key", "signer.pub.pem"],
    );
    assert_eq!(opened.code, 0, "{}", opened.stderr);
    assert!(
        opened.stdout.contains("policy live run"),
        "{}",
        opened.stdout
    );
    // An unverifiable bundle attests nothing.
    std::fs::write(dir.path().join(&bundle).join("summary.json"), b"{}").unwrap();
    let a = crate::util::attest_in(dir.path(), &bundle, "verdicts2", &[]);
    assert_eq!(a.code, 1, "{}", a.stderr);
    assert!(a.stderr.contains("does not verify"), "{}", a.stderr);
    assert!(!dir.path().join("verdicts2").exists());
}

/// A namespace of `n` pods labelled `app: web` on a test API server with
/// `faults`, and `vigil plan` of a policy selecting them.
fn plan_big_namespace(n: usize, faults: crate::fakeapi::Faults) -> (crate::util::Run, Vec<String>) {
    plan_big_namespace_with(n, faults, "")
}

/// [`plan_big_namespace`] with `limits` (YAML flow mapping entries).
fn plan_big_namespace_with(
    n: usize,
    faults: crate::fakeapi::Faults,
    limits: &str,
) -> (crate::util::Run, Vec<String>) {
    let dir = TempDir::new("paging");
    let pods: Vec<Value> = (0..n)
        .map(|i| pod("big", &format!("p-{i:04}"), "web"))
        .collect();
    let server = FakeApiServer::start(dir.path(), pods, HashMap::new());
    server.inject(faults);
    let policy = dir.write(
        "p.yaml",
        format!("apiVersion: vigil/v1\nkind: ScanPolicy\nmetadata: {{name: big}}\nspec:\n  profiles: [container-baseline]\n  limits: {{{limits}}}\n  targets:\n    - {{namespace: big, selector: {{matchLabels: {{app: web}}}}, approach: api}}\n"),
    );
    let profiles = repo().join("policies/profiles");
    let args = ["plan", policy.to_str().unwrap(), profiles.to_str().unwrap()];
    let run = vigil_against(dir.path(), &server.kubeconfig, &args);
    let lists = server
        .request_log()
        .into_iter()
        .filter(|l| l.path.starts_with("/api/v1/namespaces/big/pods?"))
        .map(|l| format!("{} {}", l.status, l.path))
        .collect();
    (run, lists)
}

/// Pods are listed in pages of 500, as client-go's pager asks, each page
/// with the token the one before gave, and every pod is planned; a token
/// that expires mid-listing (410: the version was compacted) starts the
/// listing again, and the plan is the same.
#[test]
fn pod_lists_are_read_in_pages_and_an_expired_listing_starts_again() {
    let planned = |run: &crate::util::Run| {
        (0..1201)
            .filter(|i| run.stdout.contains(&format!("big/p-{i:04}/app")))
            .count()
    };
    let (run, lists) = plan_big_namespace(1201, Default::default());
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(planned(&run), 1201, "{}", run.stdout);
    assert_eq!(lists.len(), 3, "{lists:?}");
    assert!(
        lists
            .iter()
            .all(|l| l.starts_with("200 ") && l.contains("limit=500"))
    );
    assert!(!lists[0].contains("continue="), "{lists:?}");
    assert!(
        lists[1..].iter().all(|l| l.contains("continue=")),
        "{lists:?}"
    );

    let expired = crate::fakeapi::Faults {
        list_continue_gone: 1,
        ..Default::default()
    };
    let (run, lists) = plan_big_namespace(1201, expired);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(planned(&run), 1201);
    let codes: Vec<&str> = lists.iter().map(|l| &l[..3]).collect();
    assert_eq!(codes, ["200", "410", "200", "200", "200"], "{lists:?}");
}

/// A hostile API server cannot make the listing endless or unbounded: a
/// page that repeats the token it was asked with is an error, and so is
/// a page over 64 MiB even when asked for one pod (after asking for 500,
/// 62 and 7); both name the namespace.
#[test]
fn a_hostile_pod_listing_is_an_error_not_a_hang_or_a_flood() {
    let endless = crate::fakeapi::Faults {
        list_same_continue: true,
        ..Default::default()
    };
    let (run, lists) = plan_big_namespace(1001, endless);
    assert_ne!(run.code, 0);
    assert!(
        run.stderr.contains("pods in big") && run.stderr.contains("would not end"),
        "{}",
        run.stderr
    );
    assert!(lists.len() <= 3, "{lists:?}");

    let flood = crate::fakeapi::Faults {
        list_padding: 64 << 20,
        ..Default::default()
    };
    let (run, lists) = plan_big_namespace(3, flood);
    assert_ne!(run.code, 0);
    assert!(
        run.stderr.contains("pods in big") && run.stderr.contains("exceeded 67108864 bytes"),
        "{}",
        run.stderr
    );
    let limits: Vec<&str> = lists
        .iter()
        .filter_map(|l| l.split("limit=").nth(1))
        .map(|l| l.split('&').next().unwrap())
        .collect();
    assert_eq!(limits, ["500", "62", "7", "1"], "{lists:?}");
}

/// An API server that accepts a pod list and never answers it cannot hold
/// a plan: the call gives up after `limits.apiTimeout` and the error names
/// the namespace and the limit.
#[test]
fn a_list_the_server_never_answers_times_out_naming_the_namespace() {
    let hang = crate::fakeapi::Faults {
        list_hang: 1,
        ..Default::default()
    };
    let (run, _) = plan_big_namespace_with(3, hang, "apiTimeout: 1s");
    assert_ne!(run.code, 0, "{}", run.stdout);
    assert!(
        run.stderr.contains("pods in big")
            && run
                .stderr
                .contains("did not answer within 1s (limits.apiTimeout)"),
        "{}",
        run.stderr
    );
}

/// Every answer the caller's client reads is cut at 128 MiB while read:
/// a padded list of vigil's leftovers makes `vigil gc` fail naming the
/// list and the cap, instead of holding whatever the server sends.
#[test]
fn an_answer_over_the_cap_is_refused_while_read() {
    let dir = TempDir::new("answer-cap");
    let server = FakeApiServer::start(dir.path(), Vec::new(), HashMap::new());
    server.inject(crate::fakeapi::Faults {
        list_padding: 129 << 20,
        ..Default::default()
    });
    let run = vigil_against(dir.path(), &server.kubeconfig, &["gc", "--dry-run"]);
    assert_ne!(run.code, 0, "{}", run.stdout);
    assert!(
        run.stderr.contains(
            "labelled app.kubernetes.io/managed-by=vigil: output exceeded 134217728 bytes"
        ),
        "{}",
        run.stderr
    );
}
