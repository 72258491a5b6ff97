// Package checks runs the checks that containers declare in their labels (HTTP, TCP and
// exec inside the container) and reads Docker's own HEALTHCHECK runs, and reports every
// run into the one measurement lookout_check, so that a single query can draw a status
// wall. Checks follow their container: they start when it runs, stop when it dies,
// pauses or goes, and restart when it is re-created.
//
// The Scheduler starts and stops the checks; a Prober runs the checks of one type
// (http.go, tcp.go, exec.go): a new check type is one new file with its Prober. docker.go
// turns Docker's health log into the same Results.
package checks

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/lookout-agent/lookout/inventory"
	"github.com/lookout-agent/lookout/labels"
	"github.com/lookout-agent/lookout/metric"
)

// Prober runs the checks of one type (http, tcp, exec). The scheduler picks a check's
// Prober by the check's type; a new check type is a new file with its Prober, added to
// the scheduler's defaults in New.
type Prober interface {
	// Runner returns the runner of check chk. keep says whether the check runs again and
	// again (the scheduler) or once (lookout probe): only the former is worth keeping
	// anything, such as a connection, between runs.
	Runner(chk labels.Check, keep bool) Runner
}

// Runner runs one check. Its runs are taken one after another, never two at once; Close
// is called once the check stops.
type Runner interface {
	// Run runs the check once against container c at addr, the "ip:port" Target chose
	// ("" for a check that needs no address: exec).
	Run(ctx context.Context, c *inventory.Container, addr string) Result
	Close()
}

// ProbeFunc is a Prober of checks that keep nothing between runs.
type ProbeFunc func(ctx context.Context, chk labels.Check, addr string) Result

// Runner implements Prober.
func (f ProbeFunc) Runner(chk labels.Check, _ bool) Runner { return funcRunner{f: f, chk: chk} }

type funcRunner struct {
	f   ProbeFunc
	chk labels.Check
}

func (r funcRunner) Run(ctx context.Context, _ *inventory.Container, addr string) Result {
	return r.f(ctx, r.chk, addr)
}

func (funcRunner) Close() {}

// Options configure a Scheduler.
type Options struct {
	// Probers replace, by check type, the default probers (tests): HTTP (a connection
	// kept between runs), TCP (a connection each run) and Exec (with Docker).
	Probers       map[string]Prober
	Docker        Docker          // for exec checks
	ProbeNetwork  string          // the network to probe on when a check names none
	AgentNetworks []string        // networks of the agent's own container, if it runs in one
	AllowedHosts  map[string]bool // hosts a label may name besides the container's own address
	Log           logrus.FieldLogger
	// Tracer, when set, is told of every scheduled run (a span per run).
	Tracer Tracer
	// Stopping, when set, says that the engine is stopping a container while the state
	// the mailbox holds still says running (inventory.Inventory.Stopping): its scheduled
	// runs are skipped, and counted, until the mailbox tells that it stopped.
	Stopping func(containerID string) bool
}

// Tracer makes a span of each run: StartCheck is called before a run and returns the
// context to run it with (an HTTP check sends its trace context) and the function to call
// with the result.
type Tracer interface {
	StartCheck(ctx context.Context, c *inventory.Container, eng inventory.Engine, chk labels.Check) (context.Context, func(Result))
}

// Scheduler runs the checks of every monitored, running container. It learns the
// containers' state from its inventory Mailbox: level-triggered, the latest state of each
// container, so a removal is never missed and nothing is dropped however busy Run is.
type Scheduler struct {
	opts    Options
	sink    metric.Sink
	box     *inventory.Mailbox
	probers map[string]Prober // by check type

	// Touched only by Run's goroutine.
	running map[string]*containerChecks
	wg      sync.WaitGroup

	runs    atomic.Uint64
	skipped atomic.Uint64 // runs not started: the container was being stopped
	panics  atomic.Uint64 // prober panics recovered
	active  atomic.Int64
}

type containerChecks struct {
	fingerprint string
	cancel      context.CancelFunc
	current     atomic.Pointer[view] // the container as last seen, read by its checks
}

type view struct {
	c   *inventory.Container
	eng inventory.Engine
}

