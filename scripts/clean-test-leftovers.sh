#!/usr/bin/env bash
# Removes what an interrupted test or benchmark run of this repository left in the local
# Docker Engine: containers and services labelled lookout-test.run (every test and
# benchmark container carries it), the cluster tests' volumes and networks, and the e2e
# test's stacks (lk<digits>). A benchmark
# stopped half-way leaves up to 200 opted-in containers behind; every agent started later
# would probe them. Touches nothing else.
set -uo pipefail
ids=$(docker ps -aq --filter label=lookout-test.run)
if [ -n "$ids" ]; then
  echo "removing $(echo "$ids" | wc -l) leftover test container(s)"
  echo "$ids" | xargs -n 50 docker rm -f >/dev/null
fi
# The cluster tests' node volumes and networks (e2e/cluster), once their containers are gone.
vols=$(docker volume ls -q --filter label=lookout-test.run)
[ -n "$vols" ] && echo "$vols" | xargs docker volume rm -f >/dev/null
for n in $(docker network ls -q --filter label=lookout-test.run); do
  docker network rm "$n" >/dev/null 2>&1 || true
done
if [ "$(docker info --format '{{.Swarm.LocalNodeState}}' 2>/dev/null)" = active ]; then
  svcs=$(docker service ls -q --filter label=lookout-test.run)
  [ -n "$svcs" ] && echo "$svcs" | xargs docker service rm >/dev/null
  for s in $(docker stack ls --format '{{.Name}}' | grep -E '^lk[0-9]+$'); do
    echo "removing leftover test stack $s"
    docker stack rm "$s" >/dev/null
  done
fi
exit 0
