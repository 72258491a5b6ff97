package checks

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/lookout-agent/lookout/inventory"
	"github.com/lookout-agent/lookout/labels"
	"github.com/lookout-agent/lookout/metric"
)

type sink struct {
	mu     sync.Mutex
	points []metric.Point
}

func (s *sink) Add(p ...metric.Point) {
	s.mu.Lock()
	s.points = append(s.points, p...)
	s.mu.Unlock()
}

func (s *sink) named(name string) []metric.Point {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []metric.Point
	for _, p := range s.points {
		if p.Name == name {
			out = append(out, p)
		}
	}
	return out
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

func testContainer(id string, running bool, lbls map[string]string) *inventory.Container {
	c := &inventory.Container{ID: id, Name: "c-" + id, Labels: lbls, Networks: map[string]string{"bridge": "172.17.0.9"},
		Monitored: true, Config: labels.Parse(lbls)}
	c.State.Running = running
	c.State.Status = container.StateRunning
	return c
}

func TestStartStopCyclesLeaveNothingBehind(t *testing.T) {
	var calls atomic.Int64
	probe := func(ctx context.Context, chk labels.Check, addr string) Result {
		calls.Add(1)
		return Result{Check: chk.Name, Type: chk.Type, Result: Success, Start: time.Now()}
	}
	box := inventory.NewMailbox("checks", nil)
	s := New(&sink{}, box, Options{Probers: map[string]Prober{labels.CheckHTTP: ProbeFunc(probe), labels.CheckTCP: ProbeFunc(probe)}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	before := runtime.NumGoroutine()
	go func() { s.Run(ctx); close(done) }()
	lbls := map[string]string{"lookout.enable": "true", "lookout.check.web": "http://:8080/", "lookout.check.db": "tcp://:5432",
		"lookout.check.web.interval": "1s", "lookout.check.db.interval": "1s"}
	for i := 0; i < 200; i++ {
		box.Put(inventory.Update{Container: testContainer("a", true, lbls)})
		eventually(t, "two checks running", func() bool { return s.active.Load() == 2 })
		box.Put(inventory.Update{Container: testContainer("a", false, lbls)})
		eventually(t, "no check running", func() bool { return s.active.Load() == 0 })
	}
	eventually(t, "goroutines back to where they were (+1 for Run)", func() bool { return runtime.NumGoroutine() <= before+1 })
	cancel()
	<-done
	eventually(t, "goroutines back after Run", func() bool { return runtime.NumGoroutine() <= before })
}

func TestNewLabelsRestartChecksAndPauseStopsThem(t *testing.T) {
	var seen sync.Map
	probe := func(ctx context.Context, chk labels.Check, addr string) Result {
		seen.Store(chk.Name+"@"+addr, true)
		return Result{Check: chk.Name, Type: chk.Type, Result: Success, Start: time.Now(), Target: addr}
	}
	box := inventory.NewMailbox("checks", nil)
	s := New(&sink{}, box, Options{Probers: map[string]Prober{labels.CheckHTTP: ProbeFunc(probe), labels.CheckTCP: ProbeFunc(probe)}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Run(ctx)
	v1 := map[string]string{"lookout.enable": "true", "lookout.check.one": "http://:80/", "lookout.check.one.interval": "1s"}
	box.Put(inventory.Update{Container: testContainer("x", true, v1)})
	eventually(t, "check one", func() bool { _, ok := seen.Load("one@172.17.0.9:80"); return ok })
	v2 := map[string]string{"lookout.enable": "true", "lookout.check.two": "tcp://:81", "lookout.check.three": "tcp://:82",
		"lookout.check.two.interval": "1s", "lookout.check.three.interval": "1s"}
	box.Put(inventory.Update{Container: testContainer("x", true, v2)})
	eventually(t, "checks two and three replace one", func() bool { return s.active.Load() == 2 })
	paused := testContainer("x", true, v2)
	paused.State.Paused = true
	box.Put(inventory.Update{Container: paused})
	eventually(t, "pause stops checks", func() bool { return s.active.Load() == 0 })
}

func TestRiseFallAndTransitions(t *testing.T) {
	out := &sink{}
	s := New(out, nil, Options{})
	c := testContainer("r", true, map[string]string{"lookout.enable": "true"})
	chk := labels.Check{Name: "api", Type: labels.CheckHTTP, Rise: 2, Fall: 2}
	v := &view{c: c}
	var st state
	seq := []string{Success, Success, Failure, Success, Failure, Failure, Success}
	for _, r := range seq {
		s.report(v, chk, Result{Check: "api", Type: "http", Result: r, Start: time.Now(), Reason: "because"}, &st)
	}
	var statuses []string
	for _, p := range out.named("lookout_container_event") {
		statuses = append(statuses, p.Field("status").(string))
		if p.Tag("check") != "api" || p.Tag("action") != "check" || !strings.Contains(p.Field("text").(string), "check api is") {
			t.Errorf("event point %+v", p)
		}
	}
	if strings.Join(statuses, ",") != "passing,failing" {
		t.Errorf("transitions = %v, want passing (after 2 successes), failing (after 2 failures)", statuses)
	}
	runs := out.named(Measurement)
	if len(runs) != len(seq) {
		t.Fatalf("%d run points, want %d", len(runs), len(seq))
	}
	if runs[0].Field("passing") != nil || runs[1].Field("passing") != int64(1) || runs[6].Field("passing") != int64(0) {
		t.Errorf("passing fields: %v %v %v", runs[0].Field("passing"), runs[1].Field("passing"), runs[6].Field("passing"))
	}
}

func TestTargetOnlyTheContainersOwnAddress(t *testing.T) {
	c := testContainer("t", true, nil)
	c.Networks = map[string]string{"backend": "10.0.1.5", "frontend": "10.0.2.5", "ingress": "10.0.0.5"}
	cases := []struct {
		chk     labels.Check
		network string
		agent   []string
		allowed map[string]bool
		want    string
		err     string
	}{
		{labels.Check{Type: "http", Port: 80}, "", nil, nil, "10.0.1.5:80", ""},
		{labels.Check{Type: "http", Port: 80, Network: "frontend"}, "", nil, nil, "10.0.2.5:80", ""},
		{labels.Check{Type: "http", Port: 80}, "frontend", nil, nil, "10.0.2.5:80", ""},
		{labels.Check{Type: "http", Port: 80}, "", []string{"ingress", "monitoring", "frontend"}, nil, "10.0.2.5:80", ""},
		{labels.Check{Type: "http", Port: 80, Network: "nope"}, "", nil, nil, "", "no address on network \"nope\""},
		{labels.Check{Type: "http", Port: 80, Host: "example.com"}, "", nil, nil, "", "not the container's own address"},
		{labels.Check{Type: "http", Port: 80, Host: "example.com"}, "", nil, map[string]bool{"example.com": true}, "example.com:80", ""},
	}
	for i, tc := range cases {
		got, err := Target(c, tc.chk, tc.network, tc.agent, tc.allowed)
		if got != tc.want || (tc.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("case %d: got %q, %v; want %q, %q", i, got, err, tc.want, tc.err)
		}
	}
	host := testContainer("h", true, nil)
	host.NetworkMode, host.Networks = "host", nil
	if got, _ := Target(host, labels.Check{Type: "tcp", Port: 5432}, "", nil, nil); got != "127.0.0.1:5432" {
		t.Errorf("host network: %q", got)
	}
}

var goneLabels = map[string]string{"lookout.enable": "true", "lookout.check.web": "http://:8080/", "lookout.check.db": "tcp://:5432",
	"lookout.check.web.interval": "1s", "lookout.check.db.interval": "1s"}

// The scheduler takes the containers' state from its mailbox, which keeps the latest
// state of each: however many changes come while Run is busy (here: not started), a
// removed container's checks never start, or they might succeed for ever should another
// container take its address, and a removal after its checks started stops them.
func TestGoneIsNeverMissed(t *testing.T) {
	probe := func(ctx context.Context, chk labels.Check, addr string) Result {
		return Result{Check: chk.Name, Type: chk.Type, Result: Success, Start: time.Now()}
	}
	box := inventory.NewMailbox("checks", nil)
	s := New(&sink{}, box, Options{Probers: map[string]Prober{labels.CheckHTTP: ProbeFunc(probe), labels.CheckTCP: ProbeFunc(probe)}})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	// Before Run starts: a's start, b's, a thousand more changes (beyond any queue the
	// scheduler once had), b seen again, then a's Gone.
	box.Put(inventory.Update{Container: testContainer("a", true, goneLabels)})
	box.Put(inventory.Update{Container: testContainer("b", true, goneLabels)})
	for i := 0; i < 2000; i++ {
		box.Put(inventory.Update{Container: testContainer(fmt.Sprint("filler", i%1000), true, nil)})
	}
	box.Put(inventory.Update{Container: testContainer("b", true, goneLabels)})
	box.Put(inventory.Update{Container: testContainer("a", true, goneLabels), Gone: true})
	go s.Run(ctx)
	eventually(t, "b's two checks running and a's never started", func() bool {
		return s.active.Load() == 2 && box.Pending() == 0
	})
	p := s.Points(time.Now(), nil)[0]
	if p.Field("checks") != int64(2) || p.Field("gone_held") != nil || p.Field("changes_dropped") != nil {
		t.Errorf("lookout_probes %v; want checks=2 and no gone_held or changes_dropped", p.Fields)
	}
	// Forgotten by Run too: the container seen again gets its checks back, and its
	// removal stops them.
	box.Put(inventory.Update{Container: testContainer("a", true, goneLabels)})
	eventually(t, "checks back", func() bool { return s.active.Load() == 4 })
	box.Put(inventory.Update{Container: testContainer("a", true, goneLabels), Gone: true})
	box.Put(inventory.Update{Container: testContainer("b", false, goneLabels)})
	eventually(t, "a gone and b stopped", func() bool { return s.active.Load() == 0 })
}

func TestRunsStartOnSlotBoundaries(t *testing.T) {
	base := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct{ at, want time.Duration }{
		{0, 0}, {1, runSlot}, {runSlot - 1, runSlot}, {runSlot, runSlot}, {runSlot + 1, 2 * runSlot},
	} {
		if got := slotted(base.Add(tc.at)); !got.Equal(base.Add(tc.want)) {
			t.Errorf("slotted(+%v) = +%v, want +%v", tc.at, got.Sub(base), tc.want)
		}
	}
}

// A refused check is logged as a warning with its container and the reason, once for a
// reason rather than on every run, and again after a run that is not refused.
func TestRefusedCheckIsLoggedOnce(t *testing.T) {
	log, hook := logtest.NewNullLogger()
	out := &sink{}
	s := New(out, nil, Options{Log: log})
	c := testContainer("m", true, map[string]string{"lookout.enable": "true", "lookout.check.meta": "http://169.254.169.254/latest/"})
	chk := c.Config.Checks[0]
	v := &view{c: c}
	var st state
	r := s.runner(chk, true)
	defer r.Close()
	warnings := func() (n int, last *logrus.Entry) {
		for _, e := range hook.AllEntries() {
			if e.Level == logrus.WarnLevel && e.Message == "check refused" {
				n, last = n+1, e
			}
		}
		return n, last
	}
	for range 3 {
		res := s.run(context.Background(), c, chk, &st, r)
		if res.Result != Error || !res.Refused || !strings.Contains(res.Reason, `refused: host "169.254.169.254" is a cloud metadata address`) {
			t.Fatalf("run: %+v", res)
		}
		s.report(v, chk, res, &st)
	}
	n, e := warnings()
	if n != 1 || e.Data["container"] != "c-m" || e.Data["check"] != "meta" || !strings.Contains(e.Data["reason"].(string), "cloud metadata") {
		t.Fatalf("%d warnings, last %+v; want one naming the container, the check and the reason", n, e)
	}
	if p := out.named(Measurement); len(p) != 3 || !strings.Contains(p[2].Field("reason").(string), "cloud metadata") {
		t.Errorf("points %+v", p)
	}
	s.report(v, chk, Result{Check: "meta", Type: "http", Result: Success, Start: time.Now()}, &st)
	s.report(v, chk, s.run(context.Background(), c, chk, &st, r), &st)
	if n, _ := warnings(); n != 2 {
		t.Errorf("%d warnings after a run that was not refused and a refused one; want 2", n)
	}
}

// While the inventory says the engine is stopping a container (its kill, die or stop
// still queued), its checks start no run, and say how many they skipped; the runs
// resume when it is no longer stopping.
func TestNoRunWhileTheContainerIsStopping(t *testing.T) {
	var calls atomic.Int64
	probe := func(ctx context.Context, chk labels.Check, addr string) Result {
		calls.Add(1)
		return Result{Check: chk.Name, Type: chk.Type, Result: Success, Start: time.Now()}
	}
	var stopping atomic.Bool
	stopping.Store(true)
	box := inventory.NewMailbox("checks", nil)
	s := New(&sink{}, box, Options{Probers: map[string]Prober{labels.CheckExec: ProbeFunc(probe)},
		Stopping: func(id string) bool { return id == "a" && stopping.Load() }})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Run(ctx)
	box.Put(inventory.Update{Container: testContainer("a", true, map[string]string{"lookout.enable": "true",
		"lookout.check.ready": "exec:true", "lookout.check.ready.interval": "1s"})})
	eventually(t, "two runs skipped", func() bool { return s.skipped.Load() >= 2 })
	if n := calls.Load(); n != 0 {
		t.Fatalf("%d runs started while the container was stopping", n)
	}
	stopping.Store(false)
	eventually(t, "a run once no longer stopping", func() bool { return calls.Load() > 0 })
	p := s.Points(time.Now(), nil)[0]
	if f := p.Field("skipped_stopping"); f == nil || f.(uint64) < 2 {
		t.Errorf("lookout_probes skipped_stopping = %v, want at least 2", f)
	}
}
