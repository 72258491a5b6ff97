package config

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite docs/configuration.md's settings table from the Go table")

// TestConfigurationDoc fails when docs/configuration.md's table and the settings table
// disagree; -update rewrites the docs from the table.
func TestConfigurationDoc(t *testing.T) {
	path := filepath.Join("..", "docs", "configuration.md")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	begin, end := strings.Index(doc, DocBegin), strings.Index(doc, DocEnd)
	if begin < 0 || end < begin {
		t.Fatalf("%s lacks the markers %s and %s", path, DocBegin, DocEnd)
	}
	inDoc := strings.TrimSpace(doc[begin+len(DocBegin) : end])
	want := strings.TrimSpace(DocTable())
	if inDoc == want {
		return
	}
	if *update {
		doc = doc[:begin+len(DocBegin)] + "\n" + want + "\n" + doc[end:]
		if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	dl, wl := strings.Split(inDoc, "\n"), strings.Split(want, "\n")
	for i := 0; i < max(len(dl), len(wl)); i++ {
		var d, w string
		if i < len(dl) {
			d = dl[i]
		}
		if i < len(wl) {
			w = wl[i]
		}
		if d != w {
			t.Errorf("line %d of the table:\n docs:  %s\n table: %s", i+1, d, w)
			break
		}
	}
	t.Fatalf("%s and the settings table (config/settings.go) disagree: run go test ./config -run TestConfigurationDoc -update", path)
}

// TestTableCoversEveryField: every yaml key of Config and Output is a setting, and no
// two settings share a key, a variable or a flag.
func TestTableCoversEveryField(t *testing.T) {
	known := map[string]bool{}
	for _, s := range Settings() {
		if known[s.Key] {
			t.Errorf("key %s twice", s.Key)
		}
		known[s.Key] = true
	}
	var walk func(typ reflect.Type, prefix string)
	walk = func(typ reflect.Type, prefix string) {
		for i := 0; i < typ.NumField(); i++ {
			f := typ.Field(i)
			tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if tag == "" || tag == "-" {
				continue
			}
			switch {
			case f.Type == reflect.TypeOf([]Output{}):
				walk(reflect.TypeOf(Output{}), prefix+tag+"[].")
			case f.Type.Kind() == reflect.Struct:
				walk(f.Type, prefix+tag+".")
			case !known[prefix+tag]:
				t.Errorf("the file key %s (%s) has no row in the settings table", prefix+tag, f.Name)
			}
		}
	}
	walk(reflect.TypeOf(Config{}), "")
	envs, flags := map[string]bool{}, map[string]bool{}
	for _, s := range Settings() {
		if s.Env == "" {
			continue
		}
		if envs[s.Env] || flags[s.Flag()] {
			t.Errorf("%s: variable or flag -%s twice", s.Key, s.Flag())
		}
		envs[s.Env], flags[s.Flag()] = true, true
		if s.Help == "" {
			t.Errorf("%s has no help", s.Key)
		}
	}
	// The flags that existed before the table keep their names.
	for _, f := range []string{"config", "docker-host", "monitor-all", "log-level", "influxdb-url"} {
		if !flags[f] {
			t.Errorf("flag -%s is gone", f)
		}
	}
}

// TestDefaultsUnchanged pins the defaults as they were written before the table.
func TestDefaultsUnchanged(t *testing.T) {
	c, err := Load("", env(map[string]string{"LOOKOUT_INFLUXDB_URL": "http://db:8086"}), nil)
	if err != nil {
		t.Fatal(err)
	}
	c.origin, c.file = nil, ""
	want := Config{
		DockerHost: "unix:///var/run/docker.sock", Interval: Duration(10 * time.Second), LogLevel: "info", LogFormat: "json",
		HeartbeatFile: "/tmp/lookout.heartbeat", Resources: "auto", HostProc: "/proc", HostCgroup: "/sys/fs/cgroup",
		StateDir: "/var/lib/lookout",
		Fluentd: Fluentd{Tag: "docker.{{.Name}}", BufferLimit: 10000, BatchSize: 1000, MaxRecordSize: 1 << 20,
			Start: "beginning", Timeout: Duration(10 * time.Second)},
		Logs: Logs{Source: "auto"},
		Traces: Traces{Protocol: "thrift", MaxPacketSize: 65000, OTLPMaxRequestSize: 4 << 20, BatchSize: 500,
			FlushInterval: Duration(time.Second), QueueLimit: 50000, QueueLimitBytes: 16 << 20, Timeout: Duration(5 * time.Second)},
		Outputs: []Output{{Name: "influxdb", Type: OutputInfluxV1, URL: "http://db:8086", Database: "lookout", Precision: "ns",
			BatchSize: 1000, FlushInterval: Duration(200 * time.Millisecond), BufferLimit: 10000, Timeout: Duration(5 * time.Second),
			BufferStrategy: BufferDisk, BufferDiskLimit: 1 << 30, BufferSyncInterval: Duration(time.Second)}},
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("defaults changed:\n got  %+v\n want %+v", c, want)
	}
	// A v2 output has no default database; a file's zero in traces and outputs is the default.
	dir := t.TempDir()
	f := filepath.Join(dir, "l.yml")
	_ = os.WriteFile(f, []byte("traces: {batch_size: 0}\noutputs:\n  - {type: influxdb_v2, url: 'http://x:1', org: o, bucket: b, batch_size: 0}\n"), 0o644)
	c, err = Load(f, env(nil), nil)
	if err != nil || c.Traces.BatchSize != 500 || c.Outputs[0].BatchSize != 1000 || c.Outputs[0].Database != "" || c.Outputs[0].Name != OutputInfluxV2 {
		t.Errorf("file zeros: %v %+v %+v", err, c.Traces, c.Outputs)
	}
	// A top-level zero from the file is kept, and refused.
	_ = os.WriteFile(f, []byte("interval: 0s\n"), 0o644)
	c, _ = Load(f, env(nil), nil)
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), `interval (LOOKOUT_INTERVAL)="0s": want 1s or more`) {
		t.Errorf("interval 0 from the file: %v", err)
	}
}

