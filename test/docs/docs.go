// Package docs reads what the documentation shows, so that the suites
// (test/install, test/uninstall) can carry it out as written.
package docs

import (
	"os"
	"strings"
	"testing"
)

// FencedBlocks returns the text of the code blocks fenced as language in the
// section of the Markdown file at path headed "## heading", in order. A
// missing file or section fails the test.
func FencedBlocks(t testing.TB, path, heading, language string) []string {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	_, section, found := strings.Cut(string(raw), "\n## "+heading+"\n")
	if !found {
		t.Fatalf("%s has no section \"## %s\"", path, heading)
	}
	if end := strings.Index(section, "\n## "); end >= 0 {
		section = section[:end]
	}
	var blocks []string
	var block *strings.Builder
	for line := range strings.Lines(section) {
		switch trimmed := strings.TrimSpace(line); {
		case trimmed == "```"+language:
			block = &strings.Builder{}
		case strings.HasPrefix(trimmed, "```"):
			if block != nil {
				blocks = append(blocks, block.String())
			}
			block = nil
		case block != nil:
			block.WriteString(line)
		}
	}
	return blocks
}
