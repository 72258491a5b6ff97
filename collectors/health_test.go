package collectors

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/influxdata/line-protocol/v2/lineprotocol"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"

	"github.com/lookout-agent/lookout/checks"
	"github.com/lookout-agent/lookout/inventory"
	"github.com/lookout-agent/lookout/labels"
	"github.com/lookout-agent/lookout/metric"
	"github.com/lookout-agent/lookout/metric/lineproto"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// sink records the points it is given.
type sink struct {
	mu     sync.Mutex
	points []metric.Point
}

func (s *sink) Add(p ...metric.Point) {
	s.mu.Lock()
	s.points = append(s.points, p...)
	s.mu.Unlock()
}

// take returns the points added since the last take.
func (s *sink) take() []metric.Point {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.points
	s.points = nil
	return p
}

var (
	engine  = inventory.Engine{Host: "node-1", ServerVersion: "28.5.2", APIVersion: "1.51"}
	started = time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)
	now     = started.Add(90 * time.Second)
)

// baseTags are the tags of every point about the container web below.
func baseTags(extra ...string) map[string]string {
	t := map[string]string{
		"engine_host": "node-1", "server_version": "28.5.2", "container_name": "web",
		"container_image": "registry:5000/app", "container_version": "1.2", "team": "payments",
	}
	for i := 0; i+1 < len(extra); i += 2 {
		t[extra[i]] = extra[i+1]
	}
	return t
}

// run is one HEALTHCHECK run that started at started+at and took 250 ms.
func run(at time.Duration, code int, output string) *container.HealthcheckResult {
	return &container.HealthcheckResult{Start: started.Add(at), End: started.Add(at + 250*time.Millisecond),
		ExitCode: code, Output: output}
}

// web is a running plain container with a HEALTHCHECK.
func web(health container.HealthStatus, streak int, log ...*container.HealthcheckResult) *inventory.Container {
	return &inventory.Container{
		ID: "abc123", Name: "web", Image: "registry:5000/app:1.2",
		ImageName: "registry:5000/app", ImageVersion: "1.2",
		Config:    labels.Config{Tags: map[string]string{"team": "payments"}},
		Monitored: true,
		State: container.State{Status: container.StateRunning, Running: true, Pid: 42,
			Health: &container.Health{Status: health, FailingStreak: streak, Log: log}},
		StartedAt:      started,
		HasHealthcheck: true,
		HealthInterval: time.Second,
	}
}

func exited(c *inventory.Container, code int, finished time.Time) *inventory.Container {
	d := *c
	d.State = container.State{Status: container.StateExited, ExitCode: code, Health: c.State.Health}
	d.FinishedAt = finished
	return &d
}

func seenChange(c *inventory.Container, t time.Time) inventory.Change {
	return inventory.Change{Kind: inventory.Seen, Time: t, Container: c, Engine: engine}
}

func event(c *inventory.Container, action string, t time.Time, attrs ...string) inventory.Change {
	a := map[string]string{}
	for i := 0; i+1 < len(attrs); i += 2 {
		a[attrs[i]] = attrs[i+1]
	}
	return inventory.Change{Kind: inventory.Event, Action: action, Time: t, Container: c, Engine: engine,
		Event: events.Message{Type: events.ContainerEventType, Action: events.Action(action),
			Actor: events.Actor{ID: c.ID, Attributes: a}, TimeNano: t.UnixNano()}}
}

func point(name string, tags map[string]string, t time.Time, fields ...any) metric.Point {
	var fs []metric.Field
	for i := 0; i+1 < len(fields); i += 2 {
		fs = append(fs, metric.Field{Key: fields[i].(string), Value: fields[i+1]})
	}
	return metric.New(name, tags, fs, t)
}

func fmtPoint(p metric.Point) string {
	var b strings.Builder
	b.WriteString(p.Name)
	for _, t := range p.Tags {
		fmt.Fprintf(&b, ",%s=%s", t.Key, t.Value)
	}
	for i, f := range p.Fields {
		sep := ","
		if i == 0 {
			sep = " "
		}
		fmt.Fprintf(&b, "%s%s=%#v", sep, f.Key, f.Value)
	}
	fmt.Fprintf(&b, " %s", p.Time.UTC().Format(time.RFC3339Nano))
	return b.String()
}

