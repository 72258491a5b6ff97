package logs

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"github.com/sirupsen/logrus"

	"github.com/lookout-agent/lookout/internal/testpeer"
	"github.com/lookout-agent/lookout/inventory"
	"github.com/lookout-agent/lookout/logs/forward/forwardtest"
)

// fakeLogs serves a container's log as Docker's logs API does with timestamps: frames
// with time >= since, in order; a follow ends with the log (the container stopped).
type fakeLogs struct {
	mu    sync.Mutex
	lines []struct {
		ts   time.Time
		text string
	}
	calls int
}

func (f *fakeLogs) add(ts time.Time, text string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lines = append(f.lines, struct {
		ts   time.Time
		text string
	}{ts, text})
}

func (f *fakeLogs) ContainerLogs(_ context.Context, _ string, o client.ContainerLogsOptions) (client.ContainerLogsResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	var since time.Time
	if o.Since != "" {
		sec, nsec, _ := strings.Cut(o.Since, ".")
		s, _ := strconv.ParseInt(sec, 10, 64)
		n, _ := strconv.ParseInt(nsec, 10, 64)
		since = time.Unix(s, n)
	}
	var b []byte
	for _, l := range f.lines {
		if !l.ts.Before(since) {
			b = append(b, frame(1, l.ts, l.text+"\n")...)
		}
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

func runForwarder(t *testing.T, docker Docker, addr, state string) (stop func()) {
	t.Helper()
	_, mb, stop := startForwarder(t, docker, addr, state)
	mb.Put(inventory.Update{Container: appContainer(true)})
	return stop
}

// startForwarder runs a forwarder fed by the mailbox it returns.
func startForwarder(t *testing.T, docker Docker, addr, state string) (*Forwarder, *inventory.Mailbox, func()) {
	t.Helper()
	mb := inventory.NewMailbox("logs", testLog(t))
	f, err := New(docker, mb, Options{Address: addr, StateDir: state, BatchSize: 2, Linger: 10 * time.Millisecond, FromStart: true, Log: testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); f.Run(ctx) }()
	return f, mb, func() { cancel(); <-done }
}

// appContainer is the state of the container the tests follow.
func appContainer(running bool) *inventory.Container {
	return &inventory.Container{ID: "c0ffee", Name: "app", Image: "example/app:1", Monitored: true,
		State: container.State{Running: running}}
}

// TestResumeExactlyOnce: messages that share a timestamp, a restart of the forwarder
// from its saved position, more messages: each arrives once, with Docker's fields.
func TestResumeExactlyOnce(t *testing.T) {
	rcv := startReceiver(t)
	state := t.TempDir()
	logs := &fakeLogs{}
	t0 := time.Unix(1700000000, 500)
	for i := 1; i <= 5; i++ {
		logs.add(t0.Add(time.Duration(i/3)), fmt.Sprintf("m%d", i)) // m1,m2 share a time; m3,m4,m5 another
	}
	wait := func(n int) []testpeer.Record {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if recs, _ := rcv.Records(); len(recs) >= n {
				return recs
			}
		}
		recs, _ := rcv.Records()
		t.Fatalf("%d records, want %d", len(recs), n)
		return nil
	}
	stop := runForwarder(t, logs, rcv.Addr, state)
	wait(5)
	stop()
	for i := 6; i <= 8; i++ {
		logs.add(t0.Add(1), fmt.Sprintf("m%d", i)) // same time as m3..m5: resumed by skipping, not by time
	}
	stop = runForwarder(t, logs, rcv.Addr, state)
	wait(8)
	// The log ended (the container "stopped" while still listed as running): the forwarder
	// reads it again after 1 s; those reads must add nothing.
	logs.mu.Lock()
	calls := logs.calls
	logs.mu.Unlock()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		logs.mu.Lock()
		again := logs.calls >= calls+4
		logs.mu.Unlock()
		if again {
			break
		}
	}
	stop()
	recs, _ := rcv.Records()
	seen := map[string]int{}
	for _, r := range recs {
		seen[string(r.Log())]++
		if r.Tag != "docker.app" || r.Str("container_id") != "c0ffee" || r.Str("container_name") != "/app" ||
			r.Str("source") != "stdout" || r.Str("image") != "example/app:1" {
			t.Errorf("record %+v", r)
		}
	}
	for i := 1; i <= 8; i++ {
		if seen[fmt.Sprintf("m%d", i)] != 1 {
			t.Errorf("m%d arrived %d times, want once (all: %v)", i, seen[fmt.Sprintf("m%d", i)], seen)
		}
	}
	if len(recs) != 8 {
		t.Errorf("%d records, want 8", len(recs))
	}
}

