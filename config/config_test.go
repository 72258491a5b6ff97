package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestDefaultsPrintToStdout(t *testing.T) {
	c, err := Load("", env(nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if len(c.Outputs) != 1 || c.Outputs[0].Type != OutputStdout {
		t.Fatalf("outputs = %+v, want one stdout output", c.Outputs)
	}
	if c.DockerHost != "unix:///var/run/docker.sock" || time.Duration(c.Interval) != 10*time.Second {
		t.Fatalf("defaults = %+v", c)
	}
}

func TestEnvironmentInfluxV1AndV2(t *testing.T) {
	c, err := Load("", env(map[string]string{"LOOKOUT_INFLUXDB_URL": "http://db:8086", "LOOKOUT_BATCH_SIZE": "50",
		"LOOKOUT_FLUSH_INTERVAL": "1s", "LOOKOUT_STDOUT": "true"}), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Outputs) != 2 || c.Outputs[0].Type != OutputInfluxV1 || c.Outputs[0].Database != "lookout" ||
		c.Outputs[0].BatchSize != 50 || time.Duration(c.Outputs[0].FlushInterval) != time.Second || c.Outputs[1].Type != OutputStdout {
		t.Fatalf("outputs = %+v", c.Outputs)
	}
	c, err = Load("", env(map[string]string{"LOOKOUT_INFLUXDB_URL": "http://db:8086", "LOOKOUT_INFLUXDB_ORG": "o",
		"LOOKOUT_INFLUXDB_BUCKET": "b"}), nil)
	if err != nil || c.Outputs[0].Type != OutputInfluxV2 || len(c.Outputs) != 1 {
		t.Fatalf("v2: %v %+v", err, c.Outputs)
	}
}

func TestFlagsOverrideEnvironment(t *testing.T) {
	c, err := Load("", env(map[string]string{"LOOKOUT_DOCKER_HOST": "tcp://a:1"}), map[string]string{"LOOKOUT_DOCKER_HOST": "tcp://b:2"})
	if err != nil || c.DockerHost != "tcp://b:2" {
		t.Fatalf("%v %q", err, c.DockerHost)
	}
}

func TestBadValuesNameSettingValueAndAllowed(t *testing.T) {
	_, err := Load("", env(map[string]string{"LOOKOUT_MONITOR_ALL": "yes please", "LOOKOUT_INTERVAL": "10",
		"LOOKOUT_INFLUXDB_URL": "http://x:1", "LOOKOUT_BATCH_SIZE": "many"}), nil)
	for _, want := range []string{`LOOKOUT_MONITOR_ALL="yes please": want true or false`,
		`LOOKOUT_INTERVAL="10": want a number with a unit`, `LOOKOUT_BATCH_SIZE="many": want a whole number`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not contain %q", err, want)
		}
	}
	c := Default()
	c.Interval = Duration(100 * time.Millisecond)
	c.LogLevel = "loud"
	c.Outputs = []Output{{Name: "a", Type: "influx", Precision: "ns", BatchSize: 1, BufferLimit: 1, FlushInterval: 1, Timeout: 1},
		{Name: "b", Type: OutputInfluxV2, URL: "http://x", Precision: "h", BatchSize: 10, BufferLimit: 5, FlushInterval: 1, Timeout: 1}}
	err = c.Validate()
	for _, want := range []string{`interval (LOOKOUT_INTERVAL)="100ms": want 1s or more`, `log_level (LOOKOUT_LOG_LEVEL)="loud"`,
		`outputs[0].type="influx": want influxdb, influxdb_v2 or stdout`, `outputs[1].org/bucket`, `outputs[1].precision`,
		`outputs[1].buffer_limit (LOOKOUT_BUFFER_LIMIT)="5": want at least the batch size (10)`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not contain %q", err, want)
		}
	}
}

