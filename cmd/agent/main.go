// Command lookout is the Lookout node agent. It is the only package that wires the
// others together: Docker client -> inventory -> collectors -> shipper.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"github.com/sirupsen/logrus"

	"github.com/lookout-agent/lookout/checks"
	"github.com/lookout-agent/lookout/collectors"
	"github.com/lookout-agent/lookout/config"
	"github.com/lookout-agent/lookout/execd"
	"github.com/lookout-agent/lookout/inventory"
	"github.com/lookout-agent/lookout/labels"
	"github.com/lookout-agent/lookout/logs"
	"github.com/lookout-agent/lookout/logs/forward"
	"github.com/lookout-agent/lookout/metric"
	"github.com/lookout-agent/lookout/metrics"
	"github.com/lookout-agent/lookout/resources"
	"github.com/lookout-agent/lookout/shipper"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

const usage = `lookout: a node agent for Docker hosts

Usage:
  lookout [run] [flags]   watch the Docker Engine and ship metrics (default)
  lookout check [flags]   validate the configuration and the lookout.* labels of every container
  lookout probe CONTAINER run that container's checks once, print a table, exit 1 if any fails
  lookout healthcheck     exit 0 if the running agent is connected and reporting (for HEALTHCHECK)
  lookout execd           for Telegraf's inputs.execd (signal = "STDIN"): gather on each input line,
                          write line protocol to stdout
  lookout version         print the version

Flags (each also an environment variable; see docs/configuration.md):
`

func main() {
	os.Exit(run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

func run(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	cmd := "run"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	fs := flag.NewFlagSet("lookout", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage); config.PrintFlags(stderr) }
	setFlags := config.Flags(fs)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	flags := setFlags()
	switch cmd {
	case "version":
		fmt.Fprintf(stdout, "lookout %s (%s, Docker API client %s, negotiates down to the engine's version: %s)\n",
			version, runtime.Version(), client.MaxAPIVersion, supportedEngines)
		return 0
	case "run", "check", "healthcheck", "probe", "execd":
	default:
		fmt.Fprintf(stderr, "lookout: unknown command %q\n", cmd)
		fs.Usage()
		return 2
	}
	cfg, err := config.Load("", getenv, flags)
	err = errors.Join(err, cfg.Validate(), checks.VetAllowedHosts(cfg.ProbeAllowedHosts))
	if err == nil && cmd != "healthcheck" {
		err = cfg.LoadSecrets()
	}
	if err != nil {
		fmt.Fprintf(stderr, "lookout: bad configuration:\n  %s\n", strings.ReplaceAll(err.Error(), "\n", "\n  "))
		return 2
	}
	switch cmd {
	case "check":
		return check(cfg, stdout, stderr)
	case "healthcheck":
		return selfHealthcheck(cfg, stderr)
	case "probe":
		if fs.NArg() != 1 {
			fmt.Fprintln(stderr, "usage: lookout probe CONTAINER")
			return 2
		}
		return probe(cfg, fs.Arg(0), stdout, stderr)
	}
	log := newLogger(cfg, stderr)
	if err := noNewPrivileges(); errors.Is(err, errThisThreadOnly) {
		log.WithError(err).Debug("no_new_privs")
	} else if err != nil {
		log.WithError(err).Warn("could not set no_new_privs on the agent's process")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if cmd == "execd" {
		if err := runExecd(ctx, cfg, log, os.Stdin, stdout, stderr); err != nil {
			log.WithError(err).Error("lookout execd stopped")
			return 1
		}
		return 0
	}
	if err := agent(ctx, cfg, log, stdout); err != nil {
		log.WithError(err).Error("lookout stopped")
		return 1
	}
	return 0
}

func newLogger(cfg config.Config, w io.Writer) *logrus.Logger {
	log := logrus.New()
	log.SetOutput(w)
	if cfg.LogFormat == "json" {
		log.SetFormatter(&logrus.JSONFormatter{TimestampFormat: time.RFC3339Nano})
	}
	lvl, _ := logrus.ParseLevel(cfg.LogLevel)
	log.SetLevel(lvl)
	return log
}

// dockerReadBuffer is the read buffer of each connection to the Docker Engine. A
// followed log arrives one HTTP chunk per line; with net/http's default 4 KiB, catching
// up on a backlog costs a read syscall every few dozen lines.
const dockerReadBuffer = 32 << 10

func dockerClient(cfg config.Config) (*client.Client, error) {
	// The transport first: WithHost then sets it up for the engine's socket. HTTP/1 only:
	// the client clones the transport, and a clone set up for HTTP/2 has a TLS
	// configuration, which makes the client speak HTTPS to the socket. The client
	// negotiates the API version with the engine at its first call.
	var http1 http.Protocols
	http1.SetHTTP1(true)
	return client.New(client.WithHTTPClient(&http.Client{Transport: &http.Transport{ReadBufferSize: dockerReadBuffer,
		Protocols: &http1}}), client.WithHost(cfg.DockerHost))
}

// openEngine makes the Docker client and checks at start that the engine's API is in the
// supported range: an engine outside it is an error; one that cannot be reached yet is
// not (the inventory retries). The caller closes the client.
func openEngine(ctx context.Context, cfg config.Config, log logrus.FieldLogger) (*client.Client, error) {
	dc, err := dockerClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("docker client: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	v, err := engineAPI(ctx, dc)
	switch {
	case errors.Is(err, errUnsupportedEngine):
		_ = dc.Close()
		return nil, err
	case err != nil:
		log.WithError(err).Warn("cannot reach the Docker Engine yet; retrying")
	default:
		log.WithField("engine", v.Version).WithField("engine_api", v.APIVersion).WithField("engine_min_api", v.MinAPIVersion).
			WithField("api", dc.ClientVersion()).Debug("Docker Engine API negotiated")
	}
	return dc, nil
}

// queueDir is where an output's disk queue lives: state_dir/queue/<name>, the name
// reduced to characters safe in a file name.
func queueDir(stateDir, output string) string {
	safe := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' {
			return r
		}
		return '_'
	}, output)
	if strings.Trim(safe, ".") == "" {
		safe = "_" + safe
	}
	return filepath.Join(stateDir, "queue", safe)
}