func testLog(t *testing.T) *logrus.Logger {
	l := logrus.New()
	l.SetLevel(logrus.DebugLevel)
	l.SetOutput(testWriter{t})
	return l
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// startReceiver starts the real forward-protocol receiver (peers/fluentd) for one test.
func startReceiver(t *testing.T) *testpeer.Fluentd {
	t.Helper()
	root, _ := filepath.Abs("..")
	bin, err := testpeer.FluentdBin(root)
	var rcv *testpeer.Fluentd
	if err == nil {
		rcv, err = testpeer.StartFluentd(bin, t.TempDir())
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rcv.Stop)
	return rcv
}

// kept says what the forwarder keeps of the container: its counters (a lookout_logs
// point) and its position file.
func kept(f *Forwarder) (counters, position bool) {
	for _, p := range f.Points(time.Now(), nil) {
		if p.Name == "lookout_logs" {
			counters = true
		}
	}
	_, err := os.Stat(f.store.path("c0ffee"))
	return counters, err == nil
}

// waitFor polls cond until it holds, failing the test after 20 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("still not %s after 20 s", what)
		}
	}
}

// TestGoneForgetsTheContainer: the inventory's Gone makes the forwarder forget the
// container's state at once: its counters, its position and its connection to Fluentd.
func TestGoneForgetsTheContainer(t *testing.T) {
	srv := forwardtest.Start(t)
	logs := &fakeLogs{}
	logs.add(time.Unix(1700000000, 0), "first")
	f, mb, stop := startForwarder(t, logs, srv.Addr, t.TempDir())
	defer stop()
	mb.Put(inventory.Update{Container: appContainer(true)})
	c := srv.Next(t)
	c.Ack(t, c.Read(t, 1)[0])
	waitFor(t, "delivered", func() bool { cnt, pos := kept(f); return cnt && pos && f.total.lines.Load() == 1 })

	mb.Put(inventory.Update{Container: appContainer(true), Gone: true})
	waitFor(t, "forgotten", func() bool { cnt, pos := kept(f); return !cnt && !pos })
	c.WaitClosed(t) // the connection is closed with it
	f.mu.Lock()
	n := len(f.containers)
	f.mu.Unlock()
	if n != 0 {
		t.Errorf("%d containers kept, want none", n)
	}
}

// TestStoppedThenRemoved: a container that stops keeps its state (it may start again and
// resume from its position); its removal, arriving later, forgets it.
func TestStoppedThenRemoved(t *testing.T) {
	srv := forwardtest.Start(t)
	logs := &fakeLogs{}
	logs.add(time.Unix(1700000000, 0), "first")
	f, mb, stop := startForwarder(t, logs, srv.Addr, t.TempDir())
	defer stop()
	mb.Put(inventory.Update{Container: appContainer(true)})
	c := srv.Next(t)
	c.Ack(t, c.Read(t, 1)[0])
	waitFor(t, "delivered", func() bool { return f.total.lines.Load() == 1 })

	mb.Put(inventory.Update{Container: appContainer(false)})
	waitFor(t, "stopped following", func() bool { return mb.Pending() == 0 && f.active.Load() == 0 })
	if cnt, pos := kept(f); !cnt || !pos {
		t.Fatalf("stopped: counters kept %v, position kept %v; want both kept", cnt, pos)
	}
	mb.Put(inventory.Update{Container: appContainer(false), Gone: true})
	waitFor(t, "forgotten", func() bool { cnt, pos := kept(f); return !cnt && !pos })
	c.WaitClosed(t)
}
