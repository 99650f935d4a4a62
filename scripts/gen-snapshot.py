#!/usr/bin/env python3
"""Generate fixtures/cluster/snapshot.json: a small, hand-shaped cluster in the
format of `kubectl get pods -A -o json`. Deterministic; re-run to regenerate."""
import hashlib, json, sys

NODES = ["node-a", "node-b", "node-c"]
pods = []

def pod(ns, name, labels, containers, phase="Running", node=None, init=(), ephemeral=(),
        share=False, annotations=None, run_as=None, not_running=(), container_security=None):
    spec = {"containers": [{"name": c, "image": img} | ({"securityContext": container_security[c]}
                                                       if container_security and c in container_security else {})
                           for c, img in containers],
            "nodeName": node or NODES[len(pods) % len(NODES)]}
    if init:
        spec["initContainers"] = [{"name": c, "image": img} for c, img in init]
    if ephemeral:
        spec["ephemeralContainers"] = [{"name": c, "image": img} for c, img in ephemeral]
    if share:
        spec["shareProcessNamespace"] = True
    if run_as is not None:
        spec["securityContext"] = {"runAsUser": run_as, "runAsGroup": run_as, "runAsNonRoot": run_as != 0}
    images = dict(containers) | dict(init) | dict(ephemeral)
    uid = run_as or 0
    def status(c, running, ids=True):
        state = {"running": {"startedAt": "2026-11-20T10:00:00Z"}} if running else \
                {"terminated": {"exitCode": 0, "reason": "Completed"}}
        # The kubelet's imageID: the digest the runtime pulled, known here
        # only for images pinned by digest.
        image_id = images[c] if "@sha256:" in images[c] else ""
        s = {"name": c, "image": "x", "imageID": image_id, "ready": running, "restartCount": 0, "state": state}
        if running and ids:
            s["containerID"] = "containerd://" + hashlib.sha256(f"{ns}/{name}/{c}".encode()).hexdigest()
            s["user"] = {"linux": {"uid": uid, "gid": uid, "supplementalGroups": [uid]}}
        return s
    running = phase == "Running"
    st = {"phase": phase,
          "containerStatuses": [status(c, running and c not in not_running) for c, _ in containers]}
    if init:
        st["initContainerStatuses"] = [status(c, False) for c, _ in init]
    if ephemeral:
        st["ephemeralContainerStatuses"] = [status(c, running, ids=False) for c, _ in ephemeral]
    meta = {"name": name, "namespace": ns, "labels": labels, "uid": f"uid-{ns}-{name}"}
    if annotations:
        meta["annotations"] = annotations
    pods.append({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec, "status": st})

D = "@sha256:" + "1" * 64
# payments: api (app + envoy), workers on distroless, a completed job, a pending pod
for i, h in enumerate(["7d9f4-abcde", "7d9f4-fghij", "7d9f4-klmno"]):
    pod("payments", f"api-{h}", {"app": "api", "tier": "backend", "env": "prod"},
        [("api", "registry.example/payments/api:1.4.2"), ("envoy", "envoyproxy/envoy:v1.31.0")],
        run_as=10001)
for h in ["5c6b7-aaaaa", "5c6b7-bbbbb"]:
    pod("payments", f"worker-{h}", {"app": "worker", "tier": "backend", "env": "prod"},
        [("worker", "gcr.io/distroless/static-debian12" + D)], run_as=65532)
pod("payments", "migrate-28911450-x7k2p", {"app": "migrate", "job-name": "migrate"},
    [("migrate", "registry.example/payments/migrate:1.4.2")], phase="Succeeded")
pod("payments", "api-7d9f4-pendg", {"app": "api", "tier": "backend", "env": "prod"},
    [("api", "registry.example/payments/api:1.4.2"), ("envoy", "envoyproxy/envoy:v1.31.0")], phase="Pending")
# shop: web frontends incl. a canary, redis, a pod with a vigil sidecar
for h in ["6f7d8-q1w2e", "6f7d8-r3t4y", "6f7d8-u5i6o"]:
    pod("shop", f"frontend-{h}", {"app": "frontend", "tier": "web", "env": "prod"},
        [("nginx", "nginx:1.27-alpine")], init=[("init-assets", "busybox:1.36")])
