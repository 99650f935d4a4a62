# The vigil scanner image: one static binary on an empty base, no shell,
# running as 65532. Ephemeral debug containers run `vigil probe
# --container-id ID` as their target's uid and gid,
# scanner sidecars run `vigil idle` and are exec'd into with `vigil probe
# --container-id ID`; in-cluster runs use the same binary.
#
#   docker pull rust:1.89-bookworm
#   BUILDER=$(docker inspect --format '{{index .RepoDigests 0}}' rust:1.89-bookworm)
#   docker build --build-arg BUILDER="$BUILDER" -t registry.example/vigil:0.1.0 .
#   docker push registry.example/vigil:0.1.0
#   docker inspect --format '{{index .RepoDigests 0}}' registry.example/vigil:0.1.0
#
# For clusters with arm64 nodes, build both architectures into one image
# index and pin the index's digest (a node pulls its own platform's image
# through it; cosign signs the index digest, which `verify-image` checks,
# and the kubelet reports it as the container's imageID). BUILDER must then
# be the builder's index digest (the RepoDigests entry above is), and each
# platform builds natively under emulation (QEMU, `docker run --privileged
# --rm tonistiigi/binfmt --install arm64`):
#
#   docker buildx build --platform linux/amd64,linux/arm64 --build-arg BUILDER="$BUILDER" \
#     -t registry.example/vigil:0.1.0 --push .
#   docker buildx imagetools inspect registry.example/vigil:0.1.0 --format '{{json .Manifest.Digest}}'
#
# Every base image is pinned by digest: the final stage is `scratch`, and
# the builder is the BUILDER build argument, which has no default and must
# be NAME@sha256:<64 hex> (the build stops otherwise) — the digest you
# tested with, recorded by your pipeline, never a tag that can move.
# Policies reference the resulting image by its digest (spec.debug.image,
# spec.sidecar.image): `vigil validate` refuses tags.
# scripts/check-static-image.sh builds the same binary without Docker and
# runs it from an empty root as uid 65532.

ARG BUILDER
FROM ${BUILDER} AS build
ARG BUILDER
RUN case "${BUILDER}" in \
      *@sha256:????????????????????????????????????????????????????????????????) ;; \
      *) echo "BUILDER must be an image pinned by digest (NAME@sha256:<64 hex>), got '${BUILDER}'" >&2; exit 1 ;; \
    esac
WORKDIR /src
COPY . .
# A static glibc build: no loader or libraries needed at run time. The probe
# and the sidecar resolve no host names; in-cluster runs reach the API
# server by the address Kubernetes gives them.
# The platform being built (BuildKit sets TARGETARCH; the classic builder
# does not, and then the builder's own architecture is the target).
ARG TARGETARCH
ENV RUSTFLAGS="-C target-feature=+crt-static" \
    CARGO_PROFILE_RELEASE_DEBUG=0
RUN arch="${TARGETARCH:-$(dpkg --print-architecture)}" \
 && case "$arch" in \
      amd64) triple=x86_64-unknown-linux-gnu ;; \
      arm64) triple=aarch64-unknown-linux-gnu ;; \
      *) echo "unsupported architecture: $arch (amd64 and arm64 are)" >&2; exit 1 ;; \
    esac \
 && cargo build --release --locked --target "$triple" \
 && cp "target/$triple/release/vigil" /vigil \
 && strip /vigil

FROM scratch
COPY --from=build /vigil /usr/local/bin/vigil
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/vigil", "probe"]
