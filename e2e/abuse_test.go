package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/lookout-agent/lookout/internal/testpeer"
)

// TestAbuseContainers: what containers can throw at the agent (issue 13 item 2), one
// static agent with every feature on (checks, logs to Fluentd, resources, spans to
// Jaeger) through all of it, its peak resident memory under the stack's 128M limit:
// a label value of 1 MiB and a container with 10,000 labels, pathological regular
// expressions, a line of 100 MiB without a newline through the log file and through the
// logs API, a multiline record without end, an HTTP check target answering with a body
// without end and with headers without end.
//
// The agent runs as the stack runs it, with the runtime's soft memory limit it sets
// itself there (startStaticAgent).
func TestAbuseContainers(t *testing.T) {
	f := startFluentd(t)
	j := startJaeger(t)
	db := dbName(t)
	a := startStaticAgent(t, influxEnv(db, "LOOKOUT_FLUENTD_ADDRESS="+f.Addr,
		"LOOKOUT_JAEGER_ENDPOINT="+j.CollectorURL, "LOOKOUT_SPANS_FLUSH_INTERVAL=200ms")...)
	p := "abuse-" + runID

	t.Run("labels", func(t *testing.T) {
		dc, err := client.New(client.FromEnv)
		if err != nil {
			t.Fatal(err)
		}
		defer dc.Close()
		huge := strings.Repeat("a", 1<<20)
		// 1 MiB on each label Lookout parses; a nasty but accepted body pattern; good
		// labels beside them.
		big := map[string]string{"lookout.enable": "true", "lookout-test.run": runID,
			"lookout.tags.big": huge, "lookout.tags.team": "core", "lookout.logs.tag": huge,
			"lookout.logs.multiline": huge, "lookout.check.big": "http://:8080/" + huge,
			"lookout.check.web": "http://:8080/health", "lookout.check.web.interval": "1s",
			"lookout.check.web.body": `(.*o){1,5}k`, "lookout.check.web.header.X-Big": huge,
		}
		// 10,000 labels: 5,000 checks and 5,000 tags, a pathological multiline pattern.
		many := map[string]string{"lookout.enable": "true", "lookout-test.run": runID,
			"lookout.logs.multiline": `(?:a{1,30}){1,30}y`}
		for i := range 5000 {
			many[fmt.Sprintf("lookout.check.c%04d", i)] = "tcp://:9000"
			many[fmt.Sprintf("lookout.tags.t%04d", i)] = "v"
		}
		for _, c := range []struct {
			name   string
			labels map[string]string
		}{{p + "-bigl", big}, {p + "-many", many}} {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			_, err := dc.ContainerCreate(ctx, client.ContainerCreateOptions{Name: c.name,
				Config: &container.Config{Image: testImage, Labels: c.labels}})
			if err == nil {
				_, err = dc.ContainerStart(ctx, c.name, client.ContainerStartOptions{})
			}
			cancel()
			t.Cleanup(func() { _, _ = exec.Command("docker", "rm", "-f", c.name).CombinedOutput() })
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
		}
		// Every refusal counted: 5 on the first (the 1 MiB tag value, lookout.logs.tag,
		// lookout.logs.multiline, check big's target and the header), 4,968 checks, 4,968
		// tags and the pattern on the second.
		const want = 5 + 2*(5000-32) + 1
		eventually(t, 60*time.Second, "the label problems counted", func() bool {
			rows := sharedInflx.query(t, db, `SELECT last(label_problems) FROM lookout_inventory`)
			return len(rows) == 1 && rows[0].Int("last") >= want
		})
		// The bad labels affect only what they configure: check web (with its nasty
		// pattern) passes; the first 32 checks by name of the second run, with the first
		// 32 tags by key on their points.
		waitCheck(t, db, p+"-bigl", "web", "success", "")
		// Its TCP checks: the image's own HEALTHCHECK is a check too ("healthcheck", of
		// type docker), whose first success comes when it comes.
		var checksSeen []testpeer.Row
		eventually(t, 60*time.Second, "the 32 checks of the container with 10,000 labels", func() bool {
			checksSeen = sharedInflx.query(t, db, fmt.Sprintf(
				`SELECT count(success) FROM lookout_check WHERE container_name='%s' AND result='success' AND type='tcp' GROUP BY "check"`, p+"-many"))
			return len(checksSeen) >= 32
		})
		if len(checksSeen) != 32 || checksSeen[0].Str("check") != "c0000" || checksSeen[31].Str("check") != "c0031" {
			t.Errorf("the TCP checks of the container with 10,000 labels: %d, want c0000 to c0031: %v", len(checksSeen), checksSeen)
		}
		eventually(t, 30*time.Second, "check c0031's points with tag t0031", func() bool {
			return len(sharedInflx.query(t, db, fmt.Sprintf(
				`SELECT count(success) FROM lookout_check WHERE container_name='%s' AND t0031='v' AND "check"='c0031'`, p+"-many"))) == 1
		})
		if rows := sharedInflx.query(t, db, `SHOW TAG KEYS FROM lookout_check`); slices.ContainsFunc(rows, func(r testpeer.Row) bool {
			return r.Str("tagKey") == "t0032" || r.Str("tagKey") == "big"
		}) {
			t.Errorf("a tag beyond the bounds reached the points: %v", rows)
		}
		// lookout_label_problem points show the value cut, and the reason with the bound.
		rows := sharedInflx.query(t, db, fmt.Sprintf(
			`SELECT value, reason FROM lookout_label_problem WHERE container_name='%s' AND "key"='lookout.tags.big' LIMIT 1`, p+"-bigl"))
		if len(rows) != 1 || len(rows[0].Str("value")) > 200 ||
			rows[0].Str("reason") != "tag value of 1048576 bytes is too long; at most 256 bytes allowed; tag not added" {
			t.Errorf("lookout_label_problem for lookout.tags.big: %v", rows)
		}
		a.underMemoryLimit(t, "labels")
	})

	t.Run("logs", func(t *testing.T) {
		const lineSize, after = 100 << 20, 1000
		runLogContainer(t, p+"-file", []string{"--label", "lookout.enable=true"}, "big", fmt.Sprint(lineSize), fmt.Sprint(after))
		// The local driver's files hold the whole line (max-size 200m): Docker 20.10's follow
		// of a local log rotating under a line this long sends some of its 16 KiB pieces
		// twice and can go silent (curl on the logs API alone, no agent: 6,552 pieces for
		// 6,400; docs/logs.md#limits), which no reader can tell from the container's own.
		runLogContainer(t, p+"-api", []string{"--label", "lookout.enable=true", "--log-driver", "local", "--log-opt", "max-size=200m"},
			"big", fmt.Sprint(lineSize), fmt.Sprint(after))
		// A multiline record without end, with a nasty but accepted pattern.
		runLogContainer(t, p+"-record", []string{"--label", "lookout.enable=true",
			"--label", `lookout.logs.multiline=^(.*S){1,4}TART`}, "record", "20000")
		marker := fmt.Sprintf(" [truncated by lookout: %d of %d bytes kept]", 1<<20, lineSize)
		for _, name := range []string{p + "-file", p + "-api"} {
			eventually(t, 120*time.Second, name+": done", func() bool { return countLines(recordsOf(t, f, name))["done"] == 1 })
			recs := recordsOf(t, f, name)
			if len(recs) != after+3 {
				t.Errorf("%s: %d records, want %d", name, len(recs), after+3)
			}
			lines := countLines(recs)
			for i := 1; i <= after; i++ {
				if n := lines[fmt.Sprintf("after %d", i)]; n != 1 {
					t.Fatalf("%s: line %q arrived %d times, want once", name, fmt.Sprintf("after %d", i), n)
				}
			}
			want := strings.Repeat("x", 1<<20) + marker
			if lines["big start"] != 1 || len(recs) < 2 || string(recs[1].Log()) != want {
				got := ""
				if len(recs) >= 2 {
					l := recs[1].Log()
					got = fmt.Sprintf("%d bytes ending %q", len(l), l[max(0, len(l)-64):])
				}
				t.Errorf("%s: want \"big start\" then the 100 MiB line cut to 1 MiB with the marker %q; \"big start\" %d times, the second record %s",
					name, marker, lines["big start"], got)
			}
		}
		eventually(t, 60*time.Second, "the endless multiline record", func() bool {
			// "done" does not start a record: it ends the last one.
			recs := recordsOf(t, f, p+"-record")
			return len(recs) > 0 && strings.HasSuffix(string(recs[len(recs)-1].Log()), "\ndone")
		})
		recs := recordsOf(t, f, p+"-record")
		lines := 0
		for i, r := range recs {
			if len(r.Log()) > 1<<20 {
				t.Errorf("multiline record %d of %d bytes, above the record size", i, len(r.Log()))
			}
			lines += strings.Count(string(r.Log()), "  more ")
		}
		// 20,000 lines of 101 bytes with their newlines: 2.0 MB, two records of at most 1 MiB.
		if lines != 20000 || len(recs) < 2 || !strings.HasPrefix(string(recs[0].Log()), "START\n  more 000001") {
			t.Errorf("%d multiline records holding %d lines, want every one of 20,000 lines once, split by size", len(recs), lines)
		}
		eventually(t, 30*time.Second, "the truncated and split counters", func() bool {
			rows := sharedInflx.query(t, db, `SELECT last(truncated) AS truncated, last(split) AS split FROM lookout_logs_total`)
			return len(rows) == 1 && rows[0].Int("truncated") >= 2 && rows[0].Int("split") >= 1
		})
		a.underMemoryLimit(t, "logs: a 100 MiB line through the file and the API, an endless multiline record")
	})

	t.Run("http", func(t *testing.T) {
		for _, mode := range []string{"endless-body", "endless-headers"} {
			name := p + "-" + mode
			runContainer(t, name, "--label", "lookout.enable=true", "--label", "lookout.check.web=http://:8080/health",
				"--label", "lookout.check.web.interval=2s", "--label", "lookout.check.web.body=^never")
			docker(t, "exec", name, "/testsvc", "http", mode)
		}
		waitCheck(t, db, p+"-endless-body", "web", "failure", "body does not match")
		waitCheck(t, db, p+"-endless-headers", "web", "error", "header")
		a.underMemoryLimit(t, "http: endless body and endless headers")
	})

	eventually(t, 30*time.Second, "check spans in Jaeger", func() bool {
		s, _ := j.Services()
		return slices.Contains(s, "lookout")
	})
	a.underMemoryLimit(t, "every scenario")
}