pod("shop", "frontend-canary-9a8b7-zzzzz", {"app": "frontend", "tier": "web", "env": "prod", "track": "canary"},
    [("nginx", "nginx:1.27-alpine")])
pod("shop", "redis-0", {"app": "redis", "tier": "cache", "env": "prod"}, [("redis", "redis:7.4-alpine")], run_as=999)
pod("shop", "checkout-5d4c3-ppppp", {"app": "checkout", "tier": "backend", "env": "prod"},
    [("checkout", "registry.example/shop/checkout:2.0.1"), ("vigil-scanner", "registry.example/vigil" + D)],
    share=True)
pod("shop", "search-77aa1-mmmmm", {"app": "search", "tier": "backend", "env": "staging"},
    [("search", "registry.example/shop/search:0.9.0")], annotations={"vigil.dev/approach": "debug"})
pod("shop", "debugged-3b2a1-nnnnn", {"app": "debugged", "tier": "backend", "env": "prod"},
    [("app", "registry.example/shop/app:1.0.0")], ephemeral=[("debugger-xyz", "busybox:1.36")])
pod("shop", "crashy-1a2b3-ccccc", {"app": "crashy", "tier": "backend", "env": "prod"},
    [("main", "registry.example/shop/crashy:0.1.0"), ("helper", "registry.example/shop/helper:0.1.0")],
    not_running=("main",))
# monitoring: prometheus with an init container and a config reloader
pod("monitoring", "prometheus-0", {"app.kubernetes.io/name": "prometheus", "env": "prod"},
    [("prometheus", "quay.io/prometheus/prometheus:v2.54.1"), ("config-reloader", "quay.io/prometheus-operator/prometheus-config-reloader:v0.77.1")],
    init=[("init-config", "quay.io/prometheus-operator/prometheus-config-reloader:v0.77.1")], run_as=65534)
pod("monitoring", "node-exporter-abcde", {"app.kubernetes.io/name": "node-exporter", "env": "prod"},
    [("node-exporter", "quay.io/prometheus/node-exporter:v1.8.2")], node="node-a")
pod("monitoring", "node-exporter-fghij", {"app.kubernetes.io/name": "node-exporter", "env": "prod"},
    [("node-exporter", "quay.io/prometheus/node-exporter:v1.8.2")], node="node-b")
# kube-system
for h in ["5d78c9869d-aaaaa", "5d78c9869d-bbbbb"]:
    pod("kube-system", f"coredns-{h}", {"k8s-app": "kube-dns"}, [("coredns", "registry.k8s.io/coredns/coredns:v1.11.3")])
# batch: finished and failed cron job pods
pod("batch", "report-28911440-abcde", {"app": "report", "job-name": "report-28911440"},
    [("report", "registry.example/batch/report:3.1.0")], phase="Succeeded")
pod("batch", "report-28911450-fghij", {"app": "report", "job-name": "report-28911450"},
    [("report", "registry.example/batch/report:3.1.0")], phase="Failed")
pod("batch", "report-28911460-klmno", {"app": "report", "job-name": "report-28911460"},
    [("report", "registry.example/batch/report:3.1.0")])

# (Last, so the nodes of the pods above stay as they were.)
# A worker that carries the vigil sidecar, as `vigil render sidecar
# --run-as-user 65532` adds it: the same ids as the worker, every capability
# dropped, the pinned scanner image.
pod("payments", "worker-5c6b7-sdcar", {"app": "worker", "tier": "backend", "env": "prod"},
    [("worker", "gcr.io/distroless/static-debian12" + D), ("vigil-scanner", "registry.example/vigil" + D)],
    run_as=65532, share=True,
    container_security={"vigil-scanner": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                                          "readOnlyRootFilesystem": True, "runAsNonRoot": True,
                                          "runAsUser": 65532, "runAsGroup": 65532,
                                          "seccompProfile": {"type": "RuntimeDefault"}}})

json.dump({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""}, "items": pods},
          sys.stdout, indent=1, sort_keys=True)
sys.stdout.write("\n")
