//! The test Kubernetes API server, standalone.
//!
//! ```sh
//! cargo run --example fake-apiserver -- --fixtures DIR --listen 127.0.0.1:6443
//! ```
//!
//! `DIR` holds `pods.json` or `snapshot.json` (the JSON of `kubectl get pods
//! -A -o json`; `fixtures/cluster` is a ready one) and,
//! for each pod, a root filesystem at `DIR/rootfs/<namespace>/<pod>/` that
//! exec chroots into (give it a static busybox at `bin/sh` for the api
//! approach; running exec needs root). Prints the path of a kubeconfig for
//! the admin identity, then serves until interrupted.

// The test server serves the whole suite; this program uses part of it.
#[allow(dead_code)]
#[path = "../tests/fakeapi/mod.rs"]
mod fakeapi;

use std::collections::HashMap;
use std::path::PathBuf;

const HELP: &str = "\
usage: fake-apiserver --fixtures DIR [--listen 127.0.0.1:PORT] [--probe VIGIL] [--audit-log FILE]

The test Kubernetes API server of vigil's suite, standalone: real HTTPS
(a generated CA), bearer tokens, RBAC for the tokens it issues,
TokenRequest, SelfSubjectRulesReview and pods/exec over WebSocket.

A fixtures directory holds:
  pods.json (or snapshot.json)   the JSON of `kubectl get pods -A -o json`
  rootfs/<namespace>/<pod>/       optional: a root filesystem per pod that
                                  exec chroots into (give it a static busybox
                                  at bin/sh with its applet links: stat,
                                  readlink, head, base64, find, wc, tr,
                                  printf, cat; running exec needs root)

Options:
  --demo-roots       give every pod without a root under DIR/rootfs one
                     unpacked from vigil's demo archives (fixtures/demo):
                     distroless for distroless images (no shell: the auto
                     approach takes the debug probe), debian for images
                     naming debian, alpine otherwise; a static busybox and
                     its applet links are added to the shell roots from
                     /bin/busybox (Debian: busybox-static). Needs root.
  --probe VIGIL      the vigil binary the server runs as the debug and
                     sidecar scanner image (default: the vigil built next
                     to this program); without one, debug targets fail
                     with ErrImagePull as on a cluster that cannot pull
  --audit-log FILE   write the audit log (audit.k8s.io/v1 JSON lines, at
                     the levels `vigil render audit-policy` asks for) to
                     FILE, for `vigil audit-check`

A ready one ships with vigil: fixtures/cluster (pods, no roots):
  cargo run --example fake-apiserver -- --fixtures fixtures/cluster

Prints the address and the KUBECONFIG of its admin identity, then serves
until interrupted.";

