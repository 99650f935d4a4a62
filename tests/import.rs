//! `vigil import`: HDF produced elsewhere, sealed and signed so that
//! offline verification covers it.

use serde_json::Value;

use crate::util::{TempDir, repo, statement_payload, vigil_in};

fn setup() -> (TempDir, std::path::PathBuf) {
    let dir = TempDir::new("import");
    crate::util::signing_key(dir.path());
    let age = vigil_in(dir.path(), &["keygen", "age", "--out", "reader"]);
    assert_eq!(age.code, 0, "{}", age.stderr);
    let recipient = age.stdout.trim().to_string();
    dir.write(
        "p.yaml",
        format!("apiVersion: vigil/v1\nkind: ScanPolicy\nmetadata: {{name: nginx}}\nspec:\n  profiles: [container-baseline]\n  targets:\n    - {{namespace: web}}\n  threshold: {{compliance: {{min: 90}}, failed: {{critical: {{max: 0}}}}}}\n  output: {{recipients: [\"{recipient}\"]}}\n"),
    );
    let sample = dir.path().join("nginx.json");
    std::fs::copy(
        repo().join("fixtures/hdf/inspec-nginx-results.json"),
        &sample,
    )
    .unwrap();
    (dir, sample)
}

fn import(dir: &TempDir, extra: &[&str]) -> crate::util::Run {
    let profiles = repo().join("policies/profiles");
    let mut args = vec![
        "import",
        "nginx.json",
        "--policy-file",
        "p.yaml",
        "--policy-file",
        profiles.to_str().unwrap(),
        "--out",
        "out",
        "--signing-key",
        "signer.key.pem",
        "--source",
        "https://ci.example/job/42",
        "--by",
        "alice",
        "--format",
        "json",
    ];
    args.extend_from_slice(extra);
    vigil_in(dir.path(), &args)
}

