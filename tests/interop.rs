//! Interop with the reference implementations. Each test runs when its tool
//! is installed; `.ci/run` installs them all and sets
//! `VIGIL_REQUIRE_INTEROP=1`, under which a missing tool fails the test
//! instead of skipping it.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

use crate::util::{TempDir, repo, rootfs_fixtures, vigil_in};

/// The node_modules directory holding inspecjs, if present.
fn inspecjs() -> Option<PathBuf> {
    let dir = std::env::var_os("VIGIL_INSPECJS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/interop/node_modules"));
    let present = dir.join("inspecjs").is_dir()
        && Command::new("node")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
    crate::util::prerequisite(
        present,
        &format!(
            "inspecjs (npm) in {} and node (.ci/run installs them)",
            dir.display()
        ),
    )
    .then_some(dir)
}

/// Run `tests/interop/SCRIPT` under node with `modules` as its
/// `NODE_PATH` on `args`; its stdout, as JSON.
fn node_json<I, A>(script: &str, modules: &std::path::Path, args: I) -> Value
where
    I: IntoIterator<Item = A>,
    A: AsRef<std::ffi::OsStr>,
{
    let node = Command::new("node")
        .arg(repo().join("tests/interop").join(script))
        .args(args)
        .env("NODE_PATH", modules)
        .output()
        .unwrap();
    oracle_json(script, &node)
}

/// A reference tool's answer: it succeeded, and its stdout is JSON.
fn oracle_json(what: &str, out: &std::process::Output) -> Value {
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A control status as Heimdall, inspecjs and the SAF CLI name it.
fn heimdall_status(vigil: &str) -> &'static str {
    match vigil {
        "passed" => "Passed",
        "failed" => "Failed",
        "skipped" => "Not Reviewed",
        "no_impact" => "Not Applicable",
        _ => "Profile Error",
    }
}

/// Heimdall's and the SAF CLI's reading of vigil's HDF (through inspecjs)
/// agrees with vigil's own summary: every control's status, severity,
/// waiver, and the compliance.
#[test]
fn inspecjs_reads_vigil_hdf_as_vigil_does() {
    let Some(modules) = inspecjs() else { return };
    let fx = rootfs_fixtures();
    let dir = TempDir::new("inspecjs");
    let root = fx.path().join("rootfs");
    let policy = dir.write(
        "p.yaml",
        format!(
            "apiVersion: vigil/v1\nkind: ScanPolicy\nmetadata: {{name: demo}}\nspec:\n  profiles: [container-baseline]\n  targets:\n    - {{rootfs: {r}/debian, name: debian}}\n    - {{rootfs: {r}/alpine, name: alpine}}\n    - {{rootfs: {r}/distroless, name: distroless}}\n  waivers:\n    - {{control: CB-20, expires: \"2099-01-01T00:00:00Z\", justification: j, approver: a}}\n",
            r = root.display()
        ),
    );
    let out = dir.path().join("out");
    let profiles = repo().join("policies/profiles");
    let run = vigil_in(
        dir.path(),
        &[
            "run",
            policy.to_str().unwrap(),
            profiles.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--unsigned",
            "--plaintext",
            "--format",
            "json",
        ],
    );
    assert!(run.code == 0 || run.code == 1, "{}", run.stderr);
    let summary: Value = serde_json::from_str(&run.stdout).unwrap();
    let run_dir = out
        .join("demo")
        .join(summary[0]["run_id"].as_str().unwrap());
    let mut files = Vec::new();
    for t in summary[0]["targets"].as_array().unwrap() {
        files.push(run_dir.join(t["hdf"]["name"].as_str().unwrap()));
    }
    let theirs = node_json("inspecjs-summary.js", &modules, &files);
    for (t, file) in summary[0]["targets"].as_array().unwrap().iter().zip(&files) {
        let js = &theirs[file.to_str().unwrap()];
        assert_eq!(js["compliance"], t["compliance"], "{}", t["id"]);
        for (status, n) in t["counts"].as_object().unwrap() {
            let theirs_n = js["counts"][heimdall_status(status)].as_u64().unwrap_or(0);
            assert_eq!(theirs_n, n.as_u64().unwrap(), "{} {status}", t["id"]);
        }
        // Control by control, against vigil's HDF as read back.
        let hdf: Value = serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap();
        for c in hdf["profiles"][0]["controls"].as_array().unwrap() {
            let id = c["id"].as_str().unwrap();
            assert_eq!(
                js["controls"][id]["severity"], c["tags"]["severity"],
                "{id}"
            );
        }
    }
    let debian = &theirs[files
        .iter()
        .find(|f| f.to_str().unwrap().contains("debian"))
        .unwrap()
        .to_str()
        .unwrap()];
    assert_eq!(debian["controls"]["CB-20"]["status"], "Not Applicable");
    assert_eq!(debian["controls"]["CB-20"]["waived"], true);
}