// New returns a scheduler writing to sink that takes the containers' state from box
// (inventory.Mailbox("checks")). box may be nil for a scheduler used only for RunOnce.
func New(sink metric.Sink, box *inventory.Mailbox, opts Options) *Scheduler {
	if opts.Log == nil {
		opts.Log = logrus.New()
	}
	probers := map[string]Prober{labels.CheckHTTP: HTTP{}, labels.CheckTCP: TCP{}, labels.CheckExec: Exec{Docker: opts.Docker}}
	for typ, p := range opts.Probers {
		probers[typ] = p
	}
	return &Scheduler{opts: opts, sink: sink, box: box, probers: probers, running: map[string]*containerChecks{}}
}

// Run starts and stops checks as the mailbox tells of the containers until ctx is done,
// then stops them all and waits for them. Run may be started again after a panic
// (inventory.Mailbox.Supervise): the checks running go on, and are brought in line with
// the state the mailbox then holds.
func (s *Scheduler) Run(ctx context.Context) {
	var ready <-chan struct{} // nil without a mailbox: nothing to run
	if s.box != nil {
		ready = s.box.Ready()
	}
	for {
		select {
		case <-ctx.Done():
			for id, cc := range s.running {
				cc.cancel()
				delete(s.running, id)
			}
			s.wg.Wait()
			return
		case <-ready:
			s.box.Each(func(u inventory.Update) { s.apply(ctx, u) })
		}
	}
}

// apply brings a container's checks in line with its latest state: running while it
// runs, is monitored and declares checks; started again when its check labels change;
// stopped when it stops, pauses, restarts or goes.
func (s *Scheduler) apply(ctx context.Context, u inventory.Update) {
	c := u.Container
	want := !u.Gone && c.State.Running && !c.State.Paused && !c.State.Restarting &&
		c.Monitored && len(c.Config.Checks) > 0
	cur := s.running[c.ID]
	fp := fingerprint(c.Labels)
	if cur != nil && (!want || cur.fingerprint != fp) {
		cur.cancel()
		delete(s.running, c.ID)
		cur = nil
	}
	if !want {
		return
	}
	if cur != nil {
		cur.current.Store(&view{c: c, eng: u.Engine})
		return
	}
	cctx, cancel := context.WithCancel(ctx)
	cc := &containerChecks{fingerprint: fp, cancel: cancel}
	cc.current.Store(&view{c: c, eng: u.Engine})
	s.running[c.ID] = cc
	for _, chk := range c.Config.Checks {
		s.active.Add(1)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer s.active.Add(-1)
			s.loop(cctx, cc, chk)
		}()
	}
}

// fingerprint identifies a container's check labels: a change means new checks.
func fingerprint(l map[string]string) string {
	var keys []string
	for k := range l {
		if strings.HasPrefix(k, labels.KeyCheckPrefix) {
			keys = append(keys, k+"="+l[k])
		}
	}
	sort.Strings(keys)
	return strings.Join(keys, "\n")
}

// runSlot spaces the moments at which runs start. A run planned at t starts at the first
// multiple of runSlot at or after t (of the wall clock, the same for every check): the
// checks that fall due within one slot run together, and the agent wakes once for them
// rather than once for each. Waking costs more than a run on a kept-alive connection:
// each wake-up of an idle Go program puts its threads and its system monitor back to
// work, which cost Lookout half its CPU when 200 checks a second woke it one by one.
// Runs stay spread over the interval (a random first delay, in slots), and start at
// most runSlot late.
var runSlot = 100 * time.Millisecond

// slotted returns the first multiple of runSlot at or after t.
func slotted(t time.Time) time.Time {
	if runSlot <= 0 {
		return t
	}
	s := t.Truncate(runSlot)
	if s.Before(t) {
		s = s.Add(runSlot)
	}
	return s
}

// state is one check's standing after rise/fall, and what its runs keep from one to the
// next.
type state struct {
	passing          *bool // nil until the first verdict
	successes, fails int
	refusal          string // the reason of the refusal last logged, until a run is not refused

	// The target and the point tags, worked out again when the container's view changes
	// (the inventory's every refresh) rather than each run.
	target struct {
		c    *inventory.Container
		addr string
		err  error
	}
	tags struct {
		v         *view
		container map[string]string // the container's tags
		result    string            // the result tag of sorted
		sorted    []metric.Tag      // a lookout_check point's tags; shared by the points, never modified
	}
}

