package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Source says where a setting's value came from.
type Source string

// Sources, in the order of precedence: each overrides the one before.
const (
	FromDefault Source = "default"
	FromFile    Source = "file"
	FromEnv     Source = "env"
	FromFlag    Source = "flag"
)

type origin struct {
	src Source
	via string // the file, variable or flag
}

// Default returns the configuration used when nothing is set: every setting's default
// from the table (outputs get theirs when they are added).
func Default() Config {
	var c Config
	root := reflect.ValueOf(&c).Elem()
	for _, s := range settings {
		if s.index == nil || s.PerOutput() || s.Default == "" {
			continue
		}
		f := root.FieldByIndex(s.index)
		if f.Kind() == reflect.Pointer { // nil: the default, decided where it is read
			continue
		}
		if err := setText(f, s.Default); err != nil {
			panic(fmt.Sprintf("config: default of %s: %v", s.Key, err))
		}
	}
	return c
}

// fillDefaults gives every zero setting that has a default its default: the keys of
// traces and of outputs, where an unset (or zero) value has always meant the default.
func fillDefaults(v reflect.Value, perOutput bool, typ string, mark func(key string)) {
	for _, s := range settings {
		if !s.zeroIsDefault || s.PerOutput() != perOutput || s.Default == "" || s.index == nil {
			continue
		}
		if s.Key == "outputs[].database" && typ != OutputInfluxV1 {
			continue
		}
		f := v.FieldByIndex(s.index)
		if f.Kind() == reflect.Pointer || !f.IsZero() {
			continue
		}
		if err := setText(f, s.Default); err != nil {
			panic(fmt.Sprintf("config: default of %s: %v", s.Key, err))
		}
		mark(s.Key)
	}
}

// Load builds the configuration from file (may be ""), the environment (getenv) and
// flag values already parsed (flags holds only the flags the user set, keyed by their
// environment variable). The file's path comes from file, else the flag or variable
// LOOKOUT_CONFIG.
func Load(file string, getenv func(string) string, flags map[string]string) (Config, error) {
	c := Default()
	c.origin = map[string]origin{}
	value := func(env string) (string, origin) {
		if v := flags[env]; v != "" {
			return v, origin{FromFlag, "-" + Setting{Env: env}.Flag()}
		}
		return getenv(env), origin{FromEnv, env}
	}
	if file != "" {
		c.origin["config"] = origin{FromFlag, "-config"}
	} else if v, o := value(settingConfig); v != "" {
		file = v
		c.origin["config"] = o
	}
	c.file = file
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return c, fmt.Errorf("config file: %w", err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(true)
		if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
			return c, fmt.Errorf("config file %s: %s", file, fileError(b, err))
		}
		var doc yaml.Node
		if err := yaml.Unmarshal(b, &doc); err == nil && len(doc.Content) == 1 {
			fileKeys(doc.Content[0], "", func(key string) { c.origin[key] = origin{FromFile, file} })
		}
	}
	var errs []error
	// set applies a setting's variable or flag to the field v, under the name key.
	set := func(s Setting, v reflect.Value, key string) {
		text, o := value(s.Env)
		if text == "" {
			return
		}
		if err := setText(v, text); err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: %w", s.Env, text, err))
			return
		}
		c.origin[key] = o
	}
	if v, _ := value("LOOKOUT_DOCKER_HOST"); v == "" && getenv("DOCKER_HOST") != "" && file == "" {
		c.DockerHost = getenv("DOCKER_HOST")
		c.origin["docker_host"] = origin{FromEnv, "DOCKER_HOST"}
	}
	root := reflect.ValueOf(&c).Elem()
	for _, s := range settings {
		if s.Env != "" && s.index != nil && !s.PerOutput() {
			set(s, root.FieldByIndex(s.index), s.Key)
		}
	}
	fillDefaults(root, false, "", func(key string) { delete(c.origin, key) })
	c.Traces.addPath()

	for _, s := range settings {
		if secret := strings.TrimSuffix(s.Env, "_FILE"); s.SecretFile && getenv(secret) != "" {
			errs = append(errs, fmt.Errorf("%s is set: secrets are read from files only; set %s to a file holding it (a Docker secret under /run/secrets)", secret, s.Env))
		}
	}
	if url, _ := value("LOOKOUT_INFLUXDB_URL"); url != "" {
		o := Output{Type: OutputInfluxV1, Name: "influxdb"}
		prefix := fmt.Sprintf("outputs[%d]", len(c.Outputs))
		ov := reflect.ValueOf(&o).Elem()
		for _, s := range settings {
			if s.Env != "" && s.PerOutput() {
				set(s, ov.FieldByIndex(s.index), prefix+strings.TrimPrefix(s.Key, "outputs[]"))
			}
		}
		if o.Bucket != "" || o.Org != "" || o.TokenFile != "" {
			o.Type = OutputInfluxV2
			o.Name = "influxdb_v2"
		}
		c.origin[prefix+".type"] = c.origin[prefix+".url"]
		c.Outputs = append(c.Outputs, o)
	}
	stdout := false
	set(Setting{Env: settingStdout}, reflect.ValueOf(&stdout).Elem(), "stdout")
	if stdout || len(c.Outputs) == 0 {
		if stdout {
			c.origin[fmt.Sprintf("outputs[%d].type", len(c.Outputs))] = c.origin["stdout"]
		}
		c.Outputs = append(c.Outputs, Output{Type: OutputStdout, Name: "stdout"})
	}
	for i := range c.Outputs {
		o := &c.Outputs[i]
		prefix := fmt.Sprintf("outputs[%d]", i)
		fillDefaults(reflect.ValueOf(o).Elem(), true, o.Type, func(key string) {
			delete(c.origin, prefix+strings.TrimPrefix(key, "outputs[]"))
		})
		if o.Name == "" {
			o.Name = o.Type
		}
	}
	if len(errs) > 0 {
		return c, errors.Join(errs...)
	}
	return c, nil
}

