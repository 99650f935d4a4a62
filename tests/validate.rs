//! `vigil validate`: shipped examples pass; every kind of bad input exits 2
//! with a diagnostic at the right line and column.

use crate::util::{TempDir, vigil, vigil_in};

/// Validate one file as JSON diagnostics; return (exit code, diagnostics).
fn diagnose(name: &str, contents: &[u8]) -> (i32, Vec<serde_json::Value>) {
    let dir = TempDir::new("validate");
    dir.write(name, contents);
    let run = vigil_in(dir.path(), &["validate", name, "--format", "json"]);
    let out: serde_json::Value = serde_json::from_str(&run.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\nstderr: {}",
            run.stdout, run.stderr
        )
    });
    (run.code, out["diagnostics"].as_array().unwrap().clone())
}

/// Assert exit 2 and a diagnostic with `code` at `line:column`.
fn assert_error_at(name: &str, contents: &[u8], code: &str, line: u64, column: u64) {
    let (exit, diags) = diagnose(name, contents);
    assert_eq!(exit, 2, "{diags:#?}");
    assert!(
        diags
            .iter()
            .any(|d| d["code"] == code && d["line"] == line && d["column"] == column),
        "expected {code} at {line}:{column}, got {diags:#?}"
    );
}

const HEAD: &str = "apiVersion: vigil/v1\nkind: ScanPolicy\nmetadata: {name: p}\n";

