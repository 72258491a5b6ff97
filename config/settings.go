package config

import (
	"fmt"
	"reflect"
	"strings"
	"time"
)

// Setting is one row of the settings table: everything about a setting is said here
// once. Loading, defaults, validation, the flags of `lookout -h`, `lookout check`'s
// listing and the table in docs/configuration.md all come from it.
type Setting struct {
	// Key is the setting's YAML key: "interval", "fluentd.tag", "outputs[].url" (a key
	// of each output). It is also the setting's name in messages. A setting the file
	// cannot hold (the file's own path, the stdout switch) has a name here and File
	// says what in the file stands for it.
	Key string
	// Env is the environment variable; "" when only the file can say it. Every
	// setting with an environment variable also has a flag (see Flag).
	Env string
	// Default is the value used when nothing is set, written as in the environment
	// ("10s", "1GiB"); "" for none. DefaultDoc, when set, is what the docs say instead.
	Default    string
	DefaultDoc string
	// Rule says what is allowed and checks it.
	Rule Rule
	// Help is the one-line description.
	Help string
	// File, for a setting that is no file key, says what in the file does its job.
	File string
	// SecretFile marks a file holding a secret: Env without _FILE (the secret itself)
	// is refused, and the secret read from the file is never shown.
	SecretFile bool
	// Influx marks an output key that only InfluxDB outputs use (not shown for stdout).
	Influx bool

	// zeroIsDefault: a zero value (from the file too) means the default. True for the
	// keys of traces and outputs, which have always been filled in after loading.
	zeroIsDefault bool
	// when, if set, says whether the setting is checked at all (the log forwarder's
	// settings only while it is on).
	when func(c *Config) bool
	// index is the field's place in Config (or in Output for outputs[] keys); nil for a
	// setting that is no file key.
	index []int
}

// Flag is the command-line flag of the setting: LOOKOUT_FLUENTD_TLS_CA_FILE is
// -fluentd-tls-ca-file. "" when the setting has no environment variable.
func (s Setting) Flag() string {
	if s.Env == "" {
		return ""
	}
	return strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(s.Env, "LOOKOUT_")), "_", "-")
}

// PerOutput says whether the setting is a key of each output.
func (s Setting) PerOutput() bool { return strings.HasPrefix(s.Key, "outputs[].") }

// label is how messages name the setting: key (ENV), or key alone.
func label(key, env string) string {
	if env == "" {
		return key
	}
	return key + " (" + env + ")"
}

const (
	settingConfig = "LOOKOUT_CONFIG"
	settingStdout = "LOOKOUT_STDOUT"
)

func fluentdOn(c *Config) bool { return c.Fluentd.Address != "" }

