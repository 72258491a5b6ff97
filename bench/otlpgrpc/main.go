// Command otlpgrpc weighs three ways for the agent to serve OTLP/gRPC
// (TraceService/Export): the agent's own receiver on Go's HTTP/2 server
// (traces/receiver/otlp), google.golang.org/grpc, and connectrpc.com/connect (the gRPC
// protocol over net/http). Each server runs in a child process of its own; a grpc-go
// client (what the OpenTelemetry SDKs' gRPC exporters use) sends the same requests to
// each, and the child's CPU time (utime+stime from /proc) over the load, divided by the
// spans sent, is the figure. The runs are interleaved, so drift on the machine affects
// every server alike. The binary sizes are measured by sizes.sh. A module of its own:
// grpc-go and connect stay out of the agent's module.
//
//	go run . [-requests 2000] [-spans 100] [-rounds 3]
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"connectrpc.com/connect"
	collectorpb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/lookout-agent/lookout/traces"
	"github.com/lookout-agent/lookout/traces/receiver/otlp"
)

var servers = []string{"builtin", "grpcgo", "connect"}

func main() {
	serve := flag.String("serve", "", "run one server (builtin, grpcgo, connect) and print its address (the child process)")
	requests := flag.Int("requests", 2000, "requests per run")
	spans := flag.Int("spans", 100, "spans per request")
	rounds := flag.Int("rounds", 3, "runs of each server, interleaved")
	only := flag.String("only", "", "measure only this server")
	profile := flag.String("cpuprofile", "", "with -serve: write the server's CPU profile to this file")
	flag.Parse()
	if *only != "" {
		servers = []string{*only}
	}
	if *serve != "" {
		if *profile != "" {
			f, err := os.Create(*profile)
			if err == nil {
				_ = pprof.StartCPUProfile(f)
				defer pprof.StopCPUProfile()
			}
		}
		if err := runServer(*serve); err != nil {
			fmt.Fprintln(os.Stderr, "otlpgrpc:", err)
			os.Exit(1)
		}
		return
	}
	req := request(*spans)
	results := map[string][]float64{}
	for r := range *rounds {
		for _, s := range servers {
			us, err := measure(s, req, *requests)
			if err != nil {
				fmt.Fprintln(os.Stderr, "otlpgrpc:", s, err)
				os.Exit(1)
			}
			results[s] = append(results[s], us)
			fmt.Printf("round %d %-8s %.2f µs CPU/span\n", r+1, s, us)
		}
	}
	fmt.Printf("\n%d requests of %d spans (%d bytes) per run; server CPU per span, min–max of %d runs:\n",
		*requests, *spans, len(mustMarshal(req)), *rounds)
	for _, s := range servers {
		lo, hi := results[s][0], results[s][0]
		for _, v := range results[s] {
			lo, hi = min(lo, v), max(hi, v)
		}
		fmt.Printf("  %-8s %.1f–%.1f µs\n", s, lo, hi)
	}
}

// request is an SDK-like export request: one resource, one scope, n spans with a few
// attributes and an event each.
func request(n int) *collectorpb.ExportTraceServiceRequest {
	str := func(k, v string) *commonpb.KeyValue {
		return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v}}}
	}
	ss := &tracepb.ScopeSpans{Scope: &commonpb.InstrumentationScope{Name: "bench", Version: "1"}}
	now := uint64(time.Now().UnixNano())
	for i := range n {
		id := []byte{1, 2, 3, 4, 5, 6, byte(i >> 8), byte(i) | 1}
		ss.Spans = append(ss.Spans, &tracepb.Span{TraceId: []byte{0: 1, 15: byte(i) | 1}, SpanId: id, Name: "GET /orders/{id}",
			Kind: tracepb.Span_SPAN_KIND_SERVER, StartTimeUnixNano: now, EndTimeUnixNano: now + 1e6,
			Attributes: []*commonpb.KeyValue{str("http.method", "GET"), str("http.route", "/orders/{id}"), str("net.peer.name", "10.0.0.1")},
			Events:     []*tracepb.Span_Event{{TimeUnixNano: now + 5e5, Name: "cache miss"}},
			Status:     &tracepb.Status{Code: tracepb.Status_STATUS_CODE_OK}})
	}
	return &collectorpb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{
		Resource:   &resourcepb.Resource{Attributes: []*commonpb.KeyValue{str("service.name", "orders"), str("host.name", "bench")}},
		ScopeSpans: []*tracepb.ScopeSpans{ss}}}}
}

