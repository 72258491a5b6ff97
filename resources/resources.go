// Package resources reports the resource use of every running monitored container, CPU,
// memory, network, block I/O and processes, and the engine's summary, under the
// measurement, tag and field names of Telegraf's inputs.docker (docker_container_cpu,
// _mem, _net, _blkio, docker), plus lookout_container_pids.
//
// It reads either the host's cgroup files (Cgroup: no call to the Docker daemon at all)
// or the daemon's one-shot stats API (API); in the default mode it prefers the first and
// falls back to the second container by container.
package resources

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"github.com/sirupsen/logrus"

	"github.com/lookout-agent/lookout/inventory"
	"github.com/lookout-agent/lookout/metric"
)

// Sources, as LOOKOUT_RESOURCES names them.
const (
	SourceAuto   = "auto"   // cgroup files where readable, else the stats API
	SourceCgroup = "cgroup" // cgroup files only
	SourceAPI    = "api"    // the one-shot stats API only
	SourceOff    = "off"
)

// Target is the container a Reader reads.
type Target struct {
	ID, Name    string
	Pid         int    // the main process on the host
	NetworkMode string // "host": the container shares the host's interfaces, which are not its own
}

// Reader reads one container's resource use as Docker's stats API reports it.
type Reader interface {
	Name() string
	Read(ctx context.Context, t Target) (*container.StatsResponse, error)
}

// InfoClient is what the collector needs of the Docker client for the docker measurement.
type InfoClient interface {
	Info(ctx context.Context, options client.InfoOptions) (client.SystemInfoResult, error)
}

// Options configure a Collector.
type Options struct {
	Interval    time.Duration // between gathers in Run
	Concurrency int           // containers read at once (default 4)
	Timeout     time.Duration // per container and for Info (default 5s)
	PerDevice   bool          // also per-CPU, per-interface and per-device points
	Log         logrus.FieldLogger
}

// Collector gathers resource points. Readers are tried in order for each container.
type Collector struct {
	sink    metric.Sink
	mb      *inventory.Mailbox // the containers, and the engine's name and version for their tags
	info    InfoClient
	readers []Reader
	opts    Options

	// known is every live monitored container the mailbox told of, by ID; touched only
	// by Collect, which runs one at a time.
	known  map[string]inventory.Update
	engine inventory.Engine

	mu   sync.Mutex
	prev map[string]cpuPrev // by container ID

	gathers, errs                atomic.Uint64
	lastContainers, lastGatherNs atomic.Int64
	readsBy                      map[string]*atomic.Uint64 // successful reads by reader
}

// New returns a collector writing to sink (Run) or to the caller (Collect, Gather); it
// learns the containers from mb. info may be nil: then no docker measurement is sent.
func New(sink metric.Sink, mb *inventory.Mailbox, info InfoClient, opts Options, readers ...Reader) *Collector {
	if opts.Concurrency <= 0 {
		opts.Concurrency = 4
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 5 * time.Second
	}
	if opts.Interval <= 0 {
		opts.Interval = 10 * time.Second
	}
	if opts.Log == nil {
		opts.Log = logrus.New()
	}
	c := &Collector{sink: sink, mb: mb, info: info, readers: readers, opts: opts, known: map[string]inventory.Update{},
		prev: map[string]cpuPrev{}, readsBy: map[string]*atomic.Uint64{}}
	for _, r := range readers {
		c.readsBy[r.Name()] = &atomic.Uint64{}
	}
	return c
}

// Run gathers every interval until ctx is done.
func (c *Collector) Run(ctx context.Context) {
	t := time.NewTicker(c.opts.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			c.sink.Add(c.Collect(ctx)...)
		}
	}
}

