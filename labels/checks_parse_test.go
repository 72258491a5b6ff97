package labels

import (
	"net/http"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

// httpCheck is an HTTP check with every default filled, as Parse returns it.
func httpCheck(name, scheme string, port int, path string) Check {
	return Check{Name: name, Type: CheckHTTP, Scheme: scheme, Port: port, Path: path,
		Interval: 10 * time.Second, Timeout: 5 * time.Second, Rise: 1, Fall: 1, Method: "GET"}
}

func tcpCheck(name string, port int) Check {
	return Check{Name: name, Type: CheckTCP, Port: port,
		Interval: 10 * time.Second, Timeout: 5 * time.Second, Rise: 1, Fall: 1}
}

func execCheck(name string, argv ...string) Check {
	return Check{Name: name, Type: CheckExec, Command: argv,
		Interval: 10 * time.Second, Timeout: 5 * time.Second, Rise: 1, Fall: 1}
}

// sameChecks compares checks, the Body regexp by its source.
func sameChecks(t *testing.T, got, want []Check) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d checks %+v, want %d %+v", len(got), got, len(want), want)
	}
	for i := range got {
		g, w := got[i], want[i]
		if (g.Body == nil) != (w.Body == nil) || (g.Body != nil && g.Body.String() != w.Body.String()) {
			t.Errorf("check %s: Body %v, want %v", w.Name, g.Body, w.Body)
		}
		g.Body, w.Body = nil, nil
		if !reflect.DeepEqual(g, w) {
			t.Errorf("check %d:\n got %+v\nwant %+v", i, g, w)
		}
	}
}

func TestCheckOneLabel(t *testing.T) {
	c := Parse(map[string]string{"lookout.check.web": "http://:8080/healthz"})
	if len(c.Problems) != 0 {
		t.Fatalf("problems: %v", c.Problems)
	}
	sameChecks(t, c.Checks, []Check{{
		Name: "web", Type: "http", Scheme: "http", Host: "", Port: 8080, Path: "/healthz",
		Interval: 10 * time.Second, Timeout: 5 * time.Second, Rise: 1, Fall: 1, Method: "GET",
	}})
}

