// Package logs forwards the stdout and stderr of monitored containers to Fluentd over the
// forward protocol (package logs/forward), at least once: it follows each container through the Docker logs API
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
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"text/template"
	"time"

	"github.com/moby/moby/client"
	"github.com/sirupsen/logrus"

	"github.com/lookout-agent/lookout/inventory"
	"github.com/lookout-agent/lookout/labels"
	"github.com/lookout-agent/lookout/logs/forward"
	"github.com/lookout-agent/lookout/metric"
)

// Docker is what the forwarder needs of the Docker Engine API.
type Docker interface {
	ContainerLogs(ctx context.Context, container string, options client.ContainerLogsOptions) (client.ContainerLogsResult, error)
}

// Options configure a Forwarder.
type Options struct {
	Address       string             // host:port, tcp://host:port or unix:///path
	TLS           *tls.Config        // nil: plain TCP
	Auth          *forward.Auth      // nil: no shared key (a server asking for the handshake is refused)
	Tag           *template.Template // the agent's tag template (labels.ParseLogTag)
	StateDir      string             // positions are kept in StateDir/logs
	BufferLimit   int                // records read but not acknowledged, per container
	BatchSize     int                // records per Forward message
	InFlight      int                // Forward messages sent on a connection before their acks (default forward.DefaultInFlight)
	MaxRecordSize int                // bytes of log per record; the rest is cut, with a marker
	FromStart     bool               // a container seen for the first time is read from its start (else from when the agent started)
	Timeout       time.Duration      // connect, write and wait for an ack (default forward.DefaultTimeout)
	Linger        time.Duration      // how long a record may wait for its batch to fill
	// Source is where logs are read: SourceAuto (the json-file log file where it can be
	// read, else the API, per container), SourceFile or SourceAPI. ContainersDir is
	// Docker's containers directory as the agent sees it; "" means no file source.
	Source        string
	ContainersDir string
	Log           logrus.FieldLogger
}

// Log sources.
const (
	SourceAuto = "auto"
	SourceFile = "file"
	SourceAPI  = "api"
)

// Forwarder follows the logs of every monitored container that does not say
// lookout.logs=false.
type Forwarder struct {
	opts    Options
	fwd     forward.Config
	started time.Time
	docker  Docker
	store   *store
	updates *inventory.Mailbox          // the inventory's: the latest state of each container
	saved   func(id string, p Position) // tests: called after each position saved

	// containers is written only by Run's goroutine, under mu (Points reads it).
	containers map[string]*tracked
	wg         sync.WaitGroup
	done       chan followDone

	watch *watcher // wakes the file source's readers; nil without one

	mu     sync.Mutex
	total  counters
	active atomic.Int64
	// followedFile and followedAPI count the followers by source.
	followedFile, followedAPI atomic.Int64
}

// tracked is everything the forwarder keeps of one container, so that forgetting the
// container forgets all of it: its latest state, its follower, its connection to Fluentd,
// its counters and (in the store, by its ID) its position.
type tracked struct {
	latest    inventory.Update
	follower  *follower       // nil while not followed
	client    *forward.Client // one connection per container, kept across follows; nil before the first
	cnt       *counters       // nil before the first follow; reported by Points
	notBefore time.Time       // no follow before this (a follow that ended waits a second)
	idle      time.Duration   // the idle time of the next follow (see errIdle)
	source    string          // the source of the last follow ("" before the first)
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
	split                                     atomic.Uint64 // multiline records sent on reaching the maximum size
	positionErrors                            atomic.Uint64 // acknowledged batches whose position was not saved
	linesFile, linesAPI                       atomic.Uint64 // lines by source
	fallbacks                                 atomic.Uint64 // follows that took the API in auto mode
	rotatedLost                               atomic.Uint64 // rotated log files deleted before they were read
}

