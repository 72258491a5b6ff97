package testpeer

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// CPUTicks is utime+stime of a process in clock ticks (1/100 s), from /proc/<pid>/stat.
func CPUTicks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return u + st, nil
}

// RSSKiB is a process's resident set size in KiB (VmRSS), 0 if it is gone.
func RSSKiB(pid int) int64 { return statusKiB(pid, "VmRSS:") }

// PeakRSSKiB is the most a process has had resident so far in KiB (VmHWM), 0 if it is gone.
func PeakRSSKiB(pid int) int64 { return statusKiB(pid, "VmHWM:") }

// statusKiB reads one KiB field of /proc/<pid>/status.
func statusKiB(pid int, field string) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field); ok {
			n, _ := strconv.ParseInt(strings.Fields(v)[0], 10, 64)
			return n
		}
	}
	return 0
}
