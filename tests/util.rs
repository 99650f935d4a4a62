//! Helpers: run the binary, make temporary directories, read outputs.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The repository root (fixtures and example policies live there).
/// `--out out --unsigned --plaintext --format json`: a run's bundle in
/// `out`, unsealed, its summaries as JSON on stdout (what most tests read).
pub const PLAIN_JSON: [&str; 6] = [
    "--out",
    "out",
    "--unsigned",
    "--plaintext",
    "--format",
    "json",
];

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A fresh directory under the target dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "vigil-it-{}-{}-{}",
            name,
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Write a file (creating parents) and return its path.
    pub fn write(&self, rel: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let p = self.0.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, contents).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The result of one run.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

/// Run `vigil ARGS` in `cwd` with KUBECONFIG and RUST_LOG removed.
/// `vigil attest BUNDLE` with the test signer (`signing_key`) as both the
/// trusted key and the signing key, writing to `out`, plus `extra`.
pub fn attest_in(cwd: &Path, bundle: &str, out: &str, extra: &[&str]) -> Run {
    let mut args = vec![
        "attest",
        bundle,
        "--trusted-key",
        "signer.pub.pem",
        "--signing-key",
        "signer.key.pem",
        "--out",
        out,
    ];
    args.extend_from_slice(extra);
    vigil_in(cwd, &args)
}

pub fn vigil_in(cwd: &Path, args: &[&str]) -> Run {
    Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(args)
        .current_dir(cwd)
        .env_remove("KUBECONFIG")
        .env_remove("RUST_LOG")
        .output()
        .expect("run vigil")
        .into()
}

/// Run `vigil ARGS` from the repository root.
pub fn vigil(args: &[&str]) -> Run {
    vigil_in(&repo(), args)
}

/// Run `vigil ARGS` with `stdin` and a deadline; a run that outlives it is
/// killed and the test fails (a hang is a bug, never a slow pass).
pub fn vigil_with_deadline(cwd: &Path, args: &[&str], stdin: &[u8], secs: u64) -> Run {
    vigil_cmd_with_deadline(
        Command::new(env!("CARGO_BIN_EXE_vigil")).args(args),
        cwd,
        stdin,
        secs,
    )
}

/// Like [`vigil_with_deadline`] for an arbitrary command (e.g. under setpriv).
pub fn vigil_cmd_with_deadline(cmd: &mut Command, cwd: &Path, stdin: &[u8], secs: u64) -> Run {
    use std::io::Write;
    use std::process::Stdio;
    // Scrub an inherited KUBECONFIG unless the test set one on purpose.
    if !cmd.get_envs().any(|(k, _)| k == "KUBECONFIG") {
        cmd.env_remove("KUBECONFIG");
    }
    let mut child = cmd
        .current_dir(cwd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(std::time::Duration::from_secs(secs)) {
        Ok(out) => out.expect("wait").into(),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!("vigil did not finish within {secs} s (hang)");
        }
    }
}

/// A copy of `fixtures/rootfs` with the owners and modes of
/// `fixtures/rootfs/manifest.txt` applied (owners only when running as root).
pub fn rootfs_fixtures() -> TempDir {
    let dir = TempDir::new("rootfs");
    let status = Command::new("cp")
        .args([
            "-a",
            repo().join("fixtures/rootfs").to_str().unwrap(),
            dir.path().to_str().unwrap(),
        ])
        .status()
        .unwrap();
    assert!(status.success());
    let root = dir.path().join("rootfs");
    let manifest = std::fs::read_to_string(root.join("manifest.txt")).unwrap();
    let is_root = rustix::process::geteuid().is_root();
    for line in manifest
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
    {
        let f: Vec<&str> = line.split_whitespace().collect();
        let path = root.join(f[3]);
        let mode = u32::from_str_radix(f[0], 8).unwrap();
        if is_root {
            std::os::unix::fs::chown(
                &path,
                Some(f[1].parse().unwrap()),
                Some(f[2].parse().unwrap()),
            )
            .unwrap();
        }
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(mode))
            .unwrap();
    }
    dir
}

/// Returns true if and only if the tests run as root.
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Put static busybox into a root as /bin/sh and its applets.
pub fn install_busybox(root: &Path) {
    let bin = root.join("bin");
    let bin = if bin.is_symlink() {
        root.join("usr/bin")
    } else {
        bin
    };
    std::fs::create_dir_all(&bin).unwrap();
    let _ = std::fs::remove_file(bin.join("busybox"));
    std::fs::copy("/bin/busybox", bin.join("busybox")).unwrap();
    for applet in [
        "sh", "stat", "readlink", "head", "base64", "find", "wc", "tr", "printf", "cat",
    ] {
        let link = bin.join(applet);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink("busybox", &link).unwrap();
    }
}