func TestSecretsOnlyFromFiles(t *testing.T) {
	_, err := Load("", env(map[string]string{"LOOKOUT_INFLUXDB_TOKEN": "s3cret", "LOOKOUT_INFLUXDB_URL": "http://x:1"}), nil)
	if err == nil || !strings.Contains(err.Error(), "LOOKOUT_INFLUXDB_TOKEN_FILE") || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("err = %v: want a pointer to the _FILE setting, never the secret", err)
	}
	dir := t.TempDir()
	tok := filepath.Join(dir, "token")
	_ = os.WriteFile(tok, []byte("s3cret\n"), 0o600)
	c, err := Load("", env(map[string]string{"LOOKOUT_INFLUXDB_URL": "http://x:1", "LOOKOUT_INFLUXDB_ORG": "o",
		"LOOKOUT_INFLUXDB_BUCKET": "b", "LOOKOUT_INFLUXDB_TOKEN_FILE": tok}), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.LoadSecrets(); err != nil || c.Outputs[0].Token != "s3cret" {
		t.Fatalf("LoadSecrets: %v, token %q", err, c.Outputs[0].Token)
	}
	c.Outputs[0].TokenFile = filepath.Join(dir, "missing")
	if err := c.LoadSecrets(); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("missing file: %v", err)
	}
}

func TestFile(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "lookout.yml")
	_ = os.WriteFile(f, []byte(`
monitor_all: true
interval: 5s
outputs:
  - name: central
    type: influxdb
    url: http://central:8086
    database: ops
    gzip: true
  - type: stdout
`), 0o644)
	c, err := Load(f, env(nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !c.MonitorAll || time.Duration(c.Interval) != 5*time.Second || len(c.Outputs) != 2 || c.Outputs[0].Name != "central" ||
		!c.Outputs[0].Gzip || c.Outputs[0].Database != "ops" || c.Outputs[1].Name != "stdout" {
		t.Fatalf("%+v", c)
	}
	_ = os.WriteFile(f, []byte("interval: soon\n"), 0o644)
	if _, err := Load(f, env(nil), nil); err == nil || !strings.Contains(err.Error(), `duration "soon"`) {
		t.Fatalf("bad duration: %v", err)
	}
	_ = os.WriteFile(f, []byte("intervall: 5s\n"), 0o644)
	if _, err := Load(f, env(nil), nil); err == nil || !strings.Contains(err.Error(), "intervall") {
		t.Fatalf("unknown key: %v", err)
	}
}

func TestResourcesAndMetricsSettings(t *testing.T) {
	c, err := Load("", env(nil), nil)
	if err != nil || c.Validate() != nil {
		t.Fatal(err)
	}
	if c.Resources != "auto" || c.MetricsAddress != "" || c.HostProc != "/proc" || c.HostCgroup != "/sys/fs/cgroup" {
		t.Fatalf("defaults %+v: want resources auto and no metrics endpoint", c)
	}
	c, err = Load("", env(map[string]string{"LOOKOUT_RESOURCES": "api", "LOOKOUT_RESOURCES_PER_DEVICE": "true",
		"LOOKOUT_METRICS_ADDRESS": "127.0.0.1:9273"}), nil)
	if err != nil || c.Validate() != nil || c.Resources != "api" || !c.ResourcesPerDevice || c.MetricsAddress != "127.0.0.1:9273" {
		t.Fatalf("%+v %v", c, err)
	}
	c, _ = Load("", env(map[string]string{"LOOKOUT_RESOURCES": "yes", "LOOKOUT_METRICS_ADDRESS": "9273"}), nil)
	err = c.Validate()
	for _, want := range []string{`resources (LOOKOUT_RESOURCES)="yes": want auto, cgroup, api or off`,
		`metrics_address (LOOKOUT_METRICS_ADDRESS)="9273": want host:port`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v, want it to say %s", err, want)
		}
	}
}

func TestFluentdConfig(t *testing.T) {
	env := map[string]string{"LOOKOUT_FLUENTD_ADDRESS": "127.0.0.1:24224", "LOOKOUT_STATE_DIR": "/tmp/st"}
	c, err := Load("", func(k string) string { return env[k] }, nil)
	if err != nil || c.Validate() != nil {
		t.Fatalf("defaults: %v %v", err, c.Validate())
	}
	if c.Fluentd.Tag != "docker.{{.Name}}" || c.Fluentd.BatchSize != 1000 || c.StateDir != "/tmp/st" {
		t.Errorf("defaults %+v", c.Fluentd)
	}
	env = map[string]string{"LOOKOUT_FLUENTD_ADDRESS": "fluentd", "LOOKOUT_FLUENTD_TAG": "{{.Nope}}",
		"LOOKOUT_FLUENTD_BATCH_SIZE": "0", "LOOKOUT_FLUENTD_START": "yesterday", "LOOKOUT_FLUENTD_MAX_RECORD_SIZE": "10"}
	c, _ = Load("", func(k string) string { return env[k] }, nil)
	err = c.Validate()
	for _, want := range []string{"LOOKOUT_FLUENTD_ADDRESS", "LOOKOUT_FLUENTD_TAG", "LOOKOUT_FLUENTD_BATCH_SIZE",
		"LOOKOUT_FLUENTD_START", "LOOKOUT_FLUENTD_MAX_RECORD_SIZE"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v should name %s", err, want)
		}
	}
	c, _ = Load("", func(k string) string { return map[string]string{"LOOKOUT_FLUENTD_TAG": "{{"}[k] }, nil)
	if err := c.Validate(); err != nil {
		t.Errorf("forwarder off: its settings are not checked, got %v", err)
	}
}

