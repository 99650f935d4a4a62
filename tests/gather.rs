//! The shell gatherer against real shells: busybox (in a chroot of the
//! fixture root filesystems, as in alpine-like and minimal images) and the
//! host's sh with GNU coreutils. Its facts must equal the rootfs
//! collector's for the same root: the api approach and the local one see
//! the same thing.

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};
use vigil::facts::resolve::Root;
use vigil::facts::{FactRequest, rootfs, shell};

use crate::util::{TempDir, install_busybox, install_gnu_userland, repo, rootfs_fixtures};

fn request(nonce: &str) -> FactRequest {
    serde_json::from_value(json!({
        "nonce": nonce,
        "max_file_bytes": 4096,
        "stat": ["/etc/passwd", "/etc/shadow", "/bin/sh", "/nope", "/usr/bin/env", "/etc/dangling"],
        "read": ["/etc/passwd", "/etc/shadow", "/etc/os-release", "/lib/apk/db/installed", "/var/lib/dpkg/status", "/etc/big", "/etc/fifo", "/etc/odd name 'q'", "/etc/new\nline", "/etc/dangling\r"],
        "read_dirs": ["/var/lib/dpkg/status.d", "/nothere"],
        "walks": [
            {"path": "/usr", "depth": 4, "limit": 100000, "all": false},
            {"path": "/etc", "depth": 2, "limit": 100000, "all": true},
            {"path": "/missing", "depth": 2, "limit": 10, "all": false}
        ],
        "processes": false,
        "commands": []
    }))
    .unwrap()
}

fn add_oddities(root: &Path) {
    std::fs::write(root.join("etc/big"), vec![b'x'; 10_000]).unwrap();
    std::fs::write(root.join("etc/odd name 'q'"), "quoted\n").unwrap();
    rustix::fs::mkfifoat(
        rustix::fs::CWD,
        root.join("etc/fifo"),
        rustix::fs::Mode::from_raw_mode(0o644),
    )
    .unwrap();
    std::os::unix::fs::symlink("/nowhere", root.join("etc/dangling")).unwrap();
    std::fs::write(root.join("etc/new\nline"), "n").unwrap();
    let suid = root.join("usr/local/bin/suid\nname");
    std::fs::create_dir_all(suid.parent().unwrap()).unwrap();
    std::fs::write(&suid, "s").unwrap();
    std::fs::set_permissions(&suid, std::os::unix::fs::PermissionsExt::from_mode(0o4755)).unwrap();
}

fn busybox_available() -> bool {
    crate::util::root_and_busybox()
}

