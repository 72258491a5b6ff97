package resources

import (
	"io/fs"
	"sync"
	"sync/atomic"
	"syscall"
)

// readFile reads a small cgroup or /proc file whole, as os.ReadFile does but for about
// half the CPU: os.File registers every file it opens with the runtime's poller (cgroup
// files support poll, so each open and close is also an epoll_ctl) and stats it to size
// its buffer. Here it is open, read until the end, close. A reader reads some 15 files
// per container every interval, so this is most of its cost.
func readFile(path string) ([]byte, error) {
	fd, err := openRead(path)
	if err != nil {
		return nil, err
	}
	defer syscall.Close(fd)
	return readAll(fd, path, false)
}

// openFiles keeps the cgroup files of each container open between reads: opening a
// cgroup file (a path walk in the kernel's cgroup file system) costs more than reading
// it, and a file read again from offset 0 (pread) shows its current content. The files
// of a container are closed when it is forgotten (it stopped, or a read failed). Only
// cgroup files are kept: a /proc/<pid>/net file would hold the container's network
// namespace alive.
type openFiles struct {
	mu   sync.Mutex
	byID map[string]*containerFiles
	open atomic.Int64 // files kept open
	max  int64        // keep no more (0: no limit); set before the first read
}

// keepLimit is how many files may be kept open: half the process's limit on open files,
// the other half for the agent's sockets (Docker, outputs, relay, probes) and its
// one-shot reads. Go raises the soft limit to the hard one at start.
func keepLimit() int64 {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur == 0 {
		return 512
	}
	return int64(min(rl.Cur/2, 1<<20))
}

type containerFiles struct {
	mu     sync.Mutex // held for a whole read, and to close
	fds    map[string]int
	closed bool
}

// read returns the content of path, a file of container id's cgroups.
func (o *openFiles) read(id, path string) ([]byte, error) {
	o.mu.Lock()
	if o.byID == nil {
		o.byID = map[string]*containerFiles{}
	}
	cf := o.byID[id]
	if cf == nil {
		cf = &containerFiles{fds: map[string]int{}}
		o.byID[id] = cf
	}
	o.mu.Unlock()

	cf.mu.Lock()
	defer cf.mu.Unlock()
	if cf.closed { // forgotten while this read waited: read without keeping
		return readFile(path)
	}
	if fd, ok := cf.fds[path]; ok {
		// A file of a removed cgroup reads as ENODEV (the container restarted: the same
		// path is a new cgroup), a removed file elsewhere has no links left: open again.
		var st syscall.Stat_t
		if syscall.Fstat(fd, &st) == nil && st.Nlink > 0 {
			if b, err := readAll(fd, path, true); err == nil {
				return b, nil
			}
		}
		_ = syscall.Close(fd)
		delete(cf.fds, path)
		o.open.Add(-1)
	}
	if o.max > 0 && o.open.Load() >= o.max {
		return readFile(path) // at the limit: read without keeping
	}
	fd, err := openRead(path)
	if err != nil {
		return nil, err
	}
	b, err := readAll(fd, path, true)
	if err != nil {
		_ = syscall.Close(fd)
		return nil, err
	}
	cf.fds[path] = fd
	o.open.Add(1)
	return b, nil
}

// close closes the files of the containers keep does not keep.
func (o *openFiles) close(keep func(id string) bool) {
	o.mu.Lock()
	var gone []*containerFiles
	for id, cf := range o.byID {
		if !keep(id) {
			gone = append(gone, cf)
			delete(o.byID, id)
		}
	}
	o.mu.Unlock()
	for _, cf := range gone {
		cf.mu.Lock()
		for _, fd := range cf.fds {
			_ = syscall.Close(fd)
		}
		o.open.Add(-int64(len(cf.fds)))
		cf.fds, cf.closed = nil, true
		cf.mu.Unlock()
	}
}

// count is the number of files kept open.
func (o *openFiles) count() int { return int(o.open.Load()) }

func openRead(path string) (int, error) {
	for {
		fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return -1, &fs.PathError{Op: "open", Path: path, Err: err}
		}
		return fd, nil
	}
}

// readAll reads fd to its end: from offset 0 with pread when positional (a file read
// before), from where it is otherwise.
func readAll(fd int, path string, positional bool) ([]byte, error) {
	buf := make([]byte, 0, 512)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		var n int
		var err error
		if positional {
			n, err = syscall.Pread(fd, buf[len(buf):cap(buf)], int64(len(buf)))
		} else {
			n, err = syscall.Read(fd, buf[len(buf):cap(buf)])
		}
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return nil, &fs.PathError{Op: "read", Path: path, Err: err}
		}
		if n == 0 {
			return buf, nil
		}
		buf = buf[:len(buf)+n]
	}
}
