package metrics

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lookout-agent/lookout/metric"
)

func TestEncode(t *testing.T) {
	now := time.Unix(1, 0)
	points := []metric.Point{
		metric.New("lookout_output", map[string]string{"engine_host": "node-1", "output": `in"flux\db`}, []metric.Field{
			{Key: "written", Value: uint64(10)}, {Key: "dropped", Value: int64(0)}, {Key: "buffered", Value: int64(2)}}, now),
		metric.New("lookout_output", map[string]string{"engine_host": "node-1", "output": "stdout"}, []metric.Field{
			{Key: "written", Value: uint64(3)}}, now),
		metric.New("lookout_inventory", map[string]string{"engine_host": "node-1"}, []metric.Field{
			{Key: "connected", Value: true}, {Key: "note", Value: "text is left out"}, {Key: "gather-time", Value: 0.25}}, now),
	}
	// The samples are those of the hand-written encoder before; the families now have
	// their HELP and TYPE from the table, and a field missing from it is untyped.
	want := `# HELP lookout_inventory_connected 1 while the agent is connected to the Docker Engine.
# TYPE lookout_inventory_connected gauge
lookout_inventory_connected{engine_host="node-1"} 1
# HELP lookout_inventory_gather_time field gather-time of lookout_inventory (not described in the metrics table)
# TYPE lookout_inventory_gather_time untyped
lookout_inventory_gather_time{engine_host="node-1"} 0.25
# HELP lookout_output_buffered Lines not yet finished with, in memory and on disk.
# TYPE lookout_output_buffered gauge
lookout_output_buffered{engine_host="node-1",output="in\"flux\\db"} 2
# HELP lookout_output_dropped Lines dropped because the queue in memory or on disk was full (oldest first).
# TYPE lookout_output_dropped counter
lookout_output_dropped{engine_host="node-1",output="in\"flux\\db"} 0
# HELP lookout_output_written Lines the output delivered.
# TYPE lookout_output_written counter
lookout_output_written{engine_host="node-1",output="in\"flux\\db"} 10
lookout_output_written{engine_host="node-1",output="stdout"} 3
`
	if got := string(Encode(points)); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if Name("9lives.x-y") != "_9lives_x_y" {
		t.Errorf("Name = %q", Name("9lives.x-y"))
	}
}

func TestServe(t *testing.T) {
	var unhealthy error
	s := New(func() error { return unhealthy })
	s.Update([]metric.Point{metric.New("lookout_agent", nil, []metric.Field{{Key: "goroutines", Value: int64(7)}}, time.Now())}, nil)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, l) }()
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + l.Addr().String() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/metrics"); code != 200 || !strings.Contains(body, "lookout_agent_goroutines 7\n") {
		t.Errorf("/metrics %d %q", code, body)
	}
	if code, body := get("/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz %d %q", code, body)
	}
	unhealthy = errors.New("not connected to Docker")
	if code, body := get("/healthz"); code != 503 || !strings.Contains(body, "not connected to Docker") {
		t.Errorf("/healthz %d %q, want 503 with the reason", code, body)
	}
	if code, _ := get("/other"); code != 404 {
		t.Errorf("/other %d, want 404", code)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run returned %v after the context ended, want nil", err)
	}
}
