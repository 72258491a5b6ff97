package inventory

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/netip"
	"runtime"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/api/types/system"
	"github.com/moby/moby/client"
	"github.com/sirupsen/logrus"
)

// waitTimeout bounds every wait of these tests; they poll, and normally finish in
// milliseconds (a reconnect waits for the first backoff, about 250 ms).
const waitTimeout = 10 * time.Second

// fakeDocker implements Client over containers the test sets, with an events stream per
// Events call that the test drives.
type fakeDocker struct {
	mu         sync.Mutex
	containers map[string]container.InspectResponse
	infoErr    error
	blockList  bool // ContainerList waits for its context to end
	listErrs   int  // so many ContainerList calls fail first
	noInspect  map[string]bool
	gates      map[string]chan struct{} // ContainerInspect answers only once its gate closes
	gated      map[string]int           // inspections waiting at a gate
	lists      int
	infos      int
	inspects   map[string]int
	bridge     map[string]string // container ID -> IPv4Address on docker_gwbridge ("172.18.0.3/16")
	netInspect int

	subs chan *eventSub // one per Events call, in order
}

type eventSub struct {
	ctx  context.Context
	opts client.EventsListOptions
	msgs chan events.Message
	errs chan error
}

func newFake(cs ...container.InspectResponse) *fakeDocker {
	f := &fakeDocker{containers: map[string]container.InspectResponse{}, inspects: map[string]int{},
		noInspect: map[string]bool{}, gates: map[string]chan struct{}{}, gated: map[string]int{},
		subs: make(chan *eventSub, 64)}
	for _, c := range cs {
		f.containers[c.ID] = c
	}
	return f
}

func (f *fakeDocker) ContainerList(ctx context.Context, _ client.ContainerListOptions) (client.ContainerListResult, error) {
	f.mu.Lock()
	f.lists++
	block := f.blockList
	if f.listErrs > 0 {
		f.listErrs--
		f.mu.Unlock()
		return client.ContainerListResult{}, errors.New("Error response from daemon: i/o timeout")
	}
	var out []container.Summary
	for id, c := range f.containers {
		out = append(out, container.Summary{ID: id, Names: []string{c.Name}, Image: c.Config.Image, State: c.State.Status})
	}
	f.mu.Unlock()
	if block {
		<-ctx.Done()
		return client.ContainerListResult{}, ctx.Err()
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return client.ContainerListResult{Items: out}, nil
}

func (f *fakeDocker) ContainerInspect(ctx context.Context, id string, _ client.ContainerInspectOptions) (client.ContainerInspectResult, error) {
	if err := ctx.Err(); err != nil {
		return client.ContainerInspectResult{}, err
	}
	f.mu.Lock()
	f.inspects[id]++
	c, ok := f.containers[id]
	gate := f.gates[id]
	if gate != nil {
		f.gated[id]++
	}
	f.mu.Unlock()
	if !ok || f.noInspect[id] {
		return client.ContainerInspectResult{}, fmt.Errorf("Error response from daemon: No such container: %s", id)
	}
	if gate != nil {
		// The engine has answered; the answer is still on its way when the gate opens.
		select {
		case <-gate:
		case <-ctx.Done():
			return client.ContainerInspectResult{}, ctx.Err()
		}
		f.mu.Lock()
		f.gated[id]--
		f.mu.Unlock()
	}
	return client.ContainerInspectResult{Container: c}, nil
}

// hold makes the inspections of id wait until the returned func is called.
func (f *fakeDocker) hold(id string) (release func()) {
	g := make(chan struct{})
	f.mu.Lock()
	f.gates[id] = g
	f.mu.Unlock()
	return func() {
		f.mu.Lock()
		delete(f.gates, id)
		f.mu.Unlock()
		close(g)
	}
}

func (f *fakeDocker) waiting(id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.gated[id]
}

func (f *fakeDocker) Events(ctx context.Context, opts client.EventsListOptions) client.EventsResult {
	s := &eventSub{ctx: ctx, opts: opts, msgs: make(chan events.Message), errs: make(chan error, 1)}
	f.subs <- s
	return client.EventsResult{Messages: s.msgs, Err: s.errs}
}

func (f *fakeDocker) Info(ctx context.Context, _ client.InfoOptions) (client.SystemInfoResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.infos++
	if f.infoErr != nil {
		return client.SystemInfoResult{}, f.infoErr
	}
	return client.SystemInfoResult{Info: system.Info{Name: "node-1", ServerVersion: "28.5.2", Swarm: swarm.Info{NodeID: "nodeid1"}}}, nil
}

func (f *fakeDocker) ClientVersion() string { return "1.51" }

func (f *fakeDocker) NetworkInspect(ctx context.Context, id string, _ client.NetworkInspectOptions) (client.NetworkInspectResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.netInspect++
	if id != GatewayBridge || f.bridge == nil {
		return client.NetworkInspectResult{}, fmt.Errorf("Error response from daemon: network %s not found", id)
	}
	n := network.Inspect{Network: network.Network{Name: id}, Containers: map[string]network.EndpointResource{
		"ingress-sbox": {Name: "gateway_ingress-sbox", IPv4Address: netip.MustParsePrefix("172.18.0.2/16")}}}
	for cid, a := range f.bridge {
		n.Containers[cid] = network.EndpointResource{Name: "gateway_" + cid[:4], IPv4Address: netip.MustParsePrefix(a)}
	}
	return client.NetworkInspectResult{Network: n}, nil
}

func (f *fakeDocker) set(c container.InspectResponse) {
	f.mu.Lock()
	f.containers[c.ID] = c
	f.mu.Unlock()
}

func (f *fakeDocker) remove(id string) {
	f.mu.Lock()
	delete(f.containers, id)
	f.mu.Unlock()
}

func (f *fakeDocker) counts() (lists, infos int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lists, f.infos
}

func (f *fakeDocker) inspected(id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.inspects[id]
}

var _ Client = (*fakeDocker)(nil)

// recorder is a Handler that keeps every change.
type recorder struct {
	mu      sync.Mutex
	changes []Change
}

func (r *recorder) HandleChange(_ context.Context, ch Change) {
	r.mu.Lock()
	r.changes = append(r.changes, ch)
	r.mu.Unlock()
}

func (r *recorder) all() []Change {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.changes)
}