/// Overlay (wrapper) profiles and ids shared across profiles, differentially
/// against inspecjs 2.12.6 (Heimdall's and the SAF CLI's reader) on 400
/// generated documents: wrappers over bases, three-layer chains, parents
/// that name no profile or a profile named twice, copies with and without
/// results, shared ids in unrelated profiles, waivers, impacts and
/// severity tags. vigil counts exactly the controls inspecjs counts, each
/// with its root's status and severity; a document whose overlays form a
/// cycle (inspecjs recurses forever on it) is refused, and only those.
#[test]
fn overlay_reports_count_as_inspecjs_counts_them() {
    let Some(modules) = inspecjs() else { return };
    let dir = TempDir::new("overlay-inspecjs");
    let mut x: u64 = 0x5851_f42d_4c95_7f2d;
    let mut next = |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    let names = ["base", "wrap", "top", "other"];
    let statuses = ["passed", "failed", "skipped", "error"];
    let impacts = [0.0, 0.05, 0.3, 0.5, 0.7, 0.9, 1.0];
    let mut files = Vec::new();
    let mut cyclic = Vec::new();
    for doc in 0..400 {
        let np = 1 + next(4) as usize;
        let mut parents: Vec<Option<&str>> = Vec::new();
        let mut profile_names = Vec::new();
        let mut profiles = Vec::new();
        for _ in 0..np {
            let name = names[next(4) as usize];
            let parent = match next(3) {
                0 => None,
                _ if next(8) == 0 => Some("nobody"),
                _ => Some(names[next(4) as usize]),
            };
            let controls: Vec<Value> = (0..next(6))
                .map(|_| {
                    let results: Vec<Value> = (0..if next(2) == 0 { 0 } else { 1 + next(3) })
                        .map(|_| serde_json::json!({"status": statuses[next(4) as usize], "code_desc": "t", "message": "m"}))
                        .collect();
                    let mut c = serde_json::json!({
                        "id": format!("V-{}", next(5)),
                        "title": "t",
                        "impact": impacts[next(7) as usize],
                        "tags": {},
                        "results": results,
                    });
                    if next(5) == 0 {
                        c["tags"]["severity"] = ["none", "low", "high"][next(3) as usize].into();
                    }
                    if next(6) == 0 {
                        c["waiver_data"] = serde_json::json!({"skipped_due_to_waiver": true, "justification": "j"});
                    }
                    c
                })
                .collect();
            let mut p = serde_json::json!({"name": name, "controls": controls});
            if let Some(parent) = parent {
                p["parent_profile"] = parent.into();
            }
            parents.push(parent);
            profile_names.push(name);
            profiles.push(p);
        }
        // As InSpec writes an overlay: a wrapper first, with a copy of
        // every control of the profiles it wraps and no results of its own.
        if next(4) == 0 {
            let copies: Vec<Value> = profiles
                .iter()
                .flat_map(|p| p["controls"].as_array().unwrap().clone())
                .map(|mut c| {
                    c["results"] = serde_json::json!([]);
                    c
                })
                .collect();
            for (p, parent) in profiles.iter_mut().zip(parents.iter_mut()) {
                p["parent_profile"] = "wrapper".into();
                *parent = Some("wrapper");
            }
            profiles.insert(
                0,
                serde_json::json!({"name": "wrapper", "controls": copies}),
            );
            parents.insert(0, None);
            profile_names.insert(0, "wrapper");
        }
        let np = profiles.len();
        // Independently of vigil: does the profile graph loop (a profile
        // whose parent chain, first profile of each name, comes back)?
        let first = |n: &str| profile_names.iter().position(|m| *m == n);
        let loops = (0..np).any(|start| {
            let mut at = start;
            for _ in 0..=np {
                match parents[at].and_then(first) {
                    Some(next) if next == start => return true,
                    Some(next) => at = next,
                    None => return false,
                }
            }
            false
        });
        let path = dir.write(
            &format!("d{doc:03}.json"),
            serde_json::to_vec(&serde_json::json!({"profiles": profiles})).unwrap(),
        );
        if loops {
            cyclic.push(path);
        } else {
            files.push(path);
        }
    }
    assert!(
        files.len() >= 250 && cyclic.len() >= 10,
        "{} {}",
        files.len(),
        cyclic.len()
    );
    let theirs = node_json("inspecjs-counted.js", &modules, files.iter().chain(&cyclic));
    // vigil's counted controls as inspecjs-counted.js lists them.
    let counted = |doc: &vigil::report::import::Hdf| -> Vec<[String; 3]> {
        let mut out: Vec<[String; 3]> = doc
            .controls
            .iter()
            .map(|c| {
                [
                    c.id.clone(),
                    heimdall_status(c.status.as_str()).to_string(),
                    c.severity.to_string(),
                ]
            })
            .collect();
        out.sort_by_key(|c| c.join("\0"));
        out
    };
    let saf = saf_totals(&files);
    let mut overlaid = 0;
    // Documents of several profiles that the SAF CLI counts short, and that
    // it counts in full.
    let (mut short, mut full) = (0, 0);
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        let doc =
            vigil::report::import::read(&bytes).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let ours = counted(&doc);
        let js = &theirs[f.to_str().unwrap()];
        assert_eq!(js["loops"], false, "{}", f.display());
        let want: Vec<[String; 3]> = serde_json::from_value(js["counted"].clone())
            .unwrap_or_else(|e| panic!("{}: {e}: {js}", f.display()));
        assert_eq!(ours, want, "{}", std::fs::read_to_string(f).unwrap());
        if let Some(saf) = &saf {
            let platform = vigil::report::import::read_each(&bytes, &mut |_| {}).unwrap();
            assert_eq!(
                saf[f.to_str().unwrap()]["total"].as_u64().unwrap() as usize,
                ours.len() - platform.saf_uncounted,
                "{}",
                String::from_utf8_lossy(&bytes)
            );
            match (platform.profiles, platform.saf_uncounted) {
                (1, _) => {}
                (_, 0) => full += 1,
                _ => short += 1,
            }
        }
        let all: usize =
            serde_json::from_slice::<Value>(&std::fs::read(f).unwrap()).unwrap()["profiles"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["controls"].as_array().unwrap().len())
                .sum();
        overlaid += usize::from(all != ours.len());
    }
    assert!(
        overlaid >= 100,
        "only {overlaid} documents count other than control by control"
    );
    assert!(
        saf.is_none() || (short >= 50 && full >= 25),
        "several profiles: {short} the SAF CLI counts short, {full} in full"
    );
    // Profiles that wrap each other: where no control's chain of links
    // loops (inspecjs's own links say), vigil counts as inspecjs does;
    // where one does, inspecjs drops those controls or recurses forever,
    // and vigil refuses the document.
    let mut refused = 0;
    for f in &cyclic {
        let js = &theirs[f.to_str().unwrap()];
        match vigil::report::import::read(&std::fs::read(f).unwrap()) {
            Ok(doc) => {
                assert_eq!(js["loops"], false, "{}", f.display());
                let ours = counted(&doc);
                assert_eq!(serde_json::json!(ours), js["counted"], "{}", f.display());
            }
            Err(e) => {
                refused += 1;
                assert!(e.to_string().contains("cycle"), "{e}");
                assert_eq!(js["loops"], true, "{}: {js}", f.display());
            }
        }
    }
    assert!(refused >= 5, "only {refused} looping documents");
}

/// Per HDF file, the controls the SAF CLI's threshold and summary count
/// (by its own code: tests/interop/saf-counts.js), or `None` when the SAF
/// CLI is not installed.
fn saf_totals(files: &[PathBuf]) -> Option<Value> {
    let bin = saf()?;
    // .../node_modules/.bin/saf -> .../node_modules
    let modules = bin.parent().and_then(|p| p.parent())?.to_path_buf();
    Some(node_json("saf-counts.js", &modules, files))
}

