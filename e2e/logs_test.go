package e2e

import (
	"bytes"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lookout-agent/lookout/internal/testpeer"
)

const logImage = "lookout-logsvc:e2e"

var logImageOnce sync.Once
var logImageErr error

// startFluentd builds the log test image once and starts a forward-protocol receiver with
// the flags args.
func startFluentd(t *testing.T, args ...string) *testpeer.Fluentd {
	t.Helper()
	root, _ := filepath.Abs("..")
	logImageOnce.Do(func() { logImageErr = testpeer.BuildImage(root, "logsvc", logImage) })
	if logImageErr != nil {
		t.Fatal(logImageErr)
	}
	bin, err := testpeer.FluentdBin(root)
	if err != nil {
		t.Fatal(err)
	}
	f, err := testpeer.StartFluentd(bin, t.TempDir(), args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Stop)
	return f
}

// runLogContainer runs the log test image; opts go before the image, args after it.
func runLogContainer(t *testing.T, name string, opts []string, args ...string) string {
	t.Helper()
	a := append([]string{"run", "-d", "--name", name, "--label", "lookout-test.run=" + runID}, opts...)
	a = append(append(a, logImage), args...)
	id := docker(t, a...)
	t.Cleanup(func() { _, _ = exec.Command("docker", "rm", "-f", name).CombinedOutput() })
	return id
}

// recordsOf returns the records of container name (container_name is "/name").
func recordsOf(t *testing.T, f *testpeer.Fluentd, name string) []testpeer.Record {
	t.Helper()
	all, err := f.Records()
	if err != nil {
		t.Fatal(err)
	}
	var out []testpeer.Record
	for _, r := range all {
		if r.Str("container_name") == "/"+name {
			out = append(out, r)
		}
	}
	return out
}

// countLines counts each log line of recs.
func countLines(recs []testpeer.Record) map[string]int {
	m := map[string]int{}
	for _, r := range recs {
		m[string(r.Log())]++
	}
	return m
}

// lostAndRepeated fails the test for each of the lines "prefix 1" to "prefix n" missing
// from lines (countLines), and returns how many more times than once they arrived.
func lostAndRepeated(t *testing.T, lines map[string]int, prefix string, n int) (dups int) {
	t.Helper()
	for i := 1; i <= n; i++ {
		c := lines[fmt.Sprintf("%s %d", prefix, i)]
		if c == 0 {
			t.Errorf("line %d lost", i)
		}
		dups += max(c-1, 0)
	}
	return dups
}