// find returns the changes about id of the kind and, unless empty, the action.
func (r *recorder) find(kind Kind, id, action string) []Change {
	var out []Change
	for _, ch := range r.all() {
		if ch.Kind == kind && ch.Container != nil && ch.Container.ID == id && (action == "" || ch.Action == action) {
			out = append(out, ch)
		}
	}
	return out
}

func (r *recorder) about(id string) []Change {
	var out []Change
	for _, ch := range r.all() {
		if ch.Container != nil && ch.Container.ID == id {
			out = append(out, ch)
		}
	}
	return out
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func ctr(id string, labels map[string]string, healthcheck bool) container.InspectResponse {
	in := container.InspectResponse{

		ID: id, Name: "/" + id,
		State: &container.State{Status: container.StateRunning, Running: true, Pid: 100,
			StartedAt: "2024-05-01T10:00:00Z"},
		Config: &container.Config{Image: "app:1", Labels: labels},
	}
	if healthcheck {
		in.Config.Healthcheck = &container.HealthConfig{Test: []string{"CMD", "/healthz"}, Interval: time.Second}
		in.State.Health = &container.Health{Status: container.Starting}
	}
	return in
}

var (
	enabled  = map[string]string{"lookout.enable": "true"}
	disabled = map[string]string{"lookout.enable": "false"}
)

// base is a plausible event time; events of a test are base + n.
const base = int64(1714557600) * 1e9

func ev(id, action string, timeNano int64, attrs ...string) events.Message {
	a := map[string]string{"name": id, "image": "app:1"}
	for i := 0; i+1 < len(attrs); i += 2 {
		a[attrs[i]] = attrs[i+1]
	}
	return events.Message{Type: events.ContainerEventType, Action: events.Action(action),
		Actor: events.Actor{ID: id, Attributes: a}, Scope: "local",
		Time: timeNano / 1e9, TimeNano: timeNano}
}

type harness struct {
	f    *fakeDocker
	inv  *Inventory
	rec  *recorder
	mb   *Mailbox
	stop func() bool // cancels Run and waits (bounded) for it to return
}

func start(t *testing.T, f *fakeDocker, opts Options) *harness {
	t.Helper()
	if opts.Refresh == 0 {
		opts.Refresh = time.Hour
	}
	log := logrus.New()
	log.SetOutput(io.Discard)
	opts.Log = log
	inv := New(f, opts)
	rec := &recorder{}
	inv.Subscribe(rec)
	mb := inv.Mailbox("test")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		inv.Run(ctx)
	}()
	stop := func() bool {
		cancel()
		select {
		case <-done:
			return true
		case <-time.After(waitTimeout):
			return false
		}
	}
	t.Cleanup(func() {
		if !stop() {
			t.Error("Run did not return after its context was cancelled")
		}
	})
	return &harness{f: f, inv: inv, rec: rec, mb: mb, stop: stop}
}

// sub waits for the next Events call.
func (h *harness) sub(t *testing.T) *eventSub {
	t.Helper()
	select {
	case s := <-h.f.subs:
		return s
	case <-time.After(waitTimeout):
		t.Fatal("timed out waiting for an Events call")
		return nil
	}
}

// connected waits for the next Events call and for the list that follows it.
func (h *harness) connected(t *testing.T) *eventSub {
	t.Helper()
	s := h.sub(t)
	waitFor(t, "the inventory to connect", h.inv.Connected)
	return s
}

func send(t *testing.T, s *eventSub, msgs ...events.Message) {
	t.Helper()
	for _, m := range msgs {
		select {
		case s.msgs <- m:
		case <-time.After(waitTimeout):
			t.Fatalf("timed out sending event %s %s", m.Action, m.Actor.ID)
		}
	}
}

// sync sends a start event for the monitored container id at time tn and waits for it,
// so that every event sent before it has been handled.
func (h *harness) sync(t *testing.T, s *eventSub, id string, tn int64) {
	t.Helper()
	send(t, s, ev(id, "start", tn))
	waitFor(t, "the sync event", func() bool {
		for _, ch := range h.rec.find(Event, id, "start") {
			if ch.Event.TimeNano == tn {
				return true
			}
		}
		return false
	})
}

func field(t *testing.T, inv *Inventory, key string) uint64 {
	t.Helper()
	v, ok := inv.Points(time.Now(), nil)[0].Field(key).(uint64)
	if !ok {
		t.Fatalf("lookout_inventory has no uint64 field %q", key)
	}
	return v
}

func TestInitialListReportsMonitoredOnly(t *testing.T) {
	for _, monitorAll := range []bool{false, true} {
		t.Run(fmt.Sprintf("monitorAll=%v", monitorAll), func(t *testing.T) {
			f := newFake(ctr("a-on", enabled, false), ctr("b-plain", nil, false), ctr("c-off", disabled, false))
			h := start(t, f, Options{MonitorAll: monitorAll})
			s := h.connected(t)

			var seen []string
			for _, ch := range h.rec.all() {
				if ch.Kind != Seen {
					t.Errorf("initial list: change of kind %v (%s), want only Seen", ch.Kind, ch.Action)
				}
				seen = append(seen, ch.Container.ID)
				if ch.Engine.Host != "node-1" || ch.Engine.ServerVersion != "28.5.2" || ch.Engine.APIVersion != "1.51" ||
					ch.Engine.SwarmNodeID != "nodeid1" {
					t.Errorf("Engine = %+v", ch.Engine)
				}
				if ch.Time.IsZero() {
					t.Error("a Seen change has no time")
				}
			}
			want := []string{"a-on"}
			if monitorAll {
				want = []string{"a-on", "b-plain"}
			}
			if !slices.Equal(seen, want) {
				t.Errorf("Seen %v, want %v", seen, want)
			}
			if got := len(h.inv.Snapshot()); got != 3 {
				t.Errorf("Snapshot has %d containers, want all 3", got)
			}
			if got := slices.Collect(maps.Keys(s.opts.Filters["type"])); !slices.Equal(slices.Sorted(slices.Values(got)), []string{"container", "network"}) {
				t.Errorf("events filter type = %v, want [container network]", got)
			}
			if s.opts.Since != "" {
				t.Errorf("first subscription Since = %q, want empty", s.opts.Since)
			}
			p := h.inv.Points(time.Now(), map[string]string{"host": "h"})[0]
			if p.Name != "lookout_inventory" || p.Tag("host") != "h" || p.Field("containers") != int64(3) ||
				p.Field("monitored") != int64(len(want)) || p.Field("connected") != true {
				t.Errorf("Points = %+v", p)
			}
		})
	}
}

