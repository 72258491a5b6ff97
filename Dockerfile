# Lookout's image: a static binary FROM scratch. Build the binary first (no registry is
# needed):  make image   (= CGO_ENABLED=0 go build -o bin/lookout ./cmd/agent && docker build .)
FROM scratch
COPY bin/lookout /lookout
# The state directory (LOOKOUT_STATE_DIR: log positions, the disk queue, the heartbeat),
# owned by the agent's user: the stack mounts a volume there, and a fresh volume takes the
# directory's owner and mode. (COPY --chown makes the directory; the file is a marker.)
COPY --chown=65532:65532 Dockerfile /var/lib/lookout/.image
ENV LOOKOUT_HEARTBEAT_FILE=/var/lib/lookout/heartbeat
# A numeric non-root user: it needs the Docker socket's group (the stack's user: setting,
# or docker run --group-add); see docs/operations.md#least-privilege.
USER 65532:65532
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 CMD ["/lookout", "healthcheck"]
ENTRYPOINT ["/lookout"]
CMD ["run"]
