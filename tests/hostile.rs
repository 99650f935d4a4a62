//! Hostile inputs, one class per test: pseudo filesystems in a live root,
//! unreadable evidence, unbounded and never-ending inputs, terminal
//! injection, impossible thresholds. Each varies the example of its class
//! (which pseudo filesystem, which way a file is unreadable, which device).

use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};
use vigil::facts::frame;

use crate::util::{
    TempDir, is_root, repo, rootfs_fixtures, vigil_cmd_with_deadline, vigil_with_deadline,
};

const SECRET: &str = "CANARY-SCANNER-ENVIRONMENT";

/// The probe on the machine's own `/` (a live root, procfs and sysfs
/// mounted): links into them, direct paths and a walk over `/` never yield
/// a byte of the scanner's own process, and are errors or skipped mounts.
#[test]
fn live_root_pseudo_filesystems_are_never_evidence() {
    let dir = TempDir::new("live-root");
    let links = dir.path().join("etc");
    std::fs::create_dir_all(&links).unwrap();
    let targets = [
        ("os-release", "/proc/self/environ"),
        ("cmdline", "/proc/self/cmdline"),
        ("status", "/proc/self/status"),
        ("mountinfo", "/proc/1/mountinfo"),
        ("kernel", "/sys/kernel/mm/transparent_hugepage/enabled"),
    ];
    let mut read = Vec::new();
    for (name, target) in targets {
        symlink(target, links.join(name)).unwrap();
        read.push(links.join(name).display().to_string());
    }
    read.push("/proc/self/environ".into());
    read.push("/proc/1/environ".into());
    let req = json!({
        "nonce": "n0nce", "max_file_bytes": 65536,
        "stat": read, "read": read, "read_dirs": ["/proc/self", "/sys/kernel"],
        "walks": [{"path": "/", "depth": 2, "limit": 200000, "all": false},
                  {"path": "/proc", "depth": 2, "limit": 100, "all": true}],
        "processes": false, "commands": []
    });
    // (Both resolvers: the unit test in src/facts/rootfs.rs.)
    {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_vigil"));
        cmd.args(["probe", "--root", "/", "--request-json", &req.to_string()])
            .env(
                "VIGIL_SIGNING_KEY",
                format!("-----BEGIN PRIVATE KEY-----{SECRET}"),
            )
            .env("VIGIL_CANARY", SECRET);
        let run = vigil_cmd_with_deadline(&mut cmd, dir.path(), b"", 60);
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert!(
            !run.stdout.contains(SECRET),
            "the scanner's environment leaked"
        );
        let facts = frame::decode("n0nce", run.stdout.as_bytes()).unwrap();
        for path in &read {
            let f = &facts.files[path];
            assert!(
                f.content.is_none(),
                "{path}: content read from a pseudo file"
            );
            let why = f.error.as_deref().unwrap_or_default();
            assert!(why.contains("pseudo filesystem"), "{path}: {f:?}");
        }
        for d in ["/proc/self", "/sys/kernel"] {
            assert!(!facts.dirs.contains_key(d), "{d} listed");
            assert!(facts.dir_errors[d].contains("pseudo filesystem"));
        }
        let root_walk = &facts.walks["/"];
        for m in ["/proc", "/sys"] {
            assert!(
                root_walk.pseudo_skipped.iter().any(|p| p == m),
                "{root_walk:?}"
            );
        }
        assert!(
            root_walk
                .entries
                .iter()
                .all(|e| !e.path.starts_with("/proc/") && !e.path.starts_with("/sys/"))
        );
        let proc_walk = &facts.walks["/proc"];
        assert!(proc_walk.entries.is_empty() && !proc_walk.errors.is_empty());
    }
}

