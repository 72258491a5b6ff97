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

build() { # build NAME PACKAGE
	local bin="${bin_dir}/$1"
	if [[ "${FORCE:-0}" != "1" && -x "${bin}" && ! go.mod -nt "${bin}" ]]; then
		return 0
	fi
	echo "building $1 ($2) -> ${bin}" >&2
	local start=${SECONDS} tmp
	# A temp file renamed at the end: an interrupted build never leaves a half-written binary.
	tmp="$(mktemp "${bin_dir}/.$1.XXXXXX")"
	trap 'rm -f "${tmp}"' EXIT
	CGO_ENABLED=0 go build -mod=readonly -trimpath -ldflags "-s -w" -o "${tmp}" "$2"
	chmod 0755 "${tmp}"
	mv -f "${tmp}" "${bin}"
	trap - EXIT
	echo "built $1 in $((SECONDS - start))s" >&2
}

build jaeger-all-in-one github.com/jaegertracing/jaeger/cmd/all-in-one
build jaeger-agent github.com/jaegertracing/jaeger/cmd/agent
