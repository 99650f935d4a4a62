//! `vigil run` over local root filesystems and `vigil probe`: results per
//! target, HDF shape, thresholds, exit codes, and the security guarantees
//! of the collector on a hostile tree.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::util::{TempDir, is_root, repo, rootfs_fixtures, vigil_in};

/// A demo-like policy over the manifest-applied fixture copy.
fn demo_policy(dir: &TempDir, fixtures: &Path, extra: &str) -> PathBuf {
    let root = fixtures.join("rootfs");
    dir.write(
        "demo.yaml",
        format!(
            "apiVersion: vigil/v1\nkind: ScanPolicy\nmetadata: {{name: demo}}\nspec:\n  profiles: [container-baseline]\n  targets:\n    - {{rootfs: {r}/debian, name: debian}}\n    - {{rootfs: {r}/alpine, name: alpine}}\n    - {{rootfs: {r}/distroless, name: distroless}}\n  limits: {{concurrency: 3}}\n  threshold: {{compliance: {{min: 80}}, failed: {{critical: {{max: 0}}}}}}\n  waivers:\n    - {{control: CB-20, expires: \"2099-01-01T00:00:00Z\", justification: rebuild pending, approver: sec@example.com, targets: [rootfs/debian]}}\n    - {{control: CB-05, expires: \"2020-01-01T00:00:00Z\", justification: old exception, approver: sec@example.com, targets: [rootfs/alpine]}}\n{extra}",
            r = root.display()
        ),
    )
}

/// `vigil run POLICY profiles/ --out OUT --unsigned --plaintext EXTRA…` in `dir`.
fn run_demo(dir: &TempDir, policy: &Path, out: &Path, extra: &[&str]) -> crate::util::Run {
    let profiles = profiles();
    let mut args = vec![
        "run",
        policy.to_str().unwrap(),
        &profiles,
        "--out",
        out.to_str().unwrap(),
        "--unsigned",
        "--plaintext",
    ];
    args.extend_from_slice(extra);
    vigil_in(dir.path(), &args)
}

fn profiles() -> String {
    repo().join("policies/profiles").display().to_string()
}

/// Heimdall's control status from an HDF control.
fn status(c: &Value) -> &'static str {
    let results: Vec<&str> = c["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    if results.contains(&"error") {
        "error"
    } else if c["waiver_data"]["skipped_due_to_waiver"] == true || c["impact"] == 0.0 {
        "no_impact"
    } else if results.contains(&"failed") {
        "failed"
    } else if results.contains(&"passed") {
        "passed"
    } else {
        "skipped"
    }
}

fn hdf_files(out: &Path) -> BTreeMap<String, Value> {
    let run_dir = std::fs::read_dir(out.join("demo"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::read_dir(run_dir.join("targets"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".hdf.json"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap(),
            )
        })
        .collect()
}

fn by_status(hdf: &Value) -> BTreeMap<&'static str, BTreeSet<String>> {
    let mut m: BTreeMap<&'static str, BTreeSet<String>> = BTreeMap::new();
    for c in hdf["profiles"][0]["controls"].as_array().unwrap() {
        m.entry(status(c))
            .or_default()
            .insert(c["id"].as_str().unwrap().to_string());
    }
    m
}