func equalPoint(a, b metric.Point) bool {
	return a.Name == b.Name && reflect.DeepEqual(a.Tags, b.Tags) && reflect.DeepEqual(a.Fields, b.Fields) &&
		a.Time.Equal(b.Time)
}

// checkPoints fails unless got and want hold the same points in the same order, field
// types included.
func checkPoints(t *testing.T, what string, got, want []metric.Point) {
	t.Helper()
	same := len(got) == len(want)
	for i := 0; same && i < len(got); i++ {
		same = equalPoint(got[i], want[i])
	}
	if same {
		return
	}
	var g, w []string
	for _, p := range got {
		g = append(g, fmtPoint(p))
	}
	for _, p := range want {
		w = append(w, fmtPoint(p))
	}
	t.Errorf("%s: got points\n  %s\nwant\n  %s", what, strings.Join(g, "\n  "), strings.Join(w, "\n  "))
}

func byName(ps []metric.Point, name string) []metric.Point {
	var out []metric.Point
	for _, p := range ps {
		if p.Name == name {
			out = append(out, p)
		}
	}
	return out
}

func statusPointOf(t time.Time, status string, fields ...any) metric.Point {
	return point(MeasurementStatus, baseTags("container_status", status), t, fields...)
}

func checkPointOf(tags map[string]string, r *container.HealthcheckResult, result string, success int64) metric.Point {
	tg := map[string]string{}
	for k, v := range tags {
		tg[k] = v
	}
	tg["check"], tg["type"], tg["result"] = "healthcheck", "docker", result
	fields := []any{"success", success, "response_time", r.End.Sub(r.Start).Seconds(), "exit_code", int64(r.ExitCode)}
	if out := strings.TrimSpace(r.Output); out != "" {
		fields = append(fields, "output", out)
	}
	return point(checks.Measurement, tg, r.Start, fields...)
}

func TestSeenRunningHealthy(t *testing.T) {
	s := &sink{}
	h := NewHealth(s)
	r1, r2 := run(30*time.Second, 0, "ok\n"), run(60*time.Second, 0, "")
	c := web(container.Healthy, 0, r1, r2)

	h.HandleChange(context.Background(), seenChange(c, now))
	running := statusPointOf(now, "running",
		"oomkilled", false, "pid", int64(42), "exitcode", int64(0), "container_id", "abc123",
		"restart_count", int64(0), "running", int64(1), "started_at", started.UnixNano(),
		"uptime_ns", int64(90*time.Second))
	health := point(MeasurementHealth, baseTags("container_status", "running"), now,
		"health_status", "healthy", "failing_streak", int64(0), "healthy", int64(1), "health_code", int64(0),
		"last_exit_code", int64(0), "last_response_time", 0.25)
	checkPoints(t, "first Seen", s.take(), []metric.Point{
		running, health,
		checkPointOf(baseTags(), r1, checks.Success, 1),
		checkPointOf(baseTags(), r2, checks.Success, 1),
	})

	// Seen again with the same log: status and health again, no run twice.
	later := now.Add(10 * time.Second)
	h.HandleChange(context.Background(), seenChange(c, later))
	got := s.take()
	if n := len(byName(got, checks.Measurement)); n != 0 {
		t.Errorf("second Seen with the same log: %d lookout_check points, want 0", n)
	}
	if st := byName(got, MeasurementStatus); len(st) != 1 || st[0].Field("uptime_ns") != int64(100*time.Second) {
		t.Errorf("second Seen: status points %v, want one with uptime_ns 100s", st)
	}
	if n := len(byName(got, MeasurementHealth)); n != 1 {
		t.Errorf("second Seen: %d health points, want 1", n)
	}

	// Docker keeps the last five runs: the oldest drop out, new ones come in.
	r3, r4 := run(90*time.Second, 1, "connection refused"), run(120*time.Second, 0, "ok")
	inProgress := &container.HealthcheckResult{Start: started.Add(150 * time.Second)} // no End yet
	h.HandleChange(context.Background(), seenChange(web(container.Healthy, 0, r2, r3, r4, inProgress), later))
	checkPoints(t, "third Seen, checks", byName(s.take(), checks.Measurement), []metric.Point{
		checkPointOf(baseTags(), r3, checks.Failure, 0),
		checkPointOf(baseTags(), r4, checks.Success, 1),
	})

	// A health_log change reports the run that finished since, once.
	done := &container.HealthcheckResult{Start: inProgress.Start, End: inProgress.Start.Add(time.Second), Output: "ok"}
	hl := event(web(container.Healthy, 0, r3, r4, done), "health_log", later)
	hl.Event = events.Message{}
	for range 2 {
		h.HandleChange(context.Background(), hl)
	}
	checkPoints(t, "health_log, checks", byName(s.take(), checks.Measurement), []metric.Point{
		checkPointOf(baseTags(), done, checks.Success, 1),
	})
}

