// Command queuestore compares, in one run on one disk, the two candidate storages for
// the metrics disk queue of issue 9: Lookout's own segment log (shipper/diskqueue) and
// github.com/tidwall/wal v1.2.1, the library under Telegraf 1.37's disk buffer, driven as
// Telegraf drives it. It measures append throughput (fsync every second and none),
// the cost of the fsync after a second of appends, the recovery of a full queue after a
// close and after a kill -9 with a torn last record (time to the first record, memory),
// the consumption of the whole queue, and what each does with corrupt files. It prints
// Markdown tables with the ratios. Run it with `make bench-queue`.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

type config struct {
	size        int64 // the full queue of the recovery and consumption parts
	appendSize  int64 // payload of each append-throughput case
	corruptSize int64
	samples     int // fsync samples per case
	rate        int // lines per second in the fsync part
	consumeMax  time.Duration
	telegrafFor time.Duration
	dir         string
	parts       map[string]bool
}

func main() {
	var c config
	var child childArgs
	size := flag.String("size", "1GiB", "the full queue of the recovery and consumption parts")
	appendSize := flag.String("append-size", "128MiB", "payload appended in each append-throughput case")
	corruptSize := flag.String("corrupt-size", "64MiB", "the queue the corruption cases damage")
	flag.IntVar(&c.samples, "fsync-samples", 100, "fsyncs timed per store and case")
	flag.IntVar(&c.rate, "rate", 5000, "lines per second before each timed fsync")
	flag.DurationVar(&c.consumeMax, "consume-limit", 30*time.Second, "stop consuming the full queue after this long (and extrapolate)")
	flag.DurationVar(&c.telegrafFor, "telegraf-for", 3*time.Second, "how long the fsync-per-write case appends")
	flag.StringVar(&c.dir, "dir", os.TempDir(), "where the queues are written (a temporary directory inside it)")
	parts := flag.String("parts", "append,fsync,recover,corrupt", "parts to run")
	flag.StringVar(&child.kind, "child", "", "internal: run one measurement in this process")
	flag.StringVar(&child.store, "store", "", "internal")
	flag.StringVar(&child.dir, "qdir", "", "internal")
	flag.IntVar(&child.lines, "lines", 10, "internal")
	flag.BoolVar(&child.kill, "kill", false, "internal")
	flag.DurationVar(&child.limit, "limit", 0, "internal")
	flag.Uint64Var(&child.total, "total", 0, "internal")
	maxBytes := flag.String("max", "1GiB", "internal: Lookout's MaxBytes")
	flag.Parse()
	var err error
	for _, s := range []struct {
		flag string
		dst  *int64
	}{{*size, &c.size}, {*appendSize, &c.appendSize}, {*corruptSize, &c.corruptSize}} {
		if *s.dst, err = parseSize(s.flag); err != nil {
			fmt.Fprintln(os.Stderr, "queuestore:", err)
			os.Exit(2)
		}
	}
	if child.kind != "" {
		child.size = c.size
		if child.max, err = parseSize(*maxBytes); err != nil {
			fmt.Fprintln(os.Stderr, "queuestore:", err)
			os.Exit(2)
		}
		if err := runChild(child); err != nil {
			fmt.Fprintln(os.Stderr, "queuestore child:", err)
			os.Exit(1)
		}
		return
	}
	c.parts = map[string]bool{}
	for _, p := range strings.Split(*parts, ",") {
		c.parts[strings.TrimSpace(p)] = true
	}
	if err := run(c); err != nil {
		fmt.Fprintln(os.Stderr, "queuestore:", err)
		os.Exit(1)
	}
}

func parseSize(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}}
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			n, err := strconv.ParseFloat(strings.TrimSuffix(s, u.suffix), 64)
			if err != nil || n <= 0 {
				break
			}
			return int64(n * float64(u.mult)), nil
		}
	}
	return 0, fmt.Errorf("size %q: want a number and GiB, MiB, KiB or B, e.g. 1GiB", s)
}

