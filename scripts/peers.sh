#!/usr/bin/env bash
# Installs or builds the real peers the tests and benchmarks use. Idempotent.
#   scripts/peers.sh influxdb   InfluxDB 1.x from Debian's packages
#   scripts/peers.sh telegraf   Telegraf v1.37.2 built from its Go module into .peers/bin
#   scripts/peers.sh fluentd    a Fluentd forward-protocol server (OpenTelemetry Collector's
#                               fluentforward receiver v0.130.0, peers/fluentd) into .peers/bin
#   scripts/peers.sh jaeger     Jaeger v1.62 all-in-one and jaeger-agent built from peers/jaeger into .peers/bin
#   scripts/peers.sh haproxy    HAProxy from Debian's packages (the read-only socket proxy's tests)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"

apt_install() {
  if ! $sudo apt-get install -y --no-install-recommends "$@" >/dev/null 2>&1; then
    $sudo apt-get update >/dev/null
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends "$@" >/dev/null
  fi
}

for peer in "$@"; do
  case "$peer" in
    influxdb)
      command -v influxd >/dev/null || { echo "installing influxdb (Debian package)"; apt_install influxdb; }
      # The package may start a system instance; the tests run their own on free ports.
      ;;
    haproxy)
      command -v haproxy >/dev/null || { echo "installing haproxy (Debian package)"; apt_install haproxy; }
      # The tests run their own (deploy/socket-proxy/haproxy.cfg) on free ports.
      ;;
    telegraf)
      bash "$root/peers/build.sh"
      ;;
    fluentd)
      bin="$root/.peers/bin/fluentd-receiver"
      src="$root/peers/fluentd"
      if [ ! -x "$bin" ] || [ "$src/go.mod" -nt "$bin" ] || [ "$src/go.sum" -nt "$bin" ] || [ "$src/main.go" -nt "$bin" ]; then
        echo "building fluentd-receiver (peers/fluentd) -> $bin" >&2
        mkdir -p "$root/.peers/bin"
        tmp=$(mktemp "$root/.peers/bin/.fluentd-receiver.XXXXXX")
        (cd "$src" && CGO_ENABLED=0 go build -mod=readonly -trimpath -o "$tmp" .) || { rm -f "$tmp"; exit 1; }
        chmod 0755 "$tmp"
        mv -f "$tmp" "$bin"
      fi
      ;;
    jaeger)
      bash "$root/peers/jaeger/build.sh"
      ;;
    *) echo "unknown peer $peer" >&2; exit 2 ;;
  esac
done
