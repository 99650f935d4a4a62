//! End-to-end against a real cluster (kind, k3d): ignored by `cargo test`
//! (CI machines have no cluster; the test API server suite is what CI
//! runs), run by `scripts/e2e-kind.sh` with `--include-ignored` and
//! `VIGIL_E2E_KUBECONFIG`/`VIGIL_E2E_SCANNER` set; see docs/kubernetes.md.
//! Their policies are validated everywhere.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::util::{TempDir, repo};

/// The e2e policies, for a scanner image pinned by digest. Checked by
/// [`e2e_policies_are_valid`] wherever the suite runs.
fn policies(scanner: &str) -> Vec<(&'static str, String)> {
    vec![
        (
            "e2e.yaml",
            "apiVersion: vigil/v1\nkind: ScanPolicy\nmetadata: {name: e2e}\nspec:\n  profiles: [container-baseline]\n  targets:\n    - {namespace: vigil-e2e, selector: {matchLabels: {run: web}}, approach: api}\n".to_string(),
        ),
        (
            "all.yaml",
            format!("apiVersion: vigil/v1\nkind: ScanPolicy\nmetadata: {{name: e2e-all}}\nspec:\n  profiles: [container-baseline]\n  debug: {{image: \"{scanner}\"}}\n  sidecar: {{image: \"{scanner}\"}}\n  targets:\n    - {{namespace: vigil-e2e, pods: [web, deb], approach: api}}\n    - {{namespace: vigil-e2e, pods: [static], approach: auto}}\n    - {{namespace: vigil-e2e, pods: [shared], approach: sidecar}}\n    - {{namespace: vigil-e2e, pods: [rootdeb], approach: debug}}\n    - {{namespace: vigil-e2e, pods: [rootshared], approach: sidecar}}\n"),
        ),
        (
            "pss.yaml",
            format!("apiVersion: vigil/v1\nkind: ScanPolicy\nmetadata: {{name: e2e-pss}}\nspec:\n  profiles: [container-baseline]\n  debug: {{image: \"{scanner}\"}}\n  targets:\n    - {{namespace: vigil-e2e-pss, approach: debug}}\n"),
        ),
        (
            "incluster.yaml",
            "apiVersion: vigil/v1\nkind: ScanPolicy\nmetadata: {name: e2e-ic}\nspec:\n  profiles: [container-baseline]\n  schedule: {cron: \"0 3 * * *\"}\n  targets:\n    - {namespace: vigil-e2e, pods: [web, deb], approach: api}\n".to_string(),
        ),
        (
            "prov.yaml",
            "apiVersion: vigil/v1\nkind: ScanPolicy\nmetadata: {name: e2e-prov}\nspec:\n  profiles: [container-baseline]\n  access: {mode: provisioned, scope: namespace}\n  targets:\n    - {namespace: vigil-e2e, pods: [web, deb], approach: api}\n".to_string(),
        ),
        (
            "sigint.yaml",
            format!("apiVersion: vigil/v1\nkind: ScanPolicy\nmetadata: {{name: e2e-int}}\nspec:\n  profiles: [container-baseline]\n  debug: {{image: \"{scanner}\"}}\n  targets:\n    - {{namespace: vigil-e2e, pods: [static], approach: debug}}\n    - {{namespace: vigil-e2e, pods: [web, deb], approach: api}}\n  limits: {{concurrency: 1}}\n"),
        ),
    ]
}

/// The e2e policy `name`, written into `dir` as `p.yaml` (what
/// [`crate::util::run_cmd`] runs).
fn policy(dir: &TempDir, name: &str, scanner: &str) -> std::path::PathBuf {
    let (_, text) = policies(scanner)
        .into_iter()
        .find(|(f, _)| *f == name)
        .expect("a known e2e policy");
    dir.write("p.yaml", text)
}

/// `vigil run p.yaml … --unsigned --plaintext --format json` in `dir`
/// against the real cluster; it must exit 0 or 1. The summaries it printed.
fn run(dir: &TempDir, kubeconfig: &str) -> Value {
    crate::util::run_json(dir.path(), Path::new(kubeconfig), &["--unsigned"]).1
}

