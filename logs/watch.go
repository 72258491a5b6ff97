package logs

import (
	"errors"
	"os"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Wake-ups of the file source. One inotify instance serves the agent: a watch on each
// followed container's directory wakes its reader when its log file is written, created
// or renamed. A reader also polls (pollInotify; pollNoInotify where inotify is not
// available), in case an event was missed, so an idle container costs one stat every
// few seconds.
const (
	pollInotify   = 5 * time.Second
	pollNoInotify = 250 * time.Millisecond
	// gather is how long the watcher collects events before it wakes readers: a flood
	// writes thousands of times a second, its reader wakes at most every gather.
	gather = 5 * time.Millisecond
)

// watcher wakes the readers of directories when something in them changes.
type watcher struct {
	f  *os.File // the inotify instance, nil without inotify
	fd int      // its descriptor (not f.Fd(), which would make it blocking)

	mu     sync.Mutex
	closed bool
	wds    map[int32]*watch
	dirs   map[string]*watch
}

type watch struct {
	wd   int32
	dir  string
	subs map[chan struct{}]bool
}

// newWatcher starts the agent's inotify instance; without inotify (err), readers poll.
func newWatcher() (*watcher, error) {
	w := &watcher{wds: map[int32]*watch{}, dirs: map[string]*watch{}}
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return w, err
	}
	w.fd = fd
	w.f = os.NewFile(uintptr(fd), "inotify") // non-blocking: read through the runtime's poller
	go w.run()
	return w, nil
}

// poll is how often a reader looks for changes on its own.
func (w *watcher) poll() time.Duration {
	if w == nil || w.f == nil {
		return pollNoInotify
	}
	return pollInotify
}

// close stops the watcher.
func (w *watcher) close() {
	if w != nil && w.f != nil {
		w.mu.Lock()
		w.closed = true
		w.mu.Unlock()
		w.f.Close()
	}
}

// subscribe returns a channel that receives (without blocking the watcher: it holds one
// wake-up) when something in dir changes, and the function that ends the subscription.
// Without inotify, or when dir cannot be watched, the channel never receives.
func (w *watcher) subscribe(dir string) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	if w == nil || w.f == nil {
		return ch, func() {}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return ch, func() {}
	}
	wt := w.dirs[dir]
	if wt == nil {
		wd, err := unix.InotifyAddWatch(w.fd, dir, unix.IN_MODIFY|unix.IN_CREATE|unix.IN_MOVED_FROM|
			unix.IN_MOVED_TO|unix.IN_DELETE|unix.IN_DELETE_SELF|unix.IN_CLOSE_WRITE)
		if err != nil {
			return ch, func() {}
		}
		if wt = w.wds[int32(wd)]; wt == nil { // the same directory under another name
			wt = &watch{wd: int32(wd), dir: dir, subs: map[chan struct{}]bool{}}
			w.wds[wt.wd] = wt
		}
		w.dirs[dir] = wt
	}
	wt.subs[ch] = true
	return ch, func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		delete(wt.subs, ch)
		if len(wt.subs) == 0 && w.wds[wt.wd] == wt && !w.closed {
			_, _ = unix.InotifyRmWatch(w.fd, uint32(wt.wd))
			delete(w.wds, wt.wd)
			for d, x := range w.dirs {
				if x == wt {
					delete(w.dirs, d)
				}
			}
		}
	}
}

// run reads events until the instance is closed, waking each directory's readers at most
// once per read.
func (w *watcher) run() {
	buf := make([]byte, 64<<10)
	woken := map[int32]bool{}
	for {
		n, err := w.f.Read(buf)
		if err != nil {
			if errors.Is(err, os.ErrClosed) {
				return
			}
			time.Sleep(gather) // an overflow or an interrupted read: readers also poll
			continue
		}
		clear(woken)
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			woken[ev.Wd] = true
			if ev.Mask&unix.IN_IGNORED != 0 {
				w.forget(ev.Wd)
			}
			off += unix.SizeofInotifyEvent + int(ev.Len)
		}
		w.mu.Lock()
		for wd := range woken {
			if wt := w.wds[wd]; wt != nil {
				for ch := range wt.subs {
					select {
					case ch <- struct{}{}:
					default:
					}
				}
			}
		}
		w.mu.Unlock()
		time.Sleep(gather) // let events gather: a flood wakes its reader every few ms, not per write
	}
}

// forget drops a watch the kernel removed (its directory was deleted); its subscribers
// are woken and keep polling.
func (w *watcher) forget(wd int32) {
	w.mu.Lock()
	defer w.mu.Unlock()
	wt := w.wds[wd]
	if wt == nil {
		return
	}
	for ch := range wt.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	delete(w.wds, wd)
	for d, x := range w.dirs {
		if x == wt {
			delete(w.dirs, d)
		}
	}
}
