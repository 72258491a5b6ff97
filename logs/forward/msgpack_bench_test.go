package forward

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// benchBatch is the batch of bench/msgpack's comparison: the agent's default of 1000
// records, lines of 60 to 250 bytes, the fields of a container that is not a Swarm task
// with two lookout.tags.*.
func benchBatch() (Meta, []Entry) {
	meta := NewMeta([][2]string{{"container_id", "3f4e8b2a9c1d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f"},
		{"container_name", "/shop-api"}, {"image", "registry.example.com/shop/api:2.14.1"},
		{"env", "production"}, {"team", "payments"}})
	t0 := time.Unix(1764000000, 123456789)
	var entries []Entry
	for i := 0; i < 1000; i++ {
		var log string
		if i%3 == 0 {
			log = fmt.Sprintf(`{"level":"info","ts":"2026-11-26T16:32:%02d.%03dZ","msg":"request served","method":"GET","path":"/api/v1/orders/%d","status":200,"duration_ms":%d}`, i%60, i, 100000+i, i%97)
		} else {
			log = fmt.Sprintf(`10.0.%d.%d - - [26/Nov/2026:16:32:%02d +0000] "GET /static/app.%d.js HTTP/1.1" 200 %d "-" "Mozilla/5.0"%s`, i%256, i%7, i%60, i, 1000+i, strings.Repeat(" ", i%40))
		}
		entries = append(entries, Entry{Time: t0.Add(time.Duration(i) * time.Millisecond),
			Source: []string{"stdout", "stderr"}[i%5/4], Log: []byte(log)})
	}
	return meta, entries
}

var benchSink []byte

// BenchmarkAppendForward encodes one Forward message of 1000 records as the log forwarder
// does for each batch: a new buffer each time, as a message stays in the window until its
// ack. bench/msgpack compares it with tinylib/msgp and vmihailenco/msgpack
// (docs/logs-msgpack.md).
func BenchmarkAppendForward(b *testing.B) {
	meta, entries := benchBatch()
	chunk := NewChunkID()
	b.ReportAllocs()
	for b.Loop() {
		benchSink = AppendForward(nil, "docker.shop-api", meta, len(entries), func(i int) Entry { return entries[i] }, chunk)
	}
	b.SetBytes(int64(len(benchSink)))
}