func TestCheckGood(t *testing.T) {
	with := func(c Check, f func(*Check)) Check { f(&c); return c }
	tests := []struct {
		name   string
		labels map[string]string
		want   []Check
	}{
		{"http", map[string]string{"lookout.check.web": "http://:8080/healthz"},
			[]Check{httpCheck("web", "http", 8080, "/healthz")}},
		{"https with query", map[string]string{"lookout.check.api": "https://:8443/ready?full=1"},
			[]Check{httpCheck("api", "https", 8443, "/ready?full=1")}},
		{"http default port and path", map[string]string{"lookout.check.web": "http://"},
			[]Check{httpCheck("web", "http", 80, "/")}},
		{"https default port", map[string]string{"lookout.check.web": "https://:/x"},
			[]Check{httpCheck("web", "https", 443, "/x")}},
		{"escaped path kept, spaces around value trimmed", map[string]string{"lookout.check.web": " HTTP://:80/a%20b/?q=x%2Fy "},
			[]Check{httpCheck("web", "http", 80, "/a%20b/?q=x%2Fy")}},
		{"host", map[string]string{"lookout.check.db": "http://db.internal:8080/"},
			[]Check{with(httpCheck("db", "http", 8080, "/"), func(c *Check) { c.Host = "db.internal" })}},
		{"ipv6 host", map[string]string{"lookout.check.v6": "http://[fd00::1]:81"},
			[]Check{with(httpCheck("v6", "http", 81, "/"), func(c *Check) { c.Host = "fd00::1" })}},
		{"tcp", map[string]string{"lookout.check.pg": "tcp://:5432"},
			[]Check{tcpCheck("pg", 5432)}},
		{"tcp with host", map[string]string{"lookout.check.pg": "tcp://pg_primary:5432/"},
			[]Check{with(tcpCheck("pg", 5432), func(c *Check) { c.Host = "pg_primary" })}},
		{"exec", map[string]string{"lookout.check.self": "exec:/app/bin/check --quick"},
			[]Check{execCheck("self", "/app/bin/check", "--quick")}},
		{"exec quotes", map[string]string{"lookout.check.sh": `exec: sh  -c "curl -fs localhost/x"  ""  a"b c"d 'x`},
			[]Check{execCheck("sh", "sh", "-c", "curl -fs localhost/x", "", "ab cd", "'x")}},
		{"every common setting", map[string]string{
			"lookout.check.web":          "http://:8080/",
			"lookout.check.web.interval": "1m",
			"lookout.check.web.timeout":  "1m",
			"lookout.check.web.rise":     "2",
			"lookout.check.web.fall":     "10",
			"lookout.check.web.network":  "mystack_backend",
		}, []Check{with(httpCheck("web", "http", 8080, "/"), func(c *Check) {
			c.Interval, c.Timeout, c.Rise, c.Fall, c.Network = time.Minute, time.Minute, 2, 10, "mystack_backend"
		})}},
		{"every http setting", map[string]string{
			"lookout.check.web":                      "https://:8443/status",
			"lookout.check.web.method":               "head",
			"lookout.check.web.header.x-api-key":     "s3cret",
			"lookout.check.web.header.Authorization": "Bearer abc",
			"lookout.check.web.status":               "200-299, 301,404",
			"lookout.check.web.body":                 `"status":\s*"ok"`,
			"lookout.check.web.tls_skip_verify":      "TRUE",
			"lookout.check.web.server_name":          "api.example.com",
			"lookout.check.web.follow_redirects":     "true",
		}, []Check{with(httpCheck("web", "https", 8443, "/status"), func(c *Check) {
			c.Method = "HEAD"
			c.Headers = http.Header{"X-Api-Key": {"s3cret"}, "Authorization": {"Bearer abc"}}
			c.Status = []StatusRange{{200, 299}, {301, 301}, {404, 404}}
			c.Body = regexp.MustCompile(`"status":\s*"ok"`)
			c.TLSSkipVerify, c.ServerName, c.FollowRedirects = true, "api.example.com", true
		})}},
		{"tcp send and expect kept verbatim", map[string]string{
			"lookout.check.redis":        "tcp://:6379",
			"lookout.check.redis.send":   "PING\r\n",
			"lookout.check.redis.expect": "+PONG",
		}, []Check{with(tcpCheck("redis", 6379), func(c *Check) { c.Send, c.Expect = "PING\r\n", "+PONG" })}},
		{"short interval shortens the default timeout", map[string]string{
			"lookout.check.fast":          "exec:true",
			"lookout.check.fast.interval": "2s",
		}, []Check{with(execCheck("fast", "true"), func(c *Check) { c.Interval, c.Timeout = 2*time.Second, 2*time.Second })}},
		{"sorted by name", map[string]string{
			"lookout.check.b": "tcp://:2", "lookout.check.a-1": "tcp://:1", "lookout.check.c_3": "tcp://:3",
		}, []Check{tcpCheck("a-1", 1), tcpCheck("b", 2), tcpCheck("c_3", 3)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Parse(tt.labels)
			if len(c.Problems) != 0 {
				t.Fatalf("problems: %v", c.Problems)
			}
			sameChecks(t, c.Checks, tt.want)
		})
	}
}

