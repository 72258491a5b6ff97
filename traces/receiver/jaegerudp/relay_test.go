package jaegerudp

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/uber/jaeger-client-go/thrift"
	"github.com/uber/jaeger-client-go/thrift-gen/agent"
	"github.com/uber/jaeger-client-go/thrift-gen/jaeger"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"

	"github.com/lookout-agent/lookout/inventory"
	"github.com/lookout-agent/lookout/traces"
	"github.com/lookout-agent/lookout/traces/internal/tracetest"
	"github.com/lookout-agent/lookout/traces/jaegerthrift"
)

func strTag(k, v string) *jaeger.Tag {
	return &jaeger.Tag{Key: k, VType: jaeger.TagType_STRING, VStr: &v}
}

// encodeEmitBatch writes b as a jaeger-client-go UDP sender does.
func encodeEmitBatch(t testing.TB, b *jaeger.Batch, proto Protocol) []byte {
	t.Helper()
	ctx := context.Background()
	buf := thrift.NewTMemoryBuffer()
	var p thrift.TProtocol = thrift.NewTCompactProtocolConf(buf, &thrift.TConfiguration{})
	if proto == Binary {
		p = thrift.NewTBinaryProtocolConf(buf, &thrift.TConfiguration{})
	}
	if err := p.WriteMessageBegin(ctx, "emitBatch", thrift.ONEWAY, 1); err != nil {
		t.Fatal(err)
	}
	args := agent.NewAgentEmitBatchArgs()
	args.Batch = b
	if err := args.Write(ctx, p); err != nil {
		t.Fatal(err)
	}
	if err := p.WriteMessageEnd(ctx); err != nil {
		t.Fatal(err)
	}
	_ = p.Flush(ctx)
	return buf.Bytes()
}

func testBatch(service string, n int) *jaeger.Batch {
	b := &jaeger.Batch{Process: &jaeger.Process{ServiceName: service, Tags: []*jaeger.Tag{strTag("hostname", "abc"), strTag("container.name", "spoofed")}}}
	for i := range n {
		b.Spans = append(b.Spans, &jaeger.Span{TraceIdLow: int64(i + 1), SpanId: int64(i + 1), OperationName: "op", StartTime: time.Now().UnixMicro(), Duration: 5})
	}
	return b
}

func TestDecodeEmitBatchBothProtocols(t *testing.T) {
	for _, proto := range []Protocol{Compact, Binary} {
		pkt := encodeEmitBatch(t, testBatch("svc", 3), proto)
		b, err := DecodeEmitBatch(pkt, proto)
		if err != nil {
			t.Fatalf("%s: %v", proto, err)
		}
		if b.Process.ServiceName != "svc" || len(b.Spans) != 3 || b.Spans[2].SpanId != 3 {
			t.Errorf("%s: decoded %+v", proto, b)
		}
		if _, err := DecodeEmitBatch(pkt, 1-proto); err == nil {
			t.Errorf("%s packet read as %s: no error", proto, 1-proto)
		}
	}
}

func TestDecodeEmitBatchMalformed(t *testing.T) {
	good := encodeEmitBatch(t, testBatch("svc", 2), Compact)
	cases := map[string][]byte{
		"empty":     {},
		"garbage":   []byte("hello, this is not thrift"),
		"truncated": good[:len(good)/2],
		// A message header, then a struct whose list field claims 2^28 spans.
		"huge list": append(append([]byte{}, good[:len("emitBatch")+4]...), 0x1c, 0x1c, 0x18, 0x03, 's', 'v', 'c', 0x00, 0x19, 0xfc, 0xff, 0xff, 0xff, 0x7f),
	}
	for name, pkt := range cases {
		if b, err := DecodeEmitBatch(pkt, Compact); err == nil {
			t.Errorf("%s: no error, got %+v", name, b)
		} else if !strings.Contains(err.Error(), "malformed") {
			t.Errorf("%s: error %q does not say malformed", name, err)
		}
	}
}