// New returns a forwarder of the containers whose states updates brings (the inventory's
// Mailbox); it creates the state directory and checks it is writable.
func New(docker Docker, updates *inventory.Mailbox, opts Options) (*Forwarder, error) {
	if opts.InFlight <= 0 {
		opts.InFlight = forward.DefaultInFlight
	}
	fwd := forward.Config{Address: opts.Address, TLS: opts.TLS, Auth: opts.Auth, Timeout: opts.Timeout, InFlight: opts.InFlight}
	if _, err := forward.New(fwd); err != nil { // checks the address
		return nil, err
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
	if opts.BufferLimit < opts.BatchSize {
		opts.BufferLimit = max(10000, opts.BatchSize)
	}
	if opts.MaxRecordSize <= 0 {
		opts.MaxRecordSize = 1 << 20
	}
	if opts.Linger <= 0 {
		opts.Linger = 100 * time.Millisecond
	}
	if opts.Log == nil {
		opts.Log = logrus.New()
	}
	if opts.Source == "" {
		opts.Source = SourceAuto
	}
	f := &Forwarder{opts: opts, fwd: fwd, started: time.Now(), docker: docker, store: st, updates: updates,
		containers: map[string]*tracked{}, done: make(chan followDone)}
	if opts.Source != SourceAPI {
		var err error
		if f.watch, err = newWatcher(); err != nil {
			opts.Log.WithError(err).Warn("logs: no inotify; log files are polled every 250 ms")
		}
	}
	return f, nil
}

// ChooseSource says where a container's log is read from, and why: in auto mode the
// json-file log file when the container logs with json-file and its file can be read in
// containersDir ("" for none: a remote engine), else the Docker API.
func ChooseSource(mode, containersDir string, c *inventory.Container) (source, why string) {
	switch mode {
	case SourceFile, SourceAPI:
		return mode, "set by logs.source"
	}
	if c.LogDriver != "json-file" {
		return SourceAPI, "log driver " + c.LogDriver
	}
	if containersDir == "" {
		return SourceAPI, "no containers directory (remote engine)"
	}
	fr := newFileReader(containersDir, c.ID, c.Tty, nil, nil)
	f, err := os.Open(fr.livePath())
	if err != nil {
		return SourceAPI, "log file unreadable: " + err.Error()
	}
	f.Close()
	return SourceFile, "json-file log readable"
}

func wanted(u inventory.Update) bool {
	c := u.Container
	return !u.Gone && c.Monitored && c.State.Running && !c.State.Restarting &&
		(c.Config.Logs.Enable == nil || *c.Config.Logs.Enable)
}

// Run follows containers until ctx is done, then stops every follower and waits for them.
func (f *Forwarder) Run(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	// The followers are waited for only on a normal return: after a panic, Supervise
	// runs Run again, and the followers still running report to it.
	for {
		select {
		case <-ctx.Done():
			following := 0
			for _, t := range f.containers {
				if t.follower != nil {
					t.follower.cancel()
					following++
				}
			}
			// Drain the followers' done notices so that they can return.
			for ; following > 0; following-- {
				<-f.done
			}
			for _, t := range f.containers {
				if t.client != nil {
					t.client.Close()
				}
			}
			f.wg.Wait()
			f.watch.close()
			return
		case <-f.updates.Ready():
			f.updates.Each(func(u inventory.Update) { f.update(ctx, u) })
		case d := <-f.done:
			t := f.containers[d.id]
			t.follower = nil
			t.notBefore = time.Now().Add(time.Second)
			switch {
			case !errors.Is(d.err, errIdle):
			case d.got:
				t.idle = minIdle
				t.notBefore = time.Time{}
			default:
				t.idle = min(2*t.idle, maxIdle)
				t.notBefore = time.Time{}
			}
			if t.latest.Gone {
				f.forget(d.id)
			}
		case <-tick.C:
			for id, t := range f.containers {
				f.startIfWanted(ctx, id, t)
			}
		}
	}
}

// update takes the latest state of a container: it starts following it if wanted, and
// forgets a container that is gone. A container removed while followed is forgotten when
// its follower ends: that is when the log it read (its stream ends with the container) is
// delivered, and the follower writes its position no more.
func (f *Forwarder) update(ctx context.Context, u inventory.Update) {
	id := u.ID()
	t := f.containers[id]
	if t == nil {
		if u.Gone {
			return
		}
		t = &tracked{}
		f.mu.Lock()
		f.containers[id] = t
		f.mu.Unlock()
	}
	t.latest = u
	if t.follower != nil && !wanted(u) {
		t.follower.stop() // the file source reads to the end, then stops
	}
	if u.Gone {
		if t.follower == nil {
			f.forget(id)
		}
		return
	}
	f.startIfWanted(ctx, id, t)
}

// SweepPositions removes the position files of containers the engine no longer has: those
// removed while the agent was away, of which no event will tell. known says whether the
// engine has a container; call it once the inventory has listed the engine's containers
// (inventory.Inventory.Listed). The files are listed before known is asked, so a file
// written meanwhile belongs to a container known by then (the inventory tells the
// forwarder of a container after it holds it), or to one gone since, whose file its Gone
// removes anyway. It returns how many files it removed.
func (f *Forwarder) SweepPositions(known func(id string) bool) (int, error) {
	ids, err := f.store.ids()
	if err != nil {
		return 0, fmt.Errorf("logs: position files: %w", err)
	}
	removed := 0
	for _, id := range ids {
		if !known(id) {
			f.store.remove(id)
			removed++
		}
	}
	return removed, nil
}

// forget drops everything kept of a container that is gone and no longer followed.
func (f *Forwarder) forget(id string) {
	if t := f.containers[id]; t != nil && t.client != nil {
		t.client.Close()
	}
	f.store.remove(id)
	f.mu.Lock()
	delete(f.containers, id)
	f.mu.Unlock()
}

func (f *Forwarder) startIfWanted(ctx context.Context, id string, t *tracked) {
	if !wanted(t.latest) || t.follower != nil || time.Now().Before(t.notBefore) {
		return
	}
	u := t.latest
	c := u.Container
	tagTmpl := f.opts.Tag
	if c.Config.Logs.Tag != nil {
		tagTmpl = c.Config.Logs.Tag
	}
	tag, err := f.tag(tagTmpl, c, u.Engine)
	if err != nil {
		f.opts.Log.WithError(err).WithField("container", c.Name).Warn("logs: tag template failed; using the agent's")
		tag, _ = f.tag(f.opts.Tag, c, u.Engine)
	}
	f.mu.Lock()
	if t.cnt == nil {
		t.cnt = &counters{}
	}
	t.cnt.tags = c.Tags(u.Engine)
	f.mu.Unlock()
	if t.idle == 0 {
		t.idle = minIdle
	}
	if t.client == nil {
		t.client, _ = forward.New(f.fwd) // the address was checked by New
	}
	fctx, cancel := context.WithCancel(ctx)
	fl := &follower{f: f, id: id, name: c.Name, tty: c.Tty, tag: tag, multiline: c.Config.Logs.Multiline,
		meta: forward.NewMeta(recordFields(c, u.Engine)), cnt: t.cnt, cancel: cancel, idle: t.idle, client: t.client,
		stopping: make(chan struct{})}
	src, why := ChooseSource(f.opts.Source, f.opts.ContainersDir, c)
	if src != t.source {
		if src == SourceAPI && f.opts.Source == SourceAuto {
			t.cnt.fallbacks.Add(1)
			f.total.fallbacks.Add(1)
		}
		f.opts.Log.WithField("container", c.Name).WithField("source", src).WithField("why", why).Info("logs: source")
		t.source = src
	}
	followed := &f.followedAPI
	if src == SourceFile {
		fl.idle = 0 // the file source does not go silent by mistake: no restarts
		fl.file = newFileReader(f.opts.ContainersDir, id, c.Tty, f.watch, fl.stopping)
		fl.file.bad = func() { t.cnt.dropped.Add(1); f.total.dropped.Add(1) }
		fl.file.lost = func(what string) {
			t.cnt.rotatedLost.Add(1)
			f.total.rotatedLost.Add(1)
			f.opts.Log.WithField("container", c.Name).Warn("logs: " + what + "; lines may be lost (rotated_lost)")
		}
		followed = &f.followedFile
	}
	t.follower = fl
	f.active.Add(1)
	followed.Add(1)
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		defer f.active.Add(-1)
		defer followed.Add(-1)
		err := fl.run(fctx) // the connection stays open for the next follow (Deliver closes it on errors)
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
	for _, t := range f.containers {
		if t.cnt != nil {
			out = append(out, metric.New("lookout_logs", t.cnt.tags, t.cnt.fields(), now))
		}
	}
	fields := append(f.total.fields(), metric.Field{Key: "followed", Value: f.active.Load()},
		metric.Field{Key: "followed_file", Value: f.followedFile.Load()}, metric.Field{Key: "followed_api", Value: f.followedAPI.Load()})
	return append(out, metric.New("lookout_logs_total", tags, fields, now))
}

func (c *counters) fields() []metric.Field {
	return []metric.Field{{Key: "lines", Value: c.lines.Load()}, {Key: "bytes", Value: c.bytes.Load()},
		{Key: "retried", Value: c.retried.Load()}, {Key: "dropped", Value: c.dropped.Load()},
		{Key: "truncated", Value: c.truncated.Load()}, {Key: "split", Value: c.split.Load()},
		{Key: "position_errors", Value: c.positionErrors.Load()},
		{Key: "lines_file", Value: c.linesFile.Load()}, {Key: "lines_api", Value: c.linesAPI.Load()},
		{Key: "fallbacks", Value: c.fallbacks.Load()}, {Key: "rotated_lost", Value: c.rotatedLost.Load()}}
}
