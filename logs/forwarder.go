// Package logs forwards the stdout and stderr of monitored containers to Fluentd over the
// forward protocol, at least once: it follows each container through the Docker logs API
// (timestamps on), joins the pieces Docker cut at 16 KiB, optionally joins multiline
// records, sends Forward-mode batches with a chunk ID and advances a per-container
// position, saved in a state directory, only when Fluentd has acknowledged the batch.
// While Fluentd is unreachable reading pauses behind a bounded buffer (Docker keeps the
// log); after a restart reading resumes from the saved position.
package logs

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"text/template"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/errdefs"
	"github.com/sirupsen/logrus"

	"github.com/lookout-agent/lookout/inventory"
	"github.com/lookout-agent/lookout/labels"
	"github.com/lookout-agent/lookout/metric"
)

// Docker is what the forwarder needs of the Docker Engine API.
type Docker interface {
	ContainerLogs(ctx context.Context, container string, options container.LogsOptions) (io.ReadCloser, error)
}

// Options configure a Forwarder.
type Options struct {
	Address       string             // host:port, tcp://host:port or unix:///path
	TLS           *tls.Config        // nil: plain TCP
	Auth          *Auth              // nil: no shared key (a server asking for the handshake is refused)
	Tag           *template.Template // the agent's tag template (labels.ParseLogTag)
	StateDir      string             // positions are kept in StateDir/logs
	BufferLimit   int                // records read but not acknowledged, per container
	BatchSize     int                // records per Forward message
	InFlight      int                // Forward messages sent on a connection before their acks (default 4)
	MaxRecordSize int                // bytes of log per record; the rest is cut, with a marker
	FromStart     bool               // a container seen for the first time is read from its start (else from when the agent started)
	Timeout       time.Duration      // connect, write and wait for an ack
	Linger        time.Duration      // how long a record may wait for its batch to fill
	Log           logrus.FieldLogger
}

// Forwarder follows the logs of every monitored container that does not say
// lookout.logs=false.
type Forwarder struct {
	opts          Options
	started       time.Time
	docker        Docker
	store         *store
	network, addr string
	changes       chan inventory.Change
	saved         func(id string, p Position) // tests: called after each position saved

	// Touched only by Run's goroutine.
	followers map[string]*follower
	latest    map[string]inventory.Change
	notBefore map[string]time.Time
	idle      map[string]time.Duration
	conns     map[string]*conn // one connection per container, kept across follows
	wg        sync.WaitGroup
	done      chan followDone

	mu        sync.Mutex
	perCont   map[string]*counters
	total     counters
	changesDr atomic.Uint64
	active    atomic.Int64
}

// followDone is what a follower reports when it ends.
type followDone struct {
	id  string
	err error
	got bool // it read something
}

// Idle times before a silent follow is restarted (see errIdle).
const (
	minIdle = 10 * time.Second
	maxIdle = 2 * time.Minute
)

type counters struct {
	tags                                      map[string]string
	lines, bytes, retried, dropped, truncated atomic.Uint64
	positionErrors                            atomic.Uint64 // acknowledged batches whose position was not saved
}