// FuzzDecodeEmitBatch: a jaeger-agent UDP packet comes from any container. DecodeEmitBatch
// never panics or allocates beyond the packet (boundedProtocol); a batch it accepts is
// one the reference thrift writer (jaeger-client-go's) writes back and DecodeEmitBatch
// reads again to the same bytes (a fixed point: NaN tags compare), and one the OTLP
// conversion takes whole.
func FuzzDecodeEmitBatch(f *testing.F) {
	f.Add(encodeEmitBatch(f, testBatch("svc", 2), Compact), false)
	f.Add(encodeEmitBatch(f, testBatch("svc", 2), Binary), true)
	f.Fuzz(func(t *testing.T, pkt []byte, binary bool) {
		proto := Compact
		if binary {
			proto = Binary
		}
		b, err := DecodeEmitBatch(pkt, proto)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "malformed packet") {
				t.Fatalf("error %q does not say malformed packet", err)
			}
			return
		}
		once := encodeEmitBatch(t, b, proto)
		again, err := DecodeEmitBatch(once, proto)
		if err != nil {
			t.Fatalf("the batch written back does not decode: %v", err)
		}
		if twice := encodeEmitBatch(t, again, proto); !bytes.Equal(once, twice) {
			t.Fatalf("written back %x, then %x", once, twice)
		}
		rs := jaegerthrift.SpansToOTLP(b, &resourcepb.Resource{})
		n := 0
		for _, ss := range rs.ScopeSpans {
			n += len(ss.Spans)
		}
		if n != len(b.Spans) {
			t.Fatalf("%d spans converted of %d", n, len(b.Spans))
		}
	})
}

func TestRelayTagsTheSendingContainer(t *testing.T) {
	sink := &tracetest.Sink{}
	senders := traces.NewSenders()
	r, err := New(Config{MaxPacketSize: 1000, Senders: senders}, sink)
	if err != nil {
		t.Fatal(err)
	}
	c := tracetest.Container()
	senders.HandleChange(context.Background(), inventory.Change{Kind: inventory.Seen, Container: c, Engine: inventory.Engine{Host: "node-a"}})
	pkt := encodeEmitBatch(t, testBatch("svc", 2), Compact)
	r.Handle(pkt, Compact, netip.MustParseAddr("10.0.1.7"))
	r.Handle(pkt, Compact, netip.MustParseAddr("172.18.0.4")) // its docker_gwbridge address (a Swarm task sending to the node)
	r.Handle(pkt, Compact, netip.MustParseAddr("172.17.0.9")) // nobody we know
	r.Handle(make([]byte, 1001), Compact, netip.MustParseAddr("10.0.1.7"))
	r.Handle([]byte("junk"), Binary, netip.MustParseAddr("10.0.1.7"))

	got3 := sink.Resources()
	if len(got3) != 3 {
		t.Fatalf("sink got %d batches, want 3", len(got3))
	}
	if a, b := tracetest.ResourceTags(got3[0]), tracetest.ResourceTags(got3[1]); b["container.id"] != "c0ffee" || len(a) != len(b) {
		t.Errorf("from the bridge address: %v, want the tags of the overlay address: %v", b, a)
	}
	got := tracetest.ResourceTags(got3[0])
	want := map[string]string{"hostname": "abc", "container.id": "c0ffee", "container.name": "api-1",
		"container.image.name": "example/api", "container.image.tag": "1.2", "host.name": "node-a",
		"docker.swarm.service.name": "shop_api", "docker.swarm.stack.namespace": "shop", "docker.swarm.task.slot": "1",
		"docker.swarm.task.id": "task1", "docker.swarm.node.id": "node1", "team": "payments", "container.runtime": "docker"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("process tag %s=%q, want %q (all: %v)", k, got[k], v, got)
		}
	}
	if other := tracetest.ResourceTags(got3[2]); other["container.name"] != "spoofed" || other["container.id"] != "" {
		t.Errorf("a packet from an unknown address was tagged: %v", other)
	}
	st := r.Stats()
	if st.Packets != 5 || st.Spans != 6 || st.TooLarge != 1 || st.Malformed != 1 || st.UnknownSender != 1 {
		t.Errorf("stats %+v", st)
	}

	// The container goes: its address no longer tags spans.
	senders.HandleChange(context.Background(), inventory.Change{Kind: inventory.Gone, Container: c})
	sink.SetFull(true)
	r.Handle(pkt, Compact, netip.MustParseAddr("10.0.1.7"))
	r.Handle(pkt, Compact, netip.MustParseAddr("172.18.0.4"))
	if st := r.Stats(); st.UnknownSender != 3 || st.DroppedSpans != 4 {
		t.Errorf("after the container went and the sink filled: %+v", st)
	}
}

