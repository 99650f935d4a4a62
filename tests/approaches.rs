//! The debug, sidecar and auto approaches against the test API server:
//! ephemeral containers and sidecars run the real `vigil probe` binary over
//! constructed proc trees of the fixture roots.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use crate::fakeapi::FakeApiServer;
use crate::util::{TempDir, install_busybox, repo, rootfs_fixtures, statement_payload, vigil_in};

const SCANNER: &str = "registry.example/vigil@sha256:1111111111111111111111111111111111111111111111111111111111111111";

fn id(n: u8) -> String {
    format!("containerd://{}", format!("{n:02x}").repeat(32))
}

/// A pod with one `app` container (uid and gid 1000) and, when `sidecar`, the
/// vigil scanner sidecar with a shared process namespace.
fn pod(name: &str, image: &str, n: u8, sidecar: bool) -> Value {
    let mut containers = vec![
        json!({"name": "app", "image": image, "command": ["app-server", "--port", "8080"], "securityContext": {"runAsUser": 1000, "runAsGroup": 1000}}),
    ];
    let mut statuses = vec![
        json!({"name": "app", "ready": true, "restartCount": 0, "image": image, "imageID": "", "containerID": id(n), "state": {"running": {}}}),
    ];
    if sidecar {
        // As `vigil render sidecar --run-as-user 1000` adds it.
        containers.push(json!({"name": "vigil-scanner", "image": SCANNER, "securityContext": {"runAsUser": 1000, "runAsGroup": 1000, "capabilities": {"drop": ["ALL"]}}}));
        statuses.push(json!({"name": "vigil-scanner", "ready": true, "restartCount": 0, "image": SCANNER, "imageID": SCANNER, "containerID": id(n + 100), "state": {"running": {}}}));
    }
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "mixed", "labels": {"app": name}, "uid": format!("uid-{name}")},
        "spec": {"nodeName": "node-1", "shareProcessNamespace": sidecar, "containers": containers},
        "status": {"phase": "Running", "containerStatuses": statuses}
    })
}

struct Setup {
    _fixtures: TempDir,
    dir: TempDir,
    server: FakeApiServer,
    debian: PathBuf,
}

/// In namespace `mixed`, all on the debian-like fixture (with a busybox
/// shell) unless said otherwise:
/// - `via-api`, `via-debug`: ordinary pods;
/// - `via-sidecar`: carries the scanner sidecar;
/// - `distroless-0`: the distroless fixture, an image that says so;
/// - `noshell-0`: the distroless fixture behind an ordinary image name
///   (only the exec can tell it has no shell).
fn setup() -> Option<Setup> {
    if !crate::util::root_and_busybox() {
        return None;
    }
    let fx = rootfs_fixtures();
    let roots = fx.path().join("rootfs");
    install_busybox(&roots.join("debian"));
    let debian = roots.join("debian");
    let distroless = roots.join("distroless");
    let pods = vec![
        pod("via-api", "registry.example/web:1", 1, false),
        pod("via-debug", "registry.example/web:1", 2, false),
        pod("via-sidecar", "registry.example/web:1", 3, true),
        pod(
            "distroless-0",
            "gcr.io/distroless/static@sha256:2222222222222222222222222222222222222222222222222222222222222222",
            4,
            false,
        ),
        pod("noshell-0", "registry.example/app:1", 5, false),
    ];
    let mut rootfs: HashMap<(String, String), PathBuf> = HashMap::new();
    for name in ["via-api", "via-debug", "via-sidecar"] {
        rootfs.insert(("mixed".into(), name.into()), debian.clone());
    }
    for name in ["distroless-0", "noshell-0"] {
        rootfs.insert(("mixed".into(), name.into()), distroless.clone());
    }
    let dir = TempDir::new("approaches");
    let server = FakeApiServer::start(dir.path(), pods, rootfs);
    server.set_probe_binary(Path::new(env!("CARGO_BIN_EXE_vigil")));
    Some(Setup {
        _fixtures: fx,
        dir,
        server,
        debian,
    })
}

/// The baseline plus a process control, which only debug and sidecar can see.
fn write_policy(s: &Setup, targets: &str) -> PathBuf {
    s.dir.write(
        "profile.yaml",
        "apiVersion: vigil/v1\nkind: Profile\nmetadata: {name: processes}\ncontrols:\n  - id: P-1\n    title: the app server runs as a non-root user\n    impact: 0.5\n    check: {process: '^app-server', expect: {running: true, user: 1000}}\n",
    );
    s.dir.write(
        "p.yaml",
        format!("apiVersion: vigil/v1\nkind: ScanPolicy\nmetadata: {{name: mixed}}\nspec:\n  profiles: [container-baseline, processes]\n  debug: {{image: \"{SCANNER}\"}}\n  limits: {{concurrency: 4, scanTimeout: 60s}}\n  targets:\n{targets}"),
    )
}

/// An unsigned run whose exit code the test judges (`run` accepts only
/// 0 and 1).
fn run_unsigned(s: &Setup) -> crate::util::Run {
    crate::util::run_cmd(
        s.dir.path(),
        &s.server.kubeconfig,
        &["profile.yaml", "--unsigned"],
    )
    .output()
    .unwrap()
    .into()
}

fn run(s: &Setup, extra: &[&str]) -> (crate::util::Run, Value) {
    let mut args = vec!["profile.yaml"];
    args.extend_from_slice(extra);
    crate::util::run_json(s.dir.path(), &s.server.kubeconfig, &args)
}

/// control id → status, per target, from the HDF files of a run.
fn control_statuses(s: &Setup, summary: &Value) -> BTreeMap<String, BTreeMap<String, String>> {
    let run_id = summary[0]["run_id"].as_str().unwrap();
    crate::util::control_statuses_in(&s.dir.path().join("out/mixed").join(run_id).join("targets"))
}

fn target<'a>(summary: &'a Value, id: &str) -> &'a Value {
    summary[0]["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == id)
        .unwrap_or_else(|| panic!("no target {id} in {summary}"))
}

