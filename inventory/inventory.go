// Package inventory is the one place that talks to the Docker Engine's container list and
// events stream. It keeps the metadata and state of every container and tells its
// handlers about each change of a monitored container. It lists, then follows events; on
// any stream error it backs off, reconnects, replays the events it missed (Docker keeps
// 256) and re-lists everything.
package inventory

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/client"
	"github.com/sirupsen/logrus"

	"github.com/lookout-agent/lookout/internal/backoff"
	"github.com/lookout-agent/lookout/labels"
	"github.com/lookout-agent/lookout/metric"
)

// Client is what the inventory needs of the Docker Engine API.
type Client interface {
	ContainerList(ctx context.Context, options client.ContainerListOptions) (client.ContainerListResult, error)
	ContainerInspect(ctx context.Context, id string, options client.ContainerInspectOptions) (client.ContainerInspectResult, error)
	NetworkInspect(ctx context.Context, networkID string, options client.NetworkInspectOptions) (client.NetworkInspectResult, error)
	Events(ctx context.Context, options client.EventsListOptions) client.EventsResult
	Info(ctx context.Context, options client.InfoOptions) (client.SystemInfoResult, error)
	ClientVersion() string
}

// Kind says what a Change is.
type Kind int

// The kinds of change.
const (
	// Seen: the container was listed or inspected (first sight, re-list, or periodic
	// refresh); no event is attached.
	Seen Kind = iota
	// Event: a Docker event about the container; Change.Event holds it.
	Event
	// Gone: the container was destroyed or vanished between two lists.
	Gone
)

// Change is one thing that happened to a monitored container.
type Change struct {
	Kind      Kind
	Action    string // the event's action ("start", "die", "health_status: healthy", …)
	Event     events.Message
	Time      time.Time // the event's time, or when the container was seen
	Container *Container
	Engine    Engine
}

// View is what readers of the inventory's state need: every known container, and the
// engine. *Inventory is one.
type View interface {
	Snapshot() []Container
	Engine() Engine
}

// Handler is told of every change of a monitored container, one at a time, in order.
// HandleChange must not block for long: it queues what it produces.
type Handler interface {
	HandleChange(ctx context.Context, ch Change)
}

// Options configure an Inventory.
type Options struct {
	MonitorAll bool          // monitor containers without lookout.enable (an explicit false still opts out)
	Refresh    time.Duration // how often containers are listed and the monitored ones reported as Seen
	// FullRefreshEvery is how often (in refreshes) every monitored container is inspected
	// again, whatever the list says: the safety net for a change no event told of
	// (default 6).
	FullRefreshEvery int
	Timeout          time.Duration // per Docker API call
	Log              logrus.FieldLogger
}

// Inventory watches the engine.
type Inventory struct {
	client    Client
	opts      Options
	handlers  []Handler
	mailboxes []*Mailbox
	log       logrus.FieldLogger

	mu         sync.Mutex
	containers map[string]*Container
	engine     Engine
	connected  bool
	lastEvent  int64             // TimeNano of the newest event handled
	handled    map[eventKey]bool // events handled in the last replayWindow, to skip them when replayed
	prunedAt   int64             // lastEvent when handled was last pruned
	// queued counts the container events read but not handled yet, by container: a
	// list does not declare a container gone while its events wait (they come first),
	// and a container with a kill, die, stop, pause or destroy waiting is Stopping.
	queued map[string]queuedEvents

	bridgeMu  sync.Mutex
	bridgeIPs map[string]bridgeAddr // container ID -> address on docker_gwbridge

	// refreshes counts periodic refreshes (the event loop's alone); stale says an event or
	// an inspection was dropped since the last full one, so the next must be full.
	refreshes int
	stale     atomic.Bool

	listed     chan struct{} // closed once the first list is in
	listedOnce sync.Once

	reconnects, events, eventsDropped, relists, inspectErrors, labelProblems atomic.Uint64
	lastContact                                                              atomic.Int64
	// eventsQueued counts the events read and not handled yet; eventLag is how late the
	// last event handled was (now minus its time, milliseconds): the event loop waits
	// for an inspection per event, and runs behind on a busy engine.
	eventsQueued, eventLag atomic.Int64
}

