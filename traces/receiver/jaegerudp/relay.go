// Package jaegerudp is jaeger-agent's UDP receiver: jaeger.thrift emitBatch packets
// (compact on 6831, binary on 6832) from jaeger-client libraries, converted to the agent's
// span model at once and tagged with the sending container.
package jaegerudp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/uber/jaeger-client-go/thrift"
	"github.com/uber/jaeger-client-go/thrift-gen/agent"
	"github.com/uber/jaeger-client-go/thrift-gen/jaeger"

	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/lookout-agent/lookout/metric"
	"github.com/lookout-agent/lookout/traces"
	"github.com/lookout-agent/lookout/traces/jaegerthrift"
)

// Protocol is the thrift encoding of a relay port: jaeger-agent's 6831 is compact, 6832
// binary.
type Protocol int

// Protocols.
const (
	Compact Protocol = iota
	Binary
)

func (p Protocol) String() string {
	if p == Binary {
		return "binary"
	}
	return "compact"
}

// DefaultMaxPacketSize is jaeger-agent's default largest UDP packet.
const DefaultMaxPacketSize = 65000

// Config configures a Relay.
type Config struct {
	CompactAddr   string          // "host:port" for jaeger.thrift compact (jaeger-agent's 6831); "" for none
	BinaryAddr    string          // "host:port" for jaeger.thrift binary (6832); "" for none
	MaxPacketSize int             // larger packets are dropped and counted; 0 means DefaultMaxPacketSize
	Senders       *traces.Senders // who sent a packet (subscribe it to the inventory); nil: no one is known
	Log           logrus.FieldLogger
}

// Relay receives jaeger.thrift emitBatch packets over UDP, as jaeger-agent does, converts
// each batch to a ResourceSpans, adds to its resource the tags of the container that sent
// it (found by the packet's source address among the containers the inventory reports),
// and hands it to the sink. Packets that are too large or malformed are counted and dropped; the relay goes on.
type Relay struct {
	cfg     Config
	sink    traces.Sink
	conns   []relayConn
	senders *traces.Senders

	mu   sync.Mutex
	last map[netip.Addr]lastResource // see resource

	packets, spans, tooLarge, malformed, dropped, unknown atomic.Uint64
	// socketDrops is, per port, the kernel's count of packets dropped because the
	// port's receive buffer was full (the relay read too slowly): SO_RXQ_OVFL.
	socketDrops []atomic.Uint64
}

type relayConn struct {
	conn  *net.UDPConn
	proto Protocol
}

// New opens the configured UDP ports; Run reads them. Close them with Run's context.
func New(cfg Config, sink traces.Sink) (*Relay, error) {
	if cfg.MaxPacketSize <= 0 {
		cfg.MaxPacketSize = DefaultMaxPacketSize
	}
	if cfg.Log == nil {
		cfg.Log = logrus.New()
	}
	if cfg.Senders == nil {
		cfg.Senders = traces.NewSenders()
	}
	r := &Relay{cfg: cfg, sink: sink, senders: cfg.Senders, last: map[netip.Addr]lastResource{}}
	for _, l := range []struct {
		addr  string
		proto Protocol
	}{{cfg.CompactAddr, Compact}, {cfg.BinaryAddr, Binary}} {
		if l.addr == "" {
			continue
		}
		ua, err := net.ResolveUDPAddr("udp", l.addr)
		if err == nil {
			var c *net.UDPConn
			if c, err = net.ListenUDP("udp", ua); err == nil {
				_ = c.SetReadBuffer(4 << 20)
				countSocketDrops(c)
				r.conns = append(r.conns, relayConn{conn: c, proto: l.proto})
				continue
			}
		}
		r.close()
		return nil, fmt.Errorf("span relay (%s) on %s: %w", l.proto, l.addr, err)
	}
	r.socketDrops = make([]atomic.Uint64, len(r.conns))
	return r, nil
}

// Addrs returns the addresses listened on, compact first.
func (r *Relay) Addrs() []net.Addr {
	var out []net.Addr
	for _, c := range r.conns {
		out = append(out, c.conn.LocalAddr())
	}
	return out
}

func (r *Relay) close() {
	for _, c := range r.conns {
		_ = c.conn.Close()
	}
}

