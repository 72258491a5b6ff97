package e2e

import (
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lookout-agent/lookout/internal/testpeer"
)

// senderImage is a test service's image, built once from its module in testdata.
type senderImage struct {
	dir, tag string
	once     sync.Once
	err      error
}

var (
	spanSender = &senderImage{dir: "testdata/spansender", tag: "lookout-spansender:e2e"}
	otlpSender = &senderImage{dir: "testdata/otlpsender", tag: "lookout-otlpsender:e2e"}
)

// run starts the image as a monitored container with env and args (docker run options).
func (s *senderImage) run(t *testing.T, name string, env []string, args ...string) {
	t.Helper()
	s.runCmd(t, name, env, args)
}

// runCmd starts the image as a monitored container with env, the docker run options opts
// and the command cmd.
func (s *senderImage) runCmd(t *testing.T, name string, env, opts []string, cmd ...string) {
	t.Helper()
	s.once.Do(func() {
		root, _ := filepath.Abs("..")
		s.err = testpeer.BuildModuleImage(root, s.dir, s.tag)
	})
	if s.err != nil {
		t.Fatal(s.err)
	}
	a := []string{"run", "-d", "--name", name, "--label", "lookout-test.run=" + runID, "--label", "lookout.enable=true"}
	for _, e := range env {
		a = append(a, "-e", e)
	}
	a = append(append(a, opts...), s.tag)
	docker(t, append(a, cmd...)...)
	t.Cleanup(func() { _, _ = exec.Command("docker", "rm", "-f", name).CombinedOutput() })
}

