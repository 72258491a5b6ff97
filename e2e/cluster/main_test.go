// Package cluster tests Lookout where users run it: deploy/global-stack.yml on a
// three-node Docker Swarm, the nodes being Docker engines (two Docker 20.10, one Docker
// 29) started as containers of the system engine (scripts/swarm-node-image.sh builds
// their images without a registry) on a private network of the test's own, with InfluxDB, a Fluentd forward-protocol receiver
// and Jaeger on the host, reached from the nodes at the network's gateway. `make cluster`
// runs it (CI after `make test`, which leaves it out). `go test -short` skips it.
//
// TestMain builds the cluster once: three nodes (one manager, two workers), the agent's
// image loaded into each (docker save | docker exec -i NODE docker load), the stack
// deployed from the manager as a user would. The tests run in file order and share it;
// TestNodeLoss, which stops a node, runs last.
package cluster

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lookout-agent/lookout/internal/testpeer"
)

// The nodes' images: a swarm half-way through an engine upgrade, the manager and one
// worker on Docker 20.10 (Debian bookworm's docker.io), the other worker on Docker 29
// (peers/docker29). TestNodeLoss stops the Docker 29 node.
var nodeImages = []string{nodeImage, nodeImage, nodeImage29}

const (
	nodeImage   = "lookout-swarmnode:bookworm"
	nodeImage29 = "lookout-swarmnode:docker29"
	stack       = "lk"
	interval    = 2 * time.Second // the agents' LOOKOUT_INTERVAL
)

// agentImages: the stack is deployed with the first; TestRollingUpgrade moves it to the
// second, a build of the same tree with another version.
var agentImages = []string{"lookout:cluster-1", "lookout:cluster-2"}

var (
	runID = fmt.Sprintf("lkc%d", time.Now().UnixNano()%1e6)
	c     *cluster
)

// node is one Docker engine of the swarm, a container of the system engine.
type node struct {
	name string // the container's name and the node's hostname
	ip   string // on the cluster network
	id   string // the swarm node ID
}

type cluster struct {
	root     string
	dir      string
	network  string
	gateway  string // the host's address on the cluster network
	nodes    []*node
	influx   *testpeer.Influx
	fluentd  *testpeer.Fluentd
	jaeger   *testpeer.Jaeger
	forwards []*testpeer.Forwarder
	influxFw *testpeer.Forwarder // the nodes' way to InfluxDB: TestNodeLoss blocks one node on it
	// The peers as the nodes reach them (forwarders on the gateway).
	influxURL, fluentdAddr, jaegerURL string
	spanRelay                         string // where each node's agent listens for jaeger.thrift compact
	dockerGID                         string // the group of the nodes' Docker socket (the same image: the same ID)
	imagesDir                         string // docker save of each image loaded into the nodes
}

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		fmt.Println("cluster: skipped (-short)")
		os.Exit(0)
	}
	testpeer.RemoveOnSignal(runID)
	var err error
	c, err = setup()
	code := 1
	if err != nil {
		fmt.Fprintln(os.Stderr, "cluster setup:", err)
	} else {
		code = m.Run()
	}
	if c != nil {
		c.teardown()
	}
	os.Exit(code)
}

// sh runs a command with a deadline and returns its combined output.
func sh(timeout time.Duration, stdin []byte, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out)), nil
}

func setup() (*cluster, error) {
	root, _ := filepath.Abs("../..")
	dir, err := os.MkdirTemp("", "lookout-cluster-")
	if err != nil {
		return nil, err
	}
	c := &cluster{root: root, dir: dir, imagesDir: filepath.Join(dir, "images")}
	_ = os.MkdirAll(c.imagesDir, 0o755)
	step := func(what string, f func() error) error {
		start := time.Now()
		err := f()
		fmt.Fprintf(os.Stderr, "cluster: %s (%.1f s)\n", what, time.Since(start).Seconds())
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		return nil
	}
	if err := step("node images "+nodeImage+", "+nodeImage29, func() error {
		_, err := sh(20*time.Minute, nil, "bash", filepath.Join(root, "scripts/swarm-node-image.sh"), nodeImage)
		if err == nil {
			_, err = sh(20*time.Minute, nil, "bash", filepath.Join(root, "scripts/swarm-node-image.sh"), "29", nodeImage29)
		}
		return err
	}); err != nil {
		return c, err
	}
	if err := step("images: the agent (two versions), the test services", c.buildImages); err != nil {
		return c, err
	}
	if err := step("network and peers", c.startPeers); err != nil {
		return c, err
	}
	if err := step("three nodes in one swarm", c.startNodes); err != nil {
		return c, err
	}
	if err := step("images loaded into every node", func() error {
		return c.loadImages(append([]string{agentImages[0], testImage, spanImage, logImage}, agentImages[1]))
	}); err != nil {
		return c, err
	}
	if err := step("the stack deployed, an agent running on every node", func() error { return c.deploy(agentImages[0]) }); err != nil {
		return c, err
	}
	return c, nil
}