// Run reads packets until ctx is done, then closes the ports.
func (r *Relay) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for i, c := range r.conns {
		wg.Add(1)
		go func() { defer wg.Done(); r.read(c, &r.socketDrops[i]) }()
	}
	<-ctx.Done()
	r.close()
	wg.Wait()
}

func (r *Relay) read(c relayConn, socketDrops *atomic.Uint64) {
	buf := make([]byte, r.cfg.MaxPacketSize+1)
	oob := make([]byte, oobSize)
	for {
		n, oobn, _, from, err := c.conn.ReadMsgUDPAddrPort(buf, oob)
		if d, ok := socketDropped(oob[:oobn]); ok {
			socketDrops.Store(uint64(d))
		}
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			r.cfg.Log.WithError(err).Warn("span relay: read")
			time.Sleep(10 * time.Millisecond) // a persistent error must not spin
			continue
		}
		r.Handle(buf[:n], c.proto, from.Addr())
	}
}

// Handle processes one packet from the address from.
func (r *Relay) Handle(pkt []byte, proto Protocol, from netip.Addr) {
	r.packets.Add(1)
	if len(pkt) > r.cfg.MaxPacketSize {
		r.tooLarge.Add(1)
		return
	}
	b, err := DecodeEmitBatch(pkt, proto)
	if err != nil {
		if r.malformed.Add(1) == 1 {
			r.cfg.Log.WithError(err).WithField("from", from.String()).Warn("span relay: malformed packet dropped (counted; logged once)")
		}
		return
	}
	r.spans.Add(uint64(len(b.Spans)))
	s := r.senders.Lookup(from)
	if s == nil {
		r.unknown.Add(1)
	}
	rss := []*tracepb.ResourceSpans{jaegerthrift.SpansToOTLP(b, r.resource(from, s, b.Process))}
	if !r.sink.ExportSpans(rss) {
		r.dropped.Add(uint64(len(b.Spans)))
	}
}

// maxResources bounds the relay's resources remembered by source address.
const maxResources = 1024

// lastResource is the resource made of the last process a source address sent, tagged
// with its sender.
type lastResource struct {
	sender *traces.Sender
	proc   *jaeger.Process
	res    *resourcepb.Resource
}

// resource returns the resource of a batch from the address from, sent by s (nil: not
// known) with the process p: the one made of the address's last batch when its process
// and sender are the same (a client sends the same process in every packet; the batches
// share one resource, made, tagged and keyed in the queue once, as nobody changes a
// resource once it is in the model), else a new one.
func (r *Relay) resource(from netip.Addr, s *traces.Sender, p *jaeger.Process) *resourcepb.Resource {
	r.mu.Lock()
	last, ok := r.last[from]
	r.mu.Unlock()
	if ok && last.sender == s && jaegerthrift.SameProcess(last.proc, p) {
		return last.res
	}
	rs := &tracepb.ResourceSpans{Resource: jaegerthrift.Resource(p)}
	if s != nil {
		s.Tag([]*tracepb.ResourceSpans{rs})
	}
	r.mu.Lock()
	if len(r.last) >= maxResources {
		clear(r.last)
	}
	r.last[from] = lastResource{sender: s, proc: p, res: rs.Resource}
	r.mu.Unlock()
	return rs.Resource
}

// DecodeEmitBatch reads one jaeger-agent emitBatch message. Malformed input is an error,
// never a panic, and never makes it allocate more than the packet can hold.
func DecodeEmitBatch(pkt []byte, proto Protocol) (b *jaeger.Batch, err error) {
	defer func() {
		if p := recover(); p != nil {
			b, err = nil, fmt.Errorf("malformed packet: %v", p)
		}
	}()
	ctx := context.Background()
	buf := thrift.NewTMemoryBufferLen(len(pkt))
	_, _ = buf.Write(pkt)
	cfg := &thrift.TConfiguration{MaxMessageSize: int32(len(pkt))}
	var p thrift.TProtocol
	if proto == Binary {
		p = thrift.NewTBinaryProtocolConf(buf, cfg)
	} else {
		p = thrift.NewTCompactProtocolConf(buf, cfg)
	}
	p = boundedProtocol{TProtocol: p, buf: buf}
	name, typ, _, err := p.ReadMessageBegin(ctx)
	if err != nil {
		return nil, fmt.Errorf("malformed packet: %w", err)
	}
	if name != "emitBatch" || (typ != thrift.ONEWAY && typ != thrift.CALL) {
		return nil, fmt.Errorf("malformed packet: message %q (type %d), want emitBatch", name, typ)
	}
	args := agent.NewAgentEmitBatchArgs()
	if err := args.Read(ctx, p); err != nil {
		return nil, fmt.Errorf("malformed packet: %w", err)
	}
	if args.Batch == nil || args.Batch.Process == nil {
		return nil, errors.New("malformed packet: emitBatch without a batch or process")
	}
	for _, s := range args.Batch.Spans {
		if s == nil {
			return nil, errors.New("malformed packet: empty span")
		}
	}
	return args.Batch, nil
}

