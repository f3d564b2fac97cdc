#!/usr/bin/env bash
# Builds the `weir` image (tags weir:dev and weir:latest, or only $WEIR_IMAGE) without any image
# registry: the same runtime stage as the root Dockerfile, with
#  - the base `weir-base:bookworm`: `debootstrap --variant=minbase bookworm`
#    imported with `docker import` (made once; the rootfs tarball is kept in
#    ${WEIR_CACHE:-$HOME/.cache/weir} so a machine whose images were wiped
#    only re-imports it), and
#  - a host-built binary: $WEIR_BIN_RELEASE if set (any build of weir-cli,
#    e.g. the debug one the test suite already built), else this script runs
#    `cargo build --release -p weir-cli`.
# The runtime image is FROM scratch: the binary, the libraries ldd lists,
# CA certificates and passwd entries (docker/assemble-rootfs.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

cache="${WEIR_CACHE:-$HOME/.cache/weir}"
image="${WEIR_IMAGE:-weir:dev}"
base=weir-base:bookworm
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

if ! docker image inspect "$base" >/dev/null 2>&1; then
  tarball="$cache/weir-base-bookworm.tar"
  if [ ! -s "$tarball" ]; then
    if ! command -v debootstrap >/dev/null; then
      if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "== installing debootstrap"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
      else
        echo "debootstrap is missing: install it (sudo apt-get install debootstrap) and run again"
        exit 1
      fi
    fi
    echo "== debootstrap --variant=minbase bookworm (once; cached in $tarball)"
    mkdir -p "$cache"
    root="$(mktemp -d "$cache/rootfs.XXXXXX")"
    trap 'rm -rf "$root"' EXIT
    debootstrap --variant=minbase --include=ca-certificates bookworm "$root" "$mirror" >"$cache/debootstrap.log" 2>&1 \
      || { tail -20 "$cache/debootstrap.log"; exit 1; }
    # Only a build stage: apt's lists and caches are not needed in it.
    rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb
    tar -C "$root" -cf "$tarball.tmp" .
    mv "$tarball.tmp" "$tarball"
    rm -rf "$root"
    trap - EXIT
  fi
  echo "== docker import $base"
  docker import "$tarball" "$base" >/dev/null
fi

bin="${WEIR_BIN_RELEASE:-}"
if [ -z "$bin" ]; then
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$cache/target}"
  echo "== cargo build --release -p weir-cli"
  cargo build --release -p weir-cli
  bin="$CARGO_TARGET_DIR/release/weir"
fi
[ -x "$bin" ] || { echo "no weir binary at $bin"; exit 1; }

context="$(mktemp -d)"
trap 'rm -rf "$context"' EXIT
# Debug information is not needed to run (symbols stay, for backtraces).
strip --strip-debug -o "$context/weir" "$bin" 2>/dev/null || cp "$bin" "$context/weir"
cp docker/assemble-rootfs.sh "$context/"
echo "== docker build $image (binary: $bin)"
old="$(docker image inspect -f '{{.Id}}' "$image" 2>/dev/null || true)"
docker build -q -f docker/runtime.Dockerfile -t "$image" "$context" >/dev/null
new="$(docker image inspect -f '{{.Id}}' "$image")"
# The one image is called `weir` (ARCHITECTURE.md): the default build is
# also `weir:latest`, so `docker run weir` works as with `docker build -t weir .`.
if [ -z "${WEIR_IMAGE:-}" ]; then
  docker tag "$image" weir:latest
fi
# The image this build replaced: remove it, or every run leaves one behind.
if [ -n "$old" ] && [ "$old" != "$new" ]; then
  docker image rm "$old" >/dev/null 2>&1 || true
fi
# The rootfs stage's image of an earlier build, now untagged.
docker image prune -f --filter label=dev.weir.stage=rootfs >/dev/null
docker image ls weir --format '{{.Repository}}:{{.Tag}} {{.ID}} {{.Size}}'