/// Real HDF reports nobody here wrote: the samples Heimdall Lite 2.12.6
/// ships (npm @mitre/heimdall-lite, `dist/static/samples`; `.ci/run` takes
/// them from the package), three of them overlay reports (a wrapper
/// profile over STIG baselines, up to three layers deep). vigil counts each
/// exactly as inspecjs (Heimdall) counts it, control by control with status
/// and severity; `vigil import` gives inspecjs's counts and compliance; and
/// vigil knows how many controls the SAF CLI's threshold and summary leave
/// out (they read the first profile only), warning exactly when that is
/// not 0.
#[test]
fn heimdall_samples_count_as_heimdall_and_the_saf_cli_count_them() {
    let Some(modules) = inspecjs() else { return };
    let samples = std::env::var_os("VIGIL_HEIMDALL_SAMPLES")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/interop/heimdall-samples"));
    if !crate::util::prerequisite(
        samples.is_dir(),
        &format!(
            "Heimdall Lite's sample reports in {} (.ci/run unpacks them from npm @mitre/heimdall-lite)",
            samples.display()
        ),
    ) {
        return;
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(&samples)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension().is_some_and(|e| e == "json")
                && serde_json::from_slice::<Value>(&std::fs::read(p).unwrap())
                    .is_ok_and(|v| v["profiles"].is_array())
        })
        .collect();
    files.sort();
    let names: Vec<String> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for overlay in [
        "example-3-layer-overlay.json",
        "triple_overlay_profile_example.json",
        "wrapper-acme-run.json",
    ] {
        assert!(names.iter().any(|n| n == overlay), "{overlay} in {names:?}");
    }
    assert!(files.len() >= 15, "{names:?}");
    let theirs = node_json("inspecjs-counted.js", &modules, &files);
    let saf = saf_totals(&files);
    let mut saf_differs = Vec::new();
    for f in &files {
        let mut ours: Vec<[String; 3]> = Vec::new();
        let platform = vigil::report::import::read_each(&std::fs::read(f).unwrap(), &mut |c| {
            ours.push([
                c.id,
                heimdall_status(c.status.as_str()).into(),
                c.severity.to_string(),
            ])
        })
        .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        ours.sort_by_key(|c| c.join("\0"));
        let js = &theirs[f.to_str().unwrap()];
        assert_eq!(js["loops"], false, "{}", f.display());
        let want: Vec<[String; 3]> = serde_json::from_value(js["counted"].clone()).unwrap();
        assert_eq!(ours, want, "{}", f.display());
        if let Some(saf) = &saf {
            assert_eq!(
                saf[f.to_str().unwrap()]["total"].as_u64().unwrap() as usize,
                ours.len() - platform.saf_uncounted,
                "{}",
                f.display()
            );
        }
        if platform.saf_uncounted > 0 {
            saf_differs.push(f.clone());
        }
    }
    // Imported end to end: the summary's counts and compliance are
    // Heimdall's, and import warns for the files the SAF CLI counts short.
    let dir = TempDir::new("heimdall-samples");
    let run = import_plain(&dir, &files);
    assert!(run.code == 0 || run.code == 1, "{}", run.stderr);
    let summary: Value = serde_json::from_str(&run.stdout).unwrap();
    let theirs = node_json("inspecjs-summary.js", &modules, &files);
    for f in &files {
        let stem = f.file_stem().unwrap().to_str().unwrap();
        let t = summary["targets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["id"] == format!("imported/{stem}"))
            .unwrap_or_else(|| panic!("{stem} in {summary}"));
        counts_agree(&theirs[f.to_str().unwrap()], t, stem);
        let shown = f.display().to_string();
        let warned = run.stderr.lines().any(|l| {
            l.contains(&shown)
                && l.contains("the SAF CLI's threshold and summary only the first profile's")
        });
        assert_eq!(warned, saf_differs.contains(f), "{stem}: {}", run.stderr);
    }
}

/// `vigil import` of the real InSpec sample counts its controls as
/// inspecjs (Heimdall, SAF CLI) does.
#[test]
fn imported_sample_counts_agree_with_inspecjs() {
    let Some(modules) = inspecjs() else { return };
    let dir = TempDir::new("import-inspecjs");
    let sample = repo().join("fixtures/hdf/inspec-nginx-results.json");
    let run = import_plain(&dir, std::slice::from_ref(&sample));
    assert_eq!(run.code, 0, "{}", run.stderr);
    let summary: Value = serde_json::from_str(&run.stdout).unwrap();
    let t = &summary["targets"][0];
    let theirs = node_json("inspecjs-summary.js", &modules, [&sample]);
    counts_agree(&theirs[sample.to_str().unwrap()], t, "the sample");
}

/// `vigil import` of `files` in `dir` (unsigned, in plaintext, JSON
/// summary on stdout) under a one-target policy and vigil's profiles.
fn import_plain(dir: &TempDir, files: &[PathBuf]) -> crate::util::Run {
    dir.write(
        "p.yaml",
        "apiVersion: vigil/v1\nkind: ScanPolicy\nmetadata: {name: imported}\nspec:\n  profiles: [container-baseline]\n  targets:\n    - {namespace: web}\n",
    );
    let profiles = repo().join("policies/profiles");
    let mut args: Vec<&str> = vec!["import"];
    args.extend(files.iter().map(|f| f.to_str().unwrap()));
    args.extend([
        "--policy-file",
        "p.yaml",
        "--policy-file",
        profiles.to_str().unwrap(),
    ]);
    args.extend(crate::util::PLAIN_JSON);
    vigil_in(dir.path(), &args)
}

/// inspecjs-summary.js's reading of a file (`js`) and vigil's summary of
/// the same report (`t`) give the same compliance and counts.
fn counts_agree(js: &Value, t: &Value, what: &str) {
    assert_eq!(js["compliance"], t["compliance"], "{what}");
    for status in ["passed", "failed", "skipped", "no_impact", "error"] {
        assert_eq!(
            js["counts"][heimdall_status(status)].as_u64().unwrap_or(0),
            t["counts"][status].as_u64().unwrap(),
            "{what} {status}"
        );
    }
}

