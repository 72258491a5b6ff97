package labels

import (
	"fmt"
	"strings"
	"testing"
)

// problemFor returns the Problem about key, failing the test when there is none.
func problemFor(t *testing.T, c Config, key string) Problem {
	t.Helper()
	for _, p := range c.Problems {
		if p.Key == key {
			return p
		}
	}
	t.Fatalf("no problem for %s; problems: %v", key, c.Problems)
	return Problem{}
}

// A value of 1 MiB on each label Lookout parses is refused with the bound, and affects
// only what that label configures: the container's other labels work.
func TestHugeValues(t *testing.T) {
	huge := strings.Repeat("a", 1<<20)
	c := Parse(map[string]string{
		"lookout.enable":              "true",
		"lookout.tags.big":            huge,
		"lookout.tags.team":           "core",
		"lookout.check.big":           "http://:8080/" + huge,
		"lookout.check.web":           "http://:8080/health",
		"lookout.check.web.body":      huge,
		"lookout.check.web.interval":  "2s",
		"lookout.check.web.header.X":  huge,
		"lookout.check.web.header.Ok": "yes",
		"lookout.logs.tag":            huge,
		"lookout.logs.multiline":      huge,
		"lookout.unknown":             huge,
	})
	for key, want := range map[string]string{
		"lookout.tags.big":           "tag value of 1048576 bytes is too long; at most 256 bytes allowed; tag not added",
		"lookout.check.big":          "value of 1048589 bytes is too long; at most 8192 bytes allowed; check big is not run",
		"lookout.check.web.body":     "value of 1048576 bytes is too long; at most 8192 bytes allowed; using the default (any body)",
		"lookout.check.web.header.X": "value of 1048576 bytes is too long; at most 8192 bytes allowed; header not sent",
		"lookout.logs.tag":           "value of 1048576 bytes is too long; at most 8192 bytes allowed; the label is ignored",
		"lookout.logs.multiline":     "value of 1048576 bytes is too long; at most 8192 bytes allowed; the label is ignored",
		"lookout.unknown":            "value of 1048576 bytes is too long; at most 8192 bytes allowed; the label is ignored",
	} {
		if p := problemFor(t, c, key); p.Reason != want {
			t.Errorf("%s: reason %q, want %q", key, p.Reason, want)
		}
	}
	if len(c.Problems) != 7 || c.Omitted != 0 {
		t.Errorf("%d problems (%d omitted), want 7: %v", len(c.Problems), c.Omitted, c.Problems)
	}
	if c.Enable == nil || !*c.Enable || len(c.Tags) != 1 || c.Tags["team"] != "core" {
		t.Errorf("the other labels must work: enable %v, tags %v", c.Enable, c.Tags)
	}
	if len(c.Checks) != 1 || c.Checks[0].Name != "web" || c.Checks[0].Body != nil ||
		c.Checks[0].Interval.String() != "2s" || c.Checks[0].Headers.Get("Ok") != "yes" || len(c.Checks[0].Headers) != 1 {
		t.Errorf("check web must run with its good settings: %+v", c.Checks)
	}
	// Messages and points show a cut value.
	msg := problemFor(t, c, "lookout.tags.big").Error()
	if len(msg) > 512 || !strings.Contains(msg, "(1048576 bytes)") {
		t.Errorf("message of %d bytes, want it short and saying the size: %.300s", len(msg), msg)
	}
}