/// A debian-like root whose package database exists but cannot be read,
/// in every way it can be unreadable: the package controls and "No SSH
/// server" are errors, never passed and never skipped.
#[test]
fn unreadable_evidence_is_an_error_never_a_pass() {
    let fixtures = rootfs_fixtures();
    let root = fixtures.path().join("rootfs/debian");
    let status = root.join("var/lib/dpkg/status");
    let text = std::fs::read_to_string(&status).unwrap();
    assert!(!text.contains("Package: openssh-server"));
    std::fs::write(
        &status,
        format!(
            "{text}\nPackage: openssh-server\nStatus: install ok installed\nVersion: 1:9.2p1-2\n"
        ),
    )
    .unwrap();
    let original = std::fs::read(&status).unwrap();
    let dir = TempDir::new("unreadable");
    let policy = dir.write(
        "p.yaml",
        format!(
            "apiVersion: vigil/v1\nkind: ScanPolicy\nmetadata: {{name: demo}}\nspec:\n  profiles: [container-baseline]\n  targets:\n    - {{rootfs: {}, name: debian}}\n",
            root.display()
        ),
    );
    let profiles = repo().join("policies/profiles");
    // Each way of being unreadable; the mode-000 one needs a non-root
    // scanner, so it runs only when setpriv can drop root.
    type Make = fn(&Path, &[u8]);
    let cases: Vec<(&str, Make, bool)> = vec![
        (
            "fifo",
            |p, _| {
                std::fs::remove_file(p).unwrap();
                rustix::fs::mkfifoat(rustix::fs::CWD, p, rustix::fs::Mode::from_raw_mode(0o644))
                    .unwrap();
            },
            false,
        ),
        (
            "directory",
            |p, _| {
                std::fs::remove_file(p).unwrap();
                std::fs::create_dir(p).unwrap();
            },
            false,
        ),
        (
            "symlink loop",
            |p, _| {
                std::fs::remove_file(p).unwrap();
                symlink("status", p).unwrap();
            },
            false,
        ),
        (
            "mode 000",
            |p, _| {
                std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(0o000))
                    .unwrap();
            },
            true,
        ),
    ];
    for (name, make, needs_nobody) in cases {
        make(&status, &original);
        let out = dir.path().join(format!("out-{}", name.replace(' ', "-")));
        std::fs::create_dir_all(&out).unwrap();
        std::fs::set_permissions(&out, std::os::unix::fs::PermissionsExt::from_mode(0o777))
            .unwrap();
        let args = [
            "run",
            policy.to_str().unwrap(),
            profiles.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--unsigned",
            "--plaintext",
        ];
        let run = if needs_nobody && is_root() {
            // The os-release goes unreadable too: permission denied is
            // "unreadable", not "absent".
            std::fs::set_permissions(
                root.join("etc/os-release"),
                std::os::unix::fs::PermissionsExt::from_mode(0o000),
            )
            .unwrap();
            let mut cmd = Command::new("setpriv");
            cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
                .arg(env!("CARGO_BIN_EXE_vigil"))
                .args(args);
            vigil_cmd_with_deadline(&mut cmd, dir.path(), b"", 60)
        } else {
            vigil_with_deadline(dir.path(), &args, b"", 60)
        };
        assert!(
            run.code == 1 || run.code == 0,
            "{name}: {} {}",
            run.code,
            run.stderr
        );
        let hdf = only_hdf(&out);
        let statuses = crate::util::hdf_statuses(&hdf);
        let message = |id: &str| {
            hdf["profiles"][0]["controls"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["id"] == id)
                .unwrap()["results"][0]["message"]
                .as_str()
                .unwrap_or("")
                .to_string()
        };
        let status_of = |id: &str| (vec![statuses[id].as_str()], message(id));
        for id in ["CB-13", "CB-14", "CB-22"] {
            let (r, msg) = status_of(id);
            assert_eq!(r, ["error"], "{name}: {id}: {msg}");
            assert!(
                msg.contains("package database could not be read"),
                "{name}: {msg}"
            );
        }
        if needs_nobody && is_root() {
            let (r, msg) = status_of("CB-21");
            assert_eq!(r, ["error"], "{name}: os-release: {msg}");
            assert!(msg.contains("permission denied"), "{msg}");
            std::fs::set_permissions(
                root.join("etc/os-release"),
                std::os::unix::fs::PermissionsExt::from_mode(0o644),
            )
            .unwrap();
        }
        // Restore the database for the next case.
        let _ = std::fs::remove_file(&status).or_else(|_| std::fs::remove_dir(&status));
        std::fs::write(&status, &original).unwrap();
    }
}

