package config

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// FuzzLoad: the configuration file and the environment are written by whoever deploys
// the agent, by hand. Load, Validate and Effective never panic, and keep the contract's
// promise on errors: each names what was wrong. An error of the environment names the
// variable (one that is set) and its value; an error of the file names the file and,
// where it is about a value, the line and the setting's key; an error of Validate names a
// setting of the table. A variable that is set always wins over the file. The input is
// the file's contents and the environment as "NAME=value" lines.
func FuzzLoad(f *testing.F) {
	keys := map[string]bool{}
	for _, s := range settings { // and the sections: "fluentd", "outputs[]"
		for k := s.Key; k != ""; k = k[:max(strings.LastIndexAny(k, ".["), 0)] {
			keys[k] = true
		}
	}
	lineRe := regexp.MustCompile(`line \d+: `)
	f.Fuzz(func(t *testing.T, file, environ string) {
		vars := map[string]string{}
		for _, l := range strings.Split(environ, "\n") {
			if k, v, ok := strings.Cut(l, "="); ok && k != "" {
				vars[k] = v
			}
		}
		vars["LOOKOUT_CONFIG"] = "" // the file is the fuzzer's
		path := filepath.Join(t.TempDir(), "lookout.yml")
		if err := os.WriteFile(path, []byte(file), 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := Load(path, env(vars), nil)
		if err != nil {
			for _, e := range leaves(err) {
				msg := e.Error()
				if strings.HasPrefix(msg, "config file "+path+": ") {
					for _, l := range strings.Split(msg, "\n") {
						if loc := lineRe.FindStringIndex(l); loc != nil && !strings.Contains(l, "yaml: line") && !namesKey(l[loc[1]:], keys) {
							t.Fatalf("file error %q names no setting", l)
						}
					}
					continue
				}
				name := msg[:strings.IndexAny(msg+"=", "= ")]
				if _, set := vars[name]; !set {
					t.Fatalf("error %q names no variable of the environment", msg)
				}
			}
			return
		}
		for _, e := range leaves(c.Validate()) {
			key, _, _ := strings.Cut(e.Error(), "=")
			key, _, _ = strings.Cut(key, " (")
			key = outputRe.ReplaceAllString(key, "outputs[].")
			if !keys[key] && key != "outputs[].org/bucket" {
				t.Fatalf("validation error %q names no setting", e)
			}
		}
		for _, v := range c.Effective() {
			if val := vars[v.Env]; v.Env != "" && val != "" && !strings.HasPrefix(v.Key, "outputs[") && v.Source == FromFile {
				t.Fatalf("%s: %s=%q is set, yet the value %q is the file's", v.Key, v.Env, val, v.Value)
			}
		}
	})
}

var outputRe = regexp.MustCompile(`^outputs\[\d+\]\.`)

// namesKey says whether a message (after "line N: ") starts with a setting's key, as
// "interval: ", "outputs[1].url: " or "field x not found".
func namesKey(msg string, keys map[string]bool) bool {
	if strings.HasPrefix(msg, "the file holds ") || strings.HasPrefix(msg, "a key that is ") {
		return true // the whole file: not a mapping
	}
	named, rest, ok := strings.Cut(msg, ": ")
	if !ok {
		return false
	}
	if strings.HasPrefix(rest, "no such setting") || strings.HasPrefix(rest, "set twice") {
		return true // the key written is what is wrong
	}
	for _, key := range strings.Split(named, " or ") { // several settings on one line: {a: 1, b: x}
		if !keys[outputRe.ReplaceAllString(key, "outputs[].")] && !outputRe.MatchString(key+".") {
			return false
		}
	}
	return true
}

// leaves lists the errors joined in err (errors.Join), or err alone.
func leaves(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, leaves(e)...)
		}
		return out
	}
	return []error{err}
}
