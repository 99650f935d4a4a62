//! Workload controls end to end: manifests of every workload kind as
//! targets (results and SARIF on the offending line), vigil's own rendered
//! manifests under `scanner-hardening`, and live pods through the test API
//! server, where a pod's filesystem results and its configuration results
//! sit side by side with their own evidence levels.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use serde_json::{Value, json};

use crate::util::{TempDir, repo, vigil_in, vigil_with_deadline};

const PROFILES: &str = "policies/profiles";

fn policy(dir: &TempDir, profiles: &str, targets: &str, extra: &str) -> PathBuf {
    dir.write(
        "p.yaml",
        format!(
            "apiVersion: vigil/v1\nkind: ScanPolicy\nmetadata: {{name: w}}\nspec:\n  profiles: [{profiles}]\n  targets: {targets}\n{extra}"
        ),
    )
}

fn run(dir: &TempDir, args: &[&str]) -> (crate::util::Run, Value) {
    let profiles = repo().join(PROFILES);
    let mut all = vec!["run", "p.yaml", profiles.to_str().unwrap()];
    all.extend([
        "--out",
        "out",
        "--unsigned",
        "--plaintext",
        "--format",
        "json",
    ]);
    all.extend(args);
    let r = vigil_in(dir.path(), &all);
    assert!(r.code == 0 || r.code == 1, "{}\n{}", r.stdout, r.stderr);
    let v = serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {}", r.stderr));
    (r, v)
}

/// Each target's failed control ids.
fn failed(summary: &Value) -> BTreeMap<String, Vec<String>> {
    summary[0]["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let ids = t["findings"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|f| f["status"] == "failed")
                .map(|f| f["id"].as_str().unwrap().to_string())
                .collect();
            (t["id"].as_str().unwrap().to_string(), ids)
        })
        .collect()
}

const DEPLOYMENT: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
spec:
  template:
    metadata:
      annotations:
        container.apparmor.security.beta.kubernetes.io/app: unconfined
    spec:
      containers:
        - name: app
          image: registry.example/web:1
          securityContext:
            privileged: true
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec: {ports: [{port: 80}]}
";