// settings is the table. Its order is the order of the docs, of `lookout -h` and of
// `lookout check`.
var settings = resolve([]Setting{
	{Key: "config", Env: settingConfig, File: "none", DefaultDoc: "none",
		Help: "YAML file for what the environment cannot say (several outputs)"},
	{Key: "docker_host", Env: "LOOKOUT_DOCKER_HOST", Default: "unix:///var/run/docker.sock",
		DefaultDoc: "`DOCKER_HOST` (when no file is used), else `unix:///var/run/docker.sock`",
		Rule:       dockerHost(), Help: "the engine: `unix://…` or `tcp://host:port`"},
	{Key: "monitor_all", Env: "LOOKOUT_MONITOR_ALL", Default: "false", Rule: boolean(),
		Help: "monitor containers without `lookout.enable=true` (`lookout.enable=false` still opts out)"},
	{Key: "interval", Env: "LOOKOUT_INTERVAL", Default: "10s", Rule: durationAtLeast(time.Second),
		Help: "re-list and snapshot interval, and the agent's own metrics. Health transitions do not wait for it"},
	{Key: "log_level", Env: "LOOKOUT_LOG_LEVEL", Default: "info",
		Rule: oneOf("want debug, info, warn or error", "debug", "info", "warn", "warning", "error"),
		Help: "how much the agent logs"},
	{Key: "log_format", Env: "LOOKOUT_LOG_FORMAT", Default: "json", Rule: oneOf("", "json", "text"),
		Help: "`json` (logrus, to stderr) or `text`"},
	{Key: "heartbeat_file", Env: "LOOKOUT_HEARTBEAT_FILE", Default: "/tmp/lookout.heartbeat",
		Help: "touched every interval while connected; read by `lookout healthcheck`"},
	{Key: "probe_network", Env: "LOOKOUT_PROBE_NETWORK",
		Help: "the network whose address checks use when a check names none"},
	{Key: "probe_allowed_hosts", Env: "LOOKOUT_PROBE_ALLOWED_HOSTS", Rule: list(),
		Help: "hosts a check label may name besides the container's own address; never reached, listed or not: the node's own, loopback, link-local and cloud metadata addresses, and an entry that is one of those (or a metadata service's name) is a bad configuration ([labels-and-checks.md](labels-and-checks.md#security-where-a-check-may-not-go))"},
	{Key: "state_dir", Env: "LOOKOUT_STATE_DIR", Default: "/var/lib/lookout", Rule: stateDir(),
		Help: "what must survive a restart: the per-container log positions (`logs/<id>.json`) and the outputs' disk queues (`queue/<output>/`); mount a volume there"},
	{Key: "metrics_address", Env: "LOOKOUT_METRICS_ADDRESS", DefaultDoc: "none: no port is opened", Rule: metricsAddress(),
		Help: "`host:port` serving `/metrics` and `/healthz`"},

	{Key: "resources", Env: "LOOKOUT_RESOURCES", Default: "auto", Rule: oneOf("", "auto", "cgroup", "api", "off"),
		Help: "container resource measurements: `auto` (cgroup files, else the one-shot stats API, per container), `cgroup`, `api`, `off`"},
	{Key: "resources_per_device", Env: "LOOKOUT_RESOURCES_PER_DEVICE", Default: "false", Rule: boolean(),
		Help: "also per-CPU, per-interface and per-block-device points"},
	{Key: "host_proc", Env: "LOOKOUT_HOST_PROC", Default: "/proc",
		Help: "where the host's `/proc` is seen (`/host/proc` in `deploy/global-stack.yml`)"},
	{Key: "host_cgroup", Env: "LOOKOUT_HOST_CGROUP", Default: "/sys/fs/cgroup",
		Help: "where the host's cgroup tree is seen"},

	{Key: "stdout", Env: settingStdout, File: "an output of `type: stdout`", Rule: boolean(),
		DefaultDoc: "`true` when no other output", Help: "also print line protocol to stdout"},
	{Key: "outputs[].name", DefaultDoc: "the type", Help: "the output's name in logs, metrics and its queue directory; unique"},
	{Key: "outputs[].type", Rule: oneOf("", OutputInfluxV1, OutputInfluxV2, OutputStdout),
		Help: "`influxdb` (1.x), `influxdb_v2` or `stdout`"},
	{Key: "outputs[].url", Env: "LOOKOUT_INFLUXDB_URL", Influx: true, Rule: influxURL(),
		Help: "an InfluxDB output (`http://` or `https://`); in the environment, it turns the output on"},
	{Key: "outputs[].database", Env: "LOOKOUT_INFLUXDB_DATABASE", Influx: true, Default: "lookout", DefaultDoc: "`lookout` (v1)",
		Help: "v1 database (created on a 404 unless `skip_database_creation`)"},
	{Key: "outputs[].retention_policy", Env: "LOOKOUT_INFLUXDB_RETENTION_POLICY", Influx: true, Help: "v1 retention policy"},
	{Key: "outputs[].username", Env: "LOOKOUT_INFLUXDB_USERNAME", Influx: true, Help: "v1 basic auth user"},
	{Key: "outputs[].password_file", Env: "LOOKOUT_INFLUXDB_PASSWORD_FILE", Influx: true, SecretFile: true,
		Help: "file holding the v1 password"},
	{Key: "outputs[].org", Env: "LOOKOUT_INFLUXDB_ORG", Influx: true,
		Help: "v2 organization; in the environment, setting it (or the bucket or the token file) makes the output InfluxDB v2 (`/api/v2/write`)"},
	{Key: "outputs[].bucket", Env: "LOOKOUT_INFLUXDB_BUCKET", Influx: true, Help: "v2 bucket"},
	{Key: "outputs[].token_file", Env: "LOOKOUT_INFLUXDB_TOKEN_FILE", Influx: true, SecretFile: true,
		Help: "file holding the v2 token"},
	{Key: "outputs[].precision", Env: "LOOKOUT_INFLUXDB_PRECISION", Default: "ns", Rule: oneOf("", "ns", "us", "ms", "s"),
		Help: "timestamp precision of the line protocol"},
	{Key: "outputs[].gzip", Env: "LOOKOUT_INFLUXDB_GZIP", Influx: true, Default: "false", Rule: boolean(),
		Help: "gzip request bodies"},
	{Key: "outputs[].timeout", Env: "LOOKOUT_INFLUXDB_TIMEOUT", Influx: true, Default: "5s", Rule: durationAbove0(""),
		Help: "per write"},
	{Key: "outputs[].skip_database_creation", Env: "LOOKOUT_INFLUXDB_SKIP_DATABASE_CREATION", Influx: true, Default: "false",
		Rule: boolean(), Help: "never send `CREATE DATABASE`"},
	{Key: "outputs[].batch_size", Env: "LOOKOUT_BATCH_SIZE", Default: "1000", Rule: intAtLeast(1), Help: "lines per write"},
	{Key: "outputs[].flush_interval", Env: "LOOKOUT_FLUSH_INTERVAL", Default: "200ms", Rule: durationAbove0(""),
		Help: "how long a line may wait for its batch to fill"},
	{Key: "outputs[].buffer_limit", Env: "LOOKOUT_BUFFER_LIMIT", Default: "10000",
		Rule: atLeastBatch("", func(_ *Config, o *Output) int { return o.BatchSize }),
		Help: "lines held in memory per output; with the `memory` strategy, all it holds while its destination is down (the oldest go first, counted in `dropped`)"},
	{Key: "outputs[].buffer_strategy", Env: "LOOKOUT_BUFFER_STRATEGY", Influx: true, Default: BufferDisk,
		Rule: oneOf("", BufferDisk, BufferMemory),
		Help: "`disk`: every line also goes to a queue in `LOOKOUT_STATE_DIR/queue/<output>` that survives outages, crashes and restarts (memory if the directory cannot be used, logged); `memory`: memory only. See [delivery.md](delivery.md)"},
	{Key: "outputs[].buffer_disk_limit", Env: "LOOKOUT_BUFFER_DISK_LIMIT", Influx: true, Default: "1GiB", Rule: sizeAtLeast(1 << 20),
		Help: "bytes of the disk queue per output; past it the oldest go first, counted in `dropped`"},
	{Key: "outputs[].buffer_sync_interval", Env: "LOOKOUT_BUFFER_SYNC_INTERVAL", Influx: true, Default: "1s", Rule: durationAbove0(", like 1s"),
		Help: "how often the disk queue is synced to the disk: what a power loss may cost (a crash of the agent alone costs nothing)"},

	{Key: "fluentd.address", Env: "LOOKOUT_FLUENTD_ADDRESS", DefaultDoc: "none: logs off", Rule: fluentdAddress(),
		Help: "where container logs go: `host:port`, `tcp://host:port` or `unix:///path/to/socket`"},
	{Key: "fluentd.tag", Env: "LOOKOUT_FLUENTD_TAG", Default: "docker.{{.Name}}", Rule: logTag(),
		Help: "Go template of the Fluentd tag: `.ID` (12 characters), `.FullID`, `.Name`, `.ImageName`, `.Service`, `.Stack`, `.TaskSlot`, `.Node`"},
	{Key: "fluentd.batch_size", Env: "LOOKOUT_FLUENTD_BATCH_SIZE", Default: "1000", Rule: intBetween(1, 100000, "records"),
		Help: "records per Forward message (also cut at 1 MiB of log)"},
	{Key: "fluentd.buffer_limit", Env: "LOOKOUT_FLUENTD_BUFFER_LIMIT", Default: "10000", Rule: atLeastBatch(" records", func(c *Config, _ *Output) int { return c.Fluentd.BatchSize }),

		Help: "records read but not yet acknowledged, per container; reading pauses beyond it"},
	{Key: "fluentd.max_record_size", Env: "LOOKOUT_FLUENTD_MAX_RECORD_SIZE", Default: "1048576", Rule: intBetween(1024, 64<<20, "bytes"),
		Help: "bytes of log per record; the rest is cut and ` [truncated by lookout: N of M bytes kept]` appended"},
	{Key: "fluentd.start", Env: "LOOKOUT_FLUENTD_START", Default: "beginning",
		Rule: oneOf("want beginning (a container's whole log) or now (only what it writes from now on)", "beginning", "now"),
		Help: "a container without a saved position is read from its start (`beginning`) or from when the agent started (`now`)"},
	{Key: "fluentd.timeout", Env: "LOOKOUT_FLUENTD_TIMEOUT", Default: "10s", Rule: durationAtLeast(100 * time.Millisecond),
		Help: "connect, write and wait for the acknowledgement"},
	{Key: "fluentd.tls", Env: "LOOKOUT_FLUENTD_TLS", Default: "false", Rule: fluentdTLS(),
		Help: "connect with TLS (1.2 or later), verifying the server's certificate for the address's host"},
	{Key: "fluentd.tls_ca_file", Env: "LOOKOUT_FLUENTD_TLS_CA_FILE", DefaultDoc: "system roots", Help: "PEM file of the CAs to trust"},
	{Key: "fluentd.tls_skip_verify", Env: "LOOKOUT_FLUENTD_TLS_SKIP_VERIFY", Default: "false", Rule: boolean(),
		Help: "accept any certificate"},
	{Key: "fluentd.shared_key_file", Env: "LOOKOUT_FLUENTD_SHARED_KEY_FILE", DefaultDoc: "none: no handshake", SecretFile: true,
		Rule: sharedKeyFile(),
		Help: "file holding the `shared_key` of the server's `<security>` section (a Docker secret under `/run/secrets`)"},
	{Key: "fluentd.username", Env: "LOOKOUT_FLUENTD_USERNAME", Rule: fluentdUsername(),
		Help: "user for a server with `user_auth`; needs the shared key and a password file"},
	{Key: "fluentd.password_file", Env: "LOOKOUT_FLUENTD_PASSWORD_FILE", SecretFile: true,
		Help: "file holding that user's password"},
	{Key: "fluentd.self_hostname", Env: "LOOKOUT_FLUENTD_SELF_HOSTNAME", DefaultDoc: "the node's hostname (Docker's), else the agent's",
		Help: "the name Lookout introduces itself with in the handshake"},

	{Key: "logs.source", Env: "LOOKOUT_LOGS_SOURCE", Default: "auto",
		Rule: oneOf("want auto, file or api", "auto", "file", "api"),
		Help: "where container logs are read: `auto` (a `json-file` container's log file when it can be read, else the Docker logs API, per container; see [logs.md](logs.md#sources)), `file` or `api`"},
	{Key: "logs.containers_dir", Env: "LOOKOUT_LOGS_CONTAINERS_DIR", DefaultDoc: "`DockerRootDir` (from `docker info`) + `/containers`, for an engine on a `unix://` socket; none (the API) for a remote one",
		Help: "Docker's containers directory as the agent sees it (mount the host's read-only at the same path, see `deploy/global-stack.yml`); reading needs root or `CAP_DAC_READ_SEARCH`"},

	{Key: "traces.jaeger_endpoint", Env: "LOOKOUT_JAEGER_ENDPOINT", DefaultDoc: "none: no spans", Rule: jaegerEndpoint(),
		Help: "where spans go: the Jaeger collector's jaeger.thrift HTTP endpoint `http://jaeger:14268/api/traces`, or with `LOOKOUT_JAEGER_PROTOCOL=otlp` an OTLP/HTTP endpoint `http://jaeger:4318/v1/traces` (no path: the protocol's path is added). Turns on check spans and allows the relay"},
	{Key: "traces.jaeger_protocol", Env: "LOOKOUT_JAEGER_PROTOCOL", Default: "thrift",
		Rule: oneOf(`want "thrift" (jaeger.thrift over HTTP, Jaeger's /api/traces) or "otlp" (OTLP/HTTP protobuf, /v1/traces)`, "thrift", "otlp"),
		Help: "`thrift` (jaeger.thrift binary over HTTP) or `otlp` (OTLP/HTTP protobuf, gzip)"},
	{Key: "traces.probe_spans", Env: "LOOKOUT_PROBE_SPANS", Default: "true", Rule: boolean(),
		Help: "a span per check run (while spans go anywhere)"},
	{Key: "traces.compact_listen", Env: "LOOKOUT_JAEGER_COMPACT_LISTEN", DefaultDoc: "none: off", Rule: listen("172.17.0.1:6831"),
		Help: "relay UDP address for jaeger.thrift compact (jaeger-agent's 6831), e.g. `172.17.0.1:6831`"},
	{Key: "traces.binary_listen", Env: "LOOKOUT_JAEGER_BINARY_LISTEN", DefaultDoc: "none: off", Rule: binaryListen(),
		Help: "relay UDP address for jaeger.thrift binary (jaeger-agent's 6832)"},
	{Key: "traces.otlp_listen", Env: "LOOKOUT_OTLP_LISTEN", DefaultDoc: "none: off", Rule: listen("172.17.0.1:4318"),
		Help: "OTLP/HTTP receiver TCP address (`POST /v1/traces`, protobuf), e.g. `172.17.0.1:4318`: an address only the node's containers reach, such as the bridge gateway"},
	{Key: "traces.otlp_grpc_listen", Env: "LOOKOUT_OTLP_GRPC_LISTEN", DefaultDoc: "none: off", Rule: listen("172.17.0.1:4317"),
		Help: "OTLP/gRPC receiver TCP address (`TraceService/Export`, HTTP/2 without TLS), e.g. `172.17.0.1:4317`: an address only the node's containers reach"},
	{Key: "traces.max_packet_size", Env: "LOOKOUT_JAEGER_MAX_PACKET_SIZE", Default: "65000", Rule: intBetween(512, 65507, "bytes"),
		Help: "larger UDP packets are dropped and counted (jaeger-agent's default)"},
	{Key: "traces.otlp_max_request_size", Env: "LOOKOUT_OTLP_MAX_REQUEST_SIZE", Default: "4194304", Rule: intBetween(1024, 64<<20, "bytes"),
		Help: "larger OTLP request bodies (compressed or decompressed) are answered 413 (gRPC: `RESOURCE_EXHAUSTED`) and counted"},
	{Key: "traces.timeout", Env: "LOOKOUT_JAEGER_TIMEOUT", Default: "5s", Rule: durationAbove0(""),
		Help: "per request to the collector"},
	{Key: "traces.batch_size", Env: "LOOKOUT_SPANS_BATCH_SIZE", Default: "500", Rule: intAtLeast(1),
		Help: "spans per request at most; a full batch goes at once"},
	{Key: "traces.flush_interval", Env: "LOOKOUT_SPANS_FLUSH_INTERVAL", Default: "1s", Rule: durationAbove0(""),
		Help: "how long a span may wait for its batch to fill"},
	{Key: "traces.queue_limit", Env: "LOOKOUT_SPANS_QUEUE_LIMIT", Default: "50000",
		Rule: atLeastBatch("", func(c *Config, _ *Output) int { return c.Traces.BatchSize }),
		Help: "spans held while the collector is away; later ones are dropped and counted in `dropped_queue_full`"},
	{Key: "traces.queue_limit_bytes", Env: "LOOKOUT_SPANS_QUEUE_LIMIT_BYTES", Default: "16777216", Rule: intBetween(1<<20, 1<<30, "bytes"),
		Help: "memory the held spans may take (estimated: their protobuf size and Go's structures), however few spans that is; later ones are dropped and counted in `dropped_queue_full`"},
})