func run(c config) error {
	root, err := os.MkdirTemp(c.dir, "queuestore-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(root)
	fmt.Printf("queuestore: %s; queues under %s (%s)\n", goVersion(), root, diskOf(root))
	fmt.Printf("records: line protocol, %d bytes a line; \"10 lines\" = %d bytes a record, \"1 line\" = %d bytes\n\n",
		lineBytes, newRecordKind(10).size(), newRecordKind(1).size())
	if c.parts["append"] {
		if err := partAppend(c, root); err != nil {
			return fmt.Errorf("append: %w", err)
		}
	}
	if c.parts["fsync"] {
		if err := partFsync(c, root); err != nil {
			return fmt.Errorf("fsync: %w", err)
		}
	}
	if c.parts["recover"] {
		if err := partRecover(c, root); err != nil {
			return fmt.Errorf("recover: %w", err)
		}
	}
	if c.parts["corrupt"] {
		if err := partCorrupt(c, root); err != nil {
			return fmt.Errorf("corrupt: %w", err)
		}
	}
	return nil
}

// --- 1. append throughput -------------------------------------------------------------

type appendResult struct {
	records, bytes int64
	secs           float64
	syncs          int
}

func (r appendResult) mbps() float64 { return float64(r.bytes) / r.secs / 1e6 }
func (r appendResult) rps() float64  { return float64(r.records) / r.secs }

// appendCase appends records of k until limit bytes (or, with dur, for dur), syncing
// every syncEvery (0: never; the store's own policy for wal-telegraf).
func appendCase(store, dir string, k *recordKind, syncEvery time.Duration, limit int64, dur time.Duration) (appendResult, error) {
	defer os.RemoveAll(dir)
	q, err := openQueue(store, dir, 2*limit+(1<<30))
	if err != nil {
		return appendResult{}, err
	}
	var r appendResult
	start := time.Now()
	last := start
	for seq := uint64(1); ; seq++ {
		if err := q.Append(k.gen(seq), k.lines); err != nil {
			return r, err
		}
		r.records++
		r.bytes += int64(k.size())
		if seq%32 == 0 {
			now := time.Now()
			if syncEvery > 0 && now.Sub(last) >= syncEvery {
				if err := q.Sync(); err != nil {
					return r, err
				}
				r.syncs++
				last = time.Now()
			}
			if dur > 0 && now.Sub(start) >= dur {
				break
			}
		}
		if dur == 0 && r.bytes >= limit {
			break
		}
	}
	r.secs = time.Since(start).Seconds()
	return r, q.Close()
}

func partAppend(c config, root string) error {
	fmt.Printf("## 1. Append throughput (%s a case)\n\n", human(c.appendSize))
	fmt.Println("| record | sync | Lookout MB/s | Lookout records/s | tidwall/wal MB/s | tidwall/wal records/s | Lookout / wal |")
	fmt.Println("| --- | --- | --- | --- | --- | --- | --- |")
	for _, lines := range []int{10, 1} {
		k := newRecordKind(lines)
		for _, every := range []time.Duration{time.Second, 0} {
			var res [2]appendResult
			for i, store := range []string{storeLookout, storeWAL} {
				r, err := appendCase(store, filepath.Join(root, "append-"+store), k, every, c.appendSize, 0)
				if err != nil {
					return fmt.Errorf("%s: %w", store, err)
				}
				res[i] = r
			}
			mode := "every 1 s"
			if every == 0 {
				mode = "none"
			}
			fmt.Printf("| %s | %s | %.0f | %s | %.0f | %s | %.2fx |\n", linesName(lines), mode,
				res[0].mbps(), thousands(res[0].rps()), res[1].mbps(), thousands(res[1].rps()), res[0].mbps()/res[1].mbps())
		}
	}
	k := newRecordKind(1)
	r, err := appendCase(storeTelegraf, filepath.Join(root, "append-telegraf"), k, 0, 0, c.telegrafFor)
	if err != nil {
		return fmt.Errorf("%s: %w", storeTelegraf, err)
	}
	fmt.Printf("\ntidwall/wal as Telegraf 1.37 opens it (fsync after every Write, one metric a record), %s: "+
		"%.2f MB/s, %s records/s\n\n", c.telegrafFor, r.mbps(), thousands(r.rps()))
	return nil
}

// --- 2. fsync cost --------------------------------------------------------------------

func partFsync(c config, root string) error {
	fmt.Printf("## 2. Fsync cost: one Sync after a second's appends at %s lines/s (%d samples each)\n\n", thousands(float64(c.rate)), c.samples)
	fmt.Println("backlog: nothing read (output down); draining: each second's records read and acknowledged (Lookout: Ack; wal: TruncateFront per batch of 1000 lines, as Telegraf) before the Sync, the time of both counted.")
	fmt.Println()
	fmt.Println("| record | case | Lookout median | Lookout p99 | tidwall/wal median | tidwall/wal p99 | wal / Lookout (median) |")
	fmt.Println("| --- | --- | --- | --- | --- | --- | --- |")
	for _, lines := range []int{10, 1} {
		k := newRecordKind(lines)
		perSec := max(c.rate/lines, 1)
		for _, drain := range []bool{false, true} {
			var qs [2]queue
			var dirs [2]string
			for i, store := range []string{storeLookout, storeWAL} {
				dirs[i] = filepath.Join(root, "fsync-"+store)
				q, err := openQueue(store, dirs[i], 4<<30)
				if err != nil {
					return err
				}
				qs[i] = q
			}
			var times [2][]time.Duration
			seq := uint64(0)
			for s := 0; s < c.samples; s++ {
				for j := 0; j < 2; j++ {
					i := (s + j) % 2 // alternate which store goes first
					base := seq
					for n := 0; n < perSec; n++ {
						if err := qs[i].Append(k.gen(base+uint64(n)+1), lines); err != nil {
							return err
						}
					}
					t0 := time.Now()
					if drain {
						if err := qs[i].Drain(k); err != nil {
							return err
						}
					}
					if err := qs[i].Sync(); err != nil {
						return err
					}
					times[i] = append(times[i], time.Since(t0))
				}
				seq += uint64(perSec)
			}
			for i := range qs {
				_ = qs[i].Close()
				_ = os.RemoveAll(dirs[i])
			}
			name := "backlog"
			if drain {
				name = "draining"
			}
			l50, l99 := quantile(times[0], 0.5), quantile(times[0], 0.99)
			w50, w99 := quantile(times[1], 0.5), quantile(times[1], 0.99)
			fmt.Printf("| %s | %s | %s | %s | %s | %s | %.2fx |\n", linesName(lines), name, ms(l50), ms(l99), ms(w50), ms(w99),
				float64(w50)/float64(l50))
		}
	}
	fmt.Println()
	return nil
}

// --- 3 and 4. recovery and consumption of a full queue --------------------------------

func partRecover(c config, root string) error {
	const lines = 10
	qmax := c.size + c.size/8 // room for the whole queue; segments of max/16, at most 16 MiB
	fmt.Printf("## 3. Recovery of a %s queue (records of %s), and 4. consumption\n\n", human(c.size), linesName(lines))
	fmt.Println("Open: appending can start. First: from the start of Open until the oldest record is read (Lookout: Recover running in a goroutine, Read tried every ms; it serves a segment once Recover has checked it). Recovered: every record checked (Lookout: Recover done; wal: nothing more to do, older segments are read when reached). Cold: the queue's pages dropped from the page cache (fsync + fadvise DONTNEED) first. Memory: the recovering process afterwards (Go heap in use, heap live after a GC, Sys, peak RSS).")
	fmt.Println()
	fmt.Println("| store | case | fill MB/s | open | first record | recovered | heap / live / Sys / peak RSS | records | result |")
	fmt.Println("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
	type consumed struct {
		store string
		fill  fillResult
		res   consumeResult
	}
	var cons []consumed
	for _, store := range []string{storeLookout, storeWAL} {
		dir := filepath.Join(root, "full-"+store)
		var fill fillResult
		if err := child(childArgs{kind: "fill", store: store, dir: dir, lines: lines, size: c.size, max: qmax}, &fill); err != nil {
			return err
		}
		for _, cold := range []bool{false, true} {
			if cold {
				if err := dropCache(dir); err != nil {
					return err
				}
			}
			var r recoverResult
			if err := child(childArgs{kind: "recover", store: store, dir: dir, lines: lines, max: qmax}, &r); err != nil {
				return err
			}
			name := "closed, warm"
			if cold {
				name = "closed, cold"
			}
			printRecover(store, name, fill, r)
		}
		if err := dropCache(dir); err != nil {
			return err
		}
		var cr consumeResult
		if err := child(childArgs{kind: "consume", store: store, dir: dir, lines: lines, max: qmax, limit: c.consumeMax, total: uint64(fill.Records)}, &cr); err != nil {
			return err
		}
		cons = append(cons, consumed{store, fill, cr})
		_ = os.RemoveAll(dir)
	}
	for _, store := range []string{storeLookout, storeWAL} {
		dir := filepath.Join(root, "killed-"+store)
		var fill fillResult
		if err := child(childArgs{kind: "fill", store: store, dir: dir, lines: lines, size: c.size, max: qmax, kill: true}, &fill); err != nil {
			return err
		}
		if err := tearTail(store, dir, 1000); err != nil {
			return err
		}
		if err := dropCache(dir); err != nil {
			return err
		}
		var r recoverResult
		if err := child(childArgs{kind: "recover", store: store, dir: dir, lines: lines, max: qmax}, &r); err != nil {
			return err
		}
		printRecover(store, "kill -9 + torn last record, cold", fill, r)
		_ = os.RemoveAll(dir)
	}
	fmt.Println()
	fmt.Printf("Consumption: the whole queue read in batches of %d lines, each acknowledged (Lookout) or truncated (wal) after it is read, from a cold cache, at most %s.\n\n", batchLines, c.consumeMax)
	fmt.Println("| store | open | consumed | records/s | MB/s | batch median / p99 | whole queue (projected) | intact / damaged / missing |")
	fmt.Println("| --- | --- | --- | --- | --- | --- | --- | --- |")
	for _, x := range cons {
		r := x.res
		rate := float64(r.Records) / r.Secs
		whole := fmt.Sprintf("%.1f s", r.Secs)
		if !r.Done {
			whole = fmt.Sprintf("~%.0f s", float64(x.fill.Records)/rate)
		}
		errs := ""
		if r.OpenErr != "" || r.ReadErr != "" {
			errs = " error: " + r.OpenErr + r.ReadErr
		}
		fmt.Printf("| %s | %s | %s of %s records in %.1f s | %s | %.1f | %s / %s | %s | %d / %d / %s%s |\n",
			storeName(x.store), secs(r.OpenSecs), thousands(float64(r.Records)), thousands(float64(x.fill.Records)), r.Secs,
			thousands(rate), float64(r.Bytes)/r.Secs/1e6, secs(r.BatchSecs50), secs(r.BatchSecs99), whole,
			r.Valid, r.Invalid, missing(r), errs)
	}
	fmt.Println()
	return nil
}

func missing(r consumeResult) string {
	if !r.Done && r.ReadErr == "" {
		return "n/a"
	}
	return strconv.FormatInt(r.Missing, 10)
}

func printRecover(store, name string, fill fillResult, r recoverResult) {
	result := "first record intact"
	if !r.FirstOK {
		result = "first record damaged"
	}
	if r.Corrupt > 0 {
		result += fmt.Sprintf(", %d counted corrupt", r.Corrupt)
	}
	first, ready, mem, recs := secs(r.FirstSecs), secs(r.ReadySecs),
		fmt.Sprintf("%s / %s / %s / %s", mib(r.HeapAlloc), mib(r.HeapLive), mib(r.Sys), mib(r.MaxRSS)), thousands(float64(r.Records))
	if r.Err != "" {
		result = "**fails after " + secs(r.OpenSecs) + ": " + r.Err + "**"
		first, ready, mem, recs = "—", "—", "—", "none readable"
	}
	fmt.Printf("| %s | %s | %.0f | %s | %s | %s | %s | %s | %s |\n", storeName(store), name,
		float64(fill.Bytes)/fill.Secs/1e6, secs(r.OpenSecs), first, ready, mem, recs, result)
}

// --- 5. corruption ---------------------------------------------------------------------

func partCorrupt(c config, root string) error {
	const lines = 10
	qmax := c.size + c.size/8 // as in part 3: the segments of a 1 GiB queue (16 MiB)
	fmt.Printf("## 5. Corruption: a %s queue (records of %s), damaged, then opened and read to the end\n\n", human(c.corruptSize), linesName(lines))
	fmt.Println("| store | damage | open | records intact / damaged / missing | Lookout counted corrupt | read error |")
	fmt.Println("| --- | --- | --- | --- | --- | --- |")
	for _, store := range []string{storeLookout, storeWAL} {
		pristine := filepath.Join(root, "pristine-"+store)
		var fill fillResult
		if err := child(childArgs{kind: "fill", store: store, dir: pristine, lines: lines, size: c.corruptSize, max: qmax}, &fill); err != nil {
			return err
		}
		cases := []struct {
			name string
			do   func(dir string) error
		}{
			{"none", func(string) error { return nil }},
			{"byte flipped in a payload, middle of the 2nd-oldest segment", func(dir string) error { return flip(store, dir, false) }},
			{"bit flipped in a length, middle of the 2nd-oldest segment", func(dir string) error { return flip(store, dir, true) }},
			{"tail torn (last 1000 bytes of the last segment cut)", func(dir string) error { return tearTail(store, dir, 1000) }},
		}
		for _, cs := range cases {
			dir := filepath.Join(root, "damaged-"+store)
			if err := copyDir(pristine, dir); err != nil {
				return err
			}
			if err := cs.do(dir); err != nil {
				return fmt.Errorf("%s: %s: %w", store, cs.name, err)
			}
			var r consumeResult
			if err := child(childArgs{kind: "consume", store: store, dir: dir, lines: lines, max: qmax, total: uint64(fill.Records)}, &r); err != nil {
				return err
			}
			open := "ok"
			if r.OpenErr != "" {
				open = "**fails: " + r.OpenErr + "**"
			}
			readErr := r.ReadErr
			if readErr == "" {
				readErr = "none"
			} else if store != storeLookout {
				readErr += " (Telegraf panics)"
			}
			counted := "n/a"
			if store == storeLookout {
				counted = fmt.Sprintf("%d (%s)", r.Corrupt, human(int64(r.CorruptBytes)))
			}
			miss := strconv.FormatInt(int64(fill.Records)-r.Valid, 10)
			fmt.Printf("| %s | %s | %s | %d / %d / %s | %s | %s |\n", storeName(store), cs.name, open, r.Valid, r.Invalid, miss, counted, readErr)
			_ = os.RemoveAll(dir)
		}
		_ = os.RemoveAll(pristine)
	}
	fmt.Println()
	return nil
}

// segments returns a store's segment files, oldest first.
func segments(store, dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		n := e.Name()
		switch {
		case store == storeLookout && strings.HasSuffix(n, ".seg"):
		case store != storeLookout && len(n) == 20 && strings.Trim(n, "0123456789") == "":
		default:
			continue
		}
		if fi, err := e.Info(); err == nil && fi.Size() > 8 {
			out = append(out, filepath.Join(dir, n))
		}
	}
	sort.Strings(out)
	return out, nil
}

// recordStarts returns the offset of every record in a segment file and the offset and
// length of its payload.
func recordStarts(store string, b []byte) (starts, payload, plen []int) {
	if store == storeLookout {
		for off := 8; off+20 <= len(b); {
			n := int(uint32(b[off+4]) | uint32(b[off+5])<<8 | uint32(b[off+6])<<16 | uint32(b[off+7])<<24)
			starts, payload, plen = append(starts, off), append(payload, off+20), append(plen, n)
			off += 20 + n
		}
		return
	}
	for off := 0; off < len(b); {
		size, n := uvarint(b[off:])
		if n <= 0 {
			break
		}
		starts, payload, plen = append(starts, off), append(payload, off+n), append(plen, int(size))
		off += n + int(size)
	}
	return
}

func uvarint(b []byte) (uint64, int) {
	var x uint64
	var s uint
	for i, c := range b {
		if i == 10 {
			return 0, -1
		}
		if c < 0x80 {
			return x | uint64(c)<<s, i + 1
		}
		x |= uint64(c&0x7f) << s
		s += 7
	}
	return 0, 0
}

// flip damages the record at the middle of the second-oldest segment: one payload byte
// inverted, or the lowest bit of its length flipped.
func flip(store, dir string, length bool) error {
	segs, err := segments(store, dir)
	if err != nil {
		return err
	}
	if len(segs) < 3 {
		return fmt.Errorf("%d segments: want 3 or more (a larger -corrupt-size)", len(segs))
	}
	b, err := os.ReadFile(segs[1])
	if err != nil {
		return err
	}
	starts, payload, plen := recordStarts(store, b)
	i := len(starts) / 2
	if length {
		if store == storeLookout {
			b[starts[i]+4] ^= 1
		} else {
			b[starts[i]] ^= 1
		}
	} else {
		b[payload[i]+plen[i]/2] ^= 0xff
	}
	return os.WriteFile(segs[1], b, 0o600)
}

// tearTail cuts n bytes off the end of the last segment, as a crash in mid-write leaves it.
func tearTail(store, dir string, n int64) error {
	segs, err := segments(store, dir)
	if err != nil {
		return err
	}
	if len(segs) == 0 {
		return fmt.Errorf("no segment in %s", dir)
	}
	last := segs[len(segs)-1]
	fi, err := os.Stat(last)
	if err != nil {
		return err
	}
	return os.Truncate(last, fi.Size()-n)
}

func copyDir(from, to string) error {
	if err := os.MkdirAll(to, 0o700); err != nil {
		return err
	}
	ents, err := os.ReadDir(from)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if e.Name() == "lock" {
			continue
		}
		b, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(to, e.Name()), b, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// dropCache writes a queue's files to disk and drops their pages from the page cache,
// so the next open reads the disk (only these files: other users of the machine keep
// their cache).
func dropCache(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		f, err := os.Open(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		_ = f.Sync()
		err = unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
		f.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// child runs one measurement in a new process and decodes its output into out.
func child(a childArgs, out any) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	args := []string{"-child", a.kind, "-store", a.store, "-qdir", a.dir, "-lines", strconv.Itoa(a.lines),
		"-max", strconv.FormatInt(a.max, 10) + "B"}
	if a.size > 0 {
		args = append(args, "-size", strconv.FormatInt(a.size, 10)+"B")
	}
	if a.kill {
		args = append(args, "-kill")
	}
	if a.limit > 0 {
		args = append(args, "-limit", a.limit.String())
	}
	if a.total > 0 {
		args = append(args, "-total", strconv.FormatUint(a.total, 10))
	}
	cmd := exec.Command(exe, args...)
	var stdout bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, os.Stderr
	err = cmd.Run()
	if a.kill {
		// Killed by itself with SIGKILL after writing its figures: expected.
		if ee, ok := err.(*exec.ExitError); ok && ee.Sys().(syscall.WaitStatus).Signal() == syscall.SIGKILL {
			err = nil
		} else if err == nil {
			return fmt.Errorf("fill %s: exited instead of being killed", a.store)
		}
	}
	if err != nil {
		return fmt.Errorf("child %s %s: %w", a.kind, a.store, err)
	}
	if err := json.NewDecoder(io.Reader(&stdout)).Decode(out); err != nil {
		return fmt.Errorf("child %s %s: output: %w", a.kind, a.store, err)
	}
	return nil
}

// --- formatting ------------------------------------------------------------------------

func quantile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(int(q*float64(len(s))), len(s)-1)]
}

func storeName(s string) string {
	if s == storeLookout {
		return "Lookout diskqueue"
	}
	return "tidwall/wal"
}

func linesName(n int) string {
	if n == 1 {
		return "1 line"
	}
	return fmt.Sprintf("%d lines", n)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/1e6) }

func secs(s float64) string {
	if s < 1 {
		return fmt.Sprintf("%.1f ms", s*1e3)
	}
	return fmt.Sprintf("%.2f s", s)
}

func mib(b uint64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

func human(b int64) string {
	switch {
	case b >= 1<<30 && b%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", b>>30)
	case b >= 1<<20:
		return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(b)/(1<<10))
	}
	return fmt.Sprintf("%d B", b)
}

func thousands(f float64) string {
	s := strconv.FormatInt(int64(f+0.5), 10)
	var out []byte
	for i := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	return string(out)
}

func goVersion() string { return runtime.Version() }

// diskOf names the filesystem and device a directory is on.
func diskOf(dir string) string {
	out, err := exec.Command("df", "-h", "--output=source,fstype,size", dir).Output()
	if err != nil {
		return "disk unknown"
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return strings.Join(strings.Fields(lines[len(lines)-1]), " ")
}
