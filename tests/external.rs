//! An external scanner (`spec.scanner`) run over vigil's access, with a
//! stand-in `cinc-auditor` that checks what it is given — arguments,
//! environment, a 0600 kubeconfig holding only the scoped token — and
//! writes the real InSpec sample as its report.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::fakeapi::{ADMIN_TOKEN, FakeApiServer};
use crate::util::{TempDir, repo, statement_payload, vigil_in};

struct Setup {
    dir: TempDir,
    server: FakeApiServer,
    capture: PathBuf,
}

/// Two pods in `web`; the stand-in scanner at `bin/cinc-auditor` behaves
/// as `capture/mode` says: `ok`, `fail` or `hang`.
fn setup(mode: &str) -> Setup {
    let dir = TempDir::new("external");
    let capture = dir.path().join("capture");
    std::fs::create_dir_all(&capture).unwrap();
    std::fs::write(capture.join("mode"), mode).unwrap();
    let pods = (0..2)
        .map(|i| {
            json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": format!("nginx-{i}"), "namespace": "web", "labels": {"app": "nginx"}},
                "spec": {"nodeName": "node-1", "containers": [{"name": "nginx", "image": "nginx:1.27"}]},
                "status": {"phase": "Running", "containerStatuses": [{"name": "nginx", "ready": true, "restartCount": 0, "image": "x", "imageID": "", "state": {"running": {}}}]}
            })
        })
        .collect();
    let server = FakeApiServer::start(dir.path(), pods, HashMap::new());
    let sample = repo().join("fixtures/hdf/inspec-nginx-results.json");
    let script = format!(
        r#"#!/bin/sh
# Stand-in for cinc-auditor: records what it was given, then acts as told.
cap='{cap}'
n=$$
{{ echo "ARGS $*"; env; }} > "$cap/call-$n.txt"
stat -c '%a' "$KUBECONFIG" > "$cap/mode-$n.txt"
cp "$KUBECONFIG" "$cap/kubeconfig-$n.txt"
echo "$KUBECONFIG" > "$cap/path-$n.txt"
report=''
prev=''
for a in "$@"; do
  if [ "$prev" = "--reporter" ]; then report="${{a#json:}}"; fi
  prev="$a"
done
case "$(cat "$cap/mode")" in
  ok) cp '{sample}' "$report"; exit 101 ;;
  fail) echo "boom: the profile could not load" >&2; exit 1 ;;
  hang) [ -p "$cap/started" ] && echo "$n" > "$cap/started"; exec sleep 60 ;;
esac
"#,
        cap = capture.display(),
        sample = sample.display()
    );
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::write(bin.join("cinc-auditor"), script).unwrap();
    std::fs::set_permissions(
        bin.join("cinc-auditor"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    std::fs::create_dir_all(dir.path().join("profile")).unwrap();
    dir.write("profile/inspec.yml", "name: nginx-baseline\n");
    dir.write("waivers.yml", "V-1:\n  run: false\n  justification: test\n");
    Setup {
        dir,
        server,
        capture,
    }
}

fn write_policy(s: &Setup, timeout: &str) {
    s.dir.write(
        "p.yaml",
        format!(
            "apiVersion: vigil/v1\nkind: ScanPolicy\nmetadata: {{name: nginx}}\nspec:\n  profiles: [container-baseline]\n  scanner: {{kind: cinc-auditor, profile: profile, inputs: {{max_workers: 4}}, waivers: waivers.yml, binary: {}}}\n  limits: {{concurrency: 2, scanTimeout: {timeout}, apiQps: 1000}}\n  threshold: {{compliance: {{min: 90}}}}\n  targets:\n    - {{namespace: web, selector: {{matchLabels: {{app: nginx}}}}}}\n",
            s.dir.path().join("bin/cinc-auditor").display()
        ),
    );
}

fn command(s: &Setup) -> Command {
    let mut cmd = crate::util::run_cmd(
        s.dir.path(),
        &s.server.kubeconfig,
        &["--signing-key", "signer.key.pem"],
    );
    // A secret in vigil's own environment must not reach the scanner.
    cmd.env("AWS_SECRET_ACCESS_KEY", "CANARY-INHERITED-ENV");
    cmd
}

/// (call record, kubeconfig path) of every scanner invocation.
fn calls(s: &Setup) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(&s.capture).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if let Some(n) = name
            .strip_prefix("call-")
            .and_then(|r| r.strip_suffix(".txt"))
        {
            let call = std::fs::read_to_string(e.path()).unwrap();
            let path = std::fs::read_to_string(s.capture.join(format!("path-{n}.txt")))
                .map(|p| PathBuf::from(p.trim()))
                .unwrap_or_default();
            out.push((call, path));
        }
    }
    out
}

fn keygen(s: &Setup) {
    crate::util::signing_key(s.dir.path());
}