/// The objects a per-run access of policy `name` in run `summary` may
/// leave: its names are `vigil-<policy>-<run suffix>…`.
fn run_prefix(name: &str, summary: &Value) -> String {
    format!(
        "vigil-{name}-{}",
        vigil::plan::rbac::run_suffix(summary[0]["run_id"].as_str().unwrap())
    )
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run scripts/e2e-kind.sh"))
}

/// The policies the real-cluster tests run are valid, checked here on
/// every machine (the tests themselves need a cluster).
#[test]
fn e2e_policies_are_valid() {
    let dir = TempDir::new("e2e-policies");
    let scanner = format!("localhost:5001/vigil@sha256:{}", "0".repeat(64));
    for (name, text) in policies(&scanner) {
        let path = dir.write(name, text);
        let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
            .arg("validate")
            .arg(&path)
            .arg(repo().join("policies/profiles"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
#[ignore = "needs a real cluster (VIGIL_E2E_KUBECONFIG)"]
fn e2e_real_cluster_scan_and_cleanup() {
    let kubeconfig = env("VIGIL_E2E_KUBECONFIG");
    let dir = TempDir::new("e2e");
    policy(&dir, "e2e.yaml", "");
    let summary = run(&dir, &kubeconfig);
    let targets = summary[0]["targets"].as_array().unwrap();
    assert!(
        !targets.is_empty(),
        "create a pod: kubectl -n vigil-e2e run web --image=alpine:3.20 -- sleep 3600"
    );
    assert!(
        targets.iter().all(|t| t["status"] == "scanned"),
        "{targets:?}"
    );
    let left = leftovers(&kubeconfig, &run_prefix("e2e", &summary));
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// Every approach against a real cluster set up by `scripts/e2e-kind.sh`
/// (`VIGIL_E2E_SCANNER` is the scanner image it built, by digest): api on
/// alpine and debian, auto on a shell-less pod (it moves to debug), the
/// sidecar in a shared-PID pod; then nothing is left behind for `vigil gc`.
#[test]
#[ignore = "needs a real cluster (VIGIL_E2E_KUBECONFIG)"]
fn e2e_real_cluster_every_approach() {
    let (kubeconfig, scanner) = (env("VIGIL_E2E_KUBECONFIG"), env("VIGIL_E2E_SCANNER"));
    let dir = TempDir::new("e2e-approaches");
    policy(&dir, "all.yaml", &scanner);
    let summary = run(&dir, &kubeconfig);
    let targets = summary[0]["targets"].as_array().unwrap();
    for (id, approach) in [
        ("vigil-e2e/web/web", "api"),
        ("vigil-e2e/deb/deb", "api"),
        ("vigil-e2e/static/static", "debug"),
        ("vigil-e2e/shared/app", "sidecar"),
        // Root targets: a debug container with the target's own
        // capabilities, and a root sidecar reading a root that drops ALL.
        ("vigil-e2e/rootdeb/rootdeb", "debug"),
        ("vigil-e2e/rootshared/app", "sidecar"),
    ] {
        let t = targets
            .iter()
            .find(|t| t["id"] == id)
            .unwrap_or_else(|| panic!("no {id} in {targets:?}"));
        assert_eq!(t["status"], "scanned", "{t}");
        assert_eq!(t["approach"], approach, "{t}");
    }
    // Real results, not one status for everything: what these images are
    // known to hold decides, and a pod without the evidence gets no pass.
    let statuses = control_statuses(&dir, "e2e-all", &summary);
    for (target, control, want) in [
        ("vigil-e2e/web/web", "CB-01", "passed"),
        ("vigil-e2e/web/web", "CB-13", "passed"),
        ("vigil-e2e/deb/deb", "CB-13", "passed"),
        // Debian's login.defs sets UMASK 022.
        ("vigil-e2e/deb/deb", "CB-17", "failed"),
        ("vigil-e2e/rootdeb/rootdeb", "CB-17", "failed"),
        ("vigil-e2e/shared/app", "CB-13", "passed"),
        ("vigil-e2e/rootshared/app", "CB-13", "passed"),
    ] {
        assert_eq!(
            statuses[target].get(control).map(String::as_str),
            Some(want),
            "{target} {control}: {:?}",
            statuses[target]
        );
    }
    // The pause image has no package database: no false pass.
    assert_ne!(statuses["vigil-e2e/static/static"]["CB-13"], "passed");
    for (target, controls) in &statuses {
        let seen: std::collections::BTreeSet<&str> =
            controls.values().map(String::as_str).collect();
        assert!(
            seen.contains("passed") && seen.len() > 1,
            "{target}: {controls:?}"
        );
    }
    // The debug containers' logs hold only ciphertext.
    for pod in ["static", "rootdeb"] {
        let names = kubectl(
            &kubeconfig,
            &[
                "-n",
                "vigil-e2e",
                "get",
                "pod",
                pod,
                "-o",
                "jsonpath={.spec.ephemeralContainers[*].name}",
            ],
        );
        let names: Vec<&str> = names.split_whitespace().collect();
        assert!(!names.is_empty(), "{pod} has no debug container");
        for name in names {
            let log = kubectl(&kubeconfig, &["-n", "vigil-e2e", "logs", pod, "-c", name]);
            assert!(
                log.contains("-----BEGIN AGE ENCRYPTED FILE-----") && !log.contains("VIGIL-FACTS"),
                "{pod}/{name} logged plaintext: {log:.300}"
            );
        }
    }
    // gc lists nothing this run left; an expired object it does list, and
    // deletes.
    let prefix = run_prefix("e2e-all", &summary);
    let gc = vigil_cmd(&kubeconfig, &["gc", "--dry-run"]);
    assert!(!gc.contains(&prefix), "the run left objects: {gc}");
    kubectl_apply(
        &kubeconfig,
        &format!(
            "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: vigil-e2e-stale\n  namespace: vigil-e2e\n  labels: {{{}: {}}}\n  annotations: {{{}: \"2000-01-01T00:00:00Z\"}}\n",
            vigil::plan::rbac::MANAGED_BY.0,
            vigil::plan::rbac::MANAGED_BY.1,
            vigil::plan::rbac::EXPIRES_ANNOTATION
        ),
    );
    let gc = vigil_cmd(&kubeconfig, &["gc", "--dry-run"]);
    assert!(gc.contains("vigil-e2e/vigil-e2e-stale"), "{gc}");
    let gc = vigil_cmd(&kubeconfig, &["gc"]);
    assert!(gc.contains("vigil-e2e-stale"), "{gc}");
    assert!(leftovers(&kubeconfig, "vigil-e2e-stale").is_empty());
}

/// control id → status, per target, from the HDF files of policy
/// `name`'s run.
fn control_statuses(
    dir: &TempDir,
    name: &str,
    summary: &Value,
) -> std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>> {
    let run_id = summary[0]["run_id"].as_str().unwrap();
    crate::util::control_statuses_in(
        &dir.path()
            .join("out")
            .join(name)
            .join(run_id)
            .join("targets"),
    )
}

/// `kubectl ARGS` against the e2e cluster; it must succeed. Its stdout.
fn kubectl(kubeconfig: &str, args: &[&str]) -> String {
    let out = Command::new("kubectl")
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .output()
        .expect("kubectl is installed (scripts/e2e-kind.sh needs it)");
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `kubectl apply` of a YAML text.
fn kubectl_apply(kubeconfig: &str, yaml: &str) {
    use std::io::Write as _;
    let mut child = Command::new("kubectl")
        .args(["apply", "-f", "-"])
        .env("KUBECONFIG", kubeconfig)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("kubectl is installed");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(yaml.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success(), "kubectl apply: {yaml}");
}

/// `vigil ARGS` against the e2e cluster; it must exit 0. Its stdout.
fn vigil_cmd(kubeconfig: &str, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "vigil {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The run's token reaches only what the plan names: exec into an
/// unplanned pod is 403; after cleanup the token itself is refused (401:
/// its bound anchor is gone).
#[test]
#[ignore = "needs a real cluster (VIGIL_E2E_KUBECONFIG)"]
fn e2e_real_cluster_the_runs_token_is_pinned_and_dies_with_cleanup() {
    let kubeconfig = env("VIGIL_E2E_KUBECONFIG");
    let dir = TempDir::new("e2e-token");
    policy(&dir, "e2e.yaml", "");
    let crate::util::RunAccessFixture {
        rt,
        caller,
        mut access,
        audit,
    } = crate::util::run_access(
        Path::new(&kubeconfig),
        &[dir.path().join("p.yaml"), repo().join("policies/profiles")],
    );
    let scoped = access.scoped("vigil-e2e").unwrap().clone();
    let exec =
        |pod: &str| rt.block_on(scoped.exec("vigil-e2e", pod, pod, vec!["true".into()], 1024));
    exec("web").expect("a planned pod");
    let denied = exec("static").unwrap_err();
    assert!(denied.is_forbidden(), "an unplanned pod: {denied}");
    rt.block_on(access.cleanup(&caller, &audit));
    let dead = exec("web").unwrap_err();
    assert!(
        matches!(dead, vigil::cluster::ClusterError::Api { code: 401, .. }),
        "after cleanup: {dead}"
    );
}

/// Pod Security on a real API server: in a namespace enforcing baseline,
/// the plan names the privileged pod the debug approach cannot reach, the
/// run scans the compliant pod and reports the refusal for the other.
#[test]
#[ignore = "needs a real cluster (VIGIL_E2E_KUBECONFIG)"]
fn e2e_real_cluster_pod_security_refusals_are_planned_and_reported() {
    let (kubeconfig, scanner) = (env("VIGIL_E2E_KUBECONFIG"), env("VIGIL_E2E_SCANNER"));
    let dir = TempDir::new("e2e-pss");
    let p = policy(&dir, "pss.yaml", &scanner);
    let plan = vigil_cmd(
        &kubeconfig,
        &[
            "plan",
            p.to_str().unwrap(),
            repo().join("policies/profiles").to_str().unwrap(),
        ],
    );
    assert!(
        plan.contains("vigil-e2e-pss/priv/priv")
            && plan.contains("breaks Pod Security baseline (privileged"),
        "{plan}"
    );
    let out: crate::util::Run =
        crate::util::run_cmd(dir.path(), Path::new(&kubeconfig), &["--unsigned"])
            .output()
            .unwrap()
            .into();
    let summary: Value = serde_json::from_str(&out.stdout).unwrap();
    let targets = summary[0]["targets"].as_array().unwrap();
    let by_id = |id: &str| targets.iter().find(|t| t["id"] == id).unwrap().clone();
    assert_eq!(by_id("vigil-e2e-pss/ok/ok")["status"], "scanned");
    let refused = by_id("vigil-e2e-pss/priv/priv");
    assert_eq!(refused["status"], "error", "{refused}");
    assert!(
        refused["error"].as_str().unwrap().contains("Pod Security"),
        "{refused}"
    );
}

/// vigil's admission policy applied, then every approach still runs under
/// it (it holds vigil's identities to what vigil adds, nothing less).
#[test]
#[ignore = "needs a real cluster (VIGIL_E2E_KUBECONFIG)"]
fn e2e_real_cluster_runs_under_the_admission_policy() {
    let (kubeconfig, scanner) = (env("VIGIL_E2E_KUBECONFIG"), env("VIGIL_E2E_SCANNER"));
    let dir = TempDir::new("e2e-admission");
    let p = policy(&dir, "all.yaml", &scanner);
    let profiles = repo().join("policies/profiles");
    let rendered = vigil_cmd(
        &kubeconfig,
        &[
            "render",
            "admission-policy",
            p.to_str().unwrap(),
            profiles.to_str().unwrap(),
        ],
    );
    kubectl_apply(&kubeconfig, &rendered);
    let file = dir.write("admission.yaml", &rendered);
    // The binding takes effect within seconds; a run right away may race it.
    std::thread::sleep(std::time::Duration::from_secs(5));
    let summary = run(&dir, &kubeconfig);
    let targets = summary[0]["targets"].as_array().unwrap();
    kubectl(&kubeconfig, &["delete", "-f", file.to_str().unwrap()]);
    assert!(
        targets.len() >= 6 && targets.iter().all(|t| t["status"] == "scanned"),
        "{targets:?}"
    );
}

/// `audit-check` on the API server's own audit log: a signed run's trail
/// reconciles with what the API server recorded.
#[test]
#[ignore = "needs a real cluster (VIGIL_E2E_KUBECONFIG)"]
fn e2e_real_cluster_audit_check_on_the_real_audit_log() {
    let kubeconfig = env("VIGIL_E2E_KUBECONFIG");
    let node = env("VIGIL_E2E_NODE");
    let dir = TempDir::new("e2e-audit");
    policy(&dir, "e2e.yaml", "");
    let status = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["keygen", "signing", "--out"])
        .arg(dir.path().join("signer"))
        .status()
        .unwrap();
    assert!(status.success());
    let key = dir.path().join("signer.key.pem");
    let (_, summary) = crate::util::run_json(
        dir.path(),
        Path::new(&kubeconfig),
        &["--signing-key", key.to_str().unwrap()],
    );
    let bundle = dir
        .path()
        .join("out/e2e")
        .join(summary[0]["run_id"].as_str().unwrap());
    let log = Command::new("docker")
        .args([
            "exec",
            &node,
            "cat",
            "/var/log/kubernetes/kube-apiserver-audit.log",
        ])
        .output()
        .expect("docker is installed");
    assert!(
        log.status.success() && !log.stdout.is_empty(),
        "no audit log on {node}"
    );
    let log_file = dir.write(
        "audit.log",
        String::from_utf8_lossy(&log.stdout).into_owned(),
    );
    let report = vigil_cmd(
        &kubeconfig,
        &[
            "audit-check",
            bundle.to_str().unwrap(),
            "--audit-log",
            log_file.to_str().unwrap(),
            "--trusted-key",
            dir.path().join("signer.pub.pem").to_str().unwrap(),
            "--format",
            "json",
        ],
    );
    let report: Value = serde_json::from_str(&report).unwrap();
    assert!(report.is_object(), "{report}");
}

/// The in-cluster runner: the sharded Job (2 shards on the ReadWriteOnce
/// claim) and a run of the CronJob complete under their NetworkPolicy
/// (egress to the API server's endpoint and DNS only).
#[test]
#[ignore = "needs a real cluster (VIGIL_E2E_KUBECONFIG)"]
fn e2e_real_cluster_in_cluster_job_and_cronjob_complete() {
    let (kubeconfig, scanner) = (env("VIGIL_E2E_KUBECONFIG"), env("VIGIL_E2E_SCANNER"));
    let api = env("VIGIL_E2E_API_CIDR");
    let dir = TempDir::new("e2e-incluster");
    let p = policy(&dir, "incluster.yaml", &scanner);
    let profiles = repo().join("policies/profiles");
    let mut from_files = vec![format!("--from-file={}", p.display())];
    for e in std::fs::read_dir(&profiles).unwrap().flatten() {
        from_files.push(format!("--from-file={}", e.path().display()));
    }
    let mut args = vec!["-n", "vigil", "create", "configmap", "vigil-policy-e2e-ic"];
    args.extend(from_files.iter().map(String::as_str));
    kubectl(&kubeconfig, &args);
    let common = [
        "--namespace",
        "vigil",
        "--scanner-image",
        scanner.as_str(),
        "--pvc",
        "vigil-results",
        "--signing-secret",
        "vigil-signing-key",
        "--api-server-cidr",
        api.as_str(),
    ];
    for (kind, extra, job) in [
        ("job", vec!["--shards", "2"], "vigil-e2e-ic-sharded"),
        ("cronjob", vec![], "vigil-e2e-ic-now"),
    ] {
        let mut args = vec![
            "render",
            kind,
            p.to_str().unwrap(),
            profiles.to_str().unwrap(),
        ];
        args.extend_from_slice(&common);
        args.extend(extra);
        let rendered = vigil_cmd(&kubeconfig, &args);
        assert!(rendered.contains("kind: NetworkPolicy"), "{rendered}");
        kubectl_apply(&kubeconfig, &rendered);
        if kind == "cronjob" {
            kubectl(
                &kubeconfig,
                &[
                    "-n",
                    "vigil",
                    "create",
                    "job",
                    job,
                    "--from=cronjob/vigil-e2e-ic",
                ],
            );
        }
        kubectl(
            &kubeconfig,
            &[
                "-n",
                "vigil",
                "wait",
                "--for=condition=complete",
                &format!("job/{job}"),
                "--timeout=300s",
            ],
        );
    }
}

/// The caller's managed objects a run may leave in `vigil-e2e` whose names
/// start with `prefix`.
fn leftovers(kubeconfig: &str, prefix: &str) -> Vec<String> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let caller = rt
        .block_on(vigil::cluster::Cluster::connect_with(
            Some(std::path::Path::new(kubeconfig)),
            None,
            false,
        ))
        .unwrap();
    let mut left = Vec::new();
    for kind in [
        vigil::cluster::Kind::ServiceAccount,
        vigil::cluster::Kind::Role,
        vigil::cluster::Kind::RoleBinding,
        vigil::cluster::Kind::Secret,
    ] {
        let listed = rt.block_on(caller.list_labelled(
            kind,
            vigil::plan::rbac::MANAGED_BY,
            vigil::plan::rbac::EXPIRES_ANNOTATION,
        ));
        for (ns, name, _) in listed.unwrap() {
            if ns == "vigil-e2e" && name.starts_with(prefix) {
                left.push(format!("{kind:?} {ns}/{name}"));
            }
        }
    }
    left
}

/// Provisioned mode on a real cluster: `vigil render rbac` applied with
/// kubectl, then a run that only requests tokens (it creates no RBAC), and
/// whose anchors are gone afterwards while the provisioned objects stay.
#[test]
#[ignore = "needs a real cluster (VIGIL_E2E_KUBECONFIG)"]
fn e2e_real_cluster_provisioned_mode() {
    let kubeconfig = env("VIGIL_E2E_KUBECONFIG");
    let dir = TempDir::new("e2e-provisioned");
    let policy = policy(&dir, "prov.yaml", "");
    let profiles = repo().join("policies/profiles");
    let render = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["render", "rbac"])
        .arg(&policy)
        .arg(&profiles)
        .env("KUBECONFIG", &kubeconfig)
        .output()
        .unwrap();
    assert_eq!(
        render.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&render.stderr)
    );
    let rendered = dir.write("rbac.yaml", String::from_utf8(render.stdout).unwrap());
    let apply = Command::new("kubectl")
        .args(["apply", "-f"])
        .arg(&rendered)
        .env("KUBECONFIG", &kubeconfig)
        .output()
        .expect("kubectl is installed (scripts/e2e-kind.sh needs it)");
    assert!(
        apply.status.success(),
        "{}",
        String::from_utf8_lossy(&apply.stderr)
    );
    let summary = run(&dir, &kubeconfig);
    let targets = summary[0]["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 2, "{targets:?}");
    assert!(
        targets.iter().all(|t| t["status"] == "scanned"),
        "{targets:?}"
    );
    // The provisioned ServiceAccount, Role and RoleBinding stay; no anchor
    // Secret does.
    let left = leftovers(&kubeconfig, "vigil-e2e-prov");
    assert!(
        left.iter().all(|l| !l.starts_with("Secret")),
        "the run's anchors are deleted: {left:?}"
    );
    let _ = Command::new("kubectl")
        .args(["delete", "-f"])
        .arg(&rendered)
        .env("KUBECONFIG", &kubeconfig)
        .output();
}

/// SIGINT on a real cluster: interrupted while its debug container starts
/// (an image pull and a container start take seconds), the run ends with
/// exit 3, a result for every target, and none of its objects left.
#[test]
#[ignore = "needs a real cluster (VIGIL_E2E_KUBECONFIG)"]
fn e2e_real_cluster_sigint_cleans_up() {
    let (kubeconfig, scanner) = (env("VIGIL_E2E_KUBECONFIG"), env("VIGIL_E2E_SCANNER"));
    let dir = TempDir::new("e2e-sigint");
    policy(&dir, "sigint.yaml", &scanner);
    let child = crate::util::run_cmd(dir.path(), Path::new(&kubeconfig), &["--unsigned"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Interrupt once the run's Role exists (the scans follow it).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while leftovers(&kubeconfig, "vigil-e2e-int").is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the run created no objects within 60 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    crate::util::signal(&child, rustix::process::Signal::INT);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("signal received"), "{stderr}");
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary[0]["targets"].as_array().unwrap().len(), 3);
    assert_eq!(summary[0]["complete"], false);
    let left = leftovers(&kubeconfig, &run_prefix("e2e-int", &summary));
    assert!(left.is_empty(), "left behind after SIGINT: {left:?}");
}
