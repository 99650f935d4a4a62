//! The README's demo, as a new user meets it: the fixture roots ship as
//! tar archives (`fixtures/demo/*.tar.gz`) whose headers carry the modes,
//! owners and setuid bits of `fixtures/rootfs/manifest.txt`, so the demo
//! shows the same findings on any clone and under any umask (git keeps only
//! 0644 and 0755, and a checkout applies the umask).
//!
//! The archives are made from the trees by [`archive`]; a test checks that
//! the shipped ones are exactly that, so the trees and the archives cannot
//! drift apart. `VIGIL_BLESS=1 cargo test --test integration demo::` writes
//! them after a change to a tree or to the manifest.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use crate::util::repo;

/// The demo roots.
const ROOTS: [&str; 3] = ["debian", "alpine", "distroless"];

/// `manifest.txt`: path (relative to `fixtures/rootfs`) → (mode, uid, gid).
fn manifest() -> BTreeMap<String, (u32, u64, u64)> {
    let text = std::fs::read_to_string(repo().join("fixtures/rootfs/manifest.txt")).unwrap();
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (
                f[3].to_string(),
                (
                    u32::from_str_radix(f[0], 8).unwrap(),
                    f[1].parse().unwrap(),
                    f[2].parse().unwrap(),
                ),
            )
        })
        .collect()
}

/// The uncompressed archive of the tree `fixtures/rootfs/<name>`, as
/// `docker export` lays one out (names relative to the root, directories
/// with a trailing `/`), byte for byte the same on any checkout: entries
/// sorted, mtime 0, no user or group names, modes and owners from the
/// manifest, else what git keeps (0755 for an executable file and every
/// directory, 0644 for other files; the owner's execute bit survives any
/// umask).
pub fn archive(name: &str) -> Vec<u8> {
    let manifest = manifest();
    let top = repo().join("fixtures/rootfs").join(name);
    let mut paths = Vec::new();
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            out.push(p.clone());
            if p.is_dir() && !p.is_symlink() {
                walk(&p, out);
            }
        }
    }
    walk(&top, &mut paths);
    paths.sort();
    let mut b = tar::Builder::new(Vec::new());
    for p in paths {
        let rel = p.strip_prefix(&top).unwrap().to_str().unwrap().to_string();
        let meta = std::fs::symlink_metadata(&p).unwrap();
        let (mut mode, uid, gid) = manifest
            .get(&format!("{name}/{rel}"))
            .copied()
            .unwrap_or_else(|| {
                use std::os::unix::fs::PermissionsExt as _;
                let x = meta.is_dir() || meta.permissions().mode() & 0o100 != 0;
                (if x { 0o755 } else { 0o644 }, 0, 0)
            });
        let mut h = tar::Header::new_ustar();
        h.set_mtime(0);
        h.set_uid(uid);
        h.set_gid(gid);
        if meta.file_type().is_symlink() {
            mode = 0o777;
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_size(0);
            h.set_mode(mode);
            h.set_link_name(std::fs::read_link(&p).unwrap()).unwrap();
            h.set_path(&rel).unwrap();
            h.set_cksum();
            b.append(&h, std::io::empty()).unwrap();
        } else if meta.is_dir() {
            h.set_entry_type(tar::EntryType::Directory);
            h.set_size(0);
            h.set_mode(mode);
            h.set_path(format!("{rel}/")).unwrap();
            h.set_cksum();
            b.append(&h, std::io::empty()).unwrap();
        } else {
            let data = std::fs::read(&p).unwrap();
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(data.len() as u64);
            h.set_mode(mode);
            h.set_path(&rel).unwrap();
            h.set_cksum();
            b.append(&h, &data[..]).unwrap();
        }
    }
    b.into_inner().unwrap()
}

/// The shipped archive of `name`.
fn shipped(name: &str) -> PathBuf {
    repo().join(format!("fixtures/demo/{name}.tar.gz"))
}

/// The shipped archives are the trees and the manifest, exactly.
#[test]
fn the_demo_archives_are_the_fixture_trees_with_the_manifest() {
    for name in ROOTS {
        let want = archive(name);
        if std::env::var_os("VIGIL_BLESS").is_some() {
            std::fs::create_dir_all(repo().join("fixtures/demo")).unwrap();
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
            std::io::Write::write_all(&mut gz, &want).unwrap();
            std::fs::write(shipped(name), gz.finish().unwrap()).unwrap();
        }
        let mut got = Vec::new();
        flate2::read::GzDecoder::new(std::fs::File::open(shipped(name)).unwrap())
            .read_to_end(&mut got)
            .unwrap();
        assert!(
            got == want,
            "fixtures/demo/{name}.tar.gz is not fixtures/rootfs/{name} with manifest.txt: \
             run VIGIL_BLESS=1 cargo test --test integration demo:: and commit it"
        );
    }
}