/// A minimal GNU userland in `root`: the host's dash as `/bin/sh` plus only
/// the named tools (GNU coreutils/findutils), each with the shared
/// libraries `ldd` lists. Unlike busybox — whose shell runs its applets
/// even without their links — a tool left out here is really missing.
/// `root/bin` must be a directory or a link to `usr/bin`.
pub fn install_gnu_userland(root: &Path, tools: &[&str]) {
    let which = |t: &str| -> PathBuf {
        let out = Command::new("sh")
            .args(["-c", &format!("command -v {t}")])
            .output()
            .unwrap();
        PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
    };
    let bin = root.join("usr/bin");
    std::fs::create_dir_all(&bin).unwrap();
    let mut binaries = vec![(which("dash"), bin.join("sh"))];
    binaries.extend(tools.iter().map(|t| (which(t), bin.join(t))));
    for (from, to) in binaries {
        assert!(from.is_absolute(), "{from:?} is not installed on the host");
        install_binary(root, &from, &to);
    }
}

/// Copy a host binary to `to` inside `root`, with the shared libraries
/// `ldd` lists at their own paths, so that it runs under `chroot root`.
pub fn install_binary(root: &Path, from: &Path, to: &Path) {
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    let _ = std::fs::remove_file(to);
    std::fs::copy(from, to).unwrap();
    let ldd = Command::new("ldd").arg(from).output().unwrap();
    for lib in String::from_utf8_lossy(&ldd.stdout)
        .split_whitespace()
        .filter(|w| w.starts_with('/'))
    {
        let dest = root.join(lib.trim_start_matches('/'));
        if !dest.exists() {
            std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
            std::fs::copy(lib, &dest).unwrap();
        }
    }
}

/// The in-toto statement inside a bundle's `statement.dsse.json` (not verified).
pub fn statement_payload(bundle: &Path) -> serde_json::Value {
    statement_payload_of(&bundle.join("statement.dsse.json"))
}

/// The in-toto statement inside the DSSE envelope file `envelope`.
pub fn statement_payload_of(envelope: &Path) -> serde_json::Value {
    use base64::Engine as _;
    let env: serde_json::Value = serde_json::from_slice(&std::fs::read(envelope).unwrap()).unwrap();
    let payload = base64::engine::general_purpose::STANDARD
        .decode(env["payload"].as_str().unwrap())
        .unwrap();
    serde_json::from_slice(&payload).unwrap()
}

/// A signing key pair in `dir`: `signer.key.pem` and `signer.pub.pem`.
pub fn signing_key(dir: &Path) {
    let r = vigil_in(dir, &["keygen", "signing", "--out", "signer"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
}

/// `vigil run p.yaml policies/profiles/ --out out --plaintext --format json
/// EXTRA…` in `dir`, against the cluster of `kubeconfig`.
pub fn run_cmd(dir: &Path, kubeconfig: &Path, extra: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vigil"));
    cmd.args(["run", "p.yaml"])
        .arg(repo().join("policies/profiles"))
        .args(["--out", "out", "--plaintext", "--format", "json"])
        .args(extra)
        .current_dir(dir)
        .env("KUBECONFIG", kubeconfig);
    cmd
}

/// [`run_cmd`] to completion: it must exit 0 (pass) or 1 (a threshold
/// failed); returns the output and the summaries it printed.
pub fn run_json(dir: &Path, kubeconfig: &Path, extra: &[&str]) -> (Run, serde_json::Value) {
    let out: Run = run_cmd(dir, kubeconfig, extra).output().unwrap().into();
    assert!(out.code == 0 || out.code == 1, "{}", out.stderr);
    let summary =
        serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stderr));
    (out, summary)
}

/// Returns true if and only if control `c` needs the gatherer's `tool` to
/// be evaluated on a root whose true facts are `truth` (the rootfs
/// collector's): facts about what exists need the tools; absence is the
/// shell's own `test`, which needs none.
pub fn depends_on_tool(
    tool: &str,
    c: &vigil::policy::model::Control,
    truth: &vigil::facts::Facts,
) -> bool {
    let r = vigil::facts::compile::compile(std::iter::once(c), 65536);
    let exists = |p: &String| truth.files.get(p).is_some_and(|f| f.lstat.is_some());
    let symlink = |p: &String| {
        truth.files.get(p).is_some_and(|f| {
            f.lstat
                .is_some_and(|l| l.kind == vigil::facts::Kind::Symlink)
        })
    };
    let dir_has_files = |d: &String| truth.dirs.get(d).is_some_and(|e| !e.is_empty());
    let walked = r
        .walks
        .iter()
        .any(|w| truth.walks.get(&w.path).is_some_and(|t| !t.missing));
    match tool {
        "stat" | "base64" => {
            r.stat.union(&r.read).any(exists) || r.read_dirs.iter().any(dir_has_files) || walked
        }
        // passwd and group read only to resolve `root` need no content
        // (uid/gid 0 is root); read as tables (users, groups) they do.
        "head" => {
            r.read
                .iter()
                .any(|p| p != "/etc/passwd" && p != "/etc/group" && exists(p))
                || r.read_dirs.iter().any(dir_has_files)
                || reads_accounts(&c.check)
        }
        "readlink" => r.stat.union(&r.read).any(symlink),
        _ => walked,
    }
}