func TestTracesConfig(t *testing.T) {
	env := map[string]string{"LOOKOUT_JAEGER_ENDPOINT": "http://jaeger:14268", "LOOKOUT_JAEGER_COMPACT_LISTEN": "172.17.0.1:6831"}
	c, err := Load("", func(k string) string { return env[k] }, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	tr := c.Traces
	if tr.JaegerEndpoint != "http://jaeger:14268/api/traces" || tr.BatchSize != 500 || tr.QueueLimit != 50000 ||
		tr.MaxPacketSize != 65000 || !tr.ProbeSpans() || tr.BinaryListen != "" {
		t.Errorf("traces %+v", tr)
	}

	if c, _ := Load("", func(string) string { return "" }, nil); c.Traces.Enabled() || c.Traces.ProbeSpans() || c.Validate() != nil {
		t.Errorf("traces on without configuration: %+v", c.Traces)
	}

	env = map[string]string{"LOOKOUT_JAEGER_ENDPOINT": "jaeger:14268", "LOOKOUT_JAEGER_BINARY_LISTEN": "6832",
		"LOOKOUT_SPANS_BATCH_SIZE": "100", "LOOKOUT_SPANS_QUEUE_LIMIT": "10", "LOOKOUT_JAEGER_MAX_PACKET_SIZE": "70000"}
	c, err = Load("", func(k string) string { return env[k] }, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = c.Validate()
	for _, want := range []string{"LOOKOUT_JAEGER_ENDPOINT", "LOOKOUT_JAEGER_BINARY_LISTEN", "LOOKOUT_SPANS_QUEUE_LIMIT", "LOOKOUT_JAEGER_MAX_PACKET_SIZE"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not name %s", err, want)
		}
	}

	env = map[string]string{"LOOKOUT_JAEGER_ENDPOINT": "http://jaeger:4318", "LOOKOUT_JAEGER_PROTOCOL": "otlp"}
	c, _ = Load("", func(k string) string { return env[k] }, nil)
	if err := c.Validate(); err != nil || c.Traces.JaegerEndpoint != "http://jaeger:4318/v1/traces" || c.Traces.Protocol != "otlp" {
		t.Errorf("OTLP export: %v, %+v", err, c.Traces)
	}

	env = map[string]string{"LOOKOUT_JAEGER_COMPACT_LISTEN": "127.0.0.1:6831"}
	c, _ = Load("", func(k string) string { return env[k] }, nil)
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "set LOOKOUT_JAEGER_ENDPOINT") {
		t.Errorf("a relay without an endpoint: %v", err)
	}

	env = map[string]string{"LOOKOUT_JAEGER_ENDPOINT": "http://jaeger:14268", "LOOKOUT_OTLP_LISTEN": "172.17.0.1:4318"}
	c, _ = Load("", func(k string) string { return env[k] }, nil)
	if err := c.Validate(); err != nil || c.Traces.OTLPListen != "172.17.0.1:4318" || c.Traces.OTLPMaxRequestSize != 4<<20 {
		t.Errorf("OTLP receiver: %v, %+v", err, c.Traces)
	}
	for _, bad := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"LOOKOUT_OTLP_LISTEN": "172.17.0.1:4318"}, "LOOKOUT_OTLP_LISTEN"},
		{map[string]string{"LOOKOUT_JAEGER_ENDPOINT": "http://j:14268", "LOOKOUT_OTLP_LISTEN": "4318"}, "such as 172.17.0.1:4318"},
		{map[string]string{"LOOKOUT_JAEGER_ENDPOINT": "http://j:14268", "LOOKOUT_OTLP_LISTEN": "bridge:4318"}, "want an IP address"},
		{map[string]string{"LOOKOUT_JAEGER_ENDPOINT": "http://j:14268", "LOOKOUT_OTLP_MAX_REQUEST_SIZE": "100"}, "LOOKOUT_OTLP_MAX_REQUEST_SIZE"},
		{map[string]string{"LOOKOUT_JAEGER_ENDPOINT": "http://j:4317", "LOOKOUT_JAEGER_PROTOCOL": "grpc"}, `LOOKOUT_JAEGER_PROTOCOL)="grpc": want "thrift"`},
	} {
		c, _ = Load("", func(k string) string { return bad.env[k] }, nil)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%v: error %v does not say %q", bad.env, err, bad.want)
		}
	}
}

