// Command spanrelay measures the span relay: UDP jaeger.thrift compact packets in, batches
// out to one Jaeger collector (all-in-one v1.62, in memory). It runs Lookout's relay and,
// in the same run against the same collector, jaeger-agent v1.62, one after the other at
// each rate of a ladder, and prints for each the highest rate of spans per second relayed
// with zero drops, the CPU seconds per 10,000 spans, and the ratios. With -baseline, a
// second Lookout binary (the build from before a change) relays too, started the same way
// and sent the same packets at each rate, the two Lookouts in alternating order, and the
// ratios new/baseline are printed with their peak RSS. Run it with `make bench-spans`
// (BASELINE=<git ref> picks the baseline build).
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/uber/jaeger-client-go/thrift"
	"github.com/uber/jaeger-client-go/thrift-gen/agent"
	"github.com/uber/jaeger-client-go/thrift-gen/jaeger"

	"github.com/lookout-agent/lookout/internal/testpeer"
)

func main() {
	rates := flag.String("rates", "2000,5000,10000,20000,40000,80000", "span rates to try, per second")
	step := flag.Duration("step", 4*time.Second, "how long each rate is sent")
	perPacket := flag.Int("spans-per-packet", 10, "spans in one UDP packet")
	lookoutBin := flag.String("lookout", "bin/lookout", "the lookout binary")
	baselineBin := flag.String("baseline", "", "a second lookout binary (the build before a change) run as a relay too, the same way; empty: none")
	flag.Parse()
	var ladder []int
	for _, r := range strings.Split(*rates, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(r))
		if err != nil || n <= 0 {
			fmt.Fprintf(os.Stderr, "spanrelay: -rates %q: want positive whole numbers\n", *rates)
			os.Exit(2)
		}
		ladder = append(ladder, n)
	}
	if err := run(ladder, *step, *perPacket, *lookoutBin, *baselineBin); err != nil {
		fmt.Fprintln(os.Stderr, "spanrelay:", err)
		os.Exit(1)
	}
}

// relay is one relay under test: where to send, how many spans it has forwarded so far,
// and its process for CPU time.
type relay struct {
	name      string
	title     string // the column heading
	addr      string
	cmd       *exec.Cmd
	forwarded func() (int64, error)
}

func cpuTicks(pid int) int64 {
	t, _ := testpeer.CPUTicks(pid)
	return t
}

const ticksPerSecond = 100 // USER_HZ on Linux