/// `vigil run --report junit=… --report markdown=…`: the JUnit file is read
/// by `junitparser` (PyPI, what CI systems' JUnit readers agree with) with
/// one suite per target and counts equal to the run's; the markdown names
/// the verdict and the failed controls.
#[test]
fn ci_reports_are_read_by_junitparser() {
    let present = crate::util::python_module("junitparser");
    if !crate::util::prerequisite(present, "junitparser (PyPI)") {
        return;
    }
    let fx = rootfs_fixtures();
    let dir = TempDir::new("reports");
    let r = fx.path().join("rootfs");
    let policy = dir.write(
        "p.yaml",
        format!(
            "apiVersion: vigil/v1\nkind: ScanPolicy\nmetadata: {{name: ci}}\nspec:\n  profiles: [container-baseline]\n  targets:\n    - {{rootfs: {0}/alpine, name: alpine}}\n    - {{rootfs: {0}/debian, name: debian}}\n  threshold: {{compliance: {{min: 80}}, coverage: {{min: 100}}}}\n",
            r.display()
        ),
    );
    let profiles = repo().join("policies/profiles");
    let run = vigil_in(
        dir.path(),
        &[
            "run",
            policy.to_str().unwrap(),
            profiles.to_str().unwrap(),
            "--out",
            "out",
            "--unsigned",
            "--plaintext",
            "--format",
            "json",
            "--report",
            "junit=r.xml",
            "--report",
            "markdown=r.md",
        ],
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    let summary: Value = serde_json::from_str(&run.stdout).unwrap();
    let suites = junit_suites(dir.path(), "r.xml");
    for t in summary[0]["targets"].as_array().unwrap() {
        let c = &t["counts"];
        let name = format!("ci/{}", t["id"].as_str().unwrap());
        let total = ["passed", "failed", "skipped", "no_impact", "error"]
            .iter()
            .map(|k| c[k].as_u64().unwrap())
            .sum::<u64>();
        let want = serde_json::json!([
            total,
            c["failed"],
            c["error"],
            c["skipped"].as_u64().unwrap() + c["no_impact"].as_u64().unwrap()
        ]);
        assert_eq!(suites[&name], want, "{name}: {suites}");
    }
    // Both targets scanned: the coverage case holds.
    assert_eq!(
        suites["ci/coverage"],
        serde_json::json!([1, 0, 0, 0]),
        "{suites}"
    );
    let md = std::fs::read_to_string(dir.path().join("r.md")).unwrap();
    assert!(
        md.contains("verdict **fail**") && md.contains("CB-05 failed (critical)"),
        "{md}"
    );
    // Reports never overwrite.
    let again = vigil_in(
        dir.path(),
        &[
            "run",
            policy.to_str().unwrap(),
            profiles.to_str().unwrap(),
            "--out",
            "out",
            "--unsigned",
            "--plaintext",
            "--report",
            "junit=r.xml",
        ],
    );
    assert_eq!(again.code, 2, "{}", again.stderr);
    assert!(again.stderr.contains("already exists"), "{}", again.stderr);
}

/// `--report sarif=…` validates against the official SARIF 2.1.0 JSON
/// Schema (as Microsoft's jest-sarif ships it; `.ci/run` fetches it), and
/// every result has a rule, a location in the profile where its control is
/// defined (file and line), and a fingerprint from target and control.
#[test]
fn sarif_reports_pass_the_official_schema() {
    let schema_path = std::env::var_os("VIGIL_SARIF_SCHEMA")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/interop/sarif-2.1.0-rtm.5.json"));
    if !crate::util::prerequisite(
        schema_path.is_file(),
        &format!("the SARIF 2.1.0 schema at {}", schema_path.display()),
    ) {
        return;
    }
    let mut schema: Value = serde_json::from_slice(&std::fs::read(&schema_path).unwrap()).unwrap();
    // The `language` pattern of the published schema ends in a bare `]`,
    // a literal in ECMAScript regexes and an error in Rust's: escape that
    // one character wherever the pattern stands, which keeps its meaning.
    fn escape_language(v: &mut Value, n: &mut usize) {
        match v {
            Value::Object(m) => {
                for (k, x) in m.iter_mut() {
                    if k == "pattern" && x == "^[a-zA-Z]{2}|^[a-zA-Z]{2}-[a-zA-Z]{2}]?$" {
                        *x = "^[a-zA-Z]{2}|^[a-zA-Z]{2}-[a-zA-Z]{2}\\]?$".into();
                        *n += 1;
                    } else {
                        escape_language(x, n);
                    }
                }
            }
            Value::Array(a) => a.iter_mut().for_each(|x| escape_language(x, n)),
            _ => {}
        }
    }
    let mut escaped = 0;
    escape_language(&mut schema, &mut escaped);
    assert!(
        escaped >= 1,
        "the schema changed: look again at its patterns"
    );
    let validator = jsonschema::validator_for(&schema).unwrap();
    let fx = rootfs_fixtures();
    let dir = TempDir::new("sarif");
    let policy = dir.write(
        "p.yaml",
        format!(
            "apiVersion: vigil/v1\nkind: ScanPolicy\nmetadata: {{name: ci}}\nspec:\n  profiles: [container-baseline]\n  targets:\n    - {{rootfs: {}, name: alpine}}\n    - {{rootfs: broken.tar, name: gone}}\n  threshold: {{coverage.min: 90}}\n",
            fx.path().join("rootfs/alpine").display()
        ),
    );
    // A tar that is not one: planned, then an error target (1 of 2 scanned).
    dir.write("broken.tar", vec![0x42u8; 4096]);
    let profiles = repo().join("policies/profiles");
    let run = vigil_in(
        dir.path(),
        &[
            "run",
            policy.to_str().unwrap(),
            profiles.to_str().unwrap(),
            "--out",
            "out",
            "--unsigned",
            "--plaintext",
            "--report",
            "sarif=r.sarif",
        ],
    );
    assert_eq!(run.code, 3, "{}", run.stderr);
    let log: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("r.sarif")).unwrap()).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&log)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
    // The schema check is not vacuous: a log without its version fails.
    let mut broken = log.clone();
    broken.as_object_mut().unwrap().remove("version");
    assert!(!validator.is_valid(&broken));
    let all = log["runs"][0]["results"].as_array().unwrap();
    // The missed coverage gate is a result at the policy, with its rule.
    let (gate, results): (Vec<&Value>, Vec<&Value>) =
        all.iter().partition(|r| r["ruleId"] == "vigil/coverage");
    assert_eq!(gate.len(), 1, "{log:#}");
    let gate_rule =
        &log["runs"][0]["tool"]["driver"]["rules"][gate[0]["ruleIndex"].as_u64().unwrap() as usize];
    assert_eq!(gate_rule["id"], "vigil/coverage");
    assert!(
        gate[0]["message"]["text"]
            .as_str()
            .unwrap()
            .contains("coverage: 1 of 2 targets scanned (50.0%)"),
        "{}",
        gate[0]
    );
    assert_eq!(
        log["runs"][0]["properties"]["vigil"]["coverage"][0]["coverage"]["gaps"][0]["reason"],
        "error"
    );
    // The unscanned target's controls are error results; alpine's failed
    // ones are the rest.
    let results: Vec<&Value> = results
        .into_iter()
        .filter(|r| r["properties"]["target"] == "rootfs/alpine")
        .collect();
    assert_eq!(results.len(), 11, "alpine's failed controls");
    let baseline = std::fs::read_to_string(profiles.join("container-baseline.yaml")).unwrap();
    for r in results {
        let id = r["ruleId"].as_str().unwrap();
        let loc = &r["locations"][0]["physicalLocation"];
        let uri = loc["artifactLocation"]["uri"].as_str().unwrap();
        assert!(uri.ends_with("container-baseline.yaml"), "{uri}");
        let line = loc["region"]["startLine"].as_u64().unwrap() as usize;
        assert!(
            baseline
                .lines()
                .nth(line - 1)
                .unwrap()
                .contains(&format!("id: {id}")),
            "{id} at line {line}"
        );
        assert_eq!(
            r["partialFingerprints"]["vigilTargetControl/v1"]
                .as_str()
                .unwrap()
                .len(),
            64
        );
        let rule =
            &log["runs"][0]["tool"]["driver"]["rules"][r["ruleIndex"].as_u64().unwrap() as usize];
        assert_eq!(rule["id"], id);
        assert!(rule["properties"]["security-severity"].is_string());
    }
}

