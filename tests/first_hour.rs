//! What a new user meets in the first hour (#30): nothing silently does
//! nothing, and errors point the right way.

use crate::util::{TempDir, repo, vigil_in};

/// `run` (or `plan`) given only profiles, or an image with no ScanPolicy,
/// is bad input (exit 2) that says so: a pipeline with a mistyped path
/// must not pass its gate on a run of nothing.
#[test]
fn no_policy_to_run_is_exit_2() {
    let dir = TempDir::new("no-policy");
    let profiles = repo().join("policies/profiles");
    let profiles = profiles.to_str().unwrap();
    let image = format!(
        "oci-dir:{}:v1",
        repo().join("fixtures/images/demo").display()
    );
    for args in [
        vec!["run", profiles],
        vec!["run", profiles, "--image", &image],
        vec!["plan", profiles],
    ] {
        let r = vigil_in(dir.path(), &args);
        assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
        assert!(r.stderr.contains("no ScanPolicy"), "{args:?}: {}", r.stderr);
        assert!(r.stdout.trim().is_empty(), "{args:?}: {}", r.stdout);
    }
}

/// `--unsigned` reads no key: a policy's signing key that is too open (a
/// fresh clone's demo key under umask 0022) is no reason to stop, and
/// `--unsigned --signing-key` is a contradiction clap refuses.
#[test]
fn unsigned_reads_no_signing_key() {
    let dir = TempDir::new("unsigned");
    let key = dir.path().join("open.key.pem");
    std::fs::copy(repo().join("fixtures/keys/demo-signing.key.pem"), &key).unwrap();
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    dir.write(
        "p.yaml",
        format!(
            "apiVersion: vigil/v1\nkind: ScanPolicy\nmetadata: {{name: u}}\nspec:\n  profiles: [container-baseline]\n  targets:\n    - {{rootfs: {}, name: d}}\n  output: {{signingKey: open.key.pem}}\n",
            repo().join("fixtures/demo/distroless.tar.gz").display()
        ),
    );
    let profiles = repo().join("policies/profiles");
    let base = [
        "run",
        "p.yaml",
        profiles.to_str().unwrap(),
        "--plaintext",
        "--out",
        "out",
    ];
    let signed = vigil_in(dir.path(), &base);
    assert_eq!(signed.code, 2, "the open key is refused when it is used");
    assert!(
        signed.stderr.contains("readable by group or others"),
        "{}",
        signed.stderr
    );
    let mut unsigned = base.to_vec();
    unsigned.push("--unsigned");
    let r = vigil_in(dir.path(), &unsigned);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let mut both = unsigned.clone();
    both.extend(["--signing-key", "open.key.pem"]);
    let r = vigil_in(dir.path(), &both);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("cannot be used with"), "{}", r.stderr);
}

/// An empty directory (or one that is not a root: an image not unpacked)
/// scanned as a rootfs target is an error result that says why, never a
/// 67 % pass on "must not exist" controls.
#[test]
fn a_directory_that_is_not_a_root_is_an_error_not_a_pass() {
    let dir = TempDir::new("not-a-root");
    std::fs::create_dir_all(dir.path().join("empty")).unwrap();
    std::fs::create_dir_all(dir.path().join("unpacked-not")).unwrap();
    std::fs::write(dir.path().join("unpacked-not/layer.tar"), b"").unwrap();
    dir.write(
        "p.yaml",
        "apiVersion: vigil/v1\nkind: ScanPolicy\nmetadata: {name: e}\nspec:\n  profiles: [container-baseline]\n  targets:\n    - {rootfs: empty}\n    - {rootfs: unpacked-not}\n",
    );
    let profiles = repo().join("policies/profiles");
    let run = |format: &str| {
        vigil_in(
            dir.path(),
            &[
                "run",
                "p.yaml",
                profiles.to_str().unwrap(),
                "--plaintext",
                "--unsigned",
                "--out",
                "out",
                "--format",
                format,
            ],
        )
    };
    let r = run("json");
    assert_eq!(r.code, 3, "{}", r.stderr);
    let summary: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    for t in summary[0]["targets"].as_array().unwrap() {
        assert_eq!(t["status"], "error", "{t:#}");
        assert_eq!(t["counts"]["passed"], 0, "{t:#}");
        assert!(
            t["error"]
                .as_str()
                .unwrap()
                .contains("does not look like a container root"),
            "{t:#}"
        );
    }
    // The table says each target's one cause once, not once per control.
    let r = run("text");
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert_eq!(
        r.stdout
            .matches("does not look like a container root")
            .count(),
        2,
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("controls not evaluated"), "{}", r.stdout);
}

