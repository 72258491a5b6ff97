package inventory

import (
	"context"
	"fmt"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/lookout-agent/lookout/internal/backoff"
	"github.com/lookout-agent/lookout/metric"
)

// Update is the current state of one container as a feature sees it. Features that keep
// state per container (checks, log forwarding, resources, span tagging) read Updates from
// a Mailbox: level-triggered, so a feature that was busy sees the latest state of each
// container and never an obsolete one, and a removal cannot be lost.
type Update struct {
	Container *Container // the latest state (for Gone, the last state seen); never nil
	Gone      bool       // removed, or vanished between two lists: forget everything about it
	Engine    Engine
	Time      time.Time // when this state was learnt
}

// ID is the container's ID.
func (u Update) ID() string { return u.Container.ID }

// Mailbox holds, per container, the latest Update its feature has not taken yet. It is
// bounded by the number of containers (those present, and those removed that the feature
// was told of and has not taken the removal of), so the inventory never blocks on a
// feature and never drops anything for it: a newer state replaces an older one.
type Mailbox struct {
	name   string
	log    logrus.FieldLogger
	ready  chan struct{}
	panics atomic.Uint64

	// resync puts the current state of every monitored container (the inventory's),
	// after a panic, so that a restarted feature starts from the whole picture.
	resync func()

	mu      sync.Mutex
	pending map[string]Update
	order   []string        // IDs in pending, in the order they first became pending
	told    map[string]bool // IDs the feature has taken a live (not Gone) update of
	high    int             // the most updates ever pending at once
}

// Mailbox returns a new mailbox that the inventory fills with every change of a
// monitored container. Call it before Run. name says whose it is, in logs and counters.
func (inv *Inventory) Mailbox(name string) *Mailbox {
	m := &Mailbox{name: name, log: inv.log.WithField("feature", name), ready: make(chan struct{}, 1),
		pending: map[string]Update{}, told: map[string]bool{}}
	m.resync = func() { inv.resync(m) }
	inv.mailboxes = append(inv.mailboxes, m)
	return m
}

// resync puts the current state of every monitored container into m.
func (inv *Inventory) resync(m *Mailbox) {
	inv.mu.Lock()
	eng := inv.engine
	var cs []*Container
	for _, c := range inv.containers {
		if c.Monitored {
			cs = append(cs, c)
		}
	}
	inv.mu.Unlock()
	now := time.Now()
	for _, c := range cs {
		m.Put(Update{Container: c, Engine: eng, Time: now})
	}
}

// Supervise runs the feature's loop until ctx is done. A panic in it is recovered, logged
// with its stack and counted (panics), and the loop starts again after a backoff with the
// current state of every container in the box: one feature's bug does not stop the
// others, nor the agent.
func (m *Mailbox) Supervise(ctx context.Context, run func(context.Context)) {
	retry := backoff.Backoff{Min: time.Second, Max: time.Minute}
	for {
		if !m.runOnce(ctx, run) || ctx.Err() != nil {
			return
		}
		if !retry.Sleep(ctx) {
			return
		}
		if m.resync != nil {
			m.resync()
		}
	}
}

// runOnce runs run and says whether it panicked.
func (m *Mailbox) runOnce(ctx context.Context, run func(context.Context)) (panicked bool) {
	defer func() {
		if r := recover(); r != nil {
			panicked = true
			m.panics.Add(1)
			m.log.WithField("panic", fmt.Sprint(r)).WithField("stack", string(debug.Stack())).
				Error("feature panicked; restarting it")
		}
	}()
	run(ctx)
	return false
}

// NewMailbox returns a mailbox fed by hand (Put), for tests of a feature.
func NewMailbox(name string, log logrus.FieldLogger) *Mailbox {
	if log == nil {
		log = logrus.New()
	}
	return &Mailbox{name: name, log: log.WithField("feature", name), ready: make(chan struct{}, 1),
		pending: map[string]Update{}, told: map[string]bool{}}
}

// Put records u as the latest state of its container; it never blocks.
func (m *Mailbox) Put(u Update) {
	id := u.ID()
	m.mu.Lock()
	_, queued := m.pending[id]
	if u.Gone && !m.told[id] {
		// The feature never saw it alive: nothing to forget.
		if queued {
			delete(m.pending, id)
			m.removeOrder(id)
		}
		m.mu.Unlock()
		return
	}
	m.pending[id] = u
	if !queued {
		m.order = append(m.order, id)
	}
	m.high = max(m.high, len(m.pending))
	m.mu.Unlock()
	select {
	case m.ready <- struct{}{}:
	default:
	}
}

func (m *Mailbox) removeOrder(id string) {
	for i, o := range m.order {
		if o == id {
			m.order = append(m.order[:i], m.order[i+1:]...)
			return
		}
	}
}

// Ready receives when updates are pending.
func (m *Mailbox) Ready() <-chan struct{} { return m.ready }

// Take returns every pending update, one per container, in the order they became
// pending, and empties the box.
func (m *Mailbox) Take() []Update {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.order) == 0 {
		return nil
	}
	out := make([]Update, 0, len(m.order))
	for _, id := range m.order {
		u := m.pending[id]
		out = append(out, u)
		if u.Gone {
			delete(m.told, id)
		} else {
			m.told[id] = true
		}
	}
	clear(m.pending)
	m.order = m.order[:0]
	return out
}

// Each takes the pending updates and calls fn with each. A panic in fn is recovered,
// logged with its stack and counted (feature_panics): that container's update is lost
// for this round, the others go on.
func (m *Mailbox) Each(fn func(Update)) {
	for _, u := range m.Take() {
		m.call(fn, u)
	}
}

func (m *Mailbox) call(fn func(Update), u Update) {
	defer func() {
		if r := recover(); r != nil {
			m.panics.Add(1)
			m.log.WithField("container", u.Container.Name).WithField("panic", fmt.Sprint(r)).
				WithField("stack", string(debug.Stack())).Error("feature panicked on a container update; going on")
		}
	}()
	fn(u)
}

// Pending is the number of containers with an update not taken yet.
func (m *Mailbox) Pending() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.pending)
}

// Points reports the mailbox as a lookout_feature point: pending updates, the most ever
// pending, and the panics recovered.
func (m *Mailbox) Points(now time.Time, tags map[string]string) []metric.Point {
	m.mu.Lock()
	pending, high := len(m.pending), m.high
	m.mu.Unlock()
	return []metric.Point{metric.New("lookout_feature", metric.WithTag(tags, "feature", m.name), []metric.Field{
		{Key: "pending", Value: int64(pending)},
		{Key: "pending_max", Value: int64(high)},
		{Key: "panics", Value: m.panics.Load()},
	}, now)}
}

// Panics is the number of panics Each and Supervise recovered.
func (m *Mailbox) Panics() uint64 { return m.panics.Load() }

// Name is the feature's name.
func (m *Mailbox) Name() string { return m.name }
