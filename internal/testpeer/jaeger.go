package testpeer

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// JaegerBin returns the path of a Jaeger peer binary ("jaeger-all-in-one" or
// "jaeger-agent") built by `make peers` (scripts/peers.sh jaeger) under root/.peers/bin.
func JaegerBin(root, name string) (string, error) { return PeerBin(root, name, "jaeger") }

// Jaeger is a Jaeger all-in-one process (collector, in-memory storage, query API) with
// every port on 127.0.0.1: CollectorURL takes jaeger.thrift over HTTP, QueryURL answers
// the query API. Stop and Start again keep the ports (spans kept in memory are lost).
type Jaeger struct {
	Bin           string
	Log           string // file the process writes to
	CollectorURL  string // http://127.0.0.1:PORT/api/traces
	OTLPURL       string // http://127.0.0.1:PORT/v1/traces, the collector's OTLP/HTTP receiver
	QueryURL      string // http://127.0.0.1:PORT
	CollectorGRPC string // 127.0.0.1:PORT, where jaeger-agent reports
	args          []string
	proc          *process
}

// StartJaeger runs bin (jaeger-all-in-one) with its log in dir.
func StartJaeger(bin, dir string) (*Jaeger, error) {
	hp := func(p int) string { return "127.0.0.1:" + strconv.Itoa(p) }
	collector, query, grpc, otlp := FreePort(), FreePort(), FreePort(), FreePort()
	j := &Jaeger{Bin: bin, Log: filepath.Join(dir, "jaeger.log"), CollectorGRPC: hp(grpc),
		CollectorURL: fmt.Sprintf("http://127.0.0.1:%d/api/traces", collector),
		OTLPURL:      fmt.Sprintf("http://127.0.0.1:%d/v1/traces", otlp),
		QueryURL:     fmt.Sprintf("http://127.0.0.1:%d", query)}
	j.args = []string{
		"--collector.http-server.host-port=" + hp(collector),
		"--collector.grpc-server.host-port=" + hp(grpc),
		"--collector.otlp.grpc.host-port=" + hp(FreePort()),
		"--collector.otlp.http.host-port=" + hp(otlp),
		"--collector.zipkin.host-port=",
		"--query.http-server.host-port=" + hp(query),
		"--query.grpc-server.host-port=" + hp(FreePort()),
		"--admin.http.host-port=" + hp(FreePort()),
		"--processor.jaeger-compact.server-host-port=" + hp(FreeUDPPort()),
		"--processor.jaeger-binary.server-host-port=" + hp(FreeUDPPort()),
		"--processor.zipkin-compact.server-host-port=" + hp(FreeUDPPort()),
		"--http-server.host-port=" + hp(FreePort()),
		"--memory.max-traces=200000",
		"--log-level=warn",
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	return j, j.Start()
}

// Start starts (or restarts) the process on the same ports and waits until the
// collector and the query API answer. Jaeger's query service needs an inotify instance
// (a watcher on its UI configuration); when the machine has none left for the user
// ("too many open files": a busy dockerd following many logs holds them), it tries again
// for up to a minute.
func (j *Jaeger) Start() error {
	var err error
	for range 30 {
		if err = j.start(); err == nil || !strings.Contains(err.Error(), "too many open files") {
			return err
		}
		time.Sleep(2 * time.Second)
	}
	return err
}

func (j *Jaeger) start() error {
	ready := func() bool { _, err := j.Services(); return err == nil && j.collectorUp() }
	var err error
	j.proc, err = startProcess("jaeger", j.Log, []string{"SPAN_STORAGE_TYPE=memory"}, ready, 60*time.Second, j.Bin, j.args...)
	return err
}

func (j *Jaeger) collectorUp() bool {
	c, err := net.DialTimeout("tcp", strings.TrimSuffix(strings.TrimPrefix(j.CollectorURL, "http://"), "/api/traces"), time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// Stop kills the process and waits for it.
func (j *Jaeger) Stop() {
	j.proc.stop(0)
	j.proc = nil
}

// Trace is a trace as the query API returns it.
type Trace struct {
	TraceID   string                  `json:"traceID"`
	Spans     []Span                  `json:"spans"`
	Processes map[string]TraceProcess `json:"processes"`
}

// Span is a span as the query API returns it.
type Span struct {
	TraceID       string `json:"traceID"`
	SpanID        string `json:"spanID"`
	OperationName string `json:"operationName"`
	References    []struct {
		RefType string `json:"refType"`
		TraceID string `json:"traceID"`
		SpanID  string `json:"spanID"`
	} `json:"references"`
	StartTime int64      `json:"startTime"`
	Duration  int64      `json:"duration"`
	Tags      []KeyValue `json:"tags"`
	ProcessID string     `json:"processID"`
	Flags     int        `json:"flags"`
	Logs      []SpanLog  `json:"logs"`
	Warnings  []string   `json:"warnings"`
}

// SpanLog is a span's log (an OpenTelemetry span event).
type SpanLog struct {
	Timestamp int64      `json:"timestamp"`
	Fields    []KeyValue `json:"fields"`
}

// TraceProcess is a process of a trace.
type TraceProcess struct {
	ServiceName string     `json:"serviceName"`
	Tags        []KeyValue `json:"tags"`
}

// KeyValue is a tag.
type KeyValue struct {
	Key   string `json:"key"`
	Type  string `json:"type"`
	Value any    `json:"value"`
}

// Tag returns the value of tag key as text ("" if absent).
func Tag(tags []KeyValue, key string) string {
	for _, t := range tags {
		if t.Key == key {
			return fmt.Sprint(t.Value)
		}
	}
	return ""
}

func (j *Jaeger) get(path string, out any) error {
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(j.QueryURL + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// Services lists the services Jaeger has spans of.
func (j *Jaeger) Services() ([]string, error) {
	var r struct {
		Data []string `json:"data"`
	}
	err := j.get("/api/services", &r)
	return r.Data, err
}

// Traces returns up to limit recent traces of service.
func (j *Jaeger) Traces(service string, limit int) ([]Trace, error) {
	var r struct {
		Data []Trace `json:"data"`
	}
	q := url.Values{"service": {service}, "limit": {strconv.Itoa(limit)}, "lookback": {"1h"}}
	err := j.get("/api/traces?"+q.Encode(), &r)
	return r.Data, err
}

// Trace returns one trace by its hex ID.
func (j *Jaeger) Trace(id string) (Trace, error) {
	var r struct {
		Data []Trace `json:"data"`
	}
	if err := j.get("/api/traces/"+id, &r); err != nil {
		return Trace{}, err
	}
	if len(r.Data) == 0 {
		return Trace{}, fmt.Errorf("trace %s: not found", id)
	}
	return r.Data[0], nil
}

// RawTrace returns one trace by its hex ID as the query API's JSON, every field kept
// (logs, flags, warnings), for tests that compare what Jaeger keeps.
func (j *Jaeger) RawTrace(id string) (map[string]any, error) {
	var r struct {
		Data []map[string]any `json:"data"`
	}
	if err := j.get("/api/traces/"+id, &r); err != nil {
		return nil, err
	}
	if len(r.Data) == 0 {
		return nil, fmt.Errorf("trace %s: not found", id)
	}
	return r.Data[0], nil
}

// RawTraceV3 returns one trace by its hex ID from the query API v3, which answers in
// OTLP's JSON.
func (j *Jaeger) RawTraceV3(id string) (map[string]any, error) {
	var r map[string]any
	err := j.get("/api/v3/traces/"+id, &r)
	return r, err
}

// BuildModuleImage builds the Go module in root/dir (a module of its own, such as
// testdata/spansender) as a static binary named after dir's last element and packs it
// with dir's Dockerfile into image tag.
func BuildModuleImage(root, dir, tag string) error {
	tmp, err := os.MkdirTemp("", "lookout-image-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	src := filepath.Join(root, dir)
	cmd := exec.Command("go", "build", "-o", filepath.Join(tmp, filepath.Base(dir)), ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %v\n%s", dir, err, b)
	}
	df, err := os.ReadFile(filepath.Join(src, "Dockerfile"))
	if err == nil {
		err = os.WriteFile(filepath.Join(tmp, "Dockerfile"), df, 0o644)
	}
	if err != nil {
		return err
	}
	if out, err := exec.Command("docker", "build", "-q", "-t", tag, tmp).CombinedOutput(); err != nil {
		return fmt.Errorf("docker build %s: %v\n%s", tag, err, out)
	}
	return nil
}
