package logs

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lookout-agent/lookout/inventory"
)

// jsonLog writes a container's log as Docker's json-file driver does, in a containers
// directory of t.TempDir(), and rotates it as Docker does (moby loggerutils.rotate).
type jsonLog struct {
	t        *testing.T
	root, id string
	f        *os.File
	t0       time.Time
	n        int
	entries  []jsonEntry // everything written, in order
	maxFiles int
	compress bool
	mu       sync.Mutex
}

type jsonEntry struct {
	Log    string    `json:"log"`
	Stream string    `json:"stream"`
	Time   time.Time `json:"time"`
}

func newJSONLog(t *testing.T, maxFiles int, compress bool) *jsonLog {
	t.Helper()
	l := &jsonLog{t: t, root: t.TempDir(), id: "c0ffee", t0: time.Unix(1700000000, 0).UTC(), maxFiles: maxFiles, compress: compress}
	if err := os.MkdirAll(l.dir(), 0o755); err != nil {
		t.Fatal(err)
	}
	l.open()
	return l
}

func (l *jsonLog) dir() string  { return filepath.Join(l.root, l.id) }
func (l *jsonLog) path() string { return filepath.Join(l.dir(), l.id+"-json.log") }

func (l *jsonLog) open() {
	f, err := os.OpenFile(l.path(), os.O_WRONLY|os.O_CREATE|os.O_APPEND|os.O_TRUNC, 0o640)
	if err != nil {
		l.t.Fatal(err)
	}
	l.f = f
}

// write appends an entry stamped one microsecond after the last (text with its newline,
// or a piece without).
func (l *jsonLog) write(stream, text string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.n++
	e := jsonEntry{Log: text, Stream: stream, Time: l.t0.Add(time.Duration(l.n) * time.Microsecond)}
	l.writeEntry(e)
}

func (l *jsonLog) writeEntry(e jsonEntry) {
	b, _ := json.Marshal(e)
	if _, err := l.f.Write(append(b, '\n')); err != nil {
		l.t.Fatal(err)
	}
	l.entries = append(l.entries, e)
}

// lines writes numbered lines from..to (inclusive) on stdout.
func (l *jsonLog) lines(from, to int) {
	for i := from; i <= to; i++ {
		l.write("stdout", fmt.Sprintf("line %d\n", i))
	}
}

// rotate does what Docker does at max-size: the oldest goes, the others move up, the
// live file becomes .1 (compressed to .1.gz, then removed, with compress) and a new
// live file starts.
func (l *jsonLog) rotate() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.f.Close()
	ext := ""
	if l.compress {
		ext = ".gz"
	}
	name := l.path()
	_ = os.Remove(fmt.Sprintf("%s.%d%s", name, l.maxFiles-1, ext))
	for i := l.maxFiles - 1; i > 1; i-- {
		_ = os.Rename(fmt.Sprintf("%s.%d%s", name, i-1, ext), fmt.Sprintf("%s.%d%s", name, i, ext))
	}
	if err := os.Rename(name, name+".1"); err != nil {
		l.t.Fatal(err)
	}
	l.open()
	if l.compress {
		b, err := os.ReadFile(name + ".1")
		if err != nil {
			l.t.Fatal(err)
		}
		var z bytes.Buffer
		zw := gzip.NewWriter(&z)
		zw.Write(b)
		zw.Close()
		if err := os.WriteFile(name+".1.gz", z.Bytes(), 0o640); err != nil {
			l.t.Fatal(err)
		}
		os.Remove(name + ".1")
	}
}

// reading runs a file reader from pos and collects what it passes on.
type reading struct {
	fr       *fileReader
	stopping chan struct{}
	cancel   context.CancelFunc
	done     chan error
	mu       sync.Mutex
	msgs     []message
	lost     int
	bad      int
}

func startReading(t *testing.T, l *jsonLog, w *watcher, pos Position) *reading {
	t.Helper()
	return startReadingHooked(t, l, w, pos, nil)
}

