package e2e

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lookout-agent/lookout/internal/testpeer"
)

// The file source's end-to-end tests: the agent runs as root on the host and reads
// /var/lib/docker/containers directly (the default: DockerRootDir/containers).

func jsonLogPath(id string) string {
	// As the engine under test has it (Docker 29's data root is another: scripts/engine29.sh).
	if out, err := exec.Command("docker", "inspect", "-f", "{{.LogPath}}", id).Output(); err == nil && len(bytes.TrimSpace(out)) > 0 {
		return string(bytes.TrimSpace(out))
	}
	return filepath.Join("/var/lib/docker/containers", id, id+"-json.log")
}

// received counts the records the receiver wrote so far (cheaper than Records).
func received(t *testing.T, f *testpeer.Fluentd) int {
	b, err := os.ReadFile(f.Out)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return bytes.Count(b, []byte{'\n'})
}

// exactlyOnce checks that recs hold "prefix i" for i = 1..n, each once.
func exactlyOnce(t *testing.T, recs []testpeer.Record, prefix string, n int) {
	t.Helper()
	seen := countLines(recs)
	lost, dup := 0, 0
	for i := 1; i <= n; i++ {
		switch c := seen[fmt.Sprintf("%s %d", prefix, i)]; {
		case c == 0:
			lost++
		case c > 1:
			dup += c - 1
		}
	}
	t.Logf("%d lines: %d records, %d lost, %d duplicates", n, len(recs), lost, dup)
	if lost > 0 || dup > 0 || len(recs) != n {
		t.Errorf("%d records for %d lines: %d lost, %d duplicates; want each once", len(recs), n, lost, dup)
	}
}

// lastTotal returns a field of the agent's last lookout_logs_total point, -1 if none.
func lastTotal(a *agent, field string) int64 {
	re := regexp.MustCompile(`(?m)^lookout_logs_total,[^ ]* .*\b` + field + `=(\d+)i`)
	m := re.FindAllStringSubmatch(a.out(), -1)
	if len(m) == 0 {
		return -1
	}
	v, _ := strconv.ParseInt(m[len(m)-1][1], 10, 64)
	return v
}

func inode(path string) uint64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Sys().(*syscall.Stat_t).Ino
}

// TestLogsFileRotationKill: a container logs 60,000 numbered lines with max-size=1m,
// max-file=3 (several rotations); the agent is killed (SIGKILL) just as a rotation happens
// and started again with its state: every line arrives exactly once.
func TestLogsFileRotationKill(t *testing.T) {
	const n = 60000
	f := startFluentd(t)
	state := t.TempDir()
	env := []string{"LOOKOUT_FLUENTD_ADDRESS=" + f.Addr, "LOOKOUT_STATE_DIR=" + state, "LOOKOUT_LOGS_SOURCE=file",
		"LOOKOUT_INTERVAL=1s", "LOOKOUT_LOG_LEVEL=info"}
	a := startAgent(t, env...)
	name := runID + "-logs-rot"
	id := runLogContainer(t, name, []string{"--label", "lookout.enable=true", "--log-opt", "max-size=1m", "--log-opt", "max-file=3"},
		"seq", "r", strconv.Itoa(n), "100us")
	live := jsonLogPath(id)
	// Two rotations, then the kill at the moment of the third.
	rotations, last := 0, inode(live)
	deadline := time.Now().Add(2 * time.Minute)
	for rotations < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("%d rotations of %s in 2 minutes", rotations, live)
		}
		if ino := inode(live); ino != 0 && ino != last {
			rotations, last = rotations+1, ino
			continue
		}
		time.Sleep(200 * time.Microsecond)
	}
	_ = a.cmd.Process.Kill()
	<-a.done
	killedAt := len(recordsOf(t, f, name))
	a = startAgent(t, env...)
	t.Logf("killed at the third rotation with %d lines delivered", killedAt)
	eventually(t, 3*time.Minute, fmt.Sprintf("%d lines", n), func() bool { return received(t, f) >= n })
	time.Sleep(2 * time.Second) // duplicates, if any, would arrive now (the lines are all here)
	exactlyOnce(t, recordsOf(t, f, name), "r", n)
	eventually(t, 30*time.Second, "the counters", func() bool { return lastTotal(a, "lines_file") > 0 })
	if lost := lastTotal(a, "rotated_lost"); lost != 0 {
		t.Errorf("rotated_lost %d, want 0", lost)
	}
}