// A container with 10,000 labels: checks and tags beyond their bounds are refused one by
// one (the first by name are kept), and only the first MaxProblems problems are listed.
func TestTenThousandLabels(t *testing.T) {
	l := map[string]string{"lookout.enable": "true"}
	for i := range 4000 {
		l[fmt.Sprintf("lookout.check.c%04d", i)] = "tcp://:9000"
		l[fmt.Sprintf("lookout.check.c%04d.interval", i)] = "5s"
		l[fmt.Sprintf("lookout.tags.t%04d", i)] = "v"
	}
	for i := range 1000 {
		l[fmt.Sprintf("org.example.l%04d", i)] = "not ours"
		l[fmt.Sprintf("lookout.nope%04d", i)] = "x"
	}
	if len(l) != 14001 {
		t.Fatalf("%d labels", len(l))
	}
	c := Parse(l)
	if len(c.Checks) != MaxChecks || c.Checks[0].Name != "c0000" || c.Checks[MaxChecks-1].Name != "c0031" ||
		c.Checks[0].Interval.String() != "5s" {
		t.Errorf("%d checks, want the first %d by name with their settings", len(c.Checks), MaxChecks)
	}
	if len(c.Tags) != MaxTags || c.Tags["t0000"] != "v" || c.Tags["t0031"] != "v" || c.Tags["t0032"] != "" {
		t.Errorf("%d tags, want the first %d by key", len(c.Tags), MaxTags)
	}
	// 3,968 checks and 3,968 tags refused, 1,000 unknown keys.
	if total := len(c.Problems) + c.Omitted; len(c.Problems) != MaxProblems || total != 2*(4000-32)+1000 {
		t.Errorf("%d problems listed, %d in all", len(c.Problems), total)
	}
	if p := problemFor(t, c, "lookout.check.c0032"); p.Reason != "at most 32 checks per container; the first 32 by name are run; check c0032 is not run" {
		t.Errorf("reason %q", p.Reason)
	}
	if c.Enable == nil || !*c.Enable {
		t.Error("lookout.enable must work")
	}
}

func TestHeaderBound(t *testing.T) {
	l := map[string]string{"lookout.check.w": "http://:80/"}
	for i := range MaxHeaders + 3 {
		l[fmt.Sprintf("lookout.check.w.header.X-%02d", i)] = "v"
	}
	c := Parse(l)
	if len(c.Checks) != 1 || len(c.Checks[0].Headers) != MaxHeaders || len(c.Problems) != 3 {
		t.Fatalf("checks %v, problems %v", c.Checks, c.Problems)
	}
	if p := problemFor(t, c, "lookout.check.w.header.X-34"); !strings.Contains(p.Reason, "at most 32 header.* settings per check") {
		t.Errorf("reason %q", p.Reason)
	}
}

func TestTagKeyBound(t *testing.T) {
	k := "lookout.tags." + strings.Repeat("k", MaxTagKeySize+1)
	c := Parse(map[string]string{k: "v", "lookout.tags.ok": strings.Repeat("v", MaxTagValueSize)})
	if len(c.Tags) != 1 || len(c.Problems) != 1 || !strings.Contains(problemFor(t, c, k).Reason, "tag key of 129 bytes is too long; at most 128") {
		t.Fatalf("tags %v, problems %v", c.Tags, c.Problems)
	}
	if p := c.Problems[0]; len(p.ShownKey()) > 150 {
		t.Errorf("shown key of %d bytes", len(p.ShownKey()))
	}
}

// Patterns: Go's engine is linear in the input, so the bound is on the pattern's size
// and its compiled program.
func TestPatternBounds(t *testing.T) {
	for _, tt := range []struct {
		pattern, want string // want "" = accepted
	}{
		{`^\S`, ""},
		{`^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}[.,]\d{3} (ERROR|WARN|INFO|DEBUG|TRACE) `, ""},
		{`(.*a){20}y`, ""}, // nasty (103 instructions), accepted: matching stays linear
		{`(?:a{1,30}){1,30}y`, "pattern compiles to 1802 instructions, too costly to match; at most 500 allowed"},
		{strings.Repeat("a", MaxPatternSize+1), "pattern of 1025 bytes is too long; at most 1024 bytes allowed"},
		{`(`, "not a Go regular expression"},
	} {
		for _, key := range []string{"lookout.logs.multiline", "lookout.check.w.body"} {
			c := Parse(map[string]string{"lookout.check.w": "http://:80/", key: tt.pattern})
			if tt.want == "" {
				if len(c.Problems) != 0 {
					t.Errorf("%s=%s: %v", key, tt.pattern, c.Problems)
				}
				continue
			}
			if p := problemFor(t, c, key); !strings.Contains(p.Reason, tt.want) {
				t.Errorf("%s=%.40s: reason %q, want %q", key, tt.pattern, p.Reason, tt.want)
			}
			if len(c.Checks) != 1 || c.Checks[0].Body != nil || c.Logs.Multiline != nil {
				t.Errorf("%s=%.40s: the check must run without a body pattern, logs line by line", key, tt.pattern)
			}
		}
	}
}