// startReadingHooked is startReading with hook applied to the reader before it starts
// (nil: none).
func startReadingHooked(t *testing.T, l *jsonLog, w *watcher, pos Position, hook func(*fileReader)) *reading {
	t.Helper()
	r := &reading{stopping: make(chan struct{}), done: make(chan error, 1)}
	r.fr = newFileReader(l.root, l.id, false, w, r.stopping)
	r.fr.lost = func(string) { r.mu.Lock(); r.lost++; r.mu.Unlock() }
	r.fr.bad = func() { r.mu.Lock(); r.bad++; r.mu.Unlock() }
	if hook != nil {
		hook(r.fr)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	msgs := make(chan []message)
	go func() {
		for ms := range msgs {
			r.mu.Lock()
			for _, m := range ms {
				m.line = bytes.Clone(m.line)
				r.msgs = append(r.msgs, m)
			}
			r.mu.Unlock()
		}
	}()
	go func() { err := r.fr.read(ctx, pos, msgs); close(msgs); r.done <- err }()
	t.Cleanup(func() { cancel(); <-r.done })
	return r
}

// waitLines waits until n messages arrived and returns their texts.
func (r *reading) waitLines(t *testing.T, n int) []string {
	t.Helper()
	var out []string
	waitFor(t, fmt.Sprintf("%d messages", n), func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		out = out[:0]
		for _, m := range r.msgs {
			out = append(out, string(m.line))
		}
		return len(r.msgs) >= n
	})
	return out
}

func (r *reading) at(i int) message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.msgs[i]
}

func (r *reading) counts() (lost, bad int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lost, r.bad
}

