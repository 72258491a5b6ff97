// Package docs holds Lookout's documentation pages; its test keeps README.md short and
// every relative link in README.md, BENCHMARKS.md and docs/*.md pointing at a file (and
// heading) that exists.
package docs

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode"
)

// maxReadmeLines keeps the README a front page: the reference detail lives in docs/.
const maxReadmeLines = 250

// pending are link targets written on another branch. Each entry goes once that branch is
// merged: the test fails while a listed file exists, so the entry cannot outlive its need.
var pending = map[string]string{}

func TestReadmeLength(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(b), "\n"); n > maxReadmeLines {
		t.Errorf("README.md has %d lines, at most %d: move reference detail into docs/", n, maxReadmeLines)
	}
}

func TestPendingTargetsStillPending(t *testing.T) {
	for p, why := range pending {
		if _, err := os.Stat(filepath.Join("..", p)); err == nil {
			t.Errorf("%s exists now: delete its entry (%s) from pending in docs/doc_test.go", p, why)
		}
	}
}

func TestRelativeLinksResolve(t *testing.T) {
	pages := []string{"../README.md", "../BENCHMARKS.md"}
	more, err := filepath.Glob("../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	pages = append(pages, more...)
	if len(more) == 0 {
		t.Fatal("no docs/*.md found")
	}
	checked := 0
	for _, page := range pages {
		b, err := os.ReadFile(page)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range links(string(b)) {
			checked++
			if err := resolve(page, l); err != nil {
				t.Errorf("%s: link %q: %v", page, l, err)
			}
		}
	}
	if checked == 0 {
		t.Fatal("no relative link found: the link pattern is broken")
	}
}

var (
	fence    = regexp.MustCompile("(?ms)^```.*?^```")
	codeSpan = regexp.MustCompile("`[^`\n]*`")
	link     = regexp.MustCompile(`\]\(([^)\s]+)\)`)
)

// links returns the relative link targets of a Markdown page, outside code.
func links(md string) []string {
	md = fence.ReplaceAllString(md, "")
	md = codeSpan.ReplaceAllString(md, "")
	var out []string
	for _, m := range link.FindAllStringSubmatch(md, -1) {
		target := m[1]
		if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
			continue
		}
		out = append(out, target)
	}
	return out
}

// resolve checks that target, relative to page, names an existing file or directory and,
// after a #, a heading of that Markdown file.
func resolve(page, target string) error {
	path, anchor, _ := strings.Cut(target, "#")
	file := page
	if path != "" {
		file = filepath.Join(filepath.Dir(page), path)
	}
	rel, err := filepath.Rel("..", file)
	if err != nil {
		return err
	}
	if _, ok := pending[filepath.ToSlash(rel)]; ok {
		return nil
	}
	if _, err := os.Stat(file); err != nil {
		return fmt.Errorf("no such file %s", rel)
	}
	if anchor == "" {
		return nil
	}
	if !strings.HasSuffix(file, ".md") {
		return fmt.Errorf("an anchor into %s, which is not Markdown", rel)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	if !anchors(string(b))[anchor] {
		return fmt.Errorf("%s has no heading with anchor #%s", rel, anchor)
	}
	return nil
}

var heading = regexp.MustCompile(`(?m)^#{1,6}[ \t]+(.+?)[ \t#]*$`)

// anchors returns the anchors GitHub gives a page's headings: lower case, punctuation
// dropped, spaces as hyphens, and -1, -2, … on repeats.
func anchors(md string) map[string]bool {
	md = fence.ReplaceAllString(md, "")
	seen := map[string]int{}
	out := map[string]bool{}
	for _, m := range heading.FindAllStringSubmatch(md, -1) {
		var b strings.Builder
		for _, r := range strings.ToLower(m[1]) {
			switch {
			case r == ' ':
				b.WriteRune('-')
			case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
				b.WriteRune(r)
			}
		}
		a := b.String()
		if n := seen[a]; n > 0 {
			out[fmt.Sprintf("%s-%d", a, n)] = true
		} else {
			out[a] = true
		}
		seen[a]++
	}
	return out
}
