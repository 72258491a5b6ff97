package logs

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The file source reads a container's json-file log where Docker writes it:
// <containers dir>/<id>/<id>-json.log, rotated (log-opt max-size, max-file) to
// <id>-json.log.1, .2, … and, with compress=true, .1.gz, .2.gz, … Docker renames the
// file it wrote (closed first) and starts a new one; the reader keeps the renamed file
// open by its identity and finishes it before the new one. After the agent was away it
// finds the file holding its position among the rotated ones by identity (or, when it
// starts from a time, reads from the oldest and skips as the API's since would).

// maxOpenFiles is how many log files a reader holds open at once.
const maxOpenFiles = 16

// maxLineSize bounds one json-file line (a 16 KiB piece, escaped: at most six bytes per
// byte, plus the fields); a longer line is skipped and counted as dropped.
const maxLineSize = 1 << 20

// logFile is one open log file.
type logFile struct {
	f        *os.File
	r        io.Reader // f, or a gzip reader over it
	name     string    // the name it was opened by
	gz       bool
	id       FilePos // its identity; Offset: the bytes of it consumed (whole lines)
	buf      []byte  // read, not yet consumed: buf[start:]
	start    int
	rotate   bool // it is no longer the live file: what it holds is complete
	skipping bool // in a line too long to be an entry, skipped to its end
}

func (lf *logFile) close() { lf.f.Close() }

// fileReader reads one container's json-file log.
type fileReader struct {
	dir, base string // the container's directory and the live file's name in it
	tty       bool
	w         *watcher
	stopping  <-chan struct{} // closed when the container stopped or was removed: read to the end, then stop
	lost      func(why string)
	bad       func()
	// atEnd, when set, is called each time the reader is at the end of the live file,
	// before it looks for a rotation: a test holds the reader there while it rotates.
	atEnd    func()
	files    []*logFile // oldest first; files[0] is being read
	peakOpen int        // the most files held at once (tests)
	tp       Position   // the time part after the last message
	skip     skipState
	slab     []byte
}

// skipState skips what a position given by time says was read: messages older than
// since, and the first n stamped since (as Docker's since and the skip of readStream,
// except that a later message ends the skip: the messages stamped since may be gone).
type skipState struct {
	on    bool
	since int64
	n     int
}

func newFileReader(containersDir, id string, tty bool, w *watcher, stopping <-chan struct{}) *fileReader {
	return &fileReader{dir: filepath.Join(containersDir, id), base: id + "-json.log", tty: tty, w: w, stopping: stopping,
		lost: func(string) {}, bad: func() {}}
}

// livePath is the file Docker writes.
func (fr *fileReader) livePath() string { return filepath.Join(fr.dir, fr.base) }

func (fr *fileReader) closeAll() {
	for _, lf := range fr.files {
		lf.close()
	}
	fr.files = nil
}

// candidate is a log file found in the container's directory.
type candidate struct {
	name     string
	index    int // 0 for the live file, n for .n and .n.gz
	gz       bool
	dev, ino uint64
}

// list returns the container's log files, newest first; of a rotated file present both
// compressed and not (Docker compresses .1 into .1.gz, then removes .1) the plain one.
func (fr *fileReader) list() ([]candidate, error) {
	ents, err := os.ReadDir(fr.dir)
	if err != nil {
		return nil, err
	}
	var out []candidate
	plain := map[int]bool{}
	for _, e := range ents {
		rest, ok := strings.CutPrefix(e.Name(), fr.base)
		if !ok {
			continue
		}
		c := candidate{name: e.Name()}
		if rest != "" {
			rest, c.gz = strings.CutSuffix(rest, ".gz")
			n, err := strconv.Atoi(strings.TrimPrefix(rest, "."))
			if err != nil || n <= 0 || !strings.HasPrefix(rest, ".") {
				continue
			}
			c.index = n
		}
		if !c.gz {
			plain[c.index] = true
		}
		out = append(out, c)
	}
	out = slices.DeleteFunc(out, func(c candidate) bool { return c.gz && plain[c.index] })
	slices.SortFunc(out, func(a, b candidate) int { return a.index - b.index })
	for i := range out {
		if st, err := os.Stat(filepath.Join(fr.dir, out[i].name)); err == nil {
			out[i].dev, out[i].ino = statID(st)
		}
	}
	return out, nil
}