const (
	testImage = "lookout-testsvc:cluster"
	spanImage = "lookout-spansender:cluster"
	logImage  = "lookout-logsvc:cluster"
	appNet    = "apps" // the test services' overlay network (a task on one has a docker_gwbridge address)
)

func (c *cluster) buildImages() error {
	for i, tag := range agentImages {
		ctx := filepath.Join(c.dir, fmt.Sprintf("agent%d", i+1))
		_ = os.MkdirAll(filepath.Join(ctx, "bin"), 0o755)
		build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w -X main.version="+strings.TrimPrefix(tag, "lookout:"),
			"-o", filepath.Join(ctx, "bin", "lookout"), "./cmd/agent")
		build.Dir, build.Env = c.root, append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			return fmt.Errorf("go build: %v\n%s", err, out)
		}
		df, err := os.ReadFile(filepath.Join(c.root, "Dockerfile"))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(ctx, "Dockerfile"), df, 0o644); err != nil {
			return err
		}
		if _, err := sh(5*time.Minute, nil, "docker", "build", "-q", "-t", tag, ctx); err != nil {
			return err
		}
	}
	if err := testpeer.BuildTestImage(c.root, testImage); err != nil {
		return err
	}
	if err := testpeer.BuildImage(c.root, "logsvc", logImage); err != nil {
		return err
	}
	return testpeer.BuildModuleImage(c.root, "testdata/spansender", spanImage)
}

// startPeers makes the cluster network (a free /24 of 10.78.0.0/16) and starts InfluxDB,
// the Fluentd receiver and Jaeger on loopback, each forwarded from the network's gateway.
func (c *cluster) startPeers() error {
	c.network = "lknet-" + runID
	var err error
	for _, n := range rand.Perm(256)[:20] {
		subnet := fmt.Sprintf("10.78.%d.0/24", n)
		if _, err = sh(time.Minute, nil, "docker", "network", "create", "--subnet", subnet,
			"--label", "lookout-test.run="+runID, c.network); err == nil {
			c.gateway = fmt.Sprintf("10.78.%d.1", n)
			break
		}
	}
	if err != nil {
		return err
	}
	if c.influx, err = testpeer.StartInflux(filepath.Join(c.dir, "influx")); err != nil {
		return err
	}
	bin, err := testpeer.FluentdBin(c.root)
	if err != nil {
		return err
	}
	if c.fluentd, err = testpeer.StartFluentd(bin, filepath.Join(c.dir, "fluentd")); err != nil {
		return err
	}
	jbin, err := testpeer.JaegerBin(c.root, "jaeger-all-in-one")
	if err != nil {
		return err
	}
	if c.jaeger, err = testpeer.StartJaeger(jbin, filepath.Join(c.dir, "jaeger")); err != nil {
		return err
	}
	forward := func(target string) (string, error) {
		f, err := testpeer.Forward(fmt.Sprintf("%s:%d", c.gateway, testpeer.FreePort()), "tcp", target)
		if err != nil {
			return "", err
		}
		c.forwards = append(c.forwards, f)
		return f.Addr, nil
	}
	hostPort := func(url string) string {
		s := strings.TrimPrefix(url, "http://")
		if i := strings.Index(s, "/"); i >= 0 {
			return s[:i]
		}
		return s
	}
	a, err := forward(hostPort(c.influx.URL))
	if err != nil {
		return err
	}
	c.influxURL, c.influxFw = "http://"+a, c.forwards[len(c.forwards)-1]
	if c.fluentdAddr, err = forward(c.fluentd.Addr); err != nil {
		return err
	}
	if a, err = forward(hostPort(c.jaeger.CollectorURL)); err != nil {
		return err
	}
	c.jaegerURL = "http://" + a + "/api/traces"
	return nil
}

// dockerIn runs the docker CLI inside node n.
func (n *node) docker(timeout time.Duration, args ...string) (string, error) {
	return sh(timeout, nil, "docker", append([]string{"exec", n.name, "docker"}, args...)...)
}

func (c *cluster) nodeName(i int) string { return fmt.Sprintf("%s-node%d", runID, i+1) }

