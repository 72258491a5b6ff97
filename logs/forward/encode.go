package forward

import (
	"crypto/rand"
	"encoding/base64"
	"slices"
	"time"
)

// Meta is the fields every record of a stream carries, encoded once: the container's, for
// the log forwarder.
type Meta struct {
	enc   []byte
	pairs int
}

// NewMeta encodes fields, in order; a field with an empty value is left out.
func NewMeta(fields [][2]string) Meta {
	var m Meta
	for _, f := range fields {
		if f[1] == "" {
			continue
		}
		m.enc = appendStr(appendStr(m.enc, f[0]), f[1])
		m.pairs++
	}
	return m
}

// Entry is one record of a Forward message: its time, its stream ("source") and its log.
type Entry struct {
	Time   time.Time
	Source string
	Log    []byte
}

// AppendForward appends a message in the forward protocol's Forward mode,
// [tag, [[time, record], …], {"chunk": chunk, "size": n}], record i being meta's fields
// followed by source and log of entry(i), its time Fluentd's EventTime (nanoseconds).
func AppendForward(buf []byte, tag string, meta Meta, n int, entry func(i int) Entry, chunk string) []byte {
	// Room for the whole message first, at most a few bytes more than needed: growing by
	// doubling cost seven times the time of the encoding itself (docs/logs-msgpack.md).
	size := 37 + len(tag) + len(chunk) // headers, the tag, the options
	for i := 0; i < n; i++ {
		e := entry(i)
		size += 35 + len(meta.enc) + len(e.Source) + len(e.Log) // headers, time, keys; at most
	}
	buf = slices.Grow(buf, size)
	buf = appendArrayHeader(buf, 3)
	buf = appendStr(buf, tag)
	buf = appendArrayHeader(buf, n)
	for i := 0; i < n; i++ {
		e := entry(i)
		buf = appendArrayHeader(buf, 2)
		buf = appendEventTime(buf, e.Time)
		buf = appendMapHeader(buf, meta.pairs+2)
		buf = append(buf, meta.enc...)
		buf = appendStr(buf, "source")
		buf = appendStr(buf, e.Source)
		buf = appendStr(buf, "log")
		buf = appendStr(buf, e.Log)
	}
	buf = appendMapHeader(buf, 2)
	buf = appendStr(buf, "chunk")
	buf = appendStr(buf, chunk)
	buf = appendStr(buf, "size")
	return appendUint(buf, uint64(n))
}

// NewChunkID returns a random chunk ID, as Fluentd's out_forward makes them.
func NewChunkID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.StdEncoding.EncodeToString(b[:])
}
