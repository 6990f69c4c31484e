package surgetest

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestEmbeddedCRDsAreConfigCRDBases: a kit user installs exactly the CRDs a
// release installs, never a stale copy.
func TestEmbeddedCRDsAreConfigCRDBases(t *testing.T) {
	bases := filepath.Join("..", "..", "config", "crd", "bases")
	want, err := filepath.Glob(filepath.Join(bases, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	embedded, err := fs.Glob(crdFiles, "crds/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	baseNames := make([]string, len(want))
	for i, file := range want {
		baseNames[i] = filepath.Base(file)
	}
	embeddedNames := make([]string, len(embedded))
	for i, file := range embedded {
		embeddedNames[i] = filepath.Base(file)
	}
	if !slices.Equal(baseNames, embeddedNames) {
		t.Fatalf("embedded CRDs %v, config/crd/bases has %v: run make manifests", embeddedNames, baseNames)
	}
	for i, file := range want {
		fromBases, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		copied, err := crdFiles.ReadFile(embedded[i])
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(fromBases, copied) {
			t.Errorf("pkg/surgetest/%s differs from %s: run make manifests", embedded[i], file)
		}
	}
}
