#!/usr/bin/env bash
# build-baseline.sh REF [OUT]: builds Lookout as it was at git REF into OUT
# (default bin/lookout-baseline), the way `make build` builds bin/lookout, so the benches
# can run the binary from before a change next to the one after it. The build is cached
# by commit: bin/lookout-baseline-<commit> is reused, OUT is a copy of it.
set -euo pipefail
ref=${1:?usage: build-baseline.sh REF [OUT]}
out=${2:-bin/lookout-baseline}
go=${GO:-go}
commit=$(git rev-parse --verify "$ref^{commit}")
cached=bin/lookout-baseline-$commit
mkdir -p bin
if [ ! -x "$cached" ]; then
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	git archive "$commit" | tar -x -C "$tmp"
	version=$(git describe --always "$commit" 2>/dev/null || echo "$commit")
	echo "building $ref ($version) into $cached" >&2
	(cd "$tmp" && CGO_ENABLED=0 "$go" build -trimpath -ldflags "-s -w -X main.version=$version" \
		-o "$tmp/lookout" ./cmd/agent)
	mv "$tmp/lookout" "$cached"
fi
cp "$cached" "$out"
echo "$out: $("$out" version)" >&2
