// Package collectors turns what the inventory reports into points.
package collectors

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/api/types/container"

	"github.com/lookout-agent/lookout/checks"
	"github.com/lookout-agent/lookout/inventory"
	"github.com/lookout-agent/lookout/metric"
)

// Measurement names. The first two are Telegraf's inputs.docker names.
const (
	MeasurementHealth = "docker_container_health"
	MeasurementStatus = "docker_container_status"
	MeasurementEvent  = "lookout_container_event"
)

// lifecycle lists the Docker actions reported as lookout_container_event points.
var lifecycle = map[string]bool{
	"create": true, "start": true, "restart": true, "die": true, "oom": true, "kill": true,
	"stop": true, "pause": true, "unpause": true, "health_status": true, "destroy": true, "rename": true,
}

// Health reports native health, status and lifecycle from the inventory's changes:
// docker_container_health and docker_container_status (Telegraf's names and fields, plus
// numeric fields for alerting), lookout_container_event, and lookout_check for each
// HEALTHCHECK run found in the health log.
type Health struct {
	sink metric.Sink

	mu    sync.Mutex
	state map[string]*seen // by container ID
}

type seen struct {
	lastRun      time.Time // start of the newest health log entry reported
	restartCount int       // RestartCount at first sight or at the last start event
}

// NewHealth returns a collector writing to sink.
func NewHealth(sink metric.Sink) *Health {
	return &Health{sink: sink, state: map[string]*seen{}}
}

var _ inventory.Handler = (*Health)(nil)

// HandleChange implements inventory.Handler.
func (h *Health) HandleChange(_ context.Context, ch inventory.Change) {
	c := ch.Container
	tags := c.Tags(ch.Engine)
	var points []metric.Point

	verb, arg, _ := strings.Cut(ch.Action, ":")
	arg = strings.TrimSpace(arg)

	h.mu.Lock()
	st := h.state[c.ID]
	first := st == nil
	if first {
		st = &seen{restartCount: c.RestartCount}
		h.state[c.ID] = st
	}
	if ch.Kind == inventory.Gone {
		delete(h.state, c.ID)
	}
	// Docker raises RestartCount before it sends die, so compare starts with starts: the
	// count seen at die or while restarting must not hide the restart from the next start.
	restarted := false
	if verb == "start" {
		restarted = !first && c.RestartCount > st.restartCount
		st.restartCount = c.RestartCount
	}
	h.mu.Unlock()
	if ch.Kind != inventory.Gone {
		if ch.Action != "health_log" { // a probe run changes the health log, not the status
			points = append(points, statusPoint(c, tags, ch.Time))
		}
		if hp, ok := healthPoint(c, tags, ch.Time, verb, arg); ok {
			points = append(points, hp)
		}
		points = append(points, h.newRuns(c, tags)...)
	}
	if ch.Kind != inventory.Seen && lifecycle[verb] {
		points = append(points, eventPoint(c, tags, ch, verb, arg))
	}
	if restarted && verb == "start" {
		// A restart by the restart policy shows only as die + start; say it.
		points = append(points, eventPoint(c, tags, ch, "restart", ""))
	}
	h.sink.Add(points...)
}

func statusPoint(c *inventory.Container, tags map[string]string, t time.Time) metric.Point {
	s := c.State
	tags = metric.WithTag(tags, "container_status", string(s.Status))
	fields := []metric.Field{
		{Key: "oomkilled", Value: s.OOMKilled},
		{Key: "pid", Value: int64(s.Pid)},
		{Key: "exitcode", Value: int64(s.ExitCode)},
		{Key: "container_id", Value: c.ID},
		{Key: "restart_count", Value: int64(c.RestartCount)},
		{Key: "running", Value: boolInt(s.Running)},
	}
	finished := c.FinishedAt
	if !finished.IsZero() {
		fields = append(fields, metric.Field{Key: "finished_at", Value: finished.UnixNano()})
	}
	if !c.StartedAt.IsZero() {
		fields = append(fields, metric.Field{Key: "started_at", Value: c.StartedAt.UnixNano()})
		end := finished
		if s.Running || end.Before(c.StartedAt) {
			end = t
		}
		fields = append(fields, metric.Field{Key: "uptime_ns", Value: end.Sub(c.StartedAt).Nanoseconds()})
	}
	if c.TaskID != "" {
		fields = append(fields, metric.Field{Key: "task_id", Value: c.TaskID})
	}
	return metric.New(MeasurementStatus, tags, fields, t)
}