// fileKeys calls mark with the key of every value the file sets: "interval",
// "fluentd.tag", "outputs[1].url".
func fileKeys(n *yaml.Node, prefix string, mark func(key string)) {
	if n.Kind != yaml.MappingNode {
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, v := prefix+n.Content[i].Value, n.Content[i+1]
		switch {
		case key == "outputs" && v.Kind == yaml.SequenceNode:
			for j, item := range v.Content {
				fileKeys(item, fmt.Sprintf("outputs[%d].", j), mark)
			}
		case v.Kind == yaml.MappingNode:
			fileKeys(v, key+".", mark)
		default:
			mark(key)
		}
	}
}

// LoadSecrets reads the secret of every secret file setting (the outputs' password and
// token files, the log forwarder's shared key and password files while it is on) into
// the field named like the setting's without "File". The error names the setting and
// the file, never the secret.
func (c *Config) LoadSecrets() error {
	var errs []error
	read := func(s Setting, in reflect.Value, key string) {
		f := in.FieldByIndex(s.index)
		path := f.String()
		if path == "" {
			return
		}
		name := strings.TrimSuffix(in.Type().FieldByIndex(s.index).Name, "File")
		dst := in.FieldByIndex(s.index[:len(s.index)-1]).FieldByName(name)
		b, err := os.ReadFile(path)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: cannot read the secret file: %w", label(key, s.Env), path, errors.Unwrap(err)))
			return
		}
		dst.SetString(strings.TrimRight(string(b), "\r\n"))
		if dst.String() == "" {
			errs = append(errs, fmt.Errorf("%s=%q: the secret file is empty", label(key, s.Env), path))
		}
	}
	for i := range c.Outputs {
		for _, s := range settings {
			if s.SecretFile && s.PerOutput() {
				read(s, reflect.ValueOf(&c.Outputs[i]).Elem(), fmt.Sprintf("outputs[%d]", i)+strings.TrimPrefix(s.Key, "outputs[]"))
			}
		}
	}
	for _, s := range settings {
		if s.SecretFile && !s.PerOutput() && (s.when == nil || s.when(c)) {
			read(s, reflect.ValueOf(c).Elem(), s.Key)
		}
	}
	return errors.Join(errs...)
}

var (
	lineRe      = regexp.MustCompile(`(?s)^line (\d+): (.*)$`)
	unmarshalRe = regexp.MustCompile("(?s)^cannot unmarshal (\\S+)(?: `(.*)`)? into (\\S+)$")
	notFoundRe  = regexp.MustCompile(`(?s)^field (.*) not found in type \S+$`)
	dupRe       = regexp.MustCompile(`(?s)^mapping key "(.*)" already defined at line (\d+)$`)
)

// fileError rewrites the YAML decoder's error for file b so that each problem names the
// setting on its line and says what is allowed: "line 3: outputs[0].batch_size: "abc":
// want a whole number" rather than "line 3: cannot unmarshal !!str `abc` into int".
func fileError(b []byte, err error) string {
	at := map[int][]string{}
	var doc yaml.Node
	if yaml.Unmarshal(b, &doc) == nil && len(doc.Content) == 1 {
		nodeKeys(doc.Content[0], "", at)
	}
	// One problem each: the decoder's list of type errors, or one error of a value's own
	// decoding (a duration, a size). A value may hold newlines: it is quoted below.
	var te *yaml.TypeError
	if errors.As(err, &te) {
		lines := make([]string, len(te.Errors))
		for i, e := range te.Errors {
			lines[i] = problem(e, at)
		}
		return "yaml: unmarshal errors:\n  " + strings.Join(lines, "\n  ")
	}
	return problem(err.Error(), at)
}