// TestEverySettingFromEnvAndFlag sets each setting by its variable and by its flag.
func TestEverySettingFromEnvAndFlag(t *testing.T) {
	sample := map[reflect.Type]string{reflect.TypeOf(""): "x", reflect.TypeOf(true): "true", reflect.TypeOf(0): "7",
		reflect.TypeOf(Duration(0)): "3s", reflect.TypeOf(ByteSize(0)): "2MiB", reflect.TypeOf([]string{}): "a,b",
		reflect.TypeOf((*bool)(nil)): "false"}
	for _, s := range Settings() {
		if s.Env == "" || s.index == nil {
			continue
		}
		for _, how := range []Source{FromEnv, FromFlag} {
			typ := reflect.TypeOf(Config{})
			if s.PerOutput() {
				typ = reflect.TypeOf(Output{})
			}
			text := sample[typ.FieldByIndex(s.index).Type]
			vars := map[string]string{"LOOKOUT_INFLUXDB_URL": "http://db:8086"}
			var flags map[string]string
			if how == FromEnv {
				vars[s.Env] = text
			} else {
				fs := flag.NewFlagSet("t", flag.ContinueOnError)
				fs.SetOutput(io.Discard)
				get := Flags(fs)
				if err := fs.Parse([]string{"-" + s.Flag(), text}); err != nil {
					t.Fatalf("%s: %v", s.Flag(), err)
				}
				flags = get()
			}
			c, err := Load("", env(vars), flags)
			if err != nil {
				t.Fatalf("%s by %s: %v", s.Key, how, err)
			}
			key := s.Key
			if s.PerOutput() {
				key = "outputs[0]" + strings.TrimPrefix(s.Key, "outputs[]")
			}
			var got Value
			for _, v := range c.Effective() {
				if v.Key == key {
					got = v
				}
			}
			want := text
			if s.Key == "traces.jaeger_endpoint" {
				want = "x" // not a URL: no path is added
			}
			if got.Value != want || got.Source != how {
				t.Errorf("%s by %s: effective %+v, want %q from %s", s.Key, how, got, want, how)
			}
		}
	}
}