func TestEventsOfMonitoredContainers(t *testing.T) {
	f := newFake(ctr("a", enabled, false), ctr("b", nil, false))
	h := start(t, f, Options{})
	s := h.connected(t)
	inspectsOfB := f.inspected("b")

	// The state Docker reports once a has died.
	dead := ctr("a", enabled, false)
	dead.State = &container.State{Status: container.StateExited, ExitCode: 3,
		StartedAt: "2024-05-01T10:00:00Z", FinishedAt: "2024-05-01T10:05:00Z"}
	f.set(dead)
	send(t, s,
		ev("a", "exec_create: sh", base+1), ev("a", "exec_start: sh", base+2), // noise
		ev("a", "die", base+3, "exitCode", "3"),
		ev("b", "die", base+4, "exitCode", "1"), // not monitored
	)
	// A container created after the list: monitored or not, it is inspected.
	f.set(ctr("d", enabled, false))
	f.set(ctr("e", nil, false))
	send(t, s, ev("d", "create", base+5), ev("e", "create", base+6))
	h.sync(t, s, "a", base+7)

	die := h.rec.find(Event, "a", "die")
	if len(die) != 1 {
		t.Fatalf("die changes of a: %d, want 1", len(die))
	}
	ch := die[0]
	if ch.Container.State.Status != container.StateExited || ch.Container.State.ExitCode != 3 {
		t.Errorf("die change carries state %+v, want the inspected exited state", ch.Container.State)
	}
	if ch.Event.Actor.Attributes["exitCode"] != "3" || ch.Event.TimeNano != base+3 {
		t.Errorf("die change carries event %+v", ch.Event)
	}
	if !ch.Time.Equal(time.Unix(0, base+3)) {
		t.Errorf("die change Time = %v, want the event's time", ch.Time)
	}
	if ch.Engine.Host != "node-1" {
		t.Errorf("die change Engine = %+v", ch.Engine)
	}
	for _, c := range h.rec.about("a") {
		if c.Action == "exec_create: sh" || c.Action == "exec_start: sh" {
			t.Errorf("noise event %q delivered", c.Action)
		}
	}
	if got := h.rec.about("b"); len(got) != 0 {
		t.Errorf("changes about unmonitored b: %+v", got)
	}
	if got := f.inspected("b"); got != inspectsOfB {
		t.Errorf("unmonitored b inspected %d more times for its events, want 0", got-inspectsOfB)
	}
	if created := h.rec.find(Event, "d", "create"); len(created) != 1 || created[0].Container.Name != "d" {
		t.Errorf("create of monitored d: %+v", created)
	}
	if got := h.rec.about("e"); len(got) != 0 {
		t.Errorf("changes about unmonitored e: %+v", got)
	}
	if n := len(h.inv.Snapshot()); n != 4 {
		t.Errorf("Snapshot has %d containers, want 4 (a, b, d, e)", n)
	}
}

func TestReconnectResumesWithoutDuplicates(t *testing.T) {
	f := newFake(ctr("a", enabled, false))
	h := start(t, f, Options{})
	s1 := h.connected(t)

	t2 := base + 2_000_000_042 // nanoseconds that need the zero padding
	t3 := base + 3_000_000_000
	send(t, s1, ev("a", "start", base+1), ev("a", "die", t2), ev("a", "kill", t2, "signal", "9"))
	waitFor(t, "three events", func() bool { return len(h.rec.find(Event, "a", "")) == 3 })

	s1.errs <- errors.New("unexpected EOF")
	s2 := h.sub(t)
	if want := "1714557592.000000042"; s2.opts.Since != want {
		t.Errorf("reconnect Since = %q, want %q (the last event handled, less the replay window)", s2.opts.Since, want)
	}
	if got := slices.Collect(maps.Keys(s2.opts.Filters["type"])); !slices.Equal(slices.Sorted(slices.Values(got)), []string{"container", "network"}) {
		t.Errorf("reconnect filter type = %v", got)
	}
	select {
	case <-s1.ctx.Done():
	case <-time.After(waitTimeout):
		t.Error("the first events subscription's context was not cancelled")
	}

	// Docker replays from Since: what was handled comes again, with what was not.
	send(t, s2,
		ev("a", "start", base+1),
		ev("a", "die", t2),
		ev("a", "kill", t2, "signal", "9"),
		ev("a", "stop", t2), // same time, not handled before
		ev("a", "start", t3),
	)
	waitFor(t, "the newest event", func() bool {
		for _, ch := range h.rec.find(Event, "a", "start") {
			if ch.Event.TimeNano == t3 {
				return true
			}
		}
		return false
	})
	var got []string
	for _, ch := range h.rec.find(Event, "a", "") {
		got = append(got, fmt.Sprintf("%s@%d", ch.Action, ch.Event.TimeNano-base))
	}
	want := []string{"start@1", "die@2000000042", "kill@2000000042", "stop@2000000042", "start@3000000000"}
	if !slices.Equal(got, want) {
		t.Errorf("events delivered %v, want %v", got, want)
	}

	// A second reconnect resumes from the newest event again.
	s2.errs <- errors.New("unexpected EOF")
	s3 := h.sub(t)
	if s3.opts.Since != "1714557593.000000000" {
		t.Errorf("second reconnect Since = %q, want 1714557593.000000000", s3.opts.Since)
	}
}