// loop runs one check: after a random first delay, every interval, never two runs at once.
func (s *Scheduler) loop(ctx context.Context, cc *containerChecks, chk labels.Check) {
	interval := max(chk.Interval, time.Second)
	// Runs are planned on a fixed grid from a random first delay, so that lateness does
	// not add up: a run that overran starts the next one at once, and the grid moves on.
	// Each run starts at the slot boundary at or after its planned time (see runSlot).
	next := time.Now().Add(time.Duration(rand.Int64N(int64(interval))))
	timer := time.NewTimer(time.Until(slotted(next)))
	defer timer.Stop()
	var st state
	r := s.runner(chk, true)
	defer r.Close()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		v := cc.current.Load()
		if s.opts.Stopping != nil && s.opts.Stopping(v.c.ID) {
			// The engine is stopping the container; its stop reaches the mailbox after
			// the events ahead of it. An exec now races the stop in the engine (under
			// e2e/churn Docker 20.10 logged execs into containers it was stopping, and
			// one run hung stopping containers), and an HTTP or TCP run would report a
			// failure of the stop itself.
			s.skipped.Add(1)
		} else if !s.runScheduled(ctx, v, chk, &st, r) {
			return // stopped mid-run: the container went
		}
		next = next.Add(interval)
		if now := time.Now(); next.Before(now) {
			next = now
		}
		timer.Reset(time.Until(slotted(next)))
	}
}

// runScheduled runs chk once for loop and reports the result; false when ctx ended
// during the run (nothing is reported).
func (s *Scheduler) runScheduled(ctx context.Context, v *view, chk labels.Check, st *state, r Runner) bool {
	rctx, traced := ctx, func(Result) {}
	if s.opts.Tracer != nil {
		rctx, traced = s.opts.Tracer.StartCheck(ctx, v.c, v.eng, chk)
	}
	res := s.run(rctx, v.c, chk, st, r)
	if ctx.Err() != nil {
		return false
	}
	traced(res)
	s.runs.Add(1)
	s.report(v, chk, res, st)
	return true
}

// RunOnce runs chk against container c once, on a connection of its own.
func (s *Scheduler) RunOnce(ctx context.Context, c *inventory.Container, chk labels.Check) Result {
	r := s.runner(chk, false)
	defer r.Close()
	return s.run(ctx, c, chk, nil, r)
}

// Refusal says why check chk of container c would not run where it asks, without running
// it: what Target says, and for a host its label names, what the host resolves to now
// (a lookup that fails is no refusal: a run reports it). nil when nothing is refused.
func (s *Scheduler) Refusal(ctx context.Context, c *inventory.Container, chk labels.Check) error {
	if _, err := Target(c, chk, s.opts.ProbeNetwork, s.opts.AgentNetworks, s.opts.AllowedHosts); err != nil || chk.Host == "" {
		return err
	}
	if _, err := labelHosts.resolve(ctx, chk.Host); isRefused(err) {
		return err
	}
	return nil
}

// runner returns the runner of chk from the prober of its type.
func (s *Scheduler) runner(chk labels.Check, keep bool) Runner {
	if p := s.probers[chk.Type]; p != nil {
		return p.Runner(chk, keep)
	}
	return ProbeFunc(func(_ context.Context, chk labels.Check, _ string) Result {
		return Result{Check: chk.Name, Type: chk.Type, Start: time.Now(), Result: Error,
			Reason: fmt.Sprintf("no prober for check type %q", chk.Type)}
	}).Runner(chk, keep)
}

// run runs chk against c with r. st, when not nil, keeps the target between runs.
func (s *Scheduler) run(ctx context.Context, c *inventory.Container, chk labels.Check, st *state, r Runner) Result {
	var addr string
	var err error
	if st != nil && st.target.c == c {
		addr, err = st.target.addr, st.target.err
	} else {
		addr, err = Target(c, chk, s.opts.ProbeNetwork, s.opts.AgentNetworks, s.opts.AllowedHosts)
		if st != nil {
			st.target.c, st.target.addr, st.target.err = c, addr, err
		}
	}
	if err != nil {
		return Result{Check: chk.Name, Type: chk.Type, Start: time.Now(), Result: Error,
			Reason: "refused: " + err.Error(), Refused: isRefused(err)}
	}
	return s.guarded(ctx, c, chk, addr, r)
}