#[test]
fn every_approach_gives_the_same_results_on_the_same_root() {
    let Some(s) = setup() else { return };
    write_policy(
        &s,
        &format!(
            "    - {{namespace: mixed, pods: [via-api], approach: api}}\n    - {{namespace: mixed, pods: [via-debug], approach: debug}}\n    - {{namespace: mixed, pods: [via-sidecar], approach: sidecar}}\n    - {{rootfs: {}, name: local-debian}}\n",
            s.debian.display()
        ),
    );
    let (out, summary) = run(&s, &["--unsigned"]);
    for (id, approach) in [
        ("mixed/via-api/app", "api"),
        ("mixed/via-debug/app", "debug"),
        ("mixed/via-sidecar/app", "sidecar"),
        ("rootfs/local-debian", "local"),
    ] {
        let t = target(&summary, id);
        assert_eq!(t["status"], "scanned", "{t}\n{}", out.stderr);
        assert_eq!(t["approach"], approach, "{t}");
    }
    let results = control_statuses(&s, &summary);
    let local = &results["rootfs/local-debian"];
    assert!(local.len() >= 25, "{local:?}");
    for id in [
        "mixed/via-api/app",
        "mixed/via-debug/app",
        "mixed/via-sidecar/app",
    ] {
        let remote = &results[id];
        for (control, status) in local {
            if control == "P-1" {
                continue;
            }
            assert_eq!(&remote[control], status, "{id} {control}");
        }
    }
    // Processes: invisible to api and local, seen by debug and sidecar
    // (the sidecar only sees the target container's processes, by cgroup).
    assert_eq!(local["P-1"], "skipped");
    assert_eq!(results["mixed/via-api/app"]["P-1"], "skipped");
    assert_eq!(results["mixed/via-debug/app"]["P-1"], "passed");
    assert_eq!(results["mixed/via-sidecar/app"]["P-1"], "passed");

    // The ephemeral container: named after the scan, hardened, targeting
    // the container, no resources (the API refuses them), and it stays in
    // the pod (Kubernetes cannot remove it).
    let pod = s.server.pod("mixed", "via-debug").unwrap();
    let ecs = pod["spec"]["ephemeralContainers"].as_array().unwrap();
    assert_eq!(ecs.len(), 1);
    let ec = &ecs[0];
    let scan_id = target(&summary, "mixed/via-debug/app")["scan_id"]
        .as_str()
        .unwrap()
        .replace('-', "");
    assert_eq!(
        ec["name"],
        format!("vigil-{}", &scan_id[scan_id.len() - 12..])
    );
    assert_eq!(ec["targetContainerName"], "app");
    assert_eq!(ec["image"], SCANNER);
    let sc = &ec["securityContext"];
    assert_eq!(sc["runAsUser"], 1000);
    assert_eq!(sc["runAsNonRoot"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]));
    assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault");
    assert!(ec.get("resources").is_none());
    assert_eq!(
        pod["status"]["ephemeralContainerStatuses"][0]["state"]["terminated"]["exitCode"],
        0
    );
    // Every call ran as the run's ServiceAccount; nothing left behind.
    let log = s.server.request_log();
    for l in &log {
        if l.path.contains("/ephemeralcontainers")
            || l.path.contains("/log?")
            || l.path.contains("watch=")
            || l.path.contains("/exec?")
        {
            assert!(l.identity.starts_with("system:serviceaccount:"), "{l:?}");
            assert!(l.status < 300 || l.status == 101, "{l:?}");
        }
    }
    assert!(log.iter().any(
        |l| l.path.contains("via-sidecar/exec?") && l.path.contains("container=vigil-scanner")
    ));
    s.server.assert_no_access_objects();
}

