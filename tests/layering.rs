//! The module graph follows the data flow: no import cycles between
//! top-level modules, and the leaves (`seal`, `cluster`) import nothing
//! from the modules that orchestrate them (docs/architecture.md).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// `src/FILE:LINE` of byte offset `i` of `text`, read from `file`.
fn at(file: &Path, text: &str, i: usize) -> String {
    let line = text[..i].lines().count() + 1;
    let shown = file.strip_prefix(crate::util::repo()).unwrap().display();
    format!("{shown}:{line}")
}

/// Every `.rs` file under `src/`.
fn source_files() -> Vec<std::path::PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut out);
    out
}

/// Top-level module → the top-level modules its non-test code names as
/// `crate::NAME`.
fn module_graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let files = source_files();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in files {
        let rel = f.strip_prefix(&src).unwrap();
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        let module = first.trim_end_matches(".rs").to_string();
        if module == "lib" || module == "main" {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap();
        // Unit tests may reach anywhere; only the code itself counts.
        let code = text.split("#[cfg(test)]\nmod ").next().unwrap();
        let deps = graph.entry(module.clone()).or_default();
        for (i, _) in code.match_indices("crate::") {
            let name: String = code[i + 7..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            if !name.is_empty() && name != module {
                deps.insert(name);
            }
        }
    }
    graph
}

fn reaches(graph: &BTreeMap<String, BTreeSet<String>>, from: &str, to: &str) -> bool {
    let mut seen = BTreeSet::new();
    let mut stack = vec![from.to_string()];
    while let Some(m) = stack.pop() {
        for d in graph.get(&m).into_iter().flatten() {
            if d == to {
                return true;
            }
            if seen.insert(d.clone()) {
                stack.push(d.clone());
            }
        }
    }
    false
}

#[test]
fn top_level_modules_have_no_import_cycles() {
    let graph = module_graph();
    assert!(graph.contains_key("runner") && graph.contains_key("seal"));
    let cycles: Vec<String> = graph
        .iter()
        .flat_map(|(m, deps)| deps.iter().map(move |d| (m, d)))
        .filter(|(m, d)| reaches(&graph, d, m))
        .map(|(m, d)| format!("{m} -> {d}"))
        .collect();
    assert!(cycles.is_empty(), "import cycles through: {cycles:?}");
}

#[test]
fn seal_and_cluster_import_nothing_from_runner_plan_or_inventory() {
    let graph = module_graph();
    for leaf in ["seal", "cluster"] {
        let deps = &graph[leaf];
        for upstream in ["runner", "plan", "inventory", "cli"] {
            assert!(!deps.contains(upstream), "{leaf} imports {upstream}");
        }
    }
}

/// The arrows docs/architecture.md says data never flows along: an earlier
/// step never reaches into a later one's types. `approach` gathers facts
/// and knows nothing of reports; `plan` works offline and holds no client
/// (`cluster`); `checks` are pure and import no I/O module.
#[test]
fn the_documented_never_arrows_hold() {
    let graph = module_graph();
    for (from, never) in [
        ("approach", &["report", "seal", "runner", "cli"][..]),
        (
            "plan",
            &["cluster", "access", "runner", "cli", "report", "seal"][..],
        ),
        (
            "checks",
            &["cluster", "approach", "runner", "cli", "seal", "registry"][..],
        ),
        ("facts", &["report", "seal", "runner", "cli", "checks"][..]),
        (
            "policy",
            &["runner", "cli", "cluster", "access", "approach"][..],
        ),
    ] {
        for to in never {
            assert!(
                !graph[from].contains(*to),
                "{from} imports {to}, against docs/architecture.md"
            );
        }
    }
}

/// Within a top-level module, the second-level modules have no import
/// cycle either (`seal::attest` and `seal::verify` once did).
#[test]
fn second_level_modules_have_no_import_cycles() {
    let src = crate::util::repo().join("src");
    let mut cycles = Vec::new();
    for top in std::fs::read_dir(&src).unwrap().flatten() {
        if !top.path().is_dir() {
            continue;
        }
        let parent = top.file_name().to_string_lossy().into_owned();
        let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut files = Vec::new();
        for e in std::fs::read_dir(top.path()).unwrap().flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "rs") {
                let name = p.file_stem().unwrap().to_string_lossy().into_owned();
                if name != "mod" && name != "tests" {
                    files.push((name, p));
                }
            } else if p.is_dir() && p.join("mod.rs").is_file() {
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                files.push((name, p.join("mod.rs")));
            }
        }
        let names: BTreeSet<String> = files.iter().map(|(n, _)| n.clone()).collect();
        for (name, path) in &files {
            let text = std::fs::read_to_string(path).unwrap();
            let code = text.split("#[cfg(test)]\nmod ").next().unwrap();
            let deps = graph.entry(name.clone()).or_default();
            for prefix in [format!("crate::{parent}::"), "super::".to_string()] {
                for (i, _) in code.match_indices(&prefix) {
                    let dep: String = code[i + prefix.len()..]
                        .chars()
                        .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                        .collect();
                    if dep != *name && names.contains(&dep) {
                        deps.insert(dep);
                    }
                }
            }
        }
        for (m, deps) in &graph {
            for d in deps {
                if reaches(&graph, d, m) {
                    cycles.push(format!("{parent}::{m} -> {parent}::{d}"));
                }
            }
        }
    }
    assert!(cycles.is_empty(), "second-level import cycles: {cycles:?}");
}

