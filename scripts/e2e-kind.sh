#!/usr/bin/env bash
# Run vigil's end-to-end tests against a real, disposable Kubernetes cluster
# (kind), then delete it. Needs Docker, kind, kubectl and cargo.
#
#   scripts/e2e-kind.sh                 # the newest kindest/node this kind knows
#   scripts/e2e-kind.sh v1.34.0         # a given Kubernetes version
#   scripts/e2e-kind.sh kindest/node:v1.34.0@sha256:…   # a node image pinned by digest
#   KEEP=1 scripts/e2e-kind.sh          # keep the cluster afterwards
#
# What it sets up: a cluster whose API server writes an audit log (vigil's
# own audit policy, kind's auditing guide), a local registry (the scanner
# image must be pinned by digest), the scanner image built from
# ./Dockerfile and pushed there; namespace vigil-e2e with an alpine pod, a
# debian pod, a distroless pod (no shell: the debug approach), a pod with a
# shared process namespace and vigil's sidecar, a root debian pod and a
# root pod with a root sidecar; namespace vigil-e2e-pss enforcing Pod
# Security baseline with one pod that meets restricted and one created
# privileged before the label; namespace vigil with a results claim and a
# signing key for the in-cluster runner. Then `cargo test --test
# integration e2e` runs the e2e tests (tests/e2e.rs) against it: every
# approach with real control results, root targets, ciphertext-only logs,
# the run's token pinned to planned pods (403) and dead after cleanup
# (401), Pod Security refusals predicted by the plan, a run under the
# admission policy, audit-check on the real audit log, the sharded Job and
# the CronJob in the cluster under their NetworkPolicy, provisioned mode,
# SIGINT, and gc.
set -euo pipefail
cd "$(dirname "$0")/.."

version="${1:-}"
name="vigil-e2e"
registry="vigil-e2e-registry"
port="${REGISTRY_PORT:-5001}"

for tool in docker kind kubectl cargo; do
  command -v "$tool" >/dev/null 2>&1 || { echo "e2e: $tool is required" >&2; exit 2; }
done

cleanup() {
  if [ -z "${KEEP:-}" ]; then
    kind delete cluster --name "$name" >/dev/null 2>&1 || true
    docker rm -f "$registry" >/dev/null 2>&1 || true
  fi
  if [ -n "${work:-}" ]; then rm -rf "$work"; fi
}
trap cleanup EXIT

# A registry the nodes reach as localhost:$port (kind's documented recipe).
if ! docker inspect "$registry" >/dev/null 2>&1; then
  docker run -d --restart=always -p "127.0.0.1:${port}:5000" --name "$registry" registry:2 >/dev/null
