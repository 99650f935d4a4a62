//! The in-cluster runner as a pod runs it, without a cluster: the manifests
//! `vigil render job --shards 3` and `render cronjob` print are applied to
//! the test API server, and the runner container is started the way the
//! kubelet would start it — its filesystem laid out as the kubelet lays out
//! ConfigMap, Secret (with `fsGroup`) and projected-token volumes, read-only
//! where the manifest says so; `KUBERNETES_SERVICE_HOST`/`PORT` and
//! `JOB_COMPLETION_INDEX` set; the rendered `command` and `args` run as the
//! rendered uid, gid and fsGroup, under `chroot` in a private mount
//! namespace. Its only credentials are a token of the rendered runner
//! ServiceAccount, so a right missing from the rendered Role shows as a 403.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use crate::fakeapi::FakeApiServer;
use crate::util::{TempDir, install_binary, install_busybox, repo, rootfs_fixtures};

const IMAGE: &str = "registry.example/vigil@sha256:2222222222222222222222222222222222222222222222222222222222222222";

/// The kubelet's atomic-writer layout for a volume: `..<ts>/FILE`, a
/// `..data` link to it, and one link per key.
fn atomic_volume(dir: &Path, files: &[(&str, Vec<u8>)]) {
    let ts = "..2026_11_30_12_00_00.000000001";
    std::fs::create_dir_all(dir.join(ts)).unwrap();
    for (name, bytes) in files {
        std::fs::write(dir.join(ts).join(name), bytes).unwrap();
        std::os::unix::fs::symlink(format!("..data/{name}"), dir.join(name)).unwrap();
    }
    std::os::unix::fs::symlink(ts, dir.join("..data")).unwrap();
}

/// Mount a Secret-like volume (tmpfs, files root:fsGroup 0440, read-only)
/// at ROOT/PATH: what the kubelet does for `defaultMode: 0400` with fsGroup.
const MOUNT_SCRIPT: &str = r#"set -e
R=$1; KEYS=$2; TOKEN=$3; shift 3
secret() { # $1 mountpoint, $2 source dir holding the atomic layout
  mount -t tmpfs -o mode=0755 tmpfs "$1"
  cp -a "$2"/. "$1"/
  find "$1" -type f -exec chown 0:10001 {} + -exec chmod 0440 {} +
  mount -o remount,ro "$1"
}
secret "$R/etc/vigil/keys" "$KEYS"
secret "$R/var/run/secrets/kubernetes.io/serviceaccount" "$TOKEN"
mount --bind -o ro "$R/etc/vigil/policy" "$R/etc/vigil/policy"
mount -o remount,bind,ro "$R/etc/vigil/policy"
exec "$@"
"#;

struct Pod {
    root: PathBuf,
    keys: PathBuf,
    token: PathBuf,
}

/// The runner container's root filesystem: the image's binary, the policy
/// ConfigMap, mount points, the results PVC and /tmp.
fn pod_root(dir: &Path, policy: &str, signing_key: &Path, token: &str, ca_pem: &str) -> Pod {
    let root = dir.join("root");
    install_binary(
        &root,
        Path::new(env!("CARGO_BIN_EXE_vigil")),
        &root.join("usr/local/bin/vigil"),
    );
    let profile = std::fs::read(repo().join("policies/profiles/container-baseline.yaml")).unwrap();
    atomic_volume(
        &root.join("etc/vigil/policy"),
        &[
            ("policy.yaml", policy.as_bytes().to_vec()),
            ("container-baseline.yaml", profile),
        ],
    );
    for d in [
        "etc/vigil/keys",
        "var/run/secrets/kubernetes.io/serviceaccount",
        "results",
        "tmp",
    ] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    // The PVC and the emptyDir: writable by the pod's fsGroup.
    std::os::unix::fs::chown(root.join("results"), Some(0), Some(10001)).unwrap();
    std::fs::set_permissions(
        root.join("results"),
        std::os::unix::fs::PermissionsExt::from_mode(0o2775),
    )
    .unwrap();
    std::fs::set_permissions(
        root.join("tmp"),
        std::os::unix::fs::PermissionsExt::from_mode(0o1777),
    )
    .unwrap();
    let keys = dir.join("secret-src");
    atomic_volume(
        &keys,
        &[("signing.key.pem", std::fs::read(signing_key).unwrap())],
    );
    let token_dir = dir.join("token-src");
    atomic_volume(
        &token_dir,
        &[
            ("token", token.as_bytes().to_vec()),
            ("ca.crt", ca_pem.as_bytes().to_vec()),
            ("namespace", b"vigil".to_vec()),
        ],
    );
    Pod {
        root,
        keys,
        token: token_dir,
    }
}

