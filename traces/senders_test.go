package traces

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/lookout-agent/lookout/inventory"
)

func sender(id, name, ip string) *inventory.Container {
	return &inventory.Container{ID: id, Name: name, Networks: map[string]string{"bridge": ip}}
}

func lookupName(x *Senders, ip string) string {
	s := x.Lookup(netip.MustParseAddr(ip))
	if s == nil {
		return ""
	}
	for _, kv := range s.attrs {
		if kv.Key == "container.name" {
			return kv.Value.GetStringValue()
		}
	}
	return "?"
}

// A removed container's address given to a new one before the inventory tells of the
// removal: the removal forgets the old container, not the new one's address.
func TestSendersRemovalAfterAddressReused(t *testing.T) {
	x := NewSenders()
	ctx := context.Background()
	a, b := sender("a", "old", "172.17.0.5"), sender("b", "new", "172.17.0.5")
	x.HandleChange(ctx, inventory.Change{Kind: inventory.Seen, Container: a})
	x.HandleChange(ctx, inventory.Change{Kind: inventory.Seen, Container: b})
	x.HandleChange(ctx, inventory.Change{Kind: inventory.Gone, Container: a})
	if got := lookupName(x, "172.17.0.5"); got != "new" {
		t.Errorf("172.17.0.5 is %q after the old container went, want the new one", got)
	}
	x.HandleChange(ctx, inventory.Change{Kind: inventory.Gone, Container: b})
	if c, n := x.Len(); c != 0 || n != 0 {
		t.Errorf("after both went: %d containers, %d addresses kept", c, n)
	}
}

// A removed container's late event (its die, told by the inventory with the address it
// had, after a new container got that address) does not take the address back: the
// container started later holds it (e2e/churn: spans tagged with the old container).
func TestSendersLateEventAfterAddressReused(t *testing.T) {
	x := NewSenders()
	ctx := context.Background()
	a, b := sender("a", "old", "172.17.0.5"), sender("b", "new", "172.17.0.5")
	a.StartedAt = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	b.StartedAt = a.StartedAt.Add(3 * time.Second)
	x.HandleChange(ctx, inventory.Change{Kind: inventory.Event, Action: "start", Container: a})
	x.HandleChange(ctx, inventory.Change{Kind: inventory.Event, Action: "start", Container: b})
	x.HandleChange(ctx, inventory.Change{Kind: inventory.Event, Action: "die", Container: a})
	if got := lookupName(x, "172.17.0.5"); got != "new" {
		t.Errorf("172.17.0.5 is %q after the old container's late die, want the new one", got)
	}
	x.HandleChange(ctx, inventory.Change{Kind: inventory.Gone, Container: a})
	if got := lookupName(x, "172.17.0.5"); got != "new" {
		t.Errorf("172.17.0.5 is %q after the old container went, want the new one", got)
	}
	if c, n := x.Len(); c != 1 || n != 1 {
		t.Errorf("%d containers, %d addresses kept, want the new one", c, n)
	}
}

// Churn: every container that came and went is forgotten.
func TestSendersForgetRemovedContainers(t *testing.T) {
	x := NewSenders()
	ctx := context.Background()
	keep := sender("keep", "keep", "10.0.0.1")
	x.HandleChange(ctx, inventory.Change{Kind: inventory.Seen, Container: keep})
	for i := range 1000 {
		c := sender(string(rune('A'+i%26))+netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}).String(), "c",
			netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}).String())
		x.HandleChange(ctx, inventory.Change{Kind: inventory.Seen, Container: c})
		stopped := *c
		stopped.Networks = map[string]string{} // a stopped container has no address
		x.HandleChange(ctx, inventory.Change{Kind: inventory.Seen, Container: &stopped})
		x.HandleChange(ctx, inventory.Change{Kind: inventory.Gone, Container: &stopped})
	}
	if c, n := x.Len(); c != 1 || n != 1 {
		t.Errorf("after 1,000 containers came and went: %d containers, %d addresses kept, want the one left", c, n)
	}
	if got := lookupName(x, "10.0.0.1"); got != "keep" {
		t.Errorf("10.0.0.1 is %q, want keep", got)
	}
}