func run(ladder []int, step time.Duration, perPacket int, lookoutBin, baselineBin string) error {
	root, _ := os.Getwd()
	work, err := os.MkdirTemp("", "lookout-spanrelay-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	aio, err := testpeer.JaegerBin(root, "jaeger-all-in-one")
	if err != nil {
		return err
	}
	agentBin, err := testpeer.JaegerBin(root, "jaeger-agent")
	if err != nil {
		return err
	}
	j, err := testpeer.StartJaeger(aio, filepath.Join(work, "jaeger"))
	if err != nil {
		return err
	}
	defer j.Stop()

	lk, err := startLookout("lookout", lookoutBin, j.CollectorURL, work)
	if err != nil {
		return err
	}
	defer stop(lk.cmd)
	relays := []*relay{lk}
	if baselineBin != "" {
		bl, err := startLookout("baseline", baselineBin, j.CollectorURL, work)
		if err != nil {
			return err
		}
		defer stop(bl.cmd)
		relays = append(relays, bl)
	}
	ja, err := startJaegerAgent(agentBin, j.CollectorGRPC, work)
	if err != nil {
		return err
	}
	defer stop(ja.cmd)
	relays = append(relays, ja)
	nr := len(relays)

	packets := makePackets(512, perPacket)
	type result struct {
		rate      int
		sent, fwd []int64
		cpu       []float64 // CPU seconds
		cpuPer10k []float64
		zeroDrop  []bool
	}
	var results []result
	fmt.Printf("lookout = %s\n", testpeer.AgentVersion(lookoutBin))
	if baselineBin != "" {
		fmt.Printf("baseline = %s, the same settings, sent to in alternating order with lookout\n", testpeer.AgentVersion(baselineBin))
	}
	var head, cols strings.Builder
	for _, rl := range relays {
		fmt.Fprintf(&head, " | %-43s", rl.title)
		fmt.Fprintf(&cols, " | %10s %10s %10s %10s", "sent", "forwarded", "drops", "cpu s/10k")
	}
	fmt.Printf("%-9s%s\n%-9s%s\n", "", head.String(), "spans/s", cols.String())
	for k, rate := range ladder {
		r := result{rate: rate, sent: make([]int64, nr), fwd: make([]int64, nr), cpu: make([]float64, nr),
			cpuPer10k: make([]float64, nr), zeroDrop: make([]bool, nr)}
		order := make([]int, nr)
		for i := range order {
			order[i] = i
		}
		if baselineBin != "" && k%2 == 1 {
			order[0], order[1] = 1, 0 // the two Lookouts take turns going first
		}
		for _, i := range order {
			rl := relays[i]
			before, err := settle(rl)
			if err != nil {
				return fmt.Errorf("%s: %w", rl.name, err)
			}
			cpu0 := cpuTicks(rl.cmd.Process.Pid)
			sent, _, err := send(rl.addr, packets, perPacket, rate, step)
			if err != nil {
				return err
			}
			after, err := settle(rl)
			if err != nil {
				return fmt.Errorf("%s: %w", rl.name, err)
			}
			r.cpu[i] = float64(cpuTicks(rl.cmd.Process.Pid)-cpu0) / ticksPerSecond
			r.sent[i], r.fwd[i] = sent, after-before
			r.zeroDrop[i] = r.fwd[i] >= sent
			r.cpuPer10k[i] = r.cpu[i] / float64(sent) * 10000
		}
		results = append(results, r)
		fmt.Printf("%-9d", rate)
		for i := range relays {
			fmt.Printf(" | %10d %10d %10d %10.3f", r.sent[i], r.fwd[i], r.sent[i]-r.fwd[i], r.cpuPer10k[i])
		}
		fmt.Println()
	}
	// best is the highest rate relay i forwarded without drops and its CPU per 10,000 there.
	best := func(i int) (int, float64) {
		rate, cpu := 0, 0.0
		for _, r := range results {
			if r.zeroDrop[i] && r.rate > rate {
				rate, cpu = r.rate, r.cpuPer10k[i]
			}
		}
		return rate, cpu
	}
	// CPU is compared at the highest rate both relayed without drops.
	cpuAtCommon := func(a, b int) (int, [2]float64) {
		common, at := 0, [2]float64{}
		for _, r := range results {
			if r.zeroDrop[a] && r.zeroDrop[b] && r.rate > common {
				common, at = r.rate, [2]float64{r.cpuPer10k[a], r.cpuPer10k[b]}
			}
		}
		return common, at
	}
	lkI, jaI := 0, nr-1
	bestLk, _ := best(lkI)
	bestJa, _ := best(jaI)
	fmt.Printf("\nhighest rate with zero drops: lookout %d spans/s, jaeger-agent %d spans/s (ratio %.2fx)\n",
		bestLk, bestJa, ratio(float64(bestLk), float64(bestJa)))
	if common, cpuAt := cpuAtCommon(lkI, jaI); common > 0 {
		fmt.Printf("CPU seconds per 10,000 spans at %d spans/s: lookout %.3f, jaeger-agent %.3f\n", common, cpuAt[0], cpuAt[1])
		fmt.Printf("spans per CPU-second: lookout %.0f, jaeger-agent %.0f (ratio %.2fx)\n",
			10000/cpuAt[0], 10000/cpuAt[1], ratio(cpuAt[1], cpuAt[0]))
	}
	if baselineBin == "" {
		return nil
	}
	// Lookout against its baseline: CPU over every rate both relayed without drops (more
	// clock ticks than one rate alone), peak RSS over the whole run.
	blI := 1
	bestBl, _ := best(blI)
	var cpu, spans [2]float64
	rates := 0
	for _, r := range results {
		if r.zeroDrop[lkI] && r.zeroDrop[blI] {
			rates++
			cpu[0], cpu[1] = cpu[0]+r.cpu[lkI], cpu[1]+r.cpu[blI]
			spans[0], spans[1] = spans[0]+float64(r.sent[lkI]), spans[1]+float64(r.sent[blI])
		}
	}
	rss := [2]float64{float64(testpeer.PeakRSSKiB(relays[lkI].cmd.Process.Pid)) / 1024,
		float64(testpeer.PeakRSSKiB(relays[blI].cmd.Process.Pid)) / 1024}
	fmt.Printf("\nlookout / baseline: highest rate with zero drops %d vs %d spans/s (ratio %.2fx)\n",
		bestLk, bestBl, ratio(float64(bestLk), float64(bestBl)))
	if rates > 0 {
		per := [2]float64{cpu[0] / spans[0] * 10000, cpu[1] / spans[1] * 10000}
		fmt.Printf("CPU seconds per 10,000 spans over the %d rates both relayed without drops: lookout %.3f, baseline %.3f (ratio %.2fx)\n",
			rates, per[0], per[1], ratio(per[0], per[1]))
	}
	fmt.Printf("peak RSS (VmHWM): lookout %.1f MiB, baseline %.1f MiB (ratio %.2fx)\n", rss[0], rss[1], ratio(rss[0], rss[1]))
	return nil
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

func stop(cmd *exec.Cmd) {
	_ = cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// settle waits until the relay's forwarded count stops moving and returns it.
func settle(rl *relay) (int64, error) {
	last, same := int64(-1), 0
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		n, err := rl.forwarded()
		if err == nil && n == last {
			same++
			if same >= 3 {
				return n, nil
			}
		} else {
			same = 0
		}
		last = n
		time.Sleep(700 * time.Millisecond)
	}
	return last, fmt.Errorf("forwarded count did not settle within 60s")
}

// send paces packets to addr at rate spans per second for d; it returns spans sent.
func send(addr string, packets [][]byte, perPacket, rate int, d time.Duration) (int64, time.Duration, error) {
	conn, err := net.Dial("udp", addr)
	if err != nil {
		return 0, 0, err
	}
	defer conn.Close()
	start := time.Now()
	var sent int64
	i := 0
	for {
		el := time.Since(start)
		if el >= d {
			return sent, el, nil
		}
		target := int64(el.Seconds() * float64(rate))
		for sent+int64(perPacket) <= target {
			if _, err := conn.Write(packets[i%len(packets)]); err == nil {
				sent += int64(perPacket)
			}
			i++
		}
		time.Sleep(500 * time.Microsecond)
	}
}

// makePackets encodes n emitBatch packets of perPacket spans each, as jaeger-client-go
// sends them: compact protocol, a process with the client's tags, spans with a few tags.
func makePackets(n, perPacket int) [][]byte {
	ctx := context.Background()
	out := make([][]byte, n)
	str := func(k, v string) *jaeger.Tag { return &jaeger.Tag{Key: k, VType: jaeger.TagType_STRING, VStr: &v} }
	for i := range out {
		b := &jaeger.Batch{Process: &jaeger.Process{ServiceName: "bench", Tags: []*jaeger.Tag{
			str("jaeger.version", "Go-2.30.0"), str("hostname", "bench"), str("ip", "127.0.0.1"), str("client-uuid", "4f1d2a")}}}
		hi, lo := int64(rand.Uint64()), int64(rand.Uint64())
		for s := range perPacket {
			b.Spans = append(b.Spans, &jaeger.Span{TraceIdHigh: hi, TraceIdLow: lo, SpanId: int64(rand.Uint64()),
				ParentSpanId: int64(s), OperationName: "GET /api/orders", Flags: 1, StartTime: time.Now().UnixMicro(),
				Duration: 1234, Tags: []*jaeger.Tag{str("span.kind", "server"), str("http.method", "GET"),
					str("http.url", "/api/orders?id=42"), str("component", "net/http")}})
		}
		buf := thrift.NewTMemoryBuffer()
		p := thrift.NewTCompactProtocolConf(buf, &thrift.TConfiguration{})
		_ = p.WriteMessageBegin(ctx, "emitBatch", thrift.ONEWAY, int32(i))
		args := agent.NewAgentEmitBatchArgs()
		args.Batch = b
		_ = args.Write(ctx, p)
		_ = p.WriteMessageEnd(ctx)
		_ = p.Flush(ctx)
		out[i] = append([]byte(nil), buf.Bytes()...)
	}
	return out
}

// lineWriter keeps the newest value of a field of the agent's line protocol output.
type lineWriter struct {
	re   *regexp.Regexp
	last chan int64
}

func (w *lineWriter) Write(p []byte) (int, error) {
	for _, m := range w.re.FindAllSubmatch(p, -1) {
		n, _ := strconv.ParseInt(string(m[1]), 10, 64)
		select {
		case <-w.last:
		default:
		}
		w.last <- n
	}
	return len(p), nil
}

// startLookout starts one Lookout binary as a relay; name tells its files apart, every
// binary runs the same way.
func startLookout(name, bin, collector, work string) (*relay, error) {
	addr := fmt.Sprintf("127.0.0.1:%d", testpeer.FreeUDPPort())
	lw := &lineWriter{re: regexp.MustCompile(`(?m)^lookout_spans_export[ ,].*[ ,]forwarded=(\d+)i`), last: make(chan int64, 1)}
	cmd := exec.Command(bin, "run")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "LOOKOUT_JAEGER_ENDPOINT=" + collector, "LOOKOUT_JAEGER_COMPACT_LISTEN=" + addr,
		// An unreachable engine: the figure is the relay's alone, not the checks of whatever
		// containers share the machine. Packets come from 127.0.0.1, no container's address.
		"LOOKOUT_DOCKER_HOST=unix://" + filepath.Join(work, "no-docker.sock"),
		"LOOKOUT_PROBE_SPANS=false", "LOOKOUT_INTERVAL=1s", "LOOKOUT_HEARTBEAT_FILE=" + filepath.Join(work, name+".hb"), "LOOKOUT_LOG_LEVEL=warn"}
	cmd.Stdout = lw
	logf, err := os.Create(filepath.Join(work, name+".log"))
	if err != nil {
		return nil, err
	}
	cmd.Stderr = logf
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	var cur int64 = -1
	title := "lookout relay"
	if name != "lookout" {
		title = "lookout relay, " + name
	}
	return &relay{name: name, title: title, addr: addr, cmd: cmd, forwarded: func() (int64, error) {
		select {
		case n := <-lw.last:
			cur = n
		default:
		}
		if cur < 0 {
			return 0, fmt.Errorf("no lookout_spans_export point yet")
		}
		return cur, nil
	}}, nil
}

func startJaegerAgent(bin, collectorGRPC, work string) (*relay, error) {
	addr := fmt.Sprintf("127.0.0.1:%d", testpeer.FreeUDPPort())
	admin := fmt.Sprintf("127.0.0.1:%d", testpeer.FreePort())
	cmd := exec.Command(bin, "--reporter.grpc.host-port="+collectorGRPC,
		"--processor.jaeger-compact.server-host-port="+addr,
		fmt.Sprintf("--processor.jaeger-binary.server-host-port=127.0.0.1:%d", testpeer.FreeUDPPort()),
		fmt.Sprintf("--processor.zipkin-compact.server-host-port=127.0.0.1:%d", testpeer.FreeUDPPort()),
		fmt.Sprintf("--http-server.host-port=127.0.0.1:%d", testpeer.FreePort()),
		"--admin.http.host-port="+admin, "--log-level=warn")
	logf, err := os.Create(filepath.Join(work, "jaeger-agent.log"))
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return &relay{name: "jaeger-agent", title: "jaeger-agent v1.62", addr: addr, cmd: cmd, forwarded: func() (int64, error) {
		return promCounter("http://"+admin+"/metrics", "jaeger_agent_reporter_spans_submitted_total")
	}}, nil
}

// promCounter sums the samples of a Prometheus counter.
func promCounter(url, name string) (int64, error) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var sum float64
	found := false
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) || (len(line) > len(name) && line[len(name)] != '{' && line[len(name)] != ' ') {
			continue
		}
		f := strings.Fields(line)
		v, _ := strconv.ParseFloat(f[len(f)-1], 64)
		sum += v
		found = true
	}
	if !found {
		return 0, fmt.Errorf("no %s in %s", name, url)
	}
	return int64(sum), nil
}