/// The HDF file of the one target of a run under `out`.
fn only_hdf(out: &Path) -> Value {
    let policy_dir = std::fs::read_dir(out)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let run_dir = std::fs::read_dir(policy_dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let target = std::fs::read_dir(run_dir.join("targets"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".hdf.json"))
        .unwrap();
    serde_json::from_slice(&std::fs::read(target).unwrap()).unwrap()
}

/// Control characters in a directory name (the target id of a rootfs
/// target) never reach the terminal raw: not in the table, not in the
/// progress lines, not in `open`.
#[test]
fn control_characters_in_target_names_are_escaped() {
    let fixtures = rootfs_fixtures();
    let evil = fixtures
        .path()
        .join("rootfs/ev\x1b[2J\x1b]0;owned\x07il\u{9b}31m");
    std::fs::rename(fixtures.path().join("rootfs/alpine"), &evil).unwrap();
    let dir = TempDir::new("escape");
    crate::util::signing_key(dir.path());
    assert_eq!(
        crate::util::vigil_in(dir.path(), &["keygen", "age", "--out", "auditor"]).code,
        0
    );
    let recipient = std::fs::read_to_string(dir.path().join("auditor.pub")).unwrap();
    let policy = dir.write(
        "p.yaml",
        format!(
            "apiVersion: vigil/v1\nkind: ScanPolicy\nmetadata: {{name: esc}}\nspec:\n  profiles: [container-baseline]\n  targets:\n    - {{rootfs: \"{}\"}}\n  output: {{signingKey: signer.key.pem, recipients: [\"{}\"]}}\n",
            evil.display().to_string().replace('\x1b', "\\e").replace('\x07', "\\a").replace('\u{9b}', "\\u009b"),
            recipient.trim()
        ),
    );
    let profiles = repo().join("policies/profiles");
    let run = vigil_with_deadline(
        dir.path(),
        &[
            "run",
            policy.to_str().unwrap(),
            profiles.to_str().unwrap(),
            "--out",
            "out",
        ],
        b"",
        60,
    );
    assert!(run.code <= 1, "{}", run.stderr);
    for (name, text) in [("stdout", &run.stdout), ("stderr", &run.stderr)] {
        assert!(
            !text.contains('\x1b') && !text.contains('\x07') && !text.contains('\u{9b}'),
            "{name} carries raw control characters: {text:?}"
        );
    }
    assert!(run.stdout.contains("\\u{1b}[2J"), "{}", run.stdout);
    let bundle = std::fs::read_dir(dir.path().join("out/esc"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let open = vigil_with_deadline(
        dir.path(),
        &[
            "open",
            bundle.to_str().unwrap(),
            "--trusted-key",
            "signer.pub.pem",
            "--identity",
            "auditor.key",
        ],
        b"",
        30,
    );
    assert_eq!(open.code, 0, "{}", open.stderr);
    assert!(
        !open.stdout.contains('\x1b') && open.stdout.contains("\\u{1b}"),
        "{}",
        open.stdout
    );
}

/// SIGINT during a local run of 40 targets: no new scans start, the bundle
/// is sealed, it verifies, and the targets never started are recorded as
/// not scanned (exit 3), never lost.
#[test]
fn sigint_seals_an_incomplete_local_run_that_verifies() {
    use std::io::BufRead;
    let dir = TempDir::new("sigint-local");
    crate::util::signing_key(dir.path());
    // One root with enough files that each scan takes a while.
    let root = dir.path().join("big");
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::copy(
        repo().join("fixtures/rootfs/debian/etc/os-release"),
        root.join("etc/os-release"),
    )
    .unwrap();
    for d in 0..40 {
        let sub = root.join(format!("usr/share/d{d}"));
        std::fs::create_dir_all(&sub).unwrap();
        for f in 0..250 {
            std::fs::write(sub.join(format!("f{f}")), "x").unwrap();
        }
    }
    let targets: String = (0..40)
        .map(|i| format!("    - {{rootfs: {}, name: t{i}}}\n", root.display()))
        .collect();
    let policy = dir.write(
        "p.yaml",
        format!("apiVersion: vigil/v1\nkind: ScanPolicy\nmetadata: {{name: sig}}\nspec:\n  profiles: [container-baseline]\n  targets:\n{targets}  limits: {{concurrency: 1}}\n  output: {{signingKey: signer.key.pem}}\n"),
    );
    let profiles = repo().join("policies/profiles");
    let mut child = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["run", policy.to_str().unwrap(), profiles.to_str().unwrap()])
        .args(["--out", "out", "--plaintext", "--format", "json"])
        .current_dir(dir.path())
        .env_remove("KUBECONFIG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut lines = Vec::new();
        let mut sent = false;
        for line in std::io::BufReader::new(stderr).lines() {
            let line = line.unwrap();
            if !sent && line.contains("[1/40]") {
                rustix::process::kill_process(
                    rustix::process::Pid::from_raw(pid as i32).unwrap(),
                    rustix::process::Signal::INT,
                )
                .unwrap();
                sent = true;
            }
            lines.push(line);
        }
        (sent, lines)
    });
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait_with_output()));
    let out = rx
        .recv_timeout(std::time::Duration::from_secs(120))
        .expect("the run ends after SIGINT")
        .unwrap();
    let (sent, lines) = reader.join().unwrap();
    assert!(sent, "no progress line: {lines:?}");
    assert_eq!(out.status.code(), Some(3), "{lines:?}");
    assert!(
        lines.iter().any(|l| l.contains("signal received")),
        "{lines:?}"
    );
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    let t = summary[0]["targets"].as_array().unwrap();
    assert_eq!(t.len(), 40, "every planned target is recorded");
    let not_scanned = t.iter().filter(|t| t["status"] != "scanned").count();
    assert!(
        not_scanned > 0 && not_scanned < 40,
        "{not_scanned} not scanned"
    );
    let bundle = dir
        .path()
        .join("out/sig")
        .join(summary[0]["run_id"].as_str().unwrap());
    let verify = crate::util::vigil_in(
        dir.path(),
        &[
            "verify",
            bundle.to_str().unwrap(),
            "--trusted-key",
            "signer.pub.pem",
        ],
    );
    assert_eq!(verify.code, 0, "{}", verify.stderr);
}