// guarded runs r once; a panic in a prober is recovered, counted (panics) and logged, and
// the run is an error: the check goes on, and so do the others.
func (s *Scheduler) guarded(ctx context.Context, c *inventory.Container, chk labels.Check, addr string, r Runner) (res Result) {
	start := time.Now()
	defer func() {
		if p := recover(); p != nil {
			s.panics.Add(1)
			s.opts.Log.WithField("container", c.Name).WithField("check", chk.Name).WithField("panic", fmt.Sprint(p)).
				WithField("stack", string(debug.Stack())).Error("a check's prober panicked")
			res = Result{Check: chk.Name, Type: chk.Type, Target: addr, Start: start, Duration: time.Since(start),
				Result: Error, Reason: "the prober failed (a bug in lookout, logged)"}
		}
	}()
	return r.Run(ctx, c, addr)
}

// report writes the run and, when rise/fall turn the verdict, a transition event.
func (s *Scheduler) report(v *view, chk labels.Check, res Result, st *state) {
	ok := res.Result == Success
	if ok {
		st.successes, st.fails = st.successes+1, 0
	} else {
		st.fails, st.successes = st.fails+1, 0
	}
	var turned bool
	switch {
	case ok && st.successes >= max(chk.Rise, 1) && (st.passing == nil || !*st.passing):
		t := true
		st.passing, turned = &t, true
	case !ok && st.fails >= max(chk.Fall, 1) && (st.passing == nil || *st.passing):
		f := false
		st.passing, turned = &f, true
	}
	switch {
	case res.Refused && res.Reason != st.refusal:
		// Logged once for each reason, not on every run.
		st.refusal = res.Reason
		s.opts.Log.WithField("container", v.c.Name).WithField("check", chk.Name).WithField("target", res.Target).
			WithField("reason", res.Reason).Warn("check refused")
	case !res.Refused:
		st.refusal = ""
	}
	if st.tags.v != v {
		st.tags.v, st.tags.container, st.tags.sorted = v, v.c.Tags(v.eng), nil
	}
	if st.tags.sorted == nil || st.tags.result != res.Result {
		st.tags.sorted, st.tags.result = res.Point(st.tags.container).Tags, res.Result
	}
	tags := st.tags.container
	p := metric.Point{Name: Measurement, Tags: st.tags.sorted, Fields: res.Fields(), Time: res.Start}
	if st.passing != nil {
		p.Fields = append(p.Fields, metric.Field{Key: "passing", Value: boolInt(*st.passing)})
	}
	points := []metric.Point{p}
	if turned {
		status := "failing"
		if *st.passing {
			status = "passing"
		}
		text := fmt.Sprintf("%s check %s is %s", v.c.SeriesName(), chk.Name, status)
		if res.Reason != "" {
			text += ": " + res.Reason
		}
		et := map[string]string{"action": "check", "check": chk.Name}
		for k, val := range tags {
			et[k] = val
		}
		points = append(points, metric.New("lookout_container_event", et, []metric.Field{
			{Key: "container_id", Value: v.c.ID}, {Key: "status", Value: status}, {Key: "text", Value: text},
		}, res.Start.Add(res.Duration)))
		s.opts.Log.WithField("container", v.c.Name).WithField("check", chk.Name).WithField("status", status).
			WithField("reason", res.Reason).Info("check status changed")
	}
	s.sink.Add(points...)
}

// Points reports the scheduler's counters as lookout_probes.
func (s *Scheduler) Points(now time.Time, tags map[string]string) []metric.Point {
	return []metric.Point{metric.New("lookout_probes", tags, []metric.Field{
		{Key: "checks", Value: s.active.Load()},
		{Key: "runs", Value: s.runs.Load()},
		{Key: "skipped_stopping", Value: s.skipped.Load()},
		{Key: "panics", Value: s.panics.Load()},
	}, now)}
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}
