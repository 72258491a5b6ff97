package logs

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Position is how far into a container's log Fluentd has acknowledged, as Docker's logs
// API can resume it: read with since=TimeNS (inclusive, nanoseconds) and skip the first N
// messages. TimeNS is the newest timestamp read; N counts the messages read with exactly
// that timestamp. Docker stamps every 16 KiB piece of a long line with the time of the
// first, so a later piece may carry an older time: Docker's `since` would filter it out,
// which is why a position never moves past a line still being joined (see assembler).
//
// The file source also keeps File: where in which json-file log file it stands. The time
// part links the two sources: a container switched from one to the other goes on from its
// place (the file source finds it by skipping as the API's since and N would).
type Position struct {
	TimeNS int64   `json:"time_ns"`
	N      int     `json:"n"`
	File   FilePos `json:"file,omitzero"`
}

// FilePos is a place in a json-file log file: the file by its identity (device, inode
// and a hash of its first line, since an inode number is reused once a file is deleted)
// and the bytes read of it (of its decompressed content for a .gz).
type FilePos struct {
	Dev    uint64 `json:"dev"`
	Ino    uint64 `json:"ino"`
	Head   uint64 `json:"head"` // FNV-1a 64 of the first line, its newline included
	Offset int64  `json:"offset"`
}

// sameFile says whether p and q are places in the same file.
func (p FilePos) sameFile(q FilePos) bool {
	return p.Ino != 0 && p.Dev == q.Dev && p.Ino == q.Ino && p.Head == q.Head
}

// before says whether p is earlier in the log than q: by offset within one file, else by
// time (a later piece of a long line may carry an older time, leaving the time part).
func (p Position) before(q Position) bool {
	if p.File.sameFile(q.File) {
		return p.File.Offset < q.File.Offset
	}
	return p.TimeNS < q.TimeNS || (p.TimeNS == q.TimeNS && p.N < q.N)
}

// advance returns the position after a message stamped ts. A message older than TimeNS
// (a later piece of a long line) leaves it: reading since TimeNS would not return it.
func (p Position) advance(ts int64) Position {
	switch {
	case ts == p.TimeNS:
		return Position{TimeNS: ts, N: p.N + 1, File: p.File}
	case ts > p.TimeNS:
		return Position{TimeNS: ts, N: 1, File: p.File}
	}
	return p
}

// since is the value of Docker's `since` for reading from p ("" for the beginning).
func (p Position) since() string {
	if p.TimeNS <= 0 {
		return ""
	}
	return fmt.Sprintf("%d.%09d", p.TimeNS/1e9, p.TimeNS%1e9)
}

// store keeps one position file per container in dir. A file is replaced atomically
// (write, then rename), so a crash leaves the old or the new position, never half of one.
type store struct{ dir string }

func newStore(dir string) (*store, error) {
	d := filepath.Join(dir, "logs")
	if err := os.MkdirAll(d, 0o755); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	f, err := os.CreateTemp(d, ".probe-*")
	if err != nil {
		return nil, fmt.Errorf("state directory %s is not writable: %w", d, err)
	}
	f.Close()
	os.Remove(f.Name())
	return &store{dir: d}, nil
}

func (s *store) path(id string) string {
	return filepath.Join(s.dir, strings.Map(func(r rune) rune {
		if r == '/' || r == '.' {
			return '_'
		}
		return r
	}, id)+".json")
}

// load returns the saved position of a container; ok is false when there is none. An
// error says a position file is there but cannot be read (say, left empty by a host
// crash between the write and the rename reaching the disk).
func (s *store) load(id string) (p Position, ok bool, err error) {
	b, err := os.ReadFile(s.path(id))
	if errors.Is(err, fs.ErrNotExist) {
		return Position{}, false, nil
	}
	if err == nil {
		err = json.Unmarshal(b, &p)
	}
	if err != nil {
		return Position{}, false, fmt.Errorf("position file %s: %w", s.path(id), err)
	}
	return p, true, nil
}

func (s *store) save(id string, p Position) error {
	b, _ := json.Marshal(p)
	tmp := s.path(id) + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, s.path(id))
}

func (s *store) remove(id string) { _ = os.Remove(s.path(id)) }

// ids returns the containers that have a position file.
func (s *store) ids() ([]string, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, e := range entries {
		if id, ok := strings.CutSuffix(e.Name(), ".json"); ok && e.Type().IsRegular() && !strings.HasPrefix(id, ".") {
			ids = append(ids, id)
		}
	}
	return ids, nil
}