// measure runs server s in a child process, sends it requests copies of req and returns
// the child's CPU time per span over the load, in µs.
func measure(s string, req *collectorpb.ExportTraceServiceRequest, requests int) (float64, error) {
	self, err := os.Executable()
	if err != nil {
		return 0, err
	}
	args := []string{"-serve", s}
	if p := os.Getenv("OTLPGRPC_CPUPROFILE"); p != "" {
		args = append(args, "-cpuprofile", p+"."+s)
	}
	cmd := exec.Command(self, args...)
	cmd.Stderr = os.Stderr
	in, _ := cmd.StdinPipe() // closed: the child exits
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	defer func() { _ = in.Close(); _ = cmd.Wait() }()
	addr, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		return 0, fmt.Errorf("no address from the server: %w", err)
	}
	conn, err := grpc.NewClient(strings.TrimSpace(addr), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	client := collectorpb.NewTraceServiceClient(conn)
	ctx := context.Background()
	for range 50 { // warm up: connection, buffers
		if _, err := client.Export(ctx, req); err != nil {
			return 0, err
		}
	}
	before, err := cpuTime(cmd.Process.Pid)
	if err != nil {
		return 0, err
	}
	for range requests {
		if _, err := client.Export(ctx, req); err != nil {
			return 0, err
		}
	}
	after, err := cpuTime(cmd.Process.Pid)
	if err != nil {
		return 0, err
	}
	spans := requests * traces.CountSpans(req.ResourceSpans)
	return float64((after - before).Microseconds()) / float64(spans), nil
}

// cpuTime is the user and system time of process pid so far.
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / 100, nil // USER_HZ is 100 on Linux
}

// discard is a sink that takes everything, as an empty queue does.
type discard struct{}

func (discard) ExportSpans(rss []*tracepb.ResourceSpans) bool {
	_ = traces.CountSpans(rss)
	return true
}

// runServer serves until stdin closes.
func runServer(kind string) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	var run func()
	switch kind {
	case "builtin":
		ln.Close()
		g, err := otlp.NewGRPC(otlp.Config{Addr: ln.Addr().String()}, discard{})
		if err != nil {
			return err
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go g.Run(ctx)
		run = func() {}
	case "grpcgo":
		s := grpc.NewServer(grpc.MaxRecvMsgSize(otlp.DefaultMaxRequestSize))
		collectorpb.RegisterTraceServiceServer(s, grpcServer{})
		go func() { _ = s.Serve(ln) }()
		run = s.Stop
	case "connect":
		mux := http.NewServeMux()
		// TracesData and Empty are ExportTraceServiceRequest and an empty response on the
		// wire; the collector package would link grpc-go into an agent built this way.
		mux.Handle(otlp.ExportMethod, connect.NewUnaryHandler(otlp.ExportMethod,
			func(_ context.Context, r *connect.Request[tracepb.TracesData]) (*connect.Response[emptypb.Empty], error) {
				discard{}.ExportSpans(r.Msg.ResourceSpans)
				return connect.NewResponse(&emptypb.Empty{}), nil
			}, connect.WithReadMaxBytes(otlp.DefaultMaxRequestSize)))
		var p http.Protocols
		p.SetHTTP1(true)
		p.SetUnencryptedHTTP2(true)
		srv := &http.Server{Handler: mux, Protocols: &p}
		go func() { _ = srv.Serve(ln) }()
		run = func() { _ = srv.Close() }
	default:
		return fmt.Errorf("server %q: want one of %v", kind, servers)
	}
	fmt.Println(ln.Addr().String())
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n') // until the parent closes stdin
	run()
	return nil
}

type grpcServer struct {
	collectorpb.UnimplementedTraceServiceServer
}

func (grpcServer) Export(_ context.Context, r *collectorpb.ExportTraceServiceRequest) (*collectorpb.ExportTraceServiceResponse, error) {
	discard{}.ExportSpans(r.ResourceSpans)
	return &collectorpb.ExportTraceServiceResponse{}, nil
}

func mustMarshal(m *collectorpb.ExportTraceServiceRequest) []byte {
	b, err := proto.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}
