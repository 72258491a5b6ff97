#!/usr/bin/env bash
# Build test-peer binaries into <repo>/.peers/bin.
#
# Idempotent: telegraf is only (re)built when the binary is missing or
# peers/telegraf/go.mod is newer than it (set FORCE=1 to rebuild anyway).
# Prints the absolute path of the binary on stdout; build chatter goes to stderr.
#
# The Telegraf version is pinned in peers/telegraf/go.mod (a separate Go module,
# so the agent's own go.mod stays lean). Only the plugins listed in
# TELEGRAF_TAGS are compiled in ("custom" build tag).
set -euo pipefail

script_dir="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)"
repo_root="$(cd -- "${script_dir}/.." && pwd -P)"
mod_dir="${script_dir}/telegraf"
bin_dir="${repo_root}/.peers/bin"
bin="${bin_dir}/telegraf"

TELEGRAF_TAGS="custom,inputs.docker,inputs.execd,inputs.influxdb_listener,inputs.influxdb_v2_listener,inputs.http_response,outputs.file,outputs.influxdb"

if [[ "${FORCE:-0}" != "1" && -x "${bin}" && ! "${mod_dir}/go.mod" -nt "${bin}" ]]; then
	echo "${bin}"
	exit 0
fi

mkdir -p "${bin_dir}"
cd "${mod_dir}"

# Stamp the pinned version into the binary, as telegraf's own Makefile does.
version="$(go list -m -f '{{.Version}}' github.com/influxdata/telegraf)"
ldflags="-s -w -X github.com/influxdata/telegraf/internal.Version=${version#v}"

echo "building telegraf ${version} -> ${bin}" >&2
start=${SECONDS}
# Build into a temp file and rename, so an interrupted build never leaves a
# half-written binary that a later run would consider up to date.
tmp="$(mktemp "${bin_dir}/.telegraf.XXXXXX")"
trap 'rm -f "${tmp}"' EXIT
CGO_ENABLED=0 go build -mod=readonly -trimpath \
	-tags "${TELEGRAF_TAGS}" \
	-ldflags "${ldflags}" \
	-o "${tmp}" \
	github.com/influxdata/telegraf/cmd/telegraf
chmod 0755 "${tmp}"
mv -f "${tmp}" "${bin}"
trap - EXIT
echo "built telegraf in $((SECONDS - start))s" >&2

echo "${bin}"
