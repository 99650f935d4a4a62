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
fn policies(scanner: &str) -> [(&'static str, String); 4] {
    [
        (
            "e2e.yaml",
            "apiVersion: vigil/v1\nkind: ScanPolicy\nmetadata: {name: e2e}\nspec:\n  profiles: [container-baseline]\n  targets:\n    - {namespace: vigil-e2e, selector: {matchLabels: {run: web}}, approach: api}\n".to_string(),
        ),
        (
            "all.yaml",
            format!("apiVersion: vigil/v1\nkind: ScanPolicy\nmetadata: {{name: e2e-all}}\nspec:\n  profiles: [container-baseline]\n  debug: {{image: \"{scanner}\"}}\n  sidecar: {{image: \"{scanner}\"}}\n  targets:\n    - {{namespace: vigil-e2e, pods: [web, deb], approach: api}}\n    - {{namespace: vigil-e2e, pods: [static], approach: auto}}\n    - {{namespace: vigil-e2e, pods: [shared], approach: sidecar}}\n"),
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
    ] {
        let t = targets
            .iter()
            .find(|t| t["id"] == id)
            .unwrap_or_else(|| panic!("no {id} in {targets:?}"));
        assert_eq!(t["status"], "scanned", "{t}");
        assert_eq!(t["approach"], approach, "{t}");
    }
    let gc = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["gc", "--dry-run"])
        .env("KUBECONFIG", &kubeconfig)
        .output()
        .unwrap();
    assert_eq!(
        gc.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&gc.stderr)
    );
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
    rustix::process::kill_process(
        rustix::process::Pid::from_child(&child),
        rustix::process::Signal::INT,
    )
    .unwrap();
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