// Settings returns the settings table, in the order of the docs.
func Settings() []Setting { return append([]Setting(nil), settings...) }

// resolve finds each setting's field by its key in the yaml tags of Config and Output,
// and fills in what follows from the key. A key that names no field is a programming
// error, caught by every test of this package.
func resolve(table []Setting) []Setting {
	for i := range table {
		s := &table[i]
		if strings.HasPrefix(s.Key, "fluentd.") || strings.HasPrefix(s.Key, "logs.") {
			s.when = fluentdOn
		}
		if strings.HasPrefix(s.Key, "traces.") || s.PerOutput() {
			s.zeroIsDefault = true
		}
		if s.File != "" {
			continue
		}
		root, key := reflect.TypeOf(Config{}), s.Key
		if k, ok := strings.CutPrefix(key, "outputs[]."); ok {
			root, key = reflect.TypeOf(Output{}), k
		}
		idx, ok := fieldIndex(root, key)
		if !ok {
			panic(fmt.Sprintf("config: setting %s names no field", s.Key))
		}
		s.index = idx
	}
	return table
}

func fieldIndex(t reflect.Type, key string) ([]int, bool) {
	first, rest, nested := strings.Cut(key, ".")
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ","); tag != first {
			continue
		}
		if !nested {
			return []int{i}, true
		}
		if f.Type.Kind() != reflect.Struct {
			return nil, false
		}
		sub, ok := fieldIndex(f.Type, rest)
		return append([]int{i}, sub...), ok
	}
	return nil, false
}
