//! `vigil import` memory: a 40 MB InSpec report with a million results
//! (`VIGIL_BENCH_IMPORT_RESULTS` to change the count), imported by the
//! vigil binary as users run it. Prints the peak RSS of the import against
//! the report's size; the goal (#29) is under 3 times the input.
//!
//! Two shapes are measured, because they cost differently: 10,000
//! controls of 100 results each (a scanner that reports per file), and a
//! million controls of one result each (the worst case per byte: every
//! control is kept, counted and listed in the summary).
//!
//! Run with `cargo bench --bench import`.

use std::io::Write as _;
use std::path::Path;
use std::time::Instant;

#[path = "common.rs"]
mod common;

fn main() {
    let results: usize = std::env::var("VIGIL_BENCH_IMPORT_RESULTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = std::env::temp_dir().join(format!("vigil-bench-import-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("p.yaml"),
        "apiVersion: vigil/v1\nkind: ScanPolicy\nmetadata: {name: bench}\nspec:\n  profiles: [container-baseline]\n  targets:\n    - {namespace: web}\n",
    )
    .unwrap();
    let mut failed = false;
    for (shape, per_control) in [
        ("100 results per control", 100),
        ("1 result per control", 1),
    ] {
        let report = dir.join("report.json");
        write_report(&report, results / per_control, per_control);
        let size = std::fs::metadata(&report).unwrap().len();
        let _ = std::fs::remove_dir_all(dir.join("out"));
        let profiles = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/profiles");
        let started = Instant::now();
        let (code, kib) = common::child_peak_rss_kib(
            std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
                .current_dir(&dir)
                .args([
                    "import",
                    "report.json",
                    "--policy-file",
                    "p.yaml",
                    "--policy-file",
                ])
                .arg(&profiles)
                .args(["--unsigned", "--plaintext", "--out", "out"])
                .stdout(std::process::Stdio::null()),
        );
        let ratio = (kib << 10) as f64 / size as f64;
        println!(
            "import bench: {shape}: {results} results, {:.1} MB report: {:.2} s, peak RSS {:.1} MB = {ratio:.2}× the input (goal < 3×){}",
            size as f64 / 1e6,
            started.elapsed().as_secs_f64(),
            (kib << 10) as f64 / 1e6,
            if ratio < 3.0 {
                ""
            } else {
                "  ** over the goal **"
            }
        );
        // Exit 1 is a threshold verdict, not a failure of the import.
        if code != 0 && code != 1 {
            eprintln!("import bench: vigil import exited {code}");
            failed = true;
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!failed, "an import failed");
}

/// An InSpec-shaped report: `controls` controls of `per` results each,
/// each result with a status and a short code_desc.
fn write_report(path: &Path, controls: usize, per: usize) {
    let mut w = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    write!(
        w,
        r#"{{"platform":{{"name":"bench","release":"1"}},"profiles":[{{"name":"bench","controls":["#
    )
    .unwrap();
    for c in 0..controls {
        if c > 0 {
            w.write_all(b",").unwrap();
        }
        write!(w, r#"{{"id":"C-{c}","impact":0.5,"results":["#).unwrap();
        for r in 0..per {
            if r > 0 {
                w.write_all(b",").unwrap();
            }
            let status = if (c + r) % 7 == 0 { "failed" } else { "passed" };
            write!(w, r#"{{"status":"{status}","code_desc":"f{r}"}}"#).unwrap();
        }
        w.write_all(b"]}").unwrap();
    }
    w.write_all(b"]}]}").unwrap();
    w.flush().unwrap();
}