func TestLogsDelivery(t *testing.T) {
	f := startFluentd(t)
	a := startAgent(t, "LOOKOUT_FLUENTD_ADDRESS="+f.Addr, "LOOKOUT_STATE_DIR="+t.TempDir(), "LOOKOUT_INTERVAL=1s")
	p := runID + "-logs"
	seqID := runLogContainer(t, p+"-seq", []string{"--label", "lookout.enable=true", "--label", "lookout.tags.team=pay",
		"--label", "lookout.logs.tag=app.{{.Name}}"}, "seq", "line", "300", "2ms")
	runLogContainer(t, p+"-mixed", []string{"--label", "lookout.enable=true"}, "mixed")
	runLogContainer(t, p+"-tty", []string{"-t", "--label", "lookout.enable=true"}, "seq", "tty", "50", "2ms")
	runLogContainer(t, p+"-off", nil, "seq", "off", "20", "1ms")
	runLogContainer(t, p+"-nologs", []string{"--label", "lookout.enable=true", "--label", "lookout.logs=false"}, "seq", "nologs", "20", "1ms")

	// A numbered sequence on stdout and stderr arrives exactly once, with its metadata.
	eventually(t, 90*time.Second, "300 numbered lines", func() bool { return len(recordsOf(t, f, p+"-seq")) >= 300 })
	recs := recordsOf(t, f, p+"-seq")
	lines := countLines(recs)
	for i := 1; i <= 300; i++ {
		if n := lines[fmt.Sprintf("line %d", i)]; n != 1 {
			t.Errorf("line %d arrived %d times, want once", i, n)
		}
	}
	if len(recs) != 300 {
		t.Errorf("%d records for 300 lines", len(recs))
	}
	var last int64
	for _, r := range recs {
		var i int
		fmt.Sscanf(string(r.Log()), "line %d", &i)
		wantSrc := "stdout"
		if i%3 == 0 {
			wantSrc = "stderr"
		}
		if r.Str("source") != wantSrc || r.Str("container_id") != seqID || r.Str("image") != logImage ||
			r.Str("team") != "pay" || r.Tag != "app."+p+"-seq" {
			t.Fatalf("record %+v: want source %s, container_id %s, image, team=pay, tag app.%s-seq", r, wantSrc, seqID, p)
		}
		if r.TimeNS%1e9 == 0 || r.TimeNS < last-int64(time.Second) {
			t.Errorf("record time %d: want sub-second event times in order", r.TimeNS)
		}
		last = r.TimeNS
	}

	// Lines Docker cut at 16 KiB are joined; invalid UTF-8 (which Docker's json-file
	// driver stores as U+FFFD) and an empty line arrive too.
	eventually(t, 60*time.Second, "the mixed lines", func() bool { return countLines(recordsOf(t, f, p+"-mixed"))["done"] == 1 })
	mixed := recordsOf(t, f, p+"-mixed")
	want := []string{"L64K " + strings.Repeat("a", 64*1024-5), "L1M " + strings.Repeat("b", 1024*1024-4),
		"bad \ufffd\ufffd utf8", "", "done"}
	if len(mixed) != len(want) {
		t.Fatalf("%d mixed records, want %d", len(mixed), len(want))
	}
	for i, w := range want {
		if got := mixed[i].Log(); !bytes.Equal(got, []byte(w)) {
			t.Errorf("mixed record %d: %d bytes %.40q…, want %d bytes %.40q…", i, len(got), got, len(w), w)
		}
	}

	// A TTY container: one stream, lines without the terminal's \r.
	eventually(t, 60*time.Second, "the TTY lines", func() bool { return len(recordsOf(t, f, p+"-tty")) >= 50 })
	tty := countLines(recordsOf(t, f, p+"-tty"))
	for i := 1; i <= 50; i++ {
		if n := tty[fmt.Sprintf("tty %d", i)]; n != 1 {
			t.Errorf("tty line %d arrived %d times, want once", i, n)
		}
	}

	// A container restarted: its second run's lines follow, nothing of the first run twice.
	docker(t, "restart", "-t", "1", p+"-tty")
	eventually(t, 60*time.Second, "the TTY lines of the second run", func() bool { return len(recordsOf(t, f, p+"-tty")) >= 100 })
	tty = countLines(recordsOf(t, f, p+"-tty"))
	for i := 1; i <= 50; i++ {
		if n := tty[fmt.Sprintf("tty %d", i)]; n != 2 {
			t.Errorf("tty line %d arrived %d times over two runs, want twice", i, n)
		}
	}

	// Containers that did not opt in send nothing (they wrote before everything above arrived).
	for _, n := range []string{p + "-off", p + "-nologs"} {
		if got := recordsOf(t, f, n); len(got) != 0 {
			t.Errorf("%s is not opted in (or says lookout.logs=false) but sent %d records", n, len(got))
		}
	}
	eventually(t, 30*time.Second, "the lookout_logs counters", func() bool {
		return strings.Contains(a.out(), "lookout_logs,") && strings.Contains(a.out(), "container_name="+p+"-seq") &&
			strings.Contains(a.out(), "lookout_logs_total,")
	})
}