/// The kubelet's `$(VAR)` expansion of container args.
fn expand(arg: &str, env: &[(&str, String)]) -> String {
    env.iter().fold(arg.to_string(), |a, (k, v)| {
        a.replace(&format!("$({k})"), v)
    })
}

/// Start the rendered container: returns the child (stdout, stderr piped).
fn start_container(
    pod: &Pod,
    port: u16,
    container: &k8s_openapi::api::core::v1::Container,
    security: (i64, i64, i64),
    index: Option<u32>,
) -> std::process::Child {
    let mut env = vec![
        ("KUBERNETES_SERVICE_HOST", "127.0.0.1".to_string()),
        ("KUBERNETES_SERVICE_PORT", port.to_string()),
    ];
    if let Some(i) = index {
        env.push(("JOB_COMPLETION_INDEX", i.to_string()));
    }
    let (uid, gid, fs_group) = security;
    let mut cmd = Command::new("unshare");
    cmd.args(["-m", "sh", "-c", MOUNT_SCRIPT, "sh"])
        .arg(&pod.root)
        .arg(&pod.keys)
        .arg(&pod.token)
        .arg("/usr/bin/env")
        .arg("-i");
    for (k, v) in &env {
        cmd.arg(format!("{k}={v}"));
    }
    cmd.arg("/usr/sbin/chroot")
        .arg(format!("--userspec={uid}:{gid}"))
        .arg(format!("--groups={fs_group}"))
        .arg(&pod.root);
    for c in container
        .command
        .iter()
        .flatten()
        .chain(container.args.iter().flatten())
    {
        cmd.arg(expand(c, &env));
    }
    cmd.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// A cluster of 12 web pods over busybox fixture roots.
fn server(dir: &Path) -> (FakeApiServer, TempDir) {
    let fx = rootfs_fixtures();
    let roots = fx.path().join("rootfs");
    install_busybox(&roots.join("alpine"));
    let mut pods = Vec::new();
    let mut rootfs: HashMap<(String, String), PathBuf> = HashMap::new();
    for i in 0..6 {
        for ns in ["team-a", "team-b"] {
            let name = format!("web-{i}");
            pods.push(json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "namespace": ns, "labels": {"app": "web"}, "uid": format!("uid-{ns}-{name}")},
                "spec": {"nodeName": "node-1", "containers": [{"name": "app", "image": "registry.example/web:1"}]},
                "status": {"phase": "Running", "containerStatuses": [{"name": "app", "ready": true, "restartCount": 0, "image": "registry.example/web:1", "imageID": "", "containerID": format!("containerd://{:064x}", i), "state": {"running": {}}}]}
            }));
            rootfs.insert((ns.into(), name), roots.join("alpine"));
        }
    }
    (FakeApiServer::start(dir, pods, rootfs), fx)
}

/// Apply the ServiceAccount, Roles and RoleBindings of rendered YAML.
fn apply(server: &FakeApiServer, docs: &[Value]) {
    for d in docs {
        let resource = match d["kind"].as_str().unwrap() {
            "ServiceAccount" => "serviceaccounts",
            "Role" => "roles",
            "RoleBinding" => "rolebindings",
            _ => continue,
        };
        server.insert(resource, d.clone());
    }
}