fn ids(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[test]
fn demo_scan_results_per_target() {
    if !is_root() {
        eprintln!(
            "note: owners from the fixture manifest need root; owner-based expectations still hold for files the runner owns"
        );
    }
    let fx = rootfs_fixtures();
    let dir = TempDir::new("demo");
    let policy = demo_policy(&dir, fx.path(), "");
    let out = dir.path().join("out");
    let run = run_demo(&dir, &policy, &out, &[]);
    assert_eq!(
        run.code, 1,
        "alpine fails its threshold\n{}\n{}",
        run.stdout, run.stderr
    );
    assert!(run.stdout.contains("verdict: fail"), "{}", run.stdout);
    let files = hdf_files(&out);
    assert_eq!(
        files.keys().cloned().collect::<Vec<_>>(),
        vec![
            "rootfs_alpine.hdf.json",
            "rootfs_debian.hdf.json",
            "rootfs_distroless.hdf.json"
        ]
    );

    let debian = by_status(&files["rootfs_debian.hdf.json"]);
    assert_eq!(
        debian["failed"],
        ids(&["CB-11", "CB-12", "CB-16", "CB-17"]),
        "{debian:?}"
    );
    assert_eq!(debian["no_impact"], ids(&["CB-20"]), "waived");
    assert_eq!(debian["passed"].len(), 19);

    let alpine = by_status(&files["rootfs_alpine.hdf.json"]);
    assert_eq!(
        alpine["failed"],
        ids(&[
            "CB-05", "CB-06", "CB-07", "CB-09", "CB-10", "CB-11", "CB-13", "CB-14", "CB-15",
            "CB-20", "CB-23"
        ]),
        "{alpine:?}"
    );
    assert_eq!(alpine["passed"].len(), 13);

    // The expired waiver is reported and does not apply.
    let cb05 = files["rootfs_alpine.hdf.json"]["profiles"][0]["controls"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "CB-05")
        .unwrap()
        .clone();
    assert_eq!(cb05["waiver_data"]["skipped_due_to_waiver"], false);
    assert!(
        cb05["waiver_data"]["message"]
            .as_str()
            .unwrap()
            .contains("expired")
    );
    assert!(
        run.stderr.contains("expired-waiver"),
        "validation warns: {}",
        run.stderr
    );
    assert!(
        run.stderr.contains("[3/3]"),
        "plain progress lines off a terminal: {}",
        run.stderr
    );

    let distroless = by_status(&files["rootfs_distroless.hdf.json"]);
    assert_eq!(
        distroless.keys().copied().collect::<Vec<_>>(),
        vec!["passed"],
        "{distroless:?}"
    );

    // The waiver is carried in HDF with its justification and approver.
    let cb20 = files["rootfs_debian.hdf.json"]["profiles"][0]["controls"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "CB-20")
        .unwrap()
        .clone();
    assert_eq!(cb20["waiver_data"]["justification"], "rebuild pending");
    assert_eq!(cb20["waiver_data"]["approver"], "sec@example.com");
    assert_eq!(cb20["results"][0]["status"], "failed", "evidence is kept");

    // Messages are InSpec-style: what was expected and what was found.
    let cb12 = files["rootfs_debian.hdf.json"]["profiles"][0]["controls"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "CB-12")
        .unwrap()
        .clone();
    assert_eq!(
        cb12["results"][0]["message"],
        "Directory /usr is expected to contain no unexpected setuid files, got 1: /usr/bin/mount"
    );

    // The summary agrees with the HDF files and the table.
    let run_dir = std::fs::read_dir(out.join("demo"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let summary: Value =
        serde_json::from_slice(&std::fs::read(run_dir.join("summary.json")).unwrap()).unwrap();
    let debian_summary = summary["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == "rootfs/debian")
        .unwrap();
    assert_eq!(debian_summary["counts"]["failed"], 4);
    assert_eq!(debian_summary["compliance"], 83, "19 / (19 + 4) rounded");
    assert_eq!(debian_summary["threshold"]["passed"], true);
    let alpine_summary = summary["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == "rootfs/alpine")
        .unwrap();
    assert_eq!(alpine_summary["compliance"], 54);
    assert_eq!(alpine_summary["threshold"]["passed"], false);
    assert_eq!(summary["verdict"], "fail");
    let hdf_run_id = &files["rootfs_debian.hdf.json"]["platform"]["run_id"];
    assert_eq!(hdf_run_id, &summary["run_id"]);
}

#[test]
fn hdf_has_the_shape_of_a_real_inspec_result() {
    let sample: Value = serde_json::from_slice(
        &std::fs::read(repo().join("fixtures/hdf/inspec-nginx-results.json")).unwrap(),
    )
    .unwrap();
    let fx = rootfs_fixtures();
    let dir = TempDir::new("shape");
    let policy = demo_policy(&dir, fx.path(), "");
    let out = dir.path().join("out");
    run_demo(&dir, &policy, &out, &[]);
    let ours = hdf_files(&out).remove("rootfs_debian.hdf.json").unwrap();
    fn kind(v: &Value) -> &'static str {
        match v {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        }
    }
    let keys = |v: &Value| {
        v.as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), kind(v)))
            .collect::<BTreeMap<_, _>>()
    };
    assert_eq!(keys(&ours), keys(&sample), "same top-level keys and types");
    let subset = |ours: &Value, theirs: &Value, what: &str| {
        let o = keys(ours);
        for (k, t) in keys(theirs) {
            assert_eq!(o.get(&k), Some(&t), "{what}: key {k} of type {t}");
        }
    };
    subset(&ours["platform"], &sample["platform"], "platform");
    subset(&ours["statistics"], &sample["statistics"], "statistics");
    subset(&ours["profiles"][0], &sample["profiles"][0], "profile");
    subset(
        &ours["profiles"][0]["controls"][0],
        &sample["profiles"][0]["controls"][0],
        "control",
    );
    subset(
        &ours["profiles"][0]["controls"][0]["results"][0],
        &sample["profiles"][0]["controls"][0]["results"][0],
        "result",
    );
    subset(
        &ours["profiles"][0]["controls"][0]["source_location"],
        &sample["profiles"][0]["controls"][0]["source_location"],
        "source_location",
    );
    assert_eq!(ours["platform"]["target_id"], "rootfs/debian");
    assert_eq!(ours["platform"]["name"], "debian");
    assert_eq!(ours["platform"]["release"], "12");
    let scan_id = ours["platform"]["scan_id"].as_str().unwrap();
    assert_eq!(
        uuid::Uuid::parse_str(scan_id).unwrap().get_version_num(),
        7,
        "scan ids are UUIDv7"
    );
    let ctl = &ours["profiles"][0]["controls"][0];
    assert_eq!(ctl["id"], "CB-01");
    assert_eq!(ctl["tags"]["nist"], serde_json::json!(["AC-3", "CM-6"]));
    assert!(
        ctl["source_location"]["ref"]
            .as_str()
            .unwrap()
            .ends_with("container-baseline.yaml")
    );
    assert!(ctl["source_location"]["line"].as_u64().unwrap() > 10);
}

#[test]
fn threshold_file_overrides_and_exit_codes() {
    let fx = rootfs_fixtures();
    let dir = TempDir::new("threshold");
    let policy = demo_policy(&dir, fx.path(), "");
    let out = dir.path().join("out");
    let run_with = |threshold: &std::path::Path| {
        vigil_in(
            dir.path(),
            &[
                "run",
                policy.to_str().unwrap(),
                &profiles(),
                "--out",
                out.to_str().unwrap(),
                "--unsigned",
                "--plaintext",
                "--threshold",
                threshold.to_str().unwrap(),
            ],
        )
    };
    let lenient = dir.write(
        "lenient.yml",
        "compliance:\n  min: 50\nfailed.critical.max: 2\n",
    );
    let run = run_with(&lenient);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let strict = dir.write("strict.json", "{\"passed\": {\"total\": {\"min\": 25}}}");
    let run = run_with(&strict);
    assert_eq!(run.code, 1);
    assert!(
        run.stdout.contains("passed.total 24, min 25"),
        "{}",
        run.stdout
    );
    let bad = dir.write("bad.yml", "failed:\n  severe: {max: 0}\n");
    let run = run_with(&bad);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("bad.yml") && run.stderr.contains("failed.severe.max"),
        "{}",
        run.stderr
    );
}