// Docker stamps an event before it orders publication: on a busy engine an event comes
// after one stamped later. It is new, not a replay: a health transition skipped there
// was a container's unhealthy point lost (e2e/churn). Only an event older than the
// replay window is dropped, and counted.
func TestEventStampedBeforeTheNewestIsHandled(t *testing.T) {
	f := newFake(ctr("a", enabled, true), ctr("b", enabled, true))
	h := start(t, f, Options{})
	s := h.connected(t)

	send(t, s,
		ev("b", "start", base+2_000_000),
		ev("a", "health_status: unhealthy", base+1_000_000), // stamped 1 ms before b's start
		ev("a", "health_status: unhealthy", base+1_000_000), // the same again: a replay
	)
	h.sync(t, s, "b", base+3_000_000)
	if got := h.rec.find(Event, "a", "health_status: unhealthy"); len(got) != 1 {
		t.Fatalf("unhealthy transitions of a delivered: %d, want 1", len(got))
	} else if got[0].Container.State.Health == nil || got[0].Container.State.Health.Status != container.Unhealthy {
		t.Errorf("the transition carries health %+v, want unhealthy", got[0].Container.State.Health)
	}
	if n := field(t, h.inv, "events_dropped"); n != 0 {
		t.Errorf("events_dropped = %d, want 0", n)
	}

	late := base + 3_000_000 - int64(replayWindow) - 1
	send(t, s, ev("a", "die", late))
	waitFor(t, "the late event counted as dropped", func() bool { return field(t, h.inv, "events_dropped") == 1 })
	h.sync(t, s, "b", base+4_000_000)
	if got := h.rec.find(Event, "a", "die"); len(got) != 0 {
		t.Errorf("an event older than the replay window was delivered: %+v", got)
	}
}

// On a busy engine the event queue runs seconds behind: a container stopped and removed
// right after its health transition is missing from a list while that transition still
// waits in the queue. Declared gone by the list, it lost the transition and its die
// (e2e/churn). Its events come first; its destroy event ends it.
func TestListWaitsForTheQueuedEventsOfAVanishedContainer(t *testing.T) {
	f := newFake(ctr("a", enabled, true), ctr("b", enabled, false))
	h := start(t, f, Options{Refresh: 5 * time.Millisecond})
	s := h.connected(t)

	release := f.hold("b")
	send(t, s, ev("b", "start", base+1)) // the event loop waits for this inspection
	waitFor(t, "the inspection of b under way", func() bool { return f.waiting("b") == 1 })
	for i := range 30 { // the refresh ticker fires meanwhile: it comes before a's events
		send(t, s, ev("b", "exec_start: sh", base+2+int64(i)))
	}
	send(t, s, ev("a", "health_status: unhealthy", base+100), ev("a", "die", base+101, "exitCode", "0"),
		ev("a", "destroy", base+102))
	f.remove("a")
	waitFor(t, "a's events queued", func() bool {
		h.inv.mu.Lock()
		defer h.inv.mu.Unlock()
		return h.inv.queued["a"].all == 3
	})
	lists, _ := f.counts()
	release()
	waitFor(t, "a gone", func() bool { return len(h.rec.find(Gone, "a", "")) > 0 })
	waitFor(t, "a list after", func() bool { l, _ := f.counts(); return l > lists+1 })

	if got := h.rec.find(Event, "a", "health_status: unhealthy"); len(got) != 1 {
		t.Errorf("unhealthy transitions of a delivered: %d, want 1", len(got))
	}
	if got := h.rec.find(Event, "a", "die"); len(got) != 1 {
		t.Errorf("die events of a delivered: %d, want 1", len(got))
	}
	if got := h.rec.find(Gone, "a", ""); len(got) != 1 || got[0].Event.TimeNano != base+102 {
		t.Errorf("a gone %d times (%+v), want once, by its destroy event", len(got), got)
	}
	h.inv.mu.Lock()
	defer h.inv.mu.Unlock()
	if len(h.inv.queued) != 0 {
		t.Errorf("queued events still counted: %v", h.inv.queued)
	}
}

func TestStreamErrorReconnectsAndRelists(t *testing.T) {
	for _, how := range []string{"error", "closed"} {
		t.Run(how, func(t *testing.T) {
			f := newFake(ctr("a", enabled, false), ctr("b", enabled, false))
			h := start(t, f, Options{})
			s1 := h.connected(t)
			lists, infos := f.counts()
			if lists != 1 || infos != 1 {
				t.Fatalf("after connecting: %d lists, %d infos, want 1 and 1", lists, infos)
			}
			if n := field(t, h.inv, "reconnects"); n != 0 {
				t.Errorf("reconnects = %d before any error", n)
			}

			f.remove("b") // vanishes while the stream is down: its destroy event is lost
			if how == "error" {
				s1.errs <- errors.New("connection reset by peer")
			} else {
				close(s1.errs) // the Docker client closes errs after its last error
			}
			h.sub(t)
			waitFor(t, "the re-list", func() bool { l, _ := f.counts(); return l >= 2 })
			waitFor(t, "b reported gone", func() bool { return len(h.rec.find(Gone, "b", "destroy")) == 1 })
			waitFor(t, "a seen again", func() bool { return len(h.rec.find(Seen, "a", "")) >= 2 })
			waitFor(t, "connected again", h.inv.Connected)

			if n := field(t, h.inv, "reconnects"); n < 1 {
				t.Errorf("reconnects = %d, want >= 1", n)
			}
			if n := field(t, h.inv, "relists"); n < 2 {
				t.Errorf("relists = %d, want >= 2", n)
			}
			if _, infos := f.counts(); infos < 2 {
				t.Errorf("Info called %d times, want >= 2", infos)
			}
			if g := h.rec.find(Gone, "a", ""); len(g) != 0 {
				t.Errorf("a reported gone: %+v", g)
			}
		})
	}
}

