package metrics

import (
	"flag"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the families table of docs/metrics-endpoint.md")

const (
	docsPath  = "../docs/metrics-endpoint.md"
	docsBegin = "<!-- families: generated from metrics/families.go by `go test ./metrics -run TestDocs -update` -->\n"
	docsEnd   = "<!-- end of families -->\n"
)

// familiesTable is the Markdown table of every family in the table.
func familiesTable() string {
	var b strings.Builder
	b.WriteString("| family | type | help |\n| --- | --- | --- |\n")
	for _, m := range slices.Sorted(maps.Keys(table)) {
		for _, f := range slices.Sorted(maps.Keys(table[m])) {
			d := table[m][f]
			fmt.Fprintf(&b, "| `%s` | %s | %s |\n", Name(m+"_"+f), d.Kind, d.Help)
		}
	}
	return b.String()
}

// TestDocsListEveryFamily fails when docs/metrics-endpoint.md and the table disagree.
func TestDocsListEveryFamily(t *testing.T) {
	doc, err := os.ReadFile(docsPath)
	if err != nil {
		t.Fatal(err)
	}
	s := string(doc)
	i, j := strings.Index(s, docsBegin), strings.Index(s, docsEnd)
	if i < 0 || j < i {
		t.Fatalf("%s: no %q ... %q section", docsPath, docsBegin, docsEnd)
	}
	want := familiesTable()
	if got := s[i+len(docsBegin) : j]; got != want {
		if *update {
			if err := os.WriteFile(docsPath, []byte(s[:i+len(docsBegin)]+want+s[j:]), 0o644); err != nil {
				t.Fatal(err)
			}
			return
		}
		t.Errorf("%s lists other families than metrics/families.go; run go test ./metrics -run TestDocs -update\ngot:\n%s\nwant:\n%s", docsPath, got, want)
	}
}
