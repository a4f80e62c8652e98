# syntax=docker/dockerfile:1
#
# rollout-guard container image: a static (musl) binary on distroless/static,
# running as the image's non-root user 65532, no shell.
#
#   docker build -t rollout-guard:dev .
#   docker buildx build --platform linux/amd64,linux/arm64 -t REGISTRY/rollout-guard:TAG --push .
#
# Each platform builds natively (QEMU under buildx) for its own
# <arch>-unknown-linux-musl target, so no cross toolchain is needed.

ARG RUST_VERSION=1

FROM rust:${RUST_VERSION}-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools \
 && rm -rf /var/lib/apt/lists/*
RUN rustup target add "$(uname -m)-unknown-linux-musl"
WORKDIR /src
COPY . .
# ring and the other C parts build with musl-gcc; the result links statically.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    set -eux; \
    arch="$(uname -m)"; \
    export "CC_${arch}_unknown_linux_musl=musl-gcc"; \
    cargo build --release --locked --target "${arch}-unknown-linux-musl" --bin rollout-guard; \
    cp "target/${arch}-unknown-linux-musl/release/rollout-guard" /rollout-guard

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /rollout-guard /rollout-guard
USER 65532:65532
# 8443: HTTPS admission endpoints; 9090: metrics, healthz, readyz (plain HTTP).
EXPOSE 8443 9090
ENTRYPOINT ["/rollout-guard"]
