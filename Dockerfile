# syntax=docker/dockerfile:1
#
# The `cobro` image: one binary, every service. Which service a container runs is chosen by its
# arguments (`cobro serve payments`, `cobro migrate payments`), so one image serves every
# Deployment and every migration Job of charts/cobro.
#
#   docker build -t cobro:dev .
#   docker run --rm cobro:dev services
#
# Stages: chef (toolchain + cargo-chef) -> planner (dependency recipe) -> builder (dependencies
# cooked in their own layer, then the workspace) -> runtime (debian slim, non-root).
#
# The builder and the runtime are both Debian bookworm, so the binary links against the same
# glibc and zlib it was built with (ldd: libz, libgcc_s, libm, libc).
#
# The runtime works with a read-only root filesystem: the binary writes nothing to disk (logs go
# to stderr, metrics are served over HTTP). /tmp is the only writable path a pod needs, and the
# chart mounts an emptyDir there.

ARG RUST_IMAGE=rust:1-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

# --- toolchain ------------------------------------------------------------------------------
FROM ${RUST_IMAGE} AS chef
ARG CARGO_CHEF_VERSION=0.1.78
# protoc (+ the well-known .proto files) for proto/build.rs; cmake, pkg-config and zlib headers
# for librdkafka, which rdkafka-sys builds from source with libz.
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        protobuf-compiler libprotobuf-dev cmake pkg-config zlib1g-dev libssl-dev \
    && rm -rf /var/lib/apt/lists/*
RUN cargo install cargo-chef --locked --version "${CARGO_CHEF_VERSION}"
WORKDIR /src

# --- dependency recipe: changes only when manifests or Cargo.lock change ----------------------
FROM chef AS planner
COPY . .
RUN cargo chef prepare --bin cobro --recipe-path recipe.json

# --- build ----------------------------------------------------------------------------------
FROM chef AS builder
COPY --from=planner /src/recipe.json recipe.json
# Dependencies only: this layer is reused until the recipe changes.
RUN cargo chef cook --release --locked -p cobro --recipe-path recipe.json
COPY . .
RUN cargo build --release --locked -p cobro \
    && install -D -m 0755 target/release/cobro /out/cobro \
    && /out/cobro services

# --- runtime --------------------------------------------------------------------------------
FROM ${RUNTIME_IMAGE} AS runtime
# ca-certificates: TLS to processors, SMTP and managed databases; zlib1g: librdkafka's libz.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates zlib1g libssl3 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 cobro \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin cobro

COPY --from=builder /out/cobro /usr/local/bin/cobro
# default.toml and production.toml (dev.toml comes along but is only read with COBRO_ENV=dev).
COPY config/ /etc/cobro/

# Configuration: /etc/cobro/default.toml, then /etc/cobro/$COBRO_ENV.toml, then COBRO__* env.
# Secrets (database URLs, keys) are never baked in: they come from the environment.
ENV COBRO_CONFIG_DIR=/etc/cobro \
    COBRO_ENV=production

USER 10001:10001
WORKDIR /tmp
# gRPC services 50051-50056, gateway HTTP 8080, Prometheus /metrics 9464.
EXPOSE 50051 50052 50053 50054 50055 50056 8080 9464

ENTRYPOINT ["cobro"]
CMD ["services"]
