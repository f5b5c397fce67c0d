# payrelay image for the contest: a release build for linux/amd64 (any x86-64), run as a fixed
# non-root user on Debian 12 slim. Build and push (the contest pulls public images only):
#
#   DOCKER_BUILDKIT=1 docker build --platform linux/amd64 -t <registry>/<owner>/payrelay:<version> .
#   docker push <registry>/<owner>/payrelay:<version>
#
# then write that reference into docker-compose.yml's `image:`. See README.md, "Deployment".
# On a host that cannot pull the two base images, deploy/base-images.sh makes them locally
# under the same names; build with `--network host` there so cargo reaches crates.io. No
# `# syntax=` line: it would make BuildKit pull a frontend image; its built-in one reads
# `RUN --mount` as it is.

# The base images, by name (deploy/base-images.sh reads these two lines).
ARG BUILDER_IMAGE=rust:1.95.0-slim-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

# --- build -------------------------------------------------------------------------------
# The project's toolchain (Rust 1.95 stable) on the same Debian release as the runtime stage,
# so the binary links against the glibc it will run with.
FROM --platform=linux/amd64 ${BUILDER_IMAGE} AS build

# No target CPU level: the binary runs on any x86-64, and it is the code the tests and the lab
# run. The crates with SIMD paths (httparse, memchr under serde_json, crc32fast) choose them at
# run time. Never `native`: a build host with AVX-512 would emit instructions the contest's AMD
# EPYC 7R32 does not have, and the binary would die with SIGILL there.
ENV CARGO_TERM_COLOR=never

WORKDIR /src
# The workspace manifests and every path the root manifest names (benches/*.rs, the lab
# member) must exist for cargo to load the workspace; only payrelay's own build is compiled.
COPY Cargo.toml Cargo.lock rustfmt.toml build.rs ./
COPY src ./src
COPY benches ./benches
# The commit `payrelay --version` and `payrelay_build_info` name: there is no .git here
# (.dockerignore), so pass it, e.g. `--build-arg PAYRELAY_GIT_COMMIT=$(git rev-parse --short=12
# HEAD)`; build.rs says "unknown" without it.
ARG PAYRELAY_GIT_COMMIT=unknown
# The release profile in Cargo.toml: lto = "fat", codegen-units = 1, panic = "abort".
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p payrelay --bin payrelay \
    && install -D -m 0755 target/release/payrelay /out/payrelay

# --- runtime -----------------------------------------------------------------------------
FROM --platform=linux/amd64 ${RUNTIME_IMAGE} AS runtime

# One fixed UID/GID in every container of the deployment: SO_REUSEPORT only groups sockets
# bound by the same effective user, so both instances must run as this user to share 9999.
ARG PAYRELAY_UID=10001
RUN groupadd --system --gid "${PAYRELAY_UID}" payrelay \
    && useradd --system --uid "${PAYRELAY_UID}" --gid payrelay --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin payrelay

COPY --from=build /out/payrelay /usr/local/bin/payrelay
# The journals' mount point, owned by the payrelay user: a new named volume mounted here takes
# this ownership, so each instance can make its folder in it (JOURNAL_DIR=/journal/<name>).
RUN mkdir /journal && chown "${PAYRELAY_UID}:${PAYRELAY_UID}" /journal

USER ${PAYRELAY_UID}:${PAYRELAY_UID}
EXPOSE 9999
# SIGTERM makes payrelay stop accepting and drain (DRAIN_DEADLINE_MS); compose's
# stop_grace_period is set above that deadline.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/payrelay"]
