#!/usr/bin/env bash
# The second real engine the tests run against: Docker 29 beside the system's Docker 20.10.
#   scripts/engine29.sh start   build it if needed (peers/docker29), start it, wait until it answers
#   scripts/engine29.sh stop    stop it (its data root is kept: images survive a restart)
#   scripts/engine29.sh host    print its DOCKER_HOST
# It has its own data root, exec root, socket, pid file and bridge (lk29br, 10.29.0.1/24,
# --iptables=false), and uses the containerd the system daemon manages, in containerd
# namespaces of its own. Its minimum API is set to 1.44, Docker 29.0's default, so a client
# that cannot negotiate up to it fails here as it would on a stock Docker 29.0.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
sock=/run/lookout-docker29.sock
host="unix://${sock}"
state=/var/lib/lookout-docker29
run=/run/lookout-docker29
pidfile=${run}.pid
log=/var/log/lookout-docker29.log
bridge=lk29br
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"

answers() { timeout 10 docker -H "$host" version --format '{{.Server.Version}}' >/dev/null 2>&1; }

# A swarm on this engine would create docker_gwbridge with the host interface of the same
# name as the system daemon's, and take it from the system's swarm; made beforehand with an
# interface name of its own (as Docker documents for a custom docker_gwbridge), it cannot.
own_gwbridge() {
  docker -H "$host" network inspect docker_gwbridge >/dev/null 2>&1 && return 0
  docker -H "$host" network create --driver bridge --subnet 10.30.0.0/24 \
    -o com.docker.network.bridge.name=lk29gwbridge \
    -o com.docker.network.bridge.enable_icc=false \
    -o com.docker.network.bridge.enable_ip_masquerade=true docker_gwbridge >/dev/null
}

start() {
  bash "$root/peers/docker29/build.sh"
  if answers; then own_gwbridge; return 0; fi
  local containerd
  containerd=$(ls /run/docker/containerd/containerd.sock /run/containerd/containerd.sock 2>/dev/null | head -1 || true)
  [ -S "$containerd" ] || { echo "engine29: no containerd socket (the system Docker's /run/docker/containerd/containerd.sock)" >&2; exit 1; }
  if ! ip link show "$bridge" >/dev/null 2>&1; then
    $sudo ip link add "$bridge" type bridge
    $sudo ip addr add 10.29.0.1/24 dev "$bridge"
  fi
  $sudo ip link set "$bridge" up
  $sudo mkdir -p "$state" "$run"
  $sudo tee "$run.json" >/dev/null <<JSON
{
  "data-root": "$state",
  "exec-root": "$run",
  "pidfile": "$pidfile",
  "hosts": ["$host"],
  "bridge": "$bridge",
  "iptables": false,
  "ip6tables": false,
  "containerd": "$containerd",
  "containerd-namespace": "lookout29",
  "containerd-plugins-namespace": "lookout29-plugins",
  "min-api-version": "1.44",
  "seccomp-profile": "unconfined",
  "default-runtime": "runc29",
  "runtimes": {"runc29": {"runtimeType": "io.containerd.runc.v2", "options": {"BinaryName": "$root/.peers/bin/runc29"}}}
}
JSON
  # A stale pid file from a killed daemon would stop the new one.
  if [ -f "$pidfile" ] && ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then $sudo rm -f "$pidfile"; fi
  echo "engine29: starting $("$root/.peers/bin/dockerd29" --version) on $host (log $log)" >&2
  $sudo sh -c "nohup '$root/.peers/bin/dockerd29' --config-file '$run.json' >>'$log' 2>&1 &"
  for _ in $(seq 1 120); do
    if answers; then own_gwbridge; return 0; fi
    sleep 0.5
  done
  echo "engine29: the daemon did not answer within 60 s; last lines of $log:" >&2
  tail -20 "$log" >&2
  exit 1
}

stop() {
  [ -f "$pidfile" ] || return 0
  local pid
  pid=$(cat "$pidfile")
  $sudo kill "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.5; done
  $sudo kill -9 "$pid" 2>/dev/null || true
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  host) echo "$host" ;;
  *) echo "usage: $0 start|stop|host" >&2; exit 2 ;;
esac