#[test]
fn auto_moves_shell_less_containers_to_debug_and_records_the_decision() {
    let Some(s) = setup() else { return };
    write_policy(
        &s,
        "    - {namespace: mixed, pods: [via-api, distroless-0, noshell-0], approach: auto}\n",
    );
    // The plan shows auto, with the reason, and grants both approaches'
    // verbs, pinned to the pods.
    let plan = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args([
            "plan",
            "p.yaml",
            "profile.yaml",
            repo().join("policies/profiles").to_str().unwrap(),
            "--format",
            "json",
        ])
        .current_dir(s.dir.path())
        .env("KUBECONFIG", &s.server.kubeconfig)
        .output()
        .unwrap();
    let plan: Value = serde_json::from_slice(&plan.stdout).unwrap();
    let targets = plan["policies"][0]["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 3);
    assert!(
        targets.iter().all(|t| t["approach"] == "auto"),
        "{targets:?}"
    );
    let rules = plan["policies"][0]["access"][0]["role"]["rules"]
        .as_array()
        .unwrap();
    // The image that says it is distroless gets no exec right.
    let names = |res: &str, verb: &str| -> Vec<String> {
        rules
            .iter()
            .find(|r| {
                r["resources"][0] == res && r["verbs"].as_array().unwrap().iter().any(|v| v == verb)
            })
            .map(|r| serde_json::from_value(r["resourceNames"].clone()).unwrap())
            .unwrap_or_default()
    };
    assert_eq!(names("pods/exec", "create"), ["noshell-0", "via-api"]);
    assert_eq!(names("pods/exec", "get"), ["noshell-0", "via-api"]);
    for (res, verb) in [
        ("pods/ephemeralcontainers", "patch"),
        ("pods/log", "get"),
        ("pods", "watch"),
    ] {
        assert_eq!(
            names(res, verb),
            ["distroless-0", "noshell-0", "via-api"],
            "{res} {verb}"
        );
    }

    crate::util::signing_key(s.dir.path());
    let (out, summary) = run(&s, &["--signing-key", "signer.key.pem"]);
    let api = target(&summary, "mixed/via-api/app");
    assert_eq!(
        (api["status"].as_str(), api["approach"].as_str()),
        (Some("scanned"), Some("api"))
    );
    for id in ["mixed/distroless-0/app", "mixed/noshell-0/app"] {
        let t = target(&summary, id);
        assert_eq!(t["status"], "scanned", "{t}\n{}", out.stderr);
        assert_eq!(t["approach"], "debug", "{t}");
    }
    // The debug containers' logs, which the kubelet keeps for the pod's
    // lifetime, hold only ciphertext: no frame, no file content.
    let logs = s.server.container_logs();
    assert!(!logs.is_empty());
    for log in &logs {
        let text = String::from_utf8_lossy(log);
        assert!(
            text.contains("-----BEGIN AGE ENCRYPTED FILE-----"),
            "{text:.200}"
        );
        for plain in ["VIGIL-FACTS", "root:x:0:0", "Package:", "files"] {
            assert!(!text.contains(plain), "{plain} in a pod log");
        }
    }
    // Distroless results are real: the dpkg status.d records are read.
    let results = control_statuses(&s, &summary);
    assert!(
        results["mixed/distroless-0/app"]
            .values()
            .any(|v| v == "passed")
    );
    // Only the ordinary-looking image paid for an exec first.
    let log = s.server.request_log();
    assert!(log.iter().any(|l| l.path.contains("noshell-0/exec?")));
    assert!(!log.iter().any(|l| l.path.contains("distroless-0/exec?")));
    // The signed statement records the approach per target.
    let bundle = s
        .dir
        .path()
        .join("out/mixed")
        .join(summary[0]["run_id"].as_str().unwrap());
    let statement = statement_payload(&bundle);
    let approaches: BTreeMap<String, String> = statement["predicate"]["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["id"].as_str().unwrap().to_string(),
                t["approach"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(approaches["mixed/via-api/app"], "api");
    assert_eq!(approaches["mixed/distroless-0/app"], "debug");
    assert_eq!(approaches["mixed/noshell-0/app"], "debug");
    let verify = vigil_in(
        s.dir.path(),
        &[
            "verify",
            bundle.to_str().unwrap(),
            "--trusted-key",
            "signer.pub.pem",
        ],
    );
    assert_eq!(verify.code, 0, "{}{}", verify.stdout, verify.stderr);
}

#[test]
fn the_new_verbs_are_pinned_to_the_planned_pods() {
    let Some(s) = setup() else { return };
    // The run's Role for a debug target, then its token used on another pod.
    write_policy(
        &s,
        "    - {namespace: mixed, pods: [via-debug], approach: debug}\n",
    );
    let crate::util::RunAccessFixture {
        rt,
        caller,
        mut access,
        audit,
    } = crate::util::run_access(
        &s.server.kubeconfig,
        &[
            s.dir.path().join("p.yaml"),
            s.dir.path().join("profile.yaml"),
            repo().join("policies/profiles"),
        ],
    );
    let scoped = access.scoped("mixed").unwrap().clone();
    let ec = k8s_openapi::api::core::v1::EphemeralContainer {
        name: "vigil-intruder".into(),
        image: Some(SCANNER.into()),
        target_container_name: Some("app".into()),
        command: Some(vec!["/usr/local/bin/vigil".into(), "probe".into()]),
        ..Default::default()
    };
    let denied = rt
        .block_on(scoped.add_ephemeral_container("mixed", "via-api", &ec))
        .unwrap_err();
    assert!(denied.is_forbidden(), "{denied}");
    let denied = rt
        .block_on(scoped.container_log(
            "mixed",
            "via-api",
            "app",
            1024,
            vigil::cluster::Stdout::Each(&mut |_| true),
        ))
        .unwrap_err();
    assert!(denied.is_forbidden(), "{denied}");
    let denied = rt
        .block_on(scoped.exec("mixed", "via-debug", "app", vec!["/bin/sh".into()], 1024))
        .unwrap_err();
    assert!(
        denied.is_forbidden(),
        "a debug target grants no exec: {denied}"
    );
    // The planned pod is allowed; resources on an ephemeral container are refused as by Kubernetes.
    let mut with_resources = ec.clone();
    with_resources.resources = Some(k8s_openapi::api::core::v1::ResourceRequirements {
        limits: Some(
            [(
                "cpu".to_string(),
                k8s_openapi::apimachinery::pkg::api::resource::Quantity("100m".into()),
            )]
            .into(),
        ),
        ..Default::default()
    });
    let invalid = rt
        .block_on(scoped.add_ephemeral_container("mixed", "via-debug", &with_resources))
        .unwrap_err();
    assert!(invalid.to_string().contains("422"), "{invalid}");
    rt.block_on(scoped.add_ephemeral_container("mixed", "via-debug", &ec))
        .unwrap();
    rt.block_on(access.cleanup(&caller, &audit));
}

/// An exec whose shell dies (killed as by the OOM killer) or prints nothing
/// is an error result under `auto`, never "no shell": no ephemeral
/// container is added to the pod for it.
#[test]
fn auto_never_takes_a_dead_or_silent_shell_for_a_missing_one() {
    if !crate::util::root_and_busybox() {
        return;
    }
    let fx = rootfs_fixtures();
    let roots = fx.path().join("rootfs");
    let mut rootfs: HashMap<(String, String), PathBuf> = HashMap::new();
    let mut pods = Vec::new();
    for (i, (name, body)) in [("killed-0", "kill -9 $$"), ("silent-0", "exit 0")]
        .iter()
        .enumerate()
    {
        let root = fx.path().join(name);
        assert!(
            Command::new("cp")
                .arg("-a")
                .arg(roots.join("debian"))
                .arg(&root)
                .status()
                .unwrap()
                .success()
        );
        install_busybox(&root);
        let sh = root.join("usr/bin/sh");
        std::fs::remove_file(&sh).unwrap();
        std::fs::write(&sh, format!("#!/usr/bin/busybox sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&sh, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        pods.push(pod(name, "registry.example/app:1", 10 + i as u8, false));
        rootfs.insert(("mixed".into(), name.to_string()), root);
    }
    let dir = TempDir::new("deadshell");
    let server = FakeApiServer::start(dir.path(), pods, rootfs);
    server.set_probe_binary(Path::new(env!("CARGO_BIN_EXE_vigil")));
    dir.write(
        "p.yaml",
        format!("apiVersion: vigil/v1\nkind: ScanPolicy\nmetadata: {{name: mixed}}\nspec:\n  profiles: [container-baseline]\n  debug: {{image: \"{SCANNER}\"}}\n  limits: {{retries: 0, scanTimeout: 30s}}\n  targets:\n    - {{namespace: mixed, pods: [killed-0, silent-0], approach: auto}}\n"),
    );
    let out: crate::util::Run =
        crate::util::run_cmd(dir.path(), &server.kubeconfig, &["--unsigned"])
            .output()
            .unwrap()
            .into();
    assert_eq!(out.code, 3, "{}", out.stderr);
    let summary: Value = serde_json::from_str(&out.stdout).unwrap();
    for (id, why) in [
        ("mixed/killed-0/app", "137"),
        ("mixed/silent-0/app", "no output"),
    ] {
        let t = target(&summary, id);
        assert_ne!(t["status"], "scanned", "{t}");
        let err = t["error"].as_str().unwrap_or_default();
        assert!(
            err.contains(why) && !err.contains("no usable shell"),
            "{id}: {err}"
        );
    }
    let log = server.request_log();
    assert!(
        !log.iter().any(|l| l.path.contains("ephemeralcontainers")),
        "an ephemeral container was added for a shell that exists"
    );
}

/// A container that lies: its `stat` forges every file as a root-owned
/// 0600 regular file. Through `api` the forgery wins — and the result says
/// its evidence is `api`, the target's own word; through `debug` on the
/// same root the probe reads the truth, with evidence `probe`.
#[test]
fn a_lying_userland_fools_api_evidence_but_not_the_probe() {
    if !crate::util::root_and_busybox() {
        return;
    }
    let fx = rootfs_fixtures();
    let root = fx.path().join("rootfs/debian");
    crate::util::install_gnu_userland(&root, &["base64", "head", "readlink", "find", "tr", "wc"]);
    std::fs::write(
        root.join("usr/bin/stat"),
        "#!/bin/sh\n# forged: every path is a root-owned 0600 regular file\nfmt=\nwhile [ $# -gt 0 ]; do case $1 in -L) shift;; -c) fmt=$2; shift 2;; --) shift; break;; *) break;; esac; done\nfor p; do case $fmt in *%n*) echo \"8180:0:0:0 $p\";; *) echo 8180:0:0:0;; esac; done\n",
    )
    .unwrap();
    std::fs::set_permissions(
        root.join("usr/bin/stat"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let pods = vec![
        pod("liar-api", "registry.example/app:1", 21, false),
        pod("liar-debug", "registry.example/app:1", 22, false),
    ];
    let mut rootfs: HashMap<(String, String), PathBuf> = HashMap::new();
    for name in ["liar-api", "liar-debug"] {
        rootfs.insert(("mixed".into(), name.into()), root.clone());
    }
    let dir = TempDir::new("liar");
    let server = FakeApiServer::start(dir.path(), pods, rootfs);
    server.set_probe_binary(Path::new(env!("CARGO_BIN_EXE_vigil")));
    dir.write(
        "p.yaml",
        format!("apiVersion: vigil/v1\nkind: ScanPolicy\nmetadata: {{name: mixed}}\nspec:\n  profiles: [container-baseline]\n  debug: {{image: \"{SCANNER}\"}}\n  targets:\n    - {{namespace: mixed, pods: [liar-api], approach: api}}\n    - {{namespace: mixed, pods: [liar-debug], approach: debug}}\n"),
    );
    crate::util::signing_key(dir.path());
    let (_, summary) = crate::util::run_json(
        dir.path(),
        &server.kubeconfig,
        &["--signing-key", "signer.key.pem"],
    );
    let evidence = |id: &str| {
        target(&summary, id)["evidence"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(evidence("mixed/liar-api/app"), "api");
    assert_eq!(evidence("mixed/liar-debug/app"), "probe");
    let run = dir
        .path()
        .join("out/mixed")
        .join(summary[0]["run_id"].as_str().unwrap());
    let hdf = |id: &str| -> Value {
        let name = vigil::report::hdf_file_name(id);
        serde_json::from_slice(&std::fs::read(run.join("targets").join(name)).unwrap()).unwrap()
    };
    let world_writable = |h: &Value| crate::util::hdf_statuses(h)["CB-11"].clone();
    let (api, debug) = (hdf("mixed/liar-api/app"), hdf("mixed/liar-debug/app"));
    assert_eq!(api["platform"]["evidence"], "api");
    assert_eq!(debug["platform"]["evidence"], "probe");
    assert_eq!(world_writable(&api), "passed", "the forgery fools api");
    assert_eq!(
        world_writable(&debug),
        "failed",
        "the probe reads the truth"
    );
    // The signed statement carries the evidence level per target.
    let st = statement_payload(&run);
    let levels: BTreeMap<String, String> = st["predicate"]["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["id"].as_str().unwrap().into(),
                t["evidence"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(levels["mixed/liar-api/app"], "api");
    assert_eq!(levels["mixed/liar-debug/app"], "probe");
}

/// Through the api approach and the test server: a container without
/// `stat`, `find` or `base64`, or whose `stat` fails for every path, gets
/// `error` — never `passed` — for every control that needed the tool, while
/// the same root with every tool passes them.
#[test]
fn missing_tools_in_a_container_make_errors_never_passes() {
    use vigil::facts::compile::compile;
    if !crate::util::root_and_busybox() {
        return;
    }
    let fx = rootfs_fixtures();
    let debian = fx.path().join("rootfs/debian");
    let all = ["stat", "base64", "head", "readlink", "find", "tr", "wc"];
    let variants: [(&str, Option<&str>, bool); 5] = [
        ("full-0", None, false),
        ("nostat-0", Some("stat"), false),
        ("nofind-0", Some("find"), false),
        ("nobase64-0", Some("base64"), false),
        ("statfails-0", Some("stat"), true),
    ];
    let mut rootfs: HashMap<(String, String), PathBuf> = HashMap::new();
    let mut pods = Vec::new();
    for (i, (name, without, broken)) in variants.iter().enumerate() {
        let root = fx.path().join(name);
        assert!(
            Command::new("cp")
                .arg("-a")
                .arg(&debian)
                .arg(&root)
                .status()
                .unwrap()
                .success()
        );
        let tools: Vec<&str> = all
            .iter()
            .copied()
            .filter(|t| Some(*t) != *without || *broken)
            .collect();
        crate::util::install_gnu_userland(&root, &tools);
        if *broken {
            std::fs::write(root.join("usr/bin/stat"), "#!/bin/sh\nexit 1\n").unwrap();
        }
        pods.push(pod(name, "registry.example/app:1", 30 + i as u8, false));
        rootfs.insert(("mixed".into(), name.to_string()), root);
    }
    let dir = TempDir::new("notools");
    let server = FakeApiServer::start(dir.path(), pods, rootfs);
    let names: Vec<&str> = variants.iter().map(|v| v.0).collect();
    dir.write(
        "p.yaml",
        format!("apiVersion: vigil/v1\nkind: ScanPolicy\nmetadata: {{name: mixed}}\nspec:\n  profiles: [container-baseline]\n  targets:\n    - {{namespace: mixed, pods: [{}], approach: api}}\n", names.join(", ")),
    );
    let (_, summary) = crate::util::run_json(dir.path(), &server.kubeconfig, &["--unsigned"]);
    let run = dir
        .path()
        .join("out/mixed")
        .join(summary[0]["run_id"].as_str().unwrap());
    let statuses = |pod: &str| -> BTreeMap<String, String> {
        let name = vigil::report::hdf_file_name(&format!("mixed/{pod}/app"));
        let hdf: Value =
            serde_json::from_slice(&std::fs::read(run.join("targets").join(name)).unwrap())
                .unwrap();
        crate::util::hdf_statuses(&hdf)
    };
    let (set, _) = vigil::policy::load(&[repo().join("policies/profiles")]);
    let controls = &set.profile("container-baseline").unwrap().value.controls;
    let truth = vigil::facts::rootfs::collect(&debian, &compile(controls.iter(), 65536)).unwrap();
    let full = statuses("full-0");
    for (name, without, broken) in &variants[1..] {
        let tool = without.unwrap();
        let got = statuses(name);
        let mut dependent = 0;
        for c in controls
            .iter()
            .filter(|c| crate::util::depends_on_tool(tool, c, &truth))
        {
            assert_ne!(
                got[&c.id], "passed",
                "{name}: {} passed without a working `{tool}` (broken: {broken})",
                c.id
            );
            assert_eq!(got[&c.id], "error", "{name}: {}", c.id);
            dependent += 1;
        }
        assert!(dependent > 0, "{name}: no control depends on `{tool}`");
    }
    // With every tool, the same root passes plenty: the test can fail.
    assert!(
        full.values().filter(|s| *s == "passed").count() > 15,
        "{full:?}"
    );
}

/// A pod in `mixed` on the debian-like root, its `app` container with
/// `security` as securityContext, `user` as the kubelet's
/// `status.containerStatuses[].user`, and `shared` as shareProcessNamespace.
fn add_pod(s: &Setup, name: &str, n: u8, security: Value, user: Value, shared: bool) {
    let mut p = pod(name, "registry.example/web:1", n, false);
    p["spec"]["containers"][0]["securityContext"] = security;
    p["spec"]["shareProcessNamespace"] = json!(shared);
    if !user.is_null() {
        p["status"]["containerStatuses"][0]["user"] = user;
    }
    p["metadata"]["resourceVersion"] = json!("1");
    s.server.insert("pods", p);
    s.server.set_rootfs("mixed", name, &s.debian);
}

/// The kernel lets the probe read the target's `/proc/<pid>/root` only with
/// the same uid and gid and at least the target's capabilities: the test
/// server enforces that check, and models `pause` as PID 1 of a pod with a
/// shared process namespace. vigil's ephemeral container runs as its
/// target (ids from the kubelet's status, else the spec), mirrors a root
/// target's capabilities, finds the target by container ID, and says so
/// plainly when the ids are unknown.
#[test]
fn the_debug_probe_runs_as_its_target_and_finds_it_by_container_id() {
    let Some(s) = setup() else { return };
    let root = json!({"linux": {"uid": 0, "gid": 0, "supplementalGroups": [0]}});
    add_pod(&s, "root-reported", 11, Value::Null, root.clone(), false);
    add_pod(
        &s,
        "root-narrow",
        12,
        json!({"capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}}),
        root,
        false,
    );
    add_pod(&s, "unknown-ids", 13, Value::Null, Value::Null, false);
    add_pod(
        &s,
        "shared-pid",
        14,
        json!({"runAsUser": 1000, "runAsGroup": 1000}),
        Value::Null,
        true,
    );

    // The test server's kernel: the wrong gid, or a root target's
    // capabilities missing, is EACCES; pause is PID 1 in a shared pod.
    let probe = |pid_args: &[&str], sc: Value| -> Value {
        let mut command = vec!["/usr/local/bin/vigil", "probe"];
        command.extend_from_slice(pid_args);
        command.extend(["--request-json", r#"{"nonce":"n","max_file_bytes":4096,"stat":["/etc/os-release"],"read":[],"read_dirs":[],"walks":[],"processes":false,"commands":[]}"#]);
        json!({"name": format!("check-{}", uuid::Uuid::new_v4().simple()), "image": SCANNER, "targetContainerName": "app", "command": command, "securityContext": sc})
    };
    let app_id = |n: u8| format!("{n:02x}").repeat(32);
    let cases = [
        (
            "via-debug",
            vec!["--pid", "1"],
            json!({"runAsUser": 1000, "runAsGroup": 1000, "capabilities": {"drop": ["ALL"]}}),
            true,
        ),
        (
            "via-debug",
            vec!["--pid", "1"],
            json!({"runAsUser": 1000, "capabilities": {"drop": ["ALL"]}}),
            false,
        ),
        (
            "root-reported",
            vec!["--pid", "1"],
            json!({"runAsUser": 0, "runAsGroup": 0, "capabilities": {"drop": ["ALL"]}}),
            false,
        ),
        (
            "root-reported",
            vec!["--pid", "1"],
            json!({"runAsUser": 0, "runAsGroup": 0}),
            true,
        ),
    ];
    for (pod, args, sc, readable) in cases {
        let (code, log) = s
            .server
            .run_ephemeral_container("mixed", pod, probe(&args, sc.clone()));
        assert_eq!(code == 0, readable, "{pod} {sc}: exit {code}: {log}");
        if !readable {
            assert!(log.contains("ermission denied"), "{pod} {sc}: {log}");
        }
    }
    let shared_sc =
        json!({"runAsUser": 1000, "runAsGroup": 1000, "capabilities": {"drop": ["ALL"]}});
    let (_, pause) = s.server.run_ephemeral_container(
        "mixed",
        "shared-pid",
        probe(&["--pid", "1"], shared_sc.clone()),
    );
    let by_id = app_id(14);
    let (code, app) = s.server.run_ephemeral_container(
        "mixed",
        "shared-pid",
        probe(&["--container-id", &by_id], shared_sc),
    );
    assert_eq!(code, 0, "{app}");
    assert!(
        !pause.contains("\"lstat\"") && app.contains("\"lstat\""),
        "PID 1 is pause:\n{pause}\nthe app:\n{app}"
    );

    // A sidecar rendered with the uid but not the gid of its targets.
    let mut p = pod("sidecar-gid", "registry.example/web:1", 15, true);
    p["spec"]["containers"][1]["securityContext"] = json!({"runAsUser": 1000});
    p["metadata"]["resourceVersion"] = json!("1");
    s.server.insert("pods", p);
    s.server.set_rootfs("mixed", "sidecar-gid", &s.debian);

    // vigil's debug scans.
    write_policy(
        &s,
        "    - {namespace: mixed, pods: [root-reported, root-narrow, unknown-ids, shared-pid], approach: debug}\n    - {namespace: mixed, pods: [sidecar-gid], approach: sidecar}\n",
    );
    let out = run_unsigned(&s);
    assert_eq!(out.code, 3, "a target could not be scanned: {}", out.stderr);
    let summary: Value = serde_json::from_str(&out.stdout).unwrap();
    for id in ["root-reported", "root-narrow", "shared-pid"] {
        let t = target(&summary, &format!("mixed/{id}/app"));
        assert_eq!(t["status"], "scanned", "{t}\n{}", out.stderr);
        assert_eq!(t["counts"]["error"], 0, "{t}");
    }
    let unknown = target(&summary, "mixed/unknown-ids/app");
    let err = unknown["error"].as_str().unwrap_or_default();
    assert!(
        unknown["status"] != "scanned" && err.contains("uid and gid") && err.contains("runAsGroup"),
        "{unknown}"
    );
    let sidecar = target(&summary, "mixed/sidecar-gid/app");
    let err = sidecar["error"].as_str().unwrap_or_default();
    assert!(
        sidecar["status"] != "scanned"
            && err.contains("permission denied")
            && err.contains("uid and gid"),
        "{sidecar}"
    );
    // Each ran as its target, with a root target's own capabilities.
    let sc = |pod: &str| {
        s.server.pod("mixed", pod).unwrap()["spec"]["ephemeralContainers"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()["securityContext"]
            .clone()
    };
    assert_eq!(
        (
            sc("root-reported")["runAsUser"].clone(),
            sc("root-reported")["runAsGroup"].clone()
        ),
        (json!(0), json!(0))
    );
    assert!(
        sc("root-reported")["capabilities"].is_null(),
        "{}",
        sc("root-reported")
    );
    assert_eq!(
        sc("root-narrow")["capabilities"],
        json!({"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]})
    );
    assert_eq!(
        (
            sc("shared-pid")["runAsUser"].clone(),
            sc("shared-pid")["runAsGroup"].clone()
        ),
        (json!(1000), json!(1000))
    );
    assert_eq!(sc("shared-pid")["capabilities"]["drop"], json!(["ALL"]));
    assert!(
        s.server.pod("mixed", "unknown-ids").unwrap()["spec"]["ephemeralContainers"].is_null(),
        "no container that could not read its target"
    );
}

/// A scanner image the node cannot pull ends the scan at once (not at
/// `scanTimeout`) with an error that points at the pod's imagePullSecrets.
#[test]
fn an_unpullable_scanner_image_fails_fast_and_names_image_pull_secrets() {
    let Some(s) = setup() else { return };
    s.dir.write(
        "profile.yaml",
        "apiVersion: vigil/v1\nkind: Profile\nmetadata: {name: processes}\ncontrols: []\n",
    );
    // The test server's nodes pull only the scanner image's probe: any other
    // command in it stands for an image they cannot pull.
    s.dir.write(
        "p.yaml",
        "apiVersion: vigil/v1\nkind: ScanPolicy\nmetadata: {name: mixed}\nspec:\n  profiles: [container-baseline]\n  debug: {image: \"registry.example/private/vigil@sha256:3333333333333333333333333333333333333333333333333333333333333333\"}\n  limits: {scanTimeout: 120s, retries: 0}\n  targets:\n    - {namespace: mixed, pods: [via-debug], approach: debug}\n",
    );
    s.server
        .inject_image_pull_failure("registry.example/private/vigil");
    let started = std::time::Instant::now();
    let out: crate::util::Run =
        crate::util::run_cmd(s.dir.path(), &s.server.kubeconfig, &["--unsigned"])
            .output()
            .unwrap()
            .into();
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    let summary: Value = serde_json::from_str(&out.stdout).unwrap();
    let err = target(&summary, "mixed/via-debug/app")["error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        err.contains("ErrImagePull") && err.contains("imagePullSecrets"),
        "{err}"
    );
}

/// Watching the pod until the ephemeral container ends: a 410 Gone (the
/// version was compacted away) makes vigil read the pod afresh and watch on,
/// as informers relist; bookmarks move its version forward.
#[test]
fn a_watch_that_meets_410_gone_reads_the_pod_and_watches_on() {
    let Some(s) = setup() else { return };
    write_policy(
        &s,
        "    - {namespace: mixed, pods: [via-debug], approach: debug}\n",
    );
    s.server.inject(crate::fakeapi::Faults {
        watch_gone: 2,
        ..Default::default()
    });
    let (out, summary) = run(&s, &["--unsigned"]);
    let t = target(&summary, "mixed/via-debug/app");
    assert_eq!(t["status"], "scanned", "{t}\n{}", out.stderr);
    let log = s.server.request_log();
    let gets = log
        .iter()
        .filter(|l| {
            l.method == "GET"
                && l.path
                    .starts_with("/api/v1/namespaces/mixed/pods/via-debug")
                && !l.path.contains("/log")
        })
        .count();
    assert!(gets >= 1, "the pod was read again after 410");
    assert!(
        log.iter()
            .any(|l| l.path.contains("allowWatchBookmarks=true")),
        "watches ask for bookmarks"
    );
}

/// A scan reads an answer up to 16 MiB as it arrives: an ephemeral
/// container's patch answered with a padded pod makes the target an error
/// naming the call and the cap, never a pass and never a read without end.
#[test]
fn an_oversized_patch_answer_makes_an_error_target() {
    let Some(s) = setup() else { return };
    write_policy(
        &s,
        "    - {namespace: mixed, pods: [via-debug], approach: debug}\n",
    );
    s.server.inject(crate::fakeapi::Faults {
        patch_padding: 17 << 20,
        ..Default::default()
    });
    assert_error_target(
        &s,
        "mixed/via-debug/app",
        &[
            "pods/ephemeralcontainers mixed/via-debug",
            "exceeded 16777216 bytes",
        ],
    );
}

/// An unsigned run whose target `id` ends as an error whose message says
/// each of `says` (the run exits 3).
fn assert_error_target(s: &Setup, id: &str, says: &[&str]) {
    let out = run_unsigned(s);
    assert_eq!(out.code, 3, "an error target: {}", out.stderr);
    let summary: Value = serde_json::from_str(&out.stdout).unwrap();
    let t = target(&summary, id);
    let err = t["error"].as_str().unwrap_or_default();
    assert!(
        t["status"] == "error" && says.iter().all(|w| err.contains(w)),
        "{t}\n{}",
        out.stderr
    );
}

/// A debug container's log is decoded as it streams: other lines before the
/// probe's armored output are skipped (up to 1 MiB); past that the log is
/// refused without reading on (the unit test `facts::frame` shows an endless
/// one refused). The log request asks for at most the output cap, which the
/// server honours as the kubelet does.
#[test]
fn debug_logs_are_decoded_as_they_stream_and_noise_is_bounded() {
    let Some(s) = setup() else { return };
    write_policy(
        &s,
        "    - {namespace: mixed, pods: [via-debug], approach: debug}\n",
    );
    s.server.inject(crate::fakeapi::Faults {
        log_noise: 300_000,
        ..Default::default()
    });
    let (out, summary) = run(&s, &["--unsigned"]);
    let t = target(&summary, "mixed/via-debug/app");
    assert_eq!(t["status"], "scanned", "{t}\n{}", out.stderr);
    s.server.inject(crate::fakeapi::Faults {
        log_noise: 3 * 1024 * 1024,
        ..Default::default()
    });
    assert_error_target(
        &s,
        "mixed/via-debug/app",
        &["not encrypted to this scan's key", "noise"],
    );
    let logs: Vec<_> = s
        .server
        .request_log()
        .into_iter()
        .filter(|l| l.path.contains("/log?"))
        .collect();
    assert!(
        logs.len() >= 2 && logs.iter().all(|l| l.path.contains("limitBytes=268435456")),
        "{:?}",
        logs.iter().map(|l| &l.path).collect::<Vec<_>>()
    );
}

/// In a namespace that enforces the `restricted` Pod Security Standard,
/// Pod Security Admission refuses ephemeral containers that break it;
/// vigil's debug container for a non-root target meets it and scans.
#[test]
fn the_debug_container_meets_pod_security_restricted() {
    let Some(s) = setup() else { return };
    s.server.enforce_restricted("mixed");
    let loose = json!({"name": "loose", "image": SCANNER, "targetContainerName": "app", "command": ["/usr/local/bin/vigil", "probe"], "securityContext": {"runAsUser": 1000}});
    let (code, message) = s.server.try_add_ephemeral("mixed", "via-debug", loose);
    assert_eq!(code, 403, "{message}");
    assert!(
        message.contains("restricted") && message.contains("allowPrivilegeEscalation"),
        "{message}"
    );
    // Admission judges the whole updated pod: a pod that meets
    // `restricted` gets vigil's probe; one whose own container does not
    // (via-debug: no runAsNonRoot, capabilities kept) refuses every debug
    // container, and the error says why and what to use instead.
    add_pod(
        &s,
        "hardened",
        31,
        json!({"runAsUser": 1000, "runAsGroup": 1000, "runAsNonRoot": true, "allowPrivilegeEscalation": false,
               "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}),
        Value::Null,
        false,
    );
    write_policy(
        &s,
        "    - {namespace: mixed, pods: [hardened, via-debug], approach: debug}\n",
    );
    let out = run_unsigned(&s);
    assert_eq!(
        out.code, 3,
        "one target could not be scanned: {}",
        out.stderr
    );
    let summary: Value = serde_json::from_str(&out.stdout).unwrap();
    let t = target(&summary, "mixed/hardened/app");
    assert_eq!(t["status"], "scanned", "{t}\n{}", out.stderr);
    let t = target(&summary, "mixed/via-debug/app");
    let err = t["error"].as_str().unwrap_or_default();
    assert!(
        t["status"] != "scanned"
            && err.contains("Pod Security admission refused the debug container")
            && err.contains("violates PodSecurity")
            && err.contains("\"app\"")
            && err.contains("api approach"),
        "{t}"
    );
}

/// A namespace that enforces `baseline` judges the whole updated pod by
/// the baseline rules only: a pod without restricted settings takes a
/// debug container, one with a privileged container refuses every one.
#[test]
fn a_baseline_namespace_refuses_debug_scans_only_of_pods_that_break_baseline() {
    let Some(s) = setup() else { return };
    s.server
        .label_namespace("mixed", "pod-security.kubernetes.io/enforce", "baseline");
    let debug = |name: &str| json!({"name": name, "image": SCANNER, "targetContainerName": "app", "command": ["/usr/local/bin/vigil", "probe"], "securityContext": {"runAsUser": 1000}});
    let (code, message) = s
        .server
        .try_add_ephemeral("mixed", "via-debug", debug("d1"));
    assert!(
        code < 300,
        "restricted's rules do not apply at baseline: {message}"
    );
    add_pod(
        &s,
        "privileged",
        32,
        json!({"privileged": true, "runAsUser": 1000, "runAsGroup": 1000}),
        Value::Null,
        false,
    );
    let (code, message) = s
        .server
        .try_add_ephemeral("mixed", "privileged", debug("d2"));
    assert_eq!(code, 403, "{message}");
    assert!(
        message.contains("violates PodSecurity \"baseline:latest\"")
            && message.contains("privileged (container \"app\")"),
        "{message}"
    );
    // The plan says so before anything is created: it reads the namespace
    // for debug targets whose pods break a level, and names the refusal
    // where the enforced level is broken, nothing where it is met.
    write_policy(
        &s,
        "    - {namespace: mixed, pods: [via-debug, privileged], approach: debug}\n",
    );
    let plan = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args([
            "plan",
            "p.yaml",
            "profile.yaml",
            repo().join("policies/profiles").to_str().unwrap(),
            "--format",
            "json",
        ])
        .current_dir(s.dir.path())
        .env("KUBECONFIG", &s.server.kubeconfig)
        .output()
        .unwrap();
    let plan: Value = serde_json::from_slice(&plan.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&plan.stderr)));
    let reason = |id: &str| {
        plan["policies"][0]["targets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["id"] == id)
            .unwrap_or_else(|| panic!("no {id}: {plan}"))["reason"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let refused = reason("mixed/privileged/app");
    assert!(
        refused.contains("its namespace enforces Pod Security baseline (latest), which the pod breaks (privileged)")
            && refused.contains("will be refused"),
        "{refused}"
    );
    let met = reason("mixed/via-debug/app");
    assert!(!met.contains("Pod Security"), "baseline is met: {met}");
    let reads = plan["policies"][0]["callerReads"].to_string();
    assert!(
        reads.contains("get namespaces (resourceNames: [mixed])"),
        "{plan}"
    );
}

/// A stolen scan token adding its own ephemeral container, image and all,
/// to a pod the run may patch: `vigil audit-check` names the foreign image
/// from the API server's audit log of a real run.
#[test]
fn audit_check_names_a_foreign_ephemeral_image_added_with_the_runs_token() {
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::{Api, Patch, PatchParams};
    let Some(s) = setup() else { return };
    crate::util::signing_key(s.dir.path());
    s.server
        .set_audit_policy(crate::monitor::rendered_audit_policy(s.dir.path()));
    write_policy(
        &s,
        "    - {namespace: mixed, pods: [via-debug], approach: debug}\n    - {namespace: mixed, pods: [via-api], approach: api}\n",
    );
    // The api scan is held in flight: the run's Role still stands.
    s.server.inject(crate::fakeapi::Faults {
        exec_held: 1,
        ..Default::default()
    });
    let child = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["run", "p.yaml", "profile.yaml"])
        .arg(repo().join("policies/profiles"))
        .args([
            "--out",
            "out",
            "--plaintext",
            "--signing-key",
            "signer.key.pem",
            "--format",
            "json",
        ])
        .current_dir(s.dir.path())
        .env("KUBECONFIG", &s.server.kubeconfig)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    s.server
        .wait_for_arrivals(std::time::Duration::from_secs(60), |paths| {
            paths.iter().any(|p| p.contains("/exec?"))
        });
    let token = s.server.issued_tokens().pop().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let status = rt.block_on(async {
        let client = crate::monitor::client_for(&s.server, &token, None).await;
        let pods: Api<Pod> = Api::namespaced(client, "mixed");
        let patch = json!({"spec": {"ephemeralContainers": [{
            "name": "vigil-evil", "image": "evil.example/shell:latest", "targetContainerName": "app",
            "command": ["/bin/sh", "-c", "cat /proc/1/root/etc/shadow"]
        }]}});
        pods.patch_ephemeral_containers("via-debug", &PatchParams::default(), &Patch::Strategic(patch))
            .await
            .map(|_| ())
    });
    assert!(
        status.is_ok(),
        "the run's Role lets its token patch the pod: {status:?}"
    );
    s.server.release_held();
    let out = child.wait_with_output().unwrap();
    let summary: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    let bundle = s
        .dir
        .path()
        .join("out/mixed")
        .join(summary[0]["run_id"].as_str().unwrap());
    let log = s.dir.write("audit.log", s.server.audit_log());
    let (code, codes, report) = crate::monitor::audit_check_in(s.dir.path(), &bundle, &[&log]);
    assert_eq!(code, 1);
    assert!(
        codes.iter().any(|c| c == "foreign-ephemeral-image"),
        "{report:#}"
    );
    assert!(
        codes.iter().any(|c| c == "unrecorded-request"),
        "{report:#}"
    );
}

#[test]
fn a_scanner_image_is_verified_before_any_pod_sees_it_and_the_check_is_signed() {
    use crate::registry::{Registry, openssl_key, openssl_sign, payload, tools};
    if !tools() {
        return;
    }
    let Some(s) = setup() else { return };
    crate::util::signing_key(s.dir.path());
    let reg = Registry::start("scanner-image");
    let digest = reg.push_image("vigil/scanner", "v1", &[&s.debian]);
    let image = format!("{}/vigil/scanner@{digest}", reg.host);
    let (key, _) = openssl_key(s.dir.path(), "scanner", "p256");
    let (_, stranger) = openssl_key(s.dir.path(), "stranger", "ed25519");
    let body = payload(&image, &digest);
    let sig = openssl_sign(s.dir.path(), &key, "p256", &body);
    reg.put_signatures("vigil/scanner", &digest, &[(body, sig)]);
    let policy = |key_file: &str| {
        s.dir.write(
            "p.yaml",
            format!("apiVersion: vigil/v1\nkind: ScanPolicy\nmetadata: {{name: mixed}}\nspec:\n  profiles: [container-baseline]\n  debug:\n    image: \"{image}\"\n    verify: {{key: {key_file}}}\n  limits: {{scanTimeout: 60s}}\n  targets:\n    - {{namespace: mixed, pods: [via-debug], approach: debug}}\n    - {{namespace: mixed, pods: [via-api], approach: api}}\n"),
        );
    };
    let sealed = [
        "--signing-key",
        "signer.key.pem",
        "--insecure-registry",
        reg.host.as_str(),
    ];

    // Signed by the policy's key: the plan says the image will be checked,
    // both targets are scanned, and the check is in the signed statement.
    policy("scanner.pub");
    let fingerprint = vigil_in(
        s.dir.path(),
        &[
            "verify-image",
            &image,
            "--key",
            "scanner.pub",
            "--insecure-registry",
            &reg.host,
            "--format",
            "json",
        ],
    );
    assert_eq!(fingerprint.code, 0, "{}", fingerprint.stderr);
    let key_id = serde_json::from_str::<Value>(&fingerprint.stdout).unwrap()["key"]
        .as_str()
        .unwrap()
        .to_string();
    let planned: crate::util::Run = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["plan", "p.yaml"])
        .arg(repo().join("policies/profiles"))
        .current_dir(s.dir.path())
        .env("KUBECONFIG", &s.server.kubeconfig)
        .output()
        .unwrap()
        .into();
    assert!(
        planned.stdout.contains(&format!("debug scanner image {image}: its cosign signature is checked with key {key_id} before use")),
        "{}\n{}",
        planned.stdout,
        planned.stderr
    );
    let (_, summary) = crate::util::run_json(s.dir.path(), &s.server.kubeconfig, &sealed);
    assert_eq!(
        target(&summary, "mixed/via-debug/app")["status"],
        "scanned",
        "{summary}"
    );
    let run_id = summary[0]["run_id"].as_str().unwrap();
    let statement = statement_payload(&s.dir.path().join("out/mixed").join(run_id));
    let check = &statement["predicate"]["scanner_images"][0];
    assert_eq!(check["role"], "debug");
    assert_eq!(check["verified"]["digest"], digest.as_str());
    assert_eq!(check["verified"]["algorithm"], "ecdsa-p256-sha256");
    assert!(
        check["verified"]["key"]
            .as_str()
            .unwrap()
            .starts_with("SHA256:")
    );
    assert!(
        check["verified"]["signature"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
    let r = vigil_in(
        s.dir.path(),
        &[
            "verify",
            &format!("out/mixed/{run_id}"),
            "--trusted-key",
            "signer.pub.pem",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains(&format!(
            "debug scanner image {image}: signed by key SHA256:"
        )),
        "{}",
        r.stdout
    );
    let ephemeral_images = || -> Vec<String> {
        let pod = s.server.object("pods", "mixed", "via-debug").unwrap();
        pod["spec"]["ephemeralContainers"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| c["image"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(ephemeral_images(), vec![image.clone()]);

    // --scanner-key replaces the policy's key: a stranger's key refuses the
    // image; the debug target is an error that says why, no ephemeral
    // container is added, and the api target still runs.
    let out: crate::util::Run = crate::util::run_cmd(
        s.dir.path(),
        &s.server.kubeconfig,
        &[&sealed[..], &["--scanner-key", stranger.to_str().unwrap()]].concat(),
    )
    .output()
    .unwrap()
    .into();
    assert_eq!(out.code, 3, "{}", out.stderr);
    let summary: Value = serde_json::from_str(&out.stdout).unwrap();
    let debug = target(&summary, "mixed/via-debug/app");
    assert_eq!(debug["status"], "error", "{summary}");
    assert!(
        debug["error"]
            .as_str()
            .unwrap()
            .contains("failed its signature check"),
        "{debug}"
    );
    assert_eq!(target(&summary, "mixed/via-api/app")["status"], "scanned");
    assert_eq!(ephemeral_images().len(), 1, "no second probe was added");
    let run_id = summary[0]["run_id"].as_str().unwrap();
    let statement = statement_payload(&s.dir.path().join("out/mixed").join(run_id));
    let refused = statement["predicate"]["scanner_images"][0]["refused"]
        .as_str()
        .unwrap();
    assert!(refused.contains("another key"), "{refused}");

    // A policy key that is not a key is found by validate, before any run.
    s.dir.write("bad.pub", "not a key\n");
    policy("bad.pub");
    let r = vigil_in(s.dir.path(), &["validate", "p.yaml", "profile.yaml"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("invalid-scanner-key") && r.stderr.contains("bad.pub"),
        "{}",
        r.stderr
    );
}

/// A sidecar serves only the containers Linux lets it read (the same uid
/// and gid, no capability it lacks) and only when it runs the pinned
/// scanner image (the kubelet's `imageID`): `auto` sends the rest to the
/// debug approach and says why; an explicit `sidecar` target it cannot
/// serve is skipped with the reason; a forged sidecar is never exec'd.
#[test]
fn the_sidecar_serves_only_what_it_can_read_and_only_when_it_is_the_pinned_image() {
    let Some(s) = setup() else { return };
    let user = |uid: i64| json!({"runAsUser": uid, "runAsGroup": uid});
    // A mesh pod: the app at 1000, a proxy at 1337, the sidecar at 1000.
    let mut mesh = pod("mesh", "registry.example/web:1", 21, true);
    mesh["spec"]["containers"]
        .as_array_mut()
        .unwrap()
        .insert(1, json!({"name": "proxy", "image": "registry.example/proxy:1", "securityContext": user(1337)}));
    mesh["status"]["containerStatuses"].as_array_mut().unwrap().insert(
        1,
        json!({"name": "proxy", "ready": true, "restartCount": 0, "image": "registry.example/proxy:1", "imageID": "", "containerID": id(22), "state": {"running": {}}}),
    );
    // A pod whose `vigil-scanner` runs some other image.
    let mut forged = pod("forged", "registry.example/web:1", 23, true);
    let other = format!("registry.example/vigil@sha256:{}", "9".repeat(64));
    forged["status"]["containerStatuses"][1]["imageID"] = json!(other);
    for (name, mut p) in [("mesh", mesh), ("forged", forged)] {
        p["metadata"]["resourceVersion"] = json!("1");
        s.server.insert("pods", p);
        s.server.set_rootfs("mixed", name, &s.debian);
    }
    let plan = |targets: &str| -> Value {
        write_policy(&s, targets);
        let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
            .args(["plan", "p.yaml", "profile.yaml", "--format", "json"])
            .arg(repo().join("policies/profiles"))
            .current_dir(s.dir.path())
            .env("KUBECONFIG", &s.server.kubeconfig)
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)))
    };
    let planned = |plan: &Value, id: &str| -> (String, String) {
        let t = plan["policies"][0]["targets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["id"] == id)
            .unwrap_or_else(|| panic!("{id} not planned: {plan}"));
        (
            t["approach"].as_str().unwrap().into(),
            t["reason"].as_str().unwrap().into(),
        )
    };

    // Explicit sidecar: what it cannot serve is skipped, with the reason.
    let explicit = plan("    - {namespace: mixed, pods: [mesh, forged], approach: sidecar}\n");
    assert_eq!(planned(&explicit, "mixed/mesh/app").0, "sidecar");
    let skipped = explicit["policies"][0]["skipped"].as_array().unwrap();
    let reason = |id: &str| -> String {
        skipped
            .iter()
            .find(|x| x["id"] == id)
            .unwrap_or_else(|| panic!("{id} not skipped: {skipped:?}"))["reason"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let proxy = reason("mixed/mesh/proxy");
    assert!(
        proxy.starts_with("sidecar-cannot-read:") && proxy.contains("uid 1337"),
        "{proxy}"
    );
    let untrusted = reason("mixed/forged/app");
    assert!(
        untrusted.starts_with("sidecar-untrusted:") && untrusted.contains(&"9".repeat(64)),
        "{untrusted}"
    );

    // auto: the sidecar where it can, the debug approach elsewhere, and why.
    let auto = plan("    - {namespace: mixed, pods: [mesh, forged], approach: auto}\n");
    assert_eq!(planned(&auto, "mixed/mesh/app").0, "sidecar");
    for id in ["mixed/mesh/proxy", "mixed/forged/app"] {
        let (approach, why) = planned(&auto, id);
        assert_eq!(approach, "auto", "{id}: {why}");
        assert!(why.contains("not the sidecar: sidecar-"), "{id}: {why}");
    }
    let (out, summary) = run(&s, &["--unsigned"]);
    for (id, approach) in [
        ("mixed/mesh/app", "sidecar"),
        ("mixed/mesh/proxy", "api"),
        ("mixed/forged/app", "api"),
    ] {
        let t = target(&summary, id);
        assert_eq!(
            (t["status"].as_str(), t["approach"].as_str()),
            (Some("scanned"), Some(approach)),
            "{t}\n{}",
            out.stderr
        );
    }
    // The forged sidecar never ran a command.
    let log = s.server.request_log();
    assert!(
        !log.iter()
            .any(|l| l.path.contains("forged/exec") && l.path.contains("vigil-scanner")),
        "{:?}",
        log.iter().map(|l| &l.path).collect::<Vec<_>>()
    );
}