// problem rewrites one problem of the decoder, "line N: what", naming the keys at on
// line N.
func problem(m string, at map[int][]string) string {
	sub := lineRe.FindStringSubmatch(m)
	if sub == nil {
		return m // a syntax error: "yaml: line 3: ..."
	}
	n, _ := strconv.Atoi(sub[1])
	msg := sub[2]
	if u := unmarshalRe.FindStringSubmatch(msg); u != nil && u[3] == "config.Config" {
		return "line " + sub[1] + ": the file holds " + describe(u) + ": want a mapping of settings (docs/configuration.md lists them)"
	}
	// The keys on the line the message is about: for an unknown or repeated key the one
	// of its name; else the settings (or sections) among them, the innermost ("outputs[0].url",
	// not "outputs" too).
	if slices.Contains(at[n], badKey) {
		return "line " + sub[1] + ": a key that is a list or a mapping: want a setting's name (docs/configuration.md lists them)"
	}
	var keys []string
	f := notFoundRe.FindStringSubmatch(msg)
	if f != nil {
		f = append(f, "no such setting (docs/configuration.md lists them)")
	} else if f = dupRe.FindStringSubmatch(msg); f != nil {
		f[2] = "set twice (first on line " + f[2] + ")"
	}
	for _, k := range at[n] {
		if f != nil && (k == f[1] || strings.HasSuffix(k, "."+f[1])) || f == nil && knownKey(k) {
			keys = append(keys, k)
		}
	}
	keys = innermost(keys)
	if len(keys) == 0 {
		return m
	}
	if f != nil {
		msg = f[2]
	} else if u := unmarshalRe.FindStringSubmatch(msg); u != nil {
		msg = describe(u) + ": want " + wantType(u[3])
	}
	named := strings.Join(keys, " or ")
	if named == "" || strings.ContainsAny(named, "\n\r") {
		named = strconv.Quote(named)
	}
	return "line " + sub[1] + ": " + named + ": " + msg
}

// innermost drops the keys that hold another of keys: "outputs" and "outputs[0]" for
// "outputs[0].url".
func innermost(keys []string) []string {
	var out []string
	for _, k := range keys {
		inner := true
		for _, o := range keys {
			inner = inner && !strings.HasPrefix(o, k+".") && !strings.HasPrefix(o, k+"[")
		}
		if inner {
			out = append(out, k)
		}
	}
	return out
}

var outputIndexRe = regexp.MustCompile(`^outputs\[\d+\]`)

// knownKey says whether key ("fluentd.tag", "outputs[1].url", "fluentd", "outputs[1]")
// is a setting of the table or a section holding some.
func knownKey(key string) bool {
	key = outputIndexRe.ReplaceAllString(key, "outputs[]")
	for _, s := range settings {
		if s.Key == key || strings.HasPrefix(s.Key, key+".") || strings.HasPrefix(s.Key, key+"[") {
			return true
		}
	}
	return false
}

// describe says what the file holds where a decoding error (unmarshalRe's match) is:
// "a list", "a mapping" or the value.
func describe(u []string) string {
	if got := map[string]string{"!!seq": "a list", "!!map": "a mapping"}[u[1]]; got != "" {
		return got
	}
	return strconv.Quote(u[2])
}

// wantType says what the file must hold for a field of the Go type named t.
func wantType(t string) string {
	switch t {
	case "bool", "*bool":
		return "true or false"
	case "int", "int64":
		return "a whole number"
	case "string":
		return "a string"
	case "[]string":
		return "a list of strings"
	case "[]config.Output":
		return "a list of outputs"
	}
	if strings.HasPrefix(t, "config.") {
		return "a mapping of its settings"
	}
	return t
}

// badKey marks a line of nodeKeys holding a key that is no scalar.
const badKey = "\x00"

// nodeKeys records in at the keys written on each line of the file: "interval",
// "fluentd.tag", "outputs[1]", "outputs[1].url".
func nodeKeys(n *yaml.Node, prefix string, at map[int][]string) {
	add := func(line int, key string) {
		if l := at[line]; len(l) == 0 || l[len(l)-1] != key {
			at[line] = append(l, key)
		}
	}
	if n.Kind != yaml.MappingNode {
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode { // "? [a, b]": a key that is no name
			add(k.Line, badKey)
			continue
		}
		key := prefix + k.Value
		add(k.Line, key)
		add(v.Line, key)
		if v.Kind == yaml.AliasNode && v.Alias != nil {
			add(v.Alias.Line, key) // the decoder reports the anchor's line
		}
		switch {
		case key == "outputs" && v.Kind == yaml.SequenceNode:
			for j, item := range v.Content {
				add(item.Line, fmt.Sprintf("outputs[%d]", j))
				nodeKeys(item, fmt.Sprintf("outputs[%d].", j), at)
			}
		case v.Kind == yaml.MappingNode:
			nodeKeys(v, key+".", at)
		case v.Kind == yaml.SequenceNode:
			for _, item := range v.Content {
				add(item.Line, key)
			}
		}
	}
}
