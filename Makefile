# Lookout: the two commands are `make run` and `make test`.
GO      ?= go
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)

.PHONY: build run test unit e2e e2e29 peers image fuzz bench-latency bench-probes bench-resources bench-logs clean
.PHONY: bench-spans bench-queue bench-outage bench-msgpack bench-otlpgrpc baseline

## BASELINE: the git ref whose Lookout bench-probes, bench-resources and bench-spans run
## next to bin/lookout, same load, same run, with the ratios new/baseline (default: the
## commit before issue 10's restructure). `make BASELINE= bench-probes` runs no baseline.
## BENCH_ARGS: more flags for the bench program, e.g. BENCH_ARGS='-duration 1m'.
BASELINE ?= 8a4da67
BASELINE_FLAG = $(if $(BASELINE),-baseline bin/lookout-baseline)

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/lookout ./cmd/agent

## run: build and run the agent against the local Docker Engine (line protocol on stdout
## unless LOOKOUT_INFLUXDB_URL or a config file says otherwise).
run: build
	./bin/lookout run

## test: every test with the race detector, the end-to-end ones against the real Docker
## Engine and a real InfluxDB included. Installs the peers it needs first.
## The end-to-end package runs last and verbose, so a log shows which test ran when.
test: peers
	@bash scripts/docker-up.sh
	@bash scripts/clean-test-leftovers.sh
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 10m $$($(GO) list ./... | grep -v /e2e$$)
	@bash scripts/docker-up.sh
	$(GO) test -race -count=1 -timeout 25m -v ./e2e/
	@bash scripts/engine29.sh start
	DOCKER_HOST=$$(bash scripts/engine29.sh host) bash scripts/clean-test-leftovers.sh
	DOCKER_HOST=$$(bash scripts/engine29.sh host) $(GO) test -race -count=1 -timeout 25m -v -skip '$(E2E_SKIP_29)' ./e2e/

## The e2e tests not run against Docker 29: the Swarm tests need the engine's iptables
## rules (ingress, docker_gwbridge), which the second engine runs without so as not to
## fight the system daemon's; issue 12's three-node bed runs them on Docker 29 nodes. The
## InfluxDB outage and disk queue tests exercise the metrics output, not the engine (it
## only runs their containers), and take four minutes of the pass.
E2E_SKIP_29 = TestGlobalStackOnSwarm|TestGlobalStackStateVolume|TestTracesRelayOnSwarm|TestInfluxOutage|TestDiskQueue

## e2e29: the end-to-end suite against Docker 29 only (scripts/engine29.sh starts it).
e2e29: peers
	@bash scripts/engine29.sh start
	DOCKER_HOST=$$(bash scripts/engine29.sh host) bash scripts/clean-test-leftovers.sh
	DOCKER_HOST=$$(bash scripts/engine29.sh host) $(GO) test -race -count=1 -timeout 25m -v -skip '$(E2E_SKIP_29)' ./e2e/

unit:
	$(GO) test -race -short ./...

e2e: peers
	@bash scripts/docker-up.sh
	@bash scripts/clean-test-leftovers.sh
	$(GO) test -race -count=1 -v -timeout 25m ./e2e/

## peers: the real programs the tests talk to (InfluxDB 1.x and HAProxy from Debian; Telegraf, Jaeger,
## a Fluentd forward-protocol server and Docker 29 built from their modules under peers/).
peers:
	@bash scripts/peers.sh influxdb haproxy telegraf
	@bash scripts/peers.sh fluentd
	@bash scripts/peers.sh jaeger
	@bash peers/docker29/build.sh

## baseline: bin/lookout-baseline built from $(BASELINE) (cached by commit in bin/).
baseline:
ifneq ($(BASELINE),)
	@GO=$(GO) bash scripts/build-baseline.sh $(BASELINE) bin/lookout-baseline
endif

fuzz:
	$(GO) test ./metric/lineproto/ -run XXX -fuzz FuzzRoundTrip -fuzztime 60s
	$(GO) test ./shipper/diskqueue/ -run XXX -fuzz FuzzRecover -fuzztime 60s
	$(GO) test ./labels/ -run XXX -fuzz FuzzParse -fuzztime 60s
	$(GO) test ./logs/ -run XXX -fuzz FuzzParseJSONLine -fuzztime 60s
	$(GO) test ./traces/receiver/jaegerudp/ -run XXX -fuzz FuzzDecodeEmitBatch -fuzztime 60s

image: build
	docker build -t lookout:$(VERSION) -t lookout:latest .

## bench-latency: health-transition latency, Lookout vs Telegraf (see BENCHMARKS.md).
bench-latency: peers build
	@bash scripts/peers.sh telegraf
	$(GO) run ./bench/healthlatency

## bench-probes: 200 containers, one HTTP check a second, Lookout vs Telegraf http_response
## (and vs the BASELINE build).
bench-probes: peers build baseline
	@bash scripts/peers.sh telegraf
	$(GO) run ./bench/probeload $(BASELINE_FLAG) $(BENCH_ARGS)

## bench-logs: a container logging as fast as it can, through Lookout's file source, its
## logs API source and Docker's fluentd log driver, to the same forward-protocol receiver;
## then 20 idle containers through each source (see BENCHMARKS.md).
bench-logs: peers build
	$(GO) run ./bench/logthroughput -duration $${DURATION:-15s} -log-max-size $${LOG_MAX_SIZE:-1g} -idle $${IDLE:-60s}
## bench-spans: span relay throughput and CPU per span, Lookout vs jaeger-agent v1.62
## (and vs the BASELINE build).
bench-spans: peers build baseline
	$(GO) run ./bench/spanrelay $(BASELINE_FLAG) $(BENCH_ARGS)

clean:
	rm -rf bin .peers

## bench-resources: container resource metrics, Lookout (cgroup files, stats API) vs Telegraf
## inputs.docker (and vs the BASELINE build).
bench-resources: peers build baseline
	@bash scripts/peers.sh telegraf
	$(GO) run ./bench/resources $(BASELINE_FLAG) $(BENCH_ARGS)

## bench-queue: the metrics disk queue's storage, Lookout's shipper/diskqueue vs tidwall/wal
## (Telegraf's disk buffer), 1 GiB queue; a module of its own (bench/queuestore/go.mod).
bench-queue:
	cd bench/queuestore && $(GO) run . -size $${SIZE:-1GiB}

## bench-otlpgrpc: OTLP/gRPC receiving three ways (the built-in receiver on Go's HTTP/2
## server, google.golang.org/grpc, connectrpc.com/connect): server CPU per span and the
## size of bin/lookout with each; a module of its own (bench/otlpgrpc/go.mod), figures in
## docs/traces-otlp-grpc.md.
bench-otlpgrpc:
	cd bench/otlpgrpc && $(GO) run . -rounds $${ROUNDS:-5} && bash sizes.sh

## bench-msgpack: the Forward message encoder, hand-written vs tinylib/msgp vs vmihailenco/msgpack;
## a module of its own (bench/msgpack/go.mod), figures in docs/logs-msgpack.md.
bench-msgpack:
	cd bench/msgpack && $(GO) test -run '^$$' -bench Encode -benchmem -count $${COUNT:-5} .

## bench-outage: InfluxDB stopped for 10 minutes (OUTAGE=2m for a quick run) under Lookout's
## disk queue and Telegraf's disk buffer, on the same containers (see BENCHMARKS.md).
bench-outage: peers build
	@bash scripts/peers.sh telegraf
	$(GO) run ./bench/outage -outage $${OUTAGE:-10m}
