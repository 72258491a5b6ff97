// Package e2e runs the lookout binary against the real Docker Engine and a real InfluxDB
// that the tests start. `go test -short` skips it; `make test` runs it.
package e2e

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lookout-agent/lookout/internal/testpeer"
)

var (
	agentBin    string // the agent built with -race, or LOOKOUT_E2E_AGENT
	staticBin   string // the agent built static, for images
	testImage   = "lookout-testsvc:e2e"
	runID       = fmt.Sprintf("lk%d", time.Now().UnixNano()%1e6)
	sharedInflx *influx
	// sharedProxy is the read-only socket proxy (deploy/socket-proxy/haproxy.cfg, exec let
	// through) every agent of the run talks to when LOOKOUT_E2E_SOCKET_PROXY=1 (`make
	// test` sets it for the pass on the system's engine); nil otherwise.
	sharedProxy *testpeer.SocketProxy
)

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() || os.Getenv("LOOKOUT_E2E") == "off" {
		fmt.Println("e2e: skipped (-short)")
		os.Exit(0)
	}
	dir, err := os.MkdirTemp("", "lookout-e2e-")
	if err == nil {
		err = setup(dir)
	}
	code := 1
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e setup:", err)
	} else {
		code = m.Run()
	}
	cleanupContainers()
	if sharedProxy != nil {
		sharedProxy.Stop()
		if err := proxyRefusedNothing(sharedProxy); err != nil {
			fmt.Fprintln(os.Stderr, "e2e:", err)
			code = 1
		}
	}
	if sharedInflx != nil && sharedInflx.Influx != nil {
		sharedInflx.Stop()
	}
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

func setup(dir string) error {
	root, _ := filepath.Abs("..")
	staticBin = filepath.Join(dir, "lookout")
	if bin := os.Getenv("LOOKOUT_E2E_AGENT"); bin != "" {
		// Another build (e.g. bin/lookout-baseline, from before a change) in place of
		// this tree's, so that TestGoldenScenario can record what that build does.
		abs, err := filepath.Abs(bin)
		if err == nil {
			_, err = os.Stat(abs)
		}
		if err != nil {
			return fmt.Errorf("LOOKOUT_E2E_AGENT: %w", err)
		}
		agentBin = abs
		fmt.Fprintf(os.Stderr, "e2e: the agent is %s (LOOKOUT_E2E_AGENT), not this tree's\n", agentBin)
	} else {
		agentBin = filepath.Join(dir, "lookout-race")
		if err := testpeer.BuildRace(root, "./cmd/agent", agentBin); err != nil {
			return err
		}
	}
	if err := testpeer.BuildStatic(root, "./cmd/agent", staticBin); err != nil {
		return err
	}
	if err := testpeer.BuildTestImage(root, testImage); err != nil {
		return err
	}
	// Other opted-in containers (left by an interrupted run elsewhere) would be monitored
	// by every agent these tests start: name them, so a slow run explains itself.
	if out, _ := exec.Command("docker", "ps", "-q", "--filter", "label=lookout.enable=true").Output(); len(out) > 0 {
		fmt.Fprintf(os.Stderr, "e2e: warning: %d running container(s) not started by this run have lookout.enable=true;"+
			" every agent the tests start monitors them too (scripts/clean-test-leftovers.sh removes test leftovers)\n",
			len(strings.Fields(string(out))))
	}
	switch v := os.Getenv("LOOKOUT_E2E_SOCKET_PROXY"); v {
	case "", "0":
	case "1":
		p, err := testpeer.StartSocketProxy(filepath.Join(root, "deploy", "socket-proxy", "haproxy.cfg"), dir,
			testpeer.EngineSocket(), true, filepath.Join(dir, "docker-proxy.sock"))
		if err != nil {
			return fmt.Errorf("LOOKOUT_E2E_SOCKET_PROXY=1: %w", err)
		}
		sharedProxy = p
		fmt.Fprintf(os.Stderr, "e2e: every agent talks to the engine through the socket proxy at %s (log %s)\n", p.Host, p.Log)
	default:
		return fmt.Errorf("LOOKOUT_E2E_SOCKET_PROXY=%q: want 1 (the agents behind deploy/socket-proxy/haproxy.cfg) or 0", v)
	}
	var err error
	sharedInflx, err = startInflux(filepath.Join(dir, "influx"))
	return err
}

