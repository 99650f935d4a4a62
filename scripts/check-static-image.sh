#!/bin/sh
# Build vigil the way the Dockerfile does (static, no debug info), put it
# alone into an empty root like the image's `scratch` base, and run the
# probe from there as uid 65532 against a constructed proc tree whose PID 1
# root is the distroless fixture. Needs root (chroot). Takes a few minutes;
# VIGIL_STATIC_TARGET_DIR keeps the build between runs.
set -eu
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# This machine's architecture, as the Dockerfile builds for each platform.
triple="$(uname -m)-unknown-linux-gnu"
RUSTFLAGS="-C target-feature=+crt-static" CARGO_PROFILE_RELEASE_DEBUG=0 \
  cargo build --release --locked --target "$triple" \
  --manifest-path "$repo/Cargo.toml" --target-dir "${VIGIL_STATIC_TARGET_DIR:-$work/target}"
bin="$work/vigil"
cp "${VIGIL_STATIC_TARGET_DIR:-$work/target}/$triple/release/vigil" "$bin"
strip "$bin"
# A static binary names no shared library.
if ldd "$bin" 2>&1 | grep -q '=>'; then echo "not a static binary" >&2; exit 1; fi
root="$work/root"
mkdir -p "$root/usr/local/bin" "$root/proc-fake/1"
cp "$bin" "$root/usr/local/bin/vigil"
cp -a "$repo/fixtures/rootfs/distroless" "$root/target-root"
ln -s /target-root "$root/proc-fake/1/root"
printf 'Name:\tapp\nUid:\t65532\t65532\t65532\t65532\n' > "$root/proc-fake/1/status"
printf 'app\0' > "$root/proc-fake/1/cmdline"
out=$(chroot --userspec=65532:65532 "$root" /usr/local/bin/vigil probe --pid 1 --proc /proc-fake \
  --request-json '{"nonce":"n1","max_file_bytes":4096,"stat":["/etc/passwd"],"read":["/etc/os-release"],"read_dirs":["/var/lib/dpkg/status.d"],"walks":[],"processes":true,"commands":[]}')
echo "$out" | head -c 300; echo
echo "$out" | grep -q '^VIGIL-END n1 ' || { echo "no frame from the probe" >&2; exit 1; }
echo "size: $(du -h "$bin" | cut -f1); the probe ran from an empty root as 65532"