// startJaeger runs a Jaeger all-in-one of the test's own (from `make peers`).
func startJaeger(t *testing.T) *testpeer.Jaeger {
	t.Helper()
	root, _ := filepath.Abs("..")
	bin, err := testpeer.JaegerBin(root, "jaeger-all-in-one")
	if err != nil {
		t.Fatal(err)
	}
	j, err := testpeer.StartJaeger(bin, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(j.Stop)
	return j
}

// bridgeGateway is the address of the host on Docker's default bridge: the relay's
// address that the node's containers reach and nothing else does.
func bridgeGateway(t *testing.T) string {
	gw, err := testpeer.BridgeGateway()
	if err != nil {
		t.Fatal(err)
	}
	return gw
}

// runSpanSender starts testdata/spansender: a service using jaeger-client-go over UDP.
func runSpanSender(t *testing.T, name, agentAddr, service string, rate int, args ...string) {
	t.Helper()
	spanSender.run(t, name, []string{"JAEGER_AGENT=" + agentAddr, "SERVICE=" + service, "RATE=" + strconv.Itoa(rate)}, args...)
}

// lastField returns the newest value of an integer field of a measurement in the agent's
// line protocol output, or -1.
func lastField(a *agent, measurement, field string) int64 {
	re := regexp.MustCompile(`(?m)^` + measurement + `[ ,].*[ ,]` + field + `=(\d+)i`)
	m := re.FindAllStringSubmatch(a.out(), -1)
	if len(m) == 0 {
		return -1
	}
	n, _ := strconv.ParseInt(m[len(m)-1][1], 10, 64)
	return n
}

func spansOf(t *testing.T, j *testpeer.Jaeger, service string) (spans []testpeer.Span, procs []testpeer.TraceProcess) {
	traces, err := j.Traces(service, 1000)
	if err != nil {
		t.Logf("jaeger: %v", err)
	}
	for _, tr := range traces {
		for _, s := range tr.Spans {
			spans = append(spans, s)
			procs = append(procs, tr.Processes[s.ProcessID])
		}
	}
	return spans, procs
}

// Probe spans reach Jaeger over each protocol the exporter speaks: jaeger.thrift to the
// collector's /api/traces, and OTLP/HTTP to its OTLP receiver (which Jaeger converts back:
// the same tags must come out).
func TestTracesProbeSpans(t *testing.T) {
	for _, p := range []string{"thrift", "otlp"} {
		t.Run(p, func(t *testing.T) { testProbeSpans(t, p) })
	}
}

func testProbeSpans(t *testing.T, protocol string) {
	j := startJaeger(t)
	name := "lk-trace-probe-" + protocol + "-" + runID
	endpoint := j.CollectorURL
	if protocol == "otlp" {
		endpoint = j.OTLPURL
	}
	a := startAgent(t, "LOOKOUT_JAEGER_ENDPOINT="+endpoint, "LOOKOUT_JAEGER_PROTOCOL="+protocol,
		"LOOKOUT_SPANS_FLUSH_INTERVAL=200ms", "LOOKOUT_INTERVAL=1s")
	runContainer(t, name, "--label", "lookout.enable=true", "--label", "lookout.tags.team=payments",
		"--label", "lookout.check.web=http://:8080/health", "--label", "lookout.check.web.interval=1s",
		"--label", "lookout.check.strict=http://:8080/health", "--label", "lookout.check.strict.interval=1s",
		"--label", "lookout.check.strict.status=201")
	id := docker(t, "inspect", "-f", "{{.Id}}", name)

	find := func(op string, want map[string]string) bool {
		spans, procs := spansOf(t, j, "lookout")
		for i, s := range spans {
			if s.OperationName != op || testpeer.Tag(s.Tags, "container.name") != name || procs[i].ServiceName != "lookout" {
				continue
			}
			ok := true
			for k, v := range want {
				ok = ok && testpeer.Tag(s.Tags, k) == v
			}
			if ok {
				return true
			}
		}
		return false
	}
	common := map[string]string{"container.id": id, "container.image.name": "lookout-testsvc", "container.image.tag": "e2e",
		"team": "payments"}
	with := func(m map[string]string) map[string]string {
		out := map[string]string{}
		for k, v := range common {
			out[k] = v
		}
		for k, v := range m {
			out[k] = v
		}
		return out
	}
	eventually(t, 60*time.Second, "a passing HTTP check span", func() bool {
		return find("check web", with(map[string]string{"lookout.check.result": "success", "http.status_code": "200",
			"error": "", "span.kind": "client", "lookout.check.type": "http"}))
	})
	eventually(t, 30*time.Second, "a failing HTTP check span with the error flag", func() bool {
		return find("check strict", with(map[string]string{"lookout.check.result": "failure", "http.status_code": "200",
			"error": "true", "lookout.check.reason": "status 200 not in 201"}))
	})
	eventually(t, 30*time.Second, "a passing HEALTHCHECK span", func() bool {
		return find("check healthcheck", with(map[string]string{"lookout.check.result": "success", "process.exit.code": "0",
			"error": "", "lookout.check.type": "docker"}))
	})
	docker(t, "exec", name, "/testsvc", "set", "unhealthy")
	eventually(t, 30*time.Second, "a failing HEALTHCHECK span with exit code 1 and the error flag", func() bool {
		return find("check healthcheck", with(map[string]string{"lookout.check.result": "failure", "process.exit.code": "1",
			"error": "true"}))
	})
	spans, _ := spansOf(t, j, "lookout")
	if len(spans) == 0 || testpeer.Tag(spans[0].Tags, "host.name") == "" {
		t.Errorf("probe spans lack host.name")
	}
	eventually(t, 10*time.Second, "lookout_spans_probes counted", func() bool { return lastField(a, "lookout_spans_probes", "spans") > 0 })
	if f := lastField(a, "lookout_spans_export", "dropped_send_failure"); f != 0 {
		t.Errorf("dropped_send_failure=%d over %s, want 0", f, protocol)
	}
}

func TestTracesRelayTagsTheSendingContainer(t *testing.T) {
	j := startJaeger(t)
	gw := bridgeGateway(t)
	compact := net.JoinHostPort(gw, strconv.Itoa(testpeer.FreeUDPPort()))
	a := startAgent(t, "LOOKOUT_JAEGER_ENDPOINT="+j.CollectorURL, "LOOKOUT_SPANS_FLUSH_INTERVAL=200ms", "LOOKOUT_INTERVAL=1s",
		"LOOKOUT_JAEGER_COMPACT_LISTEN="+compact)
	eventually(t, 20*time.Second, "the relay listening", func() bool { return strings.Contains(a.logs(), "span relay listening") })
	name := "lk-trace-relay-" + runID
	service := "orders-" + runID
	runSpanSender(t, name, compact, service, 10,
		"--label", "lookout.check.web=http://:8080/", "--label", "lookout.check.web.interval=1s")
	id := docker(t, "inspect", "-f", "{{.Id}}", name)

	// The check's span and the service's server span for the check's request are one
	// trace: the service took the probe's uber-trace-id as its parent.
	eventually(t, 60*time.Second, "the service's server span a child of the check's span", func() bool {
		traces, _ := j.Traces(service, 200)
		for _, tr := range traces {
			probe := map[string]bool{}
			for _, s := range tr.Spans {
				if tr.Processes[s.ProcessID].ServiceName == "lookout" && s.OperationName == "check web" &&
					testpeer.Tag(s.Tags, "container.name") == name {
					probe[s.SpanID] = true
				}
			}
			for _, s := range tr.Spans {
				if tr.Processes[s.ProcessID].ServiceName == service && s.OperationName == "GET /" &&
					len(s.References) == 1 && s.References[0].RefType == "CHILD_OF" && probe[s.References[0].SpanID] {
					return true
				}
			}
		}
		return false
	})

	var parentLinked bool
	eventually(t, 60*time.Second, "the container's spans in Jaeger, tagged with the container", func() bool {
		spans, procs := spansOf(t, j, service)
		byID := map[string]testpeer.Span{}
		for _, s := range spans {
			byID[s.SpanID] = s
		}
		for i, s := range spans {
			p := procs[i]
			if p.ServiceName != service || testpeer.Tag(p.Tags, "container.name") != name ||
				testpeer.Tag(p.Tags, "container.id") != id || testpeer.Tag(p.Tags, "container.image.name") != "lookout-spansender" ||
				testpeer.Tag(p.Tags, "host.name") == "" || testpeer.Tag(p.Tags, "jaeger.version") == "" {
				continue
			}
			if s.OperationName == "query" && len(s.References) == 1 && byID[s.References[0].SpanID].OperationName == "handle" {
				parentLinked = true
			}
		}
		return parentLinked
	})

	// Garbage and a packet above the 65000-byte limit: counted, and the relay goes on.
	conn, err := net.Dial("udp", compact)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for range 3 {
		_, _ = conn.Write([]byte("this is not thrift"))
	}
	_, _ = conn.Write(make([]byte, 65400))
	after := time.Now().UnixMicro()
	eventually(t, 20*time.Second, "malformed and oversized packets counted", func() bool {
		return lastField(a, "lookout_spans_relay", "packets_dropped_malformed") == 3 &&
			lastField(a, "lookout_spans_relay", "packets_dropped_too_large") == 1
	})
	eventually(t, 30*time.Second, "spans sent after the bad packets in Jaeger", func() bool {
		spans, _ := spansOf(t, j, service)
		for _, s := range spans {
			if s.StartTime > after {
				return true
			}
		}
		return false
	})
	if n := lastField(a, "lookout_spans_export", "forwarded"); n <= 0 {
		t.Errorf("lookout_spans_export forwarded=%d", n)
	}
}

// Jaeger stopped: spans held up to the bound, then dropped and counted, the held ones
// delivered after the restart; over jaeger.thrift and over OTLP (whose retry rule differs).
func TestTracesCollectorOutageHoldsThenDrops(t *testing.T) {
	for _, p := range []string{"thrift", "otlp"} {
		t.Run(p, func(t *testing.T) { testCollectorOutage(t, p) })
	}
}

func testCollectorOutage(t *testing.T, protocol string) {
	j := startJaeger(t)
	gw := bridgeGateway(t)
	compact := net.JoinHostPort(gw, strconv.Itoa(testpeer.FreeUDPPort()))
	const limit = 200
	endpoint := j.CollectorURL
	if protocol == "otlp" {
		endpoint = j.OTLPURL
	}
	a := startAgent(t, "LOOKOUT_JAEGER_ENDPOINT="+endpoint, "LOOKOUT_JAEGER_PROTOCOL="+protocol,
		"LOOKOUT_SPANS_FLUSH_INTERVAL=200ms", "LOOKOUT_INTERVAL=1s",
		"LOOKOUT_PROBE_SPANS=false", "LOOKOUT_JAEGER_COMPACT_LISTEN="+compact,
		"LOOKOUT_SPANS_BATCH_SIZE=20", fmt.Sprintf("LOOKOUT_SPANS_QUEUE_LIMIT=%d", limit))
	eventually(t, 20*time.Second, "the relay listening", func() bool { return strings.Contains(a.logs(), "span relay listening") })
	name := "lk-trace-outage-" + protocol + "-" + runID
	service := "outage-" + protocol + "-" + runID
	runSpanSender(t, name, compact, service, 25) // 50 spans/s
	eventually(t, 60*time.Second, "spans in Jaeger", func() bool { s, _ := spansOf(t, j, service); return len(s) > 0 })

	j.Stop()
	stopped := time.Now().UnixMicro()
	// The exporter queues a client's batch (the sender's reporter flushes about a second
	// of spans per packet) whole or not at all, so a full queue holds at most limit spans,
	// and some fewer when the next batch did not fit.
	var queuedNow, dropped int64
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("last lookout_spans_export: queued=%d dropped_queue_full=%d", queuedNow, dropped)
		}
	})
	eventually(t, 60*time.Second, "the queue held spans and dropped the rest", func() bool {
		queuedNow, dropped = lastField(a, "lookout_spans_export", "queued"), lastField(a, "lookout_spans_export", "dropped_queue_full")
		return queuedNow > 0 && dropped > 0
	})
	queued := regexp.MustCompile(`(?m)^lookout_spans_export,.*[ ,]queued=(\d+)i`)
	for _, m := range queued.FindAllStringSubmatch(a.out(), -1) {
		if n, _ := strconv.Atoi(m[1]); n > limit {
			t.Errorf("queued=%d above the limit %d", n, limit)
		}
	}
	if err := j.Start(); err != nil {
		t.Fatal(err)
	}
	restarted := time.Now().UnixMicro()
	eventually(t, 60*time.Second, "spans held during the outage delivered after it", func() bool {
		spans, _ := spansOf(t, j, service)
		for _, s := range spans {
			if s.StartTime > stopped && s.StartTime < restarted {
				return true
			}
		}
		return false
	})
	eventually(t, 30*time.Second, "the queue drained", func() bool {
		q := lastField(a, "lookout_spans_export", "queued")
		return q >= 0 && q < limit
	})
}