func statID(st os.FileInfo) (dev, ino uint64) {
	if s, ok := st.Sys().(*syscall.Stat_t); ok {
		return uint64(s.Dev), s.Ino
	}
	return 0, 0
}

// open opens a candidate and reads its first line's hash; the file is the one listed
// (checked by its inode) or an error says it moved.
func (fr *fileReader) open(c candidate) (*logFile, error) {
	f, err := os.Open(filepath.Join(fr.dir, c.name))
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	lf := &logFile{f: f, r: f, name: c.name, gz: c.gz, rotate: c.index > 0}
	lf.id.Dev, lf.id.Ino = statID(st)
	if c.ino != 0 && lf.id.Ino != c.ino {
		f.Close()
		return nil, errMoved
	}
	if lf.id.Head, err = headHash(f, c.gz); err != nil {
		f.Close()
		return nil, err
	}
	if c.gz {
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			f.Close()
			return nil, err
		}
		zr, err := gzip.NewReader(f)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("%s: %w", c.name, err)
		}
		lf.r = zr
	}
	return lf, nil
}

var errMoved = errors.New("log file moved while opened")

// headHash is the FNV-1a hash of the file's first line, 0 while it has none complete.
func headHash(f *os.File, gz bool) (uint64, error) {
	var r io.Reader = io.NewSectionReader(f, 0, 1<<62)
	if gz {
		zr, err := gzip.NewReader(r)
		if err != nil {
			return 0, err
		}
		r = zr
	}
	br := bufio.NewReaderSize(r, 64<<10)
	var line []byte
	for len(line) < maxLineSize {
		b, err := br.ReadSlice('\n')
		line = append(line, b...)
		if err == nil {
			h := fnv.New64a()
			h.Write(line)
			return h.Sum64(), nil
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return 0, nil
			}
			return 0, err
		}
	}
	return 0, nil
}

// matches says whether the candidate is the file p is in: a plain file by device, inode
// and first line; a compressed one (a new inode) by its first line.
func (fr *fileReader) matches(c candidate, p FilePos) bool {
	if !c.gz && (c.dev != p.Dev || c.ino != p.Ino) {
		return false
	}
	f, err := os.Open(filepath.Join(fr.dir, c.name))
	if err != nil {
		return false
	}
	defer f.Close()
	h, err := headHash(f, c.gz)
	return err == nil && h == p.Head
}

// locate opens the files from pos on: the file pos is in, at its offset, and every newer
// one; without a file (or when it is gone), all files from the oldest, skipping by time.
func (fr *fileReader) locate(pos Position) error {
	for attempt := 0; ; attempt++ {
		err := fr.tryLocate(pos)
		if !errors.Is(err, errMoved) || attempt >= 10 {
			return err
		}
	}
}

func (fr *fileReader) tryLocate(pos Position) error {
	fr.closeAll()
	cs, err := fr.list()
	if err != nil {
		return err
	}
	from := len(cs) - 1 // the oldest
	fr.tp, fr.skip = Position{TimeNS: pos.TimeNS}, skipState{on: pos.TimeNS > 0 || pos.N > 0, since: pos.TimeNS, n: pos.N}
	if pos.File.Ino != 0 {
		found := -1
		for i, c := range cs {
			if fr.matches(c, pos.File) {
				found = i
				break
			}
		}
		if found >= 0 {
			from = found
			fr.tp, fr.skip = Position{TimeNS: pos.TimeNS, N: pos.N}, skipState{}
		} else {
			fr.lost("the file of the saved position is gone")
		}
	}
	if from < 0 {
		return nil // no file yet
	}
	for i := from; i >= 0 && len(fr.files) < maxOpenFiles; i-- {
		lf, err := fr.open(cs[i])
		if err != nil {
			fr.closeAll()
			if errors.Is(err, os.ErrNotExist) {
				return errMoved
			}
			return err
		}
		fr.files = append(fr.files, lf)
		fr.peakOpen = max(fr.peakOpen, len(fr.files))
	}
	if !fr.skip.on && pos.File.Offset > 0 {
		lf := fr.files[0]
		var err error
		if lf.gz {
			_, err = io.CopyN(io.Discard, lf.r, pos.File.Offset)
		} else {
			_, err = lf.f.Seek(pos.File.Offset, io.SeekStart)
		}
		if err != nil {
			return fmt.Errorf("%s: resuming at %d: %w", lf.name, pos.File.Offset, err)
		}
		lf.id.Offset = pos.File.Offset
	}
	return nil
}

