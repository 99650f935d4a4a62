//! End-to-end against a real cluster (kind, k3d), only when
//! `VIGIL_E2E_KUBECONFIG` is set; see docs/kubernetes.md. CI machines have
//! no cluster: the test API server suite (tests/kube.rs) is what CI runs.

use std::process::Command;

use serde_json::Value;

use crate::util::{TempDir, repo};

#[test]
fn e2e_real_cluster_scan_and_cleanup() {
    let Some(kubeconfig) = std::env::var_os("VIGIL_E2E_KUBECONFIG") else {
        eprintln!("note: VIGIL_E2E_KUBECONFIG is not set; the real-cluster test does not run");
        return;
    };
    let dir = TempDir::new("e2e");
    let policy = dir.write(
        "e2e.yaml",
        "apiVersion: vigil/v1\nkind: ScanPolicy\nmetadata: {name: e2e}\nspec:\n  profiles: [container-baseline]\n  targets:\n    - {namespace: vigil-e2e, selector: {matchLabels: {run: web}}, approach: api}\n",
    );
    let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args([
            "run",
            policy.to_str().unwrap(),
            repo().join("policies/profiles").to_str().unwrap(),
            "--out",
            "out",
            "--unsigned",
            "--plaintext",
            "--format",
            "json",
        ])
        .current_dir(dir.path())
        .env("KUBECONFIG", &kubeconfig)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(matches!(out.status.code(), Some(0) | Some(1)), "{stderr}");
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    let targets = summary[0]["targets"].as_array().unwrap();
    assert!(
        !targets.is_empty(),
        "create a pod: kubectl -n vigil-e2e run web --image=alpine:3.20 -- sleep 3600"
    );
    assert!(
        targets.iter().all(|t| t["status"] == "scanned"),
        "{targets:?}"
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let caller = rt
        .block_on(vigil::cluster::Cluster::connect_with(
            Some(std::path::Path::new(&kubeconfig)),
            None,
            false,
        ))
        .unwrap();
    for kind in [
        vigil::cluster::Kind::ServiceAccount,
        vigil::cluster::Kind::Role,
        vigil::cluster::Kind::RoleBinding,
        vigil::cluster::Kind::Secret,
    ] {
        let left: Vec<_> = rt
            .block_on(caller.list_managed(kind))
            .unwrap()
            .into_iter()
            .filter(|(ns, name, _)| ns == "vigil-e2e" && name.starts_with("vigil-e2e-"))
            .collect();
        assert!(left.is_empty(), "{kind:?} left behind: {left:?}");
    }
}

/// Every approach against a real cluster set up by `scripts/e2e-kind.sh`
/// (`VIGIL_E2E_SCANNER` is the scanner image it built, by digest): api on
/// alpine and debian, auto on a shell-less pod (it moves to debug), the
/// sidecar in a shared-PID pod; then nothing is left behind for `vigil gc`.
#[test]
fn e2e_real_cluster_every_approach() {
    let (Some(kubeconfig), Some(scanner)) = (
        std::env::var_os("VIGIL_E2E_KUBECONFIG"),
        std::env::var("VIGIL_E2E_SCANNER").ok(),
    ) else {
        eprintln!(
            "note: VIGIL_E2E_KUBECONFIG and VIGIL_E2E_SCANNER are not both set (scripts/e2e-kind.sh sets them); the every-approach test does not run"
        );
        return;
    };
    let dir = TempDir::new("e2e-approaches");
    let policy = dir.write(
        "e2e.yaml",
        format!("apiVersion: vigil/v1\nkind: ScanPolicy\nmetadata: {{name: e2e-all}}\nspec:\n  profiles: [container-baseline]\n  debug: {{image: \"{scanner}\"}}\n  sidecar: {{image: \"{scanner}\"}}\n  targets:\n    - {{namespace: vigil-e2e, pods: [web, deb], approach: api}}\n    - {{namespace: vigil-e2e, pods: [static], approach: auto}}\n    - {{namespace: vigil-e2e, pods: [shared], approach: sidecar}}\n"),
    );
    let vigil = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_vigil"))
            .args(args)
            .current_dir(dir.path())
            .env("KUBECONFIG", &kubeconfig)
            .output()
            .unwrap()
    };
    let profiles = repo().join("policies/profiles");
    let out = vigil(&[
        "run",
        policy.to_str().unwrap(),
        profiles.to_str().unwrap(),
        "--out",
        "out",
        "--unsigned",
        "--plaintext",
        "--format",
        "json",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(matches!(out.status.code(), Some(0) | Some(1)), "{stderr}");
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
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
    let gc = vigil(&["gc", "--dry-run"]);
    assert_eq!(
        gc.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&gc.stderr)
    );
}
