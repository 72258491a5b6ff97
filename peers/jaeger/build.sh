#!/usr/bin/env bash
# Build Jaeger v1.62 all-in-one (collector + query API, in memory) and jaeger-agent into
# <repo>/.peers/bin as jaeger-all-in-one and jaeger-agent.
#
# Idempotent: a binary is only (re)built when it is missing or peers/jaeger/go.mod is
# newer than it (FORCE=1 rebuilds anyway). The version is pinned in peers/jaeger/go.mod,
# a module of its own so the agent's go.mod stays lean; Jaeger v1.62 needs
# `replace github.com/Shopify/sarama => github.com/Shopify/sarama v1.33.0` there.
set -euo pipefail

script_dir="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)"
repo_root="$(cd -- "${script_dir}/../.." && pwd -P)"
bin_dir="${repo_root}/.peers/bin"
mkdir -p "${bin_dir}"
cd "${script_dir}"

# shellcheck source=../gobuild.sh
source "${script_dir}/../gobuild.sh"

gobuild jaeger-all-in-one 0 "" "-s -w" github.com/jaegertracing/jaeger/cmd/all-in-one
gobuild jaeger-agent 0 "" "-s -w" github.com/jaegertracing/jaeger/cmd/agent
