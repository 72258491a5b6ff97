package execd

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/influxdata/line-protocol/v2/lineprotocol"
	"github.com/influxdata/telegraf"
)

type input struct {
	mu    sync.Mutex
	calls int
}

func (*input) SampleConfig() string { return "" }

func (i *input) Gather(acc telegraf.Accumulator) error {
	i.mu.Lock()
	i.calls++
	n := i.calls
	i.mu.Unlock()
	acc.AddFields("docker_container_mem", map[string]any{"usage": uint64(10), "n": n, "container_id": "abc", "ok": true},
		map[string]string{"container_name": "web 1"}, time.Unix(0, 5))
	acc.AddFields("empty", map[string]any{}, nil)
	return errors.New("one container could not be read")
}

func TestRunGathersOncePerLine(t *testing.T) {
	in := &input{}
	var out, errs bytes.Buffer
	if err := Run(context.Background(), strings.NewReader("\n\n\n"), &out, &errs, in); err != nil {
		t.Fatal(err)
	}
	if in.calls != 3 {
		t.Fatalf("gathered %d times for 3 lines", in.calls)
	}
	dec := lineprotocol.NewDecoderWithBytes(out.Bytes())
	lines := 0
	for dec.Next() {
		m, err := dec.Measurement()
		if err != nil || string(m) != "docker_container_mem" {
			t.Fatalf("measurement %q %v", m, err)
		}
		k, v, _ := dec.NextTag()
		if string(k) != "container_name" || string(v) != "web 1" {
			t.Errorf("tag %s=%s", k, v)
		}
		var keys []string
		for {
			k, v, err := dec.NextField()
			if err != nil {
				t.Fatal(err)
			}
			if k == nil {
				break
			}
			keys = append(keys, string(k)+":"+v.Kind().String())
		}
		if got := strings.Join(keys, ","); got != "container_id:string,n:int,ok:bool,usage:int" {
			t.Errorf("fields %s", got)
		}
		if ts, err := dec.Time(lineprotocol.Nanosecond, time.Time{}); err != nil || ts.UnixNano() != 5 {
			t.Errorf("time %v %v", ts, err)
		}
		lines++
	}
	if lines != 3 {
		t.Errorf("%d lines out, want 3:\n%s", lines, out.String())
	}
	if got := strings.Count(errs.String(), "lookout execd: one container could not be read\n"); got != 3 {
		t.Errorf("stderr %q: want the gather error once per gather", errs.String())
	}
	if !strings.Contains(errs.String(), "point empty left out") {
		t.Errorf("stderr %q: want the point without fields reported", errs.String())
	}
}

func TestRunStopsWithContext(t *testing.T) {
	r, w := io.Pipe()
	defer w.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, r, io.Discard, io.Discard) }()
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run returned %v, want nil", err)
	}
}