func TestListErrorReconnects(t *testing.T) {
	f := newFake(ctr("a", enabled, false), ctr("x", enabled, false))
	f.listErrs = 1
	f.noInspect["x"] = true // listed, then gone before it could be inspected
	h := start(t, f, Options{})
	s1 := h.sub(t) // the list after it fails
	s2 := h.connected(t)
	if s1 == s2 {
		t.Fatal("no new subscription after the failed list")
	}
	select {
	case <-s1.ctx.Done():
	default:
		t.Error("the first subscription's context is still live")
	}
	if n := field(t, h.inv, "reconnects"); n != 1 {
		t.Errorf("reconnects = %d, want 1", n)
	}
	if n := field(t, h.inv, "inspect_errors"); n < 1 {
		t.Errorf("inspect_errors = %d, want >= 1", n)
	}
	if got := h.rec.find(Seen, "a", ""); len(got) != 1 {
		t.Errorf("a seen %d times, want 1", len(got))
	}
	if got := h.rec.about("x"); len(got) != 0 {
		t.Errorf("x, which could not be inspected: %+v", got)
	}
}

func TestVanishedBetweenListsIsGone(t *testing.T) {
	f := newFake(ctr("a", enabled, false), ctr("b", enabled, false), ctr("u", nil, false))
	h := start(t, f, Options{Refresh: 10 * time.Millisecond})
	h.connected(t)
	waitFor(t, "a periodic re-list", func() bool { return len(h.rec.find(Seen, "b", "")) >= 2 })

	f.remove("b")
	f.remove("u")
	waitFor(t, "b reported gone", func() bool { return len(h.rec.find(Gone, "b", "")) > 0 })
	g := h.rec.find(Gone, "b", "")[0]
	if g.Action != "destroy" || g.Container.Name != "b" || g.Time.IsZero() || g.Engine.Host != "node-1" {
		t.Errorf("Gone change = %+v", g)
	}
	// Once gone, it stays gone: reported once, not seen again.
	lists, _ := f.counts()
	waitFor(t, "two more re-lists", func() bool { l, _ := f.counts(); return l >= lists+2 })
	if n := len(h.rec.find(Gone, "b", "")); n != 1 {
		t.Errorf("b reported gone %d times, want 1", n)
	}
	changes := h.rec.about("b")
	if last := changes[len(changes)-1]; last.Kind != Gone {
		t.Errorf("b's last change is %v %s, want Gone", last.Kind, last.Action)
	}
	if got := h.rec.about("u"); len(got) != 0 {
		t.Errorf("unmonitored u: %+v", got)
	}
	for _, c := range h.inv.Snapshot() {
		if c.ID == "b" || c.ID == "u" {
			t.Errorf("%s still in the snapshot", c.ID)
		}
	}
}

// A feature's mailbox gets the same containers as the handlers, latest state only: a
// feature that took a and b sees a's removal, and never sees u (not monitored).
func TestMailboxFollowsTheInventory(t *testing.T) {
	f := newFake(ctr("a", enabled, false), ctr("b", enabled, false), ctr("u", nil, false))
	h := start(t, f, Options{})
	s := h.connected(t)
	ids := func(us []Update) (out []string) {
		for _, u := range us {
			out = append(out, fmt.Sprintf("%s:%v", u.ID(), u.Gone))
		}
		sort.Strings(out)
		return out
	}
	if got := fmt.Sprint(ids(h.mb.Take())); got != "[a:false b:false]" {
		t.Fatalf("first take: %s", got)
	}
	f.remove("a")
	send(t, s, ev("a", "destroy", base+1), ev("a", "destroy", base+2))
	h.sync(t, s, "b", base+3)
	got := h.mb.Take()
	if fmt.Sprint(ids(got)) != "[a:true b:false]" || got[0].Container.Name == "" {
		t.Fatalf("second take: %v", ids(got))
	}
	// After a feature's panic, the box gets the whole picture again.
	h.mb.resync()
	if got := fmt.Sprint(ids(h.mb.Take())); got != "[b:false]" {
		t.Fatalf("after resync: %s", got)
	}
}

func TestDestroyEventIsGone(t *testing.T) {
	f := newFake(ctr("a", enabled, false), ctr("b", enabled, false), ctr("u", nil, false))
	h := start(t, f, Options{})
	s := h.connected(t)

	f.remove("a")
	f.remove("u")
	send(t, s,
		ev("a", "destroy", base+1),
		ev("a", "destroy", base+2), // a duplicate from Docker: a is no longer known
		ev("u", "destroy", base+3),
	)
	h.sync(t, s, "b", base+4)

	gone := h.rec.find(Gone, "a", "")
	if len(gone) != 1 {
		t.Fatalf("Gone changes of a: %d, want 1", len(gone))
	}
	if g := gone[0]; g.Action != "destroy" || g.Container.Name != "a" || g.Event.TimeNano != base+1 ||
		!g.Time.Equal(time.Unix(0, base+1)) {
		t.Errorf("Gone change = %+v", g)
	}
	if got := h.rec.about("u"); len(got) != 0 {
		t.Errorf("unmonitored u: %+v", got)
	}
	for _, c := range h.inv.Snapshot() {
		if c.ID == "a" || c.ID == "u" {
			t.Errorf("%s still in the snapshot after its destroy event", c.ID)
		}
	}
}