/// A root read from its archive and the same root unpacked (the tree with
/// the manifest applied) give every control the same status and message:
/// the archive path (the image layer rules) and the filesystem collector
/// agree on the demo roots.
#[test]
fn an_archive_scans_as_its_unpacked_tree() {
    if !crate::util::is_root() {
        crate::util::skipped("root (the manifest's owners cannot be applied otherwise)");
        return;
    }
    let fx = crate::util::rootfs_fixtures();
    let dir = crate::util::TempDir::new("demo-archive");
    let mut targets = String::new();
    for name in ROOTS {
        targets += &format!(
            "    - {{rootfs: {}, name: tree-{name}}}\n    - {{rootfs: {}, name: archive-{name}}}\n",
            fx.path().join("rootfs").join(name).display(),
            shipped(name).display()
        );
    }
    dir.write(
        "p.yaml",
        format!("apiVersion: vigil/v1\nkind: ScanPolicy\nmetadata: {{name: same}}\nspec:\n  profiles: [container-baseline]\n  targets:\n{targets}"),
    );
    let profiles = repo().join("policies/profiles");
    let run = crate::util::vigil_in(
        dir.path(),
        &[
            "run",
            "p.yaml",
            profiles.to_str().unwrap(),
            "--out",
            "out",
            "--plaintext",
            "--unsigned",
            "--format",
            "json",
        ],
    );
    assert!(run.code == 0 || run.code == 1, "{}", run.stderr);
    let summary: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let bundle = dir
        .path()
        .join("out/same")
        .join(summary[0]["run_id"].as_str().unwrap());
    let controls = |id: &str| -> BTreeMap<String, String> {
        let file = bundle.join(format!("targets/{}.hdf.json", id.replace('/', "_")));
        let hdf: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        hdf["profiles"][0]["controls"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                let results: Vec<String> = c["results"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| format!("{} {} {}", r["status"], r["code_desc"], r["message"]))
                    .collect();
                (c["id"].as_str().unwrap().to_string(), results.join("; "))
            })
            .collect()
    };
    for name in ROOTS {
        let (tree, arch) = (
            controls(&format!("rootfs/tree-{name}")),
            controls(&format!("rootfs/archive-{name}")),
        );
        assert_eq!(tree.len(), 24, "{name}");
        for (id, t) in &tree {
            assert_eq!(Some(t), arch.get(id), "{name} {id}");
        }
    }
}

/// The README's table of what the demo shows: target → (threshold word,
/// compliance, failed control ids).
fn readme_table() -> BTreeMap<String, (String, u64, Vec<String>)> {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let start = readme
        .find("<!-- demo-findings")
        .expect("the README has the demo table");
    let end = readme.find("<!-- /demo-findings -->").unwrap();
    readme[start..end]
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            let mut failed: Vec<String> = cells[4]
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
                .filter(|w| w.starts_with("CB-"))
                .filter(|w| !cells[4].contains(&format!("{w} is waived")))
                .map(str::to_string)
                .collect();
            failed.sort();
            (
                cells[1].trim_matches('`').to_string(),
                (
                    cells[2].to_string(),
                    cells[3].trim_end_matches('%').parse().unwrap(),
                    failed,
                ),
            )
        })
        .collect()
}

