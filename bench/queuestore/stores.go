package main

import (
	"fmt"
	"time"

	"github.com/tidwall/wal"

	"github.com/lookout-agent/lookout/shipper/diskqueue"
)

// The stores compared. "lookout" is shipper/diskqueue; "wal" is github.com/tidwall/wal
// v1.2.1 (the version Telegraf 1.37 uses) with NoSync and an explicit Sync, used the
// way Telegraf's disk buffer uses it (Write with the next index, Read by index,
// TruncateFront after a batch); "wal-telegraf" is tidwall/wal exactly as Telegraf 1.37
// opens it (default options but AllowEmpty: an fsync after every Write).
const (
	storeLookout  = "lookout"
	storeWAL      = "wal"
	storeTelegraf = "wal-telegraf"
)

// batchLines is the lines of one batch an output sends: Lookout's default batch size and
// Telegraf's default metric_batch_size.
const batchLines = 1000

// queue is the part of each store the benchmark drives.
type queue interface {
	Append(b []byte, lines int) error
	Sync() error
	// Drain reads every record in the queue, in batches of batchLines lines, and
	// acknowledges (Lookout) or truncates (tidwall/wal) each batch after it is read.
	Drain(k *recordKind) error
	Close() error
}

func openQueue(store, dir string, maxBytes int64) (queue, error) {
	switch store {
	case storeLookout:
		q, err := diskqueue.Open(dir, diskqueue.Options{MaxBytes: maxBytes})
		if err != nil {
			return nil, err
		}
		return &lookoutQ{q: q, now: time.Now()}, nil
	case storeWAL, storeTelegraf:
		l, err := wal.Open(dir, walOptions(store))
		if err != nil {
			return nil, err
		}
		last, err := l.LastIndex()
		if err != nil {
			return nil, err
		}
		return &walQ{l: l, next: last + 1}, nil
	}
	return nil, fmt.Errorf("unknown store %q", store)
}

func walOptions(store string) *wal.Options {
	// Telegraf 1.37 models/buffer_disk.go: wal.Open(path, &wal.Options{AllowEmpty: true}).
	return &wal.Options{AllowEmpty: true, NoSync: store == storeWAL}
}

type lookoutQ struct {
	q   *diskqueue.Queue
	now time.Time
	n   int
}

func (l *lookoutQ) Append(b []byte, lines int) error {
	// The agent stamps a batch with the time it was queued; a clock read every 64
	// records is close enough and keeps the clock out of the figure.
	if l.n++; l.n%64 == 0 {
		l.now = time.Now()
	}
	_, err := l.q.Append(b, lines, l.now)
	return err
}

func (l *lookoutQ) Sync() error  { return l.q.Sync() }
func (l *lookoutQ) Close() error { return l.q.Close() }

func (l *lookoutQ) Drain(k *recordKind) error {
	for {
		recs, err := l.q.Read(batchLines, diskqueue.Pos{})
		if err != nil {
			return err
		}
		if len(recs) == 0 {
			return nil
		}
		for _, r := range recs {
			l.q.Ack(r.Pos, r.Lines, true)
		}
	}
}

type walQ struct {
	l    *wal.Log
	next uint64
}

func (w *walQ) Append(b []byte, _ int) error {
	if err := w.l.Write(w.next, b); err != nil {
		return err
	}
	w.next++
	return nil
}

func (w *walQ) Sync() error  { return w.l.Sync() }
func (w *walQ) Close() error { return w.l.Close() }

func (w *walQ) Drain(k *recordKind) error {
	perBatch := uint64(max(batchLines/k.lines, 1))
	for {
		first, err := w.l.FirstIndex()
		if err != nil {
			return err
		}
		last, err := w.l.LastIndex()
		if err != nil {
			return err
		}
		if first > last {
			return nil
		}
		n := min(perBatch, last-first+1)
		for i := uint64(0); i < n; i++ {
			if _, err := w.l.Read(first + i); err != nil {
				return err
			}
		}
		if err := w.l.TruncateFront(first + n); err != nil {
			return err
		}
	}
}
