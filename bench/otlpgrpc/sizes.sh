#!/usr/bin/env bash
# sizes.sh [BASE]: the size of bin/lookout (CGO_ENABLED=0 -trimpath -ldflags "-s -w") at
# git ref BASE (default: the commit before the OTLP/gRPC receiver), as it is now (the
# built-in receiver on Go's HTTP/2 server), and as it would be with an OTLP/gRPC server
# from google.golang.org/grpc or connectrpc.com/connect linked in: cmd/agent copied next
# to sizes/<variant>/variant.go.txt and built in this module, whose go.mod has them.
set -euo pipefail
cd "$(dirname "$0")"
base=${1:-47cf07b}
root=$(git rev-parse --show-toplevel)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp" sizes/*/main.go sizes/*/traces.go sizes/*/variant.go' EXIT
build() { CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$1" "$2"; }
mb() { awk -v b="$(stat -c %s "$1")" 'BEGIN { printf "%.2f MB (%d bytes)", b/1e6, b }'; }

git -C "$root" archive "$base" | tar -x -C "$tmp"
(cd "$tmp" && build "$tmp/lookout-before" ./cmd/agent)
(cd "$root" && build "$tmp/lookout-builtin" ./cmd/agent)
for v in grpcgo connect; do
	cp "$root"/cmd/agent/main.go "$root"/cmd/agent/traces.go "sizes/$v/"
	cp "sizes/$v/variant.go.txt" "sizes/$v/variant.go"
	build "$tmp/lookout-$v" "./sizes/$v"
done
printf 'bin/lookout before (%s):        %s\n' "$base" "$(mb "$tmp/lookout-before")"
printf 'with the built-in receiver:       %s\n' "$(mb "$tmp/lookout-builtin")"
printf 'with google.golang.org/grpc:      %s\n' "$(mb "$tmp/lookout-grpcgo")"
printf 'with connectrpc.com/connect:      %s\n' "$(mb "$tmp/lookout-connect")"