func agent(ctx context.Context, cfg config.Config, log *logrus.Logger, stdout io.Writer) error {
	var outputs []*shipper.Output
	for _, o := range cfg.Outputs {
		oc := shipper.OutputConfig{Name: o.Name, Precision: o.Precision, BatchSize: o.BatchSize,
			FlushInterval: time.Duration(o.FlushInterval), BufferLimit: o.BufferLimit, RetryMax: 10 * time.Second,
			DiskLimit: int64(o.BufferDiskLimit), SyncInterval: time.Duration(o.BufferSyncInterval)}
		if o.Type != config.OutputStdout && o.BufferStrategy == config.BufferDisk {
			if cfg.StateDir == "" {
				log.WithField("output", o.Name).Warn("no state directory (LOOKOUT_STATE_DIR): this output keeps its lines in memory only")
			} else {
				oc.QueueDir = queueDir(cfg.StateDir, o.Name)
			}
		}
		var out *shipper.Output
		var err error
		switch o.Type {
		case config.OutputStdout:
			out, err = shipper.NewWriterOutput(oc, stdout, log)
		default:
			v := 1
			if o.Type == config.OutputInfluxV2 {
				v = 2
			}
			out, err = shipper.NewInfluxOutput(oc, shipper.InfluxConfig{URL: o.URL, Version: v, Database: o.Database,
				RetentionPolicy: o.RetentionPolicy, Username: o.Username, Password: o.Password, Org: o.Org,
				Bucket: o.Bucket, Token: o.Token, Timeout: time.Duration(o.Timeout), Gzip: o.Gzip,
				SkipDatabaseCreation: o.SkipDBCreation}, log)
		}
		if err != nil {
			return err
		}
		outputs = append(outputs, out)
	}
	ship := shipper.New(outputs...)

	dc, err := openEngine(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer dc.Close()
	inv := inventory.New(dc, inventory.Options{MonitorAll: cfg.MonitorAll, Refresh: time.Duration(cfg.Interval),
		Log: log})
	inv.Subscribe(collectors.NewHealth(ship))
	inv.Subscribe(collectors.NewLabelProblems(ship))
	popts := probeOptions(ctx, cfg, dc, log)
	spans, err := newTraces(cfg.Traces, log)
	if err != nil {
		return err
	}
	spans.wire(inv, &popts)
	popts.Stopping = inv.Stopping
	checksBox := inv.Mailbox("checks")
	sched := checks.New(ship, checksBox, popts)
	var sources []collectors.Named
	for _, o := range outputs {
		sources = append(sources, collectors.Named{Name: "output:" + o.Name(), Source: o})
	}
	sources = append(sources, collectors.Named{Name: "inventory", Source: inv}, collectors.Named{Name: "probes", Source: sched})
	var fwd *logs.Forwarder
	var logsBox *inventory.Mailbox
	if cfg.Fluentd.Address != "" {
		tag, _ := labels.ParseLogTag(cfg.Fluentd.Tag) // checked by Validate
		tlsConf, err := cfg.Fluentd.TLSConfig()
		if err != nil {
			return fmt.Errorf("logs: %w", err)
		}
		auth := fluentdAuth(ctx, cfg.Fluentd, dc)
		if auth != nil { // never the key or the password
			log.WithField("self_hostname", auth.SelfHostname).WithField("username", auth.Username).Info("logs: shared-key handshake on: Fluentd must ask for it (HELO)")
		}
		logsBox = inv.Mailbox("logs")
		dir := containersDir(ctx, cfg, dc)
		log.WithField("source", cfg.Logs.Source).WithField("containers_dir", dir).Info("logs: sources")
		fwd, err = logs.New(dc, logsBox, logs.Options{Address: cfg.Fluentd.Address, TLS: tlsConf, Auth: auth, Tag: tag, StateDir: cfg.StateDir,
			BufferLimit: cfg.Fluentd.BufferLimit, BatchSize: cfg.Fluentd.BatchSize, MaxRecordSize: cfg.Fluentd.MaxRecordSize,
			FromStart: cfg.Fluentd.Start == "beginning", Timeout: time.Duration(cfg.Fluentd.Timeout),
			Source: cfg.Logs.Source, ContainersDir: dir, Log: log})
		if err != nil {
			return fmt.Errorf("logs: %w", err)
		}
		sources = append(sources, collectors.Named{Name: "logs", Source: fwd})
	}
	hostTags := func() map[string]string { return map[string]string{"engine_host": inv.Engine().Host} }
	var resBox *inventory.Mailbox // no mailbox, nothing queued, when resources are off
	if cfg.Resources != resources.SourceOff {
		resBox = inv.Mailbox("resources")
	}
	res, err := newResources(cfg, dc, resBox, ship, log)
	if err != nil {
		return err
	}
	if res != nil {
		sources = append(sources, collectors.Named{Name: "resources", Source: res})
	}
	sources = append(sources, spans.sources()...)
	self := collectors.NewSelf(ship, time.Duration(cfg.Interval), version, hostTags, sources...)
	self.Log = log
	var lastBeat atomic.Int64
	lastBeat.Store(time.Now().UnixNano()) // healthy from the start while connected
	var metricsListener net.Listener
	var prom *metrics.Server
	if cfg.MetricsAddress != "" {
		if metricsListener, err = net.Listen("tcp", cfg.MetricsAddress); err != nil {
			return fmt.Errorf("metrics endpoint (LOOKOUT_METRICS_ADDRESS): %w", err)
		}
		prom = metrics.New(func() error { return agentHealth(inv.Connected(), time.Unix(0, lastBeat.Load()), cfg) })
		self.Observe = prom.Update
		log.WithField("address", metricsListener.Addr().String()).Info("serving /metrics and /healthz")
	}
	checkStateFiles(cfg, log)
	beatWarned := false
	self.Beat = func() {
		// /healthz checks the connection itself: the beat says only that reports go out,
		// so it is healthy again as soon as the engine is back.
		lastBeat.Store(time.Now().UnixNano())
		if inv.Connected() && cfg.HeartbeatFile != "" {
			if err := touch(cfg.HeartbeatFile); err != nil && !beatWarned {
				beatWarned = true
				log.WithError(err).Warn("heartbeat file cannot be written: lookout healthcheck will fail (once; see the state directory error above if any)")
			}
		}
	}
	id := currentIdentity()
	// The runtime's soft memory limit, from the cgroup's (memlimit.go): 0, none.
	memLimit := setMemoryLimit("/sys/fs/cgroup", "/proc/self/cgroup")
	log.WithField("version", version).WithField("docker_host", cfg.DockerHost).WithField("memory_limit", memLimit).
		WithField("outputs", len(outputs)).WithField("uid", id.UID).WithField("gid", id.GID).
		WithField("groups", id.Groups).WithField("cap_eff", id.CapEff).WithField("no_new_privs", id.NoNewPrivs).
		Info("lookout starting")

	// The shipper outlives the producers so that their last points are flushed.
	producers, stopProducers := context.WithCancel(ctx)
	defer stopProducers()
	shipCtx, stopShip := context.WithCancel(context.Background())
	var shipDone sync.WaitGroup
	shipDone.Add(1)
	go func() { defer shipDone.Done(); ship.Run(shipCtx) }()
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); checksBox.Supervise(producers, sched.Run) }()
	go func() { defer wg.Done(); inv.Run(producers) }()
	go func() { defer wg.Done(); self.Run(producers) }()
	if res != nil {
		wg.Add(1)
		go func() { defer wg.Done(); resBox.Supervise(producers, res.Run) }()
	}
	if prom != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := prom.Run(producers, metricsListener); err != nil {
				log.WithError(err).Error("metrics endpoint stopped")
			}
		}()
	}
	if fwd != nil {
		wg.Add(2)
		go func() { defer wg.Done(); logsBox.Supervise(producers, fwd.Run) }()
		go func() { // the positions of containers removed while the agent was away
			defer wg.Done()
			select {
			case <-producers.Done():
				return
			case <-inv.Listed():
			}
			n, err := fwd.SweepPositions(inv.Known)
			if err != nil {
				log.WithError(err).Warn("logs: cannot sweep position files")
			} else if n > 0 {
				log.WithField("files", n).Info("logs: removed the position files of containers removed while the agent was away")
			}
		}()
	}
	spans.start(producers, &wg, shipCtx, &shipDone)
	<-ctx.Done()
	stopProducers()
	wg.Wait()
	stopShip()
	shipDone.Wait()
	log.Info("lookout stopped")
	return nil
}