/// The registry client and cosign verification know nothing of policies,
/// plans, clusters or runs: only the leaves (and cosign the registry).
#[test]
fn registry_and_cosign_import_only_leaves() {
    let graph = module_graph();
    let leaves = ["diag", "redact", "encoding", "safeio"];
    for (module, also) in [("registry", None), ("cosign", Some("registry"))] {
        for dep in &graph[module] {
            assert!(
                leaves.contains(&dep.as_str()) || Some(dep.as_str()) == also,
                "{module} imports {dep}"
            );
        }
    }
}

/// Public functions say what failed with a typed error (kube-rs style enums
/// named after what failed), never `Result<_, String>`: a caller cannot
/// match on a string, and a string error loses its source. Every `pub fn`
/// under `src/` is read as written (signature up to its body).
#[test]
fn no_public_function_returns_a_string_error() {
    let all = source_files();
    let string_error = returns_a_string_error;
    let mut offenders = Vec::new();
    for f in all {
        let text = std::fs::read_to_string(&f).unwrap();
        for (i, _) in text.match_indices("pub fn ") {
            // `pub(crate) fn` and friends are not matched: "pub fn " only.
            let sig: String = text[i..]
                .split(['{', ';'])
                .next()
                .unwrap()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            if string_error(&sig) {
                offenders.push(format!("{}: {sig}", at(&f, &text, i)));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "public functions returning Result<_, String>:\n{}",
        offenders.join("\n")
    );
}

/// Outcomes are typed (`checks::Status`, `report::ControlStatus`,
/// `report::run::TargetStatus`, `report::run::RunVerdict`,
/// `monitor::AuditVerdict`): no non-test
/// code compares one as a string (`== "failed"`, a `"error" =>` match
/// arm) or keeps one in a string `status` field. The names are written
/// only by the enums themselves (`as_str`, serde).
#[test]
fn no_outcome_is_compared_as_a_string() {
    let word = r#""(passed|failed|skipped|error|no_impact|scanned|pass|fail|clean|findings|critical|high|medium|low|imported|api|probe|debug|sidecar|local)""#;
    let compare = regex::Regex::new(&format!(
        r#"(==|!=)\s*{word}|{word}\s*(==|!=|=>|\|)|status: (String|&'static str)"#
    ))
    .unwrap();
    let mut offenders = Vec::new();
    for f in source_files() {
        let text = std::fs::read_to_string(&f).unwrap();
        let code = text.split("#[cfg(test)]\nmod ").next().unwrap();
        for m in compare.find_iter(code) {
            offenders.push(format!("{}: {}", at(&f, code, m.start()), m.as_str()));
        }
    }
    assert!(
        offenders.is_empty(),
        "outcomes compared or stored as strings (use the enums):\n{}",
        offenders.join("\n")
    );
}

/// The flags that say which keys to trust and which identities decrypt
/// are declared once (`cli::trust_args`) for every command that checks or
/// opens a bundle.
#[test]
fn verification_flags_are_declared_once() {
    for flag in ["\"trusted-key\"", "\"identity\""] {
        let mut at_ = Vec::new();
        for f in source_files() {
            let text = std::fs::read_to_string(&f).unwrap();
            for (i, _) in text.match_indices(&format!("long = {flag}")) {
                at_.push(at(&f, &text, i));
            }
        }
        assert_eq!(at_.len(), 1, "{flag} declared at {at_:?}");
    }
}

/// Public items (`pub fn`, `pub struct`, … outside test modules) in
/// `src/`: the crate's surface may only shrink. A change that adds public
/// items either makes them `pub(crate)` (most are used only inside the
/// crate) or raises this number in the same commit, saying why; one that
/// removes some lowers it. (1035 -> 1039: the coverage of a run is in
/// `RunSummary`, a statement's predicate and the plan, which embedders
/// read: `Coverage`, `GapGroup`, `Gap` and the plan's `SkipCode`. 1039 ->
/// 1044: the `attest` and `verify-attestation` subcommands' `Args` and
/// `run`, and DSSE's PAE in `encoding`, which `seal` and `cosign` share and
/// the seal tests check by hand. 1044 -> 1054: the run pipeline embedders
/// call instead of the CLI (`runner::pipeline`), `seal::options::Sealing`
/// and `monitor::AuditVerdict`. 1054 -> 651: `#![deny(unreachable_pub)]`
/// in `lib.rs`, and the modules no embedder, test or bench names made
/// `pub(crate)` (`cosign`, `registry`, `image_source`, `image::{collect,
/// index, manifest, source}`, `facts::workload`, `report::{drift,
/// threshold}`, `seal::drift`, `monitor::event`, `checks::pss`): rustc now
/// refuses a `pub` item nothing outside the crate can reach. 651 -> 652:
/// `runner::session` named, since `RunRequest` takes its `Session` and
/// embedders load and plan with it. 652 -> 651: the external scanner is a
/// `Collector` whose evidence is its report (`approach::collector::Collected`),
/// so `runner::run_external` and `ExternalScan` are gone. 651 -> 652: a
/// trail line's typed request, `audit::Call` (a public field of
/// `audit::Entry`) and its `verb`; `AuditLog::record_with` folded into
/// `record`. 652 -> 655: `policy::duration::PolicyDuration` (with `new`
/// and `get`), the typed duration of a policy's fields, parsed once when
/// the policy is read instead of at each use with a silent default.
/// 655 -> 656: `policy::threshold::InvalidThreshold`, which
/// `Threshold::of_policy` returns instead of dropping a threshold that does
/// not parse. 656 -> 659: a run summary's target keeps its findings in the
/// run's spool file (`report::spool`), so embedders read them through
/// `Findings::get`, which can fail with `SpoolError`. 659 -> 660: a
/// schedule's `catchUp` is `policy::model::CatchUp`, read once, instead of
/// a string compared at use. 660 -> 661: `approach::collector::Polled`,
/// the future `Collector::collect_polled` returns, so a cluster run polls
/// its scans on one thread instead of blocking a thread per slot. 661 ->
/// 662: `Limits::api_timeout`, the policy's `apiTimeout` read with its
/// default, like the other limits.)
const PUBLIC_ITEMS: usize = 662;

/// `unreachable_pub` is denied crate-wide, so a `pub` that nothing outside
/// the crate can name fails the build instead of inflating the surface.
#[test]
fn unreachable_pub_is_denied() {
    let lib =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs")).unwrap();
    assert!(
        lib.lines().any(|l| l.trim() == "#![deny(unreachable_pub)]"),
        "src/lib.rs must keep #![deny(unreachable_pub)]"
    );
}

#[test]
fn the_public_surface_does_not_grow() {
    let item = regex::Regex::new(
        r"(?m)^\s*pub (async fn|unsafe fn|fn|struct|enum|trait|const|type|static|mod|use) ",
    )
    .unwrap();
    let count: usize = source_files()
        .iter()
        .map(|f| {
            let text = std::fs::read_to_string(f).unwrap();
            let code = text.split("#[cfg(test)]\nmod ").next().unwrap();
            item.find_iter(code).count()
        })
        .sum();
    assert!(
        count <= PUBLIC_ITEMS,
        "{} public items more than the {PUBLIC_ITEMS} allowed: make new items pub(crate) unless embedders, tests or benches need them (then raise PUBLIC_ITEMS and say why)",
        count - PUBLIC_ITEMS
    );
    assert!(
        count == PUBLIC_ITEMS,
        "the public surface shrank to {count}: lower PUBLIC_ITEMS from {PUBLIC_ITEMS}"
    );
}

/// Returns true if and only if a signature returns `Result<T, String>`.
fn returns_a_string_error(sig: &str) -> bool {
    let Some(ret) = sig.split("->").nth(1) else {
        return false;
    };
    let ret = ret.split(" where ").next().unwrap().trim().replace(' ', "");
    ret.starts_with("Result<") && ret.ends_with(",String>")
}

/// An error prints its cause once. The one printer (`cli`) writes
/// `{:#}`, the message followed by each `source()`: a thiserror variant
/// whose message interpolates the field it also marks `#[source]` or
/// `#[from]` says the cause twice ("cannot set up access: X: X").
#[test]
fn no_error_message_repeats_its_source() {
    let all = source_files();
    let mut offenders = Vec::new();
    for f in all {
        let text = std::fs::read_to_string(&f).unwrap();
        let starts: Vec<usize> = text.match_indices("#[error(").map(|(i, _)| i).collect();
        for (k, &i) in starts.iter().enumerate() {
            let attr_end = text[i..].find(")]\n").map_or(text.len(), |e| i + e);
            let message = &text[i..attr_end];
            if message.contains("transparent") {
                continue;
            }
            // The variant: up to the next #[error or the enum's end.
            let end = starts.get(k + 1).copied().unwrap_or(text.len());
            let variant = &text[attr_end..end];
            let variant = variant.split("\n}").next().unwrap();
            // Tuple variant: `Name(#[source] T)` is field 0; struct variant:
            // `#[source]\n    name: T`.
            let mut sources = Vec::new();
            if let Some(open) = variant.find('(')
                && !variant[..open].contains('{')
            {
                let fields = &variant[open + 1..];
                for (n, field) in fields.split(',').enumerate() {
                    if field.contains("#[source]") || field.contains("#[from]") {
                        sources.push(n.to_string());
                    }
                }
            } else {
                // thiserror takes a field named `source` as the source
                // without the attribute.
                if variant.contains(" source:") {
                    sources.push("source".to_string());
                }
                for marker in ["#[source]", "#[from]"] {
                    for (j, _) in variant.match_indices(marker) {
                        let rest = variant[j + marker.len()..].trim_start();
                        let rest = rest.strip_prefix("pub ").unwrap_or(rest);
                        if let Some(name) = rest.split(':').next() {
                            sources.push(name.trim().to_string());
                        }
                    }
                }
            }
            for s in sources {
                if message.contains(&format!("{{{s}}}")) || message.contains(&format!("{{{s}:")) {
                    offenders.push(format!("{}: {message}", at(&f, &text, i)));
                }
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "error messages that print their #[source] too (it is printed after them):\n{}",
        offenders.join("\n")
    );
}

/// Functions (outside tests) longer than this many lines are a smell: split
/// them by what they decide. The ones already longer are listed with their
/// length today; they may shrink, never grow, and leave the list once under
/// the budget (so the list only gets shorter).
const FN_LINE_BUDGET: usize = 120;
const OVER_BUDGET: [(&str, &str, usize); 11] = [
    ("src/monitor/mod.rs", "check", 194),
    ("src/seal/merge.rs", "merge", 145),
    ("src/facts/shell.rs", "line", 217),
    ("src/seal/verify.rs", "verify", 200),
    ("src/plan/mod.rs", "plan_policy", 142),
    ("src/plan/mod.rs", "select_pod", 122),
    ("src/checks/file.rs", "directory", 164),
    ("src/cluster/mod.rs", "exec_streaming", 148),
    ("src/image/index.rs", "apply", 140),
    ("src/plan/incluster.rs", "pod_template", 121),
    ("src/approach/external.rs", "run", 122),
];

/// Every function of the crate's non-test code: (file, name, lines).
fn function_lengths() -> Vec<(String, String, usize)> {
    let repo = crate::util::repo();
    let mut all = source_files();
    let mut out = Vec::new();
    // Unit-test files (`mod tests;` beside the code) are not the code.
    all.retain(|f| f.file_name().is_some_and(|n| n != "tests.rs"));
    for f in all {
        let text = std::fs::read_to_string(&f).unwrap();
        let code = text.split("#[cfg(test)]\nmod ").next().unwrap();
        let lines: Vec<&str> = code.lines().collect();
        let shown = f.strip_prefix(&repo).unwrap().display().to_string();
        for (i, line) in lines.iter().enumerate() {
            let t = line.trim_start();
            let t = t
                .strip_prefix("pub(crate) ")
                .or_else(|| t.strip_prefix("pub(super) "))
                .or_else(|| t.strip_prefix("pub "))
                .unwrap_or(t);
            let t = t.strip_prefix("async ").unwrap_or(t);
            let Some(rest) = t.strip_prefix("fn ") else {
                continue;
            };
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            // The body: from the first `{` to its match (a declaration
            // ending in `;` has none).
            let (mut depth, mut started) = (0i64, false);
            for (j, l) in lines.iter().enumerate().skip(i) {
                if !started && l.trim_end().ends_with(';') && !l.contains('{') {
                    break;
                }
                for ch in l.chars() {
                    match ch {
                        '{' => {
                            depth += 1;
                            started = true;
                        }
                        '}' => depth -= 1,
                        _ => {}
                    }
                }
                if started && depth == 0 {
                    out.push((shown.clone(), name.clone(), j - i + 1));
                    break;
                }
            }
        }
    }
    out
}

#[test]
fn functions_stay_within_the_line_budget() {
    let lengths = function_lengths();
    assert!(
        lengths.len() > 500,
        "the parser found {} functions",
        lengths.len()
    );
    let mut problems = Vec::new();
    for (file, name, n) in &lengths {
        let listed = OVER_BUDGET.iter().find(|(f, g, _)| f == file && g == name);
        match listed {
            None if *n > FN_LINE_BUDGET => problems.push(format!(
                "{file}: fn {name} is {n} lines (budget {FN_LINE_BUDGET}): split it"
            )),
            Some((_, _, max)) if n > max => problems.push(format!(
                "{file}: fn {name} grew to {n} lines (was {max}, budget {FN_LINE_BUDGET}): split it"
            )),
            _ => {}
        }
    }
    for (file, name, max) in OVER_BUDGET {
        let now = lengths.iter().find(|(f, g, _)| f == file && g == name);
        match now {
            None => problems.push(format!(
                "{file}: fn {name} is gone: remove it from OVER_BUDGET"
            )),
            Some((_, _, n)) if *n <= FN_LINE_BUDGET => problems.push(format!(
                "{file}: fn {name} is {n} lines now, within budget: remove it from OVER_BUDGET"
            )),
            Some((_, _, n)) if *n < max => problems.push(format!(
                "{file}: fn {name} shrank to {n} lines: lower its entry in OVER_BUDGET from {max}"
            )),
            _ => {}
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// `cli/` parses arguments, calls the library and prints
/// (docs/architecture.md): no file of it has more than 250 lines of
/// non-test code. A command that grows past that is doing the library's
/// work (the probe's collection, the scheduler's supervision and the run's
/// per-policy loop moved out for this reason).
#[test]
fn cli_files_stay_thin() {
    let cli = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/cli");
    let mut fat = Vec::new();
    for f in source_files().into_iter().filter(|f| f.starts_with(&cli)) {
        let text = std::fs::read_to_string(&f).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap();
        let lines = code.lines().count();
        if lines > 250 {
            fat.push(format!("{}: {lines} lines", f.display()));
        }
    }
    assert!(
        fat.is_empty(),
        "cli files over 250 lines:\n{}",
        fat.join("\n")
    );
}

/// The code is as `cargo fmt` writes it (unformatted code slipped into
/// earlier commits; nothing checked it). Runs rustfmt in check mode over
/// the whole package; without rustfmt the test says so, and fails in CI.
#[test]
fn code_is_formatted() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let has_rustfmt = std::process::Command::new(&cargo)
        .args(["fmt", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !crate::util::prerequisite(has_rustfmt, "rustfmt (rustup component add rustfmt)") {
        return;
    }
    let out = std::process::Command::new(&cargo)
        .args(["fmt", "--all", "--", "--check", "-l"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "files not formatted (run cargo fmt --all):\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