// Collect gathers once: the docker point and every running monitored container's points.
// A container that cannot be read is counted in errors and logged at debug level; the
// others are reported.
func (c *Collector) Collect(ctx context.Context) []metric.Point {
	start := time.Now()
	var out []metric.Point
	if c.info != nil {
		ictx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
		info, err := c.info.Info(ictx, client.InfoOptions{})
		cancel()
		if err != nil {
			c.errs.Add(1)
			c.opts.Log.WithError(err).Debug("resources: docker info")
		} else {
			out = append(out, dockerPoint(info.Info, start))
		}
	}
	c.mb.Each(func(u inventory.Update) {
		c.engine = u.Engine
		if u.Gone {
			delete(c.known, u.ID())
		} else {
			c.known[u.ID()] = u
		}
	})
	engine := c.engine
	var targets []inventory.Container
	for _, u := range c.known {
		if ct := u.Container; ct.Monitored && ct.State.Running && !ct.State.Paused && !ct.State.Restarting {
			targets = append(targets, *ct)
		}
	}
	results := make([][]metric.Point, len(targets))
	work := make(chan int)
	var wg sync.WaitGroup
	for range min(c.opts.Concurrency, len(targets)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				results[i] = c.one(ctx, &targets[i], engine)
			}
		}()
	}
	for i := range targets {
		work <- i
	}
	close(work)
	wg.Wait()
	c.forget(targets)
	for _, r := range results {
		out = append(out, r...)
	}
	c.gathers.Add(1)
	c.lastContainers.Store(int64(len(targets)))
	c.lastGatherNs.Store(time.Since(start).Nanoseconds())
	return out
}

func (c *Collector) one(ctx context.Context, ct *inventory.Container, engine inventory.Engine) []metric.Point {
	t := Target{ID: ct.ID, Name: ct.Name, Pid: ct.State.Pid, NetworkMode: ct.NetworkMode}
	var errs []error
	for _, r := range c.readers {
		rctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
		s, err := r.Read(rctx, t)
		cancel()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", r.Name(), err))
			continue
		}
		c.readsBy[r.Name()].Add(1)
		c.mu.Lock()
		prev, ok := c.prev[ct.ID]
		c.prev[ct.ID] = cpuPrev{total: s.CPUStats.CPUUsage.TotalUsage, system: s.CPUStats.SystemUsage}
		c.mu.Unlock()
		var p *cpuPrev
		if ok && prev.system < s.CPUStats.SystemUsage {
			p = &prev
		}
		s.ID = ct.ID
		tags := ct.Tags(engine)
		tags["container_status"] = string(ct.State.Status) // as Telegraf: its points share the status tag
		return statsPoints(s, tags, p, c.opts.PerDevice)
	}
	if ctx.Err() == nil {
		c.errs.Add(1)
		c.opts.Log.WithError(errors.Join(errs...)).WithField("container", ct.Name).Debug("resources: cannot read")
	}
	return nil
}

// forget drops the CPU readings (and the readers' open files) of containers not read
// this time: stopped, paused or removed.
func (c *Collector) forget(running []inventory.Container) {
	keep := make(map[string]bool, len(running))
	for _, ct := range running {
		keep[ct.ID] = true
	}
	c.mu.Lock()
	for id := range c.prev {
		if !keep[id] {
			delete(c.prev, id)
		}
	}
	c.mu.Unlock()
	for _, r := range c.readers {
		if f, ok := r.(interface{ Forget(func(string) bool) }); ok {
			f.Forget(func(id string) bool { return keep[id] })
		}
	}
}

// Points reports the collector's own counters as lookout_resources (for collectors.Self).
func (c *Collector) Points(now time.Time, tags map[string]string) []metric.Point {
	// reads and fallbacks (reads by a reader after the first) follow from the per-reader counts.
	var reads, fallbacks uint64
	var byReader []metric.Field
	for i, r := range c.readers {
		n := c.readsBy[r.Name()].Load()
		reads += n
		if i > 0 {
			fallbacks += n
		}
		byReader = append(byReader, metric.Field{Key: r.Name() + "_reads", Value: n})
		if f, ok := r.(interface{ FilesOpen() int }); ok {
			byReader = append(byReader, metric.Field{Key: "cgroup_files_open", Value: int64(f.FilesOpen())})
		}
	}
	fields := append([]metric.Field{
		{Key: "gathers", Value: c.gathers.Load()},
		{Key: "containers", Value: c.lastContainers.Load()},
		{Key: "reads", Value: reads},
		{Key: "errors", Value: c.errs.Load()},
		{Key: "fallbacks", Value: fallbacks},
		{Key: "gather_time", Value: time.Duration(c.lastGatherNs.Load()).Seconds()},
	}, byReader...)
	return []metric.Point{metric.New("lookout_resources", tags, fields, now)}
}