// stop ends the read (the container stopped) and waits for io.EOF.
func (r *reading) stop(t *testing.T) {
	t.Helper()
	close(r.stopping)
	select {
	case err := <-r.done:
		r.done <- err
		if err != io.EOF {
			t.Fatalf("read ended with %v, want io.EOF", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("read did not end after the container stopped")
	}
}

// numbered checks that texts are "line from".."line to", each once, in order.
func numbered(t *testing.T, texts []string, from, to int) {
	t.Helper()
	if len(texts) != to-from+1 {
		t.Fatalf("%d lines, want %d (%d..%d); first %q last %q", len(texts), to-from+1, from, to, texts[0], texts[len(texts)-1])
	}
	for i, s := range texts {
		if want := fmt.Sprintf("line %d", from+i); s != want {
			t.Fatalf("line %d is %q, want %q", i, s, want)
		}
	}
}

func testWatcher(t *testing.T) *watcher {
	w, err := newWatcher()
	if err != nil {
		t.Logf("no inotify: polling (%v)", err)
	}
	t.Cleanup(w.close)
	return w
}

func TestParseJSONLine(t *testing.T) {
	ts := "2026-11-27T03:20:54.123456789Z"
	want := time.Date(2026, 11, 27, 3, 20, 54, 123456789, time.UTC)
	for _, c := range []struct{ line, stream, log string }{
		{`{"log":"hello\n","stream":"stdout","time":"` + ts + `"}`, "stdout", "hello\n"},
		{`{"log":"piece","stream":"stderr","time":"` + ts + `"}`, "stderr", "piece"},
		{`{"log":"tab\there \"q\" \\ \u003chtml\u003e \u0026\r\n","stream":"stdout","time":"` + ts + `"}`, "stdout", "tab\there \"q\" \\ <html> &\r\n"},
		{`{"log":"grüße 日本 \ud83d\ude00 \ufffd\n","stream":"stdout","time":"` + ts + `"}`, "stdout", "grüße 日本 😀 \ufffd\n"},
		{`{"log":"raw grüße\n","stream":"stdout","time":"` + ts + `"}`, "stdout", "raw grüße\n"},
		{`{"log":"lone \ud83d!\n","stream":"stdout","time":"` + ts + `"}`, "stdout", "lone \ufffd!\n"},
		{`{"log":"with attrs\n","stream":"stdout","time":"` + ts + `","attrs":{"a":"b"}}`, "stdout", "with attrs\n"},
		{`{"stream":"stdout","time":"` + ts + `","log":"other order\n"}`, "stdout", "other order\n"},
		{`{"log":"","stream":"stdout","time":"` + ts + `"}`, "stdout", ""},
	} {
		out, stream, got, err := parseJSONLine([]byte(c.line), []byte("kept"))
		if err != nil || stream != c.stream || !got.Equal(want) || string(out) != "kept"+c.log {
			t.Errorf("%s: %q %q %v %v; want %q %q", c.line, out, stream, got, err, c.stream, c.log)
		}
	}
	for _, bad := range []string{``, `not json`, `{"log":"x\n","stream":"stdout"}`, `{"log":"x\n","stream":"stdin","time":"` + ts + `"}`,
		`{"log":"x\n","stream":"stdout","time":"yesterday"}`, `{"stream":"stdout","time":"` + ts + `"}`,
		`{"log":"unterminated`, `{"log":"x\n","stream":"stdout","time":"` + ts + `"} trailing`} {
		if out, _, _, err := parseJSONLine([]byte(bad), []byte("kept")); err == nil || string(out) != "kept" {
			t.Errorf("%q: %q %v, want errBadLine and dst unchanged", bad, out, err)
		}
	}
}

// TestFileFollowAcrossRotation: a reader following the live file through rotations
// (max-file=3) gets every line once, in order, each with its Docker time and stream.
func TestFileFollowAcrossRotation(t *testing.T) {
	l := newJSONLog(t, 3, false)
	l.lines(1, 100)
	r := startReading(t, l, testWatcher(t), Position{})
	r.waitLines(t, 100)
	for k := 0; k < 5; k++ {
		l.lines(101+k*200, 200+k*200)
		l.rotate()
		l.lines(201+k*200, 300+k*200)
		r.waitLines(t, 300+k*200) // read before the next rotation deletes it
	}
	numbered(t, r.waitLines(t, 1100), 1, 1100)
	if m := r.at(0); m.stream != "stdout" || !m.ts.Equal(l.entries[0].Time) || m.partial {
		t.Errorf("first message %+v", m)
	}
	r.stop(t)
	if lost, bad := r.counts(); lost != 0 || bad != 0 {
		t.Errorf("lost %d, bad %d; want 0", lost, bad)
	}
}

// TestFileResumeFromPosition: a reader started at the position after a message goes on
// with the next, in the live file, in a rotated one and in a compressed one.
func TestFileResumeFromPosition(t *testing.T) {
	for _, compress := range []bool{false, true} {
		t.Run(fmt.Sprintf("compress=%v", compress), func(t *testing.T) {
			l := newJSONLog(t, 5, compress)
			l.lines(1, 50)
			r := startReading(t, l, testWatcher(t), Position{})
			r.waitLines(t, 50)
			pos := r.at(29).after // after line 30
			r.stop(t)

			r2 := startReading(t, l, testWatcher(t), pos)
			numbered(t, r2.waitLines(t, 20), 31, 50)
			r2.stop(t)

			l.rotate() // the position's file is now .1 (or .1.gz)
			l.lines(51, 60)
			l.rotate()
			l.lines(61, 70)
			r3 := startReading(t, l, testWatcher(t), pos)
			numbered(t, r3.waitLines(t, 40), 31, 70)
			r3.stop(t)
			if lost, _ := r3.counts(); lost != 0 {
				t.Errorf("lost %d", lost)
			}
			// The time part alone (the API's position) finds the same place.
			r4 := startReading(t, l, testWatcher(t), Position{TimeNS: pos.TimeNS, N: pos.N})
			numbered(t, r4.waitLines(t, 40), 31, 70)
			r4.stop(t)
		})
	}
}

// TestFileEndOfRotatedFile: a position at the very end of a file that was rotated since
// goes on with the first line of the next file.
func TestFileEndOfRotatedFile(t *testing.T) {
	l := newJSONLog(t, 3, false)
	l.lines(1, 10)
	r := startReading(t, l, testWatcher(t), Position{})
	r.waitLines(t, 10)
	pos := r.at(9).after
	r.stop(t)
	l.rotate()
	l.lines(11, 20)
	r2 := startReading(t, l, testWatcher(t), pos)
	numbered(t, r2.waitLines(t, 10), 11, 20)
	r2.stop(t)
}

// TestFileLostRotatedFileCounted: when Docker deleted the file of the saved position
// (and one after it) before it was read, the loss is counted, and reading goes on from
// the oldest file left, after the position's time.
func TestFileLostRotatedFileCounted(t *testing.T) {
	l := newJSONLog(t, 2, false)
	l.lines(1, 10)
	r := startReading(t, l, testWatcher(t), Position{})
	r.waitLines(t, 10)
	pos := r.at(4).after // after line 5
	r.stop(t)
	l.rotate()
	l.lines(11, 20)
	l.rotate() // lines 1..10 are gone
	l.lines(21, 30)
	r2 := startReading(t, l, testWatcher(t), pos)
	numbered(t, r2.waitLines(t, 20), 11, 30)
	r2.stop(t)
	if lost, _ := r2.counts(); lost != 1 {
		t.Errorf("rotated_lost %d, want 1", lost)
	}
}

// TestFileBadLinesCounted: lines that are no json-file entry, and a line too long to be
// one, are counted and skipped; the pieces of a long line come as partial messages.
func TestFileBadLinesCounted(t *testing.T) {
	l := newJSONLog(t, 3, false)
	l.lines(1, 2)
	l.f.WriteString("garbage\n{\"log\":\"no time\\n\",\"stream\":\"stdout\"}\n")
	l.f.WriteString(strings.Repeat("x", maxLineSize+10) + "\n")
	piece := strings.Repeat("p", dockerPartialSize)
	l.write("stdout", piece)
	l.write("stdout", "end\n")
	l.lines(3, 3)
	r := startReading(t, l, testWatcher(t), Position{})
	got := r.waitLines(t, 5)
	if got[0] != "line 1" || got[1] != "line 2" || got[2] != piece || got[3] != "end" || got[4] != "line 3" {
		t.Errorf("messages %.20q", got)
	}
	if !r.at(2).partial || r.at(3).partial {
		t.Errorf("partial flags %v %v, want true false", r.at(2).partial, r.at(3).partial)
	}
	r.stop(t)
	if _, bad := r.counts(); bad != 3 {
		t.Errorf("bad %d, want 3", bad)
	}
}

// TestFileHeldAcrossDeletion: the container's directory is removed while its log is
// read: the reader, holding the file open, passes on the rest, then ends.
func TestFileHeldAcrossDeletion(t *testing.T) {
	l := newJSONLog(t, 3, false)
	l.lines(1, 10)
	r := startReading(t, l, testWatcher(t), Position{})
	r.waitLines(t, 10)
	l.lines(11, 20)
	l.f.Close()
	if err := os.RemoveAll(l.dir()); err != nil {
		t.Fatal(err)
	}
	numbered(t, r.waitLines(t, 20), 1, 20)
	r.stop(t)
}

// TestFileReusedInode: a saved position whose inode now holds another file (its first
// line differs) is not taken for it: the loss is counted and the time part decides.
func TestFileReusedInode(t *testing.T) {
	l := newJSONLog(t, 3, false)
	l.lines(1, 10)
	r := startReading(t, l, testWatcher(t), Position{})
	r.waitLines(t, 10)
	pos := r.at(4).after
	r.stop(t)
	pos.File.Head ^= 1 // the same device and inode, another first line
	r2 := startReading(t, l, testWatcher(t), pos)
	numbered(t, r2.waitLines(t, 5), 6, 10)
	r2.stop(t)
	if lost, _ := r2.counts(); lost != 1 {
		t.Errorf("rotated_lost %d, want 1", lost)
	}
}

// TestFileRotatedPastTheReader: while the reader is held up at the end of the live file,
// the file is rotated away entirely and the file after it too: the reader finishes the
// file it holds, counts the loss, and goes on with the oldest file left. The reader is
// held by its atEnd hook, not by a slow receiver: a reader slower than the rotations
// would have followed the file after it and lost nothing.
func TestFileRotatedPastTheReader(t *testing.T) {
	l := newJSONLog(t, 2, false)
	l.lines(1, 10)
	atEnd, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	r := startReadingHooked(t, l, testWatcher(t), Position{}, func(fr *fileReader) {
		fr.atEnd = func() {
			once.Do(func() { close(atEnd); <-release })
		}
	})
	<-atEnd // lines 1..10 read, the live file not looked at yet
	l.lines(11, 20)
	l.rotate()
	l.lines(21, 30) // lost: rotated to .1, then deleted
	l.rotate()
	l.lines(31, 40)
	l.rotate()
	l.lines(41, 50)
	close(release)
	got := r.waitLines(t, 40)
	numbered(t, got[:20], 1, 20)
	numbered(t, got[20:], 31, 50)
	r.stop(t)
	if lost, _ := r.counts(); lost != 1 {
		t.Errorf("rotated_lost %d, want 1", lost)
	}
}

func fdsOpen(path string) int {
	n := 0
	ents, _ := os.ReadDir("/proc/self/fd")
	for _, e := range ents {
		if p, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name())); err == nil && p == path {
			n++
		}
	}
	return n
}