/// Restricted everywhere: the pod-level settings every container inherits.
fn restricted_spec() -> Value {
    json!({
        "securityContext": {"runAsNonRoot": true, "runAsUser": 1000, "runAsGroup": 1000, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [{"name": "c", "image": "registry.example/app@sha256:1111111111111111111111111111111111111111111111111111111111111111",
            "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}, "readOnlyRootFilesystem": true}}]
    })
}

#[test]
fn manifests_of_every_workload_kind_are_targets_located_to_the_line() {
    let dir = TempDir::new("manifests");
    dir.write("repo/deploy.yaml", DEPLOYMENT);
    let kinds = [
        "StatefulSet",
        "DaemonSet",
        "ReplicaSet",
        "Job",
        "ReplicationController",
    ];
    let list: Vec<Value> = kinds
        .iter()
        .map(|k| json!({"apiVersion": "apps/v1", "kind": k, "metadata": {"name": k.to_lowercase(), "namespace": "ops"}, "spec": {"template": {"spec": restricted_spec()}}}))
        .collect();
    dir.write(
        "repo/nested/list.json",
        serde_json::to_vec_pretty(&json!({"apiVersion": "v1", "kind": "List", "items": list}))
            .unwrap(),
    );
    dir.write(
        "repo/cron.yml",
        serde_json::to_vec(&json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "nightly"}, "spec": {"schedule": "@daily", "jobTemplate": {"spec": {"template": {"spec": restricted_spec()}}}}})).unwrap(),
    );
    dir.write(
        "repo/pod.yaml",
        serde_json::to_vec(&json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "solo", "namespace": "ops"}, "spec": restricted_spec()})).unwrap(),
    );
    dir.write("repo/README.md", "not a manifest");
    dir.write(
        "repo/.hidden/skip.yaml",
        "kind: Pod\nmetadata: {name: hidden}\nspec: {containers: []}\n",
    );
    policy(&dir, "pod-security-restricted", "[{manifest: repo}]", "");
    let (r, summary) = run(&dir, &["--report", "sarif=out.sarif"]);
    assert_eq!(
        r.code, 0,
        "no threshold: exit 0 whatever failed; {}",
        r.stderr
    );
    let f = failed(&summary);
    let ids: Vec<&str> = f.keys().map(String::as_str).collect();
    assert_eq!(
        ids,
        [
            "CronJob/default/nightly",
            "DaemonSet/ops/daemonset",
            "Deployment/shop/web",
            "Job/ops/job",
            "Pod/ops/solo",
            "ReplicaSet/ops/replicaset",
            "ReplicationController/ops/replicationcontroller",
            "StatefulSet/ops/statefulset",
        ]
    );
    for (id, fails) in &f {
        if id == "Deployment/shop/web" {
            assert!(
                fails.contains(&"PSS-B-02".to_string()),
                "privileged: {fails:?}"
            );
            assert!(
                fails.contains(&"PSS-B-06".to_string()),
                "AppArmor: {fails:?}"
            );
            assert!(
                fails.contains(&"PSS-R-03".to_string()),
                "runAsNonRoot: {fails:?}"
            );
        } else {
            assert!(fails.is_empty(), "{id}: {fails:?}");
        }
    }
    for t in summary[0]["targets"].as_array().unwrap() {
        assert_eq!(t["approach"], "manifest");
        assert_eq!(t["evidence"], "spec");
    }
    // SARIF lands on the field that decided each finding.
    let sarif: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("out.sarif")).unwrap()).unwrap();
    let results = sarif["runs"][0]["results"].as_array().unwrap();
    let at = |rule: &str| {
        let r = results.iter().find(|r| r["ruleId"] == rule).unwrap();
        let l = &r["locations"][0]["physicalLocation"];
        (
            l["artifactLocation"]["uri"].as_str().unwrap().to_string(),
            l["region"]["startLine"].as_u64().unwrap(),
            l["region"]["startColumn"].as_u64().unwrap_or(0),
        )
    };
    // Relative to where the policy is, as code scanning wants it.
    assert_eq!(
        at("PSS-B-02"),
        ("repo/deploy.yaml".to_string(), 16, 25),
        "privileged: true"
    );
    assert_eq!(at("PSS-B-06").1, 10, "the AppArmor annotation");
    // The HDF says the same, per result, with the evidence per control.
    let hdf: Value = serde_json::from_slice(
        &std::fs::read(dir.path().join(format!(
            "out/w/{}/targets/Deployment_shop_web.hdf.json",
            summary[0]["run_id"].as_str().unwrap()
        )))
        .unwrap(),
    )
    .unwrap();
    let ctl = hdf["profiles"][0]["controls"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "PSS-B-02")
        .unwrap();
    assert_eq!(ctl["tags"]["evidence"], "spec");
    assert_eq!(ctl["results"][0]["source_location"]["line"], 16);
    assert_eq!(hdf["platform"]["evidence"], "spec");
}

#[test]
fn a_manifest_from_standard_input_and_bad_manifests_named_by_line() {
    let dir = TempDir::new("manifest-stdin");
    policy(&dir, "pod-security-baseline", "[{manifest: none.yaml}]", "");
    let profiles = repo().join(PROFILES);
    let mut args = vec!["run", "p.yaml", profiles.to_str().unwrap()];
    args.extend(crate::util::PLAIN_JSON);
    args.extend(["--manifest", "-"]);
    let r = vigil_with_deadline(dir.path(), &args, DEPLOYMENT.as_bytes(), 60);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let summary: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(
        failed(&summary)["Deployment/shop/web"],
        ["PSS-B-02", "PSS-B-06"]
    );
    // A bad manifest is a plan error naming file, line and column; a
    // directory of nothing but Services is an error, never a pass.
    dir.write("bad/a.yaml", "kind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: c, securityContext: {runAsUser: \"0\"}}]\n");
    dir.write("svc/s.yaml", "kind: Service\nmetadata: {name: s}\n");
    for (manifest, says) in [
        ("bad", "bad/a.yaml:4:"),
        ("bad", "not a valid pod spec"),
        ("svc", "no workload in 1 file(s) (only 1 Service)"),
    ] {
        let r = vigil_with_deadline(
            dir.path(),
            &[
                "run",
                "p.yaml",
                profiles.to_str().unwrap(),
                "--unsigned",
                "--plaintext",
                "--manifest",
                manifest,
            ],
            b"",
            60,
        );
        assert_eq!(r.code, 2, "{}", r.stderr);
        assert!(r.stderr.contains(says), "{says}: {}", r.stderr);
    }
}