func TestHealthLogChangeHasNoStatus(t *testing.T) {
	s := &sink{}
	h := NewHealth(s)
	r1 := run(30*time.Second, 0, "ok")
	ch := event(web(container.Healthy, 0, r1), "health_log", now)
	ch.Event = events.Message{}
	h.HandleChange(context.Background(), ch)
	checkPoints(t, "health_log", s.take(), []metric.Point{
		point(MeasurementHealth, baseTags("container_status", "running"), now,
			"health_status", "healthy", "failing_streak", int64(0), "healthy", int64(1), "health_code", int64(0),
			"last_exit_code", int64(0), "last_response_time", 0.25),
		checkPointOf(baseTags(), r1, checks.Success, 1),
	})
}

func TestHealthStatusEvent(t *testing.T) {
	t.Run("state already healthy again", func(t *testing.T) {
		s := &sink{}
		h := NewHealth(s)
		r1 := run(30*time.Second, 0, "ok")
		h.HandleChange(context.Background(), seenChange(web(container.Healthy, 0, r1), now))
		s.take()

		// The event says unhealthy; by the time it is inspected the container is healthy.
		h.HandleChange(context.Background(), event(web(container.Healthy, 0, r1), "health_status: unhealthy", now))
		got := s.take()
		checkPoints(t, "health", byName(got, MeasurementHealth), []metric.Point{
			point(MeasurementHealth, baseTags("container_status", "running"), now,
				"health_status", "unhealthy", "failing_streak", int64(0), "healthy", int64(0), "health_code", int64(2),
				"last_exit_code", int64(0), "last_response_time", 0.25),
		})
		checkPoints(t, "event", byName(got, MeasurementEvent), []metric.Point{
			point(MeasurementEvent, baseTags("action", "health_status"), now,
				"container_id", "abc123", "health_status", "unhealthy", "text", "web is unhealthy"),
		})
		if n := len(byName(got, MeasurementStatus)); n != 1 {
			t.Errorf("%d status points, want 1", n)
		}
		if n := len(byName(got, checks.Measurement)); n != 0 {
			t.Errorf("%d check points for a run already reported, want 0", n)
		}
	})

	t.Run("unhealthy with output", func(t *testing.T) {
		s := &sink{}
		h := NewHealth(s)
		r1, r2 := run(30*time.Second, 1, "  connection refused\n"), run(31*time.Second, 1, "connection refused")
		h.HandleChange(context.Background(), event(web(container.Unhealthy, 3, r1, r2), "health_status: unhealthy", now))
		got := s.take()
		checkPoints(t, "health", byName(got, MeasurementHealth), []metric.Point{
			point(MeasurementHealth, baseTags("container_status", "running"), now,
				"health_status", "unhealthy", "failing_streak", int64(3), "healthy", int64(0), "health_code", int64(2),
				"last_exit_code", int64(1), "last_response_time", 0.25, "last_output", "connection refused"),
		})
		checkPoints(t, "checks", byName(got, checks.Measurement), []metric.Point{
			checkPointOf(baseTags(), r1, checks.Failure, 0),
			checkPointOf(baseTags(), r2, checks.Failure, 0),
		})
	})

	t.Run("healthy and starting", func(t *testing.T) {
		s := &sink{}
		h := NewHealth(s)
		for _, tc := range []struct {
			status  string
			healthy int64
			code    int64
		}{{"healthy", 1, 0}, {"starting", 0, 1}} {
			h.HandleChange(context.Background(), event(web(container.Unhealthy, 2), "health_status: "+tc.status, now))
			got := s.take()
			hp := byName(got, MeasurementHealth)
			if len(hp) != 1 || hp[0].Field("health_status") != tc.status || hp[0].Field("healthy") != tc.healthy ||
				hp[0].Field("health_code") != tc.code || hp[0].Field("last_exit_code") != nil {
				t.Errorf("%s: health points %v", tc.status, hp)
			}
			ep := byName(got, MeasurementEvent)
			if len(ep) != 1 || ep[0].Field("text") != "web is "+tc.status {
				t.Errorf("%s: event points %v", tc.status, ep)
			}
		}
	})

	t.Run("no healthcheck", func(t *testing.T) {
		s := &sink{}
		h := NewHealth(s)
		c := web(container.Healthy, 0)
		c.HasHealthcheck, c.State.Health = false, nil
		h.HandleChange(context.Background(), seenChange(c, now))
		got := s.take()
		if len(got) != 1 || got[0].Name != MeasurementStatus {
			t.Errorf("a container without a healthcheck: %v, want only a status point", got)
		}
	})
}

