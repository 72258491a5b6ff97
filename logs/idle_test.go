package logs

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/lookout-agent/lookout/inventory"
)

// TestIdleCost measures (it asserts nothing: a measurement, not a test) the CPU the
// forwarder spends in 20 s on 20 idle json-file containers through the source named by
// LOOKOUT_IDLE_COST (file; api follows a fake Docker and says little):
//
//	LOOKOUT_IDLE_COST=file go test -count=1 -run TestIdleCost -v ./logs
func TestIdleCost(t *testing.T) {
	src := os.Getenv("LOOKOUT_IDLE_COST")
	if src == "" {
		t.Skip("a measurement: set LOOKOUT_IDLE_COST=file or api")
	}
	rcv := startReceiver(t)
	root := t.TempDir()
	mb := inventory.NewMailbox("logs", testLog(t))
	f, err := New(&fakeLogs{}, mb, Options{Address: rcv.Addr, StateDir: t.TempDir(), Source: src, ContainersDir: root})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); f.Run(ctx) }()
	for i := 0; i < 20; i++ {
		id := fmt.Sprintf("c%02d", i)
		if err := os.MkdirAll(filepath.Join(root, id), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, id, id+"-json.log"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		c := appContainer(true)
		c.ID, c.Name, c.LogDriver = id, id, "json-file"
		mb.Put(inventory.Update{Container: c})
	}
	time.Sleep(2 * time.Second) // every container followed
	cpu := func() time.Duration {
		var ru syscall.Rusage
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	c0 := cpu()
	time.Sleep(20 * time.Second) // the measurement itself
	t.Logf("20 idle containers, %s source, 20 s: %v CPU", src, cpu()-c0)
	cancel()
	<-done
}