#[test]
fn an_imported_report_is_sealed_signed_and_verifies() {
    let (dir, _) = setup();
    let run = import(&dir, &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let summary: Value = serde_json::from_str(&run.stdout).unwrap();
    let t = &summary["targets"][0];
    assert_eq!(t["id"], "imported/nginx");
    assert_eq!(t["approach"], "imported");
    // The sample's own counts (Heimdall rules; the interop test checks them against inspecjs).
    assert_eq!(t["counts"]["passed"], 37);
    assert_eq!(t["counts"]["failed"], 0);
    assert_eq!(t["counts"]["skipped"], 3);
    assert_eq!(t["counts"]["no_impact"], 1);
    assert_eq!(t["compliance"], 93);
    assert_eq!(t["threshold"]["passed"], true);
    let bundle = dir
        .path()
        .join("out/nginx")
        .join(summary["run_id"].as_str().unwrap());
    let st = statement_payload(&bundle);
    let imported = &st["predicate"]["imported"];
    assert!(
        imported["by"]
            .as_str()
            .unwrap()
            .starts_with("alice (SHA256:"),
        "{imported}"
    );
    assert_eq!(imported["source"], "https://ci.example/job/42");
    assert!(
        imported["files"][0]
            .as_str()
            .unwrap()
            .ends_with("nginx.json")
    );
    assert_eq!(st["predicate"]["targets"][0]["approach"], "imported");
    // Encrypted for the reader; verify with the identity rechecks the counts.
    let verify = vigil_in(
        dir.path(),
        &[
            "verify",
            bundle.to_str().unwrap(),
            "--trusted-key",
            "signer.pub.pem",
            "--identity",
            "reader.key",
        ],
    );
    assert_eq!(verify.code, 0, "{}{}", verify.stdout, verify.stderr);
    // The report inside is the one imported, byte for byte.
    let out = dir.path().join("opened");
    let open = vigil_in(
        dir.path(),
        &[
            "open",
            bundle.to_str().unwrap(),
            "--identity",
            "reader.key",
            "--trusted-key",
            "signer.pub.pem",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(open.code, 0, "{}", open.stderr);
    let opened: Vec<_> = crate::util::files_under(&out);
    let original = std::fs::read(dir.path().join("nginx.json")).unwrap();
    assert!(
        opened.iter().any(|p| std::fs::read(p).unwrap() == original),
        "{opened:?}"
    );
}

#[test]
fn a_tampered_import_fails_verification() {
    let (dir, _) = setup();
    let run = import(&dir, &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let summary: Value = serde_json::from_str(&run.stdout).unwrap();
    let bundle = dir
        .path()
        .join("out/nginx")
        .join(summary["run_id"].as_str().unwrap());
    let target = crate::util::files_under(&bundle.join("targets")).remove(0);
    let mut bytes = std::fs::read(&target).unwrap();
    let last = bytes.len() - 20;
    bytes[last] ^= 1;
    std::fs::write(&target, bytes).unwrap();
    let verify = vigil_in(
        dir.path(),
        &[
            "verify",
            bundle.to_str().unwrap(),
            "--trusted-key",
            "signer.pub.pem",
        ],
    );
    assert_eq!(verify.code, 1, "{}", verify.stdout);
    assert!(verify.stderr.contains("targets/"), "{}", verify.stderr);
}

#[test]
fn reports_that_are_not_hdf_are_refused_with_the_file_named() {
    let (dir, _) = setup();
    dir.write(
        "bad.json",
        r#"{"profiles": [{"controls": [{"id": 1, "results": []}]}]}"#,
    );
    dir.write("notjson.json", "<html>");
    let profiles = repo().join("policies/profiles");
    for (file, want) in [
        ("bad.json", "controls[0] has no string `id`"),
        ("notjson.json", "not an HDF/InSpec JSON report"),
    ] {
        let run = vigil_in(
            dir.path(),
            &[
                "import",
                file,
                "--policy-file",
                "p.yaml",
                "--policy-file",
                profiles.to_str().unwrap(),
                "--out",
                "out",
                "--signing-key",
                "signer.key.pem",
            ],
        );
        assert_eq!(run.code, 2, "{}", run.stderr);
        assert!(
            run.stderr.contains(file) && run.stderr.contains(want),
            "{}",
            run.stderr
        );
    }
    assert!(
        !dir.path().join("out").exists(),
        "nothing written for refused input"
    );
    // The same target twice.
    std::fs::copy(dir.path().join("nginx.json"), dir.path().join("again.json")).unwrap();
    let twice = vigil_in(
        dir.path(),
        &[
            "import",
            "nginx.json",
            "nginx.json",
            "--policy-file",
            "p.yaml",
            "--policy-file",
            profiles.to_str().unwrap(),
            "--out",
            "out",
            "--signing-key",
            "signer.key.pem",
        ],
    );
    assert_eq!(twice.code, 2, "{}", twice.stderr);
    assert!(twice.stderr.contains("again"), "{}", twice.stderr);
}

#[test]
fn threshold_verdicts_on_the_sample_follow_saf_semantics() {
    let (dir, _) = setup();
    for (threshold, passes) in [
        ("compliance: {min: 90}", true),
        ("compliance: {min: 95}", false),
        ("skipped: {total: {max: 2}}", false),
        ("failed: {critical: {max: 0}}", true),
    ] {
        let file = dir.write("t.yml", threshold);
        let run = import(&dir, &["--threshold", file.to_str().unwrap()]);
        assert_eq!(
            run.code,
            if passes { 0 } else { 1 },
            "{threshold}: {}",
            run.stderr
        );
        let summary: Value = serde_json::from_str(&run.stdout).unwrap();
        assert_eq!(
            summary["targets"][0]["threshold"]["passed"], passes,
            "{threshold}"
        );
    }
}

/// A failed import leaves nothing behind: no bundle, no staging directory.
/// A target id that cannot name a file is invalid input (exit 2), as is a
/// second report for the same target.
#[test]
fn failed_imports_leave_no_debris() {
    let (dir, sample) = setup();
    let mut doc: Value = serde_json::from_slice(&std::fs::read(&sample).unwrap()).unwrap();
    doc["platform"]["target_id"] = "x".repeat(5000).into();
    std::fs::write(dir.path().join("long.json"), doc.to_string()).unwrap();
    let profiles = repo().join("policies/profiles");
    for reports in [
        vec!["long.json"],
        vec!["nginx.json", "nginx.json"],
        vec!["nginx.json", "long.json"],
    ] {
        let mut args = vec!["import"];
        args.extend(&reports);
        args.extend([
            "--policy-file",
            "p.yaml",
            "--policy-file",
            profiles.to_str().unwrap(),
            "--out",
            "out",
            "--signing-key",
            "signer.key.pem",
        ]);
        let run = vigil_in(dir.path(), &args);
        assert_eq!(run.code, 2, "{reports:?}: {}", run.stderr);
        let left: Vec<_> = std::fs::read_dir(dir.path().join("out/nginx"))
            .map(|d| d.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "{reports:?} left {left:?}");
    }
    assert!(
        vigil_in(
            dir.path(),
            &[
                "import",
                "long.json",
                "--policy-file",
                "p.yaml",
                "--policy-file",
                profiles.to_str().unwrap(),
                "--out",
                "out",
                "--signing-key",
                "signer.key.pem"
            ]
        )
        .stderr
        .contains("cannot name a result file")
    );
}

/// Imported reports count as Heimdall counts them: a result with a
/// backtrace is an error, tagged severities win over impact, and a failed
/// control of impact below 0.1 is counted with a warning that the SAF CLI
/// summary leaves it out.
#[test]
fn imported_reports_count_as_heimdall_does() {
    let (dir, _) = setup();
    dir.write(
        "r.json",
        r#"{"platform": {"name": "x", "release": "1", "target_id": "imported/r"}, "profiles": [{"name": "p", "controls": [
            {"id": "BT", "impact": 0.5, "results": [{"status": "passed", "code_desc": "d", "backtrace": ["boom.rb:1"]}]},
            {"id": "TAG", "impact": 0.5, "tags": {"severity": "critical"}, "results": [{"status": "failed", "code_desc": "d"}]},
            {"id": "LOW", "impact": 0.05, "results": [{"status": "failed", "code_desc": "d"}]}
        ]}]}"#,
    );
    let profiles = repo().join("policies/profiles");
    let run = vigil_in(
        dir.path(),
        &[
            "import",
            "r.json",
            "--policy-file",
            "p.yaml",
            "--policy-file",
            profiles.to_str().unwrap(),
            "--out",
            "out",
            "--signing-key",
            "signer.key.pem",
            "--format",
            "json",
        ],
    );
    assert!(run.code == 0 || run.code == 1, "{}", run.stderr);
    assert!(
        run.stderr.contains(
            "control LOW failed with impact 0.05 (severity none): the SAF CLI summary leaves it out"
        ),
        "{}",
        run.stderr
    );
    let summary: Value = serde_json::from_str(&run.stdout).unwrap();
    let t = &summary["targets"][0];
    assert_eq!(t["counts"]["error"], 1, "{t}");
    assert_eq!(t["counts"]["failed"], 2, "{t}");
    let severities: Vec<(&str, &str)> = t["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["id"].as_str().unwrap(), f["severity"].as_str().unwrap()))
        .collect();
    assert_eq!(
        severities,
        [("BT", "medium"), ("TAG", "critical"), ("LOW", "none")]
    );
}

/// Memory is bounded by the report, not by its results (#29: a 40 MB
/// report of a million results took 881 MB). An 8 MB report of 200,000
/// results, each carrying text, must be imported in under 3 times its size
/// plus the binary's own baseline; a reader that builds the whole document
/// takes over 20 times.
#[test]
fn import_memory_is_bounded_by_the_input() {
    use std::io::Write as _;
    let (dir, _) = setup();
    let path = dir.path().join("big.json");
    let mut w = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    w.write_all(br#"{"profiles":[{"controls":["#).unwrap();
    let (controls, per) = (2_000, 100);
    for c in 0..controls {
        let sep = if c == 0 { "" } else { "," };
        write!(w, r#"{sep}{{"id":"C-{c}","impact":0.5,"results":["#).unwrap();
        for r in 0..per {
            let sep = if r == 0 { "" } else { "," };
            let status = if (c + r) % 9 == 0 { "failed" } else { "passed" };
            write!(w, r#"{sep}{{"status":"{status}","code_desc":"c{r}"}}"#).unwrap();
        }
        w.write_all(b"]}").unwrap();
    }
    w.write_all(b"]}]}").unwrap();
    drop(w);
    let size = std::fs::metadata(&path).unwrap().len();
    let profiles = repo().join("policies/profiles");
    let peak_of = |report: &str| {
        let (code, kib) = crate::bench_common::child_peak_rss_kib(
            std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
                .current_dir(dir.path())
                .args(["import", report, "--policy-file", "p.yaml", "--policy-file"])
                .arg(&profiles)
                .args(["--unsigned", "--plaintext", "--out"])
                .arg(format!("out-{report}"))
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null()),
        );
        // 0, or 1 when the policy's threshold fails.
        assert!(
            code == 0 || code == 1,
            "the import of {report} exited {code}"
        );
        kib << 10
    };
    // The baseline: the same import of a small report (policy, profiles).
    let baseline = peak_of("nginx.json");
    let peak = peak_of("big.json");
    crate::util::figure(&format!(
        "import of a {:.1} MB report ({} results): peak RSS {:.1} MB, {:.1} MB over the {:.1} MB of a small report",
        size as f64 / 1e6,
        controls * per,
        peak as f64 / 1e6,
        peak.saturating_sub(baseline) as f64 / 1e6,
        baseline as f64 / 1e6
    ));
    assert!(
        peak < baseline + 3 * size,
        "peak RSS {peak} bytes for a {size}-byte report (baseline {baseline})"
    );
}

/// An overlay report as InSpec writes one: the wrapper lists empty copies
/// of the controls it changes, the wrapped profile (`parent_profile`) holds
/// the results. Imported, each control counts once with its results (no
/// errors for the copies, the not-applicable one once), the seal verifies
/// (the recount agrees), and import says where the SAF CLI reads it
/// otherwise: only the first profile (which lacks a copy of V-3 here), and a
/// control whose severity tag and impact disagree.
#[test]
fn an_overlay_report_counts_each_control_once() {
    let (dir, _) = setup();
    let control = |id: &str, impact: f64, severity: Option<&str>, results: &[&str]| {
        let mut c = serde_json::json!({
            "id": id, "title": id, "impact": impact, "tags": {},
            "results": results.iter().map(|s| serde_json::json!({"status": s, "code_desc": "t"})).collect::<Vec<_>>()
        });
        if let Some(s) = severity {
            c["tags"]["severity"] = s.into();
        }
        c
    };
    let report = serde_json::json!({"profiles": [
        {"name": "site-overlay", "depends": [{"name": "base"}], "controls": [
            control("V-1", 0.5, None, &[]),
            control("V-2", 0.0, None, &[]),
        ]},
        {"name": "base", "parent_profile": "site-overlay", "controls": [
            control("V-1", 0.5, None, &["passed"]),
            control("V-2", 0.0, None, &["skipped"]),
            control("V-3", 0.7, Some("none"), &["failed"]),
        ]}
    ]});
    dir.write("nginx.json", serde_json::to_vec(&report).unwrap());
    let run = import(&dir, &[]);
    assert!(run.code == 0 || run.code == 1, "{}", run.stderr);
    let summary: Value = serde_json::from_str(&run.stdout).unwrap();
    let counts = &summary["targets"][0]["counts"];
    assert_eq!(
        counts,
        &serde_json::json!({"passed": 1, "failed": 1, "skipped": 0, "no_impact": 1, "error": 0}),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("2 profiles: Heimdall and vigil count the controls of all of them (overlays linked as Heimdall links them), the SAF CLI's threshold and summary only the first profile's, 1 fewer"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("control V-3 is tagged severity none but has impact 0.7: Heimdall and vigil count it as none, the SAF CLI's threshold as high"),
        "{}",
        run.stderr
    );
    let bundle = dir
        .path()
        .join("out/nginx")
        .join(summary["run_id"].as_str().unwrap());
    let verify = vigil_in(
        dir.path(),
        &[
            "verify",
            bundle.to_str().unwrap(),
            "--trusted-key",
            "signer.pub.pem",
            "--identity",
            "reader.key",
        ],
    );
    assert_eq!(verify.code, 0, "{}{}", verify.stdout, verify.stderr);
    // Overlays that wrap each other loop: refused, naming the file.
    let looping = serde_json::json!({"profiles": [
        {"name": "a", "parent_profile": "b", "controls": [control("V-1", 0.5, None, &["passed"])]},
        {"name": "b", "parent_profile": "a", "controls": [control("V-1", 0.5, None, &["passed"])]}
    ]});
    dir.write("nginx.json", serde_json::to_vec(&looping).unwrap());
    let run = import(&dir, &[]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("nginx.json") && run.stderr.contains("in a cycle"),
        "{}",
        run.stderr
    );
}
