package e2e

import (
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lookout-agent/lookout/internal/testpeer"
)

// lastCheck returns the newest lookout_check point of a container's check.
func lastCheck(t *testing.T, db, container, check string) testpeer.Row {
	rows := sharedInflx.query(t, db, fmt.Sprintf(
		`SELECT * FROM lookout_check WHERE container_name='%s' AND "check"='%s' ORDER BY time DESC LIMIT 1`, container, check))
	if len(rows) == 0 {
		return testpeer.Row{}
	}
	return rows[0]
}

func waitCheck(t *testing.T, db, container, check, result, reason string) testpeer.Row {
	t.Helper()
	var last testpeer.Row
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		last = lastCheck(t, db, container, check)
		if last.Str("result") == result && strings.Contains(last.Str("reason"), reason) {
			return last
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("check %s of %s: want result %s with reason containing %q; last point: %v", check, container, result, reason, last)
	return nil
}

func TestLabelProbesPassAndFailForTheRightReason(t *testing.T) {
	db := dbName(t)
	name := "lk-probe-" + runID
	startAgent(t, influxEnv(db)...)
	runContainer(t, name,
		"--label", "lookout.enable=true",
		"--label", "lookout.check.web=http://:8080/health",
		"--label", "lookout.check.web.interval=1s",
		"--label", "lookout.check.web.timeout=700ms",
		"--label", "lookout.check.web.body=^ok",
		"--label", "lookout.check.pong=tcp://:9000",
		"--label", "lookout.check.pong.interval=1s",
		"--label", "lookout.check.pong.send=PING",
		"--label", "lookout.check.pong.expect=PONG",
		"--label", "lookout.check.closed=tcp://:9999",
		"--label", "lookout.check.closed.interval=1s",
		"--label", "lookout.check.cli=exec:/testsvc exit 0",
		"--label", "lookout.check.cli.interval=1s",
		"--label", "lookout.check.cli3=exec:/testsvc exit 3",
		"--label", "lookout.check.cli3.interval=1s",
		"--label", "lookout.check.slow=exec:/testsvc sleep 30s",
		"--label", "lookout.check.slow.interval=2s",
		"--label", "lookout.check.slow.timeout=500ms",
		"--label", "lookout.check.far=http://192.0.2.10:80/",
		"--label", "lookout.check.far.interval=1s",
		"--label", "lookout.check.bad=http://:8080/health",
		"--label", "lookout.check.bad.interval=fast",
	)

	web := waitCheck(t, db, name, "web", "success", "")
	if web.Int("http_response_code") != 200 || web.Str("type") != "http" || web.Str("first_byte_time") == "" || web.Int("success") != 1 {
		t.Errorf("web success point: %v", web)
	}
	waitCheck(t, db, name, "pong", "success", "")
	waitCheck(t, db, name, "closed", "error", "refused")
	cli := waitCheck(t, db, name, "cli", "success", "")
	if cli.Int("exit_code") != 0 {
		t.Errorf("exec success exit code: %v", cli)
	}
	cli3 := waitCheck(t, db, name, "cli3", "failure", "exit code 3")
	if cli3.Int("exit_code") != 3 || !strings.Contains(cli3.Str("output"), "exiting with 3") {
		t.Errorf("exec failure point: %v", cli3)
	}
	waitCheck(t, db, name, "slow", "timeout", "killed pid")
	waitCheck(t, db, name, "far", "error", "not the container's own address")
	// A bad setting is reported and the check still runs with the default.
	waitCheck(t, db, name, "bad", "success", "")
	eventually(t, 20*time.Second, "the bad label reported as a metric", func() bool {
		rows := sharedInflx.query(t, db, fmt.Sprintf(
			`SELECT "value", reason FROM lookout_label_problem WHERE container_name='%s' AND "key"='lookout.check.bad.interval'`, name))
		return len(rows) > 0 && rows[0].Str("value") == "fast"
	})

	// Now make the HTTP endpoint misbehave, one way after another.
	for _, c := range []struct{ mode, result, reason string }{
		{"500", "failure", "status 500"},
		{"wrongbody", "failure", "body does not match"},
		{"hang", "timeout", "timeout after 700ms"},
		{"ok", "success", ""},
	} {
		docker(t, "exec", name, "/testsvc", "http", c.mode)
		waitCheck(t, db, name, "web", c.result, c.reason)
	}
	eventually(t, 10*time.Second, "check transitions as events", func() bool {
		rows := sharedInflx.query(t, db, fmt.Sprintf(
			`SELECT status FROM lookout_container_event WHERE action='check' AND "check"='web' AND container_name='%s'`, name))
		var seq []string
		for _, r := range rows {
			seq = append(seq, r.Str("status"))
		}
		return hasSubsequence(seq, "passing", "failing", "passing")
	})

	// A restarted container gets its checks back.
	docker(t, "restart", "-t", "1", name)
	restarted := time.Now()
	eventually(t, 30*time.Second, "checks after the restart", func() bool {
		r := lastCheck(t, db, name, "web")
		return r.Str("result") == "success" && r.Int("time") > restarted.UnixNano()
	})
}

func TestProbeAndCheckCommands(t *testing.T) {
	name := "lk-cli-" + runID
	runContainer(t, name,
		"--label", "lookout.enable=true",
		"--label", "lookout.check.web=http://:8080/health",
		"--label", "lookout.check.pong=tcp://:9000",
		"--label", "lookout.check.pong.send=PING",
		"--label", "lookout.check.pong.expect=PONG",
		"--label", "lookout.check.web.method=FETCH",
		"--label", "lookout.chekc.typo=1",
	)
	waitInspect(t, 20*time.Second, name, "{{.State.Health.Status}}", "healthy")
	out, err := agentCommand(nil, "probe", name).CombinedOutput()
	if err != nil {
		t.Fatalf("lookout probe on passing checks: %v\n%s", err, out)
	}
	for _, want := range []string{"CHECK", "web", "http", ":8080", "success", "HTTP 200", "pong", "tcp", "healthcheck", "docker",
		`label problem: label lookout.check.web.method="FETCH"`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("lookout probe output lacks %q:\n%s", want, out)
		}
	}
	t.Logf("lookout probe:\n%s", out)
	docker(t, "exec", name, "/testsvc", "http", "500")
	out, err = agentCommand(nil, "probe", name).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(string(out), "status 500 not in 200-399") {
		t.Errorf("lookout probe on a failing check: err %v, want exit 1 and the reason:\n%s", err, out)
	}
	t.Logf("lookout probe (failing):\n%s", out)

	out, err = agentCommand(nil, "check").CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Errorf("lookout check with bad labels: err %v, want exit 1", err)
	}
	for _, want := range []string{name, `lookout.chekc.typo="1": unknown key`, `lookout.check.web.method="FETCH"`,
		"docker engine: ok (Docker ", "supported: Docker 19.03 (API 1.40) to Docker 29 (API 1.56))"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("lookout check output lacks %q:\n%s", want, out)
		}
	}
	t.Logf("lookout check:\n%s", out)
}