// An OpenTelemetry SDK's spans, tagged with the sending container, exported to Jaeger over
// jaeger.thrift and over OTLP: the scope, status, kind and parent links survive both.
func TestTracesOTLPTagsTheSendingContainer(t *testing.T) {
	for _, p := range []string{"thrift", "otlp"} {
		t.Run(p, func(t *testing.T) { testOTLPReceiver(t, p) })
	}
}

func testOTLPReceiver(t *testing.T, protocol string) {
	j := startJaeger(t)
	gw := bridgeGateway(t)
	listen := net.JoinHostPort(gw, strconv.Itoa(testpeer.FreePort()))
	endpoint := j.CollectorURL
	if protocol == "otlp" {
		endpoint = j.OTLPURL
	}
	a := startAgent(t, "LOOKOUT_JAEGER_ENDPOINT="+endpoint, "LOOKOUT_JAEGER_PROTOCOL="+protocol,
		"LOOKOUT_SPANS_FLUSH_INTERVAL=200ms", "LOOKOUT_INTERVAL=1s", "LOOKOUT_PROBE_SPANS=false", "LOOKOUT_OTLP_LISTEN="+listen)
	eventually(t, 20*time.Second, "the OTLP receiver listening", func() bool { return strings.Contains(a.logs(), "OTLP receiver listening") })
	name := "lk-trace-otlp-" + protocol + "-" + runID
	service := "billing-" + protocol + "-" + runID
	// The OpenTelemetry SDK's otlptracehttp exporter, protobuf and gzip, to the receiver.
	otlpSender.run(t, name, []string{"OTLP_ENDPOINT=" + listen, "SERVICE=" + service, "RATE=5"})
	id := docker(t, "inspect", "-f", "{{.Id}}", name)

	var seen string // what Jaeger had last, for the failure message
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("last seen in Jaeger: %s", seen)
		}
	})
	eventually(t, 60*time.Second, "the SDK's spans in Jaeger, tagged with the container, service and parent links kept", func() bool {
		spans, procs := spansOf(t, j, service)
		byID := map[string]testpeer.Span{}
		for _, s := range spans {
			byID[s.SpanID] = s
		}
		if len(spans) > 0 {
			seen = fmt.Sprintf("%d spans; %+v of %+v", len(spans), spans[0], procs[0])
		}
		for i, s := range spans {
			p := procs[i]
			if p.ServiceName != service || testpeer.Tag(p.Tags, "container.name") != name ||
				testpeer.Tag(p.Tags, "container.id") != id || testpeer.Tag(p.Tags, "container.image.name") != "lookout-otlpsender" ||
				testpeer.Tag(p.Tags, "host.name") == "" || testpeer.Tag(p.Tags, "deployment.environment") != "e2e" {
				continue
			}
			var parent testpeer.Span
			if len(s.References) == 1 && s.References[0].RefType == "CHILD_OF" {
				parent = byID[s.References[0].SpanID]
			}
			if s.OperationName == "query" && parent.OperationName == "handle" &&
				testpeer.Tag(s.Tags, "span.kind") == "client" && testpeer.Tag(s.Tags, "error") == "true" &&
				testpeer.Tag(s.Tags, "otel.status_description") == "row not found" &&
				testpeer.Tag(s.Tags, "otel.scope.name") == "otlpsender" && testpeer.Tag(parent.Tags, "span.kind") == "server" {
				return true
			}
		}
		return false
	})

	// Bad requests from the host: answered, counted, and the receiver goes on.
	post := func(ctype string, body string) int {
		resp, err := http.Post("http://"+listen+"/v1/traces", ctype, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if c := post("application/x-protobuf", "\xff\xff not protobuf"); c != http.StatusBadRequest {
		t.Errorf("malformed request: %d, want 400", c)
	}
	if c := post("text/plain", `resourceSpans`); c != http.StatusUnsupportedMediaType {
		t.Errorf("text request: %d, want 415", c)
	}
	// OTLP/HTTP JSON (hex IDs), as browser and some language SDKs send it.
	jsonService := "json-" + protocol + "-" + runID
	jsonSpan := fmt.Sprintf(`{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":%q}}]},`+
		`"scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"json op",`+
		`"kind":2,"startTimeUnixNano":"%d","endTimeUnixNano":"%d"}]}]}]}`, jsonService, time.Now().UnixNano(), time.Now().UnixNano()+1e6)
	if c := post("application/json", jsonSpan); c != http.StatusOK {
		t.Errorf("JSON request: %d, want 200", c)
	}
	after := time.Now().UnixMicro()
	eventually(t, 20*time.Second, "lookout_spans_otlp counting them", func() bool {
		return lastField(a, "lookout_spans_otlp", "requests_malformed") == 1 &&
			lastField(a, "lookout_spans_otlp", "requests_unsupported_media_type") == 1 &&
			lastField(a, "lookout_spans_otlp", "spans_received") > 0
	})
	eventually(t, 30*time.Second, "the JSON request's span in Jaeger", func() bool {
		spans, _ := spansOf(t, j, jsonService)
		return len(spans) == 1 && spans[0].SpanID == "eee19b7ec3c1b174" && spans[0].TraceID == "5b8efff798038103d269b633813fc60c" &&
			spans[0].OperationName == "json op" && testpeer.Tag(spans[0].Tags, "span.kind") == "server"
	})
	eventually(t, 30*time.Second, "spans sent after the bad requests in Jaeger", func() bool {
		spans, _ := spansOf(t, j, service)
		for _, s := range spans {
			if s.StartTime > after {
				return true
			}
		}
		return false
	})
}

// On Swarm, a service on an overlay network sends its spans to the node's docker_gwbridge
// gateway, where the agent (on the host network) listens. The packets come from the
// task's docker_gwbridge address, which the task's container inspection does not show:
// the inventory reads it from the network, and the spans arrive tagged with the task.
// The same address is where the agent probes the task: its overlay address is not
// reachable from the host.
func TestTracesRelayOnSwarm(t *testing.T) {
	ensureSwarm(t)
	j := startJaeger(t)
	gw := docker(t, "network", "inspect", "docker_gwbridge", "-f", "{{(index .IPAM.Config 0).Gateway}}")
	compact := net.JoinHostPort(gw, strconv.Itoa(testpeer.FreeUDPPort()))
	a := startAgent(t, "LOOKOUT_JAEGER_ENDPOINT="+j.CollectorURL, "LOOKOUT_SPANS_FLUSH_INTERVAL=200ms", "LOOKOUT_INTERVAL=1s",
		"LOOKOUT_PROBE_SPANS=false", "LOOKOUT_JAEGER_COMPACT_LISTEN="+compact)
	eventually(t, 20*time.Second, "the relay listening", func() bool { return strings.Contains(a.logs(), "span relay listening") })

	spanSender.once.Do(func() {
		root, _ := filepath.Abs("..")
		spanSender.err = testpeer.BuildModuleImage(root, spanSender.dir, spanSender.tag)
	})
	if spanSender.err != nil {
		t.Fatal(spanSender.err)
	}
	netName := "lknet" + runID
	svc := "lkspans" + runID
	service := "swarm-orders-" + runID
	docker(t, "network", "create", "-d", "overlay", "--attachable", "--label", "lookout-test.run="+runID, netName)
	t.Cleanup(func() { removeService(svc); _ = exec.Command("docker", "network", "rm", netName).Run() })
	docker(t, "service", "create", "--detach", "--name", svc, "--network", netName, "--label", "lookout-test.run="+runID,
		"--container-label", "lookout.enable=true", "--container-label", "lookout-test.run="+runID,
		"--container-label", "lookout.check.web=http://:8080/", "--container-label", "lookout.check.web.interval=1s",
		"-e", "JAEGER_AGENT="+compact, "-e", "SERVICE="+service, "-e", "RATE=10", spanSender.tag)

	var seen string
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("last seen in Jaeger: %s", seen)
		}
	})
	eventually(t, 90*time.Second, "the task's spans in Jaeger tagged with its container, service and node", func() bool {
		spans, procs := spansOf(t, j, service)
		for i := range spans {
			p := procs[i]
			seen = fmt.Sprintf("%d spans; process %+v", len(spans), p)
			if testpeer.Tag(p.Tags, "docker.swarm.service.name") == svc && strings.HasPrefix(testpeer.Tag(p.Tags, "container.name"), svc+".1.") &&
				testpeer.Tag(p.Tags, "docker.swarm.task.slot") == "1" && testpeer.Tag(p.Tags, "docker.swarm.node.id") != "" &&
				testpeer.Tag(p.Tags, "container.image.name") == "lookout-spansender" {
				return true
			}
		}
		return false
	})
	eventually(t, 30*time.Second, "the task's HTTP check passing through its docker_gwbridge address", func() bool {
		for _, l := range strings.Split(a.out(), "\n") {
			if strings.HasPrefix(l, "lookout_check,") && strings.Contains(l, ",check=web,") &&
				strings.Contains(l, ",container_name="+svc+".1,") && strings.Contains(l, ",result=success") {
				return true
			}
		}
		return false
	})
	if n := lastField(a, "lookout_spans_relay", "packets_unknown_sender"); n > 0 {
		t.Logf("%d packets from an unknown sender (sent before the task was inspected)", n)
	}
}