/// Exit 2 with a message naming what to fix.
fn fail(message: String) -> ! {
    eprintln!("fake-apiserver: {message}\n(see --help)");
    std::process::exit(2);
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("{HELP}");
        return;
    }
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let Some(fixtures) = arg("--fixtures").map(PathBuf::from) else {
        fail("--fixtures DIR is required".into());
    };
    let listen = arg("--listen")
        .unwrap_or_else(|| "127.0.0.1:0".into())
        .parse()
        .unwrap_or_else(|_| fail("--listen takes HOST:PORT, e.g. 127.0.0.1:6443".into()));
    let list_file = ["pods.json", "snapshot.json"]
        .iter()
        .map(|f| fixtures.join(f))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            fail(format!(
                "{} holds neither pods.json nor snapshot.json (the JSON of `kubectl get pods -A -o json`)",
                fixtures.display()
            ))
        });
    let bytes = std::fs::read(&list_file)
        .unwrap_or_else(|e| fail(format!("cannot read {}: {e}", list_file.display())));
    let list: serde_json::Value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| fail(format!("{} is not JSON: {e}", list_file.display())));
    let pods: Vec<serde_json::Value> = list["items"].as_array().cloned().unwrap_or_default();
    let mut rootfs = HashMap::new();
    for p in &pods {
        let ns = p["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let name = p["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let dir = fixtures.join("rootfs").join(&ns).join(&name);
        if dir.is_dir() {
            rootfs.insert((ns, name), dir);
        }
    }
    let state_dir =
        std::env::temp_dir().join(format!("vigil-fake-apiserver-{}", std::process::id()));
    std::fs::create_dir_all(&state_dir).unwrap();
    if args.iter().any(|a| a == "--demo-roots") {
        demo_roots(&pods, &state_dir, &mut rootfs);
    }
    let server = fakeapi::FakeApiServer::start_async(&state_dir, pods, rootfs, listen).await;
    // The probe: the vigil built next to this program, unless given.
    let probe = arg("--probe").map(PathBuf::from).or_else(|| {
        let exe = std::env::current_exe().ok()?;
        let vigil = exe.parent()?.parent()?.join("vigil");
        vigil.is_file().then_some(vigil)
    });
    match &probe {
        Some(p) if p.is_file() => server.set_probe_binary(p),
        Some(p) => fail(format!("--probe {}: no such file", p.display())),
        None => eprintln!(
            "fake-apiserver: no vigil binary next to this program and no --probe: debug and sidecar targets will fail to pull their image"
        ),
    }
    if let Some(log) = arg("--audit-log").map(PathBuf::from) {
        let Some(vigil) = &probe else {
            fail("--audit-log needs the vigil binary (--probe) to render its audit policy".into());
        };
        let out = std::process::Command::new(vigil)
            .args(["render", "audit-policy"])
            .output()
            .unwrap_or_else(|e| fail(format!("cannot run {}: {e}", vigil.display())));
        let policy: serde_json::Value =
            serde_saphyr::from_str(&String::from_utf8_lossy(&out.stdout))
                .unwrap_or_else(|e| fail(format!("the rendered audit policy is not YAML: {e}")));
        server.set_audit_policy(policy);
        if let Some(dir) = log.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .unwrap_or_else(|e| fail(format!("cannot create {}: {e}", dir.display())));
        }
        server.set_audit_log_file(&log);
        println!("audit log: {}", log.display());
    }
    println!("listening on https://{}", server.addr);
    println!("export KUBECONFIG={}", server.kubeconfig.display());
    let _ = tokio::signal::ctrl_c().await;
}

/// A root per pod from the demo archives, as `--demo-roots` says.
fn demo_roots(
    pods: &[serde_json::Value],
    state_dir: &std::path::Path,
    rootfs: &mut HashMap<(String, String), PathBuf>,
) {
    let demo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/demo");
    let busybox = std::path::Path::new("/bin/busybox");
    if !busybox.is_file() {
        fail("--demo-roots needs a static busybox at /bin/busybox (Debian: busybox-static)".into());
    }
    for p in pods {
        let ns = p["metadata"]["namespace"].as_str().unwrap_or_default();
        let name = p["metadata"]["name"].as_str().unwrap_or_default();
        if rootfs.contains_key(&(ns.to_string(), name.to_string())) {
            continue;
        }
        let image = p["spec"]["containers"][0]["image"]
            .as_str()
            .unwrap_or_default();
        let kind = if image.contains("distroless") {
            "distroless"
        } else if image.contains("debian") {
            "debian"
        } else {
            "alpine"
        };
        let dir = state_dir.join("rootfs").join(ns).join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let status = std::process::Command::new("tar")
            .args(["--same-owner", "-xzpf"])
            .arg(demo.join(format!("{kind}.tar.gz")))
            .arg("-C")
            .arg(&dir)
            .status()
            .unwrap_or_else(|e| fail(format!("cannot run tar: {e}")));
        if !status.success() {
            fail(format!(
                "tar could not unpack the {kind} demo root (run as root)"
            ));
        }
        if kind != "distroless" {
            // Where the root keeps its binaries (debian's /bin is a link).
            let bin = if dir.join("bin").is_symlink() {
                dir.join("usr/bin")
            } else {
                dir.join("bin")
            };
            std::fs::create_dir_all(&bin).unwrap();
            let _ = std::fs::remove_file(bin.join("busybox"));
            std::fs::copy(busybox, bin.join("busybox")).unwrap();
            for applet in [
                "sh", "stat", "readlink", "head", "base64", "find", "wc", "tr", "printf", "cat",
            ] {
                let link = bin.join(applet);
                let _ = std::fs::remove_file(&link);
                std::os::unix::fs::symlink("busybox", &link).unwrap();
            }
        }
        rootfs.insert((ns.to_string(), name.to_string()), dir);
    }
}