func TestDieEvent(t *testing.T) {
	s := &sink{}
	h := NewHealth(s)
	finished := started.Add(80 * time.Second)
	c := exited(web(container.Unhealthy, 1), 7, finished)
	h.HandleChange(context.Background(), event(c, "die", now, "exitCode", "7", "execDuration", "80"))
	got := s.take()
	checkPoints(t, "die", got, []metric.Point{
		statusPointOf(now, "exited",
			"oomkilled", false, "pid", int64(0), "exitcode", int64(7), "container_id", "abc123",
			"restart_count", int64(0), "running", int64(0), "finished_at", finished.UnixNano(),
			"started_at", started.UnixNano(), "uptime_ns", int64(80*time.Second)),
		point(MeasurementHealth, baseTags("container_status", "exited"), now,
			"health_status", "unhealthy", "failing_streak", int64(1), "healthy", int64(0), "health_code", int64(2)),
		point(MeasurementEvent, baseTags("action", "die"), now,
			"container_id", "abc123", "exit_code", int64(7), "text", "web died with exit code 7"),
	})

	// Without the attribute, the inspected exit code; an OOM kill says so.
	oom := exited(web(container.Healthy, 0), 137, finished)
	oom.State.OOMKilled = true
	h.HandleChange(context.Background(), event(oom, "die", now))
	checkPoints(t, "die after OOM", byName(s.take(), MeasurementEvent), []metric.Point{
		point(MeasurementEvent, baseTags("action", "die"), now,
			"container_id", "abc123", "exit_code", int64(137), "text", "web died with exit code 137 (OOM killed)"),
	})
}

func TestOtherEvents(t *testing.T) {
	s := &sink{}
	h := NewHealth(s)
	c := web(container.Healthy, 0)
	for _, tc := range []struct {
		action string
		attrs  []string
		want   []any
	}{
		{"kill", []string{"signal", "9"}, []any{"container_id", "abc123", "signal", "9", "text", "web killed with signal 9"}},
		{"oom", nil, []any{"container_id", "abc123", "text", "web ran out of memory"}},
		{"stop", nil, []any{"container_id", "abc123", "text", "web stop"}},
		{"pause", nil, []any{"container_id", "abc123", "text", "web pause"}},
		{"rename", []string{"oldName", "/old"}, []any{"container_id", "abc123", "text", "web rename"}},
	} {
		h.HandleChange(context.Background(), event(c, tc.action, now, tc.attrs...))
		checkPoints(t, tc.action, byName(s.take(), MeasurementEvent), []metric.Point{
			point(MeasurementEvent, baseTags("action", tc.action), now, tc.want...),
		})
	}
	// Not lifecycle: no event point, the status still.
	h.HandleChange(context.Background(), event(c, "update", now))
	got := s.take()
	if len(byName(got, MeasurementEvent)) != 0 || len(byName(got, MeasurementStatus)) != 1 {
		t.Errorf("update event: %v", got)
	}
}