// proxyRefusedNothing checks the shared socket proxy's log after the run: the agents made
// their calls through it, and it refused none of them (the allowlist covers every call the
// agent makes, with exec checks on).
func proxyRefusedNothing(p *testpeer.SocketProxy) error {
	reqs, err := p.Requests()
	if err != nil {
		return fmt.Errorf("socket proxy log: %w", err)
	}
	var refused []string
	for _, r := range reqs {
		if r.Status == 403 {
			refused = append(refused, r.Method+" "+r.Path)
		}
	}
	fmt.Fprintf(os.Stderr, "e2e: the socket proxy answered %d requests of the agents, refused %d\n", len(reqs), len(refused))
	switch {
	case len(reqs) == 0:
		return fmt.Errorf("LOOKOUT_E2E_SOCKET_PROXY=1 but no agent call went through the socket proxy (log %s)", p.Log)
	case len(refused) > 0:
		return fmt.Errorf("the socket proxy refused %d calls of the agents, e.g. %s: the allowlist (deploy/socket-proxy/haproxy.cfg) lacks a call the agent makes",
			len(refused), strings.Join(refused[:min(5, len(refused))], ", "))
	}
	return nil
}

// agentSocket is the socket the agents of this run talk to Docker through: the shared
// socket proxy's (LOOKOUT_E2E_SOCKET_PROXY=1) or the engine's.
func agentSocket() string {
	if sharedProxy != nil {
		return strings.TrimPrefix(sharedProxy.Host, "unix://")
	}
	return testpeer.EngineSocket()
}

// agentDockerEnv is the DOCKER_HOST entry for an agent or a lookout subcommand of this
// run: the shared socket proxy, or the engine under test when DOCKER_HOST names one.
func agentDockerEnv() []string {
	if sharedProxy != nil {
		return []string{"DOCKER_HOST=" + sharedProxy.Host}
	}
	if h := os.Getenv("DOCKER_HOST"); h != "" {
		return []string{"DOCKER_HOST=" + h}
	}
	return nil
}

// agentCommand is the race-built agent's subcommand with this process's environment and
// the run's Docker host (agentDockerEnv), env added last.
func agentCommand(env []string, args ...string) *exec.Cmd {
	cmd := exec.Command(agentBin, args...)
	cmd.Env = append(append(os.Environ(), agentDockerEnv()...), env...)
	return cmd
}

// ---- InfluxDB -------------------------------------------------------------------------

// influx wraps testpeer.Influx with a query helper that fails the test on errors.
type influx struct{ *testpeer.Influx }

func startInflux(dir string) (*influx, error) {
	i, err := testpeer.StartInflux(dir)
	return &influx{i}, err
}

func (i *influx) query(t testing.TB, db, q string) []testpeer.Row {
	t.Helper()
	rows, err := i.Query(db, q)
	if err != nil {
		t.Logf("%v", err)
	}
	return rows
}

// ---- the agent ------------------------------------------------------------------------

// agent is testpeer's, with the names the tests use.
type agent struct {
	*testpeer.Agent
	cmd    *exec.Cmd
	done   chan struct{}
	mu     *sync.Mutex
	stdout *bytes.Buffer
}

// startAgent runs the race-built agent with env added to a clean environment.
func startAgent(t *testing.T, env ...string) *agent {
	t.Helper()
	return runAgent(t, agentBin, env)
}

// agentMemoryLimit is the memory limit deploy/global-stack.yml gives the agent (128M) and
// the README states: the abuse tests hold the agent's peak resident memory under it.
const agentMemoryLimit = 128 << 20

// startStaticAgent runs the static build, the one the image holds, for tests that measure
// the agent's memory: the race detector's shadow memory would be most of the race build's.
// It runs with the runtime's soft memory limit the agent gives itself under the stack's
// 128M (3/4 of its cgroup's limit, cmd/agent/memlimit.go; the cluster test checks it
// there): a process of the host has no cgroup limit to read it from.
func startStaticAgent(t *testing.T, env ...string) *agent {
	t.Helper()
	return runAgent(t, staticBin, append([]string{"GOMEMLIMIT=96MiB"}, env...))
}

// peakRSS is the agent process's peak resident memory so far (VmHWM), in bytes.
func (a *agent) peakRSS(t testing.TB) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", a.cmd.Process.Pid))
	if err != nil {
		t.Fatalf("agent memory: %v", err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatalf("agent memory: VmHWM %q: %v", v, err)
			}
			return kb << 10
		}
	}
	t.Fatalf("agent memory: no VmHWM in /proc/%d/status", a.cmd.Process.Pid)
	return 0
}

