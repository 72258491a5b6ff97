package shipper

import (
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"
)

// diskConfig is fastConfig with a disk queue in dir and a small memory.
func diskConfig(dir string) OutputConfig {
	oc := fastConfig()
	oc.BatchSize, oc.BufferLimit = 5, 20
	oc.QueueDir, oc.DiskLimit, oc.SyncInterval = dir, 1<<20, 20*time.Millisecond
	return oc
}

// switchable answers 503 while down.
func switchable(f *fakeInflux) (setUp func(bool)) {
	var mu sync.Mutex
	up := false
	f.setHandler(func(*fakeReq) fakeResp {
		mu.Lock()
		defer mu.Unlock()
		if !up {
			return fakeResp{status: 503, body: `{"error":"down"}`}
		}
		return fakeResp{status: 204}
	})
	return func(v bool) { mu.Lock(); up = v; mu.Unlock() }
}

func sortedCopy(s []string) []string {
	out := append([]string(nil), s...)
	sort.Strings(out)
	return out
}

func TestDiskQueueOutageLongerThanMemoryLosesNothing(t *testing.T) {
	f := newFakeInflux(t)
	setUp := switchable(f)
	o := newInfluxOutput(t, diskConfig(t.TempDir()), f.v1Config())
	s := New(o)
	runShipper(t, s)
	for i := 0; i < 300; i += 10 {
		s.Add(pts("m", i, i+10)...)
	}
	if st := o.Stats(); !st.Disk || st.Dropped != 0 || st.Buffered != 300 || st.BufferedBytes == 0 {
		t.Fatalf("during the outage: %+v, want a disk queue holding 300 lines, none dropped", st)
	}
	setUp(true)
	eventually(t, func() bool { return settled(o, 300) }, waitLong, "300 lines written")
	equalLines(t, "delivered, each once", sortedCopy(f.accepted()), sortedCopy(wantLines("m", 0, 300)))
	if st := o.Stats(); st.Dropped != 0 || st.Corrupt != 0 || st.DiskErrors != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestDiskQueueSurvivesARestart(t *testing.T) {
	dir := t.TempDir()
	f := newFakeInflux(t)
	setUp := switchable(f)
	o := newInfluxOutput(t, diskConfig(dir), f.v1Config())
	s := New(o)
	stop := runShipper(t, s)
	s.Add(pts("m", 0, 100)...)
	stop() // the last attempt fails: the lines stay on disk

	setUp(true)
	o2 := newInfluxOutput(t, diskConfig(dir), f.v1Config())
	if st := o2.Stats(); !st.Disk {
		t.Fatalf("second output has no disk queue: %+v", st)
	}
	runShipper(t, New(o2))
	eventually(t, func() bool { return settled(o2, 100) }, waitLong, "the 100 queued lines written after the restart")
	equalLines(t, "delivered after the restart", sortedCopy(f.accepted()), sortedCopy(wantLines("m", 0, 100)))
}

// While a backlog drains, a new line goes out within a batch or two, not after the
// backlog.
func TestDiskQueueNewLinesOvertakeTheBacklog(t *testing.T) {
	f := newFakeInflux(t)
	setUp := switchable(f)
	o := newInfluxOutput(t, diskConfig(t.TempDir()), f.v1Config())
	s := New(o)
	runShipper(t, s)
	s.Add(pts("old", 0, 1000)...) // 200 batches of 5, 980 of them only on disk
	var mu sync.Mutex
	f.setHandler(func(*fakeReq) fakeResp {
		mu.Lock() // one write at a time, slowly: the drain takes about 2 s
		defer mu.Unlock()
		time.Sleep(10 * time.Millisecond)
		return fakeResp{status: 204}
	})
	setUp(true) // (replaced by the handler above; kept for symmetry)
	eventually(t, func() bool { return len(f.accepted()) >= 100 }, waitLong, "the drain to start")
	s.Add(pts("new", 0, 1)...)
	eventually(t, func() bool {
		for _, l := range f.accepted() {
			if l == wantLine("new", 0) {
				return true
			}
		}
		return false
	}, waitLong, "the new line")
	// Memory (20 lines) goes first, then one batch of backlog per batch of new lines:
	// the new line is among the next 30 lines written, not after the other 900.
	acc := f.accepted()
	idx := -1
	for i, l := range acc {
		if l == wantLine("new", 0) {
			idx = i
		}
	}
	if idx > 100+60 {
		t.Fatalf("the new line was line %d written; the backlog held it back", idx)
	}
	eventually(t, func() bool { return settled(o, 1001) }, waitLong, "everything written")
}

func TestDiskQueueUnusableDirectoryFallsBackToMemory(t *testing.T) {
	file := filepath.Join(t.TempDir(), "not-a-dir")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	f := newFakeInflux(t)
	o := newInfluxOutput(t, diskConfig(filepath.Join(file, "queue")), f.v1Config())
	s := New(o)
	runShipper(t, s)
	s.Add(pts("m", 0, 10)...)
	eventually(t, func() bool { return settled(o, 10) }, waitLong, "10 lines through memory")
	if st := o.Stats(); st.Disk || st.DiskErrors != 1 {
		t.Fatalf("stats %+v: want no disk queue and the failure counted", st)
	}
}

func TestDiskQueueDirectoryOfOneAgentOnly(t *testing.T) {
	dir := t.TempDir()
	f := newFakeInflux(t)
	a := newInfluxOutput(t, diskConfig(dir), f.v1Config())
	b := newInfluxOutput(t, diskConfig(dir), f.v1Config())
	runShipper(t, New(a))
	if !a.Stats().Disk || b.Stats().Disk {
		t.Fatalf("two outputs on one queue directory: disk %v and %v, want only the first", a.Stats().Disk, b.Stats().Disk)
	}
}

func TestRecordEncoding(t *testing.T) {
	ls := [][]byte{[]byte("a b=1i 1"), {}, []byte("c\nd")}
	got, err := decodeRecord(encodeRecord(ls))
	if err != nil || len(got) != 3 || string(got[0]) != "a b=1i 1" || len(got[1]) != 0 || string(got[2]) != "c\nd" {
		t.Fatalf("round trip = %q, %v", got, err)
	}
	for _, bad := range [][]byte{{0x05, 'a'}, {0xff}, {0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01}} {
		if _, err := decodeRecord(bad); err == nil {
			t.Errorf("decodeRecord(%q) accepted", bad)
		}
	}
}