// next opens the files newer than lf, which is complete; none yet says wait.
func (fr *fileReader) next(lf *logFile) ([]*logFile, error) {
	for attempt := 0; attempt < 10; attempt++ {
		cs, err := fr.list()
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil // the container was removed
		}
		if err != nil {
			return nil, err
		}
		found := -1
		for i, c := range cs {
			if (!c.gz && c.dev == lf.id.Dev && c.ino == lf.id.Ino) || (c.gz && fr.matches(c, lf.id)) {
				found = i
				break
			}
		}
		if found < 0 {
			// lf is gone; so may be rotated files after it, never read.
			found = len(cs)
			if len(cs) > 0 && cs[len(cs)-1].index > 0 {
				fr.lost("log files rotated away before they were read")
			}
		}
		var out []*logFile
		for i := found - 1; i >= 0 && len(out) < maxOpenFiles-1; i-- {
			nf, err := fr.open(cs[i])
			if err != nil {
				for _, o := range out {
					o.close()
				}
				out = nil
				if errors.Is(err, errMoved) || errors.Is(err, os.ErrNotExist) {
					break
				}
				return nil, err
			}
			out = append(out, nf)
		}
		if out != nil || found == 0 {
			return out, nil
		}
	}
	return nil, nil
}

// read reads the log from pos, passing messages on in groups, until ctx is done or the
// container stopped and its log is read to the end (io.EOF).
func (fr *fileReader) read(ctx context.Context, pos Position, msgs chan<- []message) error {
	wake, unsub := fr.w.subscribe(fr.dir)
	defer unsub()
	defer fr.closeAll()
	if err := fr.locate(pos); err != nil {
		return err
	}
	poll := time.NewTimer(fr.w.poll())
	defer poll.Stop()
	var group []message
	send := func() error {
		if len(group) == 0 {
			return nil
		}
		select {
		case msgs <- group:
			group = nil
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	final := false // the container stopped: what is left is read, then the read ends
	wait := func() error {
		if err := send(); err != nil {
			return err
		}
		if final {
			return io.EOF
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-wake:
		case <-poll.C:
		case <-fr.stopping:
			final = true
		}
		poll.Reset(fr.w.poll())
		return nil
	}
	for {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if len(fr.files) == 0 {
			if err := wait(); err != nil {
				return err
			}
			if err := fr.locate(fr.tp); err != nil {
				return err
			}
			continue
		}
		lf := fr.files[0]
		n, err := fr.fill(lf)
		if err != nil {
			return fmt.Errorf("%s: %w", lf.name, err)
		}
		if err := fr.parse(lf, &group, send); err != nil {
			return err
		}
		if n > 0 {
			continue
		}
		// At the end of lf.
		if len(fr.files) > 1 {
			lf.close()
			fr.files = fr.files[1:]
			continue
		}
		if !lf.rotate {
			if fr.atEnd != nil {
				fr.atEnd()
			}
			st, err := os.Stat(fr.livePath())
			if err == nil {
				if dev, ino := statID(st); dev == lf.id.Dev && ino == lf.id.Ino {
					if st.Size() < lf.id.Offset { // truncated in place (max-file=1)
						fr.restart(lf)
						continue
					}
					if err := wait(); err != nil {
						return err
					}
					continue
				}
			}
			// Renamed or deleted: what Docker wrote to it before is complete; one more
			// read to its end, then the files after it.
			lf.rotate = true
			continue
		}
		newer, err := fr.next(lf)
		if err != nil {
			return err
		}
		if len(newer) == 0 {
			if err := wait(); err != nil {
				return err
			}
			continue
		}
		lf.close()
		fr.files = newer
		fr.peakOpen = max(fr.peakOpen, len(fr.files))
	}
}

// restart reads a file truncated in place from its start.
func (fr *fileReader) restart(lf *logFile) {
	_, _ = lf.f.Seek(0, io.SeekStart)
	lf.id.Offset, lf.buf, lf.start = 0, lf.buf[:0], 0
	lf.id.Head, _ = headHash(lf.f, false)
}

// fill reads more of lf into its buffer; 0 at its end for now.
func (fr *fileReader) fill(lf *logFile) (int, error) {
	if lf.start > 0 && lf.start == len(lf.buf) {
		lf.buf, lf.start = lf.buf[:0], 0
	}
	if cap(lf.buf) == 0 {
		lf.buf = make([]byte, 0, 256<<10)
	}
	if len(lf.buf) == cap(lf.buf) {
		if lf.start > 0 { // move the unconsumed rest to the front
			lf.buf = lf.buf[:copy(lf.buf, lf.buf[lf.start:])]
			lf.start = 0
		} else {
			lf.buf = slices.Grow(lf.buf, len(lf.buf))
		}
	}
	n, err := lf.r.Read(lf.buf[len(lf.buf):cap(lf.buf)])
	lf.buf = lf.buf[:len(lf.buf)+n]
	if errors.Is(err, io.EOF) {
		err = nil
	}
	return n, err
}

// parse turns the complete lines of lf's buffer into messages.
func (fr *fileReader) parse(lf *logFile, group *[]message, send func() error) error {
	for {
		rest := lf.buf[lf.start:]
		nl := bytes.IndexByte(rest, '\n')
		if nl < 0 {
			if len(rest) > maxLineSize { // no entry is this long: skip to the next line
				fr.bad()
				lf.id.Offset += int64(len(rest))
				lf.start = len(lf.buf)
				lf.skipping = true
			}
			return nil
		}
		line := rest[:nl]
		lf.start += nl + 1
		before := lf.id
		lf.id.Offset += int64(nl + 1)
		if lf.skipping { // the end of an overlong line
			lf.skipping = false
			continue
		}
		if before.Offset == 0 && lf.id.Head == 0 {
			h := fnv.New64a()
			h.Write(rest[:nl+1])
			lf.id.Head = h.Sum64()
			before.Head = lf.id.Head
		}
		if cap(fr.slab)-len(fr.slab) < len(line) {
			fr.slab = make([]byte, 0, max(slabSize, len(line)))
		}
		at := len(fr.slab)
		var stream string
		var ts time.Time
		var err error
		fr.slab, stream, ts, err = parseJSONLine(line, fr.slab)
		if err != nil {
			fr.bad()
			continue
		}
		text := fr.slab[at:len(fr.slab):len(fr.slab)]
		ns := ts.UnixNano()
		if fr.skip.on {
			if ns < fr.skip.since {
				fr.slab = fr.slab[:at]
				continue
			}
			if ns == fr.skip.since && fr.skip.n > 0 {
				fr.skip.n--
				fr.tp = fr.tp.advance(ns)
				fr.slab = fr.slab[:at]
				continue
			}
			fr.skip.on = false
		}
		m := message{ts: ts, stream: stream, line: text}
		if l := len(text); l > 0 && text[l-1] == '\n' {
			m.line = text[:l-1]
			if fr.tty {
				m.line = bytes.TrimSuffix(m.line, []byte{'\r'})
			}
		} else {
			m.partial = true
		}
		m.before = fr.tp
		m.before.File = before
		fr.tp = fr.tp.advance(ns)
		m.after = fr.tp
		m.after.File = lf.id
		*group = append(*group, m)
		if len(*group) >= maxGroup {
			if err := send(); err != nil {
				return err
			}
		}
	}
}
