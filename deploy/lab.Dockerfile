# The lab (rinha-lab) as an image, for the Docker path of .ci/run (deploy/docker-e2e.sh): each
# emulated payment processor runs in a container of its own, as the contest runs the real ones
# (`rinha-lab processor --name default|fallback`, port 8080 inside). Built from the repository
# root with the same base images as the Dockerfile:
#
#   DOCKER_BUILDKIT=1 docker build -f deploy/lab.Dockerfile -t rinha-lab:local .
ARG BUILDER_IMAGE=rust:1.95.0-slim-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM --platform=linux/amd64 ${BUILDER_IMAGE} AS build
ENV CARGO_TERM_COLOR=never
WORKDIR /src
COPY Cargo.toml Cargo.lock rustfmt.toml ./
COPY src ./src
COPY benches ./benches
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p rinha-lab --bin rinha-lab \
    && install -D -m 0755 target/release/rinha-lab /out/rinha-lab

FROM --platform=linux/amd64 ${RUNTIME_IMAGE}
COPY --from=build /out/rinha-lab /usr/local/bin/rinha-lab
EXPOSE 8080
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/rinha-lab"]
