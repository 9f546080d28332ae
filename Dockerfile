# syntax=docker/dockerfile:1
# Two images from one build (BuildKit: the cache mounts below need it), as `make docker-build`
# runs it:
#   DOCKER_BUILDKIT=1 docker build --target command-service -t users/command-service:TAG .
#   DOCKER_BUILDKIT=1 docker build --target query-service   -t users/query-service:TAG .

FROM rust:1.95-bookworm AS builder
# rdkafka builds the bundled librdkafka with its configure script, make and a C/C++ compiler.
# Debian's versions are left to the base image's release: a pinned one disappears from the
# archive at its next security update and breaks the build.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends libssl-dev zlib1g-dev make g++ pkg-config \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# The whole context (less .dockerignore's): every workspace member's manifest must be there for
# cargo to load the workspace, including members the images do not contain, and a member
# added later must not break the build. `make deploy-check` replays this stage's copies.
COPY . .
# target/ lives in a cache mount, so the binaries are copied out in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p command-service -p query-service \
 && mkdir /out \
 && cp target/release/command-service target/release/query-service /out/

FROM debian:bookworm-slim AS runtime
# libssl3: librdkafka's TLS and SASL/SCRAM (rdkafka's `ssl` feature) link OpenSSL.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 zlib1g \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid app --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin app
# Numeric, so Kubernetes' runAsNonRoot can verify it.
USER 10001:10001

FROM runtime AS command-service
COPY --from=builder /out/command-service /usr/local/bin/command-service
ENV GRPC_ADDR=0.0.0.0:50051 \
    HTTP_ADDR=0.0.0.0:8081
EXPOSE 50051 8081
ENTRYPOINT ["/usr/local/bin/command-service"]

FROM runtime AS query-service
COPY --from=builder /out/query-service /usr/local/bin/query-service
ENV GRPC_ADDR=0.0.0.0:50052 \
    HTTP_ADDR=0.0.0.0:8082
EXPOSE 50052 8082
ENTRYPOINT ["/usr/local/bin/query-service"]