/// Returns true if and only if a check reads the users or groups tables.
fn reads_accounts(check: &vigil::policy::model::Check) -> bool {
    use vigil::policy::model::Check;
    match check {
        Check::Users(_) | Check::Groups(_) => true,
        Check::All(a) => a.all.iter().any(reads_accounts),
        Check::Any(a) => a.any.iter().any(reads_accounts),
        Check::None(a) => a.none.iter().any(reads_accounts),
        _ => false,
    }
}

/// control id → the status its results add up to (error, then failed,
/// then passed, else skipped), for the first profile of an HDF document.
pub fn hdf_statuses(hdf: &serde_json::Value) -> std::collections::BTreeMap<String, String> {
    hdf["profiles"][0]["controls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let r: Vec<&str> = c["results"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["status"].as_str().unwrap())
                .collect();
            let s = ["error", "failed", "passed"]
                .into_iter()
                .find(|s| r.contains(s))
                .unwrap_or("skipped");
            (c["id"].as_str().unwrap().to_string(), s.to_string())
        })
        .collect()
}

/// Parse a JSON value, refusing objects with a key given twice
/// (`serde_json::Value` would keep the last one silently).
pub fn json_without_duplicate_keys(text: &str) -> Result<(), String> {
    use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
    struct Unique;
    impl<'de> Deserialize<'de> for Unique {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Unique;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("any JSON value")
                }
                fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Unique, A::Error> {
                    let mut seen = std::collections::BTreeSet::new();
                    while let Some(k) = m.next_key::<String>()? {
                        if !seen.insert(k.clone()) {
                            return Err(serde::de::Error::custom(format!("duplicate key {k:?}")));
                        }
                        m.next_value::<Unique>()?;
                    }
                    Ok(Unique)
                }
                fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Unique, A::Error> {
                    while s.next_element::<Unique>()?.is_some() {}
                    Ok(Unique)
                }
                fn visit_bool<E>(self, _: bool) -> Result<Unique, E> {
                    Ok(Unique)
                }
                fn visit_i64<E>(self, _: i64) -> Result<Unique, E> {
                    Ok(Unique)
                }
                fn visit_u64<E>(self, _: u64) -> Result<Unique, E> {
                    Ok(Unique)
                }
                fn visit_f64<E>(self, _: f64) -> Result<Unique, E> {
                    Ok(Unique)
                }
                fn visit_str<E>(self, _: &str) -> Result<Unique, E> {
                    Ok(Unique)
                }
                fn visit_unit<E>(self) -> Result<Unique, E> {
                    Ok(Unique)
                }
            }
            d.deserialize_any(V)
        }
    }
    serde_json::from_str::<Unique>(text)
        .map(drop)
        .map_err(|e| e.to_string())
}