fn vigil(dir: &Path, server: &FakeApiServer, args: &[&str]) -> crate::util::Run {
    Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(args)
        .current_dir(dir)
        .env("KUBECONFIG", &server.kubeconfig)
        .output()
        .unwrap()
        .into()
}

/// A token of the rendered runner ServiceAccount (`vigil/vigil-runner-live`),
/// requested as the kubelet requests one for a projected volume.
fn runner_token(server: &FakeApiServer) -> String {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let admin = vigil::cluster::Cluster::connect_with(Some(&server.kubeconfig), None, false)
            .await
            .unwrap();
        let anchor: k8s_openapi::api::core::v1::Secret = serde_json::from_value(json!({
            "metadata": {"name": "runner-pod", "namespace": "vigil"}, "type": "Opaque"
        }))
        .unwrap();
        let anchor = admin.create_secret(&anchor).await.unwrap();
        admin
            .request_token("vigil", "vigil-runner-live", 3600, &[], &anchor)
            .await
            .unwrap()
            .0
            .expose()
            .to_string()
    })
}

fn ca_pem(server: &FakeApiServer) -> String {
    use base64::Engine as _;
    let kubeconfig = std::fs::read_to_string(&server.kubeconfig).unwrap();
    let data = kubeconfig
        .lines()
        .find_map(|l| l.trim().strip_prefix("certificate-authority-data: "))
        .unwrap();
    String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(data)
            .unwrap(),
    )
    .unwrap()
}

