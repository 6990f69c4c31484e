package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The README's run command, in its smoke mode: from the checkout alone, the
// samples become Ready and the kubeconfig to use is printed.
func TestSandboxShowsTheSamplesReady(t *testing.T) {
	var out bytes.Buffer
	stateDir := t.TempDir()
	err := run(context.Background(), options{
		root:       filepath.Join("..", ".."),
		stateDir:   stateDir,
		smoke:      true,
		readyAfter: time.Minute,
		out:        &out,
	})
	if err != nil {
		t.Fatalf("sandbox failed: %v\n%s", err, out.String())
	}
	for _, want := range []string{"is Ready: end user usr_", "export KUBECONFIG=" + filepath.Join(stateDir, "kubeconfig")} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("sandbox output lacks %q:\n%s", want, out.String())
		}
	}
}