// New returns an inventory; Subscribe handlers before Run.
func New(client Client, opts Options) *Inventory {
	if opts.Refresh <= 0 {
		opts.Refresh = 10 * time.Second
	}
	if opts.FullRefreshEvery <= 0 {
		opts.FullRefreshEvery = 6
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	if opts.Log == nil {
		opts.Log = logrus.New()
	}
	return &Inventory{client: client, opts: opts, log: opts.Log, containers: map[string]*Container{}, handled: map[eventKey]bool{},
		queued: map[string]queuedEvents{}, listed: make(chan struct{})}
}

// Listed is closed once the inventory holds the engine's containers: its first list is
// in, and Known answers for the engine.
func (inv *Inventory) Listed() <-chan struct{} { return inv.listed }

// Known says whether the inventory holds the container, monitored or not.
func (inv *Inventory) Known(id string) bool {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	return inv.containers[id] != nil
}

// queuedEvents counts a container's events read but not handled yet.
type queuedEvents struct{ all, stopping int }

// stoppingActions are the events that announce the end of a container's run.
var stoppingActions = map[events.Action]bool{events.ActionKill: true, events.ActionDie: true,
	events.ActionStop: true, events.ActionPause: true, events.ActionDestroy: true}

// Stopping says whether an event that announces the end of the container's run (kill,
// die, stop, pause, destroy) has arrived and waits in the event queue: the state the
// handlers were told may still say running, seconds after the engine began stopping it
// (the queue runs behind on a busy engine, each event waiting for an inspection). The
// checks do not start runs meanwhile: an exec in a container being stopped is an error
// at best, and a race in the engine at worst.
func (inv *Inventory) Stopping(id string) bool {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	return inv.queued[id].stopping > 0
}

// Subscribe adds a handler. It must be called before Run.
func (inv *Inventory) Subscribe(h Handler) { inv.handlers = append(inv.handlers, h) }

// eventQueueSize bounds the events read from Docker but not handled yet. Docker drops a
// subscriber that stalls for 100 ms, so the reader never blocks; an overflow is counted
// and answered with a re-list.
const eventQueueSize = 4096

// replayWindow is how far back in event time the inventory remembers the events it
// handled. Docker stamps an event before it takes the lock that orders publication, so
// on a busy engine an event can arrive after one stamped later (a health transition of
// one container after the start of another): arrival order, not the stamp, says what is
// new. A reconnect resumes this far before the newest event, and what was handled is
// skipped; an event older than the window is counted as dropped (a full refresh follows).
const replayWindow = 10 * time.Second

// maxHandled bounds the events remembered in replayWindow (a flood of events may make
// a reconnect deliver some twice; the inventory reports state, so that is harmless).
const maxHandled = 1 << 16

// eventKey identifies an event: its time, actor, action and, for a network event, container.
type eventKey struct {
	timeNano int64
	key      string
}

// eventAttributes are the attributes of an event the agent reads; Docker adds every
// label of the container to each of its events (exec_start and health_status included),
// which a container with large labels makes megabytes that the queue would hold.
var eventAttributes = []string{"container", "name", "exitCode", "signal"}

// slim keeps only the eventAttributes of m.
func slim(m events.Message) events.Message {
	if len(m.Actor.Attributes) <= len(eventAttributes) {
		return m
	}
	keep := make(map[string]string, len(eventAttributes))
	for _, k := range eventAttributes {
		if v, ok := m.Actor.Attributes[k]; ok {
			keep[k] = v
		}
	}
	m.Actor.Attributes = keep
	return m
}

// Run watches until ctx is done.
func (inv *Inventory) Run(ctx context.Context) {
	retry := backoff.Backoff{Min: 250 * time.Millisecond, Max: 30 * time.Second}
	for {
		start := time.Now()
		err := inv.session(ctx)
		inv.setConnected(false)
		if ctx.Err() != nil {
			return
		}
		if time.Since(start) > time.Minute {
			retry.Reset()
		}
		inv.reconnects.Add(1)
		wait := retry.Next()
		inv.log.WithError(err).WithField("retry_in", wait.String()).Warn("lost the Docker Engine; reconnecting")
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

type queued struct {
	msg     events.Message
	recheck string // container ID to re-inspect (health log after exec_die), when msg is empty
}

// session subscribes to events, lists everything, then handles events until the stream fails.
func (inv *Inventory) session(ctx context.Context) error {
	info, err := inv.withTimeout(ctx, func(c context.Context) (any, error) { return inv.client.Info(c, client.InfoOptions{}) })
	if err != nil {
		return fmt.Errorf("docker info: %w", err)
	}
	si := info.(client.SystemInfoResult).Info
	inv.mu.Lock()
	inv.engine = Engine{Host: si.Name, ServerVersion: si.ServerVersion, APIVersion: inv.client.ClientVersion(),
		SwarmNodeID: si.Swarm.NodeID}
	since := inv.lastEvent
	clear(inv.queued) // a new session, a new queue
	inv.eventsQueued.Store(0)
	if since > 0 {
		// An event stamped before the newest one may have been sent after it (see
		// replayWindow): resume a window earlier; handled skips what came already.
		since = max(1, since-int64(replayWindow))
	}
	inv.mu.Unlock()

	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Container events, and network events for connect and disconnect: a container's
	// addresses change without a container event.
	opts := client.EventsListOptions{Filters: make(client.Filters).Add("type", string(events.ContainerEventType),
		string(events.NetworkEventType))}
	if since > 0 {
		opts.Since = fmt.Sprintf("%d.%09d", since/1e9, since%1e9)
	}
	stream := inv.client.Events(sctx, opts)
	msgs, errs := stream.Messages, stream.Err

	queue := make(chan queued, eventQueueSize)
	overflow := make(chan struct{}, 1)
	streamErr := make(chan error, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the reader: never blocks on the handlers
		defer wg.Done()
		for {
			select {
			case <-sctx.Done():
				return
			case err := <-errs:
				if err == nil {
					err = errors.New("event stream closed")
				}
				streamErr <- err
				return
			case m := <-msgs:
				inv.lastContact.Store(time.Now().UnixNano())
				inv.countQueued(m, 1)
				select {
				case queue <- queued{msg: slim(m)}:
				default:
					inv.countQueued(m, -1)
					inv.dropped()
					select {
					case overflow <- struct{}{}:
					default:
					}
				}
			}
		}
	}()
	defer wg.Wait()
	defer cancel()

	if err := inv.relist(sctx); err != nil {
		return err
	}
	inv.setConnected(true)
	inv.listedOnce.Do(func() { close(inv.listed) })
	inv.log.WithField("engine", si.ServerVersion).WithField("api", inv.client.ClientVersion()).
		WithField("containers", inv.count()).Info("watching the Docker Engine")

	// Inspections that need not hold up events (the health log after a probe run, the
	// periodic refresh) run on a few workers; their results come back to this loop, which
	// alone stores containers and tells the handlers, so changes stay in order.
	pool := newInspectPool(sctx, inv, inspectWorkers)
	defer func() { cancel(); pool.wait() }()

	refresh := time.NewTicker(inv.opts.Refresh)
	defer refresh.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-streamErr:
			return err
		case <-overflow:
			inv.log.Warn("event queue overflowed; re-listing containers")
			if err := inv.relist(sctx); err != nil {
				return err
			}
		case <-refresh.C:
			if err := inv.refresh(sctx, pool); err != nil {
				return err
			}
		case r := <-pool.results:
			inv.applyInspect(sctx, pool, r)
		case q := <-queue:
			if q.recheck != "" {
				pool.request(q.recheck, "health_log")
				continue
			}
			inv.countQueued(q.msg, -1)
			inv.handleEvent(sctx, q.msg, queue, pool)
		}
	}
}

// countQueued adds n to the container events of m's container waiting in the queue.
func (inv *Inventory) countQueued(m events.Message, n int) {
	inv.eventsQueued.Add(int64(n))
	if m.Type != events.ContainerEventType {
		return
	}
	inv.mu.Lock()
	defer inv.mu.Unlock()
	q := inv.queued[m.Actor.ID]
	q.all += n
	if stoppingActions[m.Action] {
		q.stopping += n
	}
	if q.all <= 0 {
		delete(inv.queued, m.Actor.ID)
	} else {
		inv.queued[m.Actor.ID] = q
	}
}

// inspectWorkers is how many inspections run at once off the event loop.
const inspectWorkers = 4

type inspectResult struct {
	id       string
	action   string // "" for a refresh (reported as Seen), "health_log" after a probe run
	resp     container.InspectResponse
	bridgeIP string // a Swarm task's docker_gwbridge address
	err      error
}

// inspectPool runs inspections on workers. pending (touched only by the event loop)
// holds one request per container: a refresh absorbs a health_log request, not the reverse.
type inspectPool struct {
	inv     *Inventory
	ctx     context.Context
	reqs    chan string
	results chan inspectResult
	pending map[string]pendingInspect
	wg      sync.WaitGroup
}

type pendingInspect struct {
	action string
	known  *Container // what the inventory held when the inspection was asked for
	again  bool       // something changed after the inspection was asked for: ask once more
}

func newInspectPool(ctx context.Context, inv *Inventory, workers int) *inspectPool {
	p := &inspectPool{inv: inv, ctx: ctx, reqs: make(chan string, eventQueueSize),
		results: make(chan inspectResult, workers), pending: map[string]pendingInspect{}}
	for i := 0; i < workers; i++ {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			for {
				select {
				case <-ctx.Done():
					return
				case id := <-p.reqs:
					v, err := inv.withTimeout(ctx, func(c context.Context) (any, error) { return inv.containerInspect(c, id) })
					r := inspectResult{id: id, err: err}
					if err == nil {
						r.resp = v.(container.InspectResponse)
						r.bridgeIP = inv.bridgeIP(ctx, r.resp)
					}
					select {
					case p.results <- r:
					case <-ctx.Done():
						return
					}
				}
			}
		}()
	}
	return p
}