// TestCheckCyclesLeaveNoGoroutineBehind pauses and unpauses a container with two checks
// 200 times: each pause stops its checks, each unpause starts them again. The agent's own
// goroutine count (lookout_agent, on its stdout output) must come back to where it was.
func TestCheckCyclesLeaveNoGoroutineBehind(t *testing.T) {
	name := "lk-cycles-" + runID
	a := startAgent(t, "LOOKOUT_INTERVAL=1s", "LOOKOUT_LOG_LEVEL=info")
	runContainer(t, name, "--label", "lookout.enable=true",
		"--label", "lookout.check.web=http://:8080/health", "--label", "lookout.check.web.interval=1s",
		"--label", "lookout.check.pong=tcp://:9000", "--label", "lookout.check.pong.interval=1s")
	goroutines := regexp.MustCompile(`(?m)^lookout_agent,.*[ ,]goroutines=(\d+)i`)
	heap := regexp.MustCompile(`(?m)^lookout_agent,.*[ ,]heap_alloc_bytes=(\d+)i`)
	checks := regexp.MustCompile(`(?m)^lookout_probes,.*[ ,]checks=(\d+)i`)
	last := func(re *regexp.Regexp, n int) []int {
		m := re.FindAllStringSubmatch(a.out(), -1)
		var out []int
		for i := max(0, len(m)-n); i < len(m); i++ {
			v, _ := strconv.Atoi(m[i][1])
			out = append(out, v)
		}
		return out
	}
	steady := func() int { // the smallest of three reports taken while both checks run
		var low int
		eventually(t, 30*time.Second, "three reports with both checks running", func() bool {
			c := last(checks, 3)
			g := last(goroutines, 3)
			if len(c) < 3 || len(g) < 3 || c[0] != 2 || c[1] != 2 || c[2] != 2 {
				return false
			}
			low = min(g[0], g[1], g[2])
			return true
		})
		return low
	}
	before := steady()
	heapBefore := last(heap, 1)
	for i := 0; i < 200; i++ {
		docker(t, "pause", name)
		docker(t, "unpause", name)
	}
	n := len(checks.FindAllString(a.out(), -1))
	eventually(t, 30*time.Second, "new reports after the cycles", func() bool {
		return len(checks.FindAllString(a.out(), -1)) >= n+3
	})
	after := steady()
	if after > before+3 {
		t.Errorf("goroutines: %d before 200 pause/unpause cycles, %d after", before, after)
	}
	heapAfter := last(heap, 1)
	t.Logf("agent goroutines: %d before, %d after 200 cycles; heap in use: %v bytes before, %v after", before, after, heapBefore, heapAfter)
}