/// `vigil render cronjob` and `render job` write workloads that meet the
/// restricted Pod Security Standard and the hardening profile; the one
/// waiver is the runner's own API token, which it needs.
#[test]
fn vigils_rendered_workloads_pass_scanner_hardening() {
    let dir = TempDir::new("rendered");
    let image = "registry.example/vigil@sha256:1111111111111111111111111111111111111111111111111111111111111111";
    let shop = repo().join("policies/shop.yaml");
    let profiles = repo().join(PROFILES);
    for (file, kind, extra) in [
        ("cronjob.yaml", "cronjob", None),
        ("job.yaml", "job", Some("3")),
    ] {
        let mut args = vec![
            "render",
            kind,
            shop.to_str().unwrap(),
            profiles.to_str().unwrap(),
            "--policy",
            "shop",
            "--namespace",
            "vigil",
            "--scanner-image",
            image,
            "--pvc",
            "results",
            "--signing-secret",
            "signing",
        ];
        if let Some(n) = extra {
            args.extend(["--shards", n]);
        }
        let r = vigil_in(dir.path(), &args);
        assert_eq!(r.code, 0, "{}", r.stderr);
        dir.write(&format!("rendered/{file}"), r.stdout);
    }
    policy(
        &dir,
        "pod-security-restricted, scanner-hardening",
        "[{manifest: rendered}]",
        "  waivers:\n    - control: SH-11\n      expires: \"2099-01-01T00:00:00Z\"\n      justification: the in-cluster runner talks to the API server with its ServiceAccount token\n      approver: security@example.com\n",
    );
    let (_, summary) = run(&dir, &[]);
    let f = failed(&summary);
    assert_eq!(f.len(), 2, "{f:?}");
    for (id, fails) in f {
        assert!(fails.is_empty(), "{id}: {fails:?}");
    }
    for t in summary[0]["targets"].as_array().unwrap() {
        assert_eq!(t["counts"]["error"], 0, "{t}");
        assert!(t["counts"]["passed"].as_u64().unwrap() >= 25, "{t}");
    }
}