// TestCheckBad gives each bad label alongside a good check and other lookout.* labels,
// which must be unaffected.
func TestCheckBad(t *testing.T) {
	const (
		dropped = iota // the check is not run
		kept           // the check runs with the setting's default
		absent         // no check of that name
	)
	tests := []struct {
		key, value string
		extra      map[string]string // more labels, all good
		reason     string            // substring of the reason
		outcome    int
		check      func(Check) bool // for kept: the setting kept its default
	}{
		// Declarations.
		{"lookout.check.web", "localhost:8080", nil, "no scheme; want http://[host]:port/path", dropped, nil},
		{"lookout.check.web", "", nil, "e.g. http://:8080/healthz", dropped, nil},
		{"lookout.check.web", "ftp://:21", nil, `unknown scheme "ftp"`, dropped, nil},
		{"lookout.check.web", "tcp:5432", nil, "tcp://[host]:port", dropped, nil},
		{"lookout.check.web", "tcp://db", nil, "a tcp target needs a port", dropped, nil},
		{"lookout.check.web", "tcp://:5432/x", nil, "no path or query", dropped, nil},
		{"lookout.check.web", "http://:99999/", nil, `port "99999" is not from 1 to 65535`, dropped, nil},
		{"lookout.check.web", "http://:0/", nil, "is not from 1 to 65535", dropped, nil},
		{"lookout.check.web", "http://:80a/", nil, "not a URL", dropped, nil},
		{"lookout.check.web", "http://u:p@:80/", nil, "credentials in the target are not supported", dropped, nil},
		{"lookout.check.web", "http://:80/#top", nil, "fragment", dropped, nil},
		{"lookout.check.web", "http://bad$host:80/", nil, "is not a host name or IP address", dropped, nil},
		{"lookout.check.web", "exec:", nil, "the exec command is empty", dropped, nil},
		{"lookout.check.web", "exec:   ", nil, "exec:<command>", dropped, nil},
		{"lookout.check.web", `exec:sh -c "x`, nil, "unterminated double quote", dropped, nil},
		{"lookout.check.Web", "tcp://:1", nil, "check name must be 1 to 32 characters of a-z", absent, nil},
		{"lookout.check._x", "tcp://:1", nil, "starting with a letter or digit", absent, nil},
		{"lookout.check.", "tcp://:1", nil, "check name must be", absent, nil},
		{"lookout.check." + strings.Repeat("a", 33), "tcp://:1", nil, "1 to 32 characters", absent, nil},
		// Settings of undeclared checks.
		{"lookout.check.ghost.interval", "30s", nil, "no check ghost declared: add lookout.check.ghost=<target>", absent, nil},
		{"lookout.check.ghost.header.X", "y", nil, "no check ghost declared", absent, nil},
		// Unknown settings.
		{"lookout.check.web.intervall", "30s", map[string]string{"lookout.check.web": "http://:80/"},
			`unknown setting "intervall"; known settings: interval, timeout, rise, fall, network, method, header.<Header-Name>, status, body, tls_skip_verify, server_name, follow_redirects, send, expect`,
			kept, func(c Check) bool { return c.Interval == 10*time.Second }},
		{"lookout.check.web.", "x", map[string]string{"lookout.check.web": "http://:80/"}, `unknown setting ""`, kept, nil},
		// Bad values keep the default, and say so.
		{"lookout.check.web.interval", "500ms", map[string]string{"lookout.check.web": "http://:80/"},
			"want a duration of at least 1s, such as 30s or 1m; using the default 10s", kept,
			func(c Check) bool { return c.Interval == 10*time.Second }},
		{"lookout.check.web.interval", "often", map[string]string{"lookout.check.web": "http://:80/"},
			"using the default 10s", kept, func(c Check) bool { return c.Interval == 10*time.Second }},
		{"lookout.check.web.timeout", "0s", map[string]string{"lookout.check.web": "http://:80/"},
			"want a duration above 0, such as 2s or 500ms, at most the interval; using the default 5s", kept, func(c Check) bool { return c.Timeout == 5*time.Second }},
		{"lookout.check.web.timeout", "20s", map[string]string{"lookout.check.web": "http://:80/"},
			"timeout 20s is longer than the interval 10s; want at most the interval; using the default 5s", kept,
			func(c Check) bool { return c.Timeout == 5*time.Second }},
		{"lookout.check.web.timeout", "4s", map[string]string{"lookout.check.web": "http://:80/", "lookout.check.web.interval": "3s"},
			"longer than the interval 3s; want at most the interval; using the default 3s", kept,
			func(c Check) bool { return c.Timeout == 3*time.Second && c.Interval == 3*time.Second }},
		{"lookout.check.web.rise", "11", map[string]string{"lookout.check.web": "http://:80/"},
			"want a whole number from 1 to 10; using the default 1", kept, func(c Check) bool { return c.Rise == 1 }},
		{"lookout.check.web.fall", "two", map[string]string{"lookout.check.web": "http://:80/"},
			"want a whole number from 1 to 10; using the default 1", kept, func(c Check) bool { return c.Fall == 1 }},
		{"lookout.check.web.network", "my net", map[string]string{"lookout.check.web": "http://:80/"},
			"want a Docker network name", kept, func(c Check) bool { return c.Network == "" }},
		{"lookout.check.web.method", "FETCH", map[string]string{"lookout.check.web": "http://:80/"},
			"want one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS; using the default GET", kept,
			func(c Check) bool { return c.Method == "GET" }},
		{"lookout.check.web.status", "200-299,", map[string]string{"lookout.check.web": "http://:80/"},
			"empty status; want codes from 100 to 599", kept, func(c Check) bool { return c.Status == nil }},
		{"lookout.check.web.status", "299-200", map[string]string{"lookout.check.web": "http://:80/"},
			`"299-200" starts above its end`, kept, func(c Check) bool { return c.Status == nil }},
		{"lookout.check.web.status", "200,600", map[string]string{"lookout.check.web": "http://:80/"},
			`"600" is out of range; want codes from 100 to 599 and ranges, comma-separated, such as 200, 200-299 or 200-299,301,404; using the default 200-399`,
			kept, func(c Check) bool { return c.Status == nil }},
		{"lookout.check.web.status", "2xx", map[string]string{"lookout.check.web": "http://:80/"},
			`"2xx" is not a code or a range`, kept, func(c Check) bool { return c.Status == nil }},
		{"lookout.check.web.body", "ok(", map[string]string{"lookout.check.web": "http://:80/"},
			"not a Go regular expression (error parsing regexp: missing closing ): `ok(`)", kept,
			func(c Check) bool { return c.Body == nil }},
		{"lookout.check.web.tls_skip_verify", "yes", map[string]string{"lookout.check.web": "https://:443/"},
			"want true or false; using the default false", kept, func(c Check) bool { return !c.TLSSkipVerify }},
		{"lookout.check.web.follow_redirects", "1", map[string]string{"lookout.check.web": "https://:443/"},
			"want true or false; using the default false", kept, func(c Check) bool { return !c.FollowRedirects }},
		{"lookout.check.web.server_name", "a b", map[string]string{"lookout.check.web": "https://:443/"},
			"want a host name", kept, func(c Check) bool { return c.ServerName == "" }},
		{"lookout.check.web.header.Bad Name", "x", map[string]string{"lookout.check.web": "http://:80/", "lookout.check.web.header.Accept": "text/plain"},
			"want header.<Header-Name>", kept,
			func(c Check) bool { return len(c.Headers) == 1 && c.Headers.Get("Accept") == "text/plain" }},
		{"lookout.check.web.header.", "x", map[string]string{"lookout.check.web": "http://:80/"},
			"header not sent", kept, func(c Check) bool { return c.Headers == nil }},
		{"lookout.check.web.header.X-Token", "a\r\nEvil: 1", map[string]string{"lookout.check.web": "http://:80/"},
			"without line breaks", kept, func(c Check) bool { return c.Headers == nil }},
		{"lookout.check.web.header.X-Token", " ", map[string]string{"lookout.check.web": "http://:80/"},
			"header not sent", kept, func(c Check) bool { return c.Headers == nil }},
		{"lookout.check.web.header.x-token", "2", map[string]string{"lookout.check.web": "http://:80/", "lookout.check.web.header.X-Token": "1"},
			"header X-Token is already set by another lookout.check.web.header.* label; set each header once", kept,
			func(c Check) bool { return c.Headers.Get("X-Token") == "1" && len(c.Headers["X-Token"]) == 1 }},
		{"lookout.check.web.send", "", map[string]string{"lookout.check.web": "tcp://:80"},
			"using the default (send nothing)", kept, func(c Check) bool { return c.Send == "" }},
		{"lookout.check.web.expect", "", map[string]string{"lookout.check.web": "tcp://:80"},
			"omit the label to accept any reply", kept, func(c Check) bool { return c.Expect == "" }},
		// Settings for another type of check.
		{"lookout.check.web.status", "200", map[string]string{"lookout.check.web": "tcp://:80"},
			"applies to http checks only; check web is a tcp check; ignored", kept, func(c Check) bool { return c.Status == nil }},
		{"lookout.check.web.header.X", "1", map[string]string{"lookout.check.web": "tcp://:80"},
			"applies to http checks only", kept, func(c Check) bool { return c.Headers == nil }},
		{"lookout.check.web.method", "POST", map[string]string{"lookout.check.web": "exec:true"},
			"applies to http checks only; check web is an exec check", kept, func(c Check) bool { return c.Method == "" }},
		{"lookout.check.web.send", "x", map[string]string{"lookout.check.web": "http://:80/"},
			"applies to tcp checks only", kept, func(c Check) bool { return c.Send == "" }},
		{"lookout.check.web.expect", "x", map[string]string{"lookout.check.web": "https://:443/"},
			"applies to tcp checks only", kept, func(c Check) bool { return c.Expect == "" }},
		{"lookout.check.web.network", "backend", map[string]string{"lookout.check.web": "exec:true"},
			"applies to http and tcp checks only", kept, func(c Check) bool { return c.Network == "" }},
	}
	for _, tt := range tests {
		t.Run(tt.key+"="+tt.value, func(t *testing.T) {
			l := map[string]string{
				tt.key:                          tt.value,
				"lookout.enable":                "true",
				"lookout.tags.team":             "ops",
				"lookout.check.other":           "tcp://:9",
				"lookout.check.other.interval":  "30s",
				"lookout.check.zzz":             "http://:81/z",
				"lookout.check.zzz.status":      "204",
				"com.example.not-ours":          "x",
				"lookout.check.other.timeout":   "2s",
				"lookout.check.zzz.header.Host": "example.com",
			}
			for k, v := range tt.extra {
				l[k] = v
			}
			c := Parse(l)
			if len(c.Problems) != 1 {
				t.Fatalf("want exactly 1 problem, got %d: %v", len(c.Problems), c.Problems)
			}
			p := c.Problems[0]
			if p.Key != tt.key || p.Value != tt.value {
				t.Errorf("problem for %q=%q, want %q=%q", p.Key, p.Value, tt.key, tt.value)
			}
			if !strings.Contains(p.Reason, tt.reason) {
				t.Errorf("reason %q\n does not contain %q", p.Reason, tt.reason)
			}
			// The rest is unaffected.
			if c.Enable == nil || !*c.Enable || c.Tags["team"] != "ops" {
				t.Errorf("other labels affected: enable %v tags %v", c.Enable, c.Tags)
			}
			byName := map[string]Check{}
			for _, chk := range c.Checks {
				byName[chk.Name] = chk
			}
			other := tcpCheck("other", 9)
			other.Interval, other.Timeout = 30*time.Second, 2*time.Second
			zzz := httpCheck("zzz", "http", 81, "/z")
			zzz.Status = []StatusRange{{204, 204}}
			zzz.Headers = http.Header{"Host": {"example.com"}}
			sameChecks(t, []Check{byName["other"], byName["zzz"]}, []Check{other, zzz})

			web, ok := byName["web"]
			switch tt.outcome {
			case dropped:
				if ok || len(c.Checks) != 2 {
					t.Errorf("check web should be dropped: %+v", c.Checks)
				}
				if !strings.Contains(p.Reason, "check web is not run") {
					t.Errorf("reason %q should say the check is not run", p.Reason)
				}
			case kept:
				if !ok {
					t.Fatalf("check web should still run: %+v", c.Checks)
				}
				if tt.check != nil && !tt.check(web) {
					t.Errorf("setting did not keep its default: %+v", web)
				}
			case absent:
				if len(c.Checks) != 2 {
					t.Errorf("want only the other checks: %+v", c.Checks)
				}
			}
		})
	}
}