#[test]
fn busybox_gatherer_matches_the_rootfs_collector() {
    if !busybox_available() {
        return;
    }
    let fx = rootfs_fixtures();
    for tree in ["alpine", "debian", "distroless"] {
        let root = fx.path().join("rootfs").join(tree);
        install_busybox(&root);
        add_oddities(&root);
        let req = request("n0nce-1");
        let out = Command::new("chroot")
            .arg(&root)
            .args(["/bin/sh", "-c", &shell::script(&req)])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{tree}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if std::env::var_os("VIGIL_DEBUG_GATHER").is_some() {
            eprintln!(
                "{}",
                String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .take(6)
                    .map(|l| &l[..l.len().min(120)])
                    .collect::<Vec<_>>()
                    .join("\n")
            );
            eprintln!(
                "{}",
                String::from_utf8_lossy(&out.stderr)
                    .lines()
                    .take(6)
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
        let gathered = shell::parse(&req, &out.stdout)
            .unwrap_or_else(|e| panic!("{tree}: {e}\n{}", String::from_utf8_lossy(&out.stdout)));
        let collected = rootfs::collect_from(&Root::open(&root).unwrap(), &req).unwrap();
        if let Some(d) = first_difference(&gathered, &collected) {
            panic!("{tree}: the gatherer and the collector disagree on {d}");
        }
        assert!(
            gathered.walks["/usr"]
                .entries
                .iter()
                .any(|e| e.path == "/usr/local/bin/suid\nname"),
            "{tree}"
        );
        assert!(gathered.files["/etc/big"].truncated);
        assert!(gathered.files["/etc/fifo"].content.is_none());
        // A name with a line break is stat'ed outside the stat blocks.
        assert_eq!(
            gathered.files["/etc/new\nline"]
                .content
                .as_ref()
                .map(|c| c.text()),
            Some("n".into()),
            "{tree}"
        );
        let dangling = &gathered.files["/etc/dangling"];
        assert_eq!(dangling.link_target.as_deref(), Some("/nowhere"));
        assert!(dangling.lstat.is_some() && dangling.stat.is_none());
    }
}

#[test]
fn gnu_gatherer_matches_the_collector_on_the_host() {
    // The host's /bin/sh with GNU coreutils, over host paths that are stable
    // while the test runs.
    let req: FactRequest = serde_json::from_value(json!({
        "nonce": "n0nce-2", "max_file_bytes": 65536,
        "stat": ["/etc/passwd", "/bin/sh", "/nope"],
        "read": ["/etc/passwd", "/etc/os-release", "/etc/hostname"],
        "read_dirs": [],
        "walks": [{"path": "/usr/bin", "depth": 1, "limit": 100000, "all": false}],
        "processes": false, "commands": []
    }))
    .unwrap();
    let out = Command::new("sh")
        .args(["-c", &shell::script(&req)])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let gathered = shell::parse(&req, &out.stdout).unwrap();
    let collected = rootfs::collect_from(&Root::open(Path::new("/")).unwrap(), &req).unwrap();
    if let Some(d) = first_difference(&gathered, &collected) {
        panic!("the gatherer and the collector disagree on {d}");
    }
}

/// The first fact that differs, shown briefly (facts can be large).
fn first_difference(a: &vigil::facts::Facts, b: &vigil::facts::Facts) -> Option<String> {
    let short = |v: String| v.chars().take(400).collect::<String>();
    let ja = serde_json::to_value(a).unwrap();
    let jb = serde_json::to_value(b).unwrap();
    for section in ["files", "dirs", "walks"] {
        let (ma, mb) = (
            ja[section].as_object().unwrap(),
            jb[section].as_object().unwrap(),
        );
        for k in ma.keys().chain(mb.keys()) {
            if ma.get(k) != mb.get(k) && section == "walks" {
                let (wa, wb) = (&ma[k], &mb[k]);
                let ea: Vec<&Value> = wa["entries"].as_array().unwrap().iter().collect();
                let eb: Vec<&Value> = wb["entries"].as_array().unwrap().iter().collect();
                let only_a: Vec<&&Value> = ea.iter().filter(|e| !eb.contains(e)).collect();
                let only_b: Vec<&&Value> = eb.iter().filter(|e| !ea.contains(e)).collect();
                return Some(format!(
                    "walk {k}: visited {} vs {}, truncated {} vs {}, only gatherer {}, only collector {}",
                    wa["visited"],
                    wb["visited"],
                    wa["truncated"],
                    wb["truncated"],
                    short(format!("{only_a:?}")),
                    short(format!("{only_b:?}"))
                ));
            }
            if ma.get(k) != mb.get(k) {
                return Some(format!(
                    "{section} {k:?}:\n gatherer:  {}\n collector: {}",
                    short(format!("{:?}", ma.get(k))),
                    short(format!("{:?}", mb.get(k)))
                ));
            }
        }
    }
    (a != b).then(|| "something outside files, dirs and walks".to_string())
}

#[test]
fn no_shell_is_reported_as_such() {
    let dir = TempDir::new("noshell");
    let req = request("n0nce-3");
    // A distroless target has no /bin/sh: whatever the exec returns, it is
    // not gatherer output.
    assert_eq!(shell::parse(&req, b"OCI runtime exec failed: exec: \"/bin/sh\": stat /bin/sh: no such file or directory\n"), Err(shell::OutputError::NoOutput));
    let _ = dir;
}

/// No false pass: in a root where a tool the gatherer needs is missing (or
/// `stat` fails for every path), the output still parses, and no control
/// of the container baseline that depends on that tool passes — while with
/// every tool present, such controls do pass (so the test can fail).
#[test]
fn a_missing_or_broken_tool_never_makes_a_control_pass() {
    use vigil::checks::{Context, Status, evaluate, overall};
    use vigil::facts::compile::compile;
    if !busybox_available() {
        return;
    }
    let (set, diags) = vigil::policy::load(&[repo().join("policies/profiles")]);
    assert!(diags.iter().all(|d| !d.is_error()));
    let controls = &set.profile("container-baseline").unwrap().value.controls;
    let mut req = compile(controls.iter(), 65536);
    req.nonce = "n0nce-t".into();
    let all = ["stat", "base64", "head", "readlink", "find", "tr", "wc"];
    let fx = rootfs_fixtures();
    let root = fx.path().join("rootfs/debian");
    install_gnu_userland(&root, &all);
    let gather = |root: &Path| {
        let out = Command::new("chroot")
            .arg(root)
            .args(["/bin/sh", "-c", &shell::script(&req)])
            .output()
            .unwrap();
        shell::parse(&req, &out.stdout).unwrap_or_else(|e| {
            panic!(
                "{e}: a missing tool must never make the output unparsable\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
    };
    let passed = |facts: &vigil::facts::Facts, c: &vigil::policy::model::Control| {
        overall(&evaluate(
            c,
            facts,
            &Context::new(vigil::policy::model::Approach::Api),
        )) == Status::Passed
    };
    let truth = rootfs::collect(&root, &req).unwrap();
    let depends = |tool: &str, c: &vigil::policy::model::Control| {
        crate::util::depends_on_tool(tool, c, &truth)
    };
    let full = gather(&root);
    let mut exercised = 0;
    for (tool, broken) in all.iter().map(|t| (*t, false)).chain([("stat", true)]) {
        let bin = root.join("usr/bin").join(tool);
        let saved = std::fs::read(&bin).unwrap();
        std::fs::remove_file(&bin).unwrap();
        if broken {
            std::fs::write(&bin, "#!/bin/sh\nexit 1\n").unwrap();
            std::fs::set_permissions(&bin, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                .unwrap();
        }
        let facts = gather(&root);
        for c in controls.iter().filter(|c| depends(tool, c)) {
            assert!(
                !passed(&facts, c),
                "{} passed with `{tool}` {}: {:?}",
                c.id,
                if broken { "failing" } else { "missing" },
                evaluate(
                    c,
                    &facts,
                    &Context::new(vigil::policy::model::Approach::Api)
                )
            );
            exercised += usize::from(passed(&full, c));
        }
        let _ = std::fs::remove_file(&bin);
        std::fs::write(&bin, saved).unwrap();
        std::fs::set_permissions(&bin, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
    }
    assert!(
        exercised > 20,
        "only {exercised} dependent controls pass with every tool present"
    );
}

/// A profile with enough paths that the script passes Linux's 128 KiB
/// per-argument limit: sent as argument chunks and joined by the shell, it
/// runs and gives the same facts, with dash and with busybox.
#[test]
fn an_over_long_script_runs_as_argument_chunks() {
    let mut req = request("n0nce-long");
    for i in 0..400 {
        req.stat
            .insert(format!("/etc/not-there-{i:05}-{}", "x".repeat(20)));
    }
    let script = shell::script(&req);
    assert!(script.len() > 128 * 1024, "{}", script.len());
    let argv = vigil::approach::api::command(&script).unwrap();
    assert!(argv.len() > 4);
    // dash, on the host's own root.
    let out = Command::new(&argv[0]).args(&argv[1..]).output().unwrap();
    let chunked = shell::parse(&req, &out.stdout).unwrap();
    // One argument of that size is what Linux refuses (E2BIG)…
    let e = Command::new("sh")
        .args(["-c", &script])
        .output()
        .unwrap_err();
    assert_eq!(e.raw_os_error(), Some(7), "{e}");
    // …so the reference reads the script on stdin, locally.
    let mut child = Command::new("sh")
        .arg("-s")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), script.as_bytes()).unwrap();
    let whole = shell::parse(&req, &child.wait_with_output().unwrap().stdout).unwrap();
    assert_eq!(chunked, whole);
    assert!(
        chunked.walks["/usr"].visited > 0,
        "walks split words again after the join"
    );
    // busybox, in a fixture root.
    if busybox_available() {
        let fx = rootfs_fixtures();
        let root = fx.path().join("rootfs/alpine");
        install_busybox(&root);
        let out = Command::new("chroot")
            .arg(&root)
            .args(&argv)
            .output()
            .unwrap();
        let facts = shell::parse(&req, &out.stdout).unwrap();
        assert!(facts.files["/etc/os-release"].content.is_some());
    }
}

/// A file that vanishes while a live root is walked (here: deleted just
/// before `stat` looks at it) is skipped and named, never a refused scan
/// and never an error that stops the walk.
#[test]
fn a_file_vanishing_during_a_walk_is_skipped_and_named() {
    if !busybox_available() {
        return;
    }
    let fx = rootfs_fixtures();
    let root = fx.path().join("rootfs/debian");
    install_gnu_userland(
        &root,
        &[
            "stat", "base64", "head", "readlink", "find", "tr", "wc", "rm",
        ],
    );
    std::fs::rename(root.join("usr/bin/stat"), root.join("usr/bin/stat.real")).unwrap();
    std::fs::write(
        root.join("usr/bin/stat"),
        "#!/bin/sh\nfor a; do last=$a; done\ncase $last in */vanish-*) rm -f \"$last\";; esac\nexec /usr/bin/stat.real \"$@\"\n",
    )
    .unwrap();
    std::fs::set_permissions(
        root.join("usr/bin/stat"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    std::fs::write(root.join("etc/vanish-me"), "gone soon").unwrap();
    std::fs::set_permissions(
        root.join("etc/vanish-me"),
        std::os::unix::fs::PermissionsExt::from_mode(0o666),
    )
    .unwrap();
    let req: FactRequest = serde_json::from_value(json!({
        "nonce": "n0nce-v", "max_file_bytes": 4096, "stat": [], "read": [], "read_dirs": [],
        "walks": [{"path": "/etc", "depth": 2, "limit": 1000, "all": false}],
        "processes": false, "commands": []
    }))
    .unwrap();
    let out = Command::new("chroot")
        .arg(&root)
        .args(["/bin/sh", "-c", &shell::script(&req)])
        .output()
        .unwrap();
    let facts = shell::parse(&req, &out.stdout).expect("a vanished file never refuses the scan");
    let walk = &facts.walks["/etc"];
    assert_eq!(walk.vanished, ["/etc/vanish-me"]);
    assert!(walk.errors.is_empty(), "{:?}", walk.errors);
    assert!(walk.entries.iter().all(|e| e.path != "/etc/vanish-me"));
    assert!(!root.join("etc/vanish-me").exists());
}
