# The `weir` image: one binary for every role (broker, connect, streams,
# operator, dev). Needs registry access (rust and debian images):
#
#   docker build -t weir .
#
# Without a registry, scripts/build-image.sh builds the same runtime stage
# from a debootstrap base and a host-built binary (docker/runtime.Dockerfile).

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p weir-cli \
 && strip --strip-debug target/release/weir \
 && cp target/release/weir /usr/local/bin/weir

# Collects the binary, the shared libraries it links and CA certificates
# into /rootfs (see docker/assemble-rootfs.sh).
FROM debian:bookworm-slim AS rootfs
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /usr/local/bin/weir /usr/local/bin/weir
COPY docker/assemble-rootfs.sh /usr/local/bin/assemble-rootfs.sh
RUN assemble-rootfs.sh /rootfs

# Runtime: nothing but /rootfs. Keep in step with docker/runtime.Dockerfile.
FROM scratch
COPY --from=rootfs /rootfs/ /
COPY --from=rootfs --chown=65532:65532 /rootfs/var/lib/weir /var/lib/weir
ENV PATH=/usr/local/bin \
    WEIR_DATA_DIR=/var/lib/weir
USER 65532:65532
WORKDIR /var/lib/weir
VOLUME ["/var/lib/weir"]
# Kafka, controller quorum, admin HTTP (/healthz, /ready, /metrics), Connect REST.
EXPOSE 9092 9093 9644 8083
# `weir` handles SIGTERM itself (a broker moves leadership away, then stops).
STOPSIGNAL SIGTERM
ENTRYPOINT ["weir"]
CMD ["broker", "--listen", "0.0.0.0:9092", "--data-dir", "/var/lib/weir"]
