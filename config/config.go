// Package config reads Lookout's configuration: defaults, then an optional YAML file,
// then LOOKOUT_* environment variables, then command-line flags. Secrets are read from
// files only (Docker secrets under /run/secrets). Validate names the setting, the value
// and what is allowed.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	units "github.com/docker/go-units"
	"go.yaml.in/yaml/v3"
)

// Output types.
const (
	OutputInfluxV1 = "influxdb"
	OutputInfluxV2 = "influxdb_v2"
	OutputStdout   = "stdout"
)

// Config is the whole configuration.
type Config struct {
	DockerHost    string   `yaml:"docker_host"`
	MonitorAll    bool     `yaml:"monitor_all"`
	Interval      Duration `yaml:"interval"`
	LogLevel      string   `yaml:"log_level"`
	LogFormat     string   `yaml:"log_format"`
	HeartbeatFile string   `yaml:"heartbeat_file"`
	Outputs       []Output `yaml:"outputs"`

	// ProbeNetwork is the Docker network checks use when a check names none.
	ProbeNetwork string `yaml:"probe_network"`
	// ProbeAllowedHosts are hosts a check label may name besides the container's own address.
	ProbeAllowedHosts []string `yaml:"probe_allowed_hosts"`

	// Resources says where container resource use is read: auto, cgroup, api or off.
	Resources string `yaml:"resources"`
	// ResourcesPerDevice adds per-CPU, per-interface and per-block-device points.
	ResourcesPerDevice bool `yaml:"resources_per_device"`
	// HostProc and HostCgroup are where the host's /proc and cgroup tree are seen.
	HostProc   string `yaml:"host_proc"`
	HostCgroup string `yaml:"host_cgroup"`
	// MetricsAddress is where /metrics and /healthz are served; empty: no port is opened.
	MetricsAddress string `yaml:"metrics_address"`
	// Fluentd configures the log forwarder; off while Fluentd.Address is empty.
	Fluentd Fluentd `yaml:"fluentd"`
	// StateDir holds what must survive a restart (the log positions).
	StateDir string `yaml:"state_dir"`
	// Traces configures spans to Jaeger (probe spans and the span relay).
	Traces Traces `yaml:"traces"`
}

// Fluentd configures forwarding container logs to Fluentd.
type Fluentd struct {
	Address       string   `yaml:"address"`
	Tag           string   `yaml:"tag"`
	BufferLimit   int      `yaml:"buffer_limit"`
	BatchSize     int      `yaml:"batch_size"`
	MaxRecordSize int      `yaml:"max_record_size"`
	Start         string   `yaml:"start"`
	Timeout       Duration `yaml:"timeout"`
	TLS           bool     `yaml:"tls"`
	TLSCAFile     string   `yaml:"tls_ca_file"`
	TLSSkipVerify bool     `yaml:"tls_skip_verify"`
	// With a shared key each connection does the forward protocol's shared-key handshake
	// (Fluentd's <security>: the server must greet with HELO).
	SharedKeyFile string `yaml:"shared_key_file"`
	Username      string `yaml:"username"`
	PasswordFile  string `yaml:"password_file"`
	SelfHostname  string `yaml:"self_hostname"` // empty: the node's hostname
	// SharedKey and Password are read from SharedKeyFile and PasswordFile by LoadSecrets.
	SharedKey string `yaml:"-"`
	Password  string `yaml:"-"`
}

// Output is one destination for line protocol.
type Output struct {
	Name            string   `yaml:"name"`
	Type            string   `yaml:"type"`
	URL             string   `yaml:"url"`
	Database        string   `yaml:"database"`
	RetentionPolicy string   `yaml:"retention_policy"`
	Username        string   `yaml:"username"`
	PasswordFile    string   `yaml:"password_file"`
	Org             string   `yaml:"org"`
	Bucket          string   `yaml:"bucket"`
	TokenFile       string   `yaml:"token_file"`
	Precision       string   `yaml:"precision"`
	Gzip            bool     `yaml:"gzip"`
	Timeout         Duration `yaml:"timeout"`
	BatchSize       int      `yaml:"batch_size"`
	FlushInterval   Duration `yaml:"flush_interval"`
	BufferLimit     int      `yaml:"buffer_limit"`
	SkipDBCreation  bool     `yaml:"skip_database_creation"`
	// BufferStrategy is disk (a queue in the state directory, memory as fallback) or
	// memory; BufferDiskLimit bounds the disk queue, BufferSyncInterval is how often it
	// is synced. Outputs of type stdout keep memory only.
	BufferStrategy     string   `yaml:"buffer_strategy"`
	BufferDiskLimit    ByteSize `yaml:"buffer_disk_limit"`
	BufferSyncInterval Duration `yaml:"buffer_sync_interval"`

	// Password and Token are read from PasswordFile and TokenFile by LoadSecrets.
	Password string `yaml:"-"`
	Token    string `yaml:"-"`
}