/// The SAF CLI binary, if installed (`.ci/run` installs @mitre/saf 1.5.3).
fn saf() -> Option<PathBuf> {
    let bin = std::env::var_os("VIGIL_SAF_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/interop/saf/node_modules/.bin/saf"));
    if bin.is_file() {
        return Some(bin);
    }
    crate::util::prerequisite(false, &format!("the SAF CLI at {}", bin.display()));
    None
}

/// Scan one fixture root (`alpine`, `debian`, …) with the container
/// baseline, unsigned and in plaintext, in `dir`; returns its HDF file.
fn scanned_fixture(dir: &TempDir, fx: &TempDir, tree: &str) -> PathBuf {
    let policy = dir.write(
        "p.yaml",
        format!(
            "apiVersion: vigil/v1\nkind: ScanPolicy\nmetadata: {{name: o}}\nspec:\n  profiles: [container-baseline]\n  targets:\n    - {{rootfs: {}, name: {tree}}}\n",
            fx.path().join("rootfs").join(tree).display()
        ),
    );
    let profiles = repo().join("policies/profiles");
    let run = vigil_in(
        dir.path(),
        &[
            "run",
            policy.to_str().unwrap(),
            profiles.to_str().unwrap(),
            "--out",
            "out",
            "--unsigned",
            "--plaintext",
        ],
    );
    assert!(run.code <= 1, "{}", run.stderr);
    std::fs::read_dir(dir.path().join("out/o"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path()
        .join(format!("targets/rootfs_{tree}.hdf.json"))
}

/// vigil's threshold verdicts against `saf validate threshold` (SAF CLI
/// 1.5.3) over a matrix of HDF files (the real InSpec sample, a vigil
/// result) and threshold shapes: every verdict agrees, or the difference
/// is one vigil names (`saf_differences`, a `saf-difference` warning) —
/// and each documented quirk really is one.
#[test]
fn threshold_verdicts_agree_with_the_saf_cli() {
    let Some(saf) = saf() else { return };
    use vigil::policy::threshold::{Threshold, saf_differences};
    let fx = rootfs_fixtures();
    let dir = TempDir::new("saf-oracle");
    let ours = scanned_fixture(&dir, &fx, "alpine");
    let hdfs = [repo().join("fixtures/hdf/inspec-nginx-results.json"), ours];
    let shapes: Vec<(&str, bool)> = vec![
        ("compliance: {min: 80}", false),
        ("compliance: {min: 40}", false),
        ("failed: {critical: {max: 0}}", false),
        ("failed: {high: {max: 3}}", false),
        ("passed: {total: {min: 10}}", false),
        ("error: {total: {max: 0}}", false),
        ("skipped: {total: {max: 0}}", false),
        ("compliance: {max: 0}", true),
        ("failed: {high: {controls: []}}", true),
        ("no_impact: {total: {max: 0}}", true),
    ];
    let mut jobs = Vec::new();
    for (h, hdf) in hdfs.iter().enumerate() {
        for (i, (shape, quirk)) in shapes.iter().enumerate() {
            let file = dir.write(&format!("t{h}-{i}.yaml"), format!("{shape}\n"));
            let (saf, hdf, shape, quirk) = (saf.clone(), hdf.clone(), shape.to_string(), *quirk);
            let cwd = dir.path().to_path_buf();
            jobs.push(std::thread::spawn(move || {
                // In the temporary directory: the SAF CLI writes its
                // saf-cli.log where it runs.
                let out = Command::new(&saf)
                    .current_dir(&cwd)
                    .args(["validate", "threshold", "-i"])
                    .arg(&hdf)
                    .arg("-T")
                    .arg(&file)
                    .output()
                    .unwrap();
                (
                    hdf,
                    shape,
                    quirk,
                    out.status.success(),
                    String::from_utf8_lossy(&out.stdout).to_string()
                        + &String::from_utf8_lossy(&out.stderr),
                )
            }));
        }
    }
    let mut differing_quirks = 0;
    for j in jobs {
        let (hdf, shape, quirk, saf_passed, saf_said) = j.join().unwrap();
        let value: Value = serde_saphyr::from_str(&shape).unwrap();
        let doc = vigil::report::import::read(&std::fs::read(&hdf).unwrap()).unwrap();
        let ours = Threshold::parse(&value)
            .unwrap()
            .evaluate(&doc.counts())
            .is_none_or(|v| v.passed);
        let named = !saf_differences(&value, 1).is_empty();
        assert_eq!(
            named, quirk,
            "{shape}: the quirk list and the test disagree"
        );
        if ours != saf_passed {
            assert!(
                named,
                "{shape} on {hdf:?}: vigil {ours}, SAF {saf_passed}, and no saf-difference names why\n{saf_said}"
            );
            differing_quirks += 1;
        }
    }
    assert!(
        differing_quirks > 0,
        "no documented quirk showed on this data: the oracle is not exercised"
    );
}

/// SAF CLI's converters read vigil's HDF: the DISA checklist (hdf2ckl) and
/// the CSV (hdf2csv) name every control.
#[test]
fn saf_converters_read_vigil_results() {
    let Some(saf) = saf() else { return };
    let fx = rootfs_fixtures();
    let dir = TempDir::new("saf-convert");
    let hdf_path = scanned_fixture(&dir, &fx, "debian");
    let hdf: Value = serde_json::from_slice(&std::fs::read(&hdf_path).unwrap()).unwrap();
    let ids: Vec<String> = hdf["profiles"][0]["controls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect();
    assert!(ids.len() >= 20);
    for (cmd, out) in [("hdf2ckl", "r.ckl"), ("hdf2csv", "r.csv")] {
        let o = Command::new(&saf)
            .args(["convert", cmd, "-i"])
            .arg(&hdf_path)
            .args(["-o", out])
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{cmd}: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        let text = std::fs::read_to_string(dir.path().join(out)).unwrap();
        for id in &ids {
            assert!(text.contains(id.as_str()), "{cmd} lost control {id}");
        }
    }
}

/// `vigil open --report` writes the same reports from a sealed bundle: the
/// JUnit file is read by junitparser with the statement's counts, the SARIF
/// passes the official schema, the markdown names the verdict.
#[test]
fn open_writes_the_same_ci_reports_from_a_bundle() {
    let schema_path = std::env::var_os("VIGIL_SARIF_SCHEMA")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/interop/sarif-2.1.0-rtm.5.json"));
    let junitparser = crate::util::python_module("junitparser");
    if !crate::util::prerequisite(
        schema_path.is_file() && junitparser,
        "junitparser and the SARIF 2.1.0 schema",
    ) {
        return;
    }
    let fx = rootfs_fixtures();
    let dir = TempDir::new("open-reports");
    crate::util::signing_key(dir.path());
    assert_eq!(
        vigil_in(dir.path(), &["keygen", "age", "--out", "auditor"]).code,
        0
    );
    let recipient = std::fs::read_to_string(dir.path().join("auditor.pub")).unwrap();
    let policy = dir.write(
        "p.yaml",
        format!(
            "apiVersion: vigil/v1\nkind: ScanPolicy\nmetadata: {{name: ci}}\nspec:\n  profiles: [container-baseline]\n  targets:\n    - {{rootfs: {}, name: alpine}}\n  threshold: {{compliance: {{min: 80}}}}\n  output: {{signingKey: signer.key.pem, recipients: [\"{}\"]}}\n",
            fx.path().join("rootfs/alpine").display(),
            recipient.trim()
        ),
    );
    let profiles = repo().join("policies/profiles");
    let run = vigil_in(
        dir.path(),
        &[
            "run",
            policy.to_str().unwrap(),
            profiles.to_str().unwrap(),
            "--out",
            "out",
        ],
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    let bundle = std::fs::read_dir(dir.path().join("out/ci"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let open = vigil_in(
        dir.path(),
        &[
            "open",
            bundle.to_str().unwrap(),
            "--trusted-key",
            "signer.pub.pem",
            "--identity",
            "auditor.key",
            "--report",
            "junit=o.xml",
            "--report",
            "sarif=o.sarif",
            "--report",
            "markdown=o.md",
        ],
    );
    assert_eq!(open.code, 0, "{}", open.stderr);
    let suites = junit_suites(dir.path(), "o.xml");
    assert_eq!(
        suites["ci/rootfs/alpine"],
        serde_json::json!([24, 11, 0, 0]),
        "{suites}"
    );
    let mut schema: Value = serde_json::from_slice(&std::fs::read(&schema_path).unwrap()).unwrap();
    let text = serde_json::to_string(&schema)
        .unwrap()
        .replace("{2}]?$", "{2}\\\\]?$");
    schema = serde_json::from_str(&text).unwrap();
    let log: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("o.sarif")).unwrap()).unwrap();
    assert!(jsonschema::validator_for(&schema).unwrap().is_valid(&log));
    assert_eq!(log["runs"][0]["results"].as_array().unwrap().len(), 11);
    let md = std::fs::read_to_string(dir.path().join("o.md")).unwrap();
    assert!(
        md.contains("verdict **fail**") && md.contains("CB-05 failed (critical)"),
        "{md}"
    );
}

/// What junitparser (as CI systems read JUnit) makes of `file` in `dir`:
/// suite name → [tests, failures, errors, skipped].
fn junit_suites(dir: &std::path::Path, file: &str) -> Value {
    let script = "import sys, json, junitparser\nx = junitparser.JUnitXml.fromfile(sys.argv[1])\nprint(json.dumps({s.name: [s.tests, s.failures, s.errors, s.skipped] for s in x}))";
    let out = Command::new("python3")
        .args(["-c", script, file])
        .current_dir(dir)
        .output()
        .unwrap();
    oracle_json("junitparser", &out)
}

/// What compliance-trestle (NIST's OSCAL model, PyPI) makes of an OSCAL
/// assessment-results file in `dir` after loading it: per result, the
/// targets, the number of observations, the findings (control id, OSCAL
/// target, reason) and the waived observations (control id, state,
/// expiry). Loading fails on any field the model refuses.
fn trestle_check(dir: &std::path::Path, file: &str) -> Value {
    let out = Command::new("python3")
        .arg(repo().join("tests/interop/oscal-check.py"))
        .arg(file)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "trestle refused {file}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    if let Some(ok) = metaschema_check(dir, file) {
        assert!(
            ok.status.success(),
            "the OSCAL metaschema check refused {file}: {}",
            String::from_utf8_lossy(&ok.stderr)
        );
    }
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The second OSCAL implementation's verdict on `file`
/// (tests/interop/oscal-metaschema-check.py: NIST's metaschema through the
/// `oscal` package, installed by `.ci/run` in a virtualenv of its own whose
/// python `VIGIL_OSCAL_PYTHON` names), or `None` when it is not installed.
fn metaschema_check(dir: &std::path::Path, file: &str) -> Option<std::process::Output> {
    let python = std::env::var_os("VIGIL_OSCAL_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/interop/oscal-venv/bin/python"));
    let present = python.is_file();
    crate::util::prerequisite(
        present,
        &format!(
            "the `oscal` package's python at {} (.ci/run installs it)",
            python.display()
        ),
    )
    .then(|| {
        Command::new(&python)
            .arg(repo().join("tests/interop/oscal-metaschema-check.py"))
            .arg(file)
            .current_dir(dir)
            .output()
            .unwrap()
    })
}

/// `--report oscal=FILE`: OSCAL assessment results that compliance-trestle
/// loads, for a run with a failing target, a waived control and a target
/// that could not be scanned (`run`), for the same sealed bundle twice
/// (`open`: the same bytes), and for an imported report. Observations are
/// every control of every target, findings exactly the failed and error
/// controls, with their first NIST tag as the OSCAL control id.
#[test]
fn oscal_assessment_results_are_accepted_by_compliance_trestle() {
    let present = crate::util::python_module("trestle.oscal.assessment_results");
    if !crate::util::prerequisite(present, "compliance-trestle (PyPI)") {
        return;
    }
    let fx = rootfs_fixtures();
    let dir = TempDir::new("oscal");
    crate::util::signing_key(dir.path());
    let r = fx.path().join("rootfs");
    // A tar that is not one: planned, then an error target.
    dir.write("broken.tar", vec![0x42u8; 4096]);
    assert_eq!(
        vigil_in(dir.path(), &["keygen", "age", "--out", "auditor"]).code,
        0
    );
    let recipient = std::fs::read_to_string(dir.path().join("auditor.pub")).unwrap();
    let policy = dir.write(
        "p.yaml",
        format!(
            "apiVersion: vigil/v1\nkind: ScanPolicy\nmetadata: {{name: grc}}\nspec:\n  profiles: [container-baseline]\n  targets:\n    - {{rootfs: {0}/alpine, name: alpine}}\n    - {{rootfs: {0}/debian, name: debian}}\n    - {{rootfs: broken.tar, name: gone}}\n  threshold: {{compliance: {{min: 80}}}}\n  waivers:\n    - {{control: CB-05, expires: \"2099-01-01T00:00:00Z\", justification: \"root alias kept\\nfor the vendor's agent\", approver: grc@example.com}}\n  output: {{signingKey: signer.key.pem, recipients: [\"{1}\"]}}\n",
            r.display(),
            recipient.trim()
        ),
    );
    let profiles = repo().join("policies/profiles");
    let run = vigil_in(
        dir.path(),
        &[
            "run",
            policy.to_str().unwrap(),
            profiles.to_str().unwrap(),
            "--out",
            "out",
            "--format",
            "json",
            "--report",
            "oscal=run.json",
        ],
    );
    assert!(run.code == 1 || run.code == 3, "{}", run.stderr);
    let summary: Value = serde_json::from_str(&run.stdout).unwrap();
    let checked = trestle_check(dir.path(), "run.json");
    let result = &checked[0];
    // Neither validator accepts everything: each refuses a result without
    // its start, an observation whose uuid is not a UUID, and a finding
    // whose status is not one OSCAL allows.
    let good: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("run.json")).unwrap()).unwrap();
    let breakages: [(&str, fn(&mut Value)); 3] = [
        ("no start", |d| {
            d["assessment-results"]["results"][0]
                .as_object_mut()
                .unwrap()
                .remove("start");
        }),
        ("uuid", |d| {
            d["assessment-results"]["results"][0]["observations"][0]["uuid"] = "o-1".into();
        }),
        ("state", |d| {
            d["assessment-results"]["results"][0]["findings"][0]["target"]["status"]["state"] =
                "broken".into();
        }),
    ];
    for (what, break_it) in breakages {
        let mut bad = good.clone();
        break_it(&mut bad);
        dir.write("bad.json", serde_json::to_vec(&bad).unwrap());
        let trestle = Command::new("python3")
            .arg(repo().join("tests/interop/oscal-check.py"))
            .arg("bad.json")
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(!trestle.status.success(), "trestle took {what}");
        if let Some(meta) = metaschema_check(dir.path(), "bad.json") {
            assert!(!meta.status.success(), "the metaschema check took {what}");
        }
    }
    // The run's coverage, as result properties trestle accepted: 2 of 3
    // targets scanned, the broken archive an `error`.
    let doc: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("run.json")).unwrap()).unwrap();
    let props: Vec<(&str, &str)> = doc["assessment-results"]["results"][0]["props"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["name"].as_str().unwrap(), p["value"].as_str().unwrap()))
        .collect();
    for want in [
        ("coverage-expected", "3"),
        ("coverage-scanned", "2"),
        ("not-scanned-error", "1"),
    ] {
        assert!(props.contains(&want), "{want:?} in {props:?}");
    }
    let targets = summary[0]["targets"].as_array().unwrap();
    let ids: Vec<&str> = targets.iter().map(|t| t["id"].as_str().unwrap()).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(result["targets"], serde_json::json!(sorted));
    let count = |k: &str| -> u64 {
        targets
            .iter()
            .map(|t| t["counts"][k].as_u64().unwrap())
            .sum()
    };
    let all = ["passed", "failed", "skipped", "no_impact", "error"]
        .iter()
        .map(|k| count(k))
        .sum::<u64>();
    assert_eq!(result["observations"], all, "{checked}");
    let findings = result["findings"].as_array().unwrap();
    assert_eq!(
        findings.len() as u64,
        count("failed") + count("error"),
        "{checked}"
    );
    // The target that could not be scanned: every control an error finding.
    let gone = targets.iter().find(|t| t["status"] == "error").unwrap();
    assert!(gone["counts"]["error"].as_u64().unwrap() > 0, "{gone}");
    assert!(findings.iter().any(|f| f[2] == "other"), "{checked}");
    // NIST tags become OSCAL control ids (CB-05 is tagged AC-6 … in the
    // profile; a finding of it, where it fails unwaived, targets one).
    assert!(
        findings.iter().all(|f| f[1]
            .as_str()
            .unwrap()
            .chars()
            .next()
            .unwrap()
            .is_ascii_lowercase()
            || f[1].as_str().unwrap().starts_with("CB-")),
        "{checked}"
    );
    // The waiver: on every scanned target's CB-05, active, with its expiry.
    let waived = result["waived"].as_array().unwrap();
    assert!(
        !waived.is_empty()
            && waived
                .iter()
                .all(|w| w == &serde_json::json!(["CB-05", "true", "2099-01-01T00:00:00Z"])),
        "{checked}"
    );

    // The sealed bundle, opened twice: the same document, byte for byte.
    let bundle = dir
        .path()
        .join("out/grc")
        .join(summary[0]["run_id"].as_str().unwrap());
    for out in ["open-1.json", "open-2.json"] {
        let open = vigil_in(
            dir.path(),
            &[
                "open",
                bundle.to_str().unwrap(),
                "--trusted-key",
                "signer.pub.pem",
                "--identity",
                "auditor.key",
                "--report",
                &format!("oscal={out}"),
            ],
        );
        assert!(open.code == 0 || open.code == 1, "{}", open.stderr);
    }
    let (a, b) = (
        std::fs::read(dir.path().join("open-1.json")).unwrap(),
        std::fs::read(dir.path().join("open-2.json")).unwrap(),
    );
    assert_eq!(a, b, "the same bundle gives the same document");
    let opened = trestle_check(dir.path(), "open-1.json");
    assert_eq!(opened[0]["findings"], result["findings"], "{opened}");
    assert_eq!(opened[0]["observations"], result["observations"]);

    // An imported report (InSpec's nginx sample), sealed, then opened.
    std::fs::copy(
        repo().join("fixtures/hdf/inspec-nginx-results.json"),
        dir.path().join("nginx.json"),
    )
    .unwrap();
    dir.write(
        "imp.yaml",
        format!("apiVersion: vigil/v1\nkind: ScanPolicy\nmetadata: {{name: nginx}}\nspec:\n  profiles: [container-baseline]\n  targets:\n    - {{namespace: web}}\n  output: {{recipients: [\"{}\"]}}\n", recipient.trim()),
    );
    let isum = import_then_open(dir.path(), &profiles, "out", "imported.json");
    let imported = trestle_check(dir.path(), "imported.json");
    let c = &isum["targets"][0]["counts"];
    let total: u64 = ["passed", "failed", "skipped", "no_impact", "error"]
        .iter()
        .map(|k| c[k].as_u64().unwrap())
        .sum();
    assert_eq!(imported[0]["observations"], total, "{imported}");
    assert_eq!(
        imported[0]["findings"].as_array().unwrap().len() as u64,
        c["failed"].as_u64().unwrap() + c["error"].as_u64().unwrap()
    );
    let text = std::fs::read_to_string(dir.path().join("imported.json")).unwrap();
    assert!(
        text.contains("\"evidence-source\""),
        "imported results say so"
    );

    // Hostile text from an imported report (an empty id, control
    // characters, newlines in one-line fields, tags of the wrong types, a
    // blank waiver) still makes a document the model accepts.
    let evil = serde_json::json!({"platform": {"name": "x", "release": "1"}, "version": "5", "statistics": {},
        "profiles": [{"name": "p", "sha256": "0".repeat(64), "supports": [], "attributes": [], "groups": [], "controls": [
            {"id": "", "title": "\n\n", "impact": 0.5, "tags": {"nist": ["AC-6(1)", 5, {"x": 1}, "  ", "Rev_5"]},
             "results": [{"status": "failed", "message": "\u{1b}[2J\nline2", "code_desc": "x"}]},
            {"id": "1 weird/id\u{7}", "title": "t", "impact": 0.7, "tags": {"nist": "AC-1"},
             "results": [{"status": "error", "message": "", "code_desc": ""}]},
            {"id": "W", "title": "w", "impact": 0.7,
             "waiver_data": {"skipped_due_to_waiver": true, "justification": "", "expiration_date": "  "},
             "results": [{"status": "failed", "code_desc": "y"}]}]}]});
    dir.write("nginx.json", serde_json::to_vec(&evil).unwrap());
    import_then_open(dir.path(), &profiles, "evil", "evil.json");
    let evil = trestle_check(dir.path(), "evil.json");
    let findings = evil[0]["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 2, "{evil}");
    assert!(findings.iter().any(|f| f[1] == "ac-6.1"), "{evil}");
    assert_eq!(evil[0]["waived"], serde_json::json!([["W", "true", ""]]));
}

/// `vigil import nginx.json` (policy `imp.yaml`, into `out`), then `vigil
/// open` of the sealed bundle with `--report oscal=REPORT`; the import's
/// summary.
fn import_then_open(
    dir: &std::path::Path,
    profiles: &std::path::Path,
    out: &str,
    report: &str,
) -> Value {
    let imported = vigil_in(
        dir,
        &[
            "import",
            "nginx.json",
            "--policy-file",
            "imp.yaml",
            "--policy-file",
            profiles.to_str().unwrap(),
            "--out",
            out,
            "--signing-key",
            "signer.key.pem",
            "--format",
            "json",
        ],
    );
    assert_eq!(imported.code, 0, "{}", imported.stderr);
    let summary: Value = serde_json::from_str(&imported.stdout).unwrap();
    let bundle = dir
        .join(out)
        .join("nginx")
        .join(summary["run_id"].as_str().unwrap());
    let open = vigil_in(
        dir,
        &[
            "open",
            bundle.to_str().unwrap(),
            "--trusted-key",
            "signer.pub.pem",
            "--identity",
            "auditor.key",
            "--report",
            &format!("oscal={report}"),
        ],
    );
    assert!(open.code == 0 || open.code == 1, "{}", open.stderr);
    summary
}
