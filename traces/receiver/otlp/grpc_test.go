package otlp

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	collectorpb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"golang.org/x/net/http2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	_ "google.golang.org/grpc/encoding/gzip" // the client's gzip compressor
	"google.golang.org/grpc/status"

	"github.com/lookout-agent/lookout/inventory"
	"github.com/lookout-agent/lookout/traces"
	"github.com/lookout-agent/lookout/traces/internal/tracetest"
)

// startGRPC serves a GRPC receiver on 127.0.0.1, where the test container lives, and
// returns a grpc-go client of it: the client OpenTelemetry's gRPC exporters use.
func startGRPC(t *testing.T, sink traces.Sink) (*GRPC, *grpc.ClientConn) {
	t.Helper()
	c := tracetest.Container()
	c.Networks = map[string]string{"lo": "127.0.0.1"}
	c.BridgeIP = ""
	senders := traces.NewSenders()
	senders.HandleChange(context.Background(), inventory.Change{Kind: inventory.Seen, Container: c, Engine: inventory.Engine{Host: "node-a"}})
	g, err := NewGRPC(Config{Addr: "127.0.0.1:0", MaxRequestSize: 4096, Senders: senders}, sink)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { g.Run(ctx); close(done) }()
	conn, err := grpc.NewClient(g.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(); cancel(); <-done })
	return g, conn
}

func TestGRPCReceiverTagsTheSendingContainer(t *testing.T) {
	sink := &tracetest.Sink{}
	g, conn := startGRPC(t, sink)
	client := collectorpb.NewTraceServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, opts := range [][]grpc.CallOption{nil, {grpc.UseCompressor("gzip")}} {
		resp, err := client.Export(ctx, otlpRequest(), opts...)
		if err != nil || resp.PartialSuccess != nil {
			t.Fatalf("export %v: %v, %v", opts, resp, err)
		}
	}
	rss := sink.Resources()
	if len(rss) != 2 || len(sink.Spans()) != 4 {
		t.Fatalf("sink got %d resources, %d spans; want 2 and 4", len(rss), len(sink.Spans()))
	}
	got := tracetest.ResourceTags(rss[1])
	want := map[string]string{"deployment.environment": "prod", "container.id": "c0ffee", "container.name": "api-1",
		"host.name": "node-a", "docker.swarm.service.name": "shop_api", "team": "payments"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("resource attribute %s=%q, want %q (all: %v)", k, got[k], v, got)
		}
	}
	if st := g.Stats(); st.Requests != 2 || st.Spans != 8 || st.BadSpans != 4 || st.UnknownSender != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestGRPCReceiverRefusals(t *testing.T) {
	sink := &tracetest.Sink{}
	g, conn := startGRPC(t, sink)
	client := collectorpb.NewTraceServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	big := &collectorpb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{
		Resource: &resourcepb.Resource{Attributes: []*commonpb.KeyValue{kv("blob", sv(strings.Repeat("x", 5000)))}}}}}
	check := func(what string, err error, want codes.Code) {
		t.Helper()
		if status.Code(err) != want {
			t.Errorf("%s: %v, want %s", what, err, want)
		}
	}
	_, err := client.Export(ctx, big)
	check("too large", err, codes.ResourceExhausted)
	_, err = client.Export(ctx, big, grpc.UseCompressor("gzip"))
	check("too large once unzipped", err, codes.ResourceExhausted)
	err = conn.Invoke(ctx, "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export", &collectorpb.ExportTraceServiceRequest{}, &collectorpb.ExportTraceServiceResponse{})
	check("another method", err, codes.Unimplemented)
	sink.SetFull(true)
	_, err = client.Export(ctx, otlpRequest())
	check("queue full", err, codes.Unavailable)

	// What grpc-go will not send: garbage, and an encoding the receiver does not know,
	// over Go's own HTTP/2 client.
	h2 := &http.Client{Transport: &http.Transport{Protocols: new(http.Protocols)}}
	h2.Transport.(*http.Transport).Protocols.SetUnencryptedHTTP2(true)
	call := func(enc string, msg []byte) (int, string, string) {
		req, _ := http.NewRequest(http.MethodPost, "http://"+g.Addr().String()+ExportMethod, bytes.NewReader(msg))
		req.Header.Set("Content-Type", "application/grpc")
		req.Header.Set("Te", "trailers")
		if enc != "" {
			req.Header.Set("Grpc-Encoding", enc)
		}
		resp, err := h2.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("Grpc-Status"), resp.Header.Get("Grpc-Message")
	}
	if code, st, msg := call("", []byte{0, 0, 0, 0, 3, 0xff, 0xff, 0xff}); code != 200 || st != "3" || !strings.Contains(msg, "malformed") {
		t.Errorf("garbage: %d grpc-status %s %q, want 3 (INVALID_ARGUMENT)", code, st, msg)
	}
	if code, st, _ := call("br", []byte{1, 0, 0, 0, 1, 0}); code != 200 || st != "12" {
		t.Errorf("grpc-encoding br: %d grpc-status %s, want 12 (UNIMPLEMENTED)", code, st)
	}
	if code, st, _ := call("", []byte{0, 0, 0}); code != 200 || st != "3" {
		t.Errorf("a cut prefix: %d grpc-status %s, want 3", code, st)
	}
	resp, err := http.Post("http://"+g.Addr().String()+ExportMethod, "application/json", strings.NewReader("{}"))
	if err != nil || resp.StatusCode != http.StatusUnsupportedMediaType {
		t.Errorf("not gRPC: %v %v, want 415", resp, err)
	} else {
		resp.Body.Close()
	}
	st := g.Stats()
	if st.TooLarge != 2 || st.Unsupported != 3 || st.QueueFull != 1 || st.Malformed != 2 || len(sink.Resources()) != 0 {
		t.Errorf("stats %+v, %d resources", st, len(sink.Resources()))
	}
}

// The gRPC receiver's HTTP/2 settings bound what one connection may hold open: at most
// grpcMaxStreams calls at once, and a receive window of grpcReceiveBuffer per stream and
// per connection (Go's default buffers 1 MiB a connection before any handler reads).
func TestGRPCReceiverHTTP2Bounds(t *testing.T) {
	g, _ := startGRPC(t, &tracetest.Sink{})
	c, err := net.DialTimeout("tcp", g.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(c, c)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	settings := map[http2.SettingID]uint32{}
	windowUpdate := uint32(0)
	for settings[http2.SettingMaxConcurrentStreams] == 0 || windowUpdate == 0 {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("reading the server's settings: %v (so far %v, connection window update %d)", err, settings, windowUpdate)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			_ = f.ForeachSetting(func(s http2.Setting) error { settings[s.ID] = s.Val; return nil })
		case *http2.WindowUpdateFrame:
			if f.StreamID == 0 {
				windowUpdate = f.Increment
			}
		}
	}
	if n := settings[http2.SettingMaxConcurrentStreams]; n != grpcMaxStreams {
		t.Errorf("SETTINGS_MAX_CONCURRENT_STREAMS = %d, want %d", n, grpcMaxStreams)
	}
	if n := settings[http2.SettingInitialWindowSize]; n != grpcReceiveBuffer {
		t.Errorf("SETTINGS_INITIAL_WINDOW_SIZE (a stream's receive window) = %d, want %d", n, grpcReceiveBuffer)
	}
	// The connection's window starts at HTTP/2's 65,535 bytes; the server raises it to its buffer.
	if got := 65535 + windowUpdate; got != grpcReceiveBuffer {
		t.Errorf("the connection's receive window = %d, want %d", got, grpcReceiveBuffer)
	}
}