// TestSwitchSourcesKeepsThePlace: a container read through the file source, then the
// API, then the file again (a forwarder restarted with another logs.source each time):
// each line reaches the real receiver once; the Docker time part of the position links
// the sources.
func TestSwitchSourcesKeepsThePlace(t *testing.T) {
	rcv := startReceiver(t)
	state := t.TempDir()
	l := newJSONLog(t, 3, false)
	api := &fakeLogs{}
	write := func(from, to int) {
		l.lines(from, to)
		for _, e := range l.entries[from-1 : to] {
			api.add(e.Time, strings.TrimSuffix(e.Log, "\n"))
		}
	}
	run := func(source string, want int) {
		t.Helper()
		mb := inventory.NewMailbox("logs", testLog(t))
		f, err := New(api, mb, Options{Address: rcv.Addr, StateDir: state, BatchSize: 3, Linger: 10 * time.Millisecond,
			FromStart: true, Source: source, ContainersDir: l.root, Log: testLog(t)})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); f.Run(ctx) }()
		c := appContainer(true)
		c.LogDriver = "json-file"
		mb.Put(inventory.Update{Container: c})
		waitFor(t, fmt.Sprintf("%d records", want), func() bool { recs, _ := rcv.Records(); return len(recs) >= want })
		waitFor(t, "the position saved", func() bool {
			p, _, _ := f.store.load("c0ffee")
			return p.TimeNS == l.entries[want-1].Time.UnixNano()
		})
		if got := map[string]uint64{SourceFile: f.total.linesFile.Load(), SourceAPI: f.total.linesAPI.Load()}[source]; got == 0 {
			t.Errorf("%s source: no lines counted for it", source)
		}
		cancel()
		<-done
	}
	write(1, 10)
	run(SourceFile, 10)
	write(11, 20)
	run(SourceAPI, 20)
	write(21, 30)
	l.rotate()
	write(31, 40)
	run(SourceFile, 40)
	recs, _ := rcv.Records()
	var texts []string
	for _, r := range recs {
		texts = append(texts, string(r.Log()))
	}
	numbered(t, texts, 1, 40)
}

