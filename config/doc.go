package config

import (
	"fmt"
	"reflect"
	"strings"
)

//go:generate go test -run TestConfigurationDoc -update .

// Markers around the generated table in docs/configuration.md.
const (
	DocBegin = "<!-- settings:begin -->"
	DocEnd   = "<!-- settings:end -->"
)

// DocTable is the settings table in Markdown, as docs/configuration.md holds it between
// DocBegin and DocEnd.
func DocTable() string {
	var b strings.Builder
	b.WriteString("| setting (file key) | environment | flag | default | allowed | meaning |\n")
	b.WriteString("| --- | --- | --- | --- | --- | --- |\n")
	code := func(s string) string {
		if s == "" {
			return ""
		}
		return "`" + s + "`"
	}
	for _, s := range settings {
		key := code(s.Key)
		if s.File != "" {
			key = s.File
		}
		def := s.DefaultDoc
		if def == "" {
			def = code(s.Default)
		}
		if def == "" {
			def = "none"
		}
		flag := ""
		if s.Flag() != "" {
			flag = "`-" + s.Flag() + "`"
		}
		allowed := allowedDoc(s)
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", key, code(s.Env), flag, cell(def), cell(allowed), cell(s.Help))
	}
	return b.String()
}

// allowedDoc is the rule's text, after the kind of value where the rule does not say it.
func allowedDoc(s Setting) string {
	kind := "text"
	if s.index != nil {
		root := reflect.TypeOf(Config{})
		if s.PerOutput() {
			root = reflect.TypeOf(Output{})
		}
		switch root.FieldByIndex(s.index).Type {
		case reflect.TypeOf(Duration(0)):
			kind = "a duration (`200ms`, `10s`, `1m`)"
		case reflect.TypeOf(0):
			kind = "a whole number"
		case reflect.TypeOf(ByteSize(0)):
			kind = "a size"
		}
	} else if s.Key == "config" {
		kind = "a file"
	}
	switch {
	case s.Rule.Doc == "":
		return kind
	case kind == "text" || kind == "a size":
		return s.Rule.Doc
	}
	return kind + ", " + s.Rule.Doc
}

func cell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