// Health codes of the numeric health_code field: larger is worse, for alerting on max().
var healthCodes = map[string]int64{
	string(container.Healthy): 0, string(container.Starting): 1, string(container.Unhealthy): 2,
}

func healthPoint(c *inventory.Container, tags map[string]string, t time.Time, verb, eventStatus string) (metric.Point, bool) {
	if !c.HasHealthcheck || c.State.Health == nil {
		return metric.Point{}, false
	}
	status := string(c.State.Health.Status)
	if verb == "health_status" && eventStatus != "" {
		status = eventStatus // the transition itself, even if the container moved on since
	}
	tags = metric.WithTag(tags, "container_status", string(c.State.Status))
	fields := []metric.Field{
		{Key: "health_status", Value: status},
		{Key: "failing_streak", Value: int64(c.State.Health.FailingStreak)},
		{Key: "healthy", Value: boolInt(status == string(container.Healthy))},
	}
	if code, ok := healthCodes[status]; ok {
		fields = append(fields, metric.Field{Key: "health_code", Value: code})
	}
	if log := c.State.Health.Log; len(log) > 0 {
		last := log[len(log)-1]
		fields = append(fields,
			metric.Field{Key: "last_exit_code", Value: int64(last.ExitCode)},
			metric.Field{Key: "last_response_time", Value: last.End.Sub(last.Start).Seconds()})
		if last.ExitCode != 0 {
			fields = append(fields, metric.Field{Key: "last_output", Value: checks.Truncate(strings.TrimSpace(last.Output), 1024)})
		}
	}
	return metric.New(MeasurementHealth, tags, fields, t), true
}

// newRuns returns a lookout_check point for each health log entry not reported yet.
func (h *Health) newRuns(c *inventory.Container, tags map[string]string) []metric.Point {
	if c.State.Health == nil {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	st := h.state[c.ID]
	if st == nil {
		return nil
	}
	runs, last := checks.NewRuns(c.State.Health.Log, st.lastRun)
	st.lastRun = last
	out := make([]metric.Point, 0, len(runs))
	for _, run := range runs {
		out = append(out, checks.NativeResult(run).Point(tags))
	}
	return out
}

func eventPoint(c *inventory.Container, tags map[string]string, ch inventory.Change, verb, arg string) metric.Point {
	tags = metric.WithTag(tags, "action", verb)
	name := c.SeriesName()
	text := name + " " + verb
	fields := []metric.Field{{Key: "container_id", Value: c.ID}}
	switch verb {
	case "die":
		code := ch.Event.Actor.Attributes["exitCode"]
		if code == "" {
			code = fmt.Sprint(c.State.ExitCode)
		}
		var n int64
		_, _ = fmt.Sscan(code, &n)
		fields = append(fields, metric.Field{Key: "exit_code", Value: n})
		text = fmt.Sprintf("%s died with exit code %d", name, n)
		if c.State.OOMKilled {
			text += " (OOM killed)"
		}
	case "kill":
		if sig := ch.Event.Actor.Attributes["signal"]; sig != "" {
			fields = append(fields, metric.Field{Key: "signal", Value: sig})
			text = name + " killed with signal " + sig
		}
	case "health_status":
		fields = append(fields, metric.Field{Key: "health_status", Value: arg})
		text = name + " is " + arg
	case "oom":
		text = name + " ran out of memory"
	case "restart":
		text = fmt.Sprintf("%s restarted (restart count %d)", name, c.RestartCount)
	}
	if c.TaskID != "" {
		fields = append(fields, metric.Field{Key: "task_id", Value: c.TaskID})
	}
	fields = append(fields, metric.Field{Key: "text", Value: text})
	return metric.New(MeasurementEvent, tags, fields, ch.Time)
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}