func TestExecDieRechecksTheHealthLog(t *testing.T) {
	f := newFake(ctr("hc", enabled, true), ctr("nohc", enabled, false))
	h := start(t, f, Options{})
	s := h.connected(t)

	// The probe's result reaches the health log (the inventory only looks after exec_die).
	withLog := ctr("hc", enabled, true)
	now := time.Now()
	withLog.State.Health = &container.Health{Status: container.Healthy, Log: []*container.HealthcheckResult{
		{Start: now.Add(-time.Second), End: now, ExitCode: 0, Output: "ok"},
	}}
	f.set(withLog)
	send(t, s, ev("nohc", "exec_die", base+1, "exitCode", "0"), ev("hc", "exec_die", base+2, "exitCode", "0"))

	waitFor(t, "a health_log change", func() bool { return len(h.rec.find(Event, "hc", "health_log")) > 0 })
	ch := h.rec.find(Event, "hc", "health_log")[0]
	if ch.Container.State.Health == nil || len(ch.Container.State.Health.Log) != 1 {
		t.Errorf("health_log change carries health %+v, want the re-inspected log", ch.Container.State.Health)
	}
	if ch.Time.IsZero() || ch.Engine.Host != "node-1" {
		t.Errorf("health_log change Time=%v Engine=%+v", ch.Time, ch.Engine)
	}
	h.sync(t, s, "hc", base+3)
	for _, c := range h.rec.all() {
		if c.Action == "exec_die" {
			t.Errorf("exec_die delivered itself: %+v", c)
		}
		if c.Action == "health_log" && c.Container.ID == "nohc" {
			t.Error("health_log for a container without a healthcheck")
		}
	}
}

// An inspection answered before a container's destroy event but handled after it must not
// bring the container back.
func TestInspectionInFlightAtDestroy(t *testing.T) {
	f := newFake(ctr("x", enabled, true), ctr("a", enabled, true))
	h := start(t, f, Options{})
	s := h.connected(t)

	release := f.hold("x")
	send(t, s, ev("x", "exec_die", base+1)) // the health log of x is to be inspected
	waitFor(t, "the inspection of x", func() bool { return f.waiting("x") == 1 })
	f.remove("x")
	send(t, s, ev("x", "destroy", base+2))
	waitFor(t, "x gone", func() bool { return len(h.rec.find(Gone, "x", "")) == 1 })
	release()

	// a's health log is inspected after x's answer came back: once it is reported, x's
	// answer has been handled.
	send(t, s, ev("a", "exec_die", base+3))
	waitFor(t, "a's health log", func() bool { return len(h.rec.find(Event, "a", "health_log")) == 1 })

	changes := h.rec.about("x")
	if last := changes[len(changes)-1]; last.Kind != Gone {
		t.Errorf("after Gone, x reported again: %v %q", last.Kind, last.Action)
	}
	for _, c := range h.inv.Snapshot() {
		if c.ID == "x" {
			t.Error("x is back in the snapshot after its destroy event")
		}
	}
}

// An inspection answered before a health transition but handled after it must not report
// the health from before the transition.
func TestInspectionInFlightAtHealthTransition(t *testing.T) {
	f := newFake(ctr("x", enabled, true), ctr("a", enabled, true))
	healthy := ctr("x", enabled, true)
	healthy.State.Health = &container.Health{Status: container.Healthy}
	f.set(healthy)
	h := start(t, f, Options{})
	s := h.connected(t)

	release := f.hold("x")
	send(t, s, ev("x", "exec_die", base+1))
	waitFor(t, "the inspection of x", func() bool { return f.waiting("x") == 1 })

	unhealthy := ctr("x", enabled, true)
	unhealthy.State.Health = &container.Health{Status: container.Unhealthy, FailingStreak: 3,
		Log: []*container.HealthcheckResult{{ExitCode: 1, Output: "down"}}}
	f.set(unhealthy)
	send(t, s, ev("x", "health_status: unhealthy", base+2))
	waitFor(t, "the transition", func() bool { return len(h.rec.find(Event, "x", "health_status: unhealthy")) == 1 })
	if tr := h.rec.find(Event, "x", "health_status: unhealthy")[0]; tr.Container.State.Health.Status != container.Unhealthy {
		t.Errorf("the transition carries health %q, want unhealthy", tr.Container.State.Health.Status)
	}
	release()

	// The health log of the transition follows.
	waitFor(t, "x's health log after the transition", func() bool {
		after := false
		for _, c := range h.rec.about("x") {
			if c.Action == "health_status: unhealthy" {
				after = true
			} else if after && c.Action == "health_log" && c.Container.State.Health.FailingStreak == 3 {
				return true
			}
		}
		return false
	})
	after := false
	for _, c := range h.rec.about("x") {
		if c.Action == "health_status: unhealthy" {
			after = true
			continue
		}
		if after && c.Container.State.Health.Status != container.Unhealthy {
			t.Errorf("after the transition to unhealthy, %v %q reports %q", c.Kind, c.Action, c.Container.State.Health.Status)
		}
	}
}