fi
# Node images from kind v0.27 on point containerd at /etc/containerd/certs.d
# (`config_path`), which refuses the old `registry.mirrors` patch: the
# registry is declared the way kind's local-registry guide does it now, one
# hosts.toml per node.
image_args=()
if [ -n "$version" ]; then
  case "$version" in
    kindest/*) image_args=(--image "$version") ;;
    *) image_args=(--image "kindest/node:${version}") ;;
  esac
fi
# vigil itself, for the audit policy and the signing key below.
cargo build --locked
vigil="$PWD/target/debug/vigil"
work="$(mktemp -d)"
"$vigil" render audit-policy >"$work/audit-policy.yaml"
# The API server's audit log, as kind's auditing guide sets it up.
cat >"$work/kind.yaml" <<YAML
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
- role: control-plane
  kubeadmConfigPatches:
  - |
    kind: ClusterConfiguration
    apiServer:
      extraArgs:
        audit-log-path: /var/log/kubernetes/kube-apiserver-audit.log
        audit-policy-file: /etc/kubernetes/policies/audit-policy.yaml
      extraVolumes:
        - name: audit-policies
          hostPath: /etc/kubernetes/policies
          mountPath: /etc/kubernetes/policies
          readOnly: true
          pathType: DirectoryOrCreate
        - name: audit-logs
          hostPath: /var/log/kubernetes
          mountPath: /var/log/kubernetes
          readOnly: false
          pathType: DirectoryOrCreate
  extraMounts:
  - hostPath: ${work}/audit-policy.yaml
    containerPath: /etc/kubernetes/policies/audit-policy.yaml
    readOnly: true
YAML
kind create cluster --name "$name" --config "$work/kind.yaml" "${image_args[@]}" --wait 120s
registry_dir="/etc/containerd/certs.d/localhost:${port}"
for node in $(kind get nodes --name "$name"); do
  docker exec "$node" mkdir -p "$registry_dir"
  printf '[host."http://%s:5000"]\n' "$registry" | docker exec -i "$node" cp /dev/stdin "$registry_dir/hosts.toml"
done
docker network connect kind "$registry" 2>/dev/null || true
kubeconfig="$(mktemp)"
kind get kubeconfig --name "$name" >"$kubeconfig"
export KUBECONFIG="$kubeconfig"

# The scanner image, pinned by the digest the registry gives it.
# The builder pinned by the digest pulled now (the Dockerfile refuses tags).
docker pull -q rust:1.89-bookworm >/dev/null
builder="$(docker inspect --format '{{index .RepoDigests 0}}' rust:1.89-bookworm)"
docker build --build-arg BUILDER="${builder}" -t "localhost:${port}/vigil:e2e" .
docker push "localhost:${port}/vigil:e2e" >/dev/null
scanner="$(docker inspect --format '{{index .RepoDigests 0}}' "localhost:${port}/vigil:e2e")"

kubectl create namespace vigil-e2e
kubectl -n vigil-e2e run web --image=alpine:3.20 --labels=run=web -- sleep 3600
kubectl -n vigil-e2e run deb --image=debian:12-slim --labels=run=web -- sleep 3600
kubectl -n vigil-e2e run static --image=registry.k8s.io/pause:3.10 --labels=run=static \
  --overrides='{"spec":{"securityContext":{"runAsUser":65535,"runAsGroup":65535}}}'
kubectl -n vigil-e2e apply -f - <<YAML
apiVersion: v1
kind: Pod
metadata: {name: shared, labels: {run: shared}}
spec:
  shareProcessNamespace: true
  securityContext: {runAsUser: 65532, runAsGroup: 65532}
  containers:
  - {name: app, image: "alpine:3.20", command: [sleep, "3600"]}
  - name: vigil-scanner
    image: "${scanner}"
    command: [/usr/local/bin/vigil, idle]
    securityContext: {runAsUser: 65532, runAsGroup: 65532, allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}
YAML
kubectl -n vigil-e2e run rootdeb --image=debian:12-slim --labels=run=root -- sleep 3600
# A root target a capability-free root sidecar can read: it drops ALL too.
kubectl -n vigil-e2e apply -f - <<YAML
apiVersion: v1
kind: Pod
metadata: {name: rootshared, labels: {run: root}}
spec:
  shareProcessNamespace: true
  containers:
  - name: app
    image: "alpine:3.20"
    command: [sleep, "3600"]
    securityContext: {runAsUser: 0, runAsGroup: 0, capabilities: {drop: [ALL]}}
  - name: vigil-scanner
    image: "${scanner}"
    command: [/usr/local/bin/vigil, idle]
    securityContext: {runAsUser: 0, runAsGroup: 0, allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}
YAML
kubectl -n vigil-e2e wait --for=condition=Ready pod --all --timeout=180s

# Pod Security: one pod that meets restricted, one privileged pod created
# before the namespace enforces baseline (admission then judges the whole
# pod on every ephemeral-container patch and refuses it).
kubectl create namespace vigil-e2e-pss
kubectl -n vigil-e2e-pss apply -f - <<YAML
apiVersion: v1
kind: Pod
metadata: {name: ok}
spec:
  securityContext: {runAsNonRoot: true, runAsUser: 65535, runAsGroup: 65535, seccompProfile: {type: RuntimeDefault}}
  containers:
  - name: ok
    image: registry.k8s.io/pause:3.10
    securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}
---
apiVersion: v1
kind: Pod
metadata: {name: priv}
spec:
  securityContext: {runAsUser: 65535, runAsGroup: 65535}
  containers:
  - name: priv
    image: registry.k8s.io/pause:3.10
    securityContext: {privileged: true}
YAML
kubectl -n vigil-e2e-pss wait --for=condition=Ready pod --all --timeout=180s
kubectl label namespace vigil-e2e-pss pod-security.kubernetes.io/enforce=baseline --overwrite

# The in-cluster runner's namespace: a results claim (kind's default
# StorageClass, ReadWriteOnce) and a signing key.
kubectl create namespace vigil
kubectl -n vigil apply -f - <<YAML
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: vigil-results}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
YAML
"$vigil" keygen signing --out "$work/signer"
kubectl -n vigil create secret generic vigil-signing-key --from-file=signing.key.pem="$work/signer.key.pem"
# The API server's endpoint address (not the Service's ClusterIP: most CNIs
# apply policies after the Service address is translated).
api_ip="$(kubectl get endpointslices -n default -l kubernetes.io/service-name=kubernetes -o jsonpath='{.items[0].endpoints[0].addresses[0]}')"

VIGIL_E2E_KUBECONFIG="$kubeconfig" VIGIL_E2E_SCANNER="$scanner" \
  VIGIL_E2E_NODE="${name}-control-plane" VIGIL_E2E_API_CIDR="${api_ip}/32" \
  cargo test --locked --test integration e2e -- --include-ignored --nocapture --test-threads 1
