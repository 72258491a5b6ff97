package inventory

import (
	"context"
	"fmt"
	"testing"
	"time"
)

func upd(id string, running, gone bool) Update {
	c := &Container{ID: id, Name: "c-" + id}
	c.State.Running = running
	return Update{Container: c, Gone: gone}
}

func TestMailboxKeepsLatestStatePerContainer(t *testing.T) {
	m := NewMailbox("test", nil)
	m.Put(upd("a", true, false))
	m.Put(upd("b", true, false))
	m.Put(upd("a", false, false))
	select {
	case <-m.Ready():
	default:
		t.Fatal("not ready after Put")
	}
	got := m.Take()
	if len(got) != 2 || got[0].ID() != "a" || got[0].Container.State.Running || got[1].ID() != "b" {
		t.Fatalf("Take = %+v, want a (stopped) then b", got)
	}
	if m.Take() != nil || m.Pending() != 0 {
		t.Fatal("the box is not empty after Take")
	}
}

func TestMailboxGoneOfAnUntoldContainerIsDiscarded(t *testing.T) {
	m := NewMailbox("test", nil)
	m.Put(upd("a", true, false))
	m.Put(upd("a", false, true)) // created and removed before the feature looked
	if n := m.Pending(); n != 0 {
		t.Fatalf("pending = %d, want 0", n)
	}
	m.Put(upd("b", true, false))
	m.Take()
	m.Put(upd("b", false, true)) // told of b: its removal must arrive
	got := m.Take()
	if len(got) != 1 || !got[0].Gone {
		t.Fatalf("Take = %+v, want b gone", got)
	}
	// Once the removal is taken, b is unknown again.
	m.Put(upd("b", false, true))
	if m.Pending() != 0 {
		t.Fatal("a second removal of b was queued")
	}
}

func TestMailboxBoundedWhileTheFeatureIsBlocked(t *testing.T) {
	m := NewMailbox("test", nil)
	for i := range 100 {
		m.Put(upd(fmt.Sprint("old", i), true, false))
	}
	m.Take() // the feature knows 100 containers, then blocks
	for i := range 1000 {
		id := fmt.Sprint("new", i)
		m.Put(upd(id, false, false))
		m.Put(upd(id, true, false))
		m.Put(upd(id, false, true))
	}
	for i := range 100 {
		m.Put(upd(fmt.Sprint("old", i), false, true))
	}
	if n := m.Pending(); n != 100 {
		t.Fatalf("pending = %d after 1000 containers came and went, want only the 100 removals the feature must see", n)
	}
}

func TestMailboxEachRecoversAPanic(t *testing.T) {
	m := NewMailbox("test", nil)
	for _, id := range []string{"a", "b", "c"} {
		m.Put(upd(id, true, false))
	}
	var seen []string
	m.Each(func(u Update) {
		if u.ID() == "b" {
			panic("boom")
		}
		seen = append(seen, u.ID())
	})
	if fmt.Sprint(seen) != "[a c]" || m.Panics() != 1 {
		t.Fatalf("seen %v, panics %d; want [a c] and 1", seen, m.Panics())
	}
}

func TestSuperviseRestartsAPanickingFeature(t *testing.T) {
	m := NewMailbox("test", nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runs := 0
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.Supervise(ctx, func(ctx context.Context) {
			runs++
			if runs == 1 {
				panic("boom")
			}
			cancel()
		})
	}()
	select {
	case <-done:
	case <-time.After(waitTimeout):
		t.Fatal("Supervise did not return")
	}
	if runs != 2 || m.Panics() != 1 {
		t.Fatalf("runs %d, panics %d; want 2 and 1", runs, m.Panics())
	}
}