// New returns a forwarder; it creates the state directory and checks it is writable.
func New(docker Docker, opts Options) (*Forwarder, error) {
	network, addr, err := parseAddress(opts.Address)
	if err != nil {
		return nil, fmt.Errorf("fluentd address %q: %w", opts.Address, err)
	}
	st, err := newStore(opts.StateDir)
	if err != nil {
		return nil, err
	}
	if opts.Tag == nil {
		opts.Tag, _ = labels.ParseLogTag("docker.{{.Name}}")
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 1000
	}
	if opts.InFlight <= 0 {
		opts.InFlight = 4
	}
	if opts.BufferLimit < opts.BatchSize {
		opts.BufferLimit = max(10000, opts.BatchSize)
	}
	if opts.MaxRecordSize <= 0 {
		opts.MaxRecordSize = 1 << 20
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	if opts.Linger <= 0 {
		opts.Linger = 100 * time.Millisecond
	}
	if opts.Log == nil {
		opts.Log = logrus.New()
	}
	return &Forwarder{opts: opts, started: time.Now(), docker: docker, store: st, network: network, addr: addr,
		changes: make(chan inventory.Change, 1024), followers: map[string]*follower{},
		latest: map[string]inventory.Change{}, notBefore: map[string]time.Time{}, done: make(chan followDone), idle: map[string]time.Duration{},
		conns: map[string]*conn{}, perCont: map[string]*counters{}}, nil
}

var _ inventory.Handler = (*Forwarder)(nil)

// HandleChange implements inventory.Handler; it never blocks. A change dropped on a full
// queue is counted; the next refresh repeats it.
func (f *Forwarder) HandleChange(_ context.Context, ch inventory.Change) {
	select {
	case f.changes <- ch:
	default:
		f.changesDr.Add(1)
	}
}

func wanted(ch inventory.Change) bool {
	c := ch.Container
	return ch.Kind != inventory.Gone && c.Monitored && c.State.Running && !c.State.Restarting &&
		(c.Config.Logs.Enable == nil || *c.Config.Logs.Enable)
}

// Run follows containers until ctx is done, then stops every follower and waits for them.
func (f *Forwarder) Run(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	defer f.wg.Wait()
	for {
		select {
		case <-ctx.Done():
			for _, fl := range f.followers {
				fl.cancel()
			}
			// Drain the followers' done notices so that they can return.
			for len(f.followers) > 0 {
				delete(f.followers, (<-f.done).id)
			}
			for _, c := range f.conns {
				c.close()
			}
			return
		case ch := <-f.changes:
			id := ch.Container.ID
			f.latest[id] = ch
			if ch.Kind == inventory.Gone && f.followers[id] == nil {
				f.forget(id)
			}
			f.startIfWanted(ctx, id)
		case d := <-f.done:
			id := d.id
			delete(f.followers, id)
			f.notBefore[id] = time.Now().Add(time.Second)
			switch {
			case !errors.Is(d.err, errIdle):
			case d.got:
				f.idle[id] = minIdle
				f.notBefore[id] = time.Time{}
			default:
				f.idle[id] = min(2*f.idle[id], maxIdle)
				f.notBefore[id] = time.Time{}
			}
			// Gone: by the inventory's word, or by Docker's (no such container) when the
			// inventory's one Gone notice was dropped on a full queue.
			if ch, ok := f.latest[id]; (ok && ch.Kind == inventory.Gone) || errdefs.IsNotFound(d.err) {
				f.forget(id)
			}
		case <-tick.C:
			for id := range f.latest {
				f.startIfWanted(ctx, id)
			}
		}
	}
}

// forget drops what is kept of a container that is gone and no longer followed.
func (f *Forwarder) forget(id string) {
	delete(f.latest, id)
	delete(f.notBefore, id)
	delete(f.idle, id)
	if c := f.conns[id]; c != nil {
		c.close()
		delete(f.conns, id)
	}
	f.store.remove(id)
	f.mu.Lock()
	delete(f.perCont, id)
	f.mu.Unlock()
}

func (f *Forwarder) startIfWanted(ctx context.Context, id string) {
	ch, ok := f.latest[id]
	if !ok || !wanted(ch) || f.followers[id] != nil || time.Now().Before(f.notBefore[id]) {
		return
	}
	c := ch.Container
	tagTmpl := f.opts.Tag
	if c.Config.Logs.Tag != nil {
		tagTmpl = c.Config.Logs.Tag
	}
	tag, err := f.tag(tagTmpl, c, ch.Engine)
	if err != nil {
		f.opts.Log.WithError(err).WithField("container", c.Name).Warn("logs: tag template failed; using the agent's")
		tag, _ = f.tag(f.opts.Tag, c, ch.Engine)
	}
	f.mu.Lock()
	cnt := f.perCont[id]
	if cnt == nil {
		cnt = &counters{}
		f.perCont[id] = cnt
	}
	cnt.tags = c.Tags(ch.Engine)
	f.mu.Unlock()
	if f.idle[id] == 0 {
		f.idle[id] = minIdle
	}
	cn := f.conns[id]
	if cn == nil {
		cn = &conn{network: f.network, addr: f.addr, tls: f.opts.TLS, auth: f.opts.Auth, timeout: f.opts.Timeout}
		f.conns[id] = cn
	}
	fctx, cancel := context.WithCancel(ctx)
	fl := &follower{f: f, id: id, name: c.Name, tty: c.Tty, tag: tag, multiline: c.Config.Logs.Multiline,
		cnt: cnt, cancel: cancel, idle: f.idle[id], conn: cn}
	fl.meta, fl.metaPairs = encodeMeta(recordFields(c, ch.Engine))
	f.followers[id] = fl
	f.active.Add(1)
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		defer f.active.Add(-1)
		err := fl.run(fctx) // the connection stays open for the next follow (deliver closes it on errors)
		cancel()
		if err != nil && fctx.Err() == nil && !errors.Is(err, errIdle) {
			f.opts.Log.WithError(err).WithField("container", c.Name).Warn("logs: following stopped; retrying")
		}
		f.done <- followDone{id: id, err: err, got: fl.got}
	}()
}

