package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestVersionFlag builds the manager as make build does, with the version
// set by the linker, and reads it back from --version.
func TestVersionFlag(t *testing.T) {
	binary := filepath.Join(t.TempDir(), "manager")
	const pkg = "github.com/surge-operator/surge-operator/internal/version"
	ldflags := "-X " + pkg + ".version=v9.8.7 -X " + pkg + ".commit=0123456789abcdef0123456789abcdef01234567 -X " + pkg + ".sourceDateEpoch=1767323045"
	if out, err := exec.Command("go", "build", "-ldflags", ldflags, "-o", binary, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(binary, "--version").CombinedOutput()
	if err != nil {
		t.Fatalf("manager --version: %v\n%s", err, out)
	}
	for _, want := range []string{"version: v9.8.7\n", "commit:  0123456789abcdef0123456789abcdef01234567\n", "date:    2026-01-02T03:04:05Z\n"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("manager --version printed\n%s\nwant a line %q", out, strings.TrimSpace(want))
		}
	}
}
