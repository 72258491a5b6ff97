package config

import (
	"fmt"
	"net"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lookout-agent/lookout/labels"
)

// Rule says what a setting allows. Doc is what the docs say; check returns, for a bad
// value, what is allowed (one string per problem), and nothing for a good one. It sees
// the whole configuration (o is the output for a key of outputs) for the rules that
// relate two settings.
type Rule struct {
	Doc   string
	check func(v reflect.Value, c *Config, o *Output) []string
}

func rule(doc string, check func(v reflect.Value, c *Config, o *Output) string) Rule {
	return Rule{Doc: doc, check: func(v reflect.Value, c *Config, o *Output) []string {
		if s := check(v, c, o); s != "" {
			return []string{s}
		}
		return nil
	}}
}

func boolean() Rule { return Rule{Doc: "`true` or `false`"} }

func list() Rule { return Rule{Doc: "comma-separated in the environment, a list in the file"} }

// oneOf allows these values; allowed is the message ("" for "want a, b or c").
func oneOf(allowed string, values ...string) Rule {
	if allowed == "" {
		allowed = "want " + orList(values)
	}
	quoted := make([]string, len(values))
	for i, v := range values {
		quoted[i] = "`" + v + "`"
	}
	return rule("one of "+strings.Join(quoted, ", "), func(v reflect.Value, _ *Config, _ *Output) string {
		if slices.Contains(values, v.String()) {
			return ""
		}
		return allowed
	})
}

func orList(values []string) string {
	if len(values) < 2 {
		return strings.Join(values, "")
	}
	return strings.Join(values[:len(values)-1], ", ") + " or " + values[len(values)-1]
}

func durationAtLeast(min time.Duration) Rule {
	return rule("≥ "+min.String(), func(v reflect.Value, _ *Config, _ *Output) string {
		if time.Duration(v.Int()) < min {
			return "want " + min.String() + " or more"
		}
		return ""
	})
}

func durationAbove0(example string) Rule {
	return rule("> 0", func(v reflect.Value, _ *Config, _ *Output) string {
		if v.Int() <= 0 {
			return "want more than 0" + example
		}
		return ""
	})
}

func intAtLeast(min int64) Rule {
	return rule(fmt.Sprintf("≥ %d", min), func(v reflect.Value, _ *Config, _ *Output) string {
		if v.Int() < min {
			return fmt.Sprintf("want %d or more", min)
		}
		return ""
	})
}

func intBetween(lo, hi int64, unit string) Rule {
	return rule(fmt.Sprintf("%d – %d %s", lo, hi, unit), func(v reflect.Value, _ *Config, _ *Output) string {
		if n := v.Int(); n < lo || n > hi {
			return fmt.Sprintf("want %d to %d %s", lo, hi, unit)
		}
		return ""
	})
}

// atLeastBatch: a buffer that holds at least one batch of its section.
func atLeastBatch(unit string, batch func(c *Config, o *Output) int) Rule {
	return rule("≥ `batch_size`", func(v reflect.Value, c *Config, o *Output) string {
		if b := batch(c, o); v.Int() < int64(b) {
			return fmt.Sprintf("want at least the batch size (%d)%s", b, unit)
		}
		return ""
	})
}

func sizeAtLeast(min ByteSize) Rule {
	return rule("≥ `1MiB`; `1GiB`, `512MiB`, `100MB` or bytes", func(v reflect.Value, _ *Config, _ *Output) string {
		if ByteSize(v.Int()) < min {
			return "want 1MiB or more, like 1GiB"
		}
		return ""
	})
}

func dockerHost() Rule {
	return rule("`unix://`, `tcp://`, `http://` or `https://` URL", func(v reflect.Value, _ *Config, _ *Output) string {
		if u, err := url.Parse(v.String()); err != nil || (u.Scheme != "unix" && u.Scheme != "tcp" && u.Scheme != "http" && u.Scheme != "https") {
			return "want unix:///path/to/docker.sock or tcp://host:port"
		}
		return ""
	})
}

func metricsAddress() Rule {
	return rule("`host:port` or empty", func(v reflect.Value, _ *Config, _ *Output) string {
		if v.String() == "" {
			return ""
		}
		if _, port, err := net.SplitHostPort(v.String()); err != nil || port == "" {
			return "want host:port, like 127.0.0.1:9273 or :9273, or empty for no endpoint"
		}
		return ""
	})
}

func stateDir() Rule {
	return rule("a directory; needed by the log forwarder", func(v reflect.Value, c *Config, _ *Output) string {
		if c.Fluentd.Address != "" && v.String() == "" {
			return "the log forwarder keeps its positions there; want a directory"
		}
		return ""
	})
}

