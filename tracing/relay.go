package tracing

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

	"github.com/lookout-agent/lookout/inventory"
	"github.com/lookout-agent/lookout/metric"
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

// RelayConfig configures a Relay.
type RelayConfig struct {
	CompactAddr   string   // "host:port" for jaeger.thrift compact (jaeger-agent's 6831); "" for none
	BinaryAddr    string   // "host:port" for jaeger.thrift binary (6832); "" for none
	MaxPacketSize int      // larger packets are dropped and counted; 0 means DefaultMaxPacketSize
	Senders       *Senders // who sent a packet (subscribe it to the inventory); nil: no one is known
	Log           logrus.FieldLogger
}

// Relay receives jaeger.thrift emitBatch packets over UDP, as jaeger-agent does, adds to
// each batch's process the tags of the container that sent it (found by the packet's
// source address among the containers the inventory reports), and hands the batch to the
// sink. Packets that are too large or malformed are counted and dropped; the relay goes on.
type Relay struct {
	cfg     RelayConfig
	sink    Sink
	conns   []relayConn
	senders *Senders

	packets, spans, tooLarge, malformed, dropped, unknown atomic.Uint64
}

type relayConn struct {
	conn  *net.UDPConn
	proto Protocol
}

// sender is a container that may send spans, with the tags its spans get.
type sender struct {
	tags []*jaeger.Tag
	keys map[string]bool
}

// Senders maps the addresses of the inventory's containers to their tags: it tells the
// receivers which container sent a packet or request. One Senders, subscribed once to the
// inventory, serves the UDP relay and the OTLP receiver.
type Senders struct {
	mu   sync.RWMutex
	byIP map[netip.Addr]*sender
	ips  map[string][]netip.Addr // container ID -> its addresses in byIP
}

// NewSenders returns an empty map; subscribe it to the inventory.
func NewSenders() *Senders {
	return &Senders{byIP: map[netip.Addr]*sender{}, ips: map[string][]netip.Addr{}}
}

// lookup returns the container with the address ip, or nil.
func (x *Senders) lookup(ip netip.Addr) *sender {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.byIP[ip.Unmap()]
}

// retag returns tags without those the sender sets, followed by the sender's: the
// container's own metadata wins over what its service claims.
func (s *sender) retag(tags []*jaeger.Tag) []*jaeger.Tag {
	out := make([]*jaeger.Tag, 0, len(tags)+len(s.tags))
	for _, t := range tags {
		if t != nil && !s.keys[t.Key] {
			out = append(out, t)
		}
	}
	return append(out, s.tags...)
}

// NewRelay opens the configured UDP ports; Run reads them. Close them with Run's context.
func NewRelay(cfg RelayConfig, sink Sink) (*Relay, error) {
	if cfg.MaxPacketSize <= 0 {
		cfg.MaxPacketSize = DefaultMaxPacketSize
	}
	if cfg.Log == nil {
		cfg.Log = logrus.New()
	}
	if cfg.Senders == nil {
		cfg.Senders = NewSenders()
	}
	r := &Relay{cfg: cfg, sink: sink, senders: cfg.Senders}
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
				r.conns = append(r.conns, relayConn{conn: c, proto: l.proto})
				continue
			}
		}
		r.close()
		return nil, fmt.Errorf("span relay (%s) on %s: %w", l.proto, l.addr, err)
	}
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
	for _, c := range r.conns {
		wg.Add(1)
		go func() { defer wg.Done(); r.read(c) }()
	}
	<-ctx.Done()
	r.close()
	wg.Wait()
}

func (r *Relay) read(c relayConn) {
	buf := make([]byte, r.cfg.MaxPacketSize+1)
	for {
		n, from, err := c.conn.ReadFromUDPAddrPort(buf)
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
	if s := r.senders.lookup(from); s == nil {
		r.unknown.Add(1)
	} else {
		b.Process.Tags = s.retag(b.Process.Tags)
	}
	if !r.sink.ExportBatches([]*jaeger.Batch{b}) {
		r.dropped.Add(uint64(len(b.Spans)))
	}
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

var _ inventory.Handler = (*Senders)(nil)

// HandleChange implements inventory.Handler: it keeps the map from container addresses
// (on every network, and a Swarm task's docker_gwbridge address, the source of what it
// sends to the node) to the tags of their spans. It never blocks.
func (x *Senders) HandleChange(_ context.Context, ch inventory.Change) {
	c := ch.Container
	addrs := make([]string, 0, len(c.Networks)+1)
	for _, a := range c.Networks {
		addrs = append(addrs, a)
	}
	if c.BridgeIP != "" {
		addrs = append(addrs, c.BridgeIP)
	}
	var s *sender
	if ch.Kind != inventory.Gone && len(addrs) > 0 {
		m := ContainerTags(c, ch.Engine)
		s = &sender{tags: sortedTags(m), keys: map[string]bool{}}
		for _, t := range s.tags {
			s.keys[t.Key] = true
		}
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, ip := range x.ips[c.ID] {
		delete(x.byIP, ip)
	}
	delete(x.ips, c.ID)
	if s == nil {
		return
	}
	for _, a := range addrs {
		ip, err := netip.ParseAddr(a)
		if err != nil {
			continue
		}
		ip = ip.Unmap()
		x.byIP[ip] = s
		x.ips[c.ID] = append(x.ips[c.ID], ip)
	}
}

// RelayStats are the relay's counters.
type RelayStats struct {
	Packets, Spans, TooLarge, Malformed, DroppedSpans, UnknownSender uint64
}

// Stats returns the counters.
func (r *Relay) Stats() RelayStats {
	return RelayStats{Packets: r.packets.Load(), Spans: r.spans.Load(), TooLarge: r.tooLarge.Load(),
		Malformed: r.malformed.Load(), DroppedSpans: r.dropped.Load(), UnknownSender: r.unknown.Load()}
}

// Points reports lookout_spans_relay.
func (r *Relay) Points(now time.Time, tags map[string]string) []metric.Point {
	s := r.Stats()
	return []metric.Point{metric.New("lookout_spans_relay", tags, []metric.Field{
		{Key: "packets_received", Value: s.Packets},
		{Key: "spans_received", Value: s.Spans},
		{Key: "packets_dropped_too_large", Value: s.TooLarge},
		{Key: "packets_dropped_malformed", Value: s.Malformed},
		{Key: "spans_dropped_queue_full", Value: s.DroppedSpans},
		{Key: "packets_unknown_sender", Value: s.UnknownSender},
	}, now)}
}