// TestLogsFileCompressCatchUp: with compress=true, the agent is stopped, its position's
// file is rotated twice (compressed to .2.gz) while it is away, and the restarted agent
// catches up from the .gz: every line exactly once.
func TestLogsFileCompressCatchUp(t *testing.T) {
	const n = 8000
	f := startFluentd(t)
	state := t.TempDir()
	env := []string{"LOOKOUT_FLUENTD_ADDRESS=" + f.Addr, "LOOKOUT_STATE_DIR=" + state, "LOOKOUT_LOGS_SOURCE=file", "LOOKOUT_LOG_LEVEL=info"}
	a := startAgent(t, env...)
	name := runID + "-logs-gz"
	id := runLogContainer(t, name, []string{"--label", "lookout.enable=true", "--log-opt", "max-size=50k", "--log-opt", "max-file=10",
		"--log-opt", "compress=true"}, "seq", "z", strconv.Itoa(n), "1ms")
	eventually(t, time.Minute, "the first lines", func() bool { return received(t, f) >= 300 })
	a.stop(t)
	var pos struct {
		File struct {
			Head uint64 `json:"head"`
		} `json:"file"`
	}
	b, err := os.ReadFile(filepath.Join(state, "logs", id+".json"))
	if err == nil {
		err = json.Unmarshal(b, &pos)
	}
	if err != nil || pos.File.Head == 0 {
		t.Fatalf("saved position %s: %v", b, err)
	}
	// Wait until the position's file is .2.gz or older: rotated twice, compressed.
	var gz string
	eventually(t, time.Minute, "the position's file rotated twice and compressed", func() bool {
		for i := 2; i < 10; i++ {
			p := fmt.Sprintf("%s.%d.gz", jsonLogPath(id), i)
			if h, ok := gzHead(p); ok && h == pos.File.Head {
				gz = p
				return true
			}
		}
		return false
	})
	t.Logf("the saved position's file is now %s", filepath.Base(gz))
	startAgent(t, env...)
	eventually(t, 2*time.Minute, fmt.Sprintf("%d lines", n), func() bool { return received(t, f) >= n })
	time.Sleep(2 * time.Second)
	exactlyOnce(t, recordsOf(t, f, name), "z", n)
}

// gzHead is the FNV-1a hash of the first line of a gzip file.
func gzHead(path string) (uint64, bool) {
	fh, err := os.Open(path)
	if err != nil {
		return 0, false
	}
	defer fh.Close()
	zr, err := gzip.NewReader(fh)
	if err != nil {
		return 0, false
	}
	line, err := bufio.NewReader(zr).ReadBytes('\n')
	if err != nil {
		return 0, false
	}
	h := fnv.New64a()
	h.Write(line)
	return h.Sum64(), true
}

// TestLogsFileSameAsAPI: the same containers followed by one agent through the file
// source and by another through the API give identical records (time, stream, text,
// fields, order): numbered lines on stdout and stderr interleaved, lines over 16 KiB,
// invalid UTF-8, non-ASCII text, a TTY. A container with the local driver goes through
// the API in auto mode, counted as a fallback; `lookout check` shows both sources.
func TestLogsFileSameAsAPI(t *testing.T) {
	fFile, fAPI := startFluentd(t), startFluentd(t)
	aFile := startAgent(t, "LOOKOUT_FLUENTD_ADDRESS="+fFile.Addr, "LOOKOUT_LOGS_SOURCE=auto", "LOOKOUT_INTERVAL=1s", "LOOKOUT_LOG_LEVEL=info")
	startAgent(t, "LOOKOUT_FLUENTD_ADDRESS="+fAPI.Addr, "LOOKOUT_LOGS_SOURCE=api", "LOOKOUT_INTERVAL=1s", "LOOKOUT_LOG_LEVEL=info")
	p := runID + "-logs-same"
	on := []string{"--label", "lookout.enable=true"}
	want := map[string]int{p + "-seq": 600, p + "-mixed": 5, p + "-uni": 8, p + "-tty": 50, p + "-local": 90}
	runLogContainer(t, p+"-seq", on, "seq", "s", "600", "500us")
	runLogContainer(t, p+"-mixed", on, "mixed")
	runLogContainer(t, p+"-uni", on, "unicode")
	runLogContainer(t, p+"-tty", append([]string{"-t"}, on...), "seq", "tty", "50", "2ms")
	runLogContainer(t, p+"-local", append([]string{"--log-driver", "local"}, on...), "seq", "loc", "90", "2ms")
	for name, n := range want {
		for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			file, api := len(recordsOf(t, fFile, name)), len(recordsOf(t, fAPI, name))
			if file >= n && api >= n {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("timed out after 90s waiting for %d records of %s from both sources: %d from the file source, %d from the API", n, name, file, api)
			}
		}
	}
	time.Sleep(time.Second)
	for name, n := range want {
		file, api := recordsOf(t, fFile, name), recordsOf(t, fAPI, name)
		if len(file) != n || len(api) != n {
			t.Errorf("%s: %d records from the file source, %d from the API, want %d", name, len(file), len(api), n)
			continue
		}
		for i := range file {
			fr, ar := file[i], api[i]
			same := fr.Tag == ar.Tag && fr.TimeNS == ar.TimeNS && bytes.Equal(fr.Log(), ar.Log()) && len(fr.Fields) == len(ar.Fields)
			for k := range fr.Fields {
				same = same && fr.Str(k) == ar.Str(k)
			}
			if !same {
				t.Errorf("%s record %d: file %s %d %v %.60q, API %s %d %v %.60q", name, i, fr.Tag, fr.TimeNS, fr.Fields, fr.Log(),
					ar.Tag, ar.TimeNS, ar.Fields, ar.Log())
				break
			}
		}
	}
	uni := countLines(recordsOf(t, fFile, p+"-uni"))
	for _, l := range []string{"grüße aus Köln", "日本語のログ", "emoji 😀🚀", "<html> & \"quotes\" \\ back", "tab\there", "cr\rinside"} {
		if uni[l] != 1 {
			t.Errorf("%q arrived %d times through the file source, want once", l, uni[l])
		}
	}
	// Order per stream: the seq lines of each stream arrive in increasing order.
	lastOf := map[string]int{}
	for _, r := range recordsOf(t, fFile, p+"-seq") {
		var i int
		fmt.Sscanf(string(r.Log()), "s %d", &i)
		if s := r.Str("source"); i <= lastOf[s] {
			t.Errorf("%s line %d after line %d", s, i, lastOf[s])
		} else {
			lastOf[s] = i
		}
	}
	// The file agent read the json-file containers from their files and the local one
	// through the API (a fallback).
	eventually(t, 30*time.Second, "the file agent's counters", func() bool {
		return lastTotal(aFile, "lines_api") >= 90 && lastTotal(aFile, "lines_file") >= 600+5+8+50
	})
	if fb := lastTotal(aFile, "fallbacks"); fb < 1 {
		t.Errorf("fallbacks %d, want at least 1 (the local driver's container)", fb)
	}
	// lookout check names each container's source.
	check := exec.Command(agentBin, "check")
	check.Env = append([]string{"PATH=" + os.Getenv("PATH"), "LOOKOUT_FLUENTD_ADDRESS=" + fFile.Addr}, agentDockerEnv()...)
	out, _ := check.CombinedOutput() // exit 1 when some container on the machine has a label problem
	for name, src := range map[string]string{p + "-seq": "file", p + "-tty": "file", p + "-local": "api"} {
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `\s+\S+\s+yes\s+` + src + `\b`).Match(out) {
			t.Errorf("lookout check: %s not shown with LOGS %s:\n%s", name, src, out)
		}
	}
}