func TestRelayOverUDP(t *testing.T) {
	sink := &tracetest.Sink{}
	r, err := New(Config{CompactAddr: "127.0.0.1:0", BinaryAddr: "127.0.0.1:0"}, sink)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	for i, proto := range []Protocol{Compact, Binary} {
		conn, err := net.Dial("udp", r.Addrs()[i].String())
		if err != nil {
			t.Fatal(err)
		}
		_, _ = conn.Write(encodeEmitBatch(t, testBatch("svc-"+proto.String(), 1), proto))
		conn.Close()
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if n := len(sink.Resources()); n == 2 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("relay passed on %d batches, want 2; stats %+v", len(sink.Resources()), r.Stats())
}

// The batches of a client whose process and container stay the same share one resource;
// a changed process, or the container's tags changing, make a new one.
func TestRelaySharesAClientsResource(t *testing.T) {
	sink := &tracetest.Sink{}
	senders := traces.NewSenders()
	r, err := New(Config{Senders: senders}, sink)
	if err != nil {
		t.Fatal(err)
	}
	c := tracetest.Container()
	senders.HandleChange(context.Background(), inventory.Change{Kind: inventory.Seen, Container: c})
	from := netip.MustParseAddr("10.0.1.7")
	pkt := encodeEmitBatch(t, testBatch("svc", 2), Compact)
	r.Handle(pkt, Compact, from)
	r.Handle(pkt, Compact, from)
	r.Handle(encodeEmitBatch(t, testBatch("other", 2), Compact), Compact, from)
	moved := *c
	moved.Name = "api-2"
	senders.HandleChange(context.Background(), inventory.Change{Kind: inventory.Seen, Container: &moved})
	r.Handle(pkt, Compact, from)

	got := sink.Resources()
	if len(got) != 4 {
		t.Fatalf("sink got %d batches, want 4", len(got))
	}
	if got[0].Resource != got[1].Resource {
		t.Errorf("two batches of the same process from the same container: two resources")
	}
	if a, b := tracetest.ServiceName(got[1]), tracetest.ServiceName(got[2]); got[2].Resource == got[1].Resource || a != "svc" || b != "other" {
		t.Errorf("another process: service %q then %q", a, b)
	}
	if tags := tracetest.ResourceTags(got[3]); got[3].Resource == got[0].Resource || tags["container.name"] != "api-2" || tracetest.ServiceName(got[3]) != "svc" {
		t.Errorf("after the container's name changed: %v", tags)
	}
}

// Packets sent faster than the relay reads overflow the port's receive buffer: the kernel
// drops them, and the relay counts what the kernel dropped (packets_dropped_socket_full),
// learnt with the next packet it reads.
func TestRelayCountsPacketsTheSocketDropped(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("SO_RXQ_OVFL is Linux's")
	}
	sink := &tracetest.Sink{}
	r, err := New(Config{CompactAddr: "127.0.0.1:0"}, sink)
	if err != nil {
		t.Fatal(err)
	}
	// A small buffer, not read yet: most of the flood cannot fit.
	_ = r.conns[0].conn.SetReadBuffer(8 << 10)
	conn, err := net.Dial("udp", r.Addrs()[0].String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	pkt := encodeEmitBatch(t, testBatch("svc", 10), Compact)
	const sent = 500
	for range sent {
		_, _ = conn.Write(pkt)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(10 * time.Second)
	for r.Stats().SocketDropped == 0 && time.Now().Before(deadline) {
		_, _ = conn.Write(pkt) // the count comes with a packet read
		time.Sleep(10 * time.Millisecond)
	}
	s := r.Stats()
	if s.SocketDropped == 0 || s.Packets == 0 {
		t.Fatalf("stats %+v: want packets read and packets the socket dropped counted", s)
	}
	if s.SocketDropped >= sent {
		t.Errorf("stats %+v: %d dropped of %d sent before reading, want some read", s, s.SocketDropped, sent)
	}
	p := r.Points(time.Now(), nil)[0]
	if v := p.Field("packets_dropped_socket_full"); v != s.SocketDropped {
		t.Errorf("lookout_spans_relay packets_dropped_socket_full = %v, want %d", v, s.SocketDropped)
	}
}