#[test]
fn every_planned_target_gets_exactly_one_result() {
    // Kubernetes targets cannot be reached by this build: each must still
    // end with an error result, and the run exits 3.
    let dir = TempDir::new("k8s");
    let out = dir.path().join("out");
    let r = repo();
    let run = vigil_in(
        dir.path(),
        &[
            "run",
            r.join("policies/payments.yaml").to_str().unwrap(),
            &profiles(),
            "--inventory",
            r.join("fixtures/cluster/snapshot.json").to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--unsigned",
            "--plaintext",
            "--format",
            "json",
        ],
    );
    assert_eq!(run.code, 3, "{}", run.stderr);
    let summaries: Value = serde_json::from_str(&run.stdout).unwrap();
    let targets = summaries[0]["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 9);
    for t in targets {
        assert_eq!(t["status"], "error");
        assert!(
            t["error"]
                .as_str()
                .unwrap()
                .contains("needs a connection to the cluster"),
            "{t}"
        );
        assert_eq!(t["counts"]["error"], 24, "every control records the reason");
    }
    let run_dir = std::fs::read_dir(out.join("payments"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    assert_eq!(
        std::fs::read_dir(run_dir.join("targets"))
            .unwrap()
            .filter(|e| e
                .as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains(".hdf.json"))
            .count(),
        9
    );
    assert_eq!(summaries[0]["verdict"], "error");
}

#[test]
fn missing_rootfs_is_invalid_input() {
    let dir = TempDir::new("norootfs");
    let policy = dir.write("p.yaml", "apiVersion: vigil/v1\nkind: ScanPolicy\nmetadata: {name: p}\nspec:\n  profiles: [container-baseline]\n  targets: [{rootfs: nope}]\n");
    let run = vigil_in(
        dir.path(),
        &[
            "run",
            policy.to_str().unwrap(),
            &profiles(),
            "--unsigned",
            "--plaintext",
        ],
    );
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("p.yaml:6:")
            && run.stderr.contains("is neither a directory nor an archive"),
        "{}",
        run.stderr
    );
}

#[test]
fn schedule_lists_fire_times_and_catches_up_a_missed_run() {
    let fx = rootfs_fixtures();
    let dir = TempDir::new("schedule");
    let policy = demo_policy(
        &dir,
        fx.path(),
        "  schedule: {cron: \"0 0 1 1 *\", timezone: Europe/Berlin, catchUp: one}\n  output: {keep: 1}\n",
    );
    let profiles = profiles();
    let list = crate::util::vigil_in(
        dir.path(),
        &[
            "schedule",
            "--list",
            policy.to_str().unwrap(),
            profiles.as_str(),
        ],
    );
    assert_eq!(list.code, 0, "{}", list.stderr);
    assert!(
        list.stdout
            .starts_with("demo: `0 0 1 1 *` (Europe/Berlin): "),
        "{}",
        list.stdout
    );
    assert!(
        list.stdout.contains("-01-01T00:00:00+01:00"),
        "{}",
        list.stdout
    );
    // The last fire it knows of is years old: with catchUp: one it runs at
    // once, as a `vigil run` child, then waits for the next New Year.
    let out = dir.path().join("out");
    std::fs::create_dir_all(out.join("demo")).unwrap();
    crate::util::signing_key(dir.path());
    std::fs::write(
        out.join("demo/.vigil-schedule"),
        "2020-01-01T00:00:00+00:00",
    )
    .unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args([
            "schedule",
            policy.to_str().unwrap(),
            profiles.as_str(),
            "--out",
        ])
        .arg(&out)
        .args(["--plaintext", "--signing-key", "signer.key.pem"])
        .current_dir(dir.path())
        .env_remove("VIGIL_SIGNING_KEY")
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let reader = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut seen = Vec::new();
    {
        use std::io::BufRead;
        for line in reader.lines().map_while(Result::ok) {
            let done = line.contains("run finished");
            seen.push(line);
            if done {
                break;
            }
        }
    }
    crate::util::signal(&child, rustix::process::Signal::TERM);
    assert_eq!(child.wait().unwrap().code(), Some(0));
    let text = seen.join("\n");
    assert!(text.contains("(catching up)"), "{text}");
    // One sealed bundle, and the state file moved on.
    let bundles: Vec<_> = std::fs::read_dir(out.join("demo"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().join("statement.dsse.json").is_file())
        .collect();
    assert_eq!(bundles.len(), 1, "{text}");
    let last = std::fs::read_to_string(out.join("demo/.vigil-schedule")).unwrap();
    assert!(!last.starts_with("2020"), "{last}");
}

/// What failed is on the screen and in the summary: under a target that
/// fails its threshold, its failed and error controls (id, status,
/// severity, title; the message under it), at most N then "and M more";
/// `--details none|all`; the JSON summary lists them; `vigil open` shows
/// the same; targets sort naturally (host2 before host10).
#[test]
fn failed_controls_are_shown_where_people_look() {
    let fx = rootfs_fixtures();
    let dir = TempDir::new("findings");
    let root = fx.path().join("rootfs");
    let policy = dir.write(
        "p.yaml",
        format!(
            "apiVersion: vigil/v1\nkind: ScanPolicy\nmetadata: {{name: demo}}\nspec:\n  profiles: [container-baseline]\n  targets:\n    - {{rootfs: {r}/alpine, name: host10}}\n    - {{rootfs: {r}/debian, name: host2}}\n  threshold: {{compliance: {{min: 75}}}}\n",
            r = root.display()
        ),
    );
    let out = dir.path().join("out");
    let run = run_demo(&dir, &policy, &out, &["--details-limit", "3"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let text = &run.stdout;
    let (h2, h10) = (
        text.find("  rootfs/host2 ").unwrap(),
        text.find("  rootfs/host10 ").unwrap(),
    );
    assert!(h2 < h10, "natural order:\n{text}");
    let alpine = &text[h10..];
    assert!(
        alpine.contains("      threshold: compliance 54%, min 75%"),
        "{text}"
    );
    assert!(alpine.contains("      CB-05 failed (critical) Only root has uid 0\n          Users with uid 0 are expected to be only root, got 1 other uid-0 accounts: toor\n"), "{text}");
    assert!(alpine.contains("      and 8 more\n"), "{text}");
    // host2 passes its threshold: nothing listed under it by default.
    assert!(!text[h2..h10].contains("failed ("), "{text}");
    let table_width = text
        .lines()
        .filter(|l| l.starts_with("  "))
        .filter(|l| !l.starts_with("      "))
        .map(|l| l.chars().count())
        .max()
        .unwrap();
    assert!(table_width <= 100, "{table_width}\n{text}");
    // --details all lists host2's failures too; none lists nothing.
    let all = run_demo(&dir, &policy, &out, &["--details", "all"]);
    let host2 = &all.stdout
        [all.stdout.find("  rootfs/host2 ").unwrap()..all.stdout.find("  rootfs/host10 ").unwrap()];
    assert!(host2.contains("failed ("), "{}", all.stdout);
    let none = run_demo(&dir, &policy, &out, &["--details", "none"]);
    assert!(
        !none.stdout.contains("failed (") && !none.stdout.contains("      CB-"),
        "{}",
        none.stdout
    );
    // The JSON summary carries them, with ids.
    let json = run_demo(&dir, &policy, &out, &["--format", "json"]);
    let summary: Value = serde_json::from_str(&json.stdout).unwrap();
    let t = &summary[0]["targets"][1];
    assert_eq!(t["id"], "rootfs/host10");
    let ids: Vec<&str> = t["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 11);
    assert_eq!(&ids[..2], ["CB-05", "CB-06"]);
    assert_eq!(t["findings"][0]["severity"], "critical");
}

/// `--log-format json`: every line is one JSON object with no key given
/// twice (the target id is `target_id`; `target` is tracing's own).
#[test]
fn json_log_lines_have_unique_keys() {
    let fx = rootfs_fixtures();
    let dir = TempDir::new("jsonlog");
    let policy = demo_policy(&dir, fx.path(), "");
    let out = dir.path().join("out");
    let run = run_demo(&dir, &policy, &out, &["--log-format", "json"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert!(lines.len() >= 3, "{}", run.stderr);
    for l in lines {
        crate::util::json_without_duplicate_keys(l).unwrap_or_else(|e| panic!("{e}: {l}"));
        let v: Value = serde_json::from_str(l).unwrap();
        assert!(v.is_object());
        if v["message"]
            .as_str()
            .is_some_and(|m| m.contains("] rootfs/"))
        {
            assert!(
                v["target_id"].as_str().unwrap().starts_with("rootfs/"),
                "{l}"
            );
        }
    }
}

/// `validate` warns (exit 0) about a rootfs that is not on this machine;
/// `run --run-id` is refused rather than silently ignored.
#[test]
fn rootfs_warnings_and_run_id_refusal() {
    let dir = TempDir::new("rfwarn");
    let policy = dir.write(
        "p.yaml",
        "apiVersion: vigil/v1\nkind: ScanPolicy\nmetadata: {name: r}\nspec:\n  profiles: [container-baseline]\n  targets:\n    - {rootfs: nowhere/root}\n",
    );
    let profiles = profiles();
    let v = vigil_in(
        dir.path(),
        &["validate", policy.to_str().unwrap(), &profiles],
    );
    assert_eq!(v.code, 0, "{}", v.stderr);
    assert!(
        v.stderr.contains(
            "warning[invalid-target]: rootfs `nowhere/root` is neither a directory nor an archive on this machine"
        ),
        "{}",
        v.stderr
    );
    let r = vigil_in(
        dir.path(),
        &[
            "run",
            policy.to_str().unwrap(),
            &profiles,
            "--run-id",
            "mine",
        ],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("--run-id is for plan and render"),
        "{}",
        r.stderr
    );
}

/// Where SAF CLI 1.5.3 would judge a threshold otherwise, `validate` says
/// so (a warning with the exact difference), and so does `run --threshold`.
#[test]
fn saf_differences_are_warned_about() {
    let dir = TempDir::new("safdiff");
    let fx = rootfs_fixtures();
    let policy = dir.write(
        "p.yaml",
        format!(
            "apiVersion: vigil/v1\nkind: ScanPolicy\nmetadata: {{name: demo}}\nspec:\n  profiles: [container-baseline]\n  targets:\n    - {{rootfs: {}, name: d}}\n  threshold: {{compliance.max: 0, failed: {{high: {{controls: []}}}}}}\n",
            fx.path().join("rootfs/debian").display()
        ),
    );
    let profiles = profiles();
    let v = vigil_in(
        dir.path(),
        &["validate", policy.to_str().unwrap(), &profiles],
    );
    assert_eq!(v.code, 0, "{}", v.stderr);
    assert_eq!(
        v.stderr.matches("warning[saf-difference]").count(),
        2,
        "{}",
        v.stderr
    );
    assert!(
        v.stderr.contains("SAF CLI ignores `compliance.max: 0`"),
        "{}",
        v.stderr
    );
    let t = dir.write("t.yaml", "no_impact: {total: {max: 5}}\n");
    let out = dir.path().join("out");
    let r = run_demo(&dir, &policy, &out, &["--threshold", t.to_str().unwrap()]);
    assert!(
        r.stderr.contains("SAF CLI never checks `no_impact.total`"),
        "{}",
        r.stderr
    );
}

/// Progress lines number targets in completion order: with many scans at
/// once, `[i/n]` counts up by one, line after line.
#[test]
fn progress_lines_count_up_in_order() {
    let fx = rootfs_fixtures();
    let dir = TempDir::new("progress");
    let targets: String = (0..30)
        .map(|i| {
            format!(
                "    - {{rootfs: {}, name: t{i}}}\n",
                fx.path().join("rootfs/distroless").display()
            )
        })
        .collect();
    let policy = dir.write(
        "p.yaml",
        format!("apiVersion: vigil/v1\nkind: ScanPolicy\nmetadata: {{name: demo}}\nspec:\n  profiles: [container-baseline]\n  targets:\n{targets}  limits: {{concurrency: 4}}\n"),
    );
    let out = dir.path().join("out");
    let run = run_demo(&dir, &policy, &out, &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let numbers: Vec<usize> = run
        .stderr
        .lines()
        .filter_map(|l| {
            l.split_once(" [")
                .and_then(|(_, r)| r.split_once("/30]"))
                .map(|(n, _)| n.parse().unwrap())
        })
        .collect();
    assert_eq!(numbers, (1..=30).collect::<Vec<_>>(), "{}", run.stderr);
}
