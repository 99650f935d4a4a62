//! `vigil probe` and the collector on a hostile root filesystem: nothing
//! from outside the root, no blocking on FIFOs, reads within the cap,
//! strange names kept exactly, per-fact errors.

use std::os::unix::fs::symlink;
use std::process::Command;

use serde_json::json;
use vigil::facts::resolve::Root;
use vigil::facts::{FactRequest, Facts, Kind, frame, rootfs};

use crate::util::{TempDir, is_root, vigil_cmd_with_deadline, vigil_with_deadline};

const CANARY: &str = "CANARY-OUTSIDE-THE-ROOT";
const CAP: u64 = 64 * 1024;

/// base/{canary.txt, secret/canary2.txt, root/...}: a container root whose
/// links all try to get out.
fn hostile() -> TempDir {
    let dir = TempDir::new("hostile");
    let base = dir.path();
    dir.write("canary.txt", CANARY);
    dir.write("secret/canary2.txt", CANARY);
    dir.write("root/etc/passwd", "root:x:0:0:root:/root:/bin/sh\n");
    dir.write("root/usr/bin/ok", "ok");
    let etc = base.join("root/etc");
    symlink("/../../canary.txt", etc.join("abs")).unwrap();
    symlink("../../../canary.txt", etc.join("rel")).unwrap();
    symlink("../../secret", etc.join("dirlink")).unwrap();
    symlink("loop2", etc.join("loop1")).unwrap();
    symlink("loop1", etc.join("loop2")).unwrap();
    symlink("../../", base.join("root/usr/escape")).unwrap();
    rustix::fs::mkfifoat(
        rustix::fs::CWD,
        etc.join("fifo"),
        rustix::fs::Mode::from_raw_mode(0o644),
    )
    .unwrap();
    let sparse = std::fs::File::create(etc.join("sparse")).unwrap();
    sparse.set_len(4 << 30).unwrap();
    std::fs::write(etc.join("name\nwith newline"), "newline").unwrap();
    std::fs::write(etc.join("ctl\u{1}\u{1b}[31mred"), "control").unwrap();
    std::fs::write(etc.join("unreadable"), "hidden").unwrap();
    std::fs::set_permissions(
        etc.join("unreadable"),
        std::os::unix::fs::PermissionsExt::from_mode(0o000),
    )
    .unwrap();
    dir
}

fn request() -> FactRequest {
    serde_json::from_value(json!({
        "nonce": "t3st-n0nce",
        "max_file_bytes": CAP,
        "stat": [],
        "read": ["/etc/passwd", "/etc/abs", "/etc/rel", "/etc/dirlink/canary2.txt", "/etc/loop1", "/etc/fifo",
                 "/etc/sparse", "/etc/unreadable", "/../../canary.txt", "/usr/escape/canary.txt"],
        "read_dirs": ["/etc"],
        "walks": [{"path": "/", "depth": 10, "limit": 1000, "all": true}],
        "processes": false,
        "commands": []
    }))
    .unwrap()
}

