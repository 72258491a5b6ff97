# Lookout: the two commands are `make run` and `make test`.
GO      ?= go
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)

.PHONY: build run test unit e2e e2e29 cluster churn peers image fuzz bench-latency bench-probes bench-resources bench-logs clean
.PHONY: bench-spans bench-queue bench-outage bench-msgpack bench-otlpgrpc baseline engine

## BASELINE: the git ref whose Lookout bench-probes, bench-resources and bench-spans run
## next to bin/lookout, same load, same run, with the ratios new/baseline (default: the
## commit before issue 10's restructure). `make BASELINE= bench-probes` runs no baseline.
## BENCH_ARGS: more flags for the bench program, e.g. BENCH_ARGS='-duration 1m'.
BASELINE ?= 8a4da67
BASELINE_FLAG = $(if $(BASELINE),-baseline bin/lookout-baseline)

## ENGINE: the engine bench-latency and bench-resources run on (the containers, Lookout,
## Telegraf's endpoint and the daemons whose CPU is read): empty, the system's (or the one
## DOCKER_HOST names); 29, Docker 29 from scripts/engine29.sh, started first.
## `make bench-latency ENGINE=29`.
ENGINE ?=
ENGINE_ENV = $(if $(filter 29,$(ENGINE)),DOCKER_HOST=$$(bash scripts/engine29.sh host))

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/lookout ./cmd/agent

## run: build and run the agent against the local Docker Engine (line protocol on stdout
## unless LOOKOUT_INFLUXDB_URL or a config file says otherwise).
run: build
	./bin/lookout run

## test: every test with the race detector, the end-to-end ones against the real Docker
## Engine and a real InfluxDB included. Installs the peers it needs first.
## The end-to-end package runs last and verbose, so a log shows which test ran when: on the
## system's engine with every agent behind the read-only socket proxy
## (deploy/socket-proxy/haproxy.cfg, LOOKOUT_E2E_SOCKET_PROXY=1), then on Docker 29 direct.
test: peers
	@bash scripts/docker-up.sh
	@bash scripts/clean-test-leftovers.sh
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 10m $$($(GO) list ./... | grep -v -e /e2e$$ -e /e2e/cluster$$ -e /e2e/churn$$)
	@bash scripts/docker-up.sh
	LOOKOUT_E2E_SOCKET_PROXY=1 $(GO) test -race -count=1 -timeout 25m -v ./e2e/
	@bash scripts/engine29.sh start
	DOCKER_HOST=$$(bash scripts/engine29.sh host) bash scripts/clean-test-leftovers.sh
	DOCKER_HOST=$$(bash scripts/engine29.sh host) $(GO) test -race -count=1 -timeout 25m -v -skip '$(E2E_SKIP_29)' ./e2e/

## cluster: the three-node Swarm tests (e2e/cluster): deploy/global-stack.yml on three
## Docker nodes started as containers (two Docker 20.10, one Docker 29), per-node
## reporting, spans per node, a rolling upgrade of the agent and the loss of a node (see
## docs/operations.md#testing). About five minutes: not in `make test` (23 minutes in CI with a
## CPU burner; with the cluster 28, too close to its 30); CI (.ci/run) runs both.
cluster: peers
	@bash scripts/docker-up.sh
	@bash scripts/clean-test-leftovers.sh
	$(GO) test -race -count=1 -timeout 30m -v ./e2e/cluster/

## churn: 1,000 container lifecycles (create, start, health flip, log burst, span, stop,
## remove), 12 at a time, with every feature of the agent on and real InfluxDB, Fluentd
## receiver and Jaeger (e2e/churn): the agent's goroutines, open files, live heap, series
## and per-container state come back to their baseline (docs/operations.md#testing).
## Not in `make test` (5 to 13 minutes); CI (.ci/run) runs it after `make cluster`.
## CHURN_CYCLES=100 for a quick run.
CHURN_CYCLES ?= 1000
churn: peers
	@bash scripts/docker-up.sh
	@bash scripts/clean-test-leftovers.sh
	$(GO) test -race -count=1 -timeout 40m -v ./e2e/churn/ -cycles $(CHURN_CYCLES)

## The e2e tests not run against Docker 29: the Swarm tests need the engine's iptables
## rules (ingress, docker_gwbridge), which the second engine runs without so as not to
## fight the system daemon's; `make cluster` runs a Docker 29 node in a swarm. The
## InfluxDB outage and disk queue tests exercise the metrics output, not the engine (it
## only runs their containers), and take four minutes of the pass; the network abuse tests
## (TestAbuseNet*: UDP, OTLP and a silent Fluentd at the agent's own inputs) likewise.
E2E_SKIP_29 = TestGlobalStackOnSwarm|TestGlobalStackStateVolume|TestTracesRelayOnSwarm|TestInfluxOutage|TestDiskQueue|TestAbuseNet

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

## engine: start the engine ENGINE names (nothing to do for the system's).
engine:
ifeq ($(ENGINE),29)
	@bash scripts/engine29.sh start
else ifneq ($(ENGINE),)
	$(error ENGINE=$(ENGINE): want ENGINE=29 (Docker 29, scripts/engine29.sh) or none (the system's engine, or the one DOCKER_HOST names))
endif

## baseline: bin/lookout-baseline built from $(BASELINE) (cached by commit in bin/).
baseline:
ifneq ($(BASELINE),)
	@GO=$(GO) bash scripts/build-baseline.sh $(BASELINE) bin/lookout-baseline
endif

## fuzz: every fuzz target in turn (scripts/fuzz.sh lists them), FUZZTIME each (default
## 60s) with FUZZ_PARALLEL workers (default 1: a recorded run leaves the machine's other
## core alone); `make test` replays their seed corpora (testdata/fuzz/). docs/fuzzing.md.
FUZZTIME      ?= 60s
FUZZ_PARALLEL ?= 1
fuzz:
	GO=$(GO) FUZZTIME=$(FUZZTIME) FUZZ_PARALLEL=$(FUZZ_PARALLEL) bash scripts/fuzz.sh

image: build
	docker build -t lookout:$(VERSION) -t lookout:latest .

## bench-latency: health-transition latency, Lookout vs Telegraf (see BENCHMARKS.md), on ENGINE.
bench-latency: peers build engine
	@bash scripts/peers.sh telegraf
	$(ENGINE_ENV) $(GO) run ./bench/healthlatency $(BENCH_ARGS)

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
## inputs.docker (and vs the BASELINE build), on ENGINE.
bench-resources: peers build baseline engine
	@bash scripts/peers.sh telegraf
	$(ENGINE_ENV) $(GO) run ./bench/resources $(BASELINE_FLAG) $(BENCH_ARGS)

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