// Duration is a time.Duration written as "10s" in YAML.
type Duration time.Duration

// UnmarshalYAML reads a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: duration %q: want a number with a unit, like 200ms, 10s or 1m", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// ByteSize is a number of bytes written as 1GiB, 512MiB, 100MB or a plain number.
type ByteSize int64

// UnmarshalYAML reads a size.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	v, err := parseSize(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: size %q: %w", n.Line, n.Value, err)
	}
	*b = v
	return nil
}

func parseSize(s string) (ByteSize, error) {
	v, err := units.RAMInBytes(s)
	if err != nil || v < 0 {
		return 0, errors.New("want a size like 1GiB, 512MiB or 1073741824")
	}
	return ByteSize(v), nil
}

// Buffer strategies.
const (
	BufferDisk   = "disk"
	BufferMemory = "memory"
)

// Default returns the configuration used when nothing is set.
func Default() Config {
	return Config{
		DockerHost:    "unix:///var/run/docker.sock",
		Interval:      Duration(10 * time.Second),
		LogLevel:      "info",
		LogFormat:     "json",
		HeartbeatFile: "/tmp/lookout.heartbeat",
		Resources:     "auto",
		HostProc:      "/proc",
		HostCgroup:    "/sys/fs/cgroup",
		StateDir:      "/var/lib/lookout",
		Fluentd: Fluentd{Tag: "docker.{{.Name}}", BufferLimit: 10000, BatchSize: 1000, MaxRecordSize: 1 << 20,
			Start: "beginning", Timeout: Duration(10 * time.Second)},
	}
}

func defaultOutput(o *Output) {
	if o.Precision == "" {
		o.Precision = "ns"
	}
	if o.BatchSize == 0 {
		o.BatchSize = 1000
	}
	if o.FlushInterval == 0 {
		o.FlushInterval = Duration(200 * time.Millisecond)
	}
	if o.BufferLimit == 0 {
		o.BufferLimit = 10000
	}
	if o.Timeout == 0 {
		o.Timeout = Duration(5 * time.Second)
	}
	if o.BufferStrategy == "" {
		o.BufferStrategy = BufferDisk
	}
	if o.BufferDiskLimit == 0 {
		o.BufferDiskLimit = 1 << 30
	}
	if o.BufferSyncInterval == 0 {
		o.BufferSyncInterval = Duration(time.Second)
	}
	if o.Type == OutputInfluxV1 && o.Database == "" {
		o.Database = "lookout"
	}
	if o.Name == "" {
		o.Name = o.Type
	}
}