// probeOptions are the checks' options for the agent, lookout probe and lookout check
// alike: the same targets, the same refusals.
func probeOptions(ctx context.Context, cfg config.Config, dc *client.Client, log logrus.FieldLogger) checks.Options {
	allowed := map[string]bool{}
	for _, h := range cfg.ProbeAllowedHosts {
		allowed[h] = true
	}
	opts := checks.Options{Docker: dc, ProbeNetwork: cfg.ProbeNetwork, AllowedHosts: allowed, Log: log}
	if self := inventory.SelfContainerID(); self != "" {
		// Checks go by preference to a network the agent's own container shares, and
		// only over one it shares when they name one.
		ictx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if resp, err := dc.ContainerInspect(ictx, self, client.ContainerInspectOptions{}); err == nil {
			opts.AgentNetworks = inventory.FromInspect(resp.Container, false).SortedNetworks()
			log.WithField("networks", opts.AgentNetworks).Info("running in a container; checks prefer its networks")
		}
		cancel()
	}
	return opts
}

// probe runs one container's checks once and prints a table.
func probe(cfg config.Config, name string, stdout, stderr io.Writer) int {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dc, err := dockerClient(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "lookout probe: %v\n", err)
		return 1
	}
	defer dc.Close()
	if _, err := engineAPI(ctx, dc); errors.Is(err, errUnsupportedEngine) {
		fmt.Fprintf(stderr, "lookout probe: %v\n", err)
		return 1
	}
	resp, err := dc.ContainerInspect(ctx, name, client.ContainerInspectOptions{})
	if err != nil {
		fmt.Fprintf(stderr, "lookout probe: %v\n", err)
		return 1
	}
	c := inventory.FromInspect(resp.Container, true)
	sched := checks.New(nil, nil, probeOptions(ctx, cfg, dc, newLogger(cfg, stderr)))
	results := make([]checks.Result, len(c.Config.Checks))
	var wg sync.WaitGroup
	for i, chk := range c.Config.Checks {
		wg.Add(1)
		go func() { defer wg.Done(); results[i] = sched.RunOnce(ctx, c, chk) }()
	}
	wg.Wait()
	if c.HasHealthcheck && c.State.Health != nil && len(c.State.Health.Log) > 0 {
		last := c.State.Health.Log[len(c.State.Health.Log)-1]
		results = append(results, checks.NativeResult(last))
	}
	fmt.Fprintf(stdout, "container %s (%s)\n", c.Name, c.State.Status)
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CHECK\tTYPE\tTARGET\tRESULT\tTIME\tDETAIL")
	failed := 0
	for _, r := range results {
		detail := r.Reason
		if r.StatusCode > 0 {
			detail = strings.TrimSpace(fmt.Sprintf("HTTP %d %s", r.StatusCode, detail))
		}
		if r.Type == "docker" {
			detail = fmt.Sprintf("last run of Docker's HEALTHCHECK: %s", oneLine(r.Output))
		} else if r.Result != checks.Success && r.Output != "" {
			detail += ": " + oneLine(r.Output)
		}
		target := r.Target
		if target == "" {
			target = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Check, r.Type, target, r.Result,
			r.Duration.Round(time.Millisecond), detail)
		if r.Result != checks.Success {
			failed++
		}
	}
	_ = tw.Flush()
	for _, p := range c.Config.Problems {
		fmt.Fprintln(stdout, "label problem:", p.Error())
	}
	if n := c.Config.Omitted; n > 0 {
		fmt.Fprintf(stdout, "label problems: %d more not listed\n", n)
	}
	if len(c.Config.Checks) == 0 && !c.HasHealthcheck {
		fmt.Fprintln(stdout, "no checks: add a label such as lookout.check.web=http://:8080/health")
	}
	if failed > 0 {
		fmt.Fprintf(stdout, "%d of %d check(s) failed\n", failed, len(results))
		return 1
	}
	return 0
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 120 {
		s = s[:120] + "…"
	}
	return s
}

