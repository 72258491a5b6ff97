package backoff

import (
	"context"
	"testing"
	"time"
)

func TestDoublesToMaxWithinJitter(t *testing.T) {
	b := Backoff{Min: 100 * time.Millisecond, Max: time.Second}
	want := []time.Duration{100, 200, 400, 800, 1000, 1000}
	for i, w := range want {
		w *= time.Millisecond
		d := b.Next()
		if d < w*8/10 || d > w*12/10 {
			t.Fatalf("attempt %d: %s, want %s ±20%%", i, d, w)
		}
	}
	b.Reset()
	if d := b.Peek(); d != 100*time.Millisecond {
		t.Fatalf("after Reset: %s", d)
	}
}

func TestNoJitterAndDefaults(t *testing.T) {
	b := Backoff{Jitter: -1}
	if d := b.Next(); d != 250*time.Millisecond {
		t.Fatalf("default Min: %s", d)
	}
	for range 100 {
		b.Next()
	}
	if d := b.Next(); d != 30*time.Second {
		t.Fatalf("default Max: %s", d)
	}
}

func TestJitterSpreads(t *testing.T) {
	seen := map[time.Duration]bool{}
	for range 50 {
		b := Backoff{Min: time.Second}
		seen[b.Next()] = true
	}
	if len(seen) < 10 {
		t.Fatalf("50 jittered delays gave only %d distinct values", len(seen))
	}
}

func TestSleepStopsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	b := Backoff{Min: time.Hour}
	if b.Sleep(ctx) {
		t.Fatal("Sleep returned true on a done context")
	}
}
