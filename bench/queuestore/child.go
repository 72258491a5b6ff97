package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tidwall/wal"

	"github.com/lookout-agent/lookout/shipper/diskqueue"
)

// The recovery, consumption and corruption measurements run in child processes (this
// program started again with -child): a store is opened as the agent would open it after
// a restart, the memory figures are the child's alone, and a kill -9 is a real one.

type childArgs struct {
	kind  string // fill, recover, consume
	store string
	dir   string
	size  int64 // fill: payload to append
	max   int64 // Lookout's MaxBytes (its segments are max/16, at most 16 MiB)
	lines int
	kill  bool          // fill: end with SIGKILL instead of Close
	limit time.Duration // consume: stop after this long
	total uint64        // consume: records appended, to count the missing ones
}

type fillResult struct {
	Records, Bytes int64
	Secs           float64
}

type recoverResult struct {
	Err                 string
	OpenSecs            float64 // Open
	ReadySecs           float64 // Open and, for Lookout, Recover
	FirstSecs           float64 // and the first record read
	FirstOK             bool    // the first record read is intact
	Records             int64   // records the store says it holds
	Corrupt             uint64  // records Lookout counted corrupt
	HeapAlloc, HeapLive uint64  // after; live: after a GC
	Sys, TotalAlloc     uint64
	MaxRSS              uint64 // VmHWM
}

type consumeResult struct {
	OpenErr, ReadErr         string
	OpenSecs, Secs           float64 // Open (+Recover); reading and acknowledging
	Records, Bytes           int64   // delivered
	Valid, Invalid, Dup      int64   // delivered intact, delivered damaged, delivered twice
	Missing                  int64   // appended, not delivered intact (when Done)
	Done                     bool    // the queue was emptied before the limit
	Corrupt, CorruptBytes    uint64  // Lookout's counters
	Left                     int64   // records still in the queue at the limit
	BatchSecs50, BatchSecs99 float64
}

func runChild(a childArgs) error {
	var out any
	var err error
	switch a.kind {
	case "fill":
		out, err = childFill(a)
	case "recover":
		out = childRecover(a)
	case "consume":
		out = childConsume(a)
	default:
		err = fmt.Errorf("unknown child %q", a.kind)
	}
	if err != nil {
		return err
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		return err
	}
	if a.kind == "fill" && a.kill {
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		time.Sleep(time.Second)
	}
	return nil
}

// childFill appends records until the payload reaches a.size, syncing every second, and
// closes the store (or, with a.kill, is killed by the caller right after the output).
func childFill(a childArgs) (fillResult, error) {
	k := newRecordKind(a.lines)
	q, err := openQueue(a.store, a.dir, a.max)
	if err != nil {
		return fillResult{}, err
	}
	var r fillResult
	start := time.Now()
	last := start
	for seq := uint64(1); r.Bytes < a.size; seq++ {
		if err := q.Append(k.gen(seq), k.lines); err != nil {
			return r, err
		}
		r.Records++
		r.Bytes += int64(k.size())
		if seq%64 == 0 && time.Since(last) >= time.Second {
			if err := q.Sync(); err != nil {
				return r, err
			}
			last = time.Now()
		}
	}
	r.Secs = time.Since(start).Seconds()
	if !a.kill {
		if err := q.Close(); err != nil {
			return r, err
		}
	}
	return r, nil
}

// childRecover opens the store as the agent would after a restart and reads the first
// record: for Lookout Open, then Recover (every segment checked) in a goroutine while Read
// is tried every millisecond; for tidwall/wal Open (the last segment loaded) and Read of
// the first index (its segment loaded).
func childRecover(a childArgs) recoverResult {
	k := newRecordKind(a.lines)
	var r recoverResult
	runtime.GC()
	start := time.Now()
	switch a.store {
	case storeLookout:
		q, err := diskqueue.Open(a.dir, diskqueue.Options{MaxBytes: a.max})
		if err != nil {
			r.Err = err.Error()
			return r
		}
		r.OpenSecs = time.Since(start).Seconds()
		// Recover in the background, as the agent can run it: Read serves each
		// segment once it is scanned, oldest first.
		done := make(chan struct{})
		go func() {
			q.Recover()
			r.ReadySecs = time.Since(start).Seconds()
			close(done)
		}()
		for {
			recs, err := q.Read(1, diskqueue.Pos{})
			if err != nil {
				r.Err = err.Error()
				break
			}
			if len(recs) > 0 {
				r.FirstSecs = time.Since(start).Seconds()
				_, r.FirstOK = k.check(recs[0].Data)
				break
			}
			time.Sleep(time.Millisecond)
		}
		<-done
		st := q.Stats()
		r.Records, r.Corrupt = st.Lines/int64(a.lines), st.Corrupt
		memStats(&r)
		defer q.Close()
	default:
		l, err := wal.Open(a.dir, walOptions(storeWAL))
		if err != nil {
			r.Err = err.Error()
			r.OpenSecs = time.Since(start).Seconds()
			return r
		}
		r.OpenSecs = time.Since(start).Seconds()
		r.ReadySecs = r.OpenSecs // nothing more to check: older segments are read when reached
		first, _ := l.FirstIndex()
		last, _ := l.LastIndex()
		data, err := l.Read(first)
		r.FirstSecs = time.Since(start).Seconds()
		if err != nil {
			r.Err = err.Error()
		} else {
			_, r.FirstOK = k.check(data)
		}
		r.Records = int64(last) - int64(first) + 1
		memStats(&r)
		defer l.Close()
	}
	return r
}