// Load builds the configuration from file (may be ""), the environment (getenv) and
// flag values already parsed (flags holds only the flags the user set).
func Load(file string, getenv func(string) string, flags map[string]string) (Config, error) {
	c := Default()
	if file == "" {
		file = getenv("LOOKOUT_CONFIG")
	}
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return c, fmt.Errorf("config file: %w", err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(true)
		if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
			return c, fmt.Errorf("config file %s: %w", file, err)
		}
	}
	var errs []error
	set := func(setting string, apply func(string) error) {
		v := flags[setting]
		if v == "" {
			v = getenv(setting)
		}
		if v == "" {
			return
		}
		if err := apply(v); err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: %w", setting, v, err))
		}
	}
	str := func(dst *string) func(string) error { return func(v string) error { *dst = v; return nil } }
	boolean := func(dst *bool) func(string) error {
		return func(v string) error {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return errors.New("want true or false")
			}
			*dst = b
			return nil
		}
	}
	dur := func(dst *Duration) func(string) error {
		return func(v string) error {
			d, err := time.ParseDuration(v)
			if err != nil {
				return errors.New("want a number with a unit, like 200ms, 10s or 1m")
			}
			*dst = Duration(d)
			return nil
		}
	}
	integer := func(dst *int) func(string) error {
		return func(v string) error {
			n, err := strconv.Atoi(v)
			if err != nil {
				return errors.New("want a whole number")
			}
			*dst = n
			return nil
		}
	}
	if getenv("LOOKOUT_DOCKER_HOST") == "" && flags["LOOKOUT_DOCKER_HOST"] == "" && getenv("DOCKER_HOST") != "" && file == "" {
		c.DockerHost = getenv("DOCKER_HOST")
	}
	set("LOOKOUT_DOCKER_HOST", str(&c.DockerHost))
	set("LOOKOUT_MONITOR_ALL", boolean(&c.MonitorAll))
	set("LOOKOUT_INTERVAL", dur(&c.Interval))
	set("LOOKOUT_LOG_LEVEL", str(&c.LogLevel))
	set("LOOKOUT_LOG_FORMAT", str(&c.LogFormat))
	set("LOOKOUT_HEARTBEAT_FILE", str(&c.HeartbeatFile))
	set("LOOKOUT_PROBE_NETWORK", str(&c.ProbeNetwork))
	set("LOOKOUT_PROBE_ALLOWED_HOSTS", func(v string) error {
		c.ProbeAllowedHosts = nil
		for _, h := range strings.Split(v, ",") {
			if h = strings.TrimSpace(h); h != "" {
				c.ProbeAllowedHosts = append(c.ProbeAllowedHosts, h)
			}
		}
		return nil
	})
	set("LOOKOUT_RESOURCES", str(&c.Resources))
	set("LOOKOUT_RESOURCES_PER_DEVICE", boolean(&c.ResourcesPerDevice))
	set("LOOKOUT_HOST_PROC", str(&c.HostProc))
	set("LOOKOUT_HOST_CGROUP", str(&c.HostCgroup))
	set("LOOKOUT_METRICS_ADDRESS", str(&c.MetricsAddress))

	set("LOOKOUT_STATE_DIR", str(&c.StateDir))
	set("LOOKOUT_FLUENTD_ADDRESS", str(&c.Fluentd.Address))
	set("LOOKOUT_FLUENTD_TAG", str(&c.Fluentd.Tag))
	set("LOOKOUT_FLUENTD_BUFFER_LIMIT", integer(&c.Fluentd.BufferLimit))
	set("LOOKOUT_FLUENTD_BATCH_SIZE", integer(&c.Fluentd.BatchSize))
	set("LOOKOUT_FLUENTD_MAX_RECORD_SIZE", integer(&c.Fluentd.MaxRecordSize))
	set("LOOKOUT_FLUENTD_START", str(&c.Fluentd.Start))
	set("LOOKOUT_FLUENTD_TIMEOUT", dur(&c.Fluentd.Timeout))
	set("LOOKOUT_FLUENTD_TLS", boolean(&c.Fluentd.TLS))
	set("LOOKOUT_FLUENTD_TLS_CA_FILE", str(&c.Fluentd.TLSCAFile))
	set("LOOKOUT_FLUENTD_TLS_SKIP_VERIFY", boolean(&c.Fluentd.TLSSkipVerify))
	set("LOOKOUT_FLUENTD_SHARED_KEY_FILE", str(&c.Fluentd.SharedKeyFile))
	set("LOOKOUT_FLUENTD_USERNAME", str(&c.Fluentd.Username))
	set("LOOKOUT_FLUENTD_PASSWORD_FILE", str(&c.Fluentd.PasswordFile))
	set("LOOKOUT_FLUENTD_SELF_HOSTNAME", str(&c.Fluentd.SelfHostname))

	set("LOOKOUT_JAEGER_ENDPOINT", str(&c.Traces.JaegerEndpoint))
	set("LOOKOUT_JAEGER_PROTOCOL", str(&c.Traces.Protocol))
	set("LOOKOUT_JAEGER_COMPACT_LISTEN", str(&c.Traces.CompactListen))
	set("LOOKOUT_JAEGER_BINARY_LISTEN", str(&c.Traces.BinaryListen))
	set("LOOKOUT_JAEGER_MAX_PACKET_SIZE", integer(&c.Traces.MaxPacketSize))
	set("LOOKOUT_OTLP_LISTEN", str(&c.Traces.OTLPListen))
	set("LOOKOUT_OTLP_MAX_REQUEST_SIZE", integer(&c.Traces.OTLPMaxRequestSize))
	set("LOOKOUT_JAEGER_TIMEOUT", dur(&c.Traces.Timeout))
	set("LOOKOUT_SPANS_BATCH_SIZE", integer(&c.Traces.BatchSize))
	set("LOOKOUT_SPANS_FLUSH_INTERVAL", dur(&c.Traces.FlushInterval))
	set("LOOKOUT_SPANS_QUEUE_LIMIT", integer(&c.Traces.QueueLimit))
	set("LOOKOUT_PROBE_SPANS", func(v string) error {
		var b bool
		err := boolean(&b)(v)
		c.Traces.Probes = &b
		return err
	})
	defaultTraces(&c.Traces)

	for _, secret := range []string{"LOOKOUT_INFLUXDB_TOKEN", "LOOKOUT_INFLUXDB_PASSWORD", "LOOKOUT_FLUENTD_SHARED_KEY", "LOOKOUT_FLUENTD_PASSWORD"} {
		if getenv(secret) != "" {
			errs = append(errs, fmt.Errorf("%s is set: secrets are read from files only; set %s_FILE to a file holding it (a Docker secret under /run/secrets)", secret, secret))
		}
	}
	if url := getenv("LOOKOUT_INFLUXDB_URL"); url != "" || flags["LOOKOUT_INFLUXDB_URL"] != "" {
		o := Output{Type: OutputInfluxV1, Name: "influxdb"}
		set("LOOKOUT_INFLUXDB_URL", str(&o.URL))
		set("LOOKOUT_INFLUXDB_DATABASE", str(&o.Database))
		set("LOOKOUT_INFLUXDB_RETENTION_POLICY", str(&o.RetentionPolicy))
		set("LOOKOUT_INFLUXDB_USERNAME", str(&o.Username))
		set("LOOKOUT_INFLUXDB_PASSWORD_FILE", str(&o.PasswordFile))
		set("LOOKOUT_INFLUXDB_ORG", str(&o.Org))
		set("LOOKOUT_INFLUXDB_BUCKET", str(&o.Bucket))
		set("LOOKOUT_INFLUXDB_TOKEN_FILE", str(&o.TokenFile))
		set("LOOKOUT_INFLUXDB_PRECISION", str(&o.Precision))
		set("LOOKOUT_INFLUXDB_GZIP", boolean(&o.Gzip))
		set("LOOKOUT_INFLUXDB_TIMEOUT", dur(&o.Timeout))
		set("LOOKOUT_INFLUXDB_SKIP_DATABASE_CREATION", boolean(&o.SkipDBCreation))
		set("LOOKOUT_BATCH_SIZE", integer(&o.BatchSize))
		set("LOOKOUT_FLUSH_INTERVAL", dur(&o.FlushInterval))
		set("LOOKOUT_BUFFER_LIMIT", integer(&o.BufferLimit))
		set("LOOKOUT_BUFFER_STRATEGY", str(&o.BufferStrategy))
		set("LOOKOUT_BUFFER_DISK_LIMIT", func(v string) error {
			n, err := parseSize(v)
			o.BufferDiskLimit = n
			return err
		})
		set("LOOKOUT_BUFFER_SYNC_INTERVAL", dur(&o.BufferSyncInterval))
		if o.Bucket != "" || o.Org != "" || o.TokenFile != "" {
			o.Type = OutputInfluxV2
			o.Name = "influxdb_v2"
		}
		c.Outputs = append(c.Outputs, o)
	}
	stdout := false
	set("LOOKOUT_STDOUT", boolean(&stdout))
	if stdout || len(c.Outputs) == 0 {
		c.Outputs = append(c.Outputs, Output{Type: OutputStdout, Name: "stdout"})
	}
	for i := range c.Outputs {
		defaultOutput(&c.Outputs[i])
	}
	if len(errs) > 0 {
		return c, errors.Join(errs...)
	}
	return c, nil
}