/// Returns true if and only if python3 can import `module`.
pub fn python_module(module: &str) -> bool {
    Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A test's prerequisite: root, busybox-static, a reference tool. Present:
/// true. Missing: with `VIGIL_REQUIRE_INTEROP` set (as CI sets it) the test
/// fails saying what is missing; elsewhere the test says on stderr that it
/// did not run and records that in `skipped-tests.txt` under Cargo's test
/// scratch directory, which `.ci/run` counts and prints. A test never
/// passes silently without running.
pub fn prerequisite(present: bool, what: &str) -> bool {
    if present {
        return true;
    }
    assert!(
        std::env::var_os("VIGIL_REQUIRE_INTEROP").is_none(),
        "{} needs {what} (VIGIL_REQUIRE_INTEROP is set)",
        current_test()
    );
    skipped(what);
    false
}

fn current_test() -> String {
    std::thread::current()
        .name()
        .unwrap_or("a test")
        .to_string()
}

/// Say that the running test did not run because `what` is missing: on
/// stderr, and in `skipped-tests.txt`, which `.ci/run` counts and prints.
pub fn skipped(what: &str) {
    let test = current_test();
    eprintln!("SKIPPED {test}: needs {what}");
    use std::io::Write as _;
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(Path::new(env!("CARGO_TARGET_TMPDIR")).join("skipped-tests.txt"))
    {
        let _ = writeln!(f, "{test}: needs {what}");
    }
}

/// A figure a test measured (a time, a peak RSS): on stderr, and in
/// `figures.txt`, which `.ci/run` prints after the tests.
pub fn figure(line: &str) {
    eprintln!("{line}");
    use std::io::Write as _;
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(Path::new(env!("CARGO_TARGET_TMPDIR")).join("figures.txt"))
    {
        let _ = writeln!(f, "{}: {line}", current_test());
    }
}

/// Root and a static busybox, which the pod emulation needs (chroot,
/// mounts, a shell in every fixture root).
pub fn root_and_busybox() -> bool {
    prerequisite(
        is_root() && Path::new("/bin/busybox").is_file(),
        "root and busybox-static",
    )
}

/// A run's access set up as `vigil run` sets it up, for tests that use the
/// run's own token: the policy set from `files`, planned against the
/// cluster of `kubeconfig`, its per-run objects created. Clean up with
/// `rt.block_on(access.cleanup(&caller, &audit))`.
pub struct RunAccessFixture {
    /// The runtime the clients run on.
    pub rt: tokio::runtime::Runtime,
    /// The caller's client.
    pub caller: vigil::cluster::Cluster,
    /// The run's access objects and scoped clients.
    pub access: vigil::access::RunAccess,
    /// The run's audit trail.
    pub audit: vigil::audit::AuditLog,
}

/// Set up [`RunAccessFixture`] for the first policy of `files`.
pub fn run_access(kubeconfig: &Path, files: &[std::path::PathBuf]) -> RunAccessFixture {
    let (set, diags) = vigil::policy::load(files);
    assert!(diags.iter().all(|d| !d.is_error()), "{diags:?}");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let caller = rt
        .block_on(vigil::cluster::Cluster::connect_with(
            Some(kubeconfig),
            None,
            false,
        ))
        .unwrap();
    let inventory = vigil::inventory::Live::new(caller.clone(), rt.handle().clone());
    let (plan, _) = vigil::plan::plan(
        &set,
        &[],
        Some(&inventory),
        &vigil::plan::PlanOptions::default(),
    )
    .unwrap();
    let audit = vigil::audit::AuditLog::new("test-run");
    let access = rt
        .block_on(vigil::access::RunAccess::setup(
            &caller,
            &set.policies[0].value,
            &plan.policies[0],
            &audit,
        ))
        .unwrap();
    RunAccessFixture {
        rt,
        caller,
        access,
        audit,
    }
}

/// Every regular file under `dir`, recursively (directories are not
/// followed through symlinks). A directory that cannot be read fails the
/// test.
pub fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for e in entries.flatten() {
        let p = e.path();
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// control id → status, per target, from the HDF documents in a bundle's
/// `targets` directory: `failed` if any result failed, else `error` if
/// any errored, else `skipped` if all were skipped, else `passed`.
pub fn control_statuses_in(
    targets: &Path,
) -> std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>> {
    let mut out = std::collections::BTreeMap::new();
    for e in std::fs::read_dir(targets).unwrap().flatten() {
        if !e.file_name().to_string_lossy().ends_with(".hdf.json") {
            continue; // the target's inventory
        }
        let hdf: serde_json::Value =
            serde_json::from_slice(&std::fs::read(e.path()).unwrap()).unwrap();
        let target = hdf["platform"]["target_id"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| e.file_name().to_string_lossy().into_owned());
        let mut controls = std::collections::BTreeMap::new();
        for p in hdf["profiles"].as_array().unwrap() {
            for c in p["controls"].as_array().unwrap() {
                let statuses: Vec<&str> = c["results"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r["status"].as_str().unwrap())
                    .collect();
                let st = if statuses.contains(&"failed") {
                    "failed"
                } else if statuses.contains(&"error") {
                    "error"
                } else if statuses.iter().all(|s| *s == "skipped") {
                    "skipped"
                } else {
                    "passed"
                };
                controls.insert(c["id"].as_str().unwrap().to_string(), st.to_string());
            }
        }
        out.insert(target, controls);
    }
    out
}

/// Send `signal` to a child the test started (a run it interrupts).
pub fn signal(child: &std::process::Child, signal: rustix::process::Signal) {
    rustix::process::kill_process(rustix::process::Pid::from_child(child), signal)
        .unwrap_or_else(|e| panic!("cannot signal pid {}: {e}", child.id()));
}