// A container removed while the agent is down sends no event the agent will see: its
// log position file is swept once the agent has listed the engine's containers on its
// next start; a container still there keeps its own.
func TestLogsPositionOfAContainerRemovedWhileAway(t *testing.T) {
	f := startFluentd(t)
	state := t.TempDir()
	env := []string{"LOOKOUT_FLUENTD_ADDRESS=" + f.Addr, "LOOKOUT_STATE_DIR=" + state}
	a := startAgent(t, env...)
	gone, kept := runID+"-pos-gone", runID+"-pos-kept"
	goneID := strings.TrimSpace(runLogContainer(t, gone, []string{"--label", "lookout.enable=true"}, "seq", "g", "5", "10ms"))
	keptID := strings.TrimSpace(runLogContainer(t, kept, []string{"--label", "lookout.enable=true"}, "seq", "k", "5", "10ms"))
	positions := func() []string {
		m, _ := filepath.Glob(filepath.Join(state, "logs", "*.json"))
		for i := range m {
			m[i] = strings.TrimSuffix(filepath.Base(m[i]), ".json")
		}
		return m
	}
	eventually(t, 60*time.Second, "both containers' lines and positions", func() bool {
		p := positions()
		return len(recordsOf(t, f, gone)) == 5 && len(recordsOf(t, f, kept)) == 5 &&
			slices.Contains(p, goneID) && slices.Contains(p, keptID)
	})
	_ = a.cmd.Process.Kill()
	<-a.done
	docker(t, "rm", "-f", gone)
	a = startAgent(t, env...)
	eventually(t, 60*time.Second, "the removed container's position file swept", func() bool {
		return !slices.Contains(positions(), goneID)
	})
	if !slices.Contains(positions(), keptID) {
		t.Errorf("the position file of the container still there was removed: %v", positions())
	}
	eventually(t, 10*time.Second, "the sweep logged", func() bool {
		return strings.Contains(a.Logs(), `"files":1`) && strings.Contains(a.Logs(), "removed while the agent was away")
	})
	if n := len(recordsOf(t, f, kept)); n != 5 {
		t.Errorf("%d records of the container still there after the restart, want its 5 once", n)
	}
}

func TestLogsOutageAndAgentKill(t *testing.T) {
	const n, batch = 2500, 100
	f := startFluentd(t)
	state := t.TempDir()
	env := []string{"LOOKOUT_FLUENTD_ADDRESS=" + f.Addr, "LOOKOUT_STATE_DIR=" + state,
		fmt.Sprintf("LOOKOUT_FLUENTD_BATCH_SIZE=%d", batch), "LOOKOUT_FLUENTD_BUFFER_LIMIT=1000", "LOOKOUT_FLUENTD_TIMEOUT=2s"}
	a := startAgent(t, env...)
	name := runID + "-logs-outage"
	runLogContainer(t, name, []string{"--label", "lookout.enable=true"}, "seq", "o", fmt.Sprint(n), "10ms")
	got := func() int { return len(recordsOf(t, f, name)) }
	eventually(t, 60*time.Second, "the first lines", func() bool { return got() >= 100 })

	// The agent is killed mid-stream and started again with the same state directory.
	_ = a.cmd.Process.Kill()
	<-a.done
	killedAt := got()
	startAgent(t, env...)
	// (On a very slow machine the container may be near its end when the agent is killed.)
	eventually(t, 60*time.Second, "lines after the restart", func() bool { return got() > min(killedAt+200, n-1) })

	// The receiver goes away for 30 s while the container goes on logging.
	f.Stop()
	time.Sleep(30 * time.Second) // the outage itself, not a synchronisation
	// The agent never holds the container up: its 25 s sequence (longer on a busy
	// machine) ends with Fluentd away, every line in Docker's own log.
	lastLine := func() bool {
		own := docker(t, "logs", name)
		return strings.Contains(own, fmt.Sprintf("o %d\n", n)) || strings.HasSuffix(own, fmt.Sprintf("o %d", n))
	}
	eventually(t, 60*time.Second, fmt.Sprintf("the container's last line (o %d) in its own log with Fluentd away (the agent must not slow it)", n), lastLine)
	before := got()
	if err := f.Start(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 90*time.Second, "every line", func() bool { return countLines(recordsOf(t, f, name))[fmt.Sprintf("o %d", n)] >= 1 })
	dups := lostAndRepeated(t, countLines(recordsOf(t, f, name)), "o", n)
	t.Logf("%d lines: %d when the agent was killed, %d when the outage ended, %d duplicates", n, killedAt, before, dups)
	// Each interruption may repeat at most the one batch that was in flight.
	if dups > 2*batch {
		t.Errorf("%d duplicates: want at most the batch in flight at each of the two interruptions (%d)", dups, 2*batch)
	}
}