func touch(path string) error {
	now := time.Now()
	if err := os.Chtimes(path, now, now); err == nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(now.Format(time.RFC3339)+"\n"), 0o644)
}

func selfHealthcheck(cfg config.Config, stderr io.Writer) int {
	fi, err := os.Stat(cfg.HeartbeatFile)
	if err != nil {
		fmt.Fprintf(stderr, "unhealthy: no heartbeat file %s: the agent has not connected to Docker yet\n", cfg.HeartbeatFile)
		return 1
	}
	limit := max(3*time.Duration(cfg.Interval), 30*time.Second)
	if age := time.Since(fi.ModTime()); age > limit {
		fmt.Fprintf(stderr, "unhealthy: last heartbeat %s ago (limit %s): the agent is not connected to Docker or not reporting\n",
			age.Round(time.Second), limit)
		return 1
	}
	return 0
}

// check prints the configuration in effect, then lists every container and reports the
// lookout.* labels it cannot use.
func check(cfg config.Config, stdout, stderr io.Writer) int {
	fmt.Fprintf(stdout, "configuration: ok (%d output(s), docker %s, monitor_all=%v)\n", len(cfg.Outputs), cfg.DockerHost, cfg.MonitorAll)
	printConfig(cfg, stdout)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dc, err := dockerClient(cfg)
	var engine client.ServerVersionResult
	if err == nil {
		engine, err = engineAPI(ctx, dc)
	}
	if errors.Is(err, errUnsupportedEngine) {
		fmt.Fprintf(stderr, "lookout check: %v\n", err)
		return 1
	}
	if err != nil {
		fmt.Fprintf(stderr, "lookout check: cannot reach the Docker Engine at %s: %v\n", cfg.DockerHost, err)
		return 1
	}
	defer dc.Close()
	fmt.Fprintf(stdout, "docker engine: ok (Docker %s, API %s to %s, Lookout speaks %s; supported: %s)\n", engine.Version,
		engine.MinAPIVersion, engine.APIVersion, dc.ClientVersion(), supportedEngines)
	res, err := dc.ContainerList(ctx, client.ContainerListOptions{All: true})
	if err != nil {
		fmt.Fprintf(stderr, "lookout check: %v\n", err)
		return 1
	}
	list := res.Items
	sort.Slice(list, func(i, j int) bool { return name(list[i]) < name(list[j]) })
	fmt.Fprintln(stdout)
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CONTAINER\tSTATE\tMONITORED\tLOGS\tLABEL PROBLEMS")
	problems, refused := 0, 0
	dir := ""
	if cfg.Fluentd.Address != "" {
		dir = containersDir(ctx, cfg, dc)
	}
	sched := checks.New(nil, nil, probeOptions(ctx, cfg, dc, newLogger(cfg, stderr)))
	for _, c := range list {
		lc := labels.Parse(c.Labels)
		mon := "no"
		if lc.Monitored(cfg.MonitorAll) {
			mon = "yes"
		}
		var ic *inventory.Container // inspected when needed
		if mon == "yes" && (c.State == container.StateRunning || cfg.Fluentd.Address != "") {
			if in, err := dc.ContainerInspect(ctx, c.ID, client.ContainerInspectOptions{}); err == nil {
				ic = inventory.FromInspect(in.Container, cfg.MonitorAll)
			}
		}
		logSource := "off"
		if cfg.Fluentd.Address != "" && ic != nil && (lc.Logs.Enable == nil || *lc.Logs.Enable) {
			logSource, _ = logs.ChooseSource(cfg.Logs.Source, dir, ic)
		}
		var parts []string
		for _, p := range lc.Problems {
			parts = append(parts, p.Error())
		}
		if lc.Omitted > 0 {
			parts = append(parts, fmt.Sprintf("%d more label problem(s) not listed", lc.Omitted))
		}
		problems += len(lc.Problems) + lc.Omitted
		if ic != nil && ic.State.Running {
			// The checks' targets as the agent would judge them now.
			for _, chk := range ic.Config.Checks {
				if err := sched.Refusal(ctx, ic, chk); err != nil {
					parts = append(parts, fmt.Sprintf("check %s: refused: %v", chk.Name, err))
					refused++
				}
			}
		}
		msg := "-"
		if len(parts) > 0 {
			msg = strings.Join(parts, "; ")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", name(c), c.State, mon, logSource, msg)
	}
	_ = tw.Flush()
	if refused > 0 {
		fmt.Fprintf(stdout, "%d check(s) refused\n", refused)
	}
	if problems > 0 {
		fmt.Fprintf(stdout, "%d label problem(s)\n", problems)
	}
	if problems+refused > 0 {
		return 1
	}
	return 0
}

// printConfig lists every setting in effect, its value and where it came from. Secrets
// are never in it (config.Effective shows the files they are read from).
func printConfig(cfg config.Config, w io.Writer) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SETTING\tVALUE\tFROM")
	for _, v := range cfg.Effective() {
		val, from := v.Value, string(v.Source)
		if val == "" {
			val = "-"
		}
		if v.Via != "" {
			from += " " + v.Via
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", v.Key, val, from)
	}
	_ = tw.Flush()
}

func name(c container.Summary) string {
	if len(c.Names) > 0 {
		return strings.TrimPrefix(c.Names[0], "/")
	}
	return c.ID[:12]
}

// newResources builds the resource collector LOOKOUT_RESOURCES asks for (nil for off):
// auto reads cgroup files where it can and falls back to the one-shot stats API.
func newResources(cfg config.Config, dc *client.Client, mb *inventory.Mailbox, sink metric.Sink, log logrus.FieldLogger) (*resources.Collector, error) {
	var readers []resources.Reader
	switch cfg.Resources {
	case resources.SourceOff:
		return nil, nil
	case resources.SourceAuto, resources.SourceCgroup:
		cg, err := resources.NewCgroup(cfg.HostProc, cfg.HostCgroup, cfg.ResourcesPerDevice)
		if err == nil {
			readers = append(readers, cg)
		} else if cfg.Resources == resources.SourceCgroup {
			return nil, fmt.Errorf("resources (LOOKOUT_RESOURCES)=cgroup: %w (LOOKOUT_HOST_PROC=%s, LOOKOUT_HOST_CGROUP=%s)", err, cfg.HostProc, cfg.HostCgroup)
		} else {
			log.WithError(err).Info("resources: no cgroup files; using Docker's stats API")
		}
		if cfg.Resources == resources.SourceAuto {
			readers = append(readers, resources.NewAPI(dc))
		}
	case resources.SourceAPI:
		readers = append(readers, resources.NewAPI(dc))
	}
	// A one-shot stats call waits in the daemon for its next 1 s collection tick, not on
	// this process's CPU: in api mode many wait at once, or 200 containers take minutes.
	concurrency := 4
	if cfg.Resources == resources.SourceAPI {
		concurrency = 64
	}
	return resources.New(sink, mb, dc, resources.Options{Interval: time.Duration(cfg.Interval),
		PerDevice: cfg.ResourcesPerDevice, Concurrency: concurrency, Log: log}, readers...), nil
}

// agentHealth is /healthz: connected to Docker and reporting within three intervals.
func agentHealth(connected bool, lastBeat time.Time, cfg config.Config) error {
	if !connected {
		return errors.New("not connected to the Docker Engine")
	}
	limit := max(3*time.Duration(cfg.Interval), 30*time.Second)
	if age := time.Since(lastBeat); lastBeat.Unix() <= 0 || age > limit {
		return fmt.Errorf("no report for %s (limit %s)", age.Round(time.Second), limit)
	}
	return nil
}

// runExecd runs under Telegraf's inputs.execd: the inventory follows the engine, and each
// line of standard input gathers status, health and resources once, as line protocol on
// stdout.
func runExecd(ctx context.Context, cfg config.Config, log *logrus.Logger, in io.Reader, stdout, stderr io.Writer) error {
	dc, err := openEngine(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer dc.Close()
	inv := inventory.New(dc, inventory.Options{MonitorAll: cfg.MonitorAll, Refresh: time.Duration(cfg.Interval), Log: log})
	var resBox *inventory.Mailbox
	if cfg.Resources != resources.SourceOff {
		resBox = inv.Mailbox("resources")
	}
	res, err := newResources(cfg, dc, resBox, nil, log)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Add(1)
	go func() { defer wg.Done(); inv.Run(ctx) }()
	defer cancel() // runs before wg.Wait
	// The first gather waits (a little) for the first list of containers.
	for deadline := time.Now().Add(10 * time.Second); !inv.Connected() && time.Now().Before(deadline); {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(50 * time.Millisecond):
		}
	}
	inputs := []telegraf.Input{collectors.NewStatus(inv)}
	if res != nil {
		inputs = append(inputs, res)
	}
	return execd.Run(ctx, in, stdout, stderr, inputs...)
}

// containersDir is Docker's containers directory as the agent reads it: logs.containers_dir,
// else DockerRootDir/containers of a local engine (a unix:// socket); "" for none.
func containersDir(ctx context.Context, cfg config.Config, dc *client.Client) string {
	if cfg.Logs.ContainersDir != "" {
		return cfg.Logs.ContainersDir
	}
	if !strings.HasPrefix(dc.DaemonHost(), "unix://") {
		return ""
	}
	ictx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	info, err := dc.Info(ictx, client.InfoOptions{})
	if err != nil || info.Info.DockerRootDir == "" {
		return ""
	}
	return filepath.Join(info.Info.DockerRootDir, "containers")
}

// fluentdAuth returns the shared-key handshake settings, nil without a shared key. The
// hostname it introduces itself with defaults to the node's (Docker's), else the agent's.
func fluentdAuth(ctx context.Context, f config.Fluentd, dc *client.Client) *forward.Auth {
	if f.SharedKey == "" {
		return nil
	}
	a := &forward.Auth{SharedKey: f.SharedKey, SelfHostname: f.SelfHostname, Username: f.Username, Password: f.Password}
	if a.SelfHostname == "" {
		ictx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if info, err := dc.Info(ictx, client.InfoOptions{}); err == nil {
			a.SelfHostname = info.Info.Name
		}
		cancel()
	}
	if a.SelfHostname == "" {
		a.SelfHostname, _ = os.Hostname()
	}
	return a
}
