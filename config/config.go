// Package config reads Lookout's configuration: defaults, then an optional YAML file,
// then LOOKOUT_* environment variables, then command-line flags. Secrets are read from
// files only (Docker secrets under /run/secrets). Validate names the setting, the value
// and what is allowed.
//
// Every setting is one row of the table in settings.go (key, environment variable,
// flag, default, rule, help); loading, defaults, validation, the flags, `lookout
// check`'s listing and docs/configuration.md all come from it. The structs below are
// what the rest of the agent reads; a setting's row finds its field by the yaml tag.
package config

import (
	"errors"
	"fmt"
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
	// Logs says where the forwarder reads container logs.
	Logs Logs `yaml:"logs"`
	// StateDir holds what must survive a restart (the log positions).
	StateDir string `yaml:"state_dir"`
	// Traces configures spans to Jaeger (probe spans and the span relay).
	Traces Traces `yaml:"traces"`

	// file and origin record where each setting came from, for Effective.
	file   string
	origin map[string]origin
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

// Logs says where the log forwarder reads: Source is auto (the json-file log file where
// it can be read, else the Docker logs API, per container), file or api; ContainersDir is
// Docker's containers directory as the agent sees it (empty: DockerRootDir/containers
// from the engine, for a local engine).
type Logs struct {
	Source        string `yaml:"source"`
	ContainersDir string `yaml:"containers_dir"`
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