// requestAfterChange asks for an inspection that must start after now: a container
// change no container event carries (a network connect) may not be in the answer of an
// inspection already under way, so that one is followed by another.
func (p *inspectPool) requestAfterChange(id string) {
	if prev, ok := p.pending[id]; ok {
		prev.again = true
		p.pending[id] = prev
		return
	}
	p.request(id, "")
}

func (p *inspectPool) request(id, action string) {
	if prev, ok := p.pending[id]; ok {
		if action == "" && prev.action != "" {
			prev.action = ""
			p.pending[id] = prev
		}
		return
	}
	p.inv.mu.Lock()
	known := p.inv.containers[id]
	p.inv.mu.Unlock()
	select {
	case p.reqs <- id:
		p.pending[id] = pendingInspect{action: action, known: known}
	default:
		p.inv.dropped() // the next refresh catches up
	}
}

func (p *inspectPool) wait() { p.wg.Wait() }

// applyInspect stores a worker's inspection and tells the handlers.
func (inv *Inventory) applyInspect(ctx context.Context, p *inspectPool, r inspectResult) {
	req := p.pending[r.id]
	delete(p.pending, r.id)
	inv.mu.Lock()
	current := inv.containers[r.id]
	inv.mu.Unlock()
	if current != req.known {
		// The container went (destroy event, re-list) or changed (an event) while it was
		// inspected: the answer may be older than that. Storing it would bring a
		// destroyed container back or undo a health transition; ask again instead.
		if current != nil {
			p.request(r.id, req.action)
		}
		return
	}
	if r.err != nil {
		inv.inspectErrors.Add(1)
		return
	}
	action := req.action
	c := inv.store(r.resp, r.bridgeIP)
	if req.again {
		p.request(r.id, "")
	}
	if !c.Monitored {
		return
	}
	ch := Change{Kind: Seen, Time: time.Now(), Container: c}
	if action != "" {
		ch.Kind, ch.Action = Event, action
	}
	inv.notify(ctx, ch)
}