// startNode runs node i's container (its /var/lib/docker a volume, so that the node keeps
// its images, containers and swarm state across a stop) and waits until its engine answers.
func (c *cluster) startNode(i int) (*node, error) {
	n := &node{name: c.nodeName(i), ip: strings.TrimSuffix(c.gateway, ".1") + fmt.Sprintf(".%d", 11+i)}
	if _, err := sh(time.Minute, nil, "docker", "volume", "create", "--label", "lookout-test.run="+runID, n.name); err != nil {
		return nil, err
	}
	// The capabilities that work here (--privileged is refused: one capability is outside
	// the machine's bounding set), the cgroup tree for the node's containers, a tmpfs /run.
	if _, err := sh(time.Minute, nil, "docker", "run", "-d", "--name", n.name, "--hostname", n.name,
		"--label", "lookout-test.run="+runID, "--network", c.network, "--ip", n.ip,
		"--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE", "--security-opt", "seccomp=unconfined",
		"--security-opt", "apparmor=unconfined", "--security-opt", "systempaths=unconfined",
		"--device-cgroup-rule", "a *:* rwm", "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw", "--tmpfs", "/run",
		"-v", n.name+":/var/lib/docker", nodeImages[i]); err != nil {
		return nil, err
	}
	return n, n.waitEngine(2 * time.Minute)
}