#[test]
fn shipped_examples_are_valid() {
    let run = vigil(&["validate", "policies/"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("valid"), "{}", run.stderr);
    let json = vigil(&["validate", "policies/", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v["valid"], true);
    assert_eq!(v["errors"], 0);
}

#[test]
fn yaml_syntax_error() {
    let text = format!("{HEAD}spec:\n  profiles: [a\n  targets: []\n");
    let (exit, diags) = diagnose("p.yaml", text.as_bytes());
    assert_eq!(exit, 2);
    assert_eq!(diags[0]["code"], "yaml-syntax");
    assert!(diags[0]["line"].as_u64().unwrap() >= 5, "{diags:#?}");
}

#[test]
fn alias_bomb() {
    let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..10 {
        let p = i - 1;
        text.push_str(&format!(
            "a{i}: &a{i} [{}]\n",
            vec![format!("*a{p}"); 10].join(", ")
        ));
    }
    let (exit, diags) = diagnose("bomb.yaml", text.as_bytes());
    assert_eq!(exit, 2);
    assert_eq!(diags[0]["code"], "yaml-syntax");
    assert!(diags[0]["line"].as_u64().unwrap() >= 2, "{diags:#?}");
}

#[test]
fn deeply_nested_document() {
    let text = format!("{HEAD}spec: {}{}\n", "[".repeat(500), "]".repeat(500));
    let (exit, diags) = diagnose("deep.yaml", text.as_bytes());
    assert_eq!(exit, 2);
    assert_eq!(diags[0]["code"], "yaml-syntax");
    assert_eq!(diags[0]["line"], 4, "{diags:#?}");
}

#[test]
fn file_over_size_cap() {
    let mut text = format!("{HEAD}# ");
    text.push_str(&"x".repeat(1024 * 1024 + 10));
    let (exit, diags) = diagnose("big.yaml", text.as_bytes());
    assert_eq!(exit, 2);
    assert_eq!(diags[0]["code"], "file-too-large");
}

#[test]
fn non_utf8_bytes() {
    let mut bytes = HEAD.as_bytes().to_vec();
    bytes.extend_from_slice(b"spec:\n  profiles: [caf\xe9]\n");
    assert_error_at("latin1.yaml", &bytes, "not-utf8", 5, 17);
}

#[test]
fn empty_files() {
    let (exit, diags) = diagnose("empty.yaml", b"");
    assert_eq!((exit, diags[0]["code"].as_str()), (2, Some("empty-file")));
    let (exit, diags) = diagnose("comments.yaml", b"# nothing here\n---\n");
    assert_eq!((exit, diags[0]["code"].as_str()), (2, Some("empty-file")));
}

#[test]
fn duplicate_keys() {
    let text =
        format!("{HEAD}spec:\n  profiles: [a]\n  targets: [{{rootfs: x}}]\n  profiles: [b]\n");
    assert_error_at("dup.yaml", text.as_bytes(), "yaml-syntax", 7, 3);
}

#[test]
fn unknown_field_with_suggestion() {
    let text = format!(
        "{HEAD}spec:\n  profiles: [a]\n  targets: [{{rootfs: x}}]\n  access:\n    tokenTtl: 15m\n"
    );
    assert_error_at("typo.yaml", text.as_bytes(), "unknown-field", 8, 5);
    let (_, diags) = diagnose("typo.yaml", text.as_bytes());
    let typo = diags
        .iter()
        .find(|d| d["code"] == "unknown-field")
        .expect("the unknown field");
    assert_eq!(typo["hint"], "did you mean `tokenTTL`?");
}

#[test]
fn wrong_type() {
    let text = format!(
        "{HEAD}spec:\n  profiles: [a]\n  targets: [{{rootfs: x}}]\n  limits:\n    concurrency: many\n"
    );
    assert_error_at("type.yaml", text.as_bytes(), "wrong-type", 8, 18);
}

#[test]
fn missing_required_field() {
    let text = format!("{HEAD}spec:\n  targets: [{{rootfs: x}}]\n");
    assert_error_at("missing.yaml", text.as_bytes(), "missing-field", 5, 3);
    let (_, diags) = diagnose("missing.yaml", text.as_bytes());
    let missing = diags
        .iter()
        .find(|d| d["code"] == "missing-field")
        .expect("the missing field");
    assert!(
        missing["message"].as_str().unwrap().contains("`profiles`"),
        "{diags:#?}"
    );
    // The checks that need a well-formed document did not run: said.
    assert!(
        diags.iter().any(|d| d["code"] == "checks-skipped"),
        "{diags:#?}"
    );
}

#[test]
fn unknown_kind_and_api_version() {
    assert_error_at(
        "k.yaml",
        b"apiVersion: vigil/v1\nkind: Scanpolicy\n",
        "unknown-kind",
        2,
        7,
    );
    assert_error_at(
        "v.yaml",
        b"apiVersion: vigil/v2\nkind: ScanPolicy\n",
        "unknown-api-version",
        1,
        13,
    );
}

#[test]
fn unreadable_paths() {
    let dir = TempDir::new("unreadable");
    let run = vigil_in(dir.path(), &["validate", "does-not-exist.yaml"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("read-failed") && run.stderr.contains("does-not-exist.yaml"),
        "{}",
        run.stderr
    );
    // A FIFO must be refused, not opened (opening would block forever).
    let fifo = dir.path().join("pipe.yaml");
    rustix::fs::mkfifoat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
    )
    .unwrap();
    let run = vigil_in(dir.path(), &["validate", "pipe.yaml"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("not a regular file"), "{}", run.stderr);
}

#[test]
fn directory_with_no_policies() {
    let dir = TempDir::new("nopolicies");
    dir.write("sub/readme.txt", "not yaml");
    let run = vigil_in(dir.path(), &["validate", "sub"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("no-policy-files"), "{}", run.stderr);
}

#[test]
fn semantic_findings_are_all_reported_with_positions() {
    let text = format!(
        "{HEAD}spec:\n  profiles: [base, nope]\n  targets:\n    - {{rootfs: x, approach: api}}\n  access: {{tokenTTL: 2h}}\n  schedule: \"61 * * * *\"\n  debug: {{image: reg/vigil:1.0}}\n  waivers:\n    - {{control: X-1, expires: \"2027-01-31T00:00:00\", justification: j, approver: a}}\n  threshold: {{failed.severe.max: 0}}\n  output: {{recipients: [age1nope]}}\n---\napiVersion: vigil/v1\nkind: Profile\nmetadata: {{name: base}}\ncontrols:\n  - {{id: X-1, title: t, check: {{process: \"(\"}}}}\n"
    );
    let (exit, diags) = diagnose("sem.yaml", text.as_bytes());
    assert_eq!(exit, 2);
    let got: Vec<(String, u64)> = diags
        .iter()
        .map(|d| {
            (
                d["code"].as_str().unwrap().to_string(),
                d["line"].as_u64().unwrap(),
            )
        })
        .collect();
    for (code, line) in [
        ("unresolved-profile", 5),
        ("approach-mismatch", 7),
        ("token-ttl-range", 8),
        ("invalid-cron", 9),
        ("unpinned-image", 10),
        ("invalid-waiver", 12),
        ("invalid-threshold", 13),
        ("invalid-recipient", 14),
        ("invalid-regex", 20),
    ] {
        assert!(
            got.contains(&(code.to_string(), line)),
            "missing {code} at line {line}: {got:?}"
        );
    }
}

/// Token settings a real API server would make fail mid-run: a scan that
/// can outlive its token, and audiences that leave out the API server's.
#[test]
fn token_settings_that_fail_on_a_real_cluster_are_warned() {
    let text = format!(
        "{HEAD}spec:\n  profiles: [base]\n  targets: [{{namespace: a}}]\n  access: {{tokenTTL: 10m, audiences: [https://kubernetes.default.svc]}}\n  limits: {{scanTimeout: 3m}}\n---\napiVersion: vigil/v1\nkind: Profile\nmetadata: {{name: base}}\ncontrols:\n  - {{id: X-1, title: t, check: {{file: /etc/passwd, expect: {{exists: true}}}}}}\n"
    );
    let (exit, diags) = diagnose("tok.yaml", text.as_bytes());
    assert_eq!(exit, 0, "warnings only: {diags:?}");
    let got: Vec<(&str, u64, &str)> = diags
        .iter()
        .map(|d| {
            (
                d["code"].as_str().unwrap(),
                d["line"].as_u64().unwrap(),
                d["severity"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert!(
        got.iter().any(|g| g.0 == "token-audience" && g.1 == 7),
        "{got:?}"
    );
    assert!(
        got.iter().any(|g| g.0 == "scan-outlives-token" && g.1 == 8),
        "{got:?}"
    );
    // At 2m (20% of 10m) a scan ends before its token: no warning.
    let (_, diags) = diagnose(
        "ok.yaml",
        text.replace("3m", "2m")
            .replace(", audiences: [https://kubernetes.default.svc]", "")
            .as_bytes(),
    );
    assert!(diags.is_empty(), "{diags:?}");
}

/// Each debug scan leaves an ephemeral container in its pod for good: a
/// schedule more often than daily with debug-capable targets is warned.
#[test]
fn frequent_debug_schedules_are_warned() {
    let policy = |schedule: &str, approach: &str| {
        format!(
            "{HEAD}spec:\n  profiles: [base]\n  targets: [{{namespace: a, approach: {approach}}}]\n  debug: {{image: \"registry.example/vigil@sha256:{}\"}}\n  schedule: \"{schedule}\"\n---\napiVersion: vigil/v1\nkind: Profile\nmetadata: {{name: base}}\ncontrols:\n  - {{id: X-1, title: t, check: {{file: /etc/passwd, expect: {{exists: true}}}}}}\n",
            "1".repeat(64)
        )
    };
    let codes = |text: String| -> Vec<String> {
        let (exit, diags) = diagnose("s.yaml", text.as_bytes());
        assert_eq!(exit, 0, "{diags:?}");
        diags
            .iter()
            .map(|d| d["code"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        codes(policy("0 * * * *", "auto")),
        ["ephemeral-accumulation"]
    );
    assert_eq!(
        codes(policy("*/15 * * * *", "debug")),
        ["ephemeral-accumulation"]
    );
    assert!(codes(policy("0 2 * * *", "debug")).is_empty());
    assert!(codes(policy("0 * * * *", "api")).is_empty());
}

#[test]
fn human_output_has_snippet_and_hint() {
    let dir = TempDir::new("human");
    dir.write(
        "p.yaml",
        format!("{HEAD}spec:\n  profiles: [a]\n  targets: [{{rootfs: x}}]\n  limitz: {{}}\n"),
    );
    let run = vigil_in(dir.path(), &["validate", "p.yaml"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("--> p.yaml:7:3"), "{}", run.stderr);
    assert!(run.stderr.contains("7 |   limitz: {}"), "{}", run.stderr);
    assert!(
        run.stderr.contains("hint: did you mean `limits`?"),
        "{}",
        run.stderr
    );
}

#[test]
fn help_explains_with_examples() {
    for args in [
        &["--help"][..],
        &["validate", "--help"],
        &["plan", "--help"],
        &["render", "rbac", "--help"],
    ] {
        let run = vigil(args);
        assert_eq!(run.code, 0, "{args:?}");
        assert!(run.stdout.contains("Examples:"), "{args:?}: {}", run.stdout);
    }
    assert_eq!(
        vigil(&["validate"]).code,
        2,
        "missing argument is a usage error"
    );
}

#[test]
fn secrets_pasted_into_a_policy_never_reach_the_output() {
    let jwt = "eyJhbGciOiJSUzI1NiIsImtpZCI6IngifQ.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQifQ.c2lnbmF0dXJl";
    let dir = TempDir::new("redact");
    dir.write(
        "p.yaml",
        format!("{HEAD}spec:\n  profiles: [a]\n  targets: [{{rootfs: x}}]\n  output:\n    recipients: [\"{jwt}\", \"AGE-SECRET-KEY-1QQPXYZ\"]\n"),
    );
    let run = vigil_in(dir.path(), &["validate", "p.yaml"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("invalid-recipient"), "{}", run.stderr);
    assert!(
        !run.stderr.contains(jwt) && !run.stderr.contains("AGE-SECRET-KEY-1QQPXYZ"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("<redacted jwt>"), "{}", run.stderr);
}

/// Shell completions and the man page come from the same definitions as
/// `--help`: every shell's script names the subcommands, bash's parses,
/// and the man page is roff that names them too.
#[test]
fn completions_and_man_page_are_generated() {
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let r = vigil(&["completions", shell]);
        assert_eq!(r.code, 0, "{shell}: {}", r.stderr);
        for sub in ["validate", "verify", "render", "schedule"] {
            assert!(r.stdout.contains(sub), "{shell}: {sub}");
        }
        if shell == "bash" {
            let dir = crate::util::TempDir::new("completions");
            let f = dir.write("vigil.bash", &r.stdout);
            let ok = std::process::Command::new("bash")
                .arg("-n")
                .arg(&f)
                .status()
                .unwrap();
            assert!(ok.success(), "bash -n rejects the completions");
        }
    }
    let man = vigil(&["man"]);
    assert_eq!(man.code, 0, "{}", man.stderr);
    assert!(
        man.stdout.contains(".TH vigil 1") && man.stdout.contains("verify"),
        "{}",
        &man.stdout[..200]
    );
    assert_eq!(
        vigil(&["completions", "tcsh"]).code,
        2,
        "unknown shells are usage errors"
    );
}

/// `schemas/vigil.schema.json` validates any vigil document, choosing by
/// `kind` (what editors use for files holding both): every example in
/// `policies/` passes, and broken documents of either kind do not.
#[test]
fn one_schema_validates_any_vigil_document() {
    let load = |f: &str| -> serde_json::Value {
        serde_json::from_str(
            &std::fs::read_to_string(crate::util::repo().join("schemas").join(f)).unwrap(),
        )
        .unwrap()
    };
    let registry = jsonschema::Registry::new()
        .add(
            "https://vigil.dev/schemas/v1/policy.schema.json",
            load("policy.schema.json"),
        )
        .unwrap()
        .add(
            "https://vigil.dev/schemas/v1/profile.schema.json",
            load("profile.schema.json"),
        )
        .unwrap()
        .prepare()
        .unwrap();
    let v = jsonschema::options()
        .with_registry(&registry)
        .build(&load("vigil.schema.json"))
        .unwrap();
    let mut files = vec![];
    for dir in ["policies", "policies/profiles"] {
        for e in std::fs::read_dir(crate::util::repo().join(dir)).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "yaml") {
                files.push(p);
            }
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    for f in &files {
        for doc in
            serde_saphyr::from_multiple::<serde_json::Value>(&std::fs::read_to_string(f).unwrap())
                .unwrap()
        {
            if doc.is_null() {
                continue;
            }
            let errors: Vec<String> = v.iter_errors(&doc).map(|e| e.to_string()).collect();
            assert!(errors.is_empty(), "{f:?}: {errors:?}");
            seen.insert(doc["kind"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(
        seen,
        ["Profile", "ScanPolicy"].map(String::from).into(),
        "both kinds checked"
    );
    for bad in [
        serde_json::json!({"apiVersion": "vigil/v1", "kind": "Profile", "metadata": {"name": "p"}, "controls": [], "spec": {}}),
        serde_json::json!({"apiVersion": "vigil/v1", "kind": "ScanPolicy", "metadata": {"name": "p"}, "spec": {"profiles": ["x"], "targets": [], "threshold": {"compliance": {"min": 120}}}}),
        serde_json::json!({"apiVersion": "vigil/v1", "metadata": {"name": "p"}}),
        serde_json::json!({"apiVersion": "vigil/v1", "kind": "Policy"}),
    ] {
        assert!(!v.is_valid(&bad), "{bad}");
    }
}

/// Every `--help` example is a whole line, pasteable as written (clap wraps
/// long lines mid-command, so none may be longer than it wraps), and every
/// example runs as written in a copy of the repository, `results/P/RUN_ID`
/// being a real bundle of policy P, `SHARD_k` the demo policy's shard k and
/// `MERGED_RUN` what the merge before wrote: exit 0, or 1 where a run's
/// threshold fails. `vigil gc` runs against the test API server (under
/// the context names the examples use); the schedule daemon runs until it
/// says what it scheduled and then stops on SIGTERM with exit 0; a `|
/// kubectl …` tail is cut; output for system paths goes to a file; `'{...}'`
/// is a real fact request. Left out, each with its reason: `kubectl patch`
/// (a Deployment to patch) and `probe --container-id` (a container
/// runtime's cgroups; its fact collection is the `--pid` path, tested).
#[test]
fn help_examples_are_whole_lines_and_run_as_written() {
    let help = |args: &[&str]| vigil(&[args, &["--help"][..]].concat()).stdout;
    let commands = |text: &str| -> Vec<String> {
        text.lines()
            .skip_while(|l| !l.starts_with("Commands:"))
            .skip(1)
            .take_while(|l| l.starts_with("  "))
            .map(|l| l.split_whitespace().next().unwrap().to_string())
            .filter(|c| c != "help")
            .collect()
    };
    let mut paths: Vec<Vec<String>> = vec![vec![]];
    for c in commands(&help(&[])) {
        paths.push(vec![c.clone()]);
        for sub in commands(&help(&[&c])) {
            paths.push(vec![c.clone(), sub]);
        }
    }
    assert!(paths.len() > 20, "{paths:?}");
    let mut examples: Vec<(String, Vec<String>)> = Vec::new();
    for p in &paths {
        let args: Vec<&str> = p.iter().map(String::as_str).collect();
        let text = help(&args);
        let mut block = Vec::new();
        let mut inside = false;
        for line in text.lines() {
            if line.starts_with("Example") {
                inside = true;
                continue;
            }
            if inside && line.trim().is_empty() {
                break;
            }
            if inside {
                let body = line
                    .strip_prefix("  ")
                    .unwrap_or_else(|| panic!("{p:?}: {line:?}"));
                let whole = ["vigil ", "kubectl ", "# "]
                    .iter()
                    .any(|s| body.starts_with(s))
                    || body.split_once('=').is_some_and(|(k, _)| {
                        !k.is_empty() && k.chars().all(|c| c.is_ascii_uppercase() || c == '_')
                    });
                assert!(
                    whole && !body.ends_with('\\'),
                    "{p:?}: an example wrapped mid-command: {line:?}"
                );
                block.push(body.to_string());
            }
        }
        examples.push((p.join(" "), block));
    }
    // A copy of the repository's policies and fixtures, with the files the
    // examples name.
    let (dir, path) = docs_sandbox("help-examples");
    std::fs::set_permissions(
        dir.path().join("fixtures/keys/demo-signing.key.pem"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    std::fs::copy(
        dir.path().join("fixtures/cluster/snapshot.json"),
        dir.path().join("snapshot.json"),
    )
    .unwrap();
    std::fs::copy(
        dir.path().join("fixtures/hdf/inspec-nginx-results.json"),
        dir.path().join("report.json"),
    )
    .unwrap();
    dir.write("threshold.yml", "compliance: {min: 50}\n");
    dir.write("request.json", r#"{"nonce":"n1","max_file_bytes":4096,"stat":["/etc/passwd"],"read":[],"read_dirs":[],"walks":[],"processes":false,"commands":[]}"#);
    assert_eq!(
        vigil_in(dir.path(), &["keygen", "signing", "--out", "signer"]).code,
        0
    );
    // Bundles for `results/<policy>/RUN_ID`: a demo run and an import.
    let made = |args: &[&str]| {
        let out = vigil_in(dir.path(), args);
        assert!(matches!(out.code, 0 | 1), "{args:?}: {}", out.stderr);
    };
    made(&[
        "run",
        "policies/demo.yaml",
        "policies/profiles/",
        "--out",
        "made",
    ]);
    made(&[
        "import",
        "report.json",
        "--policy-file",
        "policies/payments.yaml",
        "--policy-file",
        "policies/profiles/",
        "--signing-key",
        "signer.key.pem",
        "--out",
        "made",
    ]);
    // Shard bundles for `SHARD_k`: the demo policy in two shards.
    let mut shard_bundles = Vec::new();
    for k in 0..2 {
        let before: Vec<_> = std::fs::read_dir(dir.path().join("made-shards/demo"))
            .into_iter()
            .flatten()
            .map(|e| e.unwrap().file_name())
            .collect();
        let shard = format!("{k}/2");
        made(&[
            "run",
            "policies/demo.yaml",
            "policies/profiles/",
            "--shard",
            &shard,
            "--out",
            "made-shards",
        ]);
        let new: Vec<_> = std::fs::read_dir(dir.path().join("made-shards/demo"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| !before.contains(n))
            .collect();
        assert_eq!(new.len(), 1, "shard {shard}: {new:?}");
        shard_bundles.push(format!("made-shards/demo/{}", new[0].to_string_lossy()));
    }
    // A cluster for `vigil gc`, reachable under the contexts the examples
    // name.
    let server = crate::fakeapi::FakeApiServer::start(dir.path(), vec![], Default::default());
    let kubeconfig = dir.write(
        "gc-kubeconfig",
        std::fs::read_to_string(&server.kubeconfig)
            .unwrap()
            .replace(
                "contexts:\n",
                "contexts:\n- name: prod-eu\n  context:\n    cluster: fake\n    user: admin\n",
            ),
    );
    // What cannot run here, and why.
    let skip = |l: &str| -> Option<&str> {
        if ["RUN_DIR", "BUNDLE", "4f1c2a9be0d3...", "IMAGE_BUNDLE"]
            .iter()
            .any(|p| l.contains(p))
        {
            Some("names a placeholder")
        } else if l.starts_with("kubectl") {
            Some("needs a cluster with Deployments")
        } else if l.contains("--container-id") {
            Some("needs a container runtime's cgroups")
        } else if l.starts_with("vigil verify-image") && !l.contains("--signature") {
            Some("contacts the image's registry (tests/registry.rs runs one)")
        } else if l.contains("--audit-log") {
            Some("needs a cluster run and its API server's audit log (docs/monitoring.md runs one)")
        } else {
            None
        }
    };
    let (mut ran, mut with_bundle) = (0, 0);
    let mut seen = std::collections::BTreeSet::new();
    for (cmd, block) in &examples {
        let mut vars = String::new();
        for line in block {
            if line.starts_with('#') {
                continue;
            }
            if !line.starts_with("vigil ") {
                vars.push_str(line);
                vars.push('\n');
                continue;
            }
            if skip(line).is_some() || !seen.insert(line.clone()) {
                continue;
            }
            // Outputs the examples write go to fresh names.
            for f in [
                "keys",
                "results",
                "hdf",
                "rbac.yaml",
                "gather.sh",
                "patch.yaml",
                "kustomize-patch.yaml",
            ] {
                // ... but for the merged bundle the line before wrote.
                if f == "results" && line.contains("MERGED_RUN") {
                    continue;
                }
                let _ = std::fs::remove_dir_all(dir.path().join(f));
                let _ = std::fs::remove_file(dir.path().join(f));
            }
            // `results/<policy>/RUN_ID`: that policy's bundle, put back;
            // `SHARD_k`: shard k; `MERGED_RUN`: what the merge wrote.
            let mut line = line.clone();
            for (k, b) in shard_bundles.iter().enumerate() {
                line = line.replace(&format!("SHARD_{k}"), b);
            }
            if let Some((head, _)) = line.split_once("/MERGED_RUN") {
                let bundles = dir.path().join(head.rsplit(' ').next().unwrap());
                let mut runs = std::fs::read_dir(&bundles)
                    .unwrap_or_else(|e| panic!("`{line}`: no merged bundle: {e}"));
                let run = runs.next().unwrap().unwrap().file_name();
                assert!(
                    runs.next().is_none(),
                    "`{line}`: more than the merged bundle"
                );
                line = line.replace("MERGED_RUN", &run.to_string_lossy());
                with_bundle += 1;
            }
            if let Some((head, _)) = line.split_once("/RUN_ID") {
                let policy = head.rsplit('/').next().unwrap();
                let run = std::fs::read_dir(dir.path().join("made").join(policy))
                    .unwrap_or_else(|e| panic!("`{line}`: no {policy} bundle: {e}"))
                    .next()
                    .unwrap()
                    .unwrap()
                    .file_name()
                    .into_string()
                    .unwrap();
                std::fs::create_dir_all(dir.path().join("results")).unwrap();
                let ok = std::process::Command::new("cp")
                    .arg("-a")
                    .arg(dir.path().join("made").join(policy))
                    .arg(dir.path().join("results"))
                    .status()
                    .unwrap();
                assert!(ok.success());
                line = line.replace("RUN_ID", &run);
                with_bundle += 1;
            }
            if line.starts_with("vigil schedule ") && !line.contains("--list") {
                let (code, stderr) = run_daemon(&line, dir.path(), &path);
                assert_eq!(
                    code,
                    Some(0),
                    "`vigil {cmd} --help` example `{line}` as a daemon:\n{stderr}"
                );
                ran += 1;
                continue;
            }
            // `'{...}'` stands for a fact request. `--pid 1` is the in-pod
            // form; where this machine's PID 1 is not readable (the
            // kernel's ptrace check: it may hold capabilities we lack), the
            // shell's own process stands in for it.
            let mut line = line.replace("'{...}'", "\"$(cat request.json)\"");
            // `… | kubectl apply -f -` runs its vigil part; output meant for
            // system paths goes to a file here, and `man` reads the page
            // only where it is installed.
            if let Some(i) = line.find("| kubectl") {
                line = line[..i].trim().to_string();
            }
            if let Some((head, target)) = line.split_once(" > ")
                && ["/etc/", "~/", "\"${"]
                    .iter()
                    .any(|p| target.starts_with(p))
            {
                line = format!("{head} > system-path.out");
            }
            if line.contains("&& man ")
                && !std::process::Command::new("sh")
                    .args(["-c", "command -v man"])
                    .status()
                    .is_ok_and(|s| s.success())
            {
                line = line.split(" && man ").next().unwrap().to_string();
            }
            if line.contains("--pid 1 ") && std::fs::read_dir("/proc/1/root").is_err() {
                line = line.replace("--pid 1 ", "--pid $$ ");
            }
            let mut command = std::process::Command::new("sh");
            command
                .args(["-c", &format!("{vars}{line}")])
                .current_dir(dir.path())
                .env("PATH", &path)
                .env_remove("KUBECONFIG");
            // gc talks to a cluster: the test API server, under the
            // context names the examples use.
            if line.starts_with("vigil gc") {
                command.env("KUBECONFIG", &kubeconfig);
            }
            let out = command.output().unwrap();
            let code = out.status.code();
            // Only a run's threshold may fail (exit 1).
            let threshold = line.starts_with("vigil run ") && code == Some(1);
            assert!(
                code == Some(0) || threshold,
                "`vigil {cmd} --help` example `{line}` exits {code:?}:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            ran += 1;
        }
    }
    assert!(ran >= 20, "only {ran} examples ran");
    assert_eq!(with_bundle, 7, "examples run on a bundle");
}

/// The commands in the README and in `docs/*.md` run as written, in a copy
/// of the repository (`cargo run --release --` standing for the built
/// `vigil`), each exiting 0 (or 1 where a run's threshold fails); those
/// that need a cluster run against the test API server, serving the
/// snapshot's pods over busybox fixture roots. `RUN_ID` is the bundle the
/// last command wrote, `SHARD_k` the bundle of `--shard k/n` (the shards a
/// comment names run too), so verify, open and merge run on real bundles.
/// The schedule daemon runs until it says what it scheduled, then stops
/// on SIGTERM with exit 0; `kubectl` lines run against the test API server
/// (a `| kubectl apply` tail is cut and the vigil part runs: the test
/// server serves no CronJobs or Jobs). Left out, each for its reason:
/// `cargo test` (this suite), Docker, kind and `scripts/e2e-kind.sh` (a
/// real cluster).
#[test]
fn documented_commands_run_as_written() {
    use std::collections::HashMap;
    if !crate::util::root_and_busybox() {
        return;
    }
    let (dir, path) = docs_sandbox("documented");
    // The test API server: the snapshot's pods, over a busybox root each.
    let fx = crate::util::rootfs_fixtures();
    let root = fx.path().join("rootfs/alpine");
    crate::util::install_busybox(&root);
    let snapshot: serde_json::Value = serde_json::from_slice(
        &std::fs::read(crate::util::repo().join("fixtures/cluster/snapshot.json")).unwrap(),
    )
    .unwrap();
    let pods: Vec<serde_json::Value> = snapshot["items"].as_array().unwrap().clone();
    let roots: HashMap<(String, String), std::path::PathBuf> = pods
        .iter()
        .map(|p| {
            let m = &p["metadata"];
            (
                (
                    m["namespace"].as_str().unwrap().to_string(),
                    m["name"].as_str().unwrap().to_string(),
                ),
                root.clone(),
            )
        })
        .collect();
    let server = crate::fakeapi::FakeApiServer::start(dir.path(), pods, roots);
    server.set_probe_binary(std::path::Path::new(env!("CARGO_BIN_EXE_vigil")));
    // Its audit log, at the levels `vigil render audit-policy` asks for
    // (docs/monitoring.md checks a run against it).
    let policy = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["render", "audit-policy"])
        .output()
        .unwrap();
    server.set_audit_policy(
        serde_saphyr::from_str(&String::from_utf8(policy.stdout).unwrap()).unwrap(),
    );
    let mut docs = vec![crate::util::repo().join("README.md")];
    let mut more: Vec<_> = std::fs::read_dir(crate::util::repo().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    more.sort();
    docs.extend(more);
    let kubectl = std::process::Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        kubectl || std::env::var_os("VIGIL_REQUIRE_KUBECTL").is_none(),
        "kubectl is required here"
    );
    let mut ran = 0;
    let (mut bundles, mut shards) = (Vec::<String>::new(), Vec::<String>::new());
    for doc in &docs {
        let text = std::fs::read_to_string(doc).unwrap();
        let mut in_block = false;
        let mut vars = String::new();
        let mut pending = String::new();
        for line in text.lines() {
            if line.starts_with("```") {
                in_block = line == "```sh";
                vars.clear();
                continue;
            }
            if !in_block {
                continue;
            }
            // Join continuation lines into one command.
            if let Some(head) = line.strip_suffix('\\') {
                pending.push_str(head);
                continue;
            }
            let whole = format!("{pending}{line}");
            pending.clear();
            let l = whole.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            // Each line runs on its own here, but a reader pastes the
            // block whole: a bare `cd` would move every line after it.
            assert!(
                !l.starts_with("cd "),
                "{doc:?}: `{l}` changes directory for the rest of the block when it is pasted whole; write (cd DIR && …)"
            );
            let mut l = l.replace("cargo run --release -- ", "vigil ");
            if let Some(i) = l.find("| kubectl") {
                l = l[..i].trim().to_string();
            }
            // kubectl runs against the test API server where it is
            // installed; a kind cluster's lines need kind.
            let skip = l.contains("cargo test")
                || [
                    "docker ",
                    "kind ",
                    "kubectl --context kind-",
                    "scripts/e2e-kind.sh",
                    "KEEP=1 scripts/e2e-kind.sh",
                ]
                .iter()
                .any(|t| l.starts_with(t))
                || (l.starts_with("kubectl ") && !kubectl);
            if skip {
                continue;
            }
            // Placeholders name bundles the commands before wrote: RUN_ID
            // the newest, SHARD_k the bundle of `--shard k/n`.
            if l.contains("RUN_ID") {
                let run = bundles
                    .last()
                    .expect("RUN_ID before any bundle was written");
                l = l.replace("RUN_ID", run.rsplit('/').next().unwrap());
            }
            for (k, b) in shards.iter().enumerate() {
                l = l.replace(&format!("SHARD_{k}"), b);
            }
            assert!(
                !l.contains("SHARD_"),
                "{doc:?}: `{l}` names a shard no documented command wrote"
            );
            // `--shard 0/n … # … 1/n, 2/n` documents the other shards'
            // commands in its comment: they run too.
            let mut commands = vec![l.clone()];
            if let Some((_, n)) = l.split_once("--shard 0/") {
                let n: usize = n.split_whitespace().next().unwrap().parse().unwrap();
                let (cmd, comment) = l.split_once('#').unwrap_or((&l, ""));
                for k in 1..n {
                    assert!(comment.contains(&format!("{k}/{n}")), "{doc:?}: `{l}`");
                    commands.push(cmd.replace("--shard 0/", &format!("--shard {k}/")));
                }
            }
            if l.split_once('=')
                .is_some_and(|(k, _)| k.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
            {
                vars.push_str(&l);
                vars.push('\n');
                continue;
            }
            if l.starts_with("vigil schedule") && !l.contains("--list") {
                let (code, stderr) = run_daemon(&l, dir.path(), &path);
                assert_eq!(code, Some(0), "{doc:?}: `{l}` as a daemon:\n{stderr}");
                ran += 1;
                continue;
            }
            for l in &commands {
                // `--audit-log audit.log`: the API server's log so far.
                if l.contains("--audit-log audit.log") {
                    std::fs::write(dir.path().join("audit.log"), server.audit_log()).unwrap();
                }
                let before = bundle_dirs(dir.path());
                let out = std::process::Command::new("sh")
                    .args(["-c", &format!("{vars}{l}")])
                    .current_dir(dir.path())
                    .env("PATH", &path)
                    .env("KUBECONFIG", &server.kubeconfig)
                    .output()
                    .unwrap();
                let code = out.status.code();
                for new in bundle_dirs(dir.path()).difference(&before) {
                    if l.contains("--shard ") {
                        shards.push(new.clone());
                    }
                    bundles.push(new.clone());
                }
                if l.starts_with("age -d") {
                    // A pipe's status is its last command's: check what came out.
                    assert!(
                        out.stdout.starts_with(b"{\""),
                        "{doc:?}: `{l}` printed no decrypted HDF"
                    );
                }
                // Only a run's threshold may fail (exit 1); anything else
                // is the documented command not doing what it says.
                let threshold = l.contains("vigil run ") && code == Some(1);
                assert!(
                    code == Some(0) || threshold,
                    "{doc:?}: `{l}` exits {code:?}:\n{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                ran += 1;
            }
        }
    }
    assert!(ran >= 15, "only {ran} documented commands ran");
    assert_eq!(shards.len(), 4, "the sharded run wrote {shards:?}");
}

/// Run a documented daemon (`vigil schedule` without `--list`) as written:
/// it must say it is scheduling (a `next run` line), then stop cleanly
/// (exit 0) on SIGTERM, as a service manager would stop it. A watchdog
/// kills it if it never gets there.
fn run_daemon(line: &str, dir: &std::path::Path, path: &str) -> (Option<i32>, String) {
    use std::io::BufRead;
    let mut child = std::process::Command::new("sh")
        .args(["-c", &format!("exec {line}")])
        .current_dir(dir)
        .env("PATH", path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watchdog = {
        let done = done.clone();
        std::thread::spawn(move || {
            for _ in 0..600 {
                if done.load(std::sync::atomic::Ordering::Relaxed) {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        })
    };
    let mut stderr = String::new();
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    for l in lines.by_ref() {
        let l = l.unwrap_or_default();
        stderr.push_str(&l);
        stderr.push('\n');
        if l.contains(": next run ") {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
            break;
        }
    }
    for l in lines {
        stderr.push_str(&l.unwrap_or_default());
        stderr.push('\n');
    }
    let code = child.wait().unwrap().code();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    watchdog.join().unwrap();
    (code, stderr)
}

/// The sealed bundles under `results/<policy>/<run>` in `dir`, as paths
/// relative to it.
fn bundle_dirs(dir: &std::path::Path) -> std::collections::BTreeSet<String> {
    let mut found = std::collections::BTreeSet::new();
    for policy in std::fs::read_dir(dir.join("results")).into_iter().flatten() {
        let policy = policy.unwrap();
        for run in std::fs::read_dir(policy.path()).into_iter().flatten() {
            let run = run.unwrap();
            let name = run.file_name().to_string_lossy().into_owned();
            if !name.starts_with('.') {
                found.insert(format!(
                    "results/{}/{name}",
                    policy.file_name().to_string_lossy()
                ));
            }
        }
    }
    found
}

/// A copy of the repository's policies, fixtures and schemas to run
/// documented commands in as written, and a PATH where `vigil` is the
/// binary under test.
fn docs_sandbox(name: &str) -> (crate::util::TempDir, String) {
    let dir = crate::util::TempDir::new(name);
    for d in [
        "policies",
        "fixtures",
        "schemas",
        "scripts",
        "examples",
        "Cargo.toml",
    ] {
        let ok = std::process::Command::new("cp")
            .arg("-a")
            .arg(crate::util::repo().join(d))
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(ok.success());
    }
    let bin_dir = std::path::Path::new(env!("CARGO_BIN_EXE_vigil"))
        .parent()
        .unwrap()
        .to_path_buf();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    (dir, path)
}

/// The real-cluster harness and its workflow are well-formed: `bash -n`
/// always; shellcheck, and action-validator (the GitHub Actions schema;
/// `VIGIL_ACTION_VALIDATOR`), where installed — CI installs both. The
/// validator must also refuse a broken workflow, so it is not a no-op.
#[test]
fn the_real_cluster_harness_is_well_formed() {
    let script = crate::util::repo().join("scripts/e2e-kind.sh");
    let workflow = crate::util::repo().join(".github/workflows/e2e-kind.yml");
    let ok = std::process::Command::new("bash")
        .arg("-n")
        .arg(&script)
        .status()
        .unwrap();
    assert!(ok.success(), "bash -n {script:?}");
    let validator = std::env::var("VIGIL_ACTION_VALIDATOR").unwrap_or("action-validator".into());
    let dir = crate::util::TempDir::new("workflow");
    let broken = dir.write(
        "broken.yml",
        "on: push\njobs:\n  e2e:\n    runs-on: [1, 2]\n    steps: nope\n",
    );
    if let Ok(out) = std::process::Command::new(&validator).arg(&broken).output() {
        assert!(
            !out.status.success(),
            "{validator} accepted a broken workflow"
        );
    }
    for (tool, file) in [("shellcheck", &script), (validator.as_str(), &workflow)] {
        match std::process::Command::new(tool).arg(file).output() {
            Ok(out) => assert!(
                out.status.success(),
                "{tool} {file:?}:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(_) => {
                crate::util::prerequisite(false, tool);
            }
        }
    }
}

/// docs/ci.md's admission examples require what `vigil attest` writes: the
/// in-toto Test Result predicate, a `PASSED` result, and the key that
/// signs the verdicts (the demo key the documented flow uses).
#[test]
fn the_documented_admission_policies_require_vigils_verdict() {
    let text = std::fs::read_to_string(crate::util::repo().join("docs/ci.md")).unwrap();
    let blocks: Vec<serde_json::Value> = text
        .split("```yaml\n")
        .skip(1)
        .map(|b| serde_saphyr::from_str(b.split("```").next().unwrap()).unwrap())
        .collect();
    let key =
        std::fs::read_to_string(crate::util::repo().join("fixtures/keys/demo-signing.pub.pem"))
            .unwrap();
    let kyverno = blocks
        .iter()
        .find(|b| b["kind"] == "ClusterPolicy")
        .expect("a Kyverno ClusterPolicy");
    let rule = &kyverno["spec"]["rules"][0]["verifyImages"][0]["attestations"][0];
    assert_eq!(
        rule["type"],
        "https://in-toto.io/attestation/test-result/v0.1"
    );
    assert_eq!(rule["conditions"][0]["all"][0]["value"], "PASSED");
    let kyverno_key = rule["attestors"][0]["entries"][0]["keys"]["publicKeys"]
        .as_str()
        .unwrap();
    assert_eq!(kyverno_key.trim(), key.trim());
    let sigstore = blocks
        .iter()
        .find(|b| b["kind"] == "ClusterImagePolicy")
        .expect("a policy-controller ClusterImagePolicy");
    let authority = &sigstore["spec"]["authorities"][0];
    assert_eq!(
        authority["key"]["data"].as_str().unwrap().trim(),
        key.trim()
    );
    let att = &authority["attestations"][0];
    assert_eq!(
        att["predicateType"],
        "https://in-toto.io/attestation/test-result/v0.1"
    );
    assert!(
        att["policy"]["data"]
            .as_str()
            .unwrap()
            .contains("result: \"PASSED\"")
    );
}

/// docs/ci.md's Kyverno ClusterPolicy is one Kyverno's own schema accepts:
/// the CRD's types and enums (cloudcoil's models generated from Kyverno
/// 1.13's CRDs) and no field the CRD lacks (tests/interop/kyverno-check.py).
/// The check refuses a misspelt field and an operator Kyverno lacks.
#[test]
fn the_documented_kyverno_policy_passes_kyvernos_schema() {
    let python = std::env::var_os("VIGIL_KYVERNO_PYTHON")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| crate::util::repo().join("target/interop/kyverno-venv/bin/python"));
    if !crate::util::prerequisite(
        python.is_file(),
        &format!(
            "cloudcoil-models-kyverno's python at {} (.ci/run installs it)",
            python.display()
        ),
    ) {
        return;
    }
    let text = std::fs::read_to_string(crate::util::repo().join("docs/ci.md")).unwrap();
    let policy = text
        .split("```yaml\n")
        .skip(1)
        .map(|b| b.split("```").next().unwrap())
        .find(|b| b.contains("kind: ClusterPolicy\n"))
        .expect("a Kyverno ClusterPolicy in docs/ci.md");
    let dir = crate::util::TempDir::new("kyverno");
    let check = |name: &str, yaml: &str| {
        dir.write(name, yaml);
        std::process::Command::new(&python)
            .arg(crate::util::repo().join("tests/interop/kyverno-check.py"))
            .arg(name)
            .current_dir(dir.path())
            .output()
            .unwrap()
    };
    let out = check("policy.yaml", policy);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (what, from, to) in [
        ("a misspelt field", "attestors:", "atestors:"),
        (
            "an unknown operator",
            "operator: Equals",
            "operator: Equalz",
        ),
    ] {
        assert!(policy.contains(from));
        let out = check("bad.yaml", &policy.replace(from, to));
        assert!(!out.status.success(), "the check took {what}");
    }
}
