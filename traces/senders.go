package traces

import (
	"context"
	"net/netip"
	"sort"
	"sync"
	"time"

	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/lookout-agent/lookout/inventory"
)

// Sender is a container that may send spans, with the resource attributes its spans get.
type Sender struct {
	attrs   []*commonpb.KeyValue
	keys    map[string]bool
	started time.Time // the container's start: of two claiming an address, the later holds it
}

// Senders maps the addresses of the inventory's containers to their tags: it tells the
// receivers which container sent a packet or request. One Senders, subscribed once to the
// inventory, serves every receiver.
type Senders struct {
	mu   sync.RWMutex
	byIP map[netip.Addr]*Sender
	ips  map[string][]netip.Addr // container ID -> its addresses in byIP
	own  map[string]*Sender      // container ID -> its Sender
}

// NewSenders returns an empty map; subscribe it to the inventory.
func NewSenders() *Senders {
	return &Senders{byIP: map[netip.Addr]*Sender{}, ips: map[string][]netip.Addr{}, own: map[string]*Sender{}}
}

// Len is the number of containers and of addresses known (for tests).
func (x *Senders) Len() (containers, addrs int) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return len(x.own), len(x.byIP)
}

// Lookup returns the container with the address ip, or nil.
func (x *Senders) Lookup(ip netip.Addr) *Sender {
	if x == nil {
		return nil
	}
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.byIP[ip.Unmap()]
}

// Tag gives every resource of rss the sender's attributes: those of the same keys the
// resource had are removed, the sender's appended. The container's own metadata wins over
// what its service claims. The sender's attributes are shared, not copied: nobody changes
// a span once it is in the model.
func (s *Sender) Tag(rss []*tracepb.ResourceSpans) {
	for _, rs := range rss {
		if rs == nil {
			continue
		}
		if rs.Resource == nil {
			rs.Resource = &resourcepb.Resource{}
		}
		out := make([]*commonpb.KeyValue, 0, len(rs.Resource.Attributes)+len(s.attrs))
		for _, kv := range rs.Resource.Attributes {
			if kv != nil && !s.keys[kv.Key] {
				out = append(out, kv)
			}
		}
		rs.Resource.Attributes = append(out, s.attrs...)
	}
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
	var s *Sender
	if ch.Kind != inventory.Gone && len(addrs) > 0 {
		s = &Sender{attrs: SortedAttrs(ContainerTags(c, ch.Engine)), keys: map[string]bool{}, started: c.StartedAt}
		for _, kv := range s.attrs {
			s.keys[kv.Key] = true
		}
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	// An address the container had may be another's by now (Docker gave it again after a
	// removal the inventory tells of later): only the container's own entries go.
	old := x.own[c.ID]
	for _, ip := range x.ips[c.ID] {
		if x.byIP[ip] == old {
			delete(x.byIP, ip)
		}
	}
	delete(x.ips, c.ID)
	delete(x.own, c.ID)
	if s == nil {
		return
	}
	x.own[c.ID] = s
	for _, a := range addrs {
		ip, err := netip.ParseAddr(a)
		if err != nil {
			continue
		}
		ip = ip.Unmap()
		if cur := x.byIP[ip]; cur != nil && cur.started.After(s.started) {
			// A late event of a removed container, told with the address it had: the
			// container started since holds it now.
			continue
		}
		x.byIP[ip] = s
		x.ips[c.ID] = append(x.ips[c.ID], ip)
	}
}

// ContainerTags are the tags that say which container a span is about or came from:
// OpenTelemetry's container.* and host.name, Lookout's docker.swarm.* for Swarm tasks,
// and the container's lookout.tags.*.
func ContainerTags(c *inventory.Container, eng inventory.Engine) map[string]string {
	t := map[string]string{
		"container.id":         c.ID,
		"container.name":       c.Name,
		"container.image.name": c.ImageName,
		"container.image.tag":  c.ImageVersion,
		"container.runtime":    "docker",
		"host.name":            eng.Host,
	}
	if c.Service != "" {
		t["docker.swarm.service.name"] = c.Service
		t["docker.swarm.stack.namespace"] = c.Stack
		t["docker.swarm.task.id"] = c.TaskID
		t["docker.swarm.task.slot"] = c.Slot
		t["docker.swarm.node.id"] = c.NodeID
	}
	for k, v := range c.Config.Tags {
		t[k] = v
	}
	return t
}

// SortedAttrs returns the non-empty values of m as string attributes sorted by key
// (deterministic resources and test output).
func SortedAttrs(m map[string]string) []*commonpb.KeyValue {
	keys := make([]string, 0, len(m))
	for k, v := range m {
		if v != "" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	out := make([]*commonpb.KeyValue, 0, len(keys))
	for _, k := range keys {
		out = append(out, StringAttr(k, m[k]))
	}
	return out
}

// StringAttr is a string attribute.
func StringAttr(k, v string) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v}}}
}

// IntAttr is an integer attribute.
func IntAttr(k string, v int64) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: v}}}
}
