package config

import (
	"flag"
	"fmt"
	"io"
	"reflect"
	"strings"
)

// Value is one setting as in effect, for `lookout check`.
type Value struct {
	Key    string // "interval", "outputs[0].url"
	Env    string // its environment variable, "" for none
	Value  string // never a secret: secrets are read from files, and a URL's password is hidden
	Source Source
	Via    string // the file, variable or flag it came from; "" for a default
}

// Effective lists every setting with its value and where it came from, in the table's
// order: the settings of each output after the others; for a stdout output only the
// keys it uses.
func (c *Config) Effective() []Value {
	var out []Value
	add := func(s Setting, key, value string) {
		o, ok := c.origin[key]
		if !ok {
			o = origin{FromDefault, ""}
		}
		out = append(out, Value{Key: key, Env: s.Env, Value: value, Source: o.src, Via: o.via})
	}
	root := reflect.ValueOf(c).Elem()
	for _, s := range settings {
		switch {
		case s.Key == "config":
			add(s, s.Key, c.file)
		case s.index != nil && !s.PerOutput():
			v := showValue(root.FieldByIndex(s.index))
			if v == "" && s.Default != "" { // a nil pointer: the default
				v = s.Default
			}
			add(s, s.Key, v)
		}
	}
	for i := range c.Outputs {
		o := reflect.ValueOf(&c.Outputs[i]).Elem()
		for _, s := range settings {
			if s.PerOutput() && (!s.Influx || c.Outputs[i].Type != OutputStdout) {
				add(s, fmt.Sprintf("outputs[%d]", i)+strings.TrimPrefix(s.Key, "outputs[]"), showValue(o.FieldByIndex(s.index)))
			}
		}
	}
	return out
}

// Flags defines on fs a flag for every setting with an environment variable (-config,
// -docker-host, -fluentd-tls-ca-file…). After fs.Parse, the function it returns gives
// the flags the user set, keyed by environment variable, for Load.
func Flags(fs *flag.FlagSet) func() map[string]string {
	for _, s := range settings {
		if s.Env != "" {
			fs.String(s.Flag(), "", plain(s.Help)+" ("+s.Env+")")
		}
	}
	return func() map[string]string {
		set := map[string]string{}
		fs.Visit(func(f *flag.Flag) {
			if s, ok := lookupFlag(f.Name); ok && f.Value.String() != "" {
				set[s.Env] = f.Value.String()
			}
		})
		return set
	}
}

func lookupFlag(name string) (Setting, bool) {
	for _, s := range settings {
		if s.Env != "" && s.Flag() == name {
			return s, true
		}
	}
	return Setting{}, false
}

// PrintFlags writes the flags for `lookout -h`, in the table's order: each with its
// environment variable, default and help.
func PrintFlags(w io.Writer) {
	section := "-"
	for _, s := range settings {
		if s.Env == "" {
			continue
		}
		if sec := sectionOf(s); sec != section {
			section = sec
			if sec != "" {
				fmt.Fprintf(w, "\n%s:\n", sec)
			}
		}
		def := plain(s.DefaultDoc)
		if def == "" {
			def = s.Default
		}
		if def == "" {
			def = "none"
		}
		fmt.Fprintf(w, "  -%s (%s, default %s)\n    \t%s\n", s.Flag(), s.Env, def, plain(s.Help))
	}
}

// sectionOf is the group a setting is listed under.
func sectionOf(s Setting) string {
	switch {
	case s.PerOutput() || s.Key == "stdout":
		return "Outputs (the one InfluxDB output the environment can set; more in the file)"
	case strings.HasPrefix(s.Key, "fluentd."):
		return "Logs to Fluentd"
	case strings.HasPrefix(s.Key, "traces."):
		return "Traces"
	}
	return ""
}

// plain is documentation text without Markdown.
func plain(s string) string {
	s = strings.ReplaceAll(s, "`", "")
	for {
		i := strings.Index(s, "](")
		j := strings.Index(s, "[")
		if i < 0 || j < 0 || j > i {
			return s
		}
		k := strings.Index(s[i:], ")")
		if k < 0 {
			return s
		}
		s = s[:j] + s[j+1:i] + s[i+k+1:]
	}
}
