#!/usr/bin/env bash
# Make vigil's release artifacts: the binary, SHA256SUMS, and a detached
# Ed25519 signature of SHA256SUMS (SHA256SUMS.sig, raw 64 bytes, as
# `openssl pkeyutl -sign -rawin` writes it).
#
#   scripts/release.sh KEY.pem OUT_DIR [BINARY]
#
# KEY.pem is the project's release signing key (PKCS#8 Ed25519, as `vigil
# keygen signing` writes); its public half is published with the project.
# BINARY defaults to a fresh static release build. Users verify with
# openssl alone (docs/ci.md):
#
#   openssl pkeyutl -verify -pubin -inkey vigil-release.pub.pem -rawin \
#       -in SHA256SUMS -sigfile SHA256SUMS.sig
#   sha256sum -c SHA256SUMS
set -euo pipefail

if [[ $# -lt 2 || $# -gt 3 ]]; then
    echo "usage: scripts/release.sh KEY.pem OUT_DIR [BINARY]" >&2
    exit 2
fi
key=$1
out=$2
binary=${3:-}
command -v openssl >/dev/null || { echo "release: openssl is needed" >&2; exit 2; }
[[ -f $key ]] || { echo "release: no signing key at $key" >&2; exit 2; }
if [[ -e $out ]] && [[ -n $(ls -A "$out") ]]; then
    echo "release: $out is not empty; release artifacts are never overwritten" >&2
    exit 2
fi

repo=$(cd "$(dirname "$0")/.." && pwd)
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$repo/Cargo.toml" | head -n 1)
# This machine's architecture (x86_64 or aarch64).
arch=$(uname -m)
if [[ -z $binary ]]; then
    (cd "$repo" && RUSTFLAGS="-C target-feature=+crt-static" CARGO_PROFILE_RELEASE_DEBUG=0 \
        cargo build --release --locked --target "$arch-unknown-linux-gnu")
    binary="$repo/target/$arch-unknown-linux-gnu/release/vigil"
    # A release build carries symbols, not debug info (Cargo.toml's release
    # profile): over 40 MiB means the profile lost its strip.
    size=$(stat -c %s "$binary")
    if (( size > 40 * 1024 * 1024 )); then
        echo "release: $binary is $((size / 1024 / 1024)) MiB, over the 40 MiB a release may be (is debug info stripped?)" >&2
        exit 2
    fi
fi
[[ -f $binary ]] || { echo "release: no binary at $binary" >&2; exit 2; }

mkdir -p "$out"
name="vigil-$version-$arch-linux"
install -m 0755 "$binary" "$out/$name"
(cd "$out" && sha256sum "$name" > SHA256SUMS)
openssl pkeyutl -sign -inkey "$key" -rawin -in "$out/SHA256SUMS" -out "$out/SHA256SUMS.sig"
openssl pkey -in "$key" -pubout -out "$out/vigil-release.pub.pem"
# Check what was made, as a user would.
openssl pkeyutl -verify -pubin -inkey "$out/vigil-release.pub.pem" -rawin \
    -in "$out/SHA256SUMS" -sigfile "$out/SHA256SUMS.sig" >/dev/null
(cd "$out" && sha256sum --quiet -c SHA256SUMS)
echo "release: $out/$name, SHA256SUMS and SHA256SUMS.sig (verified)"
