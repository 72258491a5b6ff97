#!/usr/bin/env bash
# Installs or builds the real peers the tests and benchmarks use. Idempotent.
#   scripts/peers.sh influxdb   InfluxDB 1.x from Debian's packages
#   scripts/peers.sh telegraf   Telegraf v1.37.2 built from its Go module into .peers/bin
#   scripts/peers.sh jaeger     Jaeger v1.62 all-in-one and jaeger-agent built from peers/jaeger into .peers/bin
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
    telegraf)
      bash "$root/peers/build.sh"
      ;;
    jaeger)
      bash "$root/peers/jaeger/build.sh"
      ;;
    *) echo "unknown peer $peer" >&2; exit 2 ;;
  esac
done