/// The README's main command, run as written in a fresh clone under umask
/// 0022 and 0077 (what a new user gets: git keeps no modes and the umask
/// applies at checkout), exits 1 as the README says, and the run shows
/// exactly the findings the README's table lists.
#[test]
fn the_demo_shows_the_readme_findings_on_a_fresh_clone_under_any_umask() {
    if !repo().join(".git").exists() {
        crate::util::skipped("a git checkout to clone");
        return;
    }
    let want = readme_table();
    assert_eq!(want.len(), 3, "{want:?}");
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let main = readme
        .lines()
        .find(|l| l.contains("run policies/demo.yaml policies/profiles/") && !l.starts_with('#'))
        .expect("the README's main command")
        .replace("cargo run --release -- ", "vigil ");
    let bin = Path::new(env!("CARGO_BIN_EXE_vigil")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    for umask in ["0022", "0077"] {
        let dir = crate::util::TempDir::new(&format!("clone-{umask}"));
        let clone = dir.path().join("vigil");
        let sh = |script: &str, cwd: &Path| {
            std::process::Command::new("sh")
                .args(["-c", &format!("umask {umask} && {script}")])
                .current_dir(cwd)
                .env("PATH", &path)
                .env_remove("KUBECONFIG")
                .output()
                .unwrap()
        };
        let cloned = sh(
            &format!(
                "git clone -q file://{} {}",
                repo().display(),
                clone.display()
            ),
            dir.path(),
        );
        assert!(
            cloned.status.success(),
            "{}",
            String::from_utf8_lossy(&cloned.stderr)
        );
        let run = sh(&main, &clone);
        assert_eq!(
            run.status.code(),
            Some(1),
            "umask {umask}: `{main}`: {}",
            String::from_utf8_lossy(&run.stderr)
        );
        let json = sh(
            "vigil run policies/demo.yaml policies/profiles/ --format json --out json-results",
            &clone,
        );
        let summary: serde_json::Value = serde_json::from_slice(&json.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&json.stderr)));
        let got: BTreeMap<String, (String, u64, Vec<String>)> = summary[0]["targets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                let mut failed: Vec<String> = t["findings"]
                    .as_array()
                    .map(|f| {
                        f.iter()
                            .map(|f| f["id"].as_str().unwrap().to_string())
                            .collect()
                    })
                    .unwrap_or_default();
                failed.sort();
                let verdict = if t["threshold"]["passed"] == true {
                    "pass"
                } else {
                    "fail"
                };
                (
                    t["id"].as_str().unwrap().to_string(),
                    (
                        verdict.to_string(),
                        t["compliance"].as_u64().unwrap(),
                        failed,
                    ),
                )
            })
            .collect();
        assert_eq!(
            got, want,
            "umask {umask}: the README's demo table is not what the demo shows"
        );
        // The README's steps can be repeated: the main job and its open
        // (with --force) run a second time as written.
        let steps: Vec<String> = readme
            .lines()
            .filter(|l| l.starts_with("cargo run --release -- open \"$B\""))
            .map(|l| l.replace("cargo run --release -- ", "vigil "))
            .collect();
        assert_eq!(steps.len(), 1, "the README's open step");
        for round in 0..2 {
            let again = sh(&main, &clone);
            assert_eq!(again.status.code(), Some(1), "round {round}");
            let open = sh(
                &format!("B=$(ls -d results/demo/* | tail -n 1) && {}", steps[0]),
                &clone,
            );
            assert!(
                open.status.success(),
                "umask {umask}, round {round}: {}",
                String::from_utf8_lossy(&open.stderr)
            );
        }
    }
}

/// docs/operations.md's "Without vigil" recipe, run as written (whole, with
/// `sh -e`) on a demo bundle: it passes on the bundle as sealed and fails
/// on each kind of tampering `vigil verify` catches: a changed result, an
/// extra file, a statement changed under its signature, a result swapped
/// for another one encrypted to the same recipient.
#[test]
fn the_documented_recipe_checks_a_bundle_without_vigil() {
    for tool in ["jq", "openssl", "age", "sha256sum"] {
        let present = std::process::Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success());
        if !crate::util::prerequisite(present, tool) {
            return;
        }
    }
    let doc = std::fs::read_to_string(repo().join("docs/operations.md")).unwrap();
    let start = doc.find("<!-- recipe: without-vigil -->").unwrap();
    let block = doc[start..]
        .split("```sh\n")
        .nth(1)
        .unwrap()
        .split("```")
        .next()
        .unwrap()
        .to_string();
    let fresh = || {
        let dir = crate::util::TempDir::new("recipe");
        std::os::unix::fs::symlink(repo().join("fixtures"), dir.path().join("fixtures")).unwrap();
        // The demo key as the README's chmod leaves it (a clone gives 0644).
        let key = dir.path().join("demo.key.pem");
        std::fs::copy(repo().join("fixtures/keys/demo-signing.key.pem"), &key).unwrap();
        std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        let r = crate::util::vigil_in(
            dir.path(),
            &[
                "run",
                repo().join("policies/demo.yaml").to_str().unwrap(),
                repo().join("policies/profiles").to_str().unwrap(),
                "--out",
                "results",
                "--signing-key",
                key.to_str().unwrap(),
            ],
        );
        assert_eq!(r.code, 1, "{}", r.stderr);
        let bundle = std::fs::read_dir(dir.path().join("results/demo"))
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        (dir, bundle)
    };
    let recipe = |dir: &Path| {
        std::process::Command::new("sh")
            .args(["-e", "-c", &block])
            .current_dir(dir)
            .output()
            .unwrap()
    };
    let (dir, _) = fresh();
    let ok = recipe(dir.path());
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains(r#"{"verdict":"fail""#));
    type Tamper = fn(&Path);
    let tampers: [(&str, Tamper); 4] = [
        ("a changed result", |b| {
            let f = b.join("targets/rootfs_debian.hdf.json.age");
            let mut bytes = std::fs::read(&f).unwrap();
            let n = bytes.len();
            bytes[n - 20] ^= 1;
            std::fs::write(&f, bytes).unwrap();
        }),
        ("an extra file", |b| {
            std::fs::write(b.join("targets/extra.hdf.json.age"), b"x").unwrap();
        }),
        ("a statement changed under its signature", |b| {
            use base64::Engine as _;
            let f = b.join("statement.dsse.json");
            let mut env: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&f).unwrap()).unwrap();
            let b64 = base64::engine::general_purpose::STANDARD;
            let mut p: serde_json::Value =
                serde_json::from_slice(&b64.decode(env["payload"].as_str().unwrap()).unwrap())
                    .unwrap();
            p["predicate"]["verdict"] = "pass".into();
            env["payload"] = b64.encode(serde_json::to_vec(&p).unwrap()).into();
            std::fs::write(&f, serde_json::to_vec(&env).unwrap()).unwrap();
        }),
        ("a result swapped for another", |b| {
            std::fs::copy(
                b.join("targets/rootfs_alpine.hdf.json.age"),
                b.join("targets/rootfs_debian.hdf.json.age"),
            )
            .unwrap();
        }),
    ];
    for (what, tamper) in tampers {
        let (dir, bundle) = fresh();
        tamper(&bundle);
        let out = recipe(dir.path());
        assert!(!out.status.success(), "{what}: the recipe passed");
    }
}

