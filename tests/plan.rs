//! `vigil plan` and `vigil render rbac` against the fixture snapshot: exact
//! target selection, exact rights, deterministic output.

use std::collections::BTreeSet;
use std::process::Command;

use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use serde_json::Value;

use crate::util::{TempDir, vigil, vigil_in};

const SNAPSHOT: &str = "fixtures/cluster/snapshot.json";

fn plan_json(extra: &[&str]) -> Value {
    let mut args = vec![
        "plan",
        "policies/",
        "--inventory",
        SNAPSHOT,
        "--format",
        "json",
    ];
    args.extend_from_slice(extra);
    let run = vigil(&args);
    assert_eq!(run.code, 0, "{}", run.stderr);
    serde_json::from_str(&run.stdout).unwrap()
}

fn policy<'a>(plan: &'a Value, name: &str) -> &'a Value {
    plan["policies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["policy"] == name)
        .unwrap()
}

fn targets(p: &Value) -> Vec<(String, String)> {
    p["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["id"].as_str().unwrap().to_string(),
                t["approach"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn payments_selects_exactly_the_running_backend_containers() {
    let plan = plan_json(&[]);
    let p = policy(&plan, "payments");
    let expected: Vec<(String, String)> = [
        // auto: decided per target at run time (api, or debug when the
        // container has no shell).
        ("payments/api-7d9f4-abcde/api", "auto"),
        ("payments/api-7d9f4-abcde/envoy", "auto"),
        ("payments/api-7d9f4-fghij/api", "auto"),
        ("payments/api-7d9f4-fghij/envoy", "auto"),
        ("payments/api-7d9f4-klmno/api", "auto"),
        ("payments/api-7d9f4-klmno/envoy", "auto"),
        ("payments/worker-5c6b7-aaaaa/worker", "auto"),
        ("payments/worker-5c6b7-bbbbb/worker", "auto"),
        // Its vigil sidecar runs the pinned image as the worker's ids.
        ("payments/worker-5c6b7-sdcar/worker", "sidecar"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(targets(p), expected);
    // The completed migration job is outside the selector; the pending API
    // pod is skipped with a reason, each of its containers listed (the
    // run's coverage counts them), as the policy's own choice.
    let skipped: Vec<(&str, &str)> = p["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["id"].as_str().unwrap(), s["code"].as_str().unwrap()))
        .collect();
    assert_eq!(
        skipped,
        vec![
            ("payments/api-7d9f4-pendg/api", "pod-not-running"),
            ("payments/api-7d9f4-pendg/envoy", "pod-not-running")
        ]
    );
    assert_eq!(p["serviceAccount"], "vigil-payments-plan");
    let worker = &p["targets"][6];
    assert_eq!(worker["runAsUser"], 65532);
    assert!(
        worker["reason"].as_str().unwrap().contains("shell-less"),
        "{worker}"
    );
    assert!(worker["node"].as_str().is_some());
}

#[test]
fn shop_uses_set_based_selectors_sidecars_and_container_filters() {
    let plan = plan_json(&[]);
    let p = policy(&plan, "shop");
    let expected: Vec<(String, String)> = [
        ("monitoring/prometheus-0/prometheus", "auto"),
        ("shop/checkout-5d4c3-ppppp/checkout", "sidecar"),
        ("shop/crashy-1a2b3-ccccc/helper", "auto"),
        ("shop/debugged-3b2a1-nnnnn/app", "auto"),
        ("shop/frontend-6f7d8-q1w2e/nginx", "auto"),
        ("shop/frontend-6f7d8-r3t4y/nginx", "auto"),
        ("shop/frontend-6f7d8-u5i6o/nginx", "auto"),
        ("shop/redis-0/redis", "auto"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    // Not selected: the canary (track Exists), search (env=staging), the
    // sidecar container itself, prometheus' config-reloader (containers filter).
    assert_eq!(targets(p), expected);
    let skipped: BTreeSet<(String, String)> = p["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["id"].as_str().unwrap().to_string(),
                s["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let ids: Vec<&str> = skipped.iter().map(|(i, _)| i.as_str()).collect();
    assert_eq!(
        ids,
        vec![
            "shop/crashy-1a2b3-ccccc/main",
            "shop/debugged-3b2a1-nnnnn/debugger-xyz",
            "shop/frontend-6f7d8-q1w2e/init-assets",
            "shop/frontend-6f7d8-r3t4y/init-assets",
            "shop/frontend-6f7d8-u5i6o/init-assets",
        ]
    );
    assert!(
        skipped
            .iter()
            .any(|(_, r)| r.contains("includeInitContainers"))
    );
    assert_eq!(p["serviceAccount"], "vigil-shop");
}

#[test]
fn including_init_and_not_running_is_opt_in() {
    let dir = TempDir::new("optin");
    let repo = crate::util::repo();
    dir.write(
        "p.yaml",
        "apiVersion: vigil/v1\nkind: ScanPolicy\nmetadata: {name: batch}\nspec:\n  profiles: [container-baseline]\n  targets:\n    - {namespace: batch, includeNotRunning: true}\n    - {namespace: shop, pods: [frontend-6f7d8-q1w2e], includeInitContainers: true}\n",
    );
    let profiles = repo.join("policies/profiles");
    let snapshot = repo.join(SNAPSHOT);
    let run = vigil_in(
        dir.path(),
        &[
            "plan",
            "p.yaml",
            profiles.to_str().unwrap(),
            "--inventory",
            snapshot.to_str().unwrap(),
            "--format",
            "json",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let plan: Value = serde_json::from_str(&run.stdout).unwrap();
    let ids: Vec<String> = targets(&plan["policies"][0])
        .into_iter()
        .map(|(i, _)| i)
        .collect();
    assert_eq!(
        ids,
        vec![
            "batch/report-28911440-abcde/report",
            "batch/report-28911450-fghij/report",
            "batch/report-28911460-klmno/report",
            "shop/frontend-6f7d8-q1w2e/init-assets",
            "shop/frontend-6f7d8-q1w2e/nginx",
        ]
    );
}

#[test]
fn plan_is_deterministic_in_every_format() {
    for format in ["text", "json", "yaml"] {
        let a = vigil(&[
            "plan",
            "policies/",
            "--inventory",
            SNAPSHOT,
            "--format",
            format,
        ]);
        let b = vigil(&[
            "plan",
            "policies/",
            "--inventory",
            SNAPSHOT,
            "--format",
            format,
        ]);
        assert_eq!(a.code, 0, "{}", a.stderr);
        assert_eq!(a.stdout, b.stdout, "{format}");
    }
}

#[test]
fn batches_respect_limits() {
    let plan = plan_json(&["--policy", "shop"]);
    let p = &plan["policies"][0];
    let by_id: std::collections::HashMap<&str, &Value> = p["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["id"].as_str().unwrap(), t))
        .collect();
    let mut all = Vec::new();
    for wave in p["batches"].as_array().unwrap() {
        let wave: Vec<&str> = wave
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert!(wave.len() <= 4, "concurrency 4");
        let nodes: Vec<&str> = wave
            .iter()
            .map(|id| by_id[id]["node"].as_str().unwrap())
            .collect();
        let unique: BTreeSet<&&str> = nodes.iter().collect();
        assert_eq!(unique.len(), nodes.len(), "perNode 1: {wave:?}");
        all.extend(wave);
    }
    all.sort();
    let mut ids: Vec<&str> = by_id.keys().copied().collect();
    ids.sort();
    assert_eq!(all, ids);
}

/// Parse `render rbac` output into typed Kubernetes objects.
fn rendered(policy: &str) -> (Vec<ServiceAccount>, Vec<Role>, Vec<RoleBinding>, String) {
    let run = vigil(&[
        "render",
        "rbac",
        "policies/",
        "--inventory",
        SNAPSHOT,
        "--policy",
        policy,
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let docs: Vec<Value> = serde_saphyr::from_multiple(&run.stdout).unwrap();
    let (mut sa, mut roles, mut rbs) = (vec![], vec![], vec![]);
    for d in docs {
        match d["kind"].as_str().unwrap() {
            "ServiceAccount" => sa.push(serde_json::from_value(d).unwrap()),
            "Role" => roles.push(serde_json::from_value(d).unwrap()),
            "RoleBinding" => rbs.push(serde_json::from_value(d).unwrap()),
            other => panic!("unexpected kind {other}"),
        }
    }
    (sa, roles, rbs, run.stdout)
}

#[test]
fn rendered_rbac_is_exact_and_pinned() {
    for policy in ["payments", "shop"] {
        let (sas, roles, rbs, text) = rendered(policy);
        assert!(!text.contains('*'), "no wildcard anywhere:\n{text}");
        assert_eq!(sas.len(), roles.len());
        assert_eq!(roles.len(), rbs.len());
        for sa in &sas {
            assert_eq!(sa.automount_service_account_token, Some(false));
        }
        for role in &roles {
            for rule in role.rules.as_ref().unwrap() {
                let names = rule
                    .resource_names
                    .as_ref()
                    .expect("every rule pinned by resourceNames");
                assert!(!names.is_empty());
                assert_eq!(rule.api_groups.as_deref(), Some(&[String::new()][..]));
                let res = rule.resources.as_ref().unwrap();
                assert_eq!(res.len(), 1);
                let allowed = [
                    ("pods", "get"),
                    ("pods", "watch"),
                    ("pods/exec", "get"),
                    ("pods/exec", "create"),
                    ("pods/ephemeralcontainers", "patch"),
                    ("pods/log", "get"),
                ];
                for v in &rule.verbs {
                    assert!(
                        allowed.contains(&(res[0].as_str(), v.as_str())),
                        "{res:?} {v}"
                    );
                }
            }
        }
        for rb in &rbs {
            assert_eq!(rb.role_ref.kind, "Role");
            let subject = &rb.subjects.as_ref().unwrap()[0];
            assert_eq!(subject.kind, "ServiceAccount");
            assert_eq!(subject.namespace, rb.metadata.namespace);
        }
    }
}

#[test]
fn payments_rules_match_the_approaches() {
    let (_, roles, _, _) = rendered("payments");
    assert_eq!(roles.len(), 1);
    let rules = roles[0].rules.as_ref().unwrap();
    let summary: Vec<(String, String, Vec<String>)> = rules
        .iter()
        .map(|r| {
            (
                r.resources.as_ref().unwrap()[0].clone(),
                r.verbs.join(","),
                r.resource_names.clone().unwrap(),
            )
        })
        .collect();
    let api = [
        "api-7d9f4-abcde".to_string(),
        "api-7d9f4-fghij".into(),
        "api-7d9f4-klmno".into(),
    ];
    let workers = [
        "worker-5c6b7-aaaaa".to_string(),
        "worker-5c6b7-bbbbb".into(),
    ];
    let all: Vec<String> = api.iter().chain(workers.iter()).cloned().collect();
    let with_sidecar: Vec<String> = api
        .iter()
        .cloned()
        .chain(["worker-5c6b7-sdcar".to_string()])
        .collect();
    assert_eq!(
        summary,
        vec![
            // auto: the api pods may turn out shell-less, so they get the
            // debug rights too; the distroless workers need no exec.
            ("pods".into(), "get,watch".into(), all.clone()),
            (
                "pods/ephemeralcontainers".into(),
                "patch".into(),
                all.clone()
            ),
            // A WebSocket exec is authorized as `get`, and from 1.35 as
            // `create` too.
            // The sidecar worker needs only the exec, into its sidecar:
            // no `get pods` (which would show its spec).
            ("pods/exec".into(), "create,get".into(), with_sidecar),
            ("pods/log".into(), "get".into(), all),
        ]
    );
    // Per-run objects carry the run id and the policy's extra labels.
    let labels = roles[0].metadata.labels.as_ref().unwrap();
    assert_eq!(labels["vigil.dev/run-id"], "plan");
    assert_eq!(labels["team"], "payments");
}

#[test]
fn bad_inventory_is_a_clear_error() {
    let dir = TempDir::new("badinv");
    dir.write("snap.json", "{\"items\": [ {\"metadata\": 3} ]}");
    let repo = crate::util::repo();
    let policies = repo.join("policies");
    let run = vigil_in(
        dir.path(),
        &[
            "plan",
            policies.to_str().unwrap(),
            "--inventory",
            "snap.json",
        ],
    );
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("snap.json is not a pod list"),
        "{}",
        run.stderr
    );
    let run = vigil_in(dir.path(), &["plan", policies.to_str().unwrap()]);
    assert_eq!(run.code, 2, "kubernetes targets without an inventory");
    assert!(run.stderr.contains("--inventory"), "{}", run.stderr);
}

#[test]
fn rendered_sidecar_patch_is_hardened_and_takes_the_policy_settings() {
    let dir = TempDir::new("sidecar");
    let image = format!("registry.example/vigil@sha256:{}", "ab".repeat(32));
    dir.write(
        "p.yaml",
        format!("apiVersion: vigil/v1\nkind: ScanPolicy\nmetadata: {{name: side}}\nspec:\n  profiles: [container-baseline]\n  sidecar: {{container: scanner, image: \"{image}\", resources: {{limits: {{memory: 128Mi}}}}}}\n  targets:\n    - {{namespace: web, approach: sidecar}}\n"),
    );
    let profiles = crate::util::repo().join("policies/profiles");
    let run = vigil_in(
        dir.path(),
        &[
            "render",
            "sidecar",
            "p.yaml",
            profiles.to_str().unwrap(),
            "--run-as-user",
            "101",
            "--workload",
            "deployment/web",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let patch: Value = serde_saphyr::from_str(&run.stdout).unwrap();
    assert_eq!(patch["kind"], "Deployment");
    assert_eq!(patch["metadata"]["name"], "web");
    let spec: k8s_openapi::api::core::v1::PodSpec =
        serde_json::from_value(patch["spec"]["template"]["spec"].clone()).unwrap();
    assert_eq!(spec.share_process_namespace, Some(true));
    let [c] = spec.containers.as_slice() else {
        panic!("one container")
    };
    assert_eq!(c.name, "scanner");
    assert_eq!(c.image.as_deref(), Some(image.as_str()));
    assert_eq!(
        c.command.as_ref().unwrap(),
        &["/usr/local/bin/vigil", "idle"]
    );
    let sc = c.security_context.as_ref().unwrap();
    assert_eq!(sc.run_as_user, Some(101));
    assert_eq!(
        sc.run_as_group,
        Some(101),
        "the gid defaults to the uid's number"
    );
    assert_eq!(sc.run_as_non_root, Some(true));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(
        sc.capabilities.as_ref().unwrap().drop.as_deref(),
        Some(&["ALL".to_string()][..])
    );
    assert_eq!(sc.seccomp_profile.as_ref().unwrap().type_, "RuntimeDefault");
    let res = c.resources.as_ref().unwrap();
    assert_eq!(
        res.limits.as_ref().unwrap()["memory"].0,
        "128Mi",
        "the policy's limit"
    );
    assert_eq!(
        res.limits.as_ref().unwrap()["cpu"].0,
        "500m",
        "a default limit"
    );
    assert!(res.requests.as_ref().unwrap().contains_key("memory"));

    // Bad input names what to fix.
    for (args, want) in [
        (
            vec![
                "render",
                "sidecar",
                "--image",
                "registry.example/vigil:latest",
            ],
            "not pinned by digest",
        ),
        (vec!["render", "sidecar"], "no scanner image"),
        (
            vec![
                "render",
                "sidecar",
                "--image",
                &image,
                "--workload",
                "pod/web",
            ],
            "KIND/NAME",
        ),
    ] {
        let run = vigil_in(dir.path(), &args);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains(want), "{}", run.stderr);
    }
}

#[test]
fn idle_waits_for_sigterm() {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
        .arg("idle")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // It says when its signal handlers are in place.
    let mut line = String::new();
    std::io::BufReader::new(child.stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.contains("waiting"), "{line}");
    assert!(
        child.try_wait().unwrap().is_none(),
        "it waits rather than exiting"
    );
    crate::util::signal(&child, rustix::process::Signal::TERM);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "a clean exit on SIGTERM");
}

/// Split multi-document YAML into JSON values.
fn documents(text: &str) -> Vec<Value> {
    text.split("\n---\n")
        .map(|d| d.trim_start_matches("---\n"))
        .filter(|d| !d.trim().is_empty())
        .map(|d| serde_saphyr::from_str(d).unwrap_or_else(|e| panic!("{e}: {d}")))
        .collect()
}

fn assert_hardened_pod(spec: &k8s_openapi::api::core::v1::PodSpec, image: &str) {
    let psc = spec.security_context.as_ref().unwrap();
    assert_eq!(psc.run_as_non_root, Some(true));
    assert_eq!(psc.run_as_user, Some(10001));
    assert_eq!(
        psc.seccomp_profile.as_ref().unwrap().type_,
        "RuntimeDefault"
    );
    assert_eq!(spec.restart_policy.as_deref(), Some("Never"));
    let [c] = spec.containers.as_slice() else {
        panic!("one container")
    };
    assert_eq!(c.image.as_deref(), Some(image));
    let sc = c.security_context.as_ref().unwrap();
    assert_eq!(sc.run_as_non_root, Some(true));
    assert_eq!(sc.run_as_user, Some(10001));
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(
        sc.capabilities.as_ref().unwrap().drop.as_deref(),
        Some(&["ALL".to_string()][..])
    );
    assert_eq!(sc.seccomp_profile.as_ref().unwrap().type_, "RuntimeDefault");
    let res = c.resources.as_ref().unwrap();
    for key in ["cpu", "memory"] {
        assert!(
            res.requests.as_ref().unwrap().contains_key(key),
            "request {key}"
        );
        assert!(
            res.limits.as_ref().unwrap().contains_key(key),
            "limit {key}"
        );
    }
    let volumes = spec.volumes.as_ref().unwrap();
    let key = volumes.iter().find(|v| v.name == "signing-key").unwrap();
    assert_eq!(key.secret.as_ref().unwrap().default_mode, Some(0o400));
    let mounts = c.volume_mounts.as_ref().unwrap();
    assert_eq!(
        mounts
            .iter()
            .find(|m| m.name == "signing-key")
            .unwrap()
            .read_only,
        Some(true)
    );
    assert_eq!(
        mounts
            .iter()
            .find(|m| m.name == "policy")
            .unwrap()
            .read_only,
        Some(true)
    );
    assert!(volumes.iter().any(|v| {
        v.persistent_volume_claim
            .as_ref()
            .is_some_and(|p| p.claim_name == "vigil-results")
    }));
}

#[test]
fn rendered_cronjob_and_job_are_hardened_field_by_field() {
    let image = format!("registry.example/vigil@sha256:{}", "cd".repeat(32));
    let common = [
        "--namespace",
        "vigil",
        "--image",
        &image,
        "--pvc",
        "vigil-results",
        "--signing-secret",
        "vigil-signing-key",
        "--api-server-cidr",
        "10.0.0.1/32",
    ];
    let mut args = vec![
        "render",
        "cronjob",
        "policies/shop.yaml",
        "policies/profiles/",
    ];
    args.extend_from_slice(&common);
    let run = vigil(&args);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let docs = documents(&run.stdout);
    let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "ServiceAccount",
            "Role",
            "RoleBinding",
            "Role",
            "RoleBinding",
            "CronJob",
            "NetworkPolicy"
        ]
    );
    let cj: k8s_openapi::api::batch::v1::CronJob = serde_json::from_value(docs[5].clone()).unwrap();
    let spec = cj.spec.unwrap();
    assert_eq!(spec.schedule, "30 3 * * 1-5");
    assert_eq!(spec.time_zone.as_deref(), Some("Europe/Berlin"));
    assert_eq!(spec.concurrency_policy.as_deref(), Some("Forbid"));
    assert!(spec.starting_deadline_seconds.is_some());
    let job = spec.job_template.spec.unwrap();
    assert_eq!(job.backoff_limit, Some(0));
    // runDeadline (30m by default), then the grace period (30 s by
    // default) and a minute to clean up and seal; the kubelet waits as long
    // after SIGTERM.
    assert_eq!(job.active_deadline_seconds, Some(1800 + 30 + 60));
    let pod = job.template.spec.as_ref().unwrap();
    assert_eq!(pod.termination_grace_period_seconds, Some(30 + 60));
    // No automounted token: a projected one with an explicit lifetime, at
    // the path in-cluster configuration reads.
    assert_eq!(pod.automount_service_account_token, Some(false));
    let sa: ServiceAccount = serde_json::from_value(docs[0].clone()).unwrap();
    assert_eq!(sa.automount_service_account_token, Some(false));
    let projected = pod
        .volumes
        .as_ref()
        .unwrap()
        .iter()
        .find_map(|v| v.projected.clone())
        .unwrap();
    let token = projected.sources.as_ref().unwrap()[0]
        .service_account_token
        .clone()
        .unwrap();
    assert_eq!(token.expiration_seconds, Some(1800 + 30 + 60));
    let mounts = pod.containers[0].volume_mounts.as_ref().unwrap();
    assert!(mounts.iter().any(
        |m| m.mount_path == "/var/run/secrets/kubernetes.io/serviceaccount"
            && m.read_only == Some(true)
    ));
    assert_hardened_pod(pod, &image);
    // The memory limit follows the scans in flight: shop runs 4 at once
    // (payments, below, 16): a base and one target's facts per scan.
    let memory = |pod: &k8s_openapi::api::core::v1::PodSpec| {
        pod.containers[0]
            .resources
            .as_ref()
            .unwrap()
            .limits
            .as_ref()
            .unwrap()["memory"]
            .0
            .clone()
    };
    assert_eq!(memory(pod), format!("{}Mi", 128 + 4 * 48));
    // shop is provisioned: the runner only requests the provisioned ServiceAccount's token.
    let role: k8s_openapi::api::rbac::v1::Role = serde_json::from_value(docs[1].clone()).unwrap();
    let rules = role.rules.unwrap();
    assert!(rules.iter().all(|r| !r.verbs.contains(&"*".to_string())));
    let token = rules
        .iter()
        .find(|r| r.resources.as_ref().unwrap()[0] == "serviceaccounts/token")
        .unwrap();
    assert_eq!(
        token.resource_names.as_deref(),
        Some(&["vigil-shop".to_string()][..])
    );
    assert!(!rules.iter().any(|r| {
        r.resources
            .as_ref()
            .unwrap()
            .iter()
            .any(|x| x == "pods/exec")
    }));
    let np: k8s_openapi::api::networking::v1::NetworkPolicy =
        serde_json::from_value(docs[6].clone()).unwrap();
    let np = np.spec.unwrap();
    assert_eq!(np.ingress.unwrap_or_default().len(), 0);
    // The Service port and the endpoint port: plugins apply the policy
    // after the Service address is translated.
    let ports: Vec<String> = np.egress.unwrap()[0]
        .ports
        .iter()
        .flatten()
        .map(|p| serde_json::to_string(&p.port).unwrap())
        .collect();
    assert_eq!(ports, ["443", "6443"]);

    // The sharded Job: Indexed, one pod per shard, each given its index.
    let mut args = vec![
        "render",
        "job",
        "policies/payments.yaml",
        "policies/profiles/",
        "--shards",
        "4",
    ];
    args.extend_from_slice(&common[..8]);
    let run = vigil(&args);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let docs = documents(&run.stdout);
    let job_doc = docs.iter().find(|d| d["kind"] == "Job").unwrap();
    let job: k8s_openapi::api::batch::v1::Job = serde_json::from_value(job_doc.clone()).unwrap();
    let spec = job.spec.unwrap();
    assert_eq!(spec.completion_mode.as_deref(), Some("Indexed"));
    assert_eq!((spec.completions, spec.parallelism), (Some(4), Some(4)));
    let pod = spec.template.spec.unwrap();
    assert_hardened_pod(&pod, &image);
    assert_eq!(memory(&pod), format!("{}Mi", 128 + 16 * 48));
    let container_args = pod.containers[0].args.clone().unwrap();
    assert!(
        container_args
            .windows(2)
            .any(|w| w == ["--shard", "$(JOB_COMPLETION_INDEX)/4"]),
        "{container_args:?}"
    );
    // The shards share the results claim: kept on one node (a
    // ReadWriteOnce claim attaches to one), by a required affinity to the
    // Job's own pods; `--spread-shards` (ReadWriteMany) lets them go.
    let term = &job_doc["spec"]["template"]["spec"]["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        [0];
    assert_eq!(term["topologyKey"], "kubernetes.io/hostname", "{term}");
    assert_eq!(
        term["labelSelector"]["matchLabels"]["batch.kubernetes.io/job-name"],
        job_doc["metadata"]["name"]
    );
    args.push("--spread-shards");
    let spread = vigil(&args);
    assert_eq!(spread.code, 0, "{}", spread.stderr);
    let spread_job = documents(&spread.stdout)
        .into_iter()
        .find(|d| d["kind"] == "Job")
        .unwrap();
    assert!(spread_job["spec"]["template"]["spec"]["affinity"].is_null());
    // payments is per-run: the runner may create the per-run objects, and
    // holds the scan verbs it grants (Kubernetes' escalation rule).
    let role: k8s_openapi::api::rbac::v1::Role = serde_json::from_value(docs[1].clone()).unwrap();
    let pairs: Vec<(String, String)> = role
        .rules
        .unwrap()
        .iter()
        .flat_map(|r| {
            r.verbs
                .iter()
                .map(move |v| (r.resources.as_ref().unwrap().join(","), v.clone()))
        })
        .collect();
    for want in [
        ("pods", "list"),
        ("roles,rolebindings", "create"),
        ("serviceaccounts/token", "create"),
        ("pods/exec", "create"),
        ("pods/ephemeralcontainers", "patch"),
    ] {
        assert!(
            pairs.iter().any(|(r, v)| r == want.0 && v == want.1),
            "{want:?} in {pairs:?}"
        );
    }
    // Every right Kubernetes can pin by name is pinned to the access
    // objects of the four shard slots; only create, list and the scan verbs
    // (on pods not known when this is rendered) are not.
    assert!(container_args.iter().any(|a| a == "--stable-names"));
    let role: k8s_openapi::api::rbac::v1::Role = serde_json::from_value(docs[1].clone()).unwrap();
    let accounts: Vec<String> = (0..4).map(|i| format!("vigil-payments-s{i}")).collect();
    let anchors: Vec<String> = accounts.iter().map(|a| format!("{a}-anchor")).collect();
    for r in role.rules.unwrap() {
        let res = r.resources.clone().unwrap().join(",");
        let names = r.resource_names.clone();
        for v in &r.verbs {
            match (res.as_str(), v.as_str()) {
                ("secrets", "delete") => assert_eq!(names.as_ref(), Some(&anchors), "{r:?}"),
                ("serviceaccounts", "delete")
                | ("roles,rolebindings", "delete")
                | ("serviceaccounts/token", "create") => {
                    assert_eq!(names.as_ref(), Some(&accounts), "{r:?}")
                }
                (_, "create") | ("pods", "list") => {}
                (res, _) if res.starts_with("pods/") || res == "pods" => {}
                other => panic!("an unpinned right the runner should not hold: {other:?}"),
            }
        }
    }

    // Bad input names what to fix.
    let run = vigil(&[
        "render",
        "cronjob",
        "policies/shop.yaml",
        "policies/profiles/",
        "--namespace",
        "vigil",
        "--image",
        "vigil:latest",
        "--pvc",
        "r",
        "--signing-secret",
        "k",
    ]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("pinned by digest"), "{}", run.stderr);
}

/// A workload's `vigil.dev/approach` annotation is obeyed only when the
/// policy says `allowPodOverride: true`; otherwise the plan says it was
/// ignored. `evidence: probe` makes `auto` use the debug approach for an
/// image with a shell, and refuses an explicit `api`.
#[test]
fn pod_overrides_and_evidence_floors_are_the_policys_choice() {
    let dir = TempDir::new("override");
    let snapshot = crate::util::repo().join(SNAPSHOT);
    let profiles = crate::util::repo().join("policies/profiles");
    let plan_of = |extra: &str, approach: &str| {
        dir.write(
            "p.yaml",
            format!("apiVersion: vigil/v1\nkind: ScanPolicy\nmetadata: {{name: ov}}\nspec:\n  profiles: [container-baseline]\n  debug: {{image: \"registry.example/vigil@sha256:{}\"}}\n  targets:\n    - {{namespace: shop, pods: [search-77aa1-mmmmm], approach: {approach}}}\n{extra}", "a".repeat(64)),
        );
        vigil_in(
            dir.path(),
            &[
                "plan",
                "p.yaml",
                profiles.to_str().unwrap(),
                "--inventory",
                snapshot.to_str().unwrap(),
                "--format",
                "json",
            ],
        )
    };
    let target = |run: &crate::util::Run| -> (String, String) {
        assert_eq!(run.code, 0, "{}", run.stderr);
        let plan: Value = serde_json::from_str(&run.stdout).unwrap();
        let t = &plan["policies"][0]["targets"][0];
        (
            t["approach"].as_str().unwrap().into(),
            t["reason"].as_str().unwrap().into(),
        )
    };
    // Default: the annotation asks for debug and is not obeyed.
    let (approach, reason) = target(&plan_of("", "auto"));
    assert_eq!(approach, "auto");
    assert!(
        reason.contains("vigil.dev/approach=debug ignored (spec.allowPodOverride is false)"),
        "{reason}"
    );
    // Allowed: obeyed.
    let (approach, reason) = target(&plan_of("  allowPodOverride: true\n", "auto"));
    assert_eq!(approach, "debug");
    assert!(
        reason.starts_with("pod annotation vigil.dev/approach=debug"),
        "{reason}"
    );
    // The plan says what admission will judge on the debug patch: the
    // whole pod (this one sets no security context at all).
    assert!(
        reason.contains(
            "the pod breaks Pod Security restricted (allowPrivilegeEscalation, runAsNonRoot, seccompProfile_restricted, capabilities_restricted): in a namespace that enforces it, its debug scan is refused"
        ),
        "{reason}"
    );
    // evidence: probe — auto goes to debug although the image has a shell.
    let (approach, reason) = target(&plan_of("  evidence: probe\n", "auto"));
    assert_eq!(approach, "debug");
    assert!(reason.contains("probe evidence"), "{reason}");
    // …and an explicit api is refused where it is written.
    let run = plan_of("  evidence: probe\n", "api");
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("error[evidence-too-weak]") && run.stderr.contains("p.yaml:8:63"),
        "{}",
        run.stderr
    );
}

/// Regression (architecture issue, bug 2): two rootfs targets that resolve
/// to the same id — two directories both named `debian`, or one `name:`
/// used twice — once lost one target silently. Now: `duplicate-target`,
/// exit 2, with both positions.
#[test]
fn duplicate_target_ids_are_an_error_not_a_lost_target() {
    let dir = TempDir::new("duptarget");
    std::fs::create_dir_all(dir.path().join("a/debian")).unwrap();
    std::fs::create_dir_all(dir.path().join("b/debian")).unwrap();
    let profiles = crate::util::repo().join("policies/profiles");
    for (targets, line) in [
        ("    - {rootfs: a/debian}\n    - {rootfs: b/debian}\n", 7),
        (
            "    - {rootfs: a/debian, name: x}\n    - {rootfs: b/debian, name: x}\n",
            7,
        ),
    ] {
        dir.write(
            "p.yaml",
            format!("apiVersion: vigil/v1\nkind: ScanPolicy\nmetadata: {{name: dup}}\nspec:\n  profiles: [container-baseline]\n  targets:\n{targets}"),
        );
        // `validate` reports it as `plan` does (it is knowable offline).
        let validate = vigil_in(
            dir.path(),
            &["validate", "p.yaml", profiles.to_str().unwrap()],
        );
        assert_ne!(validate.code, 0, "{}", validate.stderr);
        assert!(
            format!("{}{}", validate.stdout, validate.stderr).contains("duplicate-target"),
            "validate: {}{}",
            validate.stdout,
            validate.stderr
        );
        let run = vigil_in(dir.path(), &["plan", "p.yaml", profiles.to_str().unwrap()]);
        assert_eq!(run.code, 2, "{}", run.stderr);
        assert!(
            run.stderr.contains("error[duplicate-target]"),
            "{}",
            run.stderr
        );
        assert!(
            run.stderr.contains(&format!("p.yaml:{}:", line + 1)),
            "{}",
            run.stderr
        );
        assert!(
            run.stderr.contains(&format!("at line {line}")),
            "{}",
            run.stderr
        );
    }
}

/// Every object `vigil render` prints passes the Kubernetes schema check
/// (PyPI `kubernetes-validate`, strict: no unknown fields) for 1.30 and for
/// the newest version it knows.
#[test]
fn rendered_objects_pass_the_kubernetes_schemas() {
    // As a module: no console-script shim needed (pyenv adds those only
    // after a rehash).
    let validate = || {
        let mut c = Command::new("python3");
        c.args(["-m", "kubernetes_validate"]);
        c
    };
    let present = validate()
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !crate::util::prerequisite(present, "kubernetes-validate (PyPI)") {
        return;
    }
    let dir = TempDir::new("k8s-validate");
    let image = format!("registry.example/vigil@sha256:{}", "2".repeat(64));
    let common = [
        "--namespace",
        "vigil",
        "--image",
        image.as_str(),
        "--pvc",
        "r",
        "--signing-secret",
        "s",
        "--api-server-cidr",
        "10.0.0.1/32",
    ];
    let renders: Vec<Vec<&str>> = vec![
        [
            &[
                "render",
                "cronjob",
                "policies/shop.yaml",
                "policies/profiles/",
            ][..],
            &common[..],
        ]
        .concat(),
        [
            &[
                "render",
                "job",
                "policies/payments.yaml",
                "policies/profiles/",
                "--shards",
                "3",
            ][..],
            &common[..],
        ]
        .concat(),
        vec!["render", "rbac", "policies/", "--inventory", SNAPSHOT],
        vec!["render", "admission-policy", "policies/payments.yaml"],
        vec![
            "render",
            "networkpolicy",
            "--namespace",
            "vigil",
            "--api-server-cidr",
            "10.0.0.1/32",
        ],
    ];
    for (i, args) in renders.iter().enumerate() {
        let run = vigil(args);
        assert_eq!(run.code, 0, "{args:?}: {}", run.stderr);
        let file = dir.write(&format!("r{i}.yaml"), &run.stdout);
        for version in [Some("1.30.0"), None] {
            let mut cmd = validate();
            cmd.arg("--strict");
            if let Some(v) = version {
                cmd.args(["-k", v]);
            }
            let out = cmd.arg(&file).output().unwrap();
            let text = String::from_utf8_lossy(&out.stdout).to_string()
                + &String::from_utf8_lossy(&out.stderr);
            assert!(
                out.status.success(),
                "{args:?} against {version:?}:\n{text}"
            );
            assert!(text.contains("passed"), "{text}");
        }
    }
}

/// The plan says what access a run needs as it is: none for local-only
/// policies; a ServiceAccount it creates (per-run) or uses (provisioned).
/// `render sidecar` reads only the policy's scanner settings: it runs as
/// its help shows, without the profiles.
#[test]
fn plan_wording_and_render_sidecar_without_profiles() {
    let run = vigil(&["plan", "policies/demo.yaml", "policies/profiles/"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let first = run.stdout.lines().next().unwrap();
    assert!(
        first.ends_with("local targets only: no Kubernetes access"),
        "{first}"
    );
    assert!(!run.stdout.contains("ServiceAccount") && !run.stdout.contains("token TTL"));
    let run = vigil(&["plan", "policies/", "--inventory", SNAPSHOT]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains(
            "policy payments: 9 target(s), creates ServiceAccount vigil-payments-plan for the run"
        ),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("policy shop: 8 target(s), uses the pre-applied ServiceAccount vigil-shop"),
        "{}",
        run.stdout
    );
    // As in `vigil render sidecar --help`.
    let run = vigil(&[
        "render",
        "sidecar",
        "policies/shop.yaml",
        "--run-as-user",
        "101",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains("shareProcessNamespace: true"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("registry.example/vigil@sha256:1111"),
        "falls back to spec.debug.image"
    );
}

/// The standalone test API server runs as its docs say: `--help` says what
/// a fixtures directory holds, a wrong one is exit 2 (no panic), and the
/// shipped `fixtures/cluster` serves a live inventory that `vigil plan`
/// reads.
#[test]
fn the_standalone_test_api_server_runs_as_documented() {
    use std::io::BufRead;
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_vigil"))
        .parent()
        .unwrap()
        .join("examples/fake-apiserver");
    assert!(bin.is_file(), "cargo test builds the examples: {bin:?}");
    let help = Command::new(&bin).arg("--help").output().unwrap();
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("pods.json (or snapshot.json)"));
    let bad = Command::new(&bin)
        .args(["--fixtures", "/nonexistent"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("neither pods.json nor snapshot.json"));
    let mut server = Command::new(&bin)
        .args(["--fixtures", "fixtures/cluster"])
        .current_dir(crate::util::repo())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(server.stdout.take().unwrap()).lines();
    let _listening = lines.next().unwrap().unwrap();
    let kubeconfig = lines.next().unwrap().unwrap();
    let kubeconfig = kubeconfig
        .strip_prefix("export KUBECONFIG=")
        .unwrap()
        .to_string();
    let plan = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["plan", "policies/payments.yaml", "policies/profiles/"])
        .current_dir(crate::util::repo())
        .env("KUBECONFIG", &kubeconfig)
        .output()
        .unwrap();
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(
        plan.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&plan.stderr)
    );
    assert!(String::from_utf8_lossy(&plan.stdout).contains("policy payments: 9 target(s)"));
}

/// The rendered audit policy ends with a catch-all: a request no rule
/// matches is not audited (`DefaultAuditLevel` is `None` in the API
/// server's policy checker), so installing vigil's rules alone would switch
/// off auditing of everything else. `--as-rules` prints only vigil's rules,
/// to merge ahead of an existing policy's.
#[test]
fn the_audit_policy_keeps_everything_else_audited() {
    let dir = TempDir::new("audit-policy");
    let policy = vigil_in(dir.path(), &["render", "audit-policy"]);
    assert_eq!(policy.code, 0, "{}", policy.stderr);
    let policy: Value = serde_saphyr::from_str(&policy.stdout).unwrap();
    assert_eq!(policy["apiVersion"], "audit.k8s.io/v1");
    let rules = policy["rules"].as_array().unwrap();
    assert_eq!(
        rules.last().unwrap(),
        &serde_json::json!({"level": "Metadata"}),
        "a catch-all last"
    );
    // The standard noise first (health probes, lease renewals), then
    // tokens: the first matching rule wins, and TokenRequest's response
    // carries the token.
    assert_eq!(rules[0]["level"], "None");
    assert_eq!(rules[1]["level"], "None");
    assert_eq!(rules[2]["level"], "Metadata");
    assert_eq!(
        rules[2]["resources"][0]["resources"][0],
        "serviceaccounts/token"
    );
    // Ephemeral containers at Request: the patch (the image added) is
    // logged, the pod it answers with (environment values) is not.
    assert_eq!(rules[3]["level"], "Request");
    assert!(!policy.to_string().contains("RequestResponse"));
    let merged = vigil_in(dir.path(), &["render", "audit-policy", "--as-rules"]);
    assert_eq!(merged.code, 0, "{}", merged.stderr);
    let only: Value = serde_saphyr::from_str(&merged.stdout).unwrap();
    assert_eq!(only.as_array().unwrap()[..], rules[2..rules.len() - 1]);
}

/// One run talks to one cluster: targets that name two kubeconfig
/// contexts are refused (exit 2) with the way out, snapshot or not.
#[test]
fn targets_in_two_contexts_are_refused() {
    let dir = TempDir::new("contexts");
    let policy = dir.write(
        "p.yaml",
        "apiVersion: vigil/v1\nkind: ScanPolicy\nmetadata: {name: two}\nspec:\n  profiles: [container-baseline]\n  targets:\n    - {namespace: payments, cluster: prod-eu, approach: api}\n    - {namespace: payments, cluster: prod-us, approach: api}\n",
    );
    let profiles = crate::util::repo().join("policies/profiles");
    let snapshot = crate::util::repo().join(SNAPSHOT);
    let run = vigil(&[
        "plan",
        policy.to_str().unwrap(),
        profiles.to_str().unwrap(),
        "--inventory",
        snapshot.to_str().unwrap(),
    ]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("different kubeconfig contexts") && run.stderr.contains("--policy"),
        "{}",
        run.stderr
    );
}

/// `render admission-policy` admits only pinned images, and says what is
/// missing when it has none.
#[test]
fn admission_policy_needs_pinned_scanner_images() {
    let run = vigil(&[
        "render",
        "admission-policy",
        "--image",
        "registry.example/vigil:latest",
    ]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("not pinned by digest"),
        "{}",
        run.stderr
    );
    let run = vigil(&["render", "admission-policy", "policies/demo.yaml"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("no scanner image to admit"),
        "{}",
        run.stderr
    );
    let image = format!("registry.example/vigil@sha256:{}", "3".repeat(64));
    let run = vigil(&[
        "render",
        "admission-policy",
        "policies/payments.yaml",
        "--image",
        &image,
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains(&format!("'{image}'")), "{}", run.stdout);
    assert!(
        run.stdout
            .contains("kind: ValidatingAdmissionPolicyBinding")
    );
}

/// The cluster fixture is what its generator writes: edits go through
/// `scripts/gen-snapshot.py`, so the two never drift apart.
#[test]
fn the_cluster_fixture_is_its_generators_output() {
    let out = Command::new("python3")
        .arg(crate::util::repo().join("scripts/gen-snapshot.py"))
        .output();
    let Ok(out) = out else {
        crate::util::prerequisite(false, "python3");
        return;
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let fixture = std::fs::read(crate::util::repo().join(SNAPSHOT)).unwrap();
    assert!(
        out.stdout == fixture,
        "fixtures/cluster/snapshot.json differs from scripts/gen-snapshot.py's output: regenerate it with `python3 scripts/gen-snapshot.py > fixtures/cluster/snapshot.json`"
    );
}

/// Windows pods are skipped with a reason, never sent a POSIX gatherer:
/// `spec.os.name`, the node selector, or a required node affinity that
/// only allows Windows nodes.
#[test]
fn windows_pods_are_skipped_with_a_reason() {
    let dir = TempDir::new("windows");
    let pod = |name: &str, spec: Value| -> Value {
        let mut spec = spec;
        spec["containers"] =
            serde_json::json!([{"name": "app", "image": "registry.example/app:1"}]);
        serde_json::json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "w", "uid": name},
            "spec": spec,
            "status": {"phase": "Running", "containerStatuses": [{"name": "app", "ready": true, "restartCount": 0, "image": "x", "imageID": "", "state": {"running": {}}}]}})
    };
    let windows_only = serde_json::json!({"nodeSelectorTerms": [{"matchExpressions": [{"key": "kubernetes.io/os", "operator": "In", "values": ["windows"]}]}]});
    let either = serde_json::json!({"nodeSelectorTerms": [{"matchExpressions": [{"key": "kubernetes.io/os", "operator": "In", "values": ["windows", "linux"]}]}]});
    let inventory = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": [
        pod("by-os", serde_json::json!({"os": {"name": "windows"}})),
        pod("by-selector", serde_json::json!({"nodeSelector": {"kubernetes.io/os": "windows"}})),
        pod("by-affinity", serde_json::json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": windows_only}}})),
        pod("linux", serde_json::json!({"os": {"name": "linux"}, "ephemeralContainers": [{"name": "vigil-0123456789ab", "image": "registry.example/vigil@sha256:1111111111111111111111111111111111111111111111111111111111111111"}, {"name": "debugger", "image": "busybox"}]})),
        pod("either", serde_json::json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": either}}})),
    ]});
    dir.write("inventory.json", inventory.to_string());
    dir.write(
        "p.yaml",
        "apiVersion: vigil/v1\nkind: ScanPolicy\nmetadata: {name: w}\nspec:\n  profiles: [container-baseline]\n  targets: [{namespace: w, approach: api}]\n",
    );
    let profiles = crate::util::repo().join("policies/profiles");
    // The plan of p.yaml over inventory.json, as JSON.
    let plan_of = || -> Value {
        let run = vigil_in(
            dir.path(),
            &[
                "plan",
                "p.yaml",
                profiles.to_str().unwrap(),
                "--inventory",
                "inventory.json",
                "--format",
                "json",
            ],
        );
        assert_eq!(run.code, 0, "{}", run.stderr);
        serde_json::from_str(&run.stdout).unwrap()
    };
    let plan = plan_of();
    let p = &plan["policies"][0];
    let planned: Vec<&str> = p["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(planned, ["w/either/app", "w/linux/app"]);
    let skipped: Vec<(&str, &str)> = p["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["id"].as_str().unwrap(), s["reason"].as_str().unwrap()))
        .collect();
    // vigil's own earlier probes are not listed; another ephemeral
    // container is, as such.
    assert!(skipped.contains(&(
        "w/linux/debugger",
        "ephemeral container (set includeEphemeralContainers to scan it)"
    )));
    let skipped: Vec<(&str, &str)> = skipped
        .into_iter()
        .filter(|(id, _)| *id != "w/linux/debugger")
        .collect();
    assert_eq!(skipped.len(), 3, "{skipped:?}");
    for (id, reason) in skipped {
        assert!(
            ["w/by-os/app", "w/by-selector/app", "w/by-affinity/app"].contains(&id),
            "{id}"
        );
        assert!(reason.starts_with("Windows pod"), "{reason}");
    }

    // The same pods for the debug approach: their ids are unknown (no
    // status.user, no runAsUser), so the plan says the scan will fail.
    dir.write(
        "p.yaml",
        "apiVersion: vigil/v1\nkind: ScanPolicy\nmetadata: {name: w}\nspec:\n  profiles: [container-baseline]\n  debug: {image: \"registry.example/vigil@sha256:1111111111111111111111111111111111111111111111111111111111111111\"}\n  targets: [{namespace: w, approach: debug}]\n",
    );
    let plan = plan_of();
    let targets = plan["policies"][0]["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 2);
    for t in targets {
        let reason = t["reason"].as_str().unwrap();
        assert!(
            reason.contains("its debug scan will fail") && reason.contains("runAsGroup"),
            "{reason}"
        );
        // Earlier scans' containers stay in the pod: counted (vigil's only).
        assert_eq!(
            reason.contains("already carries 1 vigil ephemeral container"),
            t["id"] == "w/linux/app",
            "{reason}"
        );
    }
}

/// A runner that verifies scanner images against their registry must be
/// let through to it: rendering its NetworkPolicy without the registry is
/// refused, and with `--registry-cidr` the policy has the egress rule. A
/// saved signature is checked offline and needs none.
#[test]
fn the_network_policy_lets_a_verifying_runner_reach_its_registry() {
    let dir = TempDir::new("np-registry");
    std::fs::copy(
        crate::util::repo().join("fixtures/cosign/key.pub"),
        dir.path().join("key.pub"),
    )
    .unwrap();
    let policy = |verify: &str| {
        dir.write(
            "p.yaml",
            format!("apiVersion: vigil/v1\nkind: ScanPolicy\nmetadata: {{name: v}}\nspec:\n  profiles: [container-baseline]\n  schedule: \"0 2 * * *\"\n  targets: [{{namespace: a, approach: debug}}]\n  debug: {{image: \"registry.example/vigil@sha256:{}\", verify: {verify}}}\n", "1".repeat(64)),
        )
    };
    let profiles = crate::util::repo().join("policies/profiles");
    let image = format!("registry.example/vigil@sha256:{}", "1".repeat(64));
    let render = |extra: &[&str]| {
        let mut args = vec![
            "render",
            "cronjob",
            "p.yaml",
            profiles.to_str().unwrap(),
            "--namespace",
            "vigil",
            "--image",
            &image,
            "--pvc",
            "results",
            "--signing-secret",
            "key",
            "--api-server-cidr",
            "10.0.0.1/32",
        ];
        args.extend_from_slice(extra);
        vigil_in(dir.path(), &args)
    };
    policy("{key: key.pub}");
    let refused = render(&[]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("--registry-cidr"),
        "{}",
        refused.stderr
    );
    let ok = render(&["--registry-cidr", "192.0.2.0/24"]);
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    let np = serde_saphyr::from_multiple::<Value>(&ok.stdout)
        .unwrap()
        .into_iter()
        .find(|d| d["kind"] == "NetworkPolicy")
        .unwrap();
    let egress = np["spec"]["egress"].as_array().unwrap();
    assert_eq!(egress.len(), 3, "{egress:?}");
    assert_eq!(egress[2]["to"][0]["ipBlock"]["cidr"], "192.0.2.0/24");
    assert_eq!(egress[2]["ports"][0]["port"], 443);
    let bad = render(&["--registry-cidr", "registry.example"]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    // Offline verification (a saved signature) reaches no registry.
    std::fs::copy(
        crate::util::repo().join("fixtures/cosign/sig.json"),
        dir.path().join("sig.json"),
    )
    .unwrap();
    policy("{key: key.pub, signature: sig.json}");
    let offline = render(&[]);
    assert_eq!(offline.code, 0, "{}", offline.stderr);
}

/// Rendering a per-run policy's standing objects says what they are: the
/// runner's standing scan rights (a warning), and hand-applied run objects
/// that expire for `vigil gc`. A provisioned policy's objects do not expire.
#[test]
fn per_run_renders_say_their_rights_are_standing_and_expire() {
    let run = vigil(&[
        "render",
        "rbac",
        "policies/payments.yaml",
        "policies/shop.yaml",
        "policies/profiles/",
        "--inventory",
        SNAPSHOT,
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("standing rights"), "{}", run.stderr);
    for doc in serde_saphyr::from_multiple::<Value>(&run.stdout).unwrap() {
        let expires = &doc["metadata"]["annotations"]["vigil.dev/expires-at"];
        let policy = doc["metadata"]["labels"]["vigil.dev/policy"]
            .as_str()
            .unwrap_or_default();
        match policy {
            "payments" => assert!(
                chrono::DateTime::parse_from_rfc3339(expires.as_str().unwrap()).is_ok(),
                "{doc}"
            ),
            _ => assert!(expires.is_null(), "{doc}"),
        }
    }
    let image = format!("registry.example/vigil@sha256:{}", "1".repeat(64));
    let run = vigil(&[
        "render",
        "cronjob",
        "policies/payments.yaml",
        "policies/profiles/",
        "--namespace",
        "vigil",
        "--image",
        &image,
        "--pvc",
        "results",
        "--signing-secret",
        "key",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains("policy payments is per-run")
            && run.stderr.contains("every pod of payments"),
        "{}",
        run.stderr
    );
}
