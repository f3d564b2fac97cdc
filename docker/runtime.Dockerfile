# The runtime stage of the root `Dockerfile`, built without any registry by
# scripts/build-image.sh: the base is a debootstrap'd Debian (weir-base:bookworm,
# imported by that script) and the binary comes from the host's cargo build.
# Build context: a folder holding `weir` and `assemble-rootfs.sh`.

FROM weir-base:bookworm AS rootfs
# Lets scripts/build-image.sh remove this stage's leftovers (and nothing else).
LABEL dev.weir.stage=rootfs
COPY weir /usr/local/bin/weir
COPY assemble-rootfs.sh /usr/local/bin/assemble-rootfs.sh
RUN assemble-rootfs.sh /rootfs

# Runtime: nothing but /rootfs. Keep in step with the root Dockerfile.
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
