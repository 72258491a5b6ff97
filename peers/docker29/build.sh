#!/usr/bin/env bash
# Build the second engine the tests run against into <repo>/.peers/bin:
#   dockerd29  Docker 29 (github.com/moby/moby/v2 cmd/dockerd, pinned in go.mod here)
#   runc29     runc v1.5.2 (Docker 29 needs runc 1.2 or later; built without libseccomp,
#              so scripts/engine29.sh runs the daemon with "seccomp-profile": "unconfined")
# Idempotent: a binary is rebuilt only when missing or older than go.mod (FORCE=1 rebuilds).
set -euo pipefail
script_dir="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)"
repo_root="$(cd -- "${script_dir}/../.." && pwd -P)"
bin_dir="${repo_root}/.peers/bin"
mkdir -p "${bin_dir}"
cd "${script_dir}"
# What `docker version` and the agent's logs show for this engine.
version="29-moby-v2.0.0-beta.24"

# shellcheck source=../gobuild.sh
source "${script_dir}/../gobuild.sh"

gobuild dockerd29 0 "exclude_graphdriver_btrfs no_btrfs" \
	"-s -w -X github.com/moby/moby/v2/dockerversion.Version=${version} -X github.com/moby/moby/v2/dockerversion.GitCommit=v2.0.0-beta.24" \
	github.com/moby/moby/v2/cmd/dockerd
gobuild runc29 1 "urfave_cli_no_docs" "-s -w" github.com/opencontainers/runc
