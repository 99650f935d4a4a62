//! The test Kubernetes API server, standalone.
//!
//! ```sh
//! cargo run --example fake-apiserver -- --fixtures DIR --listen 127.0.0.1:6443
//! ```
//!
//! `DIR` holds `pods.json` (the JSON of `kubectl get pods -A -o json`) and,
//! for each pod, a root filesystem at `DIR/rootfs/<namespace>/<pod>/` that
//! exec chroots into (give it a static busybox at `bin/sh` for the api
//! approach; running exec needs root). Prints the path of a kubeconfig for
//! the admin identity, then serves until interrupted.

#[path = "../tests/fakeapi/mod.rs"]
mod fakeapi;

use std::collections::HashMap;
use std::path::PathBuf;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let Some(fixtures) = arg("--fixtures").map(PathBuf::from) else {
        eprintln!("usage: fake-apiserver --fixtures DIR [--listen 127.0.0.1:PORT]");
        std::process::exit(2);
    };
    let listen = arg("--listen")
        .unwrap_or_else(|| "127.0.0.1:0".into())
        .parse()
        .expect("--listen takes HOST:PORT");
    let list: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixtures.join("pods.json")).expect("DIR/pods.json"))
            .expect("pods.json is JSON");
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
    let server = fakeapi::FakeApiServer::start_async(&state_dir, pods, rootfs, listen).await;
    println!("listening on https://{}", server.addr);
    println!("export KUBECONFIG={}", server.kubeconfig.display());
    let _ = tokio::signal::ctrl_c().await;
}