fn scenario(mode: &str, shards: Option<u32>) {
    let dir = TempDir::new(&format!("incluster-{mode}-{}", shards.unwrap_or(0)));
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let (server, _fx) = server(dir.path());
    crate::util::signing_key(dir.path());
    let age = crate::util::vigil_in(dir.path(), &["keygen", "age", "--out", "auditor"]);
    let recipient = age.stdout.trim().to_string();
    let policy = format!(
        "apiVersion: vigil/v1\nkind: ScanPolicy\nmetadata: {{name: live}}\nspec:\n  profiles: [container-baseline]\n  targets:\n    - {{namespace: team-a, selector: {{matchLabels: {{app: web}}}}, approach: api}}\n    - {{namespace: team-b, selector: {{matchLabels: {{app: web}}}}, approach: api}}\n  access: {{mode: {mode}}}\n  schedule: \"0 2 * * *\"\n  limits: {{concurrency: 4}}\n  output: {{recipients: [\"{recipient}\"]}}\n"
    );
    let p = dir.write("p.yaml", &policy);
    let profiles = repo().join("policies/profiles");
    let (p, profiles) = (p.to_str().unwrap(), profiles.to_str().unwrap());
    // The platform team's objects: the provisioned identity, if any.
    if mode == "provisioned" {
        let rbac = vigil(dir.path(), &server, &["render", "rbac", p, profiles]);
        assert_eq!(rbac.code, 0, "{}", rbac.stderr);
        apply(
            &server,
            &serde_saphyr::from_multiple::<Value>(&rbac.stdout).unwrap(),
        );
    }
    // The runner's objects and its workload, exactly as rendered.
    let common = [
        "--namespace",
        "vigil",
        "--scanner-image",
        IMAGE,
        "--pvc",
        "results",
        "--signing-secret",
        "signing",
    ];
    let mut args = vec!["render"];
    match shards {
        Some(_) => args.push("job"),
        None => args.push("cronjob"),
    }
    args.extend([p, profiles]);
    args.extend(common);
    let n = shards.map(|n| n.to_string());
    if let Some(n) = &n {
        args.extend(["--shards", n]);
    }
    let rendered = vigil(dir.path(), &server, &args);
    assert_eq!(rendered.code, 0, "{}", rendered.stderr);
    let docs: Vec<Value> = serde_saphyr::from_multiple(&rendered.stdout).unwrap();
    apply(&server, &docs);
    let pod_spec: k8s_openapi::api::core::v1::PodSpec = {
        let w = docs
            .iter()
            .find(|d| d["kind"] == "Job" || d["kind"] == "CronJob")
            .unwrap();
        let t = if w["kind"] == "Job" {
            &w["spec"]["template"]["spec"]
        } else {
            &w["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        };
        serde_json::from_value(t.clone()).unwrap()
    };
    let sc = pod_spec.security_context.clone().unwrap();
    let security = (
        sc.run_as_user.unwrap(),
        sc.run_as_group.unwrap(),
        sc.fs_group.unwrap(),
    );
    assert_eq!(security, (10001, 10001, 10001));
    let container = &pod_spec.containers[0];
    let pod = pod_root(
        dir.path(),
        &policy,
        &dir.path().join("signer.key.pem"),
        &runner_token(&server),
        &ca_pem(&server),
    );
    let port: u16 = std::fs::read_to_string(&server.kubeconfig)
        .unwrap()
        .lines()
        .find_map(|l| l.trim().strip_prefix("server: https://127.0.0.1:"))
        .unwrap()
        .parse()
        .unwrap();
    // Every shard at once, as an Indexed Job with parallelism = shards.
    let indexes: Vec<Option<u32>> = match shards {
        Some(n) => (0..n).map(Some).collect(),
        None => vec![None],
    };
    let children: Vec<_> = indexes
        .iter()
        .map(|i| start_container(&pod, port, container, security, *i))
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            matches!(out.status.code(), Some(0 | 1)),
            "{mode} {shards:?}: {:?}\n{stderr}",
            out.status
        );
    }
    // The runner's token never met a 403: the rendered Role holds every
    // right the runner used.
    let runner = "system:serviceaccount:vigil:vigil-runner-live";
    let refused: Vec<String> = server
        .request_log()
        .iter()
        .filter(|l| l.identity == runner && l.status == 403)
        .map(|l| format!("{} {}", l.method, l.path))
        .collect();
    assert!(
        refused.is_empty(),
        "{mode} {shards:?}: the rendered Role misses {refused:?}"
    );
    assert!(
        server.request_log().iter().any(|l| l.identity == runner),
        "the runner used its token"
    );
    // The bundles landed on the results volume, and verify.
    let results = pod.root.join("results/live");
    let bundles: Vec<PathBuf> = std::fs::read_dir(&results)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect();
    assert_eq!(bundles.len(), indexes.len(), "{bundles:?}");
    let mut scanned = BTreeSet::new();
    for b in &bundles {
        let v = crate::util::vigil_in(
            dir.path(),
            &[
                "verify",
                b.to_str().unwrap(),
                "--trusted-key",
                "signer.pub.pem",
                "--identity",
                "auditor.key",
            ],
        );
        assert_eq!(v.code, 0, "{}{}", v.stdout, v.stderr);
        let st = crate::util::statement_payload(b);
        for t in st["predicate"]["targets"].as_array().unwrap() {
            assert_eq!(t["status"], "scanned", "{t}");
            assert!(scanned.insert(t["id"].as_str().unwrap().to_string()));
        }
    }
    assert_eq!(scanned.len(), 12, "every pod once, over all shards");
    // What the runs created is gone: only the applied identities remain,
    // and the anchor of the runner pod's own token.
    let applied: BTreeSet<&str> = [
        "vigil/vigil-runner-live",
        "team-a/vigil-live",
        "team-b/vigil-live",
    ]
    .into();
    for sa in server.objects("serviceaccounts") {
        assert!(applied.contains(sa.as_str()), "left behind: {sa}");
    }
    assert_eq!(server.objects("secrets"), ["vigil/runner-pod"]);
}

fn ready() -> bool {
    crate::util::root_and_busybox()
}

#[test]
fn rendered_sharded_job_runs_as_a_pod_per_run_mode() {
    if ready() {
        scenario("per-run", Some(3));
    }
}

#[test]
fn rendered_sharded_job_runs_as_a_pod_provisioned_mode() {
    if ready() {
        scenario("provisioned", Some(3));
    }
}

#[test]
fn rendered_cronjob_runs_as_a_pod_in_both_modes() {
    if ready() {
        scenario("per-run", None);
        scenario("provisioned", None);
    }
}