/// `validate` does not report in rounds: a key typo does not hide the
/// other errors of its document (they are checked on the rest of it), and
/// where a schema error does stop the other checks, it says more may be
/// hidden. A document with any error is never run.
#[test]
fn validate_reports_every_error_at_once() {
    let dir = TempDir::new("rounds");
    dir.write(
        "p.yaml",
        "apiVersion: vigil/v1\nkind: ScanPolicy\nmetadata: {name: typo}\nspec:\n  profiles: [nope-profile]\n  targetz: []\n  targets:\n    - {rootfs: a, name: x}\n    - {rootfs: b, name: x}\n  output: {recipients: [not-a-recipient]}\n",
    );
    let profiles = repo().join("policies/profiles");
    let profiles = profiles.to_str().unwrap();
    let r = vigil_in(
        dir.path(),
        &["validate", "p.yaml", profiles, "--format", "json"],
    );
    assert_ne!(r.code, 0);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let mut codes: Vec<&str> = v["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["severity"] == "error")
        .map(|d| d["code"].as_str().unwrap())
        .collect();
    codes.sort();
    assert_eq!(
        codes,
        [
            "duplicate-target",
            "invalid-recipient",
            "unknown-field",
            "unresolved-profile"
        ],
        "{:#}",
        v
    );
    let run = vigil_in(
        dir.path(),
        &["run", "p.yaml", profiles, "--unsigned", "--plaintext"],
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
    // A wrong type stops the checks that need a well-formed document: said.
    dir.write(
        "q.yaml",
        "apiVersion: vigil/v1\nkind: ScanPolicy\nmetadata: {name: q}\nspec:\n  profiles: [nope-profile]\n  targets: 7\n",
    );
    let r = vigil_in(dir.path(), &["validate", "q.yaml", profiles]);
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains("checks-skipped") || r.stdout.contains("checks-skipped"),
        "{}{}",
        r.stdout,
        r.stderr
    );
}

/// `gc --context` naming a context the kubeconfig lacks says so and lists
/// the ones it has; it never suggests `--inventory`, which `gc` lacks.
#[test]
fn gc_with_an_unknown_context_lists_the_known_ones() {
    let dir = TempDir::new("gc-context");
    dir.write(
        "kc.yaml",
        "apiVersion: v1\nkind: Config\nclusters:\n- name: a\n  cluster: {server: \"https://127.0.0.1:1\"}\nusers:\n- name: u\n  user: {token: x}\ncontexts:\n- name: prod\n  context: {cluster: a, user: u}\n- name: staging\n  context: {cluster: a, user: u}\ncurrent-context: prod\n",
    );
    let r = crate::util::vigil_cmd_with_deadline(
        std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
            .args(["gc", "--context", "nope"])
            .env("KUBECONFIG", dir.path().join("kc.yaml")),
        dir.path(),
        b"",
        30,
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("context `nope` is not in the kubeconfig")
            && r.stderr.contains("prod, staging"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("--inventory"), "{}", r.stderr);
}

/// A bad `--image` is blamed on the flag, never on a policy line the
/// flag's targets replaced.
#[test]
fn a_bad_image_flag_names_the_flag() {
    let dir = TempDir::new("bad-image");
    let demo = repo().join("policies/demo.yaml");
    let profiles = repo().join("policies/profiles");
    let r = vigil_in(
        dir.path(),
        &[
            "run",
            demo.to_str().unwrap(),
            profiles.to_str().unwrap(),
            "--image",
            "oci-dir:nowhere/layout",
            "--unsigned",
            "--plaintext",
            "--out",
            "out",
        ],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("--image oci-dir:"), "{}", r.stderr);
    assert!(!r.stderr.contains("demo.yaml:"), "{}", r.stderr);
}

/// `schedule` checks at start what each run will need: a scheduled policy
/// without recipients (and no --plaintext) is refused at once, not at its
/// first fire.
#[test]
fn schedule_checks_its_policies_at_start() {
    let dir = TempDir::new("schedule-start");
    crate::util::signing_key(dir.path());
    dir.write(
        "p.yaml",
        format!(
            "apiVersion: vigil/v1\nkind: ScanPolicy\nmetadata: {{name: s}}\nspec:\n  profiles: [container-baseline]\n  schedule: '0 3 * * *'\n  targets:\n    - {{rootfs: {}, name: d}}\n",
            repo().join("fixtures/demo/distroless.tar.gz").display()
        ),
    );
    let profiles = repo().join("policies/profiles");
    let r = crate::util::vigil_with_deadline(
        dir.path(),
        &[
            "schedule",
            "p.yaml",
            profiles.to_str().unwrap(),
            "--signing-key",
            "signer.key.pem",
        ],
        b"",
        20,
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("policy s") && r.stderr.contains("recipients"),
        "{}",
        r.stderr
    );
}

/// A report that exists is never overwritten silently: without --force the
/// error says how to go on, with it the report is replaced; a symlink in
/// its place is refused even with --force.
#[test]
fn reports_are_replaced_only_with_force() {
    let dir = TempDir::new("force");
    dir.write(
        "p.yaml",
        format!(
            "apiVersion: vigil/v1\nkind: ScanPolicy\nmetadata: {{name: f}}\nspec:\n  profiles: [container-baseline]\n  targets:\n    - {{rootfs: {}, name: d}}\n",
            repo().join("fixtures/demo/distroless.tar.gz").display()
        ),
    );
    let profiles = repo().join("policies/profiles");
    let run = |extra: &[&str]| {
        let mut a = vec![
            "run",
            "p.yaml",
            profiles.to_str().unwrap(),
            "--unsigned",
            "--plaintext",
            "--out",
            "out",
            "--report",
            "junit=r.xml",
        ];
        a.extend_from_slice(extra);
        vigil_in(dir.path(), &a)
    };
    assert_eq!(run(&[]).code, 0);
    let again = run(&[]);
    assert_eq!(again.code, 2, "{}", again.stderr);
    assert!(again.stderr.contains("--force"), "{}", again.stderr);
    std::fs::write(dir.path().join("r.xml"), "stale").unwrap();
    assert_eq!(run(&["--force"]).code, 0);
    let replaced = std::fs::read_to_string(dir.path().join("r.xml")).unwrap();
    assert!(replaced.starts_with("<?xml"), "replaced: {replaced:.40}");
    std::fs::remove_file(dir.path().join("r.xml")).unwrap();
    std::os::unix::fs::symlink("elsewhere.xml", dir.path().join("r.xml")).unwrap();
    let link = run(&["--force"]);
    assert_eq!(link.code, 2, "{}", link.stderr);
    assert!(!dir.path().join("elsewhere.xml").exists());
}

/// `vigil man --out DIR` writes a page for every command, and every page
/// a page refers to (`vigil-run(1)`) is among them; `vigil man run` prints
/// one.
#[test]
fn every_man_page_referred_to_exists() {
    let dir = TempDir::new("man");
    let r = vigil_in(dir.path(), &["man", "--out", "man"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let pages: std::collections::BTreeSet<String> = std::fs::read_dir(dir.path().join("man/man1"))
        .unwrap()
        .map(|e| {
            e.unwrap()
                .file_name()
                .to_string_lossy()
                .trim_end_matches(".1")
                .to_string()
        })
        .collect();
    assert!(pages.len() > 20, "{pages:?}");
    for page in &pages {
        let text = std::fs::read_to_string(dir.path().join(format!("man/man1/{page}.1"))).unwrap();
        let text = text.replace("\\-", "-");
        for (i, _) in text.match_indices("(1)") {
            let name: String = text[..i]
                .chars()
                .rev()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            if name.starts_with("vigil") {
                assert!(
                    pages.contains(&name),
                    "{page} refers to {name}(1), which is not written"
                );
            }
        }
    }
    let run = vigil_in(dir.path(), &["man", "run"]);
    assert!(run.stdout.contains(".TH vigil-run 1"), "{}", run.stdout);
    assert_eq!(vigil_in(dir.path(), &["man", "nope"]).code, 2);
}

/// One vocabulary: `run --help` does not offer `--run-id` (a run makes its
/// own, and refuses one), `import` prints the table `run` prints unless
/// asked for JSON, and the old spellings of renamed flags and values still
/// work (`--name`, `--format human`, `render … --image`).
#[test]
fn one_vocabulary_across_commands() {
    let dir = TempDir::new("vocabulary");
    let help = vigil_in(dir.path(), &["run", "--help"]);
    assert!(!help.stdout.contains("--run-id"), "{}", help.stdout);
    std::fs::copy(
        repo().join("fixtures/hdf/inspec-nginx-results.json"),
        dir.path().join("n.json"),
    )
    .unwrap();
    dir.write(
        "p.yaml",
        "apiVersion: vigil/v1\nkind: ScanPolicy\nmetadata: {name: v}\nspec:\n  profiles: [container-baseline]\n  targets:\n    - {namespace: web}\n",
    );
    let profiles = repo().join("policies/profiles");
    let import = |extra: &[&str]| {
        let mut a = vec![
            "import",
            "n.json",
            "--policy-file",
            "p.yaml",
            "--policy-file",
            profiles.to_str().unwrap(),
            "--unsigned",
            "--plaintext",
            "--out",
            "out",
        ];
        a.extend_from_slice(extra);
        vigil_in(dir.path(), &a)
    };
    let table = import(&[]);
    assert_eq!(table.code, 0, "{}", table.stderr);
    assert!(
        table.stdout.contains("TARGET") && table.stdout.contains("imported/n"),
        "{}",
        table.stdout
    );
    let json = import(&["--format", "json", "--name", "v"]);
    assert_eq!(json.code, 0, "{}", json.stderr);
    serde_json::from_str::<serde_json::Value>(&json.stdout).unwrap();
    let old = vigil_in(
        dir.path(),
        &[
            "validate",
            "p.yaml",
            profiles.to_str().unwrap(),
            "--format",
            "human",
        ],
    );
    assert_eq!(old.code, 0, "{}", old.stderr);
    let render = vigil_in(
        dir.path(),
        &[
            "render",
            "admission-policy",
            "p.yaml",
            profiles.to_str().unwrap(),
            "--image",
            "registry.example/vigil@sha256:1111111111111111111111111111111111111111111111111111111111111111",
        ],
    );
    assert_eq!(render.code, 0, "{}", render.stderr);
}