// BenchmarkFileRead reads a json-file log of 100-byte lines through the file source.
func BenchmarkFileRead(b *testing.B) {
	dir := b.TempDir()
	id := "bench"
	if err := os.MkdirAll(filepath.Join(dir, id), 0o755); err != nil {
		b.Fatal(err)
	}
	var buf bytes.Buffer
	t0 := time.Unix(1700000000, 0).UTC()
	const lines = 100000
	for i := 0; i < lines; i++ {
		e, _ := json.Marshal(jsonEntry{Log: fmt.Sprintf("f %09d %s\n", i, strings.Repeat("x", 80)), Stream: "stdout", Time: t0.Add(time.Duration(i))})
		buf.Write(append(e, '\n'))
	}
	if err := os.WriteFile(filepath.Join(dir, id, id+"-json.log"), buf.Bytes(), 0o644); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(buf.Len()))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		stopping := make(chan struct{})
		close(stopping)
		fr := newFileReader(dir, id, false, nil, stopping)
		msgs := make(chan []message, 4)
		n := 0
		done := make(chan struct{})
		go func() {
			for ms := range msgs {
				n += len(ms)
			}
			close(done)
		}()
		if err := fr.read(context.Background(), Position{}, msgs); err != io.EOF {
			b.Fatal(err)
		}
		close(msgs)
		<-done
		if n != lines {
			b.Fatalf("%d messages, want %d", n, lines)
		}
	}
	b.ReportMetric(float64(lines*b.N)/b.Elapsed().Seconds(), "lines/s")
}

// TestFileAtMost16Open: catching up from 24 files (max-file=25), the reader holds at most
// 16 open at once and still reads every line once, in order.
func TestFileAtMost16Open(t *testing.T) {
	l := newJSONLog(t, 25, false)
	for k := 0; k < 24; k++ {
		l.lines(k*5+1, k*5+5)
		l.rotate()
	}
	l.lines(121, 125)
	r := startReading(t, l, testWatcher(t), Position{})
	numbered(t, r.waitLines(t, 125), 1, 125)
	r.stop(t) // the read ended: its fields are ours to read
	if r.fr.peakOpen != maxOpenFiles {
		t.Errorf("at most %d files held at once, want %d", r.fr.peakOpen, maxOpenFiles)
	}
}