func TestPrecedenceAndSources(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "l.yml")
	_ = os.WriteFile(f, []byte("interval: 5s\nlog_level: debug\nmonitor_all: true\nfluentd:\n  tag: t\noutputs:\n  - {type: influxdb, url: 'http://a:1'}\n"), 0o644)
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	get := Flags(fs)
	if err := fs.Parse([]string{"-config", f, "-log-level", "warn"}); err != nil {
		t.Fatal(err)
	}
	c, err := Load("", env(map[string]string{"LOOKOUT_LOG_LEVEL": "error", "LOOKOUT_INTERVAL": "7s", "DOCKER_HOST": "tcp://ignored:1"}), get())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Value{
		"config":              {Value: f, Source: FromFlag, Via: "-config"},
		"interval":            {Value: "7s", Source: FromEnv, Via: "LOOKOUT_INTERVAL"},
		"log_level":           {Value: "warn", Source: FromFlag, Via: "-log-level"},
		"monitor_all":         {Value: "true", Source: FromFile, Via: f},
		"fluentd.tag":         {Value: "t", Source: FromFile, Via: f},
		"docker_host":         {Value: "unix:///var/run/docker.sock", Source: FromDefault}, // DOCKER_HOST only without a file
		"outputs[0].url":      {Value: "http://a:1", Source: FromFile, Via: f},
		"outputs[0].database": {Value: "lookout", Source: FromDefault},
	}
	for _, v := range c.Effective() {
		if w, ok := want[v.Key]; ok {
			if v.Value != w.Value || v.Source != w.Source || v.Via != w.Via {
				t.Errorf("%s: %+v, want %+v", v.Key, v, w)
			}
			delete(want, v.Key)
		}
	}
	if len(want) > 0 {
		t.Errorf("not listed: %v", want)
	}
	c, _ = Load("", env(map[string]string{"DOCKER_HOST": "tcp://d:2375"}), nil)
	if v := c.Effective()[1]; v.Key != "docker_host" || v.Value != "tcp://d:2375" || v.Via != "DOCKER_HOST" {
		t.Errorf("DOCKER_HOST: %+v", v)
	}
}

