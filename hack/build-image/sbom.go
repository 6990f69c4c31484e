package main

import (
	"crypto/sha256"
	"debug/buildinfo"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"runtime/debug"
	"slices"
	"strings"
	"time"
	"unicode"
)

// The SBOM is an SPDX 2.3 JSON document of what the Go toolchain recorded in
// the binary: the main module, every module linked into it and the standard
// library. It goes into the image as a file, in a layer of its own, rather
// than as an OCI referrer beside the image: a file travels with the image
// through every tool that copies it (crane push dist/image, skopeo copy of
// the tagged index) and every registry, with no need for the referrers API,
// which not every registry serves; and scanners that look for SBOM files in
// an image find it by its .spdx.json name. Its layer is the last, so that
// registries keep the binary's layer when only the SBOM changes.

const (
	sbomDir     = "usr/share/sbom/"
	license     = "Apache-2.0"
	goLicense   = "BSD-3-Clause"
	noAssertion = "NOASSERTION"
)

type spdxDocument struct {
	SPDXVersion       string             `json:"spdxVersion"`
	DataLicense       string             `json:"dataLicense"`
	SPDXID            string             `json:"SPDXID"`
	Name              string             `json:"name"`
	DocumentNamespace string             `json:"documentNamespace"`
	CreationInfo      spdxCreationInfo   `json:"creationInfo"`
	Packages          []spdxPackage      `json:"packages"`
	Relationships     []spdxRelationship `json:"relationships"`
}

type spdxCreationInfo struct {
	Created  string   `json:"created"`
	Creators []string `json:"creators"`
}

type spdxPackage struct {
	Name                  string            `json:"name"`
	SPDXID                string            `json:"SPDXID"`
	VersionInfo           string            `json:"versionInfo,omitempty"`
	PackageFileName       string            `json:"packageFileName,omitempty"`
	Supplier              string            `json:"supplier,omitempty"`
	DownloadLocation      string            `json:"downloadLocation"`
	FilesAnalyzed         bool              `json:"filesAnalyzed"`
	Checksums             []spdxChecksum    `json:"checksums,omitempty"`
	LicenseConcluded      string            `json:"licenseConcluded"`
	LicenseDeclared       string            `json:"licenseDeclared"`
	CopyrightText         string            `json:"copyrightText"`
	Comment               string            `json:"comment,omitempty"`
	ExternalRefs          []spdxExternalRef `json:"externalRefs,omitempty"`
	PrimaryPackagePurpose string            `json:"primaryPackagePurpose"`
}

type spdxChecksum struct {
	Algorithm     string `json:"algorithm"`
	ChecksumValue string `json:"checksumValue"`
}

type spdxExternalRef struct {
	ReferenceCategory string `json:"referenceCategory"`
	ReferenceType     string `json:"referenceType"`
	ReferenceLocator  string `json:"referenceLocator"`
}

type spdxRelationship struct {
	SPDXElementID      string `json:"spdxElementId"`
	RelationshipType   string `json:"relationshipType"`
	RelatedSPDXElement string `json:"relatedSpdxElement"`
}

// build says what went into an image, for its SBOM and labels.
type build struct {
	image    string
	version  string
	revision string
	platform string
	epoch    time.Time
}