/// What must hold whichever resolver produced the facts.
fn assert_contained(facts: &Facts, permission_enforced: bool) {
    let text = serde_json::to_string(facts).unwrap();
    assert!(
        !text.contains(CANARY),
        "a byte from outside the root leaked"
    );
    let f = |p: &str| {
        facts
            .files
            .get(p)
            .unwrap_or_else(|| panic!("no fact for {p}"))
    };
    assert!(
        f("/etc/passwd")
            .content
            .as_ref()
            .unwrap()
            .text()
            .starts_with("root:")
    );
    for escape in [
        "/etc/abs",
        "/etc/rel",
        "/etc/dirlink/canary2.txt",
        "/../../canary.txt",
        "/usr/escape/canary.txt",
    ] {
        assert!(
            !f(escape).exists(),
            "{escape} must resolve inside the root (where nothing is)"
        );
    }
    assert_eq!(f("/etc/abs").lstat.unwrap().kind, Kind::Symlink);
    assert!(
        f("/etc/loop1")
            .error
            .as_deref()
            .unwrap()
            .contains("symbolic links"),
        "{:?}",
        f("/etc/loop1")
    );
    let fifo = f("/etc/fifo");
    assert_eq!(fifo.stat.unwrap().kind, Kind::Fifo);
    assert!(fifo.content.is_none(), "a FIFO is never read");
    let sparse = f("/etc/sparse");
    assert!(sparse.truncated);
    assert_eq!(sparse.content.as_ref().unwrap().bytes().len() as u64, CAP);
    assert_eq!(sparse.stat.unwrap().size, 4 << 30);
    if permission_enforced {
        assert_eq!(
            f("/etc/unreadable").error.as_deref(),
            Some("permission denied")
        );
        assert!(
            f("/etc/unreadable").stat.is_some(),
            "stat still works; only the read failed"
        );
    }
    // Names with newlines and control characters are kept exactly.
    let walk = &facts.walks["/"];
    let paths: Vec<&str> = walk.entries.iter().map(|e| e.path.as_str()).collect();
    assert!(paths.contains(&"/etc/name\nwith newline"), "{paths:?}");
    assert!(paths.contains(&"/etc/ctl\u{1}\u{1b}[31mred"));
    assert!(paths.contains(&"/usr/escape"), "the link itself is listed");
    assert!(
        !paths.iter().any(|p| p.starts_with("/usr/escape/")),
        "walks never follow links"
    );
    assert!(!walk.truncated);
    let etc = &facts.dirs["/etc"];
    assert_eq!(
        etc["name\nwith newline"].content.as_ref().unwrap().text(),
        "newline"
    );
    assert!(etc["fifo"].content.is_none());
    assert!(etc["sparse"].truncated);
}

#[test]
fn probe_on_a_hostile_tree_stays_inside_and_never_blocks() {
    let dir = hostile();
    let req = serde_json::to_vec(&request()).unwrap();
    let root = dir.path().join("root");
    // As root, run the probe as nobody so that the unreadable file really is.
    let run = if is_root() {
        let mut cmd = Command::new("setpriv");
        cmd.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            env!("CARGO_BIN_EXE_vigil"),
            "probe",
            "--root",
            root.to_str().unwrap(),
            "--request",
            "-",
        ]);
        vigil_cmd_with_deadline(&mut cmd, dir.path(), &req, 20)
    } else {
        vigil_with_deadline(
            dir.path(),
            &["probe", "--root", root.to_str().unwrap(), "--request", "-"],
            &req,
            20,
        )
    };
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(!run.stdout.contains(CANARY));
    let facts = frame::decode("t3st-n0nce", run.stdout.as_bytes()).expect("one valid frame");
    assert_contained(&facts, true);
}

#[test]
fn user_space_resolver_gives_the_same_guarantees() {
    let dir = hostile();
    let root = Root::open_without_openat2(&dir.path().join("root")).unwrap();
    assert!(!root.uses_openat2());
    let facts = rootfs::collect_from(&root, &request()).unwrap();
    assert_contained(&facts, !is_root());
    // And the kernel resolver, where the kernel has it, agrees exactly.
    let kernel = Root::open(&dir.path().join("root")).unwrap();
    if kernel.uses_openat2() {
        assert_eq!(rootfs::collect_from(&kernel, &request()).unwrap(), facts);
    }
}

