package labels

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"text/template"
)

// Log forwarding labels.
const (
	// KeyLogs is lookout.logs: false keeps a monitored container's logs from Fluentd.
	KeyLogs = Prefix + "logs"
	// KeyLogsTag is lookout.logs.tag: the Fluentd tag template for the container.
	KeyLogsTag = Prefix + "logs.tag"
	// KeyLogsMultiline is lookout.logs.multiline: a Go regular expression matching the
	// first line of a record; other lines are appended to the record before them.
	KeyLogsMultiline = Prefix + "logs.multiline"
)

// Logs is what a container's labels ask of the log forwarder. Nil fields mean the agent's
// default.
type Logs struct {
	Enable    *bool              // lookout.logs; nil = forward (when the container is monitored)
	Tag       *template.Template // lookout.logs.tag
	Multiline *regexp.Regexp     // lookout.logs.multiline
}

// LogTagData is what a Fluentd tag template can use, as Docker's fluentd driver offers
// ({{.ID}}, {{.FullID}}, {{.Name}}, {{.ImageName}}) plus the Swarm names.
type LogTagData struct {
	ID        string // first 12 characters of the container ID
	FullID    string
	Name      string // container name without the leading '/'
	ImageName string // the image as configured
	Service   string // Swarm service, "" outside Swarm
	Stack     string
	TaskSlot  string
	Node      string // the engine's host name
}

// ParseLogTag parses a Fluentd tag template and tries it on a sample container, so that
// an unknown field is an error now, not when the first line arrives.
func ParseLogTag(s string) (*template.Template, error) {
	if strings.TrimSpace(s) == "" {
		return nil, errors.New("want a non-empty tag template such as docker.{{.Name}}")
	}
	t, err := template.New("tag").Option("missingkey=error").Parse(s)
	if err != nil {
		return nil, fmt.Errorf("not a Go template: %v", err)
	}
	var b bytes.Buffer
	if err := t.Execute(&b, LogTagData{ID: "0123456789ab", FullID: "0123456789ab", Name: "web", ImageName: "nginx", Node: "n"}); err != nil {
		return nil, fmt.Errorf("template fails: %v; fields: .ID .FullID .Name .ImageName .Service .Stack .TaskSlot .Node", err)
	}
	return t, nil
}

// parseLogs handles one lookout.logs* label; it returns false if k is not one.
func (c *Config) parseLogs(k, v string) bool {
	switch k {
	case KeyLogs:
		switch strings.ToLower(strings.TrimSpace(v)) {
		case "true":
			t := true
			c.Logs.Enable = &t
		case "false":
			f := false
			c.Logs.Enable = &f
		default:
			c.problem(k, v, "want true or false; logs are forwarded as by default")
		}
	case KeyLogsTag:
		t, err := ParseLogTag(v)
		if err != nil {
			c.problem(k, v, err.Error()+"; using the agent's tag template")
			return true
		}
		c.Logs.Tag = t
	case KeyLogsMultiline:
		if v == "" {
			c.problem(k, v, "want a Go regular expression matching the first line of a record, such as ^\\S; lines are sent one by one")
			return true
		}
		re, err := CompilePattern(v)
		if err != nil {
			c.problem(k, v, err.Error()+"; want a Go regular expression matching the first line of a record, such as ^\\S; lines are sent one by one")
			return true
		}
		c.Logs.Multiline = re
	default:
		return false
	}
	return true
}