// TestEffectiveShowsNoSecret: the secrets read from files and a URL's password never
// appear in what `lookout check` prints.
func TestEffectiveShowsNoSecret(t *testing.T) {
	dir := t.TempDir()
	write := func(name, secret string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(secret), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	c, err := Load("", env(map[string]string{"LOOKOUT_INFLUXDB_URL": "http://u:pw-in-url@db:8086", "LOOKOUT_INFLUXDB_ORG": "o",
		"LOOKOUT_INFLUXDB_BUCKET": "b", "LOOKOUT_INFLUXDB_TOKEN_FILE": write("token", "tok-secret"),
		"LOOKOUT_INFLUXDB_PASSWORD_FILE": write("pass", "pass-secret"), "LOOKOUT_FLUENTD_ADDRESS": "f:24224",
		"LOOKOUT_FLUENTD_SHARED_KEY_FILE": write("key", "key-secret"), "LOOKOUT_FLUENTD_USERNAME": "u",
		"LOOKOUT_FLUENTD_PASSWORD_FILE": write("fpass", "fpass-secret"), "LOOKOUT_JAEGER_ENDPOINT": "https://j:sec-jaeger@jaeger:4318"}), nil)
	if err == nil {
		err = c.LoadSecrets()
	}
	if err != nil {
		t.Fatal(err)
	}
	if c.Outputs[0].Token != "tok-secret" || c.Fluentd.SharedKey != "key-secret" || c.Fluentd.Password != "fpass-secret" || c.Outputs[0].Password != "pass-secret" {
		t.Fatalf("secrets not read: %+v %+v", c.Outputs[0], c.Fluentd)
	}
	var all strings.Builder
	for _, v := range c.Effective() {
		all.WriteString(v.Key + "=" + v.Value + "\n")
	}
	for _, secret := range []string{"tok-secret", "pass-secret", "key-secret", "fpass-secret", "pw-in-url", "sec-jaeger"} {
		if strings.Contains(all.String(), secret) {
			t.Errorf("the listing shows %q:\n%s", secret, all.String())
		}
	}
	if !strings.Contains(all.String(), "outputs[0].url=http://u:xxxxx@db:8086") {
		t.Errorf("the URL is not listed with its password hidden:\n%s", all.String())
	}
}

// TestValidationMessagesUnchanged lists the messages Validate gave before the table,
// word for word.
func TestValidationMessagesUnchanged(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want []string
	}{
		{map[string]string{"LOOKOUT_DOCKER_HOST": "ftp://x", "LOOKOUT_LOG_FORMAT": "xml",
			"LOOKOUT_INFLUXDB_URL": "db:8086", "LOOKOUT_BUFFER_DISK_LIMIT": "1000", "LOOKOUT_BUFFER_SYNC_INTERVAL": "-1s",
			"LOOKOUT_BUFFER_STRATEGY": "cloud", "LOOKOUT_FLUSH_INTERVAL": "0s", "LOOKOUT_INFLUXDB_TIMEOUT": "-2s", "LOOKOUT_BATCH_SIZE": "-1"},
			[]string{`docker_host (LOOKOUT_DOCKER_HOST)="ftp://x": want unix:///path/to/docker.sock or tcp://host:port`,
				`log_format (LOOKOUT_LOG_FORMAT)="xml": want json or text`,
				`outputs[0].url (LOOKOUT_INFLUXDB_URL)="db:8086": want http://host:port or https://host:port`,
				`outputs[0].buffer_disk_limit (LOOKOUT_BUFFER_DISK_LIMIT)="1000": want 1MiB or more, like 1GiB`,
				`outputs[0].buffer_sync_interval (LOOKOUT_BUFFER_SYNC_INTERVAL)="-1s": want more than 0, like 1s`,
				`outputs[0].buffer_strategy (LOOKOUT_BUFFER_STRATEGY)="cloud": want disk or memory`,
				`outputs[0].timeout (LOOKOUT_INFLUXDB_TIMEOUT)="-2s": want more than 0`,
				`outputs[0].batch_size (LOOKOUT_BATCH_SIZE)="-1": want 1 or more`}},
		{map[string]string{"LOOKOUT_FLUENTD_ADDRESS": "unix://rel", "LOOKOUT_FLUENTD_TIMEOUT": "10ms", "LOOKOUT_FLUENTD_TLS_SKIP_VERIFY": "true",
			"LOOKOUT_FLUENTD_BATCH_SIZE": "100", "LOOKOUT_FLUENTD_BUFFER_LIMIT": "50", "LOOKOUT_FLUENTD_SELF_HOSTNAME": "n"},
			[]string{`fluentd.address (LOOKOUT_FLUENTD_ADDRESS)="unix://rel": want host:port, tcp://host:port or unix:///path/to/socket`,
				`fluentd.timeout (LOOKOUT_FLUENTD_TIMEOUT)="10ms": want 100ms or more`,
				`fluentd.tls (LOOKOUT_FLUENTD_TLS)="false": tls_ca_file and tls_skip_verify need tls=true`,
				`fluentd.buffer_limit (LOOKOUT_FLUENTD_BUFFER_LIMIT)="50": want at least the batch size (100) records`,
				`fluentd.shared_key_file (LOOKOUT_FLUENTD_SHARED_KEY_FILE)="": username, password_file and self_hostname belong to the shared-key handshake`}},
		{map[string]string{"LOOKOUT_FLUENTD_ADDRESS": "f:1"},
			[]string{`state_dir (LOOKOUT_STATE_DIR)="": the log forwarder keeps its positions there; want a directory`}},
		{map[string]string{"LOOKOUT_JAEGER_ENDPOINT": "http://j:1", "LOOKOUT_JAEGER_COMPACT_LISTEN": ":6831", "LOOKOUT_JAEGER_BINARY_LISTEN": ":6831",
			"LOOKOUT_SPANS_FLUSH_INTERVAL": "-1s", "LOOKOUT_JAEGER_TIMEOUT": "-1s", "LOOKOUT_SPANS_BATCH_SIZE": "-3"},
			[]string{`traces.binary_listen (LOOKOUT_JAEGER_BINARY_LISTEN)=":6831": want another address than the compact one`,
				`traces.flush_interval (LOOKOUT_SPANS_FLUSH_INTERVAL)="-1s": want more than 0`,
				`traces.timeout (LOOKOUT_JAEGER_TIMEOUT)="-1s": want more than 0`,
				`traces.batch_size (LOOKOUT_SPANS_BATCH_SIZE)="-3": want 1 or more`}},
	} {
		vars := tc.env
		c, err := Load("", func(k string) string { return vars[k] }, nil)
		if err != nil {
			t.Fatal(err)
		}
		if vars["LOOKOUT_FLUENTD_ADDRESS"] == "f:1" {
			c.StateDir = "" // as a file's state_dir: "" would set it
		}
		err = c.Validate()
		for _, w := range tc.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("error %v\ndoes not say %s", err, w)
			}
		}
	}
	var c Config
	c.Outputs = []Output{{Name: "a", Type: OutputStdout}, {Name: "a", Type: OutputStdout}}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), `outputs[1].name="a": output names must be unique`) {
		t.Errorf("duplicate names: %v", err)
	}
	// Parse errors name the variable; sizes say what is allowed.
	_, err := Load("", env(map[string]string{"LOOKOUT_INFLUXDB_URL": "http://x:1", "LOOKOUT_BUFFER_DISK_LIMIT": "lots",
		"LOOKOUT_PROBE_SPANS": "maybe"}), nil)
	for _, w := range []string{`LOOKOUT_BUFFER_DISK_LIMIT="lots": want a size like 1GiB, 512MiB or 1073741824`,
		`LOOKOUT_PROBE_SPANS="maybe": want true or false`} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("error %v does not say %s", err, w)
		}
	}
}