#[test]
fn probe_refuses_bad_requests() {
    let dir = TempDir::new("probe-bad");
    let root = dir.path().to_str().unwrap().to_string();
    for (stdin, want) in [
        (&b"not json"[..], "invalid fact request"),
        (br#"{"nonce":"","max_file_bytes":1,"stat":[],"read":[],"read_dirs":[],"walks":[],"processes":false,"commands":[]}"#, "nonce"),
        (br#"{"nonce":"a b","max_file_bytes":1,"stat":[],"read":[],"read_dirs":[],"walks":[],"processes":false,"commands":[]}"#, "nonce"),
        (br#"{"nonce":"n","max_file_bytes":1,"stat":[],"read":[],"read_dirs":[],"walks":[],"processes":false,"commands":[],"extra":1}"#, "unknown field"),
    ] {
        let run = vigil_with_deadline(dir.path(), &["probe", "--root", &root, "--request", "-"], stdin, 20);
        assert_eq!(run.code, 2, "{}", run.stderr);
        assert!(run.stderr.contains(want), "{}", run.stderr);
    }
    let ok = br#"{"nonce":"n","max_file_bytes":1,"stat":["/x"],"read":[],"read_dirs":[],"walks":[],"processes":false,"commands":[]}"#;
    let run = vigil_with_deadline(
        dir.path(),
        &["probe", "--root", "/nonexistent-root", "--request", "-"],
        ok,
        20,
    );
    assert_eq!(
        run.code, 3,
        "an unreadable root is a failed run, not bad input"
    );
}

/// A proc tree as a pod with a shared process namespace shows it: PID 1 the
/// pause container, 7 and 8 the target (the hostile root), 9 another container.
fn proc_tree(dir: &TempDir) -> std::path::PathBuf {
    let proc = dir.path().join("proc");
    let target = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    let other = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";
    for (pid, id, root, uid, cmdline) in [
        (
            1,
            "f".repeat(64),
            dir.path().join("secret"),
            65535,
            "/pause",
        ),
        (
            7,
            target.to_string(),
            dir.path().join("root"),
            1000,
            "app-server\0--port\08080",
        ),
        (
            8,
            target.to_string(),
            dir.path().join("root"),
            1000,
            "app-worker\0\u{1b}[31m",
        ),
        (
            9,
            other.to_string(),
            dir.path().join("secret"),
            0,
            "sidecar",
        ),
    ] {
        let p = proc.join(pid.to_string());
        std::fs::create_dir_all(&p).unwrap();
        symlink(root, p.join("root")).unwrap();
        std::fs::write(
            p.join("cgroup"),
            format!("0::/kubepods.slice/kubepods-pod1.slice/cri-containerd-{id}.scope\n"),
        )
        .unwrap();
        std::fs::write(
            p.join("status"),
            format!("Name:\tx\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\n"),
        )
        .unwrap();
        std::fs::write(p.join("cmdline"), cmdline).unwrap();
    }
    // Not a process.
    std::fs::create_dir_all(proc.join("sys")).unwrap();
    proc
}

#[test]
fn probe_finds_a_container_by_id_in_a_shared_pid_namespace_and_stays_inside() {
    let dir = hostile();
    let proc = proc_tree(&dir);
    let mut req = request();
    req.processes = true;
    let json = serde_json::to_string(&req).unwrap();
    let run = vigil_with_deadline(
        dir.path(),
        &[
            "probe",
            "--container-id",
            "containerd://0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "--proc",
            proc.to_str().unwrap(),
            "--request-json",
            &json,
        ],
        b"",
        20,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(!run.stdout.contains(CANARY));
    let facts = frame::decode("t3st-n0nce", run.stdout.as_bytes()).expect("one valid frame");
    assert_contained(&facts, !is_root());
    // Only the target container's processes, by cgroup.
    let procs = facts.processes.unwrap();
    let pids: Vec<u32> = procs.iter().map(|p| p.pid).collect();
    assert_eq!(pids, [7, 8]);
    assert_eq!(procs[0].cmdline, "app-server --port 8080");
    assert_eq!(procs[0].uid, 1000);

    // --pid: the target's own PID namespace, every process listed.
    let run = vigil_with_deadline(
        dir.path(),
        &[
            "probe",
            "--pid",
            "7",
            "--proc",
            proc.to_str().unwrap(),
            "--request-json",
            &json,
        ],
        b"",
        20,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let facts = frame::decode("t3st-n0nce", run.stdout.as_bytes()).unwrap();
    assert_contained(&facts, !is_root());
    assert_eq!(facts.processes.unwrap().len(), 4);

    // Ids that are too short to be safe, and ids nobody has.
    for (id, code, want) in [
        ("0123", 2, "at least 12 hex digits"),
        ("not-hex-at-all-but-long", 2, "at least 12 hex digits"),
        ("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 3, "no process"),
    ] {
        let run = vigil_with_deadline(
            dir.path(),
            &[
                "probe",
                "--container-id",
                id,
                "--proc",
                proc.to_str().unwrap(),
                "--request-json",
                &json,
            ],
            b"",
            20,
        );
        assert_eq!(run.code, code, "{id}: {}", run.stderr);
        assert!(run.stderr.contains(want), "{}", run.stderr);
    }
}

/// The probe makes itself non-dumpable before it reads anything: a process
/// of its own uid (the target's, in the debug and sidecar approaches)
/// cannot read its environment or memory. A real kernel check, as an
/// unprivileged uid.
#[test]
fn the_probe_is_not_dumpable_by_its_own_uid() {
    if !crate::util::prerequisite(crate::util::is_root(), "root") {
        return;
    }
    let dir = TempDir::new("dumpable");
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let fifo = dir.path().join("request");
    rustix::fs::mkfifoat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::Mode::from_raw_mode(0o666),
    )
    .unwrap();
    let nobody = |cmd: &mut Command| {
        cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"]);
    };
    let mut probe = Command::new("setpriv");
    nobody(&mut probe);
    let mut probe = probe
        .arg(env!("CARGO_BIN_EXE_vigil"))
        .args(["probe", "--root", "/", "--request"])
        .arg(&fifo)
        .env("VIGIL_CANARY", "CANARY-IN-THE-PROBE-ENVIRONMENT")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let proc_dir = std::path::PathBuf::from(format!("/proc/{}", probe.id()));
    // Non-dumpable processes have their /proc entries owned by root; wait
    // (bounded) for the probe to get there, then try to read as its uid.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    // (Before setpriv has dropped to nobody and exec'd vigil, the entries
    // belong to root too: wait for the probe itself first. On a loaded
    // machine that takes seconds; never read before it, or the test would
    // read the window before the probe's first instruction.)
    let mut reached = false;
    while std::time::Instant::now() < deadline {
        let cmdline = std::fs::read(proc_dir.join("cmdline")).unwrap_or_default();
        let status = std::fs::read_to_string(proc_dir.join("status")).unwrap_or_default();
        // The probe itself, not setpriv between its setuid and its exec:
        // a process that just changed credentials is non-dumpable too
        // (until exec), so only the executable tells them apart.
        let exe = std::fs::read_link(proc_dir.join("exe")).ok();
        let is_probe = String::from_utf8_lossy(&cmdline).contains("probe")
            && exe.as_deref() == Some(std::path::Path::new(env!("CARGO_BIN_EXE_vigil")))
            && status
                .lines()
                .any(|l| l.starts_with("Uid:") && l.contains("65534"));
        let owner = std::fs::metadata(proc_dir.join("environ"))
            .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
            .unwrap_or(u32::MAX);
        if is_probe && owner == 0 {
            reached = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(reached, "the probe never became non-dumpable within 30 s");
    let mut reader = Command::new("setpriv");
    nobody(&mut reader);
    let read = reader
        .arg("cat")
        .arg(proc_dir.join("environ"))
        .output()
        .unwrap();
    let leaked = String::from_utf8_lossy(&read.stdout).contains("CANARY-IN-THE-PROBE");
    // Let the probe finish: send its request.
    std::fs::write(&fifo, br#"{"nonce":"n","max_file_bytes":1024,"stat":[],"read":[],"read_dirs":[],"walks":[],"processes":false,"commands":[]}"#).unwrap();
    let status = probe.wait().unwrap();
    assert!(!leaked, "a same-uid process read the probe's environment");
    assert!(
        !read.status.success(),
        "reading /proc/<probe>/environ as its uid must fail"
    );
    assert!(status.success());
}