func TestRestartByPolicy(t *testing.T) {
	withCount := func(c *inventory.Container, n int) *inventory.Container { c.RestartCount = n; return c }
	restartPoint := func(t time.Time, n int) metric.Point {
		return point(MeasurementEvent, baseTags("action", "restart"), t,
			"container_id", "abc123", "text", fmt.Sprintf("web restarted (restart count %d)", n))
	}

	t.Run("count up at start", func(t *testing.T) {
		s := &sink{}
		h := NewHealth(s)
		h.HandleChange(context.Background(), seenChange(withCount(web(container.Healthy, 0), 0), now))
		s.take()
		h.HandleChange(context.Background(), event(withCount(web(container.Starting, 0), 1), "start", now))
		got := byName(s.take(), MeasurementEvent)
		checkPoints(t, "start", got, []metric.Point{
			point(MeasurementEvent, baseTags("action", "start"), now, "container_id", "abc123", "text", "web start"),
			restartPoint(now, 1),
		})
	})

	t.Run("as Docker reports it", func(t *testing.T) {
		// Docker raises RestartCount before it sends die, so the die event's inspect
		// already holds the new count; a refresh may see the container restarting.
		s := &sink{}
		h := NewHealth(s)
		t1, t2, t3 := now.Add(time.Second), now.Add(2*time.Second), now.Add(3*time.Second)
		h.HandleChange(context.Background(), seenChange(withCount(web(container.Healthy, 0), 0), now))
		dead := withCount(exited(web(container.Healthy, 0), 1, t1), 1)
		dead.State.Status, dead.State.Restarting = container.StateRestarting, true
		h.HandleChange(context.Background(), event(dead, "die", t1, "exitCode", "1"))
		h.HandleChange(context.Background(), seenChange(dead, t2))
		h.HandleChange(context.Background(), event(withCount(web(container.Starting, 0), 1), "start", t3))
		got := byName(s.take(), MeasurementEvent)
		if len(got) != 3 || got[0].Tag("action") != "die" || got[1].Tag("action") != "start" {
			t.Fatalf("events: %v", got)
		}
		checkPoints(t, "restart", got[2:], []metric.Point{restartPoint(t3, 1)})

		// A manual stop and start is no restart.
		h.HandleChange(context.Background(), event(withCount(exited(web(container.Healthy, 0), 0, t3), 1), "die", t3))
		h.HandleChange(context.Background(), event(withCount(web(container.Starting, 0), 1), "start", t3))
		for _, p := range byName(s.take(), MeasurementEvent) {
			if p.Tag("action") == "restart" {
				t.Errorf("restart point for a start without a restart: %v", fmtPoint(p))
			}
		}
	})

	t.Run("first sight", func(t *testing.T) {
		// A container first seen with restarts behind it: nothing to say yet.
		s := &sink{}
		h := NewHealth(s)
		h.HandleChange(context.Background(), event(withCount(web(container.Starting, 0), 4), "start", now))
		for _, p := range byName(s.take(), MeasurementEvent) {
			if p.Tag("action") == "restart" {
				t.Errorf("restart point on first sight: %v", fmtPoint(p))
			}
		}
	})
}

func TestGone(t *testing.T) {
	s := &sink{}
	h := NewHealth(s)
	c := web(container.Healthy, 0, run(30*time.Second, 0, "ok"))
	h.HandleChange(context.Background(), seenChange(c, now))
	s.take()

	gone := event(exited(c, 0, now), "destroy", now)
	gone.Kind = inventory.Gone
	h.HandleChange(context.Background(), gone)
	checkPoints(t, "destroy event", s.take(), []metric.Point{
		point(MeasurementEvent, baseTags("action", "destroy"), now, "container_id", "abc123", "text", "web destroy"),
	})

	// Vanished between two lists: no event attached.
	h.HandleChange(context.Background(), seenChange(c, now))
	s.take()
	vanished := inventory.Change{Kind: inventory.Gone, Action: "destroy", Time: now, Container: c, Engine: engine}
	h.HandleChange(context.Background(), vanished)
	checkPoints(t, "vanished", s.take(), []metric.Point{
		point(MeasurementEvent, baseTags("action", "destroy"), now, "container_id", "abc123", "text", "web destroy"),
	})

	// Forgotten: its health log counts as new if the ID ever came back.
	h.mu.Lock()
	n := len(h.state)
	h.mu.Unlock()
	if n != 0 {
		t.Errorf("%d containers still tracked after Gone", n)
	}
}