/// `keygen` refuses before writing anything when either file of the pair
/// exists: no orphan private key is left beside a foreign public key.
#[test]
fn keygen_never_leaves_half_a_pair() {
    let dir = TempDir::new("keygen-pair");
    for (kind, key, public) in [
        ("signing", "k.key.pem", "k.pub.pem"),
        ("age", "k.key", "k.pub"),
    ] {
        dir.write(public, "someone else's public key\n");
        let r = crate::util::vigil_in(dir.path(), &["keygen", kind, "--out", "k"]);
        assert_eq!(r.code, 2, "{kind}: {}", r.stderr);
        assert!(
            r.stderr.contains(public) && r.stderr.contains("already exists"),
            "{}",
            r.stderr
        );
        assert!(!dir.path().join(key).exists(), "{kind}: orphan private key");
        assert_eq!(
            std::fs::read_to_string(dir.path().join(public)).unwrap(),
            "someone else's public key\n"
        );
    }
}

/// Every input a user names — keys, identities, thresholds, inventories,
/// requests, reports, policies — given an endless device or a FIFO nobody
/// writes to: exit 2 within seconds, with a message naming the file.
#[test]
fn endless_and_silent_inputs_are_refused_for_every_flag() {
    let dir = TempDir::new("inputs");
    let fifo = dir.path().join("fifo");
    rustix::fs::mkfifoat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
    )
    .unwrap();
    std::fs::create_dir_all(dir.path().join("bundle")).unwrap();
    let r = repo();
    let s = |p: &str| r.join(p).display().to_string();
    let (demo, profiles) = (s("policies/demo.yaml"), s("policies/profiles"));
    // A policy with no keys of its own, for import --unsigned --plaintext.
    let bare = dir
        .write(
            "bare.yaml",
            "apiVersion: vigil/v1\nkind: ScanPolicy\nmetadata: {name: bare}\nspec:\n  profiles: [container-baseline]\n  targets:\n    - {namespace: web}\n",
        )
        .display()
        .to_string();
    let public = s("fixtures/keys/demo-signing.pub.pem");
    let rootfs = s("fixtures/rootfs/debian");
    let mut cases: Vec<(&str, Vec<String>)> = Vec::new();
    for bad in ["/dev/zero".to_string(), fifo.display().to_string()] {
        let b = bad.clone();
        let v = |a: &[&str]| a.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        cases.push(("trusted key", v(&["verify", "bundle", "--trusted-key", &b])));
        cases.push((
            "identity",
            v(&["open", "bundle", "--trusted-key", &public, "--identity", &b]),
        ));
        cases.push((
            "threshold",
            v(&["run", &demo, &profiles, "--threshold", &b, "--out", "o"]),
        ));
        cases.push((
            "signing key",
            v(&["run", &demo, &profiles, "--signing-key", &b, "--out", "o"]),
        ));
        cases.push((
            "inventory",
            v(&["plan", &demo, &profiles, "--inventory", &b]),
        ));
        cases.push(("request", v(&["probe", "--root", &rootfs, "--request", &b])));
        cases.push((
            "report",
            v(&[
                "import",
                &b,
                "--policy-file",
                &bare,
                "--policy-file",
                &profiles,
                "--unsigned",
                "--plaintext",
                "--out",
                "o",
            ]),
        ));
        cases.push(("policy", v(&["validate", &b])));
    }
    let started = std::time::Instant::now();
    let handles: Vec<_> = cases
        .into_iter()
        .map(|(what, args)| {
            let cwd = dir.path().to_path_buf();
            std::thread::spawn(move || {
                let a: Vec<&str> = args.iter().map(String::as_str).collect();
                (what, args.clone(), vigil_with_deadline(&cwd, &a, b"", 30))
            })
        })
        .collect();
    for h in handles {
        let (what, args, run) = h.join().unwrap();
        assert_eq!(run.code, 2, "{what} {args:?}: {}", run.stderr);
        let named = args.iter().any(|a| {
            (a.starts_with("/dev/") || a.ends_with("/fifo")) && run.stderr.contains(a.as_str())
        });
        assert!(named, "{what}: the file is not named: {}", run.stderr);
        assert!(
            ["character device", "sent nothing", "not a regular file"]
                .iter()
                .any(|w| run.stderr.contains(w)),
            "{what} {args:?}: {}",
            run.stderr
        );
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(25));
}