// underMemoryLimit fails the test when the agent's peak resident memory has passed
// agentMemoryLimit, and logs it.
func (a *agent) underMemoryLimit(t testing.TB, what string) {
	t.Helper()
	peak := a.peakRSS(t)
	t.Logf("%s: agent peak RSS %.1f MiB (limit %d MiB)", what, float64(peak)/(1<<20), agentMemoryLimit>>20)
	if peak > agentMemoryLimit {
		t.Errorf("%s: the agent's peak RSS is %.1f MiB, over the %d MiB the stack gives it", what, float64(peak)/(1<<20), agentMemoryLimit>>20)
	}
}

func runAgent(t *testing.T, bin string, env []string) *agent {
	t.Helper()
	// The engine under test (make test runs the suite against Docker 29 too) or the socket
	// proxy in front of it (agentDockerEnv, after StartAgent's DOCKER_HOST: the last
	// wins); an env entry naming LOOKOUT_DOCKER_HOST still wins, as it does for a user.
	ta, err := testpeer.StartAgent(bin, t.TempDir(), append(agentDockerEnv(), env...))
	if err != nil {
		t.Fatal(err)
	}
	a := &agent{Agent: ta, cmd: ta.Cmd, done: ta.Done, mu: &ta.Mu, stdout: &ta.Stdout}
	t.Cleanup(func() {
		a.stop(t)
		if t.Failed() {
			t.Logf("agent stderr:\n%s", a.logs())
		}
	})
	return a
}

func (a *agent) stop(t *testing.T) {
	if err := a.Stop(15 * time.Second); err != nil {
		t.Error(err)
	}
}

func (a *agent) logs() string { return a.Logs() }

func (a *agent) out() string { return a.Out() }

// ---- docker -----------------------------------------------------------------------------

// docker runs the docker CLI and fails the test on an error; no call may take more than
// two minutes, so a stuck engine fails the test instead of hanging the suite.
func docker(t testing.TB, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// runContainer starts the test service with a 200 ms HEALTHCHECK; args go before the image.
func runContainer(t testing.TB, name string, args ...string) string {
	t.Helper()
	a := append([]string{"run", "-d", "--name", name, "--label", "lookout-test.run=" + runID,
		"--health-interval", "200ms", "--health-retries", "1", "--health-timeout", "2s"}, args...)
	a = append(a, testImage)
	id := docker(t, a...)
	t.Cleanup(func() { _, _ = exec.Command("docker", "rm", "-f", name).CombinedOutput() })
	return id
}

func cleanupContainers() { testpeer.RemoveContainers(runID) }

// waitInspect polls `docker inspect -f format name` until it prints want: the test judges
// the container's state as Docker records it, not the timing or the exit status of the
// command that was to change it.
func waitInspect(t testing.TB, timeout time.Duration, name, format, want string) {
	t.Helper()
	var got string
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		out, err := exec.Command("docker", "inspect", "-f", format, name).CombinedOutput()
		if got = strings.TrimSpace(string(out)); err == nil && got == want {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("container %s: docker inspect -f %q = %q after %s, want %q", name, format, got, timeout, want)
}

// dieWith makes the test service of container name exit with code and waits until Docker
// reports the container exited with that code. The `docker exec` that asks for it runs
// inside the container it stops: when the service exits before the exec has returned, the
// exec is killed with the container (exit status 137), so its outcome is only logged.
func dieWith(t testing.TB, name string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "docker", "exec", name, "/testsvc", "die", strconv.Itoa(code)).CombinedOutput(); err != nil {
		t.Logf("docker exec %s /testsvc die %d: %v %s(the container's state decides)", name, code, err, out)
	}
	waitInspect(t, 30*time.Second, name, "{{.State.Status}} {{.State.ExitCode}}", fmt.Sprintf("exited %d", code))
}

// eventually polls cond until it holds or timeout passes.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	testpeer.Eventually(t, timeout, what, cond)
}

var dbSeq atomic.Int32

// dbName returns a database name unique to the test and to this run of it: -count=N runs
// a test N times in one process, and each run must not find the points of the one before.
func dbName(t *testing.T) string {
	return fmt.Sprintf("%s_%s_%d", strings.NewReplacer("/", "_", "-", "_").Replace(strings.ToLower(t.Name())), runID, dbSeq.Add(1))
}

// ---- a TCP proxy to the Docker socket the test can cut ------------------------------------

// startProxy forwards a loopback TCP port to the Docker socket at target; the test cuts
// it (Cut) to make Docker disappear for the agent, and opens it again (Restore).
func startProxy(t *testing.T, target string) *testpeer.Forwarder {
	p, err := testpeer.Forward(fmt.Sprintf("127.0.0.1:%d", testpeer.FreePort()), "unix", target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Cut)
	return p
}