/// One live run: a pod whose filesystem fails a control but whose
/// configuration meets the restricted standard, and the reverse; each
/// control carries its own evidence, and the live pod's configuration
/// results equal those of the same spec as a manifest.
#[test]
fn filesystem_and_configuration_results_side_by_side_with_their_evidence() {
    if !crate::util::root_and_busybox() {
        return;
    }
    let fx = crate::util::rootfs_fixtures();
    let roots = fx.path().join("rootfs");
    crate::util::install_busybox(&roots.join("alpine"));
    crate::util::install_busybox(&roots.join("debian"));
    let hardened = restricted_spec();
    let loose = json!({"containers": [{"name": "c", "image": "registry.example/app:1", "securityContext": {"privileged": true}}]});
    let pod = |name: &str, spec: &Value| {
        let mut spec = spec.clone();
        spec["nodeName"] = "node-1".into();
        spec["containers"][0]["name"] = "c".into();
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "team", "uid": format!("uid-{name}"), "labels": {"app": "w"}},
            "spec": spec,
            "status": {"phase": "Running", "containerStatuses": [{"name": "c", "ready": true, "restartCount": 0, "image": "x", "imageID": "", "state": {"running": {}}}]}
        })
    };
    let dir = TempDir::new("live-workload");
    let mut rootfs: HashMap<(String, String), PathBuf> = HashMap::new();
    rootfs.insert(
        ("team".into(), "alpine-hardened".into()),
        roots.join("alpine"),
    );
    rootfs.insert(("team".into(), "debian-loose".into()), roots.join("debian"));
    let server = crate::fakeapi::FakeApiServer::start(
        dir.path(),
        vec![
            pod("alpine-hardened", &hardened),
            pod("debian-loose", &loose),
        ],
        rootfs,
    );
    dir.write(
        "uid0.yaml",
        "apiVersion: vigil/v1\nkind: Profile\nmetadata: {name: uid0}\ncontrols:\n  - id: FS-01\n    title: Only root has uid 0\n    impact: 0.9\n    check: {users: all, expect: {uid0_only_root: true}}\n",
    );
    dir.write(
        "p.yaml",
        "apiVersion: vigil/v1\nkind: ScanPolicy\nmetadata: {name: live}\nspec:\n  profiles: [uid0, pod-security-restricted]\n  targets:\n    - {namespace: team, selector: {matchLabels: {app: w}}, approach: api}\n",
    );
    let profiles = repo().join(PROFILES);
    let uid0 = dir.path().join("uid0.yaml");
    let run_with = |policy: &str| -> crate::util::Run {
        std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
            .args(["run", policy])
            .arg(&profiles)
            .arg(&uid0)
            .args([
                "--out",
                "out",
                "--unsigned",
                "--plaintext",
                "--format",
                "json",
            ])
            .current_dir(dir.path())
            .env("KUBECONFIG", &server.kubeconfig)
            .output()
            .unwrap()
            .into()
    };
    // Workload controls cost no API request: the run makes exactly the
    // requests of the same run without them (the pods were listed anyway).
    dir.write(
        "fs-only.yaml",
        "apiVersion: vigil/v1\nkind: ScanPolicy\nmetadata: {name: live}\nspec:\n  profiles: [uid0]\n  targets:\n    - {namespace: team, selector: {matchLabels: {app: w}}, approach: api}\n",
    );
    let before = server.request_log().len();
    let r = run_with("fs-only.yaml");
    assert!(r.code == 0 || r.code == 1, "{}", r.stderr);
    let fs_only = server.request_log().len() - before;
    let before = server.request_log().len();
    let r = run_with("p.yaml");
    assert_eq!(
        server.request_log().len() - before,
        fs_only,
        "workload controls added API requests"
    );
    assert!(r.code == 0 || r.code == 1, "{}", r.stderr);
    let summary: Value = serde_json::from_str(&r.stdout).unwrap();
    let f = failed(&summary);
    // alpine has a second uid 0 account; debian does not.
    assert_eq!(f["team/alpine-hardened/c"], ["FS-01"]);
    let loose_fails = &f["team/debian-loose/c"];
    assert!(
        !loose_fails.contains(&"FS-01".to_string()),
        "{loose_fails:?}"
    );
    assert!(
        loose_fails.contains(&"PSS-B-02".to_string()),
        "{loose_fails:?}"
    );
    // Each control says how its facts were obtained.
    let run_id = summary[0]["run_id"].as_str().unwrap();
    let hdf = |target: &str| -> Value {
        let name = target.replace('/', "_");
        serde_json::from_slice(
            &std::fs::read(
                dir.path()
                    .join(format!("out/live/{run_id}/targets/{name}.hdf.json")),
            )
            .unwrap(),
        )
        .unwrap()
    };
    let evidence = |doc: &Value| -> BTreeMap<String, (String, String)> {
        let mut out = BTreeMap::new();
        for p in doc["profiles"].as_array().unwrap() {
            for c in p["controls"].as_array().unwrap() {
                let status = crate::util::hdf_statuses(&json!({"profiles": [{"controls": [c]}]}));
                out.insert(
                    c["id"].as_str().unwrap().to_string(),
                    (
                        c["tags"]["evidence"].as_str().unwrap().to_string(),
                        status.values().next().cloned().unwrap_or_default(),
                    ),
                );
            }
        }
        out
    };
    let live = evidence(&hdf("team/debian-loose/c"));
    assert_eq!(live["FS-01"].0, "api");
    assert_eq!(live["PSS-B-02"].0, "spec");
    assert_eq!(hdf("team/debian-loose/c")["platform"]["evidence"], "api");
    // The same spec as a manifest: the same configuration results.
    let m = TempDir::new("live-as-manifest");
    let mut as_manifest = pod("debian-loose", &loose);
    as_manifest.as_object_mut().unwrap().remove("status");
    m.write("pod.json", serde_json::to_vec(&as_manifest).unwrap());
    policy(&m, "pod-security-restricted", "[{manifest: pod.json}]", "");
    let (_, ms) = run(&m, &[]);
    let mrun = ms[0]["run_id"].as_str().unwrap();
    let mdoc: Value = serde_json::from_slice(
        &std::fs::read(m.path().join(format!(
            "out/w/{mrun}/targets/Pod_team_debian-loose.hdf.json"
        )))
        .unwrap(),
    )
    .unwrap();
    let from_manifest = evidence(&mdoc);
    let live_spec: BTreeMap<_, _> = live
        .into_iter()
        .filter(|(k, _)| k.starts_with("PSS"))
        .collect();
    assert_eq!(live_spec, from_manifest);
    server.assert_no_access_objects();
}