// dropped counts an event or inspection request that did not fit its queue and makes the
// next refresh a full one.
func (inv *Inventory) dropped() {
	inv.eventsDropped.Add(1)
	inv.stale.Store(true)
}

// refresh lists containers and reports the vanished ones as Gone. New containers, and
// monitored ones whose state in the list differs from what the inventory holds, are
// inspected by the pool and reported as Seen; the other monitored ones are reported as
// Seen as they are: events (container and network connect/disconnect) keep them up to
// date, and an inspection costs the daemon and the agent a 5 KB JSON document each. Every
// Options.FullRefreshEvery-th refresh, or after a dropped event, inspects them all.
func (inv *Inventory) refresh(ctx context.Context, p *inspectPool) error {
	ids, states, err := inv.list(ctx)
	if err != nil {
		return err
	}
	inv.refreshes++
	stale := inv.stale.Swap(false)
	full := stale || inv.refreshes%inv.opts.FullRefreshEvery == 0
	now := time.Now()
	for _, id := range ids {
		inv.mu.Lock()
		known := inv.containers[id]
		inv.mu.Unlock()
		switch {
		case known == nil || (known.Monitored && (full || string(known.State.Status) != states[id])):
			p.request(id, "")
		case known.Monitored:
			inv.notify(ctx, Change{Kind: Seen, Time: now, Container: known})
		}
	}
	return nil
}

