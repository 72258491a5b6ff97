# Lookout's image: a static binary FROM scratch. Build the binary first (no registry is
# needed):  make image   (= CGO_ENABLED=0 go build -o bin/lookout ./cmd/agent && docker build .)
FROM scratch
COPY bin/lookout /lookout
# The state directory (LOOKOUT_STATE_DIR: log positions), created by WORKDIR: the stack
# mounts a volume there, and a fresh volume takes the directory's owner and mode.
WORKDIR /var/lib/lookout
WORKDIR /
ENV LOOKOUT_HEARTBEAT_FILE=/tmp/lookout.heartbeat
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 CMD ["/lookout", "healthcheck"]
ENTRYPOINT ["/lookout"]
CMD ["run"]