/// docs/try.md as written: the standalone server started as the page
/// says, then every command of its `sh` block in order against it (RUN_ID
/// being the bundle the run wrote); each exits 0 but the run, whose
/// threshold fails on purpose (1), and the audit check is clean.
#[test]
fn the_try_page_runs_against_the_standalone_server() {
    if !crate::util::root_and_busybox() {
        return;
    }
    let server_bin = Path::new(env!("CARGO_BIN_EXE_vigil"))
        .parent()
        .unwrap()
        .join("examples/fake-apiserver");
    if !crate::util::prerequisite(
        server_bin.is_file(),
        "the fake-apiserver example (cargo test builds it)",
    ) {
        return;
    }
    let page = std::fs::read_to_string(repo().join("docs/try.md")).unwrap();
    let start = page
        .lines()
        .find_map(|l| l.strip_prefix("$ sudo target/debug/examples/fake-apiserver "))
        .expect("the page starts the server");
    let dir = crate::util::TempDir::new("try");
    for linked in ["policies", "fixtures"] {
        std::os::unix::fs::symlink(repo().join(linked), dir.path().join(linked)).unwrap();
    }
    let mut server = std::process::Command::new(&server_bin)
        .args(start.split_whitespace())
        .current_dir(dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(server.stdout.take().unwrap());
    let mut kubeconfig = None;
    for _ in 0..5 {
        let mut line = String::new();
        std::io::BufRead::read_line(&mut out, &mut line).unwrap();
        if let Some(k) = line.trim().strip_prefix("export KUBECONFIG=") {
            kubeconfig = Some(k.to_string());
            break;
        }
    }
    let kubeconfig = kubeconfig.expect("the server printed its KUBECONFIG");
    let block = page
        .split("```sh\n")
        .nth(1)
        .unwrap()
        .split("```")
        .next()
        .unwrap();
    let bin = Path::new(env!("CARGO_BIN_EXE_vigil"))
        .parent()
        .unwrap()
        .to_path_buf();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut run_id = None;
    let mut ran = 0;
    for line in block.lines().filter(|l| !l.trim().is_empty()) {
        let mut l = line.to_string();
        if l.contains("RUN_ID") {
            l = l.replace("RUN_ID", run_id.as_deref().expect("RUN_ID after the run"));
        }
        let out = std::process::Command::new("sh")
            .args(["-c", &l])
            .current_dir(dir.path())
            .env("PATH", &path)
            .env("KUBECONFIG", &kubeconfig)
            .output()
            .unwrap();
        let code = out.status.code();
        let is_run = l.starts_with("vigil run ");
        assert!(
            code == Some(0) || (is_run && code == Some(1)),
            "`{l}` exits {code:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if is_run {
            run_id = std::fs::read_dir(dir.path().join("results/payments"))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .max();
        }
        if l.starts_with("vigil audit-check") {
            assert!(
                String::from_utf8_lossy(&out.stdout).contains("clean"),
                "{}",
                String::from_utf8_lossy(&out.stdout)
            );
        }
        ran += 1;
    }
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(ran, 7, "the page's commands");
    // Every target was scanned, by each approach the page names.
    let bundle = dir
        .path()
        .join("results/payments")
        .join(run_id.expect("the page runs a scan"));
    let statement = crate::util::statement_payload(&bundle);
    let targets = statement["predicate"]["targets"].as_array().unwrap();
    let mut approaches = std::collections::BTreeSet::new();
    for t in targets {
        assert_eq!(t["status"], "scanned", "{t}");
        assert_eq!(t["counts"]["error"], 0, "{t}");
        approaches.insert(t["approach"].as_str().unwrap().to_string());
    }
    assert_eq!(
        approaches.into_iter().collect::<Vec<_>>(),
        ["api", "debug", "sidecar"],
        "{targets:?}"
    );
}