func (inv *Inventory) withTimeout(ctx context.Context, f func(context.Context) (any, error)) (any, error) {
	c, cancel := context.WithTimeout(ctx, inv.opts.Timeout)
	defer cancel()
	v, err := f(c)
	if err == nil {
		inv.lastContact.Store(time.Now().UnixNano())
	}
	return v, err
}

// relist inspects every container, reports the monitored ones as Seen, and reports as
// Gone those that vanished since the last list.
func (inv *Inventory) relist(ctx context.Context) error {
	inv.stale.Store(false) // this is the full inspection a drop asks for
	ids, _, err := inv.list(ctx)
	if err != nil {
		return err
	}
	now := time.Now()
	for _, id := range ids {
		inv.mu.Lock()
		known := inv.containers[id]
		inv.mu.Unlock()
		if known != nil && !known.Monitored {
			continue // labels cannot change: an unmonitored container stays unmonitored
		}
		c, err := inv.inspect(ctx, id)
		if err != nil {
			if ctx.Err() != nil {
				return err
			}
			continue
		}
		if c.Monitored {
			inv.notify(ctx, Change{Kind: Seen, Time: now, Container: c})
		}
	}
	return nil
}

// list lists every container, forgets those that vanished since the last list and have
// no event queued (reporting the monitored ones as Gone) and returns the IDs present and their states ("running", …).
func (inv *Inventory) list(ctx context.Context) ([]string, map[string]string, error) {
	inv.relists.Add(1)
	v, err := inv.withTimeout(ctx, func(c context.Context) (any, error) {
		return inv.client.ContainerList(c, client.ContainerListOptions{All: true})
	})
	if err != nil {
		return nil, nil, fmt.Errorf("list containers: %w", err)
	}
	now := time.Now()
	present := map[string]string{}
	var ids []string
	for _, s := range v.(client.ContainerListResult).Items {
		present[s.ID] = string(s.State)
		ids = append(ids, s.ID)
	}
	inv.mu.Lock()
	var gone, vanished []*Container
	for id, c := range inv.containers {
		// A container with events still queued is not gone yet: on a busy engine the
		// queue runs seconds behind the list, and its last events (a health transition,
		// die) must reach the handlers before it goes; its destroy event ends it.
		if _, ok := present[id]; !ok && inv.queued[id].all == 0 {
			delete(inv.containers, id)
			vanished = append(vanished, c)
			if c.Monitored {
				gone = append(gone, c)
			}
		}
	}
	inv.mu.Unlock()
	for _, c := range vanished {
		inv.forgetBridgeIP(c.ID)
	}
	for _, c := range gone {
		inv.notify(ctx, Change{Kind: Gone, Action: "destroy", Time: now, Container: c})
	}
	return ids, present, nil
}

// containerInspect is one inspection of a container.
func (inv *Inventory) containerInspect(ctx context.Context, id string) (container.InspectResponse, error) {
	r, err := inv.client.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	return r.Container, err
}

