#!/usr/bin/env bash
# make fuzz: every fuzz target, one after another, for FUZZTIME each with FUZZ_PARALLEL
# workers; stops at the first crash (its input is written under the package's
# testdata/fuzz/<Target>/ by go test). Ends with the inputs each target ran.
set -euo pipefail
GO=${GO:-go}
FUZZTIME=${FUZZTIME:-60s}
FUZZ_PARALLEL=${FUZZ_PARALLEL:-1}
# Go minimizes each new interesting input for up to 60s, counting no inputs meanwhile: in
# a one-minute run that can be the whole minute. 5s keeps the run fuzzing.
FUZZ_MINIMIZE=${FUZZ_MINIMIZE:-5s}
# The disk queue's targets open, sync and close a queue per input: on tmpfs an fsync is
# free and the run tries ten times the inputs.
if [ -z "${TMPDIR:-}" ] && [ -d /dev/shm ] && [ -w /dev/shm ]; then
	export TMPDIR=/dev/shm
fi
# package:target, for every parser of input the agent does not control (docs/fuzzing.md).
targets=(
	labels:FuzzParse
	checks:FuzzVetHost
	logs:FuzzParseJSONLine
	logs:FuzzStream
	logs/forward:FuzzServerAnswers
	traces/receiver/jaegerudp:FuzzDecodeEmitBatch
	traces/receiver/otlp:FuzzRequest
	config:FuzzLoad
	shipper/diskqueue:FuzzRecover
	shipper/diskqueue:FuzzRecords
	metric/lineproto:FuzzRoundTrip
)
# inputs counts the files of a corpus directory (0 if there is none).
inputs() { if [ -d "$1" ]; then find "$1" -type f | wc -l; else echo 0; fi; }
log=$(mktemp)
trap 'rm -f "$log"' EXIT
summary=()
for t in "${targets[@]}"; do
	pkg=${t%%:*} name=${t##*:}
	echo "== $name (./$pkg) for $FUZZTIME, $FUZZ_PARALLEL worker(s)"
	corpus="$pkg/testdata/fuzz/$name"
	before=$(inputs "$corpus")
	note=""
	if ! "$GO" test "./$pkg/" -run '^$' -fuzz "^$name\$" -fuzztime "$FUZZTIME" -fuzzminimizetime "$FUZZ_MINIMIZE" -parallel "$FUZZ_PARALLEL" 2>&1 | tee "$log"; then
		# Go 1.26's fuzz coordinator can report its own -fuzztime deadline as a failure
		# (golang/go#75804, fixed in Go 1.27): "context deadline exceeded" at the
		# deadline, and no input written. That is no crash; anything else is.
		if [ "$(grep -c '^    context deadline exceeded$' "$log")" = 1 ] && ! grep -q 'Failing input written' "$log" &&
			[ "$(inputs "$corpus")" = "$before" ]; then
			note=" (the deadline reported as a failure: golang/go#75804, no crash)"
		else
			exit 1
		fi
	fi
	execs=$(grep -o 'execs: [0-9]*' "$log" | tail -1 | cut -d' ' -f2 || true)
	summary+=("$(printf '%-22s %-28s %12s inputs%s' "$name" "./$pkg" "${execs:-?}" "$note")")
done
echo "== every target ran $FUZZTIME with $FUZZ_PARALLEL worker(s), 0 crashes:"
printf '%s\n' "${summary[@]}"