func (f *Forwarder) tag(t *template.Template, c *inventory.Container, e inventory.Engine) (string, error) {
	var b strings.Builder
	short := c.ID
	if len(short) > 12 {
		short = short[:12]
	}
	err := t.Execute(&b, labels.LogTagData{ID: short, FullID: c.ID, Name: c.Name, ImageName: c.Image,
		Service: c.Service, Stack: c.Stack, TaskSlot: c.Slot, Node: e.Host})
	if err == nil && b.Len() == 0 {
		err = errors.New("empty tag")
	}
	return b.String(), err
}

// recordFields are the fields of every record of c: those of Docker's fluentd driver
// (container_id, container_name with its leading '/'), the image, the Swarm names and the
// container's lookout.tags.*. source and log follow in each record.
func recordFields(c *inventory.Container, e inventory.Engine) [][2]string {
	f := [][2]string{{"container_id", c.ID}, {"container_name", "/" + c.Name}, {"image", c.Image}}
	if c.Service != "" {
		f = append(f, [2]string{"swarm_service", c.Service}, [2]string{"swarm_stack", c.Stack},
			[2]string{"swarm_task", c.TaskName}, [2]string{"swarm_task_slot", c.Slot}, [2]string{"swarm_node", e.Host})
	}
	own := map[string]bool{"source": true, "log": true}
	for _, kv := range f {
		own[kv[0]] = true
	}
	for _, k := range slices.Sorted(maps.Keys(c.Config.Tags)) {
		if !own[k] {
			f = append(f, [2]string{k, c.Config.Tags[k]})
		}
	}
	return f
}

// Points reports the counters of each followed container (lookout_logs) and the totals
// (lookout_logs_total).
func (f *Forwarder) Points(now time.Time, tags map[string]string) []metric.Point {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []metric.Point
	for _, c := range f.perCont {
		out = append(out, metric.New("lookout_logs", c.tags, c.fields(), now))
	}
	fields := append(f.total.fields(), metric.Field{Key: "followed", Value: f.active.Load()},
		metric.Field{Key: "changes_dropped", Value: f.changesDr.Load()})
	return append(out, metric.New("lookout_logs_total", tags, fields, now))
}

func (c *counters) fields() []metric.Field {
	return []metric.Field{{Key: "lines", Value: c.lines.Load()}, {Key: "bytes", Value: c.bytes.Load()},
		{Key: "retried", Value: c.retried.Load()}, {Key: "dropped", Value: c.dropped.Load()},
		{Key: "truncated", Value: c.truncated.Load()}, {Key: "position_errors", Value: c.positionErrors.Load()}}
}