func memStats(r *recoverResult) {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	r.HeapAlloc, r.Sys, r.TotalAlloc = m.HeapAlloc, m.Sys, m.TotalAlloc
	runtime.GC()
	runtime.ReadMemStats(&m)
	r.HeapLive = m.HeapAlloc
	r.MaxRSS = vmHWM()
}

// vmHWM is this process's peak resident set (the child's alone: a rusage of the child
// would count the parent's pages shared until exec).
func vmHWM() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseUint(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// childConsume opens the store and delivers everything in it as an output would: batches
// of batchLines lines, each acknowledged (Lookout: Ack per record, Sync every second) or
// truncated (tidwall/wal: TruncateFront after each batch, as Telegraf's EndTransaction)
// once "written". Every record delivered is checked against what was appended.
func childConsume(a childArgs) consumeResult {
	k := newRecordKind(a.lines)
	var r consumeResult
	seen := make([]bool, a.total+1)
	deliver := func(data []byte) {
		r.Records++
		r.Bytes += int64(len(data))
		seq, ok := k.check(data)
		switch {
		case !ok || seq == 0 || seq > a.total:
			r.Invalid++
		case seen[seq]:
			r.Dup++
		default:
			seen[seq] = true
			r.Valid++
		}
	}
	var batchTimes []time.Duration
	start := time.Now()
	var deadline time.Time
	if a.limit > 0 {
		deadline = start.Add(a.limit)
	}
	switch a.store {
	case storeLookout:
		q, err := diskqueue.Open(a.dir, diskqueue.Options{MaxBytes: a.max})
		if err != nil {
			r.OpenErr = err.Error()
			return r
		}
		defer q.Close()
		q.Recover()
		r.OpenSecs = time.Since(start).Seconds()
		cstart, lastSync := time.Now(), time.Now()
		for {
			if !deadline.IsZero() && time.Now().After(deadline) {
				break
			}
			t0 := time.Now()
			recs, err := q.Read(batchLines, diskqueue.Pos{})
			if err != nil {
				r.ReadErr = err.Error()
				break
			}
			if len(recs) == 0 {
				r.Done = true
				break
			}
			for _, rec := range recs {
				deliver(rec.Data)
				q.Ack(rec.Pos, rec.Lines, true)
			}
			if time.Since(lastSync) >= time.Second {
				_ = q.Sync()
				lastSync = time.Now()
			}
			batchTimes = append(batchTimes, time.Since(t0))
		}
		_ = q.Sync()
		r.Secs = time.Since(cstart).Seconds()
		st := q.Stats()
		r.Corrupt, r.CorruptBytes = st.Corrupt, st.CorruptBytes
		r.Left = st.Lines / int64(a.lines)
	default:
		l, err := wal.Open(a.dir, walOptions(storeWAL))
		if err != nil {
			r.OpenErr = err.Error()
			return r
		}
		defer l.Close()
		r.OpenSecs = time.Since(start).Seconds()
		cstart := time.Now()
		perBatch := uint64(max(batchLines/a.lines, 1))
	loop:
		for {
			if !deadline.IsZero() && time.Now().After(deadline) {
				break
			}
			t0 := time.Now()
			first, err1 := l.FirstIndex()
			last, err2 := l.LastIndex()
			if err := errors.Join(err1, err2); err != nil {
				r.ReadErr = err.Error()
				break
			}
			if first > last {
				r.Done = true
				break
			}
			n := min(perBatch, last-first+1)
			for i := uint64(0); i < n; i++ {
				data, err := l.Read(first + i)
				if err != nil {
					// Telegraf's BeginTransaction panics here.
					r.ReadErr = fmt.Sprintf("index %d: %v", first+i, err)
					break loop
				}
				deliver(data)
			}
			if err := l.TruncateFront(first + n); err != nil {
				r.ReadErr = fmt.Sprintf("truncate front %d: %v", first+n, err)
				break
			}
			batchTimes = append(batchTimes, time.Since(t0))
		}
		r.Secs = time.Since(cstart).Seconds()
		first, _ := l.FirstIndex()
		last, _ := l.LastIndex()
		r.Left = max(int64(last)-int64(first)+1, 0)
	}
	if r.Done || r.ReadErr != "" {
		r.Missing = int64(a.total) - r.Valid
	}
	r.BatchSecs50 = quantile(batchTimes, 0.5).Seconds()
	r.BatchSecs99 = quantile(batchTimes, 0.99).Seconds()
	return r
}
