package image_test

import (
	"bytes"
	"debug/buildinfo"
	"encoding/json"
	"path"
	"strings"
	"testing"
)

// cycloneDX is the part of a CycloneDX JSON document the checks read.
type cycloneDX struct {
	BOMFormat string `json:"bomFormat"`
	Metadata  struct {
		Component struct {
			Name    string `json:"name"`
			Version string `json:"version"`
		} `json:"component"`
	} `json:"metadata"`
	Components []struct {
		Name     string            `json:"name"`
		Version  string            `json:"version"`
		Licenses []json.RawMessage `json:"licenses"`
	} `json:"components"`
}

// checkSBOM checks the CycloneDX document the image holds of its binary:
// the main module, and one component for each module the Go toolchain
// recorded in the binary, at the version it recorded, with its licence.
func checkSBOM(t *testing.T, files map[string]file, binaryPath, platform string, _ map[string]string) {
	t.Helper()
	sbomPath := "usr/share/sbom/" + path.Base(binaryPath) + ".cdx.json"
	sbomFile, ok := files[sbomPath]
	if !ok {
		t.Errorf("the %s image has no SBOM at /%s", platform, sbomPath)
		return
	}
	if sbomFile.header.Mode&0o111 != 0 {
		t.Errorf("/%s is executable", sbomPath)
	}
	var doc cycloneDX
	if err := json.Unmarshal(sbomFile.content, &doc); err != nil {
		t.Fatalf("/%s is not JSON: %v", sbomPath, err)
	}
	binary := files[strings.TrimPrefix(binaryPath, "/")].content
	info, err := buildinfo.Read(bytes.NewReader(binary))
	if err != nil {
		t.Fatalf("reading the build info of %s: %v", binaryPath, err)
	}
	if doc.BOMFormat != "CycloneDX" || doc.Metadata.Component.Name != info.Main.Path {
		t.Errorf("the SBOM is not a CycloneDX document of the main module %s: %+v", info.Main.Path, doc.Metadata)
	}
	components := map[string]string{}
	for _, c := range doc.Components {
		components[c.Name] = c.Version
		if len(c.Licenses) == 0 {
			t.Errorf("the SBOM gives module %s no licence", c.Name)
		}
	}
	if len(info.Deps) == 0 {
		t.Errorf("%s records no modules", binaryPath)
	}
	for _, dep := range info.Deps {
		module := dep
		if dep.Replace != nil {
			module = dep.Replace
		}
		if version, ok := components[dep.Path]; !ok || version != module.Version {
			t.Errorf("the SBOM has %s at %q, the binary links it at %s", dep.Path, version, module.Version)
		}
	}
}