// TestLogsFileRemovedWhileRead: a container is removed while the agent, with Fluentd
// away, is still reading its log file: the agent, holding the file open, delivers the
// rest once Fluentd is back, then forgets the container (its position file goes).
func TestLogsFileRemovedWhileRead(t *testing.T) {
	const n = 5000
	f := startFluentd(t)
	state := t.TempDir()
	a := startAgent(t, "LOOKOUT_FLUENTD_ADDRESS="+f.Addr, "LOOKOUT_STATE_DIR="+state, "LOOKOUT_LOGS_SOURCE=file",
		"LOOKOUT_FLUENTD_BATCH_SIZE=100", "LOOKOUT_FLUENTD_BUFFER_LIMIT=1000", "LOOKOUT_FLUENTD_TIMEOUT=2s", "LOOKOUT_LOG_LEVEL=info")
	f.Stop()
	name := runID + "-logs-rm"
	id := runLogContainer(t, name, []string{"--label", "lookout.enable=true"}, "seq", "m", strconv.Itoa(n), "0s")
	// Every line, not the last few: stdout and stderr are copied into the log by two
	// goroutines, so under load the file can end with stderr lines that lagged behind
	// stdout's last.
	eventually(t, time.Minute, "every line of the container in its log", func() bool {
		return strings.Count(docker(t, "logs", name)+"\n", "\n") >= n
	})
	live := jsonLogPath(id)
	eventually(t, 30*time.Second, "the agent reading the log file", func() bool { return holds(a.cmd.Process.Pid, live) })
	docker(t, "rm", "-f", name)
	if _, err := os.Stat(filepath.Dir(live)); !os.IsNotExist(err) {
		t.Fatalf("the container's directory is still there: %v", err)
	}
	if err := f.Start(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Minute, fmt.Sprintf("%d lines", n), func() bool { return received(t, f) >= n })
	time.Sleep(time.Second)
	exactlyOnce(t, recordsOf(t, f, name), "m", n)
	eventually(t, 30*time.Second, "the position file gone", func() bool {
		_, err := os.Stat(filepath.Join(state, "logs", id+".json"))
		return os.IsNotExist(err)
	})
}

// holds says whether process pid has path open.
func holds(pid int, path string) bool {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if l, err := os.Readlink(filepath.Join(dir, e.Name())); err == nil && strings.TrimSuffix(l, " (deleted)") == path {
			return true
		}
	}
	return false
}
