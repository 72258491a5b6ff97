#!/usr/bin/env bash
# Makes sure the Docker Engine answers before the end-to-end tests use it.
# When the daemon answers, this prints its version and does nothing else.
# When it does not (not started, or died), and this runs as root with dockerd installed, it
# starts dockerd in the background (logging to /var/log/dockerd.log) and waits up to 90 s.
# With CI=true a daemon that does not answer within 20 s (hung) is stopped and started again.
set -uo pipefail
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"

answers() { timeout 20 docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

if answers; then
  exit 0
fi
echo "docker-up: the Docker Engine does not answer on ${DOCKER_HOST:-unix:///var/run/docker.sock}" >&2
if [ -n "${DOCKER_HOST:-}" ] && [ "${DOCKER_HOST#unix:///var/run/docker.sock}" != "" ]; then
  echo "docker-up: DOCKER_HOST names another engine; not starting one" >&2
  exit 1
fi
dockerd=$(command -v dockerd || true)
if [ -z "$dockerd" ]; then
  echo "docker-up: no dockerd on this machine; install docker.io or start the engine" >&2
  exit 1
fi
if pgrep -x dockerd >/dev/null; then
  if [ "${CI:-}" != true ]; then
    echo "docker-up: dockerd runs but does not answer; restart it (outside CI this script does not)" >&2
    exit 1
  fi
  echo "docker-up: dockerd runs but does not answer (hung); stopping it" >&2
  $sudo pkill -TERM -x dockerd
  for _ in $(seq 30); do pgrep -x dockerd >/dev/null || break; sleep 1; done
  pgrep -x dockerd >/dev/null && $sudo pkill -KILL -x dockerd
  sleep 1
fi
echo "docker-up: starting $dockerd (log /var/log/dockerd.log)" >&2
# The service scripts can fail on ulimit in a container; dockerd itself does not need them.
$sudo sh -c "nohup '$dockerd' >>/var/log/dockerd.log 2>&1 &"
for i in $(seq 90); do
  if answers; then
    echo "docker-up: the Docker Engine answers after ${i} s" >&2
    exit 0
  fi
  sleep 1
done
echo "docker-up: the Docker Engine still does not answer after 90 s; last lines of its log:" >&2
tail -20 /var/log/dockerd.log >&2 || true
exit 1
