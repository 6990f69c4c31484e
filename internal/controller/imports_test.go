package controller

import (
	"os/exec"
	"strings"
	"testing"
)

// The reconcilers speak to Surge through internal/remote alone: the Surge
// client's types, errors and retries stay behind that boundary, so that a
// change of the wire cannot reach the protocol unseen.
func TestTheControllerSpeaksToSurgeOnlyThroughRemote(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{join .Imports "\n"}}`, ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if strings.HasPrefix(pkg, "github.com/surge-operator/surge-operator/internal/surge") {
			t.Errorf("the controller imports %s", pkg)
		}
	}
}
