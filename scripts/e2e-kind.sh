#!/usr/bin/env bash
# Run vigil's end-to-end tests against a real, disposable Kubernetes cluster
# (kind), then delete it. Needs Docker, kind, kubectl and cargo.
#
#   scripts/e2e-kind.sh                 # the newest kindest/node this kind knows
#   scripts/e2e-kind.sh v1.34.0         # a given Kubernetes version
#   scripts/e2e-kind.sh kindest/node:v1.34.0@sha256:…   # a node image pinned by digest
#   KEEP=1 scripts/e2e-kind.sh          # keep the cluster afterwards
#
# What it sets up: a local registry (the scanner image must be pinned by
# digest), the scanner image built from ./Dockerfile and pushed there, and
# namespace vigil-e2e with an alpine pod, a debian pod, a distroless pod
# (no shell: the debug approach) and a pod with a shared process namespace
# and vigil's sidecar. Then `cargo test --test integration e2e` runs the
# e2e tests (tests/e2e.rs) against it: api, debug, sidecar and auto scans,
# provisioned mode, cleanup and gc.
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
kind create cluster --name "$name" "${image_args[@]}" --wait 120s
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
kubectl -n vigil-e2e wait --for=condition=Ready pod --all --timeout=180s

VIGIL_E2E_KUBECONFIG="$kubeconfig" VIGIL_E2E_SCANNER="$scanner" \
  cargo test --test integration e2e -- --include-ignored --nocapture
