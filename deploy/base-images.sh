#!/usr/bin/env bash
# The two base images the Dockerfile builds FROM, made locally when they cannot be pulled (an
# air-gapped host, or one that cannot reach Docker Hub). On a connected machine nothing here is
# needed: `docker build` pulls the official images.
#
#   deploy/base-images.sh            make whichever of the two is missing
#
# - debian:bookworm-slim           Debian 12 "minbase" from Debian's own mirror (debootstrap),
#                                  imported as an image: the runtime stage's base.
# - rust:<version>-slim-bookworm   the same root file system plus gcc, libc6-dev and
#                                  ca-certificates, with this machine's Rust toolchain (the one
#                                  `rustc` runs, which must be <version>) copied in, and this
#                                  machine's CA bundle, so that cargo inside a build reaches
#                                  crates.io through the same TLS interception the host does.
#                                  Laid out as the official image is (CARGO_HOME=/usr/local/cargo,
#                                  on PATH), so the Dockerfile builds with it unchanged.
#
# Needs root (debootstrap, chroot) and Debian's package mirror. Environment: DEBIAN_MIRROR
# (default http://deb.debian.org/debian), DOCKER (default: docker; use Debian's own client,
# /usr/bin/docker, when a newer client is on PATH), KEEP_ROOTFS=1 to keep the work folder.
set -euo pipefail
cd "$(dirname "$0")/.."

DOCKER=${DOCKER:-docker}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
# The toolchain the Dockerfile names (its `FROM rust:...`), read from the Dockerfile itself.
RUST_IMAGE=$(sed -n 's/^ARG BUILDER_IMAGE=//p' Dockerfile)
RUNTIME_IMAGE=$(sed -n 's/^ARG RUNTIME_IMAGE=//p' Dockerfile)
RUST_VERSION=$(echo "$RUST_IMAGE" | sed -n 's/^rust:\([0-9.]*\)-.*/\1/p')
[[ -n $RUST_VERSION && -n $RUNTIME_IMAGE ]] || {
    echo "base-images: cannot read BUILDER_IMAGE/RUNTIME_IMAGE from the Dockerfile" >&2
    exit 1
}

have() { "$DOCKER" image inspect "$1" >/dev/null 2>&1; }
# A pull that cannot reach its registry fails within this long instead of hanging.
PULL_TIMEOUT_S=60
pulled() { timeout "$PULL_TIMEOUT_S" "$DOCKER" pull -q "$1" >/dev/null 2>&1; }

if have "$RUNTIME_IMAGE" && have "$RUST_IMAGE"; then
    echo "base-images: $RUNTIME_IMAGE and $RUST_IMAGE present"
    exit 0
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/payrelay-base.XXXXXX")
cleanup() { [[ ${KEEP_ROOTFS:-0} == 1 ]] || rm -rf "$WORK"; }
trap cleanup EXIT

rootfs=$WORK/rootfs
make_rootfs() {
    [[ -d $rootfs/usr ]] && return
    command -v debootstrap >/dev/null || apt-get install -y -qq debootstrap >/dev/null
    echo "base-images: debootstrap bookworm (minbase) from $MIRROR"
    debootstrap --variant=minbase bookworm "$rootfs" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 || {
        tail -n 20 "$WORK/debootstrap.log" >&2
        exit 1
    }
    # As the official slim image: no package lists, no caches.
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin
}

import() { # import DIR IMAGE [--change ...]
    local dir=$1 image=$2
    shift 2
    tar -C "$dir" --numeric-owner -c . | "$DOCKER" import "$@" - "$image" >/dev/null
    echo "base-images: made $image ($("$DOCKER" image inspect -f '{{.Size}}' "$image") bytes)"
}

if ! have "$RUNTIME_IMAGE" && ! pulled "$RUNTIME_IMAGE"; then
    make_rootfs
    import "$rootfs" "$RUNTIME_IMAGE" --change 'CMD ["bash"]'
fi

if ! have "$RUST_IMAGE" && ! pulled "$RUST_IMAGE"; then
    sysroot=$(rustc --print sysroot)
    found=$(rustc --version | awk '{print $2}')
    if [[ $found != "$RUST_VERSION" ]]; then
        echo "base-images: the Dockerfile wants Rust $RUST_VERSION, this machine has $found" >&2
        exit 1
    fi
    make_rootfs
    builder=$WORK/builder
    cp -a "$rootfs" "$builder"
    cp /etc/resolv.conf "$builder/etc/resolv.conf"
    echo "base-images: gcc, libc6-dev, ca-certificates into the builder"
    chroot "$builder" sh -c 'apt-get update -qq && apt-get install -y -qq --no-install-recommends gcc libc6-dev ca-certificates' \
        >"$WORK/apt.log" 2>&1 || {
        tail -n 20 "$WORK/apt.log" >&2
        exit 1
    }
    rm -rf "$builder"/var/lib/apt/lists/* "$builder"/var/cache/apt/*.bin
    # The host's bundle: it holds whatever CA the host's network needs to reach crates.io.
    cp /etc/ssl/certs/ca-certificates.crt "$builder/etc/ssl/certs/ca-certificates.crt"
    # The toolchain without its documentation and sources (what a build needs: bin, lib,
    # libexec), where the official image keeps it.
    mkdir -p "$builder/usr/local/rustup/toolchain" "$builder/usr/local/cargo/bin"
    for part in bin lib libexec etc; do
        [[ -d $sysroot/$part ]] && cp -a "$sysroot/$part" "$builder/usr/local/rustup/toolchain/"
    done
    rm -rf "$builder/usr/local/rustup/toolchain/lib/rustlib/src"
    for tool in cargo rustc rustdoc; do
        ln -s "../../rustup/toolchain/bin/$tool" "$builder/usr/local/cargo/bin/$tool"
    done
    import "$builder" "$RUST_IMAGE" \
        --change 'ENV CARGO_HOME=/usr/local/cargo' \
        --change 'ENV PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change "ENV RUST_VERSION=$RUST_VERSION" \
        --change 'CMD ["bash"]'
fi