func influxURL() Rule {
	return rule("`http://host:port` or `https://host:port`", func(v reflect.Value, _ *Config, o *Output) string {
		if o.Type != OutputInfluxV1 && o.Type != OutputInfluxV2 {
			return ""
		}
		if u, err := url.Parse(v.String()); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return "want http://host:port or https://host:port"
		}
		return ""
	})
}

func fluentdAddress() Rule {
	const allowed = "want host:port, tcp://host:port or unix:///path/to/socket"
	return rule("`host:port`, `tcp://host:port` or `unix:///path`", func(v reflect.Value, _ *Config, _ *Output) string {
		a := v.String()
		if p, ok := strings.CutPrefix(a, "unix://"); ok {
			if !strings.HasPrefix(p, "/") {
				return allowed
			}
			return ""
		}
		addr := strings.TrimPrefix(a, "tcp://")
		if _, _, err := net.SplitHostPort(addr); err != nil || strings.Contains(addr, "/") {
			return allowed
		}
		return ""
	})
}

func logTag() Rule {
	return rule("a Go template of those fields", func(v reflect.Value, _ *Config, _ *Output) string {
		if _, err := labels.ParseLogTag(v.String()); err != nil {
			return err.Error()
		}
		return ""
	})
}

func fluentdTLS() Rule {
	return Rule{Doc: "`true` or `false`; needs a TCP address", check: func(_ reflect.Value, c *Config, _ *Output) []string {
		var bad []string
		f := c.Fluentd
		if !f.TLS && (f.TLSCAFile != "" || f.TLSSkipVerify) {
			bad = append(bad, "tls_ca_file and tls_skip_verify need tls=true")
		}
		if f.TLS && strings.HasPrefix(f.Address, "unix://") {
			bad = append(bad, "TLS needs a TCP address")
		}
		return bad
	}}
}

func sharedKeyFile() Rule {
	return rule("a file; needed by `username`, `password_file` and `self_hostname`", func(_ reflect.Value, c *Config, _ *Output) string {
		if f := c.Fluentd; f.SharedKeyFile == "" && (f.Username != "" || f.PasswordFile != "" || f.SelfHostname != "") {
			return "username, password_file and self_hostname belong to the shared-key handshake: want a file holding the shared key"
		}
		return ""
	})
}

func fluentdUsername() Rule {
	return rule("with `password_file`, or neither", func(_ reflect.Value, c *Config, _ *Output) string {
		if f := c.Fluentd; (f.Username == "") != (f.PasswordFile == "") {
			return "want both a username and LOOKOUT_FLUENTD_PASSWORD_FILE, or neither"
		}
		return ""
	})
}

func jaegerEndpoint() Rule {
	return rule("`http://` or `https://` URL", func(v reflect.Value, _ *Config, _ *Output) string {
		if v.String() == "" {
			return ""
		}
		if u, err := url.Parse(v.String()); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return "want http://host:14268/api/traces (Jaeger collector, jaeger.thrift over HTTP), http://host:4318/v1/traces (OTLP/HTTP) or https://…"
		}
		return ""
	})
}

// listen is a relay or receiver address: IP:port, only with an endpoint to forward to.
func listen(example string) Rule {
	return Rule{Doc: "`IP:port` or `:port`; needs `jaeger_endpoint`", check: func(v reflect.Value, c *Config, _ *Output) []string {
		addr := v.String()
		if addr == "" {
			return nil
		}
		host, port, err := net.SplitHostPort(addr)
		if p, perr := strconv.Atoi(port); err != nil || perr != nil || p < 0 || p > 65535 {
			return []string{"want host:port, such as " + example + " (an address only the node's containers reach)"}
		}
		var bad []string
		if host != "" && net.ParseIP(host) == nil {
			bad = append(bad, "want an IP address as host (or none for every address)")
		}
		if c.Traces.JaegerEndpoint == "" {
			bad = append(bad, "the relay forwards to Jaeger: set LOOKOUT_JAEGER_ENDPOINT too")
		}
		return bad
	}}
}

func binaryListen() Rule {
	l := listen("172.17.0.1:6832")
	return Rule{Doc: l.Doc + "; not the compact one", check: func(v reflect.Value, c *Config, o *Output) []string {
		bad := l.check(v, c, o)
		if c.Traces.CompactListen != "" && c.Traces.CompactListen == c.Traces.BinaryListen {
			bad = append(bad, "want another address than the compact one")
		}
		return bad
	}}
}
