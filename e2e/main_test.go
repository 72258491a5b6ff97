// Package e2e runs the lookout binary against the real Docker Engine and a real InfluxDB
// that the tests start. `go test -short` skips it; `make test` runs it.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	agentBin    string // the agent built with -race
	staticBin   string // the agent built static, for images
	testImage   = "lookout-testsvc:e2e"
	runID       = fmt.Sprintf("lk%d", time.Now().UnixNano()%1e6)
	sharedInflx *influx
)

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() || os.Getenv("LOOKOUT_E2E") == "off" {
		fmt.Println("e2e: skipped (-short)")
		os.Exit(0)
	}
	code, err := setup()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e setup:", err)
		os.Exit(1)
	}
	code = m.Run()
	cleanupContainers()
	if sharedInflx != nil {
		sharedInflx.stop()
	}
	os.Exit(code)
}

func setup() (int, error) {
	dir, err := os.MkdirTemp("", "lookout-e2e-")
	if err != nil {
		return 1, err
	}
	root, _ := filepath.Abs("..")
	agentBin = filepath.Join(dir, "lookout-race")
	staticBin = filepath.Join(dir, "lookout")
	build := exec.Command("go", "build", "-race", "-o", agentBin, "./cmd/agent")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		return 1, fmt.Errorf("build agent: %v\n%s", err, out)
	}
	build = exec.Command("go", "build", "-o", staticBin, "./cmd/agent")
	build.Dir = root
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return 1, fmt.Errorf("build static agent: %v\n%s", err, out)
	}
	// The test service image, FROM scratch.
	imgDir := filepath.Join(dir, "testsvc")
	_ = os.MkdirAll(imgDir, 0o755)
	build = exec.Command("go", "build", "-o", filepath.Join(imgDir, "testsvc"), "./testdata/testsvc")
	build.Dir = root
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return 1, fmt.Errorf("build testsvc: %v\n%s", err, out)
	}
	df, _ := os.ReadFile(filepath.Join(root, "testdata/testsvc/Dockerfile"))
	_ = os.WriteFile(filepath.Join(imgDir, "Dockerfile"), df, 0o644)
	if out, err := exec.Command("docker", "build", "-q", "-t", testImage, imgDir).CombinedOutput(); err != nil {
		return 1, fmt.Errorf("docker build testsvc: %v\n%s", err, out)
	}
	if _, err := exec.LookPath("influxd"); err != nil {
		return 1, fmt.Errorf("influxd not found: run `make peers` (installs the Debian package influxdb)")
	}
	sharedInflx, err = startInflux(filepath.Join(dir, "influx"), 0)
	return 0, err
}

// ---- InfluxDB -------------------------------------------------------------------------

type influx struct {
	dir  string
	port int
	cmd  *exec.Cmd
	url  string
}

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func startInflux(dir string, port int) (*influx, error) {
	if port == 0 {
		port = freePort()
	}
	i := &influx{dir: dir, port: port, url: fmt.Sprintf("http://127.0.0.1:%d", port)}
	return i, i.start()
}