func TestRunReturnsWhenCancelled(t *testing.T) {
	cases := []struct {
		name  string
		setup func(*fakeDocker)
		ready func(*testing.T, *harness)
	}{
		{"while following events", func(*fakeDocker) {}, func(t *testing.T, h *harness) {
			s := h.connected(t)
			send(t, s, ev("a", "exec_die", base+1)) // leaves a recheck timer behind
		}},
		{"while listing", func(f *fakeDocker) { f.blockList = true }, func(t *testing.T, h *harness) {
			waitFor(t, "a list call", func() bool { l, _ := h.f.counts(); return l > 0 })
		}},
		{"while backing off", func(f *fakeDocker) { f.infoErr = errors.New("connection refused") }, func(t *testing.T, h *harness) {
			waitFor(t, "an Info call", func() bool { _, i := h.f.counts(); return i > 0 })
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := runtime.NumGoroutine()
			f := newFake(ctr("a", enabled, true))
			tc.setup(f)
			h := start(t, f, Options{})
			tc.ready(t, h)

			stopped := make(chan struct{})
			go func() {
				if h.stop() {
					close(stopped)
				}
			}()
			select {
			case <-stopped:
			case <-time.After(2 * time.Second):
				t.Fatal("Run did not return within 2s of cancellation")
			}
			if h.inv.Connected() {
				t.Error("still connected after Run returned")
			}
			deadline := time.Now().Add(waitTimeout)
			for runtime.NumGoroutine() > before {
				if time.Now().After(deadline) {
					buf := make([]byte, 1<<16)
					t.Fatalf("goroutines: %d before, %d after Run returned\n%s",
						before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
				}
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
}

// A Swarm task's docker_gwbridge address, which its inspection does not show, comes from
// the network's inspection: one for every task it already listed, another only for a task
// it did not list; containers that are not running Swarm tasks cost none.
func TestSwarmTaskBridgeAddress(t *testing.T) {
	task := func(id string) container.InspectResponse {
		return ctr(id, map[string]string{"lookout.enable": "true", "com.docker.swarm.task.id": "t-" + id,
			"com.docker.swarm.service.name": "web"}, false)
	}
	plain := ctr("plain0001", map[string]string{"lookout.enable": "true"}, false)
	stopped := task("stopped01")
	stopped.State.Running = false
	f := newFake(task("task0001"), task("task0002"), plain, stopped)
	f.bridge = map[string]string{"task0001": "172.18.0.3/16", "task0002": "172.18.0.4/16"}
	inv := New(f, Options{})
	ctx := context.Background()
	for id, want := range map[string]string{"task0001": "172.18.0.3", "task0002": "172.18.0.4", "plain0001": "", "stopped01": ""} {
		c, err := inv.inspect(ctx, id)
		if err != nil || c.BridgeIP != want {
			t.Errorf("%s: bridge address %q (%v), want %q", id, c.BridgeIP, err, want)
		}
	}
	if f.netInspect != 1 {
		t.Errorf("%d network inspections, want 1 for both tasks", f.netInspect)
	}
	f.set(task("task0003"))
	f.bridge["task0003"] = "172.18.0.5/16"
	if c, _ := inv.inspect(ctx, "task0003"); c.BridgeIP != "172.18.0.5" || f.netInspect != 2 {
		t.Errorf("a new task: %q after %d network inspections, want 172.18.0.5 after 2", c.BridgeIP, f.netInspect)
	}
	// Restarted, task0001 has another address, and its old one went to another task.
	restarted := task("task0001")
	restarted.State.StartedAt = "2024-05-01T11:00:00Z"
	f.set(restarted)
	f.bridge["task0001"], f.bridge["task0002"] = "172.18.0.9/16", "172.18.0.3/16"
	if c, _ := inv.inspect(ctx, "task0001"); c.BridgeIP != "172.18.0.9" || f.netInspect != 3 {
		t.Errorf("after a restart: %q after %d network inspections, want 172.18.0.9 after 3", c.BridgeIP, f.netInspect)
	}
	if c, _ := inv.inspect(ctx, "task0002"); c.BridgeIP != "172.18.0.3" {
		t.Errorf("the task whose address moved: %q, want 172.18.0.3", c.BridgeIP)
	}
	// A running task not on the bridge is looked up once, not at every inspection.
	n := f.netInspect
	_, _ = inv.inspect(ctx, "stopped01") // not running: never looked up
	lone := task("lone0001")
	f.set(lone)
	_, _ = inv.inspect(ctx, "lone0001")
	_, _ = inv.inspect(ctx, "lone0001")
	if f.netInspect != n+1 {
		t.Errorf("a task not on the bridge cost %d network inspections, want 1", f.netInspect-n)
	}
	// No docker_gwbridge (not a Swarm node any more): no address, and the task is still stored.
	f.bridge = nil
	f.set(task("task0004"))
	if c, err := inv.inspect(ctx, "task0004"); err != nil || c.BridgeIP != "" || c.Service != "web" {
		t.Errorf("without the network: %+v, %v", c, err)
	}
	if n := field(t, inv, "inspect_errors"); n != 1 {
		t.Errorf("inspect_errors = %d, want 1 (the failed network inspection)", n)
	}
}

// A periodic refresh reports every monitored container as Seen but inspects only those
// whose state in the list differs from what the inventory holds, and every one of them
// only every fullRefreshEvery-th time.
func TestRefreshInspectsOnlyWhatChanged(t *testing.T) {
	f := newFake(ctr("a", enabled, false), ctr("b", enabled, false))
	h := start(t, f, Options{Refresh: 5 * time.Millisecond})
	h.connected(t)
	waitFor(t, "20 refreshes", func() bool { l, _ := f.counts(); return l >= 21 })
	lists, _ := f.counts()
	// One inspection at the first list, one per full refresh (every sixth), one in flight at most.
	if n, most := f.inspected("a"), 1+(lists-1)/6+1; n > most || n < 2 {
		t.Errorf("a inspected %d times in %d lists, want 2 to %d", n, lists, most)
	}
	if n := len(h.rec.find(Seen, "a", "")); n < lists-2 {
		t.Errorf("a reported Seen %d times in %d lists", n, lists)
	}

}

// A change no event told of, seen in the list, is inspected at the next refresh, not only
// at the next full one.
func TestRefreshInspectsAStateChangeInTheList(t *testing.T) {
	f := newFake(ctr("a", enabled, false), ctr("b", enabled, false))
	h := start(t, f, Options{Refresh: 5 * time.Millisecond, FullRefreshEvery: 1 << 30})
	h.connected(t)
	waitFor(t, "a refresh", func() bool { l, _ := f.counts(); return l >= 3 })
	b := ctr("b", enabled, false)
	b.State.Status, b.State.Running = container.StateExited, false
	f.set(b)
	waitFor(t, "b seen exited", func() bool {
		for _, ch := range h.rec.find(Seen, "b", "") {
			if ch.Container.State.Status == container.StateExited {
				return true
			}
		}
		return false
	})
	if n := f.inspected("a"); n != 1 {
		t.Errorf("a, unchanged, inspected %d times, want once (at the first list)", n)
	}
}

// A network connect while an inspection of the container is under way (its answer may
// predate the connect) is followed by another inspection.
func TestNetworkConnectDuringAnInspection(t *testing.T) {
	f := newFake(ctr("a", enabled, true))
	h := start(t, f, Options{})
	s := h.connected(t)
	release := f.hold("a")
	send(t, s, ev("a", "health_status: healthy", 2_000_000_000)) // a health-log inspection, held
	waitFor(t, "the held inspection", func() bool { return f.waiting("a") == 1 })
	a := ctr("a", enabled, true)
	a.NetworkSettings = &container.NetworkSettings{Networks: map[string]*network.EndpointSettings{"backend": {IPAddress: netip.MustParseAddr("10.0.9.4")}}}
	f.set(a)
	send(t, s, events.Message{Type: events.NetworkEventType, Action: events.ActionConnect, TimeNano: 3_000_000_000,
		Actor: events.Actor{ID: "netid", Attributes: map[string]string{"container": "a", "name": "backend"}}})
	waitFor(t, "the network event handled", func() bool { return field(t, h.inv, "events") >= 2 })
	release()
	t.Cleanup(func() {
		if t.Failed() {
			for _, ch := range h.rec.about("a") {
				t.Logf("%v %s %v", ch.Kind, ch.Action, ch.Container.Networks)
			}
			t.Logf("inspections of a: %d", f.inspected("a"))
		}
	})
	waitFor(t, "a seen with its new address", func() bool {
		for _, ch := range h.rec.about("a") {
			if ch.Container.Networks["backend"] == "10.0.9.4" {
				return true
			}
		}
		return false
	})
}

// A network connect or disconnect changes a container's addresses without a container
// event: the network event has it inspected again.
func TestNetworkConnectReinspects(t *testing.T) {
	f := newFake(ctr("a", enabled, false), ctr("u", nil, false))
	h := start(t, f, Options{})
	s := h.connected(t)
	before, beforeU := f.inspected("a"), f.inspected("u")
	a := ctr("a", enabled, false)
	a.NetworkSettings = &container.NetworkSettings{Networks: map[string]*network.EndpointSettings{"backend": {IPAddress: netip.MustParseAddr("10.0.9.4")}}}
	f.set(a)
	net := events.Message{Type: events.NetworkEventType, Action: events.ActionConnect, TimeNano: 5_000_000_042,
		Actor: events.Actor{ID: "netid", Attributes: map[string]string{"container": "a", "name": "backend", "type": "overlay"}}}
	netU := net
	netU.Actor.Attributes = map[string]string{"container": "u", "name": "backend"}
	send(t, s, net, netU)
	waitFor(t, "a seen with its new address", func() bool {
		for _, ch := range h.rec.find(Seen, "a", "") {
			if ch.Container.Networks["backend"] == "10.0.9.4" {
				return true
			}
		}
		return false
	})
	h.sync(t, s, "a", 6_000_000_000)
	if f.inspected("a") < before+1 || f.inspected("u") != beforeU {
		t.Errorf("inspections: a %d -> %d, unmonitored u %d -> %d", before, f.inspected("a"), beforeU, f.inspected("u"))
	}
}

// A container's kill, die or stop that waits in the event queue (behind an inspection, on
// a busy engine) makes it Stopping at once, before the handlers are told: its checks must
// not start an exec into a container the engine is stopping (e2e/churn). Handled, the
// event no longer counts; a start is not a stop.
func TestStoppingFromTheQueueAheadOfTheHandlers(t *testing.T) {
	f := newFake(ctr("a", enabled, true), ctr("b", enabled, false))
	h := start(t, f, Options{})
	s := h.connected(t)
	if h.inv.Stopping("a") {
		t.Fatal("a Stopping before any event")
	}

	release := f.hold("b")
	send(t, s, ev("b", "start", base+1)) // the event loop waits for this inspection
	waitFor(t, "the inspection of b under way", func() bool { return f.waiting("b") == 1 })
	send(t, s, ev("a", "exec_start: sh", base+2))
	waitFor(t, "a's exec_start queued", func() bool {
		h.inv.mu.Lock()
		defer h.inv.mu.Unlock()
		return h.inv.queued["a"].all == 1
	})
	if h.inv.Stopping("a") {
		t.Error("a Stopping with only an exec_start queued")
	}
	send(t, s, ev("a", "kill", base+3, "signal", "15"), ev("a", "die", base+4, "exitCode", "0"))
	waitFor(t, "a Stopping", func() bool { return h.inv.Stopping("a") })
	if got := h.rec.find(Event, "a", "die"); len(got) != 0 {
		t.Fatalf("the die of a handled while b's inspection holds the loop: %+v", got)
	}
	if h.inv.Stopping("b") {
		t.Error("b Stopping: only its start is queued")
	}
	gauge := func(key string) int64 { return h.inv.Points(time.Now(), nil)[0].Field(key).(int64) }
	waitFor(t, "events_queued 3 behind b's inspection (a's exec_start, kill and die)", func() bool { return gauge("events_queued") == 3 })
	release()
	waitFor(t, "a's die handled", func() bool { return len(h.rec.find(Event, "a", "die")) == 1 })
	waitFor(t, "a no longer Stopping", func() bool { return !h.inv.Stopping("a") })
	if n := gauge("events_queued"); n != 0 {
		t.Errorf("events_queued = %d once every event was handled, want 0", n)
	}
	// The events are stamped in 2024: the last one handled was years late.
	if lag := time.Duration(gauge("event_lag_ms")) * time.Millisecond; lag < time.Since(time.Unix(0, base+4))-time.Minute {
		t.Errorf("event_lag_ms = %s, want how late a's die was handled (%s)", lag, time.Since(time.Unix(0, base+4)))
	}
}
