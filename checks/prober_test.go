package checks

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/moby/moby/client"

	"github.com/lookout-agent/lookout/labels"
)

// stuckDocker creates execs that cannot be attached to and whose processes never end.
type stuckDocker struct{ inspected []string }

func (d *stuckDocker) ExecCreate(context.Context, string, client.ExecCreateOptions) (client.ExecCreateResult, error) {
	return client.ExecCreateResult{ID: "exec-1"}, nil
}

func (d *stuckDocker) Dialer() func(context.Context) (net.Conn, error) {
	return func(context.Context) (net.Conn, error) { return nil, errors.New("attach refused") }
}

func (d *stuckDocker) ClientVersion() string { return "1.41" }

func (d *stuckDocker) ExecInspect(_ context.Context, id string, _ client.ExecInspectOptions) (client.ExecInspectResult, error) {
	d.inspected = append(d.inspected, id)
	return client.ExecInspectResult{ID: id, Running: true, PID: 42}, nil
}

// The scheduler dispatches on the check's type; an exec check's runner keeps its last exec
// between runs, and a type without a prober is an error, not a crash.
func TestSchedulerDispatchesOnCheckType(t *testing.T) {
	d := &stuckDocker{}
	s := New(&sink{}, nil, Options{Docker: d, Probers: map[string]Prober{labels.CheckTCP: ProbeFunc(
		func(_ context.Context, chk labels.Check, addr string) Result {
			return Result{Check: chk.Name, Type: chk.Type, Result: Success, Target: addr}
		})}})
	c := testContainer("d", true, nil)

	if r := s.RunOnce(context.Background(), c, labels.Check{Name: "db", Type: labels.CheckTCP, Port: 5432}); r.Result != Success || r.Target != "172.17.0.9:5432" {
		t.Errorf("tcp check: %+v", r)
	}

	exec := labels.Check{Name: "cli", Type: labels.CheckExec, Command: []string{"true"}}
	var st state
	r := s.runner(exec, true)
	defer r.Close()
	first := s.run(context.Background(), c, exec, &st, r)
	if first.Result != Error || !strings.Contains(first.Reason, "cannot start exec") || len(d.inspected) != 0 {
		t.Errorf("first exec run: %+v (inspected %v)", first, d.inspected)
	}
	second := s.run(context.Background(), c, exec, &st, r)
	if second.Result != Error || !strings.Contains(second.Reason, "previous run (pid 42) is still running") ||
		len(d.inspected) != 1 || d.inspected[0] != "exec-1" {
		t.Errorf("second exec run: %+v (inspected %v); want it refused while exec-1 runs", second, d.inspected)
	}

	if r := s.RunOnce(context.Background(), c, labels.Check{Name: "x", Type: "gopher"}); r.Result != Error || !strings.Contains(r.Reason, `no prober for check type "gopher"`) {
		t.Errorf("unknown type: %+v", r)
	}
}

// A prober that panics makes its run an error and is counted; the next run goes on.
func TestProberPanicIsAnErrorResult(t *testing.T) {
	calls := 0
	s := New(&sink{}, nil, Options{Probers: map[string]Prober{labels.CheckTCP: ProbeFunc(
		func(_ context.Context, chk labels.Check, addr string) Result {
			calls++
			if calls == 1 {
				var m map[string]int
				m["x"]++ // a nil map write: a bug in a prober
			}
			return Result{Check: chk.Name, Type: chk.Type, Result: Success, Target: addr}
		})}})
	c := testContainer("d", true, nil)
	chk := labels.Check{Name: "db", Type: labels.CheckTCP, Port: 5432}
	if r := s.RunOnce(context.Background(), c, chk); r.Result != Error || !strings.Contains(r.Reason, "prober failed") || s.panics.Load() != 1 {
		t.Fatalf("panicking run: %+v, panics %d", r, s.panics.Load())
	}
	if r := s.RunOnce(context.Background(), c, chk); r.Result != Success {
		t.Fatalf("the run after the panic: %+v", r)
	}
}