func TestSeenHasNoEventPoint(t *testing.T) {
	s := &sink{}
	h := NewHealth(s)
	ch := seenChange(web(container.Healthy, 0), now)
	ch.Action = "start" // a Seen change never reports an event, whatever it says
	h.HandleChange(context.Background(), ch)
	if got := byName(s.take(), MeasurementEvent); len(got) != 0 {
		t.Errorf("event points from a Seen change: %v", got)
	}
}

// TestHealthGolden runs a Swarm task's life through the collector and compares the line
// protocol it produces with testdata/health_lifecycle.golden (go test -update rewrites it).
func TestHealthGolden(t *testing.T) {
	s := &sink{}
	h := NewHealth(s)
	task := func(status container.ContainerState, health container.HealthStatus, streak, restarts int, log ...*container.HealthcheckResult) *inventory.Container {
		c := web(health, streak, log...)
		c.Name, c.Service, c.Stack, c.Slot = "shop_web.2.t4sk", "shop_web", "shop", "2"
		c.TaskID, c.TaskName, c.ServiceID, c.NodeID = "t4sk", "shop_web.2.t4sk", "svc1", "node1"
		c.Config.Tags["note"] = `a b,c=d\` // escaped by the encoder
		c.State.Status, c.RestartCount = status, restarts
		if status != container.StateRunning {
			c.State.Running, c.State.Pid, c.State.ExitCode = false, 0, 1
			c.FinishedAt = started.Add(100 * time.Second)
		}
		return c
	}
	r1, r2 := run(10*time.Second, 0, "ok"), run(40*time.Second, 0, "ok")
	r3 := run(70*time.Second, 1, "HTTP 503\nService Unavailable")
	r4 := run(95*time.Second, -1, "Health check exceeded timeout (1s)")
	at := func(s int) time.Time { return started.Add(time.Duration(s) * time.Second) }

	gone := event(task(container.StateExited, container.Unhealthy, 2, 1, r3, r4), "destroy", at(130))
	gone.Kind = inventory.Gone
	changes := []inventory.Change{
		seenChange(task(container.StateRunning, container.Healthy, 0, 0, r1, r2), at(60)),
		event(task(container.StateRunning, container.Healthy, 1, 0, r1, r2, r3), "health_log", at(71)),
		event(task(container.StateRunning, container.Unhealthy, 2, 0, r2, r3, r4), "health_status: unhealthy", at(96)),
		event(task(container.StateRestarting, container.Unhealthy, 2, 1, r3, r4), "die", at(100), "exitCode", "1"),
		event(task(container.StateRunning, container.Starting, 0, 1), "start", at(101)),
		gone,
	}
	enc := lineproto.NewEncoder(lineprotocol.Nanosecond)
	var out bytes.Buffer
	for _, ch := range changes {
		fmt.Fprintf(&out, "# %s %s\n", []string{"Seen", "Event", "Gone"}[ch.Kind], ch.Action)
		h.HandleChange(context.Background(), ch)
		for _, p := range s.take() {
			line, skipped, err := enc.Encode(p)
			if err != nil || skipped != 0 {
				t.Fatalf("encode %s: skipped %d, %v", fmtPoint(p), skipped, err)
			}
			out.Write(line)
		}
	}
	golden(t, "health_lifecycle.golden", out.Bytes())
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		gl, wl := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
		for i := 0; i < max(len(gl), len(wl)); i++ {
			var g, w string
			if i < len(gl) {
				g = gl[i]
			}
			if i < len(wl) {
				w = wl[i]
			}
			if g != w {
				t.Errorf("%s differs at line %d (go test -update rewrites it):\ngot  %s\nwant %s", path, i+1, g, w)
				break
			}
		}
	}
}