// inspect fetches one container and stores it.
func (inv *Inventory) inspect(ctx context.Context, id string) (*Container, error) {
	v, err := inv.withTimeout(ctx, func(c context.Context) (any, error) { return inv.containerInspect(c, id) })
	if err != nil {
		inv.inspectErrors.Add(1)
		return nil, err
	}
	resp := v.(container.InspectResponse)
	return inv.store(resp, inv.bridgeIP(ctx, resp)), nil
}

// GatewayBridge is the bridge network through which Swarm tasks reach their node.
const GatewayBridge = "docker_gwbridge"

// bridgeIP returns the address on docker_gwbridge of a running Swarm task, or "". The
// addresses of every container on the bridge are read with one network inspection and
// kept; the network is inspected again only for a task it did not list.
func (inv *Inventory) bridgeIP(ctx context.Context, resp container.InspectResponse) string {
	if resp.Config == nil || resp.Config.Labels["com.docker.swarm.task.id"] == "" ||
		resp.State == nil || !resp.State.Running || (resp.HostConfig != nil && resp.HostConfig.NetworkMode.IsHost()) {
		return ""
	}
	inv.bridgeMu.Lock()
	defer inv.bridgeMu.Unlock()
	// Known for this run of the container (a restart may give it another address), or
	// read from the bridge's last inspection before this container was inspected.
	if a, ok := inv.bridgeIPs[resp.ID]; ok && (a.startedAt == resp.State.StartedAt || a.startedAt == "") {
		inv.bridgeIPs[resp.ID] = bridgeAddr{ip: a.ip, startedAt: resp.State.StartedAt}
		return a.ip
	}
	v, err := inv.withTimeout(ctx, func(c context.Context) (any, error) {
		return inv.client.NetworkInspect(c, GatewayBridge, client.NetworkInspectOptions{})
	})
	if err != nil {
		inv.inspectErrors.Add(1)
		inv.log.WithError(err).WithField("container", strings.TrimPrefix(resp.Name, "/")).
			Debug("no docker_gwbridge address for the Swarm task: its spans cannot be told by their source address")
		return ""
	}
	if inv.bridgeIPs == nil {
		inv.bridgeIPs = map[string]bridgeAddr{}
	}
	// Not on the bridge (a task without networks): known too, not looked up again until
	// it restarts.
	inv.bridgeIPs[resp.ID] = bridgeAddr{startedAt: resp.State.StartedAt}
	for id, ep := range v.(client.NetworkInspectResult).Network.Containers {
		if !ep.IPv4Address.IsValid() {
			continue
		}
		ip := ep.IPv4Address.Addr().String()
		switch a, ok := inv.bridgeIPs[id]; {
		case id == resp.ID:
			inv.bridgeIPs[id] = bridgeAddr{ip: ip, startedAt: resp.State.StartedAt}
		case !ok || a.ip != ip:
			// Another container: its address now, for whichever run it is in (a
			// container inspected during a re-list of a hundred tasks needs no lookup
			// of its own).
			inv.bridgeIPs[id] = bridgeAddr{ip: ip}
		}
	}
	return inv.bridgeIPs[resp.ID].ip
}

// bridgeAddr is a container's docker_gwbridge address ("" for none) for the run of the
// container that started at startedAt ("": the run current when the bridge was last
// inspected).
type bridgeAddr struct{ ip, startedAt string }

// forgetBridgeIP drops what is known of a container's docker_gwbridge address (it was
// connected to or disconnected from the bridge, or it went).
func (inv *Inventory) forgetBridgeIP(id string) {
	inv.bridgeMu.Lock()
	delete(inv.bridgeIPs, id)
	inv.bridgeMu.Unlock()
}

