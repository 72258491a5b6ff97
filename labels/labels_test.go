package labels

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	c := Parse(map[string]string{
		"lookout.enable":           "TRUE",
		"lookout.tags.team":        "payments, EU",
		"lookout.tags.bad key":     "x",
		"lookout.tags.node":        "x",
		"lookout.tags.empty":       "",
		"lookout.enabel":           "true",
		"com.example.other":        "ignored",
		"lookout.tags.cost.centre": "42",
	})
	if c.Enable == nil || !*c.Enable {
		t.Fatalf("Enable = %v, want true", c.Enable)
	}
	if len(c.Tags) != 2 || c.Tags["team"] != "payments, EU" || c.Tags["cost.centre"] != "42" {
		t.Fatalf("Tags = %v", c.Tags)
	}
	want := []string{"lookout.enabel", "lookout.tags.bad key", "lookout.tags.empty", "lookout.tags.node"}
	if len(c.Problems) != len(want) {
		t.Fatalf("Problems = %v, want keys %v", c.Problems, want)
	}
	for i, p := range c.Problems {
		if p.Key != want[i] {
			t.Errorf("problem %d key %q, want %q", i, p.Key, want[i])
		}
	}
	if msg := c.Problems[0].Error(); !strings.Contains(msg, "unknown key") || !strings.Contains(msg, "lookout.enable") {
		t.Errorf("unknown key message %q should say it is unknown and list known keys", msg)
	}
}

func TestEnableValues(t *testing.T) {
	for v, want := range map[string]string{"true": "true", "false": "false", "yes": "bad", "": "bad"} {
		c := Parse(map[string]string{"lookout.enable": v})
		got := "bad"
		if c.Enable != nil {
			got = map[bool]string{true: "true", false: "false"}[*c.Enable]
		}
		if got != want {
			t.Errorf("lookout.enable=%q: got %s, want %s", v, got, want)
		}
		if want == "bad" && (len(c.Problems) != 1 || !strings.Contains(c.Problems[0].Reason, "true or false")) {
			t.Errorf("lookout.enable=%q: problems %v", v, c.Problems)
		}
	}
	off := false
	if (Config{Enable: &off}).Monitored(true) {
		t.Error("lookout.enable=false must opt out even when monitoring all")
	}
	if !(Config{}).Monitored(true) || (Config{}).Monitored(false) {
		t.Error("without the label, the agent setting decides")
	}
}

func TestParseLogs(t *testing.T) {
	c := Parse(map[string]string{
		"lookout.logs":           "false",
		"lookout.logs.tag":       "app.{{.Service}}.{{.Name}}",
		"lookout.logs.multiline": `^\d{4}-`,
	})
	if len(c.Problems) != 0 || c.Logs.Enable == nil || *c.Logs.Enable || c.Logs.Tag == nil || c.Logs.Multiline == nil {
		t.Fatalf("Logs = %+v, problems %v", c.Logs, c.Problems)
	}
	var b strings.Builder
	_ = c.Logs.Tag.Execute(&b, LogTagData{Name: "web", Service: "shop"})
	if b.String() != "app.shop.web" {
		t.Errorf("tag = %q", b.String())
	}
	bad := Parse(map[string]string{
		"lookout.logs":           "maybe",
		"lookout.logs.tag":       "docker.{{.Nmae}}",
		"lookout.logs.multiline": `^(`,
		"lookout.logs.other":     "x",
		"lookout.enable":         "true",
	})
	want := map[string]string{
		"lookout.logs":           "want true or false",
		"lookout.logs.multiline": "regular expression",
		"lookout.logs.other":     "unknown key",
		"lookout.logs.tag":       "Nmae",
	}
	if len(bad.Problems) != len(want) {
		t.Fatalf("problems %v", bad.Problems)
	}
	for _, p := range bad.Problems {
		if !strings.Contains(p.Error(), want[p.Key]) {
			t.Errorf("%s: %q should contain %q", p.Key, p.Error(), want[p.Key])
		}
	}
	if bad.Enable == nil || !*bad.Enable || bad.Logs.Tag != nil || bad.Logs.Multiline != nil || bad.Logs.Enable != nil {
		t.Errorf("bad logs labels must leave the rest alone: %+v", bad)
	}
	if _, err := ParseLogTag(""); err == nil {
		t.Error("empty tag template accepted")
	}
}