// Validate checks every setting; the error lists each bad one.
func (c *Config) Validate() error {
	var errs []error
	bad := func(setting string, value any, allowed string) {
		errs = append(errs, fmt.Errorf("%s=%q: %s", setting, fmt.Sprint(value), allowed))
	}
	if u, err := url.Parse(c.DockerHost); err != nil || (u.Scheme != "unix" && u.Scheme != "tcp" && u.Scheme != "http" && u.Scheme != "https") {
		bad("docker_host (LOOKOUT_DOCKER_HOST)", c.DockerHost, "want unix:///path/to/docker.sock or tcp://host:port")
	}
	if time.Duration(c.Interval) < time.Second {
		bad("interval (LOOKOUT_INTERVAL)", time.Duration(c.Interval), "want 1s or more")
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "warning", "error":
	default:
		bad("log_level (LOOKOUT_LOG_LEVEL)", c.LogLevel, "want debug, info, warn or error")
	}
	if c.LogFormat != "json" && c.LogFormat != "text" {
		bad("log_format (LOOKOUT_LOG_FORMAT)", c.LogFormat, "want json or text")
	}
	switch c.Resources {
	case "auto", "cgroup", "api", "off":
	default:
		bad("resources (LOOKOUT_RESOURCES)", c.Resources, "want auto, cgroup, api or off")
	}
	if c.MetricsAddress != "" {
		if _, port, err := net.SplitHostPort(c.MetricsAddress); err != nil || port == "" {
			bad("metrics_address (LOOKOUT_METRICS_ADDRESS)", c.MetricsAddress, "want host:port, like 127.0.0.1:9273 or :9273, or empty for no endpoint")
		}
	}
	errs = append(errs, c.Fluentd.validate(c.StateDir)...)
	c.Traces.validate(bad)
	names := map[string]bool{}
	for i, o := range c.Outputs {
		p := fmt.Sprintf("outputs[%d]", i)
		if names[o.Name] {
			bad(p+".name", o.Name, "output names must be unique")
		}
		names[o.Name] = true
		switch o.Type {
		case OutputStdout:
		case OutputInfluxV1, OutputInfluxV2:
			if u, err := url.Parse(o.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				bad(p+".url (LOOKOUT_INFLUXDB_URL)", o.URL, "want http://host:port or https://host:port")
			}
			if o.Type == OutputInfluxV2 && (o.Org == "" || o.Bucket == "") {
				bad(p+".org/bucket (LOOKOUT_INFLUXDB_ORG, LOOKOUT_INFLUXDB_BUCKET)", o.Org+"/"+o.Bucket, "InfluxDB v2 needs both org and bucket")
			}
		default:
			bad(p+".type", o.Type, "want influxdb, influxdb_v2 or stdout")
		}
		switch o.Precision {
		case "ns", "us", "ms", "s":
		default:
			bad(p+".precision (LOOKOUT_INFLUXDB_PRECISION)", o.Precision, "want ns, us, ms or s")
		}
		if o.BatchSize < 1 {
			bad(p+".batch_size (LOOKOUT_BATCH_SIZE)", o.BatchSize, "want 1 or more")
		}
		if o.BufferLimit < o.BatchSize {
			bad(p+".buffer_limit (LOOKOUT_BUFFER_LIMIT)", o.BufferLimit, fmt.Sprintf("want at least the batch size (%d)", o.BatchSize))
		}
		if o.FlushInterval <= 0 {
			bad(p+".flush_interval (LOOKOUT_FLUSH_INTERVAL)", time.Duration(o.FlushInterval), "want more than 0")
		}
		if o.Timeout <= 0 {
			bad(p+".timeout (LOOKOUT_INFLUXDB_TIMEOUT)", time.Duration(o.Timeout), "want more than 0")
		}
		if o.BufferStrategy != BufferDisk && o.BufferStrategy != BufferMemory {
			bad(p+".buffer_strategy (LOOKOUT_BUFFER_STRATEGY)", o.BufferStrategy, "want disk or memory")
		}
		if o.BufferDiskLimit < 1<<20 {
			bad(p+".buffer_disk_limit (LOOKOUT_BUFFER_DISK_LIMIT)", int64(o.BufferDiskLimit), "want 1MiB or more, like 1GiB")
		}
		if o.BufferSyncInterval <= 0 {
			bad(p+".buffer_sync_interval (LOOKOUT_BUFFER_SYNC_INTERVAL)", time.Duration(o.BufferSyncInterval), "want more than 0, like 1s")
		}
	}
	return errors.Join(errs...)
}

