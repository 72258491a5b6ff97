package labels

import (
	"strings"
	"testing"
	"time"
)

// FuzzParse: labels are written by whoever starts a container. Parse never panics, and
// what it returns keeps its promises whatever the input: every Problem names a lookout.*
// label of the input with its value and a reason, checks are declared by a label and
// sorted, with a known type and sane timings, and tags never replace the ones Lookout
// sets. The input is label lines, "key=value" each; go test replays the seeds below,
// `make fuzz` searches further.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"lookout.enable=true\nlookout.check.web=http://:8080/health\nlookout.check.web.interval=2s",
		"lookout.check.db=tcp://:5432\nlookout.check.db.send=PING\nlookout.check.db.expect=PONG\nlookout.check.db.timeout=9s",
		"lookout.check.x=exec:pg_isready -U \"a b\"\nlookout.check.x.rise=3\nlookout.check.x.fall=0",
		"lookout.check.w=https://:443/\nlookout.check.w.status=200-299,418\nlookout.check.w.body=^ok(a+)+$\nlookout.check.w.header.X-A=b",
		"lookout.tags.team=core\nlookout.tags.node=evil\nlookout.tags.=x\nlookout.tags.a b=c",
		"lookout.logs=false\nlookout.logs.tag={{.Name}}\nlookout.logs.multiline=^\\S",
		"lookout.logs.tag={{.Name\nlookout.logs.multiline=(\nlookout.nope=1\nlookout.enable=maybe",
		"lookout.check.UPPER=http://:1/\nlookout.check.a.b.c=1\nlookout.check.=x\nlookout.check.t.interval=-1s",
		"com.example=1\nlookout.check.h=http://[::1]:80/\nlookout.check.h.method=FETCH",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		l := map[string]string{}
		for _, line := range strings.Split(in, "\n") {
			k, v, _ := strings.Cut(line, "=")
			l[k] = v
		}
		c := Parse(l)
		for _, p := range c.Problems {
			if v, ok := l[p.Key]; !ok || (v != p.Value && (len(v) <= MaxValueSize || p.Value != v[:shownCut(v)])) || !strings.HasPrefix(p.Key, Prefix) {
				t.Fatalf("problem %q=%q names no lookout label of the input", p.Key, p.Value)
			}
			if p.Reason == "" {
				t.Fatalf("problem %q without a reason", p.Key)
			}
		}
		for k := range c.Tags {
			if reserved[k] || !tagKeyRe.MatchString(k) {
				t.Fatalf("tag %q accepted", k)
			}
		}
		for i, ch := range c.Checks {
			if i > 0 && c.Checks[i-1].Name >= ch.Name {
				t.Fatalf("checks not sorted by name: %q before %q", c.Checks[i-1].Name, ch.Name)
			}
			if _, ok := l[KeyCheckPrefix+ch.Name]; !ok {
				t.Fatalf("check %q declared by no label", ch.Name)
			}
			switch ch.Type {
			case CheckHTTP, CheckTCP, CheckExec:
			default:
				t.Fatalf("check %q of type %q", ch.Name, ch.Type)
			}
			if ch.Interval < time.Second || ch.Timeout <= 0 || ch.Timeout > ch.Interval || ch.Rise < 1 || ch.Fall < 1 {
				t.Fatalf("check %q: interval %v timeout %v rise %d fall %d", ch.Name, ch.Interval, ch.Timeout, ch.Rise, ch.Fall)
			}
			if ch.Type == CheckExec && len(ch.Command) == 0 {
				t.Fatalf("exec check %q without a command", ch.Name)
			}
		}
	})
}