func (i *influx) start() error {
	_ = os.MkdirAll(i.dir, 0o755)
	conf := fmt.Sprintf(`reporting-disabled = true
bind-address = "127.0.0.1:%d"
[meta]
  dir = "%s/meta"
[data]
  dir = "%s/data"
  wal-dir = "%s/wal"
  query-log-enabled = false
[http]
  bind-address = "127.0.0.1:%d"
  log-enabled = false
[monitor]
  store-enabled = false
[continuous_queries]
  enabled = false
`, freePort(), i.dir, i.dir, i.dir, i.port)
	cf := filepath.Join(i.dir, "influxdb.conf")
	if err := os.WriteFile(cf, []byte(conf), 0o644); err != nil {
		return err
	}
	logf, _ := os.OpenFile(filepath.Join(i.dir, "influxd.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	i.cmd = exec.Command("influxd", "-config", cf)
	i.cmd.Stdout, i.cmd.Stderr = logf, logf
	if err := i.cmd.Start(); err != nil {
		return err
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(i.url + "/ping"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 204 {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("influxd did not answer on %s (log in %s)", i.url, i.dir)
}

func (i *influx) stop() {
	if i.cmd != nil && i.cmd.Process != nil {
		_ = i.cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = i.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = i.cmd.Process.Kill()
			<-done
		}
		i.cmd = nil
	}
}

// row is one result row: column name -> value.
type row map[string]any

// query runs an InfluxQL query against db and returns the rows of every series, each with
// the series tags merged in.
func (i *influx) query(t testing.TB, db, q string) []row {
	t.Helper()
	resp, err := http.Get(i.url + "/query?" + url.Values{"db": {db}, "q": {q}, "epoch": {"ns"}}.Encode())
	if err != nil {
		t.Logf("query %q: %v", q, err)
		return nil
	}
	defer resp.Body.Close()
	var out struct {
		Results []struct {
			Error  string
			Series []struct {
				Name    string
				Tags    map[string]string
				Columns []string
				Values  [][]any
			}
		}
	}
	dec := json.NewDecoder(resp.Body)
	dec.UseNumber()
	if err := dec.Decode(&out); err != nil {
		t.Fatalf("query %q: %v", q, err)
	}
	var rows []row
	for _, r := range out.Results {
		if r.Error != "" && !strings.Contains(r.Error, "database not found") {
			t.Fatalf("query %q: %s", q, r.Error)
		}
		for _, s := range r.Series {
			for _, v := range s.Values {
				rw := row{"_measurement": s.Name}
				for k, tv := range s.Tags {
					rw[k] = tv
				}
				for c, col := range s.Columns {
					rw[col] = v[c]
				}
				rows = append(rows, rw)
			}
		}
	}
	return rows
}

func (r row) str(k string) string {
	if v, ok := r[k]; ok && v != nil {
		return fmt.Sprint(v)
	}
	return ""
}

func (r row) int(k string) int64 {
	if n, ok := r[k].(json.Number); ok {
		v, _ := n.Int64()
		return v
	}
	return -1
}

// ---- the agent ------------------------------------------------------------------------

type agent struct {
	cmd    *exec.Cmd
	mu     sync.Mutex
	stdout bytes.Buffer
	stderr bytes.Buffer
	done   chan struct{}
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// startAgent runs the race-built agent with env added to a clean environment.
func startAgent(t *testing.T, env ...string) *agent {
	t.Helper()
	a := &agent{done: make(chan struct{})}
	a.cmd = exec.Command(agentBin, "run")
	a.cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "LOOKOUT_LOG_LEVEL=debug",
		"LOOKOUT_HEARTBEAT_FILE=" + filepath.Join(t.TempDir(), "hb")}, env...)
	a.cmd.Stdout = lockedWriter{&a.mu, &a.stdout}
	a.cmd.Stderr = lockedWriter{&a.mu, &a.stderr}
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = a.cmd.Wait(); close(a.done) }()
	t.Cleanup(func() {
		a.stop(t)
		if t.Failed() {
			t.Logf("agent stderr:\n%s", a.logs())
		}
	})
	return a
}

func (a *agent) stop(t *testing.T) {
	select {
	case <-a.done:
		return
	default:
	}
	_ = a.cmd.Process.Signal(os.Interrupt)
	select {
	case <-a.done:
	case <-time.After(15 * time.Second):
		_ = a.cmd.Process.Kill()
		<-a.done
		t.Errorf("agent did not stop within 15s of SIGINT")
	}
	if strings.Contains(a.logs(), "WARNING: DATA RACE") {
		t.Errorf("the race detector found a data race in the agent:\n%s", a.logs())
	}
}

func (a *agent) logs() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.stderr.String()
}

func (a *agent) out() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.stdout.String()
}

// ---- docker -----------------------------------------------------------------------------

func docker(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command("docker", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// runContainer starts the test service with a 200 ms HEALTHCHECK; args go before the image.
func runContainer(t testing.TB, name string, args ...string) string {
	t.Helper()
	a := append([]string{"run", "-d", "--name", name, "--label", "lookout.e2e=" + runID,
		"--health-interval", "200ms", "--health-retries", "1", "--health-timeout", "2s"}, args...)
	a = append(a, testImage)
	id := docker(t, a...)
	t.Cleanup(func() { _, _ = exec.Command("docker", "rm", "-f", name).CombinedOutput() })
	return id
}

func cleanupContainers() {
	out, _ := exec.Command("docker", "ps", "-aq", "--filter", "label=lookout.e2e="+runID).Output()
	for _, id := range strings.Fields(string(out)) {
		_ = exec.Command("docker", "rm", "-f", id).Run()
	}
}

// eventually polls cond until it holds or timeout passes.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("timed out after %s waiting for %s", timeout, what)
}

// dbName returns a database name unique to the test.
func dbName(t *testing.T) string {
	return strings.NewReplacer("/", "_", "-", "_").Replace(strings.ToLower(t.Name())) + "_" + runID
}

// ---- a TCP proxy to the Docker socket the test can cut -----------------------------------

type proxy struct {
	addr    string
	mu      sync.Mutex
	l       net.Listener
	conns   map[net.Conn]bool
	target  string
	stopped bool
}

func startProxy(t *testing.T, target string) *proxy {
	p := &proxy{target: target, conns: map[net.Conn]bool{}}
	p.addr = fmt.Sprintf("127.0.0.1:%d", freePort())
	if err := p.listen(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.cut)
	return p
}

func (p *proxy) listen() error {
	l, err := net.Listen("tcp", p.addr)
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.l = l
	p.mu.Unlock()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("unix", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns[c], p.conns[u] = true, true
			p.mu.Unlock()
			go func() { _, _ = io.Copy(u, c); u.Close() }()
			go func() { _, _ = io.Copy(c, u); c.Close() }()
		}
	}()
	return nil
}

// cut closes the listener and every connection: the agent sees Docker disappear.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.l != nil {
		p.l.Close()
		p.l = nil
	}
	for c := range p.conns {
		c.Close()
	}
	p.conns = map[net.Conn]bool{}
}

func (p *proxy) restore(t *testing.T) {
	if err := p.listen(); err != nil {
		t.Fatal(err)
	}
}

var _ = bufio.NewScanner
var _ = context.Background
