#!/usr/bin/env bash
# The image of one Docker node of the cluster tests (e2e/cluster): a Debian bookworm root
# filesystem with Debian's docker.io (Docker 20.10), made by debootstrap and imported with
# `docker import`, no registry involved. Its entrypoint is dockerd on the vfs storage
# driver (overlayfs does not nest in a container's overlayfs).
#   scripts/swarm-node-image.sh [TAG]      build TAG (default lookout-swarmnode:bookworm) unless it exists
#   scripts/swarm-node-image.sh 29 TAG29   the same with Docker 29 in place of 20.10, from
#                                          .peers/bin (peers/docker29: dockerd29, runc29) and
#                                          this machine's docker CLI (28.x; the Debian 20.10
#                                          CLI's API 1.41 is below Docker 29's minimum)
# Takes about two minutes the first time (the packages come from deb.debian.org).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
if [ "${1:-}" = 29 ]; then
  tag29=${2:?usage: $0 29 TAG}
  docker image inspect "$tag29" >/dev/null 2>&1 && exit 0
  bash "$0"
  bash "$root/peers/docker29/build.sh"
  ctx=$(mktemp -d /tmp/lookout-swarmnode29.XXXXXX)
  trap 'rm -rf "$ctx"' EXIT
  # The node's CLI must speak Docker 29's minimum API (1.44, Docker 25's): this machine's
  # (28.x here). Its version, not its API (which it negotiates down to the engine's).
  cli=$(docker version --format '{{.Client.Version}}')
  if [ "${cli%%.*}" -lt 25 ] 2>/dev/null || ! [ "${cli%%.*}" -ge 0 ] 2>/dev/null; then
    echo "swarm node image: this machine's docker CLI is $cli; the Docker 29 node needs 25 or later (API 1.44)" >&2
    exit 1
  fi
  cp "$root/.peers/bin/dockerd29" "$root/.peers/bin/runc29" "$(command -v docker)" "$ctx/"
  # runc 1.5 first in PATH (/usr/local/sbin), for Docker 29's time namespace; built without
  # libseccomp, so the daemon runs containers without a seccomp profile, as
  # scripts/engine29.sh does.
  cat >"$ctx/Dockerfile" <<'DOCKERFILE'
FROM lookout-swarmnode:bookworm
COPY dockerd29 /usr/local/bin/dockerd
COPY runc29 /usr/local/sbin/runc
COPY docker /usr/local/bin/docker
ENTRYPOINT ["/usr/local/bin/dockerd", "--storage-driver=vfs", "--seccomp-profile=unconfined"]
DOCKERFILE
  docker build -q -t "$tag29" "$ctx" >/dev/null
  echo "swarm node image: $tag29 ($("$root/.peers/bin/dockerd29" --version))" >&2
  exit 0
fi
tag=${1:-lookout-swarmnode:bookworm}
if docker image inspect "$tag" >/dev/null 2>&1; then
  exit 0
fi
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
if ! command -v debootstrap >/dev/null 2>&1; then
  $sudo apt-get install -y -q debootstrap >/dev/null || { $sudo apt-get update -q >/dev/null && $sudo apt-get install -y -q debootstrap >/dev/null; }
fi
dir=$(mktemp -d /tmp/lookout-swarmnode.XXXXXX)
trap '$sudo rm -rf "$dir"' EXIT
echo "swarm node image: debootstrap bookworm into $dir" >&2
$sudo debootstrap --variant=minbase --include=docker.io,iproute2,iptables,ca-certificates,procps \
  bookworm "$dir/root" http://deb.debian.org/debian >"$dir.log" 2>&1 || { tail -20 "$dir.log" >&2; exit 1; }
rm -f "$dir.log"
$sudo tar -C "$dir/root" -c . | docker import \
  -c 'ENTRYPOINT ["dockerd", "--storage-driver=vfs"]' \
  -c 'LABEL org.opencontainers.image.description="a Docker node for Lookout'"'"'s cluster tests (scripts/swarm-node-image.sh)"' \
  - "$tag" >/dev/null
echo "swarm node image: $tag" >&2