/// Process substitution keeps working: a key handed over as `<(cat key)`
/// (a pipe under /dev/fd) is read, where a silent FIFO is refused.
#[test]
fn process_substitution_still_works_for_keys() {
    let dir = TempDir::new("procsub");
    let key = repo().join("fixtures/keys/demo-signing.pub.pem");
    let script = format!(
        "exec \"$0\" verify bundle --trusted-key <(cat '{}')",
        key.display()
    );
    std::fs::create_dir_all(dir.path().join("bundle")).unwrap();
    let out = Command::new("bash")
        .args(["-c", &script, env!("CARGO_BIN_EXE_vigil")])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The key was read: what fails is the (empty) bundle, not the key.
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("statement.dsse.json"), "{stderr}");
    assert!(!stderr.contains("trusted key"), "{stderr}");
}

/// `keygen --out dir/name` creates a missing `dir/`, private (0700).
#[test]
fn keygen_creates_a_private_key_directory() {
    let dir = TempDir::new("keygen-dir");
    let r = crate::util::vigil_in(
        dir.path(),
        &["keygen", "signing", "--out", "keys/nested/signer"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    for d in ["keys", "keys/nested"] {
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(dir.path().join(d)).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o700, "{d}");
    }
    assert!(dir.path().join("keys/nested/signer.key.pem").is_file());
}