// LoadSecrets reads the password and token files of every output. The error names the
// setting and the file, never the secret.
func (c *Config) LoadSecrets() error {
	var errs []error
	read := func(setting, path string, dst *string) {
		if path == "" {
			return
		}
		b, err := os.ReadFile(path)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: cannot read the secret file: %w", setting, path, errors.Unwrap(err)))
			return
		}
		*dst = strings.TrimRight(string(b), "\r\n")
		if *dst == "" {
			errs = append(errs, fmt.Errorf("%s=%q: the secret file is empty", setting, path))
		}
	}
	for i := range c.Outputs {
		o := &c.Outputs[i]
		read(fmt.Sprintf("outputs[%d].password_file (LOOKOUT_INFLUXDB_PASSWORD_FILE)", i), o.PasswordFile, &o.Password)
		read(fmt.Sprintf("outputs[%d].token_file (LOOKOUT_INFLUXDB_TOKEN_FILE)", i), o.TokenFile, &o.Token)
	}
	if c.Fluentd.Address != "" {
		read("fluentd.shared_key_file (LOOKOUT_FLUENTD_SHARED_KEY_FILE)", c.Fluentd.SharedKeyFile, &c.Fluentd.SharedKey)
		read("fluentd.password_file (LOOKOUT_FLUENTD_PASSWORD_FILE)", c.Fluentd.PasswordFile, &c.Fluentd.Password)
	}
	return errors.Join(errs...)
}