// boundedProtocol refuses a list, set or map that claims more elements than bytes left in
// the packet: the generated readers allocate the claimed size before reading.
type boundedProtocol struct {
	thrift.TProtocol
	buf *thrift.TMemoryBuffer
}

var errTooMany = errors.New("collection longer than the packet")

// invalidType is no thrift type: thrift.Skip fails on it.
const invalidType thrift.TType = 0x7f

// ReadFieldBegin reports a failed read with an invalid type too: thrift.Skip ignores the
// error and would read the zero type, STOP, as the end of a struct that consumed nothing,
// so a list claiming millions of structs at the end of a packet would be walked through.
func (p boundedProtocol) ReadFieldBegin(ctx context.Context) (string, thrift.TType, int16, error) {
	name, t, id, err := p.TProtocol.ReadFieldBegin(ctx)
	if err != nil {
		t = invalidType
	}
	return name, t, id, err
}

// Skip skips unknown fields through the bounds above (the protocol's own Skip would not).
func (p boundedProtocol) Skip(ctx context.Context, t thrift.TType) error {
	return thrift.SkipDefaultDepth(ctx, p, t)
}

func (p boundedProtocol) ReadListBegin(ctx context.Context) (thrift.TType, int, error) {
	t, n, err := p.TProtocol.ReadListBegin(ctx)
	if err == nil && n > p.buf.Len() {
		err = errTooMany
	}
	return t, n, err
}

func (p boundedProtocol) ReadSetBegin(ctx context.Context) (thrift.TType, int, error) {
	t, n, err := p.TProtocol.ReadSetBegin(ctx)
	if err == nil && n > p.buf.Len() {
		err = errTooMany
	}
	return t, n, err
}

func (p boundedProtocol) ReadMapBegin(ctx context.Context) (thrift.TType, thrift.TType, int, error) {
	k, v, n, err := p.TProtocol.ReadMapBegin(ctx)
	if err == nil && n > p.buf.Len() {
		err = errTooMany
	}
	return k, v, n, err
}

// RelayStats are the relay's counters.
type RelayStats struct {
	Packets, Spans, TooLarge, Malformed, DroppedSpans, UnknownSender uint64
	// SocketDropped are the packets the kernel dropped because a port's receive buffer
	// was full: sent faster than the relay reads.
	SocketDropped uint64
}

// Stats returns the counters.
func (r *Relay) Stats() RelayStats {
	s := RelayStats{Packets: r.packets.Load(), Spans: r.spans.Load(), TooLarge: r.tooLarge.Load(),
		Malformed: r.malformed.Load(), DroppedSpans: r.dropped.Load(), UnknownSender: r.unknown.Load()}
	for i := range r.socketDrops {
		s.SocketDropped += r.socketDrops[i].Load()
	}
	return s
}

// Points reports lookout_spans_relay.
func (r *Relay) Points(now time.Time, tags map[string]string) []metric.Point {
	s := r.Stats()
	return []metric.Point{metric.New("lookout_spans_relay", tags, []metric.Field{
		{Key: "packets_received", Value: s.Packets},
		{Key: "spans_received", Value: s.Spans},
		{Key: "packets_dropped_too_large", Value: s.TooLarge},
		{Key: "packets_dropped_malformed", Value: s.Malformed},
		{Key: "packets_dropped_socket_full", Value: s.SocketDropped},
		{Key: "spans_dropped_queue_full", Value: s.DroppedSpans},
		{Key: "packets_unknown_sender", Value: s.UnknownSender},
	}, now)}
}