func TestFluentdTLSConfig(t *testing.T) {
	f := Fluentd{Address: "fluentd.example:24224", TLS: true}
	c, err := f.TLSConfig()
	if err != nil || c == nil || c.ServerName != "fluentd.example" {
		t.Fatalf("TLSConfig = %+v, %v", c, err)
	}
	f.TLSCAFile = "/nonexistent/ca.pem"
	if _, err := f.TLSConfig(); err == nil || !strings.Contains(err.Error(), "LOOKOUT_FLUENTD_TLS_CA_FILE") {
		t.Errorf("missing CA file: %v", err)
	}
	if c, _ := (Fluentd{Address: "x:1"}).TLSConfig(); c != nil {
		t.Error("TLS off gave a TLS config")
	}
	env := map[string]string{"LOOKOUT_FLUENTD_ADDRESS": "unix:///run/fluentd.sock", "LOOKOUT_FLUENTD_TLS": "true"}
	cfg, _ := Load("", func(k string) string { return env[k] }, nil)
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "TLS needs a TCP address") {
		t.Errorf("TLS over a unix socket: %v", err)
	}
}

func TestFluentdSharedKey(t *testing.T) {
	dir := t.TempDir()
	key, pass := filepath.Join(dir, "key"), filepath.Join(dir, "pass")
	if err := os.WriteFile(key, []byte("k3y-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pass, []byte("pa55-secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"LOOKOUT_FLUENTD_ADDRESS": "127.0.0.1:24224", "LOOKOUT_STATE_DIR": "/tmp/st",
		"LOOKOUT_FLUENTD_SHARED_KEY_FILE": key, "LOOKOUT_FLUENTD_USERNAME": "alice", "LOOKOUT_FLUENTD_PASSWORD_FILE": pass,
		"LOOKOUT_FLUENTD_SELF_HOSTNAME": "node-1"}
	c, err := Load("", func(k string) string { return env[k] }, nil)
	if err == nil {
		err = errors.Join(c.Validate(), c.LoadSecrets())
	}
	if err != nil || c.Fluentd.SharedKey != "k3y-secret" || c.Fluentd.Password != "pa55-secret" ||
		c.Fluentd.Username != "alice" || c.Fluentd.SelfHostname != "node-1" {
		t.Fatalf("shared key settings: %+v, %v", c.Fluentd, err)
	}

	env = map[string]string{"LOOKOUT_FLUENTD_ADDRESS": "127.0.0.1:24224", "LOOKOUT_STATE_DIR": "/tmp/st",
		"LOOKOUT_FLUENTD_SHARED_KEY": "k3y-secret", "LOOKOUT_FLUENTD_PASSWORD": "pa55-secret", "LOOKOUT_FLUENTD_USERNAME": "alice"}
	c, err = Load("", func(k string) string { return env[k] }, nil)
	err = errors.Join(err, c.Validate())
	for _, want := range []string{"LOOKOUT_FLUENTD_SHARED_KEY is set: secrets are read from files only; set LOOKOUT_FLUENTD_SHARED_KEY_FILE",
		"set LOOKOUT_FLUENTD_PASSWORD_FILE", "want both a username and LOOKOUT_FLUENTD_PASSWORD_FILE",
		"fluentd.shared_key_file (LOOKOUT_FLUENTD_SHARED_KEY_FILE)"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not say %q", err, want)
		}
	}
	if err != nil && (strings.Contains(err.Error(), "k3y-secret") || strings.Contains(err.Error(), "pa55-secret")) {
		t.Errorf("the error shows a secret: %v", err)
	}

	f := Config{Fluentd: Fluentd{Address: "x:1", SharedKeyFile: filepath.Join(dir, "missing")}}
	if err := f.LoadSecrets(); err == nil || !strings.Contains(err.Error(), "LOOKOUT_FLUENTD_SHARED_KEY_FILE") {
		t.Errorf("a missing key file: %v", err)
	}
}