func (n *node) waitEngine(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		_, err := n.docker(10*time.Second, "version")
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func (c *cluster) startNodes() error {
	c.nodes = make([]*node, 3)
	errs := make([]error, 3)
	var wg sync.WaitGroup
	for i := range c.nodes {
		wg.Add(1)
		go func() { defer wg.Done(); c.nodes[i], errs[i] = c.startNode(i) }()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	mgr := c.nodes[0]
	if _, err := mgr.docker(time.Minute, "swarm", "init", "--advertise-addr", mgr.ip); err != nil {
		return err
	}
	token, err := mgr.docker(time.Minute, "swarm", "join-token", "-q", "worker")
	if err != nil {
		return err
	}
	for _, n := range c.nodes[1:] {
		if _, err := n.docker(2*time.Minute, "swarm", "join", "--advertise-addr", n.ip, "--token", token, mgr.ip+":2377"); err != nil {
			return err
		}
	}
	for _, n := range c.nodes {
		if n.id, err = n.docker(time.Minute, "info", "--format", "{{.Swarm.NodeID}}"); err != nil {
			return err
		}
	}
	// Each node's docker_gwbridge is made when it joins or runs its first task on an
	// overlay network; the span relay of every agent listens on its gateway, one address
	// in the stack for all. So each node gets it now, as Docker documents for a custom
	// one, with the manager's subnet where the engine has not made it yet.
	gateway := func(n *node) string {
		g, err := n.docker(30*time.Second, "network", "inspect", "docker_gwbridge", "-f", "{{(index .IPAM.Config 0).Subnet}} {{(index .IPAM.Config 0).Gateway}}")
		if err != nil {
			return ""
		}
		return g
	}
	var want string
	for deadline := time.Now().Add(30 * time.Second); want == "" && time.Now().Before(deadline); {
		if want = gateway(mgr); want == "" {
			time.Sleep(250 * time.Millisecond)
		}
	}
	if want == "" {
		return fmt.Errorf("the manager %s made no docker_gwbridge within 30 s of swarm init", mgr.name)
	}
	for _, n := range c.nodes[1:] {
		if gateway(n) == "" {
			_, err := n.docker(time.Minute, "network", "create", "--driver", "bridge", "--subnet", strings.Fields(want)[0], "--gateway", strings.Fields(want)[1],
				"-o", "com.docker.network.bridge.name=docker_gwbridge", "-o", "com.docker.network.bridge.enable_icc=false",
				"-o", "com.docker.network.bridge.enable_ip_masquerade=true", "docker_gwbridge")
			if err != nil && gateway(n) == "" {
				return err
			}
		}
		if g := gateway(n); g != want {
			return fmt.Errorf("node %s: docker_gwbridge %q, the manager's %q", n.name, g, want)
		}
	}
	gw := strings.Fields(want)[1]
	c.spanRelay = gw + ":6831"
	for _, n := range c.nodes {
		g, err := sh(time.Minute, nil, "docker", "exec", n.name, "stat", "-c", "%g", "/var/run/docker.sock")
		if err != nil {
			return err
		}
		if c.dockerGID != "" && g != c.dockerGID {
			return fmt.Errorf("node %s: the Docker socket's group is %s, another node's %s", n.name, g, c.dockerGID)
		}
		c.dockerGID = g
	}
	_, err = mgr.docker(time.Minute, "network", "create", "-d", "overlay", appNet)
	return err
}

// loadImages saves each image once and loads it into every node, the nodes in parallel.
func (c *cluster) loadImages(images []string) error {
	var files []string
	for i, img := range images {
		f := filepath.Join(c.imagesDir, fmt.Sprintf("%d.tar", i))
		if _, err := sh(5*time.Minute, nil, "docker", "save", "-o", f, img); err != nil {
			return err
		}
		files = append(files, f)
	}
	errs := make([]error, len(c.nodes))
	var wg sync.WaitGroup
	for i, n := range c.nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, f := range files {
				b, err := os.ReadFile(f)
				if err == nil {
					_, err = sh(5*time.Minute, b, "docker", "exec", "-i", n.name, "docker", "load", "-q")
				}
				if err != nil {
					errs[i] = err
					return
				}
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// stackEnv is the environment `docker stack deploy` substitutes in deploy/global-stack.yml:
// the outputs at the peers, as a user's would be.
func (c *cluster) stackEnv(image string) []string {
	return []string{
		"LOOKOUT_IMAGE=" + image,
		"LOOKOUT_DOCKER_GID=" + c.dockerGID,
		"LOOKOUT_INTERVAL=" + interval.String(),
		"LOOKOUT_INFLUXDB_URL=" + c.influxURL,
		"LOOKOUT_INFLUXDB_DATABASE=lookout",
		"LOOKOUT_FLUENTD_ADDRESS=" + c.fluentdAddr,
		"LOOKOUT_JAEGER_ENDPOINT=" + c.jaegerURL,
		"LOOKOUT_JAEGER_COMPACT_LISTEN=" + c.spanRelay,
	}
}

// deploy runs `docker stack deploy -c deploy/global-stack.yml` on the manager with image
// and waits until an agent of that image runs on every node.
func (c *cluster) deploy(image string) error {
	stackFile, err := os.ReadFile(filepath.Join(c.root, "deploy/global-stack.yml"))
	if err != nil {
		return err
	}
	args := []string{"exec", "-i"}
	for _, e := range c.stackEnv(image) {
		args = append(args, "-e", e)
	}
	args = append(args, c.nodes[0].name, "docker", "stack", "deploy", "-c", "-", stack)
	if _, err := sh(2*time.Minute, stackFile, "docker", args...); err != nil {
		return err
	}
	deadline := time.Now().Add(5 * time.Minute)
	for {
		running := c.agentsRunning(image)
		if len(running) == len(c.nodes) {
			return nil
		}
		if time.Now().After(deadline) {
			ps, _ := c.nodes[0].docker(time.Minute, "service", "ps", "--no-trunc", stack+"_agent")
			return fmt.Errorf("agents of %s running on %v after 5 minutes, want every node:\n%s", image, running, ps)
		}
		time.Sleep(time.Second)
	}
}

// agentsRunning returns the nodes (hostnames) where an agent task of image is running.
func (c *cluster) agentsRunning(image string) []string {
	out, _ := c.nodes[0].docker(time.Minute, "service", "ps", "--filter", "desired-state=running",
		"--format", "{{.Node}} {{.Image}} {{.CurrentState}}", stack+"_agent")
	var nodes []string
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) >= 3 && f[1] == image && f[2] == "Running" {
			nodes = append(nodes, f[0])
		}
	}
	return nodes
}

func (c *cluster) teardown() {
	for _, f := range c.forwards {
		f.Cut()
	}
	for _, n := range c.nodes {
		if n != nil {
			_, _ = sh(2*time.Minute, nil, "docker", "rm", "-f", "-v", n.name)
		}
	}
	for i := range 3 {
		_, _ = sh(2*time.Minute, nil, "docker", "volume", "rm", "-f", c.nodeName(i))
	}
	if c.network != "" {
		_, _ = sh(time.Minute, nil, "docker", "network", "rm", c.network)
	}
	for _, img := range append([]string{testImage, spanImage, logImage}, agentImages...) {
		_, _ = sh(time.Minute, nil, "docker", "rmi", "-f", img)
	}
	if c.influx != nil {
		c.influx.Stop()
	}
	if c.fluentd != nil {
		c.fluentd.Stop()
	}
	if c.jaeger != nil {
		c.jaeger.Stop()
	}
	_ = os.RemoveAll(c.dir)
}
