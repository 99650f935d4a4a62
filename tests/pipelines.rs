//! The pipeline templates: the GitHub Action and example workflow pass the
//! Actions schema (action-validator), and the GitLab CI template's jobs run
//! for real with gitlab-ci-local's shell executor, against the fixtures.

use std::process::Command;

use crate::util::{TempDir, repo};

#[test]
fn the_github_action_and_workflow_pass_the_actions_schema() {
    let validator = std::env::var("VIGIL_ACTION_VALIDATOR").unwrap_or("action-validator".into());
    for file in ["action.yml", "ci/github/vigil-policies.yml"] {
        match Command::new(&validator).arg(repo().join(file)).output() {
            Ok(out) => assert!(
                out.status.success(),
                "{file}:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(_) => {
                crate::util::prerequisite(false, "action-validator (npm @action-validator/cli)");
                return;
            }
        }
    }
}

#[test]
fn the_gitlab_template_jobs_run_with_the_shell_executor() {
    let gcl = std::env::var("VIGIL_GITLAB_CI_LOCAL").unwrap_or("gitlab-ci-local".into());
    let present = Command::new(&gcl)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
        && Command::new("rsync")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
    if !crate::util::prerequisite(present, "gitlab-ci-local (npm) and rsync") {
        return;
    }
    // A policy repository: the fixtures, the template included locally.
    let dir = TempDir::new("gitlab");
    for d in ["policies", "fixtures"] {
        assert!(
            Command::new("cp")
                .arg("-a")
                .arg(repo().join(d))
                .arg(dir.path())
                .status()
                .unwrap()
                .success()
        );
    }
    dir.write(
        "ci/vigil.gitlab-ci.yml",
        std::fs::read(repo().join("ci/gitlab/vigil.gitlab-ci.yml")).unwrap(),
    );
    dir.write(
        ".gitlab-ci.yml",
        "include:\n  - local: ci/vigil.gitlab-ci.yml\n",
    );
    let key = dir.path().join("fixtures/keys/demo-signing.key.pem");
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let git = |args: &[&str]| {
        assert!(
            Command::new("git")
                .args(args)
                .current_dir(dir.path())
                .output()
                .unwrap()
                .status
                .success(),
            "git {args:?}"
        );
    };
    git(&["init", "-q"]);
    git(&["add", "-A"]);
    git(&[
        "-c",
        "user.email=ci@example.com",
        "-c",
        "user.name=ci",
        "commit",
        "-qm",
        "policies",
    ]);
    git(&[
        "remote",
        "add",
        "origin",
        "https://gitlab.example.com/platform/policies.git",
    ]);
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_vigil"))
        .parent()
        .unwrap()
        .to_path_buf();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let job = |args: &[&str]| {
        let out = Command::new(&gcl)
            .args(args)
            .current_dir(dir.path())
            .env("PATH", &path)
            .env_remove("KUBECONFIG")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    // Merge requests and pushes: validate and plan.
    let (code, text) = job(&[
        "--variable",
        "VIGIL_INVENTORY=fixtures/cluster/snapshot.json",
        "vigil-validate",
    ]);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("PASS") && text.contains("vigil-validate"),
        "{text}"
    );
    let plan = std::fs::read_to_string(
        dir.path()
            .join(".gitlab-ci-local/artifacts/vigil-validate/vigil-plan.txt"),
    )
    .unwrap();
    assert!(plan.contains("creates ServiceAccount"), "{plan}");
    // Schedules: scan, seal, report. The demo policy fails its threshold on
    // purpose: the job fails on vigil's exit code, and still keeps the
    // sealed bundle and the JUnit report.
    let (code, text) = job(&[
        "--variable",
        "CI_PIPELINE_SOURCE=schedule",
        "--variable",
        "VIGIL_POLICIES=policies/demo.yaml",
        "--variable",
        "VIGIL_SIGNING_KEY=fixtures/keys/demo-signing.key.pem",
        "vigil-scan",
    ]);
    assert_ne!(code, Some(0), "{text}");
    assert!(
        text.contains("FAIL") && text.contains("verdict: fail"),
        "{text}"
    );
    let artifacts = dir.path().join(".gitlab-ci-local/artifacts/vigil-scan");
    let bundles: Vec<_> = std::fs::read_dir(artifacts.join("results/demo"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(bundles.len(), 1, "{text}");
    let verify = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .arg("verify")
        .arg(bundles[0].path())
        .arg("--trusted-key")
        .arg(repo().join("fixtures/keys/demo-signing.pub.pem"))
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
    assert!(artifacts.join("vigil-summary.md").is_file(), "{text}");
    // The run carries the pipeline's id as a label in its signed statement.
    let st = crate::util::statement_payload(&bundles[0].path());
    assert!(
        st["predicate"]["labels"]["gitlab.com/pipeline"].is_string(),
        "{st:#}"
    );
}