// sbom writes the SBOM of the binary at path, installed in the image as
// binaryPath. Every field comes from the binary, the build and
// SOURCE_DATE_EPOCH, so that the same source gives the same document.
func sbom(path, binaryPath string, b build) ([]byte, error) {
	info, err := buildinfo.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the build info of %s: %w", path, err)
	}
	content, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	digest := sha256.Sum256(content)

	var settings []string
	for _, setting := range info.Settings {
		switch setting.Key {
		case "-trimpath", "CGO_ENABLED", "GOOS", "GOARCH", "GOAMD64", "GOARM64":
			settings = append(settings, setting.Key+"="+setting.Value)
		}
	}
	download := noAssertion
	if b.revision != "" {
		download = "git+" + source + "@" + b.revision
	}
	main := spdxPackage{
		Name:                  info.Main.Path,
		SPDXID:                "SPDXRef-Package-main",
		VersionInfo:           b.version,
		PackageFileName:       binaryPath,
		Supplier:              "Organization: surge-operator",
		DownloadLocation:      download,
		Checksums:             []spdxChecksum{{Algorithm: "SHA256", ChecksumValue: hex.EncodeToString(digest[:])}},
		LicenseConcluded:      license,
		LicenseDeclared:       license,
		CopyrightText:         noAssertion,
		Comment:               fmt.Sprintf("The binary %s, built by %s with %s.", binaryPath, info.GoVersion, strings.Join(settings, " ")),
		ExternalRefs:          []spdxExternalRef{purl(info.Main.Path, b.version)},
		PrimaryPackagePurpose: "APPLICATION",
	}
	goVersion := strings.TrimPrefix(info.GoVersion, "go")
	stdlib := spdxPackage{
		Name:                  "stdlib",
		SPDXID:                "SPDXRef-Package-stdlib",
		VersionInfo:           info.GoVersion,
		Supplier:              "Organization: Go",
		DownloadLocation:      "https://go.dev/dl/" + info.GoVersion + ".src.tar.gz",
		LicenseConcluded:      noAssertion,
		LicenseDeclared:       goLicense,
		CopyrightText:         noAssertion,
		ExternalRefs:          []spdxExternalRef{purl("stdlib", goVersion)},
		PrimaryPackagePurpose: "LIBRARY",
	}
	doc := spdxDocument{
		SPDXVersion: "SPDX-2.3",
		DataLicense: "CC0-1.0",
		SPDXID:      "SPDXRef-DOCUMENT",
		Name:        fmt.Sprintf("%s %s %s", b.image, b.version, b.platform),
		// Unique per binary, and the same for the same binary.
		DocumentNamespace: fmt.Sprintf("%s/spdx/%s/%s/%s/sha256-%x", source, b.image, b.version, b.platform, digest),
		CreationInfo: spdxCreationInfo{
			Created:  b.epoch.UTC().Format(time.RFC3339),
			Creators: []string{"Tool: surge-operator-build-image", "Organization: surge-operator"},
		},
		Packages: []spdxPackage{main, stdlib},
		Relationships: []spdxRelationship{
			{SPDXElementID: "SPDXRef-DOCUMENT", RelationshipType: "DESCRIBES", RelatedSPDXElement: main.SPDXID},
			{SPDXElementID: main.SPDXID, RelationshipType: "DEPENDS_ON", RelatedSPDXElement: stdlib.SPDXID},
		},
	}
	deps := slices.Clone(info.Deps)
	slices.SortFunc(deps, func(a, b *debug.Module) int { return strings.Compare(a.Path, b.Path) })
	for i, dep := range deps {
		module := dep
		if dep.Replace != nil {
			module = dep.Replace
		}
		pkg := spdxPackage{
			Name:                  module.Path,
			SPDXID:                fmt.Sprintf("SPDXRef-Package-module-%d", i+1),
			VersionInfo:           module.Version,
			DownloadLocation:      noAssertion,
			LicenseConcluded:      noAssertion,
			LicenseDeclared:       noAssertion,
			CopyrightText:         noAssertion,
			PrimaryPackagePurpose: "LIBRARY",
		}
		if module.Version != "" {
			pkg.DownloadLocation = "https://proxy.golang.org/" + escapeModulePath(module.Path) + "/@v/" + escapeModulePath(module.Version) + ".zip"
			pkg.ExternalRefs = []spdxExternalRef{purl(module.Path, module.Version)}
		}
		if module.Sum != "" {
			pkg.Comment = "Go module hash " + module.Sum + "."
		}
		if dep.Replace != nil {
			pkg.Comment = strings.TrimSpace(pkg.Comment + " Replaces " + dep.Path + " " + dep.Version + ".")
		}
		doc.Packages = append(doc.Packages, pkg)
		doc.Relationships = append(doc.Relationships, spdxRelationship{SPDXElementID: main.SPDXID, RelationshipType: "DEPENDS_ON", RelatedSPDXElement: pkg.SPDXID})
	}
	raw, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(raw, '\n'), nil
}

// purl is the package URL of a Go module (or "stdlib") at a version; '+'
// in a version, as in +incompatible, is percent-encoded, as the purl
// specification asks.
func purl(path, version string) spdxExternalRef {
	locator := "pkg:golang/" + path
	if version != "" {
		locator += "@" + strings.ReplaceAll(version, "+", "%2B")
	}
	return spdxExternalRef{ReferenceCategory: "PACKAGE-MANAGER", ReferenceType: "purl", ReferenceLocator: locator}
}

// escapeModulePath escapes a module path or version as the module proxy
// protocol does: an upper-case letter becomes '!' and its lower case.
func escapeModulePath(s string) string {
	var b strings.Builder
	for _, r := range s {
		if unicode.IsUpper(r) {
			b.WriteByte('!')
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}
