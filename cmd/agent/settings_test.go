package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/lookout-agent/lookout/config"
)

// TestHelpListsEverySetting: `lookout -h` lists a flag for every setting with a variable.
func TestHelpListsEverySetting(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"-h"}, func(string) string { return "" }, &out, &errb); code != 2 {
		t.Fatalf("exit %d", code)
	}
	n := 0
	for _, s := range config.Settings() {
		if s.Env == "" {
			continue
		}
		n++
		if want := "-" + s.Flag() + " (" + s.Env; !strings.Contains(errb.String(), want) {
			t.Errorf("lookout -h lacks %q", want)
		}
	}
	if n < 60 {
		t.Errorf("only %d settings with a flag", n)
	}
}

// TestFlagsAreSettings: a flag sets its setting over the environment, and a bad value is
// refused before anything starts, naming the variable.
func TestFlagsAreSettings(t *testing.T) {
	var out, errb bytes.Buffer
	env := map[string]string{"LOOKOUT_DOCKER_HOST": "unix:///nonexistent/docker.sock"}
	code := run([]string{"check", "-fluentd-batch-size", "lots"}, func(k string) string { return env[k] }, &out, &errb)
	if code != 2 || !strings.Contains(errb.String(), `LOOKOUT_FLUENTD_BATCH_SIZE="lots": want a whole number`) {
		t.Errorf("exit %d, stderr %s", code, errb.String())
	}
}

// TestCheckPrintsTheConfiguration: `lookout check` lists each setting, its value and its
// source, and no secret, even when the engine cannot be reached.
func TestCheckPrintsTheConfiguration(t *testing.T) {
	dir := t.TempDir()
	tok := filepath.Join(dir, "token")
	if err := os.WriteFile(tok, []byte("t0ken-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"LOOKOUT_INFLUXDB_URL": "http://me:pa55word@db:8086", "LOOKOUT_INFLUXDB_ORG": "o",
		"LOOKOUT_INFLUXDB_BUCKET": "b", "LOOKOUT_INFLUXDB_TOKEN_FILE": tok, "LOOKOUT_INTERVAL": "5s"}
	var out, errb bytes.Buffer
	code := run([]string{"check", "-docker-host", "unix:///nonexistent/docker.sock"}, func(k string) string { return env[k] }, &out, &errb)
	if code != 1 || !strings.Contains(errb.String(), "cannot reach the Docker Engine") {
		t.Fatalf("exit %d, stderr %s", code, errb.String())
	}
	for _, re := range []string{`(?m)^interval +5s +env LOOKOUT_INTERVAL$`, `(?m)^docker_host +unix:///nonexistent/docker.sock +flag -docker-host$`,
		`(?m)^log_level +info +default$`, `(?m)^outputs\[0\]\.token_file +` + regexp.QuoteMeta(tok) + ` +env LOOKOUT_INFLUXDB_TOKEN_FILE$`,
		`(?m)^outputs\[0\]\.url +http://me:xxxxx@db:8086 +env`} {
		if !regexp.MustCompile(re).MatchString(out.String()) {
			t.Errorf("lookout check's output does not match %s:\n%s", re, out.String())
		}
	}
	for _, secret := range []string{"t0ken-secret", "pa55word"} {
		if strings.Contains(out.String()+errb.String(), secret) {
			t.Errorf("lookout check shows the secret %q", secret)
		}
	}
}