#[test]
fn a_control_has_one_evidence_level_and_vigil_owns_the_evidence_tag() {
    let dir = TempDir::new("mixed-evidence");
    dir.write(
        "prof.yaml",
        "apiVersion: vigil/v1\nkind: Profile\nmetadata: {name: mixed}\ncontrols:\n  - id: M-1\n    title: mixed\n    check:\n      all:\n        - {pod_security: privileged}\n        - {file: /etc/passwd, expect: {exists: true}}\n  - id: M-2\n    title: tagged\n    tags: {evidence: mine}\n    check: {workload: pod, expect: {privileged: false}}\n  - id: M-3\n    title: fine\n    check: {any: [{pod_security: privileged}, {workload: pod, expect: {privileged: false}}]}\n",
    );
    let r = vigil_in(dir.path(), &["validate", "prof.yaml", "--format", "json"]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    let codes: Vec<String> = serde_json::from_str::<Value>(&r.stdout).unwrap()["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| format!("{}@{}", d["code"].as_str().unwrap(), d["line"]))
        .collect();
    assert_eq!(
        codes,
        ["mixed-evidence@8", "reserved-tag@13"],
        "{}",
        r.stdout
    );
}

/// A control's status on a target as the run summary lists it: its
/// finding's status, else passed.
fn status(summary: &Value, target: &str, control: &str) -> String {
    let t = summary[0]["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == target)
        .unwrap_or_else(|| panic!("no target {target}"));
    t["findings"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|f| f["id"] == control)
        .map_or("passed".to_string(), |f| {
            f["status"].as_str().unwrap().to_string()
        })
}

/// A control that asks what the pod's namespace says: the plan reads the
/// namespace and its NetworkPolicies once per namespace (and says so), a
/// live pod is judged on them, and manifests on the Namespace and
/// NetworkPolicy objects among them.
#[test]
fn namespace_labels_and_network_policies_from_the_cluster_and_from_manifests() {
    let profile = "apiVersion: vigil/v1\nkind: Profile\nmetadata: {name: ns}\ncontrols:\n  - id: NS-01\n    title: the namespace enforces restricted\n    check: {workload: pod, expect: {namespace_enforces: restricted}}\n  - id: NS-02\n    title: a NetworkPolicy selects the pod\n    check: {workload: pod, expect: {network_policy: true}}\n";
    // Manifests: a guarded namespace with its objects, and an open one
    // whose Namespace object is not among them.
    let m = TempDir::new("ns-manifests");
    m.write("ns.yaml", profile);
    m.write(
        "k8s/all.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: guarded, labels: {pod-security.kubernetes.io/enforce: restricted}}\n---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny-all, namespace: guarded}\nspec: {podSelector: {matchLabels: {app: w}}, policyTypes: [Ingress]}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: a, namespace: guarded, labels: {app: w}}\nspec: {containers: [{name: c, image: x}]}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: b, namespace: guarded, labels: {app: other}}\nspec: {containers: [{name: c, image: x}]}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: c, namespace: open}\nspec: {containers: [{name: c, image: x}]}\n",
    );
    m.write(
        "p.yaml",
        "apiVersion: vigil/v1\nkind: ScanPolicy\nmetadata: {name: w}\nspec:\n  profiles: [ns]\n  targets: [{manifest: k8s}]\n",
    );
    let r = vigil_in(
        m.path(),
        &[
            "run",
            "p.yaml",
            "ns.yaml",
            "--out",
            "out",
            "--unsigned",
            "--plaintext",
            "--format",
            "json",
        ],
    );
    assert!(r.code == 0 || r.code == 1 || r.code == 3, "{}", r.stderr);
    let s: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(status(&s, "Pod/guarded/a", "NS-01"), "passed");
    assert_eq!(status(&s, "Pod/guarded/a", "NS-02"), "passed");
    assert_eq!(
        status(&s, "Pod/guarded/b", "NS-02"),
        "failed",
        "not selected"
    );
    assert_eq!(
        status(&s, "Pod/open/c", "NS-01"),
        "error",
        "no Namespace object: never a pass"
    );
    assert_eq!(
        status(&s, "Pod/open/c", "NS-02"),
        "failed",
        "no NetworkPolicy among the manifests"
    );

    // Live: the same through the test API server.
    if !crate::util::root_and_busybox() {
        return;
    }
    let fx = crate::util::rootfs_fixtures();
    let root = fx.path().join("rootfs/debian");
    crate::util::install_busybox(&root);
    let pod = |ns: &str, name: &str, app: &str| {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "uid": format!("uid-{ns}-{name}"), "labels": {"app": app, "scan": "yes"}},
            "spec": {"nodeName": "node-1", "containers": [{"name": "c", "image": "registry.example/app:1"}]},
            "status": {"phase": "Running", "containerStatuses": [{"name": "c", "ready": true, "restartCount": 0, "image": "x", "imageID": "", "state": {"running": {}}}]}
        })
    };
    let dir = TempDir::new("ns-live");
    let mut rootfs: HashMap<(String, String), PathBuf> = HashMap::new();
    for (ns, name) in [("guarded", "a"), ("guarded", "b"), ("open", "c")] {
        rootfs.insert((ns.into(), name.into()), root.clone());
    }
    let server = crate::fakeapi::FakeApiServer::start(
        dir.path(),
        vec![
            pod("guarded", "a", "w"),
            pod("guarded", "b", "other"),
            pod("open", "c", "w"),
        ],
        rootfs,
    );
    server.label_namespace(
        "guarded",
        "pod-security.kubernetes.io/enforce",
        "restricted",
    );
    server.label_namespace("open", "pod-security.kubernetes.io/warn", "restricted");
    server.insert(
        "networkpolicies",
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "deny-all", "namespace": "guarded"}, "spec": {"podSelector": {"matchLabels": {"app": "w"}}, "policyTypes": ["Ingress"]}}),
    );
    dir.write("ns.yaml", profile);
    dir.write(
        "p.yaml",
        "apiVersion: vigil/v1\nkind: ScanPolicy\nmetadata: {name: w}\nspec:\n  profiles: [ns]\n  targets:\n    - {namespace: guarded, selector: {matchLabels: {scan: \"yes\"}}, approach: api}\n    - {namespace: open, selector: {matchLabels: {scan: \"yes\"}}, approach: api}\n",
    );
    let plan = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["plan", "p.yaml", "ns.yaml"])
        .current_dir(dir.path())
        .env("KUBECONFIG", &server.kubeconfig)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&plan.stdout);
    assert!(
        text.contains("get namespaces (resourceNames: [guarded]) in guarded")
            && text.contains("list networkpolicies.networking.k8s.io in open"),
        "{text}"
    );
    let before = server.request_log().len();
    let out: crate::util::Run = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args([
            "run",
            "p.yaml",
            "ns.yaml",
            "--out",
            "out",
            "--unsigned",
            "--plaintext",
            "--format",
            "json",
        ])
        .current_dir(dir.path())
        .env("KUBECONFIG", &server.kubeconfig)
        .output()
        .unwrap()
        .into();
    assert!(out.code == 0 || out.code == 1, "{}", out.stderr);
    let reads = server.request_log()[before..]
        .iter()
        .filter(|l| l.path.contains("/networkpolicies"))
        .count();
    assert_eq!(reads, 2, "one NetworkPolicy list per namespace");
    let s: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(status(&s, "guarded/a/c", "NS-01"), "passed");
    assert_eq!(status(&s, "guarded/a/c", "NS-02"), "passed");
    assert_eq!(status(&s, "guarded/b/c", "NS-02"), "failed");
    assert_eq!(
        status(&s, "open/c/c", "NS-01"),
        "failed",
        "warn is not enforce"
    );
    assert_eq!(status(&s, "open/c/c", "NS-02"), "failed");
}