#[test]
fn an_external_scanner_runs_with_only_the_scoped_token_and_its_report_is_sealed() {
    let s = setup("ok");
    keygen(&s);
    write_policy(&s, "60s");
    let out: crate::util::Run = command(&s).output().unwrap().into();
    assert_eq!(out.code, 0, "{}", out.stderr);
    let summary: Value = serde_json::from_str(&out.stdout).unwrap();
    let targets = summary[0]["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 2);
    for t in targets {
        assert_eq!(t["status"], "scanned", "{t}");
        // The sample's counts, judged by the policy's threshold.
        assert_eq!(
            (
                t["counts"]["passed"].as_u64(),
                t["counts"]["skipped"].as_u64(),
                t["counts"]["no_impact"].as_u64()
            ),
            (Some(37), Some(3), Some(1))
        );
        assert_eq!(t["threshold"]["passed"], true);
    }
    let calls = calls(&s);
    assert_eq!(calls.len(), 2);
    let issued = s.server.issued_tokens();
    for (call, kubeconfig_path) in &calls {
        let n = call.lines().next().unwrap();
        let profile = std::path::absolute(s.dir.path().join("profile")).unwrap();
        assert!(
            n.starts_with(&format!(
                "ARGS exec {} -t k8s-container://web/nginx-",
                profile.display()
            )),
            "{n}"
        );
        assert!(
            n.contains("/nginx --reporter json:")
                && n.contains(" --input-file ")
                && n.contains("waivers.yml --no-color"),
            "{n}"
        );
        // The environment: nothing inherited but PATH.
        let vars: Vec<&str> = call
            .lines()
            .skip(1)
            .filter_map(|l| l.split_once('=').map(|(k, _)| k))
            .collect();
        for v in &vars {
            assert!(
                [
                    "PATH",
                    "HOME",
                    "KUBECONFIG",
                    "LANG",
                    "PWD",
                    "SHLVL",
                    "_",
                    "OLDPWD"
                ]
                .contains(v),
                "{v} leaked into the scanner's environment"
            );
        }
        assert!(!call.contains("CANARY-INHERITED-ENV"));
        // The kubeconfig: 0600, the run's scoped token, not the caller's.
        let id = kubeconfig_path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .to_string();
        assert_eq!(id, "kubeconfig");
        let n_id = calls_id(&s, kubeconfig_path);
        assert_eq!(
            std::fs::read_to_string(s.capture.join(format!("mode-{n_id}.txt")))
                .unwrap()
                .trim(),
            "600"
        );
        let kc = std::fs::read_to_string(s.capture.join(format!("kubeconfig-{n_id}.txt"))).unwrap();
        assert!(
            !kc.contains(ADMIN_TOKEN),
            "the caller's token never reaches the scanner"
        );
        assert!(
            issued.iter().any(|t| kc.contains(t.as_str())),
            "a token the server issued for the run"
        );
        // Gone after the run.
        assert!(
            !kubeconfig_path.exists(),
            "{} left behind",
            kubeconfig_path.display()
        );
        assert!(!kubeconfig_path.parent().unwrap().exists());
    }
    // The run's access is cleaned up; the token no longer works.
    for t in &issued {
        assert!(!s.server.token_valid(t));
    }
    let bundle = s
        .dir
        .path()
        .join("out/nginx")
        .join(summary[0]["run_id"].as_str().unwrap());
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
    let st = statement_payload(&bundle);
    assert_eq!(st["predicate"]["targets"][0]["counts"]["passed"], 37);
}

/// The pid suffix of the capture files for the call that used `kubeconfig`.
fn calls_id(s: &Setup, kubeconfig: &Path) -> String {
    for e in std::fs::read_dir(&s.capture).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if let Some(n) = name
            .strip_prefix("path-")
            .and_then(|r| r.strip_suffix(".txt"))
            && std::fs::read_to_string(e.path()).unwrap().trim() == kubeconfig.to_str().unwrap()
        {
            return n.to_string();
        }
    }
    panic!("no call used {}", kubeconfig.display());
}

#[test]
fn the_kubeconfig_is_gone_after_failure_and_timeout() {
    for (mode, timeout, want) in [
        ("fail", "60s", "exited with code 1: boom"),
        ("hang", "2s", "scanTimeout"),
    ] {
        let s = setup(mode);
        keygen(&s);
        write_policy(&s, timeout);
        let out: crate::util::Run = command(&s).output().unwrap().into();
        assert_eq!(out.code, 3, "{mode}: {}", out.stderr);
        let summary: Value = serde_json::from_str(&out.stdout).unwrap();
        for t in summary[0]["targets"].as_array().unwrap() {
            assert!(t["error"].as_str().unwrap().contains(want), "{mode}: {t}");
        }
        let calls = calls(&s);
        assert_eq!(calls.len(), 2, "{mode}");
        for (_, kubeconfig) in calls {
            assert!(
                !kubeconfig.exists(),
                "{mode}: {} left behind",
                kubeconfig.display()
            );
        }
    }
}

#[test]
fn the_kubeconfig_is_gone_after_sigint() {
    let s = setup("hang");
    keygen(&s);
    write_policy(&s, "60s");
    rustix::fs::mkfifoat(
        rustix::fs::CWD,
        s.capture.join("started"),
        rustix::fs::Mode::from_raw_mode(0o600),
    )
    .unwrap();
    let mut cmd = command(&s);
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Both scans are hanging in the scanner: each says so through the FIFO.
    // One read may carry both lines (both writers open the FIFO before the
    // reader); read until two scanners have said so. On a thread, so that a
    // scanner that never starts fails the test instead of hanging it.
    let fifo = s.capture.join("started");
    let (said_tx, said_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut said = 0;
        while said < 2 {
            said += std::fs::read_to_string(&fifo).unwrap().lines().count();
        }
        let _ = said_tx.send(said);
    });
    said_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("both scanners start");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let reader = std::io::BufReader::new(child.stderr.take().unwrap());
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in reader.lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let pid = rustix::process::Pid::from_child(&child);
    rustix::process::kill_process(pid, rustix::process::Signal::INT).unwrap();
    while !rx
        .recv_timeout(Duration::from_secs(10))
        .expect("vigil reports the signal")
        .contains("signal received")
    {}
    rustix::process::kill_process(pid, rustix::process::Signal::INT).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    for (_, kubeconfig) in calls(&s) {
        assert!(!kubeconfig.exists(), "{} left behind", kubeconfig.display());
    }
    s.server.assert_no_access_objects();
}
