package main

import (
	"os/exec"
	"strings"
	"testing"
)

// The plugin runs on people's laptops: it must not carry the operator. The
// names it needs come from api/v1alpha1, its Surge calls from
// internal/credentials and internal/surge.
func TestThePluginLinksNoOperatorCode(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		for _, forbidden := range []string{"/internal/controller", "/internal/operator", "/internal/metrics"} {
			if strings.HasPrefix(pkg, "github.com/surge-operator/surge-operator") && strings.Contains(pkg, forbidden) {
				t.Errorf("kubectl-surge links %s", pkg)
			}
		}
	}
}
