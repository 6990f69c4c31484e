package image_test

import (
	"bytes"
	"crypto/sha256"
	"debug/buildinfo"
	"encoding/hex"
	"encoding/json"
	"path"
	"regexp"
	"strings"
	"testing"
)

// spdx is the part of an SPDX 2.3 JSON document the checks read.
type spdx struct {
	SPDXVersion       string `json:"spdxVersion"`
	DataLicense       string `json:"dataLicense"`
	SPDXID            string `json:"SPDXID"`
	Name              string `json:"name"`
	DocumentNamespace string `json:"documentNamespace"`
	CreationInfo      struct {
		Created  string   `json:"created"`
		Creators []string `json:"creators"`
	} `json:"creationInfo"`
	Packages []struct {
		Name             string `json:"name"`
		SPDXID           string `json:"SPDXID"`
		VersionInfo      string `json:"versionInfo"`
		DownloadLocation string `json:"downloadLocation"`
		FilesAnalyzed    *bool  `json:"filesAnalyzed"`
		LicenseDeclared  string `json:"licenseDeclared"`
		Checksums        []struct {
			Algorithm     string `json:"algorithm"`
			ChecksumValue string `json:"checksumValue"`
		} `json:"checksums"`
		ExternalRefs []struct {
			ReferenceType    string `json:"referenceType"`
			ReferenceLocator string `json:"referenceLocator"`
		} `json:"externalRefs"`
	} `json:"packages"`
	Relationships []struct {
		SPDXElementID      string `json:"spdxElementId"`
		RelationshipType   string `json:"relationshipType"`
		RelatedSPDXElement string `json:"relatedSpdxElement"`
	} `json:"relationships"`
}

var spdxID = regexp.MustCompile(`^SPDXRef-[A-Za-z0-9.-]+$`)

// checkSBOM checks the SPDX document the image holds of its binary: the
// fields SPDX 2.3 requires, the binary's checksum, the version, commit and
// date of the labels, and one package for each module the Go toolchain
// recorded in the binary, the standard library included.
func checkSBOM(t *testing.T, files map[string]file, binaryPath, platform string, labels map[string]string) {
	t.Helper()
	sbomPath := "usr/share/sbom/" + path.Base(binaryPath) + ".spdx.json"
	sbomFile, ok := files[sbomPath]
	if !ok {
		t.Errorf("the image has no SBOM at /%s", sbomPath)
		return
	}
	if sbomFile.header.Mode&0o111 != 0 {
		t.Errorf("/%s is executable", sbomPath)
	}
	var doc spdx
	if err := json.Unmarshal(sbomFile.content, &doc); err != nil {
		t.Fatalf("/%s is not JSON: %v", sbomPath, err)
	}
	if doc.SPDXVersion != "SPDX-2.3" || doc.DataLicense != "CC0-1.0" || doc.SPDXID != "SPDXRef-DOCUMENT" || doc.Name == "" ||
		!strings.HasPrefix(doc.DocumentNamespace, "https://") || strings.Contains(doc.DocumentNamespace, "#") ||
		len(doc.CreationInfo.Creators) == 0 {
		t.Errorf("the SBOM's document fields are not those SPDX 2.3 requires: %+v", doc)
	}
	if doc.CreationInfo.Created != labels["org.opencontainers.image.created"] {
		t.Errorf("the SBOM was created %q, the image %q", doc.CreationInfo.Created, labels["org.opencontainers.image.created"])
	}
	if !strings.Contains(doc.DocumentNamespace, platform) {
		t.Errorf("the SBOM's namespace %q does not name the platform %s", doc.DocumentNamespace, platform)
	}

	binary := files[strings.TrimPrefix(binaryPath, "/")].content
	digest := sha256.Sum256(binary)
	info, err := buildinfo.Read(bytes.NewReader(binary))
	if err != nil {
		t.Fatalf("reading the build info of %s: %v", binaryPath, err)
	}
	purls := map[string]string{}
	ids := map[string]bool{}
	for _, pkg := range doc.Packages {
		if !spdxID.MatchString(pkg.SPDXID) || ids[pkg.SPDXID] || pkg.Name == "" || pkg.DownloadLocation == "" || pkg.FilesAnalyzed == nil || *pkg.FilesAnalyzed {
			t.Errorf("package %+v lacks a field SPDX requires, or repeats an SPDXID", pkg)
		}
		ids[pkg.SPDXID] = true
		for _, ref := range pkg.ExternalRefs {
			if ref.ReferenceType == "purl" {
				purls[ref.ReferenceLocator] = pkg.SPDXID
			}
		}
	}
	main := doc.Packages[0]
	if main.Name != info.Main.Path || main.VersionInfo != labels["org.opencontainers.image.version"] || main.LicenseDeclared != "Apache-2.0" ||
		!strings.HasSuffix(main.DownloadLocation, "@"+labels["org.opencontainers.image.revision"]) {
		t.Errorf("the SBOM's first package %+v is not the main module %s at the labels' version and revision %v", main, info.Main.Path, labels)
	}
	if len(main.Checksums) != 1 || main.Checksums[0].Algorithm != "SHA256" || main.Checksums[0].ChecksumValue != hex.EncodeToString(digest[:]) {
		t.Errorf("the SBOM's checksums of %s are %+v, want SHA256 %x", binaryPath, main.Checksums, digest)
	}

	want := []string{"pkg:golang/stdlib@" + strings.TrimPrefix(info.GoVersion, "go")}
	for _, dep := range info.Deps {
		if dep.Replace != nil {
			dep = dep.Replace
		}
		want = append(want, "pkg:golang/"+dep.Path+"@"+strings.ReplaceAll(dep.Version, "+", "%2B"))
	}
	if len(info.Deps) == 0 {
		t.Errorf("%s records no modules", binaryPath)
	}
	dependsOn := map[string]bool{}
	for _, r := range doc.Relationships {
		if !ids[r.RelatedSPDXElement] || r.SPDXElementID != "SPDXRef-DOCUMENT" && !ids[r.SPDXElementID] {
			t.Errorf("relationship %+v names an element the SBOM does not have", r)
		}
		switch {
		case r.SPDXElementID == "SPDXRef-DOCUMENT" && r.RelationshipType == "DESCRIBES" && r.RelatedSPDXElement != main.SPDXID:
			t.Errorf("the SBOM describes %s, not the binary", r.RelatedSPDXElement)
		case r.SPDXElementID == main.SPDXID && r.RelationshipType == "DEPENDS_ON":
			dependsOn[r.RelatedSPDXElement] = true
		}
	}
	for _, locator := range want {
		id, ok := purls[locator]
		if !ok {
			t.Errorf("the SBOM has no package %s, which %s links", locator, binaryPath)
			continue
		}
		if !dependsOn[id] {
			t.Errorf("the SBOM does not say that %s depends on %s", binaryPath, locator)
		}
	}
	if got := len(doc.Packages); got != len(want)+1 {
		t.Errorf("the SBOM has %d packages, want the binary and the %d modules it links", got, len(want))
	}
}
