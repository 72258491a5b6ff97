#!/usr/bin/env bash
# The image of one Docker node of the cluster tests (e2e/cluster): a Debian bookworm root
# filesystem with Debian's docker.io (Docker 20.10), made by debootstrap and imported with
# `docker import`, no registry involved. Its entrypoint is dockerd on the vfs storage
# driver (overlayfs does not nest in a container's overlayfs).
#   scripts/swarm-node-image.sh [TAG]    build TAG (default lookout-swarmnode:bookworm) unless it exists
# Takes about two minutes the first time (the packages come from deb.debian.org).
set -euo pipefail
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