// store keeps what an inspection says of a container, and reports its label problems the
// first time it is seen.
func (inv *Inventory) store(resp container.InspectResponse, bridgeIP string) *Container {
	c := FromInspect(resp, inv.opts.MonitorAll)
	c.BridgeIP = bridgeIP
	inv.mu.Lock()
	old := inv.containers[c.ID]
	inv.containers[c.ID] = c
	inv.mu.Unlock()
	if old == nil && len(c.Config.Problems) > 0 && (c.Monitored || c.Config.Enable == nil) {
		for _, p := range c.Config.Problems {
			inv.labelProblems.Add(1)
			inv.log.WithField("container", c.Name).WithField("key", p.ShownKey()).WithField("value", p.ShownValue()).
				Warn("bad label: " + p.Reason)
		}
		if n := c.Config.Omitted; n > 0 {
			inv.labelProblems.Add(uint64(n))
			inv.log.WithField("container", c.Name).
				Warn(fmt.Sprintf("bad labels: %d more problem(s) not listed (at most %d per container)", n, labels.MaxProblems))
		}
	}
	return c
}

// handleEvent updates the container an event is about and tells the handlers.
func (inv *Inventory) handleEvent(ctx context.Context, m events.Message, queue chan queued, pool *inspectPool) {
	inv.events.Add(1)
	// A network event's actor is the network; the container is an attribute.
	key := eventKey{m.TimeNano, m.Actor.ID + "|" + string(m.Action) + "|" + m.Actor.Attributes["container"]}
	inv.mu.Lock()
	switch {
	case inv.handled[key]:
		inv.mu.Unlock()
		return // replayed, handled before
	case m.TimeNano < inv.lastEvent-int64(replayWindow):
		// Older than what handled remembers: cannot tell a replay from an event that
		// came very late. The next refresh is a full one and catches up.
		inv.mu.Unlock()
		inv.dropped()
		return
	}
	if len(inv.handled) < maxHandled {
		inv.handled[key] = true
	}
	inv.eventLag.Store(time.Since(time.Unix(0, m.TimeNano)).Milliseconds())
	if m.TimeNano > inv.lastEvent {
		inv.lastEvent = m.TimeNano
	}
	if inv.lastEvent-inv.prunedAt > int64(replayWindow)/4 {
		for k := range inv.handled {
			if k.timeNano < inv.lastEvent-int64(replayWindow) {
				delete(inv.handled, k)
			}
		}
		inv.prunedAt = inv.lastEvent
	}
	if m.Type == events.NetworkEventType {
		known := inv.containers[m.Actor.Attributes["container"]]
		inv.mu.Unlock()
		if known != nil && known.Monitored && (m.Action == events.ActionConnect || m.Action == events.ActionDisconnect) {
			if m.Actor.Attributes["name"] == GatewayBridge {
				inv.forgetBridgeIP(known.ID)
			}
			pool.requestAfterChange(known.ID) // its addresses changed: inspect again, report as Seen
		}
		return
	}
	known := inv.containers[m.Actor.ID]
	inv.mu.Unlock()

	action := string(m.Action)
	verb, _, _ := strings.Cut(action, ":")
	if known != nil && !known.Monitored {
		if verb == "destroy" {
			inv.forget(m.Actor.ID)
		}
		return
	}
	ch := Change{Kind: Event, Action: action, Event: m, Time: time.Unix(0, m.TimeNano)}
	switch verb {
	case "destroy":
		if known != nil {
			inv.forget(m.Actor.ID)
			ch.Kind, ch.Container = Gone, known
			inv.notify(ctx, ch)
		}
	case "exec_create", "exec_start", "exec_detach", "attach", "detach", "resize", "top", "export",
		"archive-path", "extract-to-dir", "copy", "commit":
		// Noise: health probes and docker exec produce several of these a run.
	case "health_status":
		// Report the transition at once from what is known; the health log (streak,
		// last output) follows from an inspection off the event loop.
		if known == nil {
			inv.inspectAndNotify(ctx, m.Actor.ID, ch)
			return
		}
		c := *known
		h := container.Health{}
		if known.State.Health != nil {
			h = *known.State.Health
		}
		h.Status = container.HealthStatus(strings.TrimSpace(strings.TrimPrefix(action, "health_status:")))
		c.State.Health = &h
		inv.mu.Lock()
		if inv.containers[c.ID] == known {
			inv.containers[c.ID] = &c
		}
		inv.mu.Unlock()
		ch.Container = &c
		inv.notify(ctx, ch)
		pool.request(m.Actor.ID, "health_log")
	case "exec_die":
		// A health probe finished: its result reaches the health log a moment after
		// this event, so look again shortly.
		if known != nil && known.HasHealthcheck {
			id := m.Actor.ID
			time.AfterFunc(50*time.Millisecond, func() {
				select {
				case queue <- queued{recheck: id}:
				default:
					inv.dropped()
				}
			})
		}
	default:
		inv.inspectAndNotify(ctx, m.Actor.ID, ch)
	}
}

