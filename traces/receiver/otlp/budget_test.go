package otlp

import (
	"bytes"
	"net/http"
	"sync"
	"testing"

	"github.com/lookout-agent/lookout/traces/internal/tracetest"
)

// bomb is gzip that decompresses to n zero bytes.
func bomb(n int) []byte { return gzipped(make([]byte, n)) }

// Both receivers take the memory of the requests they read from one budget: with the
// budget held, a request is answered 503 (gRPC UNAVAILABLE) and counted busy; given back,
// the same request is taken. Bombs at once are each refused, as too large or busy, and
// every byte taken is given back.
func TestBudgetSharedByTheReceivers(t *testing.T) {
	cfg := testConfig() // requests of 4096 bytes at most
	cfg.Budget = NewBudget(BudgetRequests * 4096)
	sink := &tracetest.Sink{}
	o, err := NewHTTP(cfg, sink)
	if err != nil {
		t.Fatal(err)
	}
	defer o.ln.Close()
	g, err := NewGRPC(cfg, sink)
	if err != nil {
		t.Fatal(err)
	}
	defer g.ln.Close()
	good := marshal(t, otlpRequest())

	if !cfg.Budget.take(BudgetRequests * 4096) {
		t.Fatal("the whole budget not free")
	}
	if w := post(o, "10.0.1.7:40000", "application/x-protobuf", "", good); w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" {
		t.Errorf("HTTP with the budget held: %d %q, want 503 with Retry-After", w.Code, w.Body)
	}
	if st, _ := grpcCall(t, g, good, false); st != http.StatusServiceUnavailable {
		t.Errorf("gRPC with the budget held: %d, want UNAVAILABLE", st)
	}
	if o.Stats().Busy != 1 || g.Stats().Busy != 1 {
		t.Errorf("busy: HTTP %d, gRPC %d, want 1 each", o.Stats().Busy, g.Stats().Busy)
	}
	cfg.Budget.give(BudgetRequests * 4096)
	if w := post(o, "10.0.1.7:40000", "application/x-protobuf", "", good); w.Code != http.StatusOK {
		t.Errorf("HTTP with the budget free: %d %q", w.Code, w.Body)
	}
	if st, _ := grpcCall(t, g, good, false); st != http.StatusOK {
		t.Errorf("gRPC with the budget free: %d", st)
	}

	var wg sync.WaitGroup
	z := bomb(1 << 20)
	var mu sync.Mutex
	answers := map[string]int{}
	for range 16 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			w := post(o, "10.0.1.7:40000", "application/x-protobuf", "gzip", z)
			mu.Lock()
			answers[http.StatusText(w.Code)]++
			mu.Unlock()
		}()
		go func() {
			defer wg.Done()
			st, _ := grpcCall(t, g, z, true)
			mu.Lock()
			answers["gRPC "+http.StatusText(st)]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if answers["Request Entity Too Large"]+answers["Service Unavailable"] != 16 || answers["gRPC Request Entity Too Large"]+answers["gRPC Service Unavailable"] != 16 {
		t.Errorf("32 bombs at once answered %v: want each too large or busy", answers)
	}
	if left := cfg.Budget.left.Load(); left != BudgetRequests*4096 {
		t.Errorf("budget left after the requests: %d, want all %d given back", left, BudgetRequests*4096)
	}
}

// readBody grows its buffer as bytes come, and a buffer sized by the hint sees the end of
// the body without growing again.
func TestReadBodyTakesWhatItHolds(t *testing.T) {
	o := &server{cfg: Config{Budget: NewBudget(1 << 20)}}
	var held int64
	body := bytes.Repeat([]byte{1}, 3000)
	got, err := o.readBody(bytes.NewReader(body), 4096, len(body), &held)
	if err != nil || !bytes.Equal(got, body) || held != 3001 {
		t.Errorf("with the hint: %d bytes, %v, held %d; want 3000 bytes in a buffer of 3001", len(got), err, held)
	}
	held = 0
	got, err = o.readBody(bytes.NewReader(body), 4096, 0, &held)
	if err != nil || !bytes.Equal(got, body) || held != 4096 {
		t.Errorf("without: %d bytes, %v, held %d; want 3000 bytes in a buffer grown to 4096", len(got), err, held)
	}
	held = 0
	got, _ = o.readBody(bytes.NewReader(make([]byte, 10000)), 4096, 0, &held)
	if len(got) != 4097 || held != 4097 {
		t.Errorf("above the limit: %d bytes read, held %d; want limit+1", len(got), held)
	}
}