// TestCheckDroppedStillChecksSettings: a bad target drops the check, and its settings
// are still checked (except whether they apply), so every mistake shows at once.
func TestCheckDroppedStillChecksSettings(t *testing.T) {
	c := Parse(map[string]string{
		"lookout.check.web":           "htp://:80/",
		"lookout.check.web.interval":  "0s",
		"lookout.check.web.send":      "x", // would not apply to http; the type is unknown
		"lookout.check.web.intervall": "1s",
		"lookout.check.ok":            "tcp://:1",
	})
	want := []string{"lookout.check.web", "lookout.check.web.interval", "lookout.check.web.intervall"}
	if len(c.Problems) != len(want) {
		t.Fatalf("problems %v, want keys %v", c.Problems, want)
	}
	for i, p := range c.Problems {
		if p.Key != want[i] {
			t.Errorf("problem %d key %q, want %q", i, p.Key, want[i])
		}
	}
	sameChecks(t, c.Checks, []Check{tcpCheck("ok", 1)})
}

func TestCheckUnknownKeyMessage(t *testing.T) {
	c := Parse(map[string]string{"lookout.checks.web": "http://:80/"})
	if len(c.Problems) != 1 || !strings.Contains(c.Problems[0].Reason, "lookout.check.<name>") {
		t.Fatalf("problems %v should list lookout.check.<name>", c.Problems)
	}
	if len(c.Checks) != 0 {
		t.Errorf("checks %v", c.Checks)
	}
}