func (inv *Inventory) inspectAndNotify(ctx context.Context, id string, ch Change) {
	c, err := inv.inspect(ctx, id)
	if err != nil {
		inv.mu.Lock()
		c = inv.containers[id]
		inv.mu.Unlock()
		if c == nil {
			if ch.Action != "health_log" {
				inv.log.WithError(err).WithField("id", id).WithField("action", ch.Action).
					Debug("event for a container that cannot be inspected")
			}
			return
		}
	}
	if !c.Monitored {
		return
	}
	if ch.Time.IsZero() {
		ch.Time = time.Now()
	}
	ch.Container = c
	inv.notify(ctx, ch)
}

func (inv *Inventory) forget(id string) {
	inv.mu.Lock()
	delete(inv.containers, id)
	inv.mu.Unlock()
	inv.forgetBridgeIP(id)
}

func (inv *Inventory) notify(ctx context.Context, ch Change) {
	inv.mu.Lock()
	ch.Engine = inv.engine
	inv.mu.Unlock()
	for _, h := range inv.handlers {
		h.HandleChange(ctx, ch)
	}
	if len(inv.mailboxes) > 0 {
		u := Update{Container: ch.Container, Gone: ch.Kind == Gone, Engine: ch.Engine, Time: ch.Time}
		for _, m := range inv.mailboxes {
			m.Put(u)
		}
	}
}

func (inv *Inventory) setConnected(v bool) {
	inv.mu.Lock()
	inv.connected = v
	inv.mu.Unlock()
}

func (inv *Inventory) count() int {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	return len(inv.containers)
}

// Connected says whether the inventory is following the events stream now.
func (inv *Inventory) Connected() bool {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	return inv.connected
}

// Engine returns what the inventory knows of the engine.
func (inv *Inventory) Engine() Engine {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	return inv.engine
}

// Snapshot returns copies of the containers known now, monitored or not.
func (inv *Inventory) Snapshot() []Container {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	out := make([]Container, 0, len(inv.containers))
	for _, c := range inv.containers {
		out = append(out, *c)
	}
	return out
}

// Points returns the inventory's own counters as a lookout_inventory point.
func (inv *Inventory) Points(now time.Time, tags map[string]string) []metric.Point {
	monitored, total := 0, 0
	inv.mu.Lock()
	for _, c := range inv.containers {
		total++
		if c.Monitored {
			monitored++
		}
	}
	connected := inv.connected
	inv.mu.Unlock()
	out := []metric.Point{metric.New("lookout_inventory", tags, []metric.Field{
		{Key: "connected", Value: connected},
		{Key: "containers", Value: int64(total)},
		{Key: "monitored", Value: int64(monitored)},
		{Key: "events", Value: inv.events.Load()},
		{Key: "events_dropped", Value: inv.eventsDropped.Load()},
		{Key: "reconnects", Value: inv.reconnects.Load()},
		{Key: "relists", Value: inv.relists.Load()},
		{Key: "inspect_errors", Value: inv.inspectErrors.Load()},
		{Key: "label_problems", Value: inv.labelProblems.Load()},
		{Key: "events_queued", Value: inv.eventsQueued.Load()},
		{Key: "event_lag_ms", Value: inv.eventLag.Load()},
	}, now)}
	// Each feature's mailbox: what it has not taken yet, and its recovered panics.
	for _, m := range inv.mailboxes {
		out = append(out, m.Points(now, tags)...)
	}
	return out
}

// LastContact is when the engine last answered or sent an event.
func (inv *Inventory) LastContact() time.Time { return time.Unix(0, inv.lastContact.Load()) }
