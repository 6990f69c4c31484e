// Command build-image builds one of the project's images for linux/amd64 and
// linux/arm64 and writes it as an OCI image layout, with no container engine
// (make image builds both):
//
//	go run ./hack/build-image -out dist/image -tag v0.1.0
//	go run ./hack/build-image -image surge-emulator -out dist/emulator-image -tag v0.1.0
//
// Each image is one static binary as the entrypoint, run as the non-root user
// 65532, on a base of /etc/passwd, /etc/group, a CA bundle and a writable
// /tmp. The manager's image has the layout of the Dockerfile's: /manager as
// the entrypoint. The Surge emulator's has /surge-emulator, serving on port
// 8088 of every address of the container. Every timestamp is
// SOURCE_DATE_EPOCH, so that the same source gives the same digests.
//
// The labels of each image and the annotations of its index and manifests
// carry the OCI keys org.opencontainers.image.version, revision, licenses,
// created (SOURCE_DATE_EPOCH), source and title; the binary reports the same
// version and revision with --version. Each image holds an SPDX SBOM of its
// binary at /usr/share/sbom/<binary>.spdx.json (sbom.go says why there).
//
// The CA bundle is the Mozilla root store as golang.org/x/crypto's
// x509roots/fallback module ships it, pinned by go.sum, rather than the
// build machine's /etc/ssl/certs, which differs from one machine to the
// next and would break reproducibility.
package main

import (
	"archive/tar"
	"bytes"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/crypto/x509roots/fallback/bundle"
)

const (
	user     = "65532:65532"
	uid      = 65532
	caBundle = "etc/ssl/certs/ca-certificates.crt"
	source   = "https://github.com/surge-operator/surge-operator"
)

// spec is what sets one image apart from the other: the binary, how it is
// started, and its labels.
type spec struct {
	// pkg is the Go package of the binary, relative to the module's root.
	pkg string
	// binary is the binary's path in the image.
	binary string
	// args follow binary in the entrypoint, so that the arguments a
	// container is given are added to them rather than replacing them.
	args []string
	// ports are exposed, as "8088/tcp".
	ports []string
	// title and description are the OCI labels; no description, no label.
	title, description string
}

// images are the images build-image knows, by the name -image takes.
var images = map[string]spec{
	"manager": {
		pkg:         ".",
		binary:      "/manager",
		title:       "surge-operator",
		description: "Keeps Surge end users equal to SurgeEndUser resources.",
	},
	// The emulator listens on loopback by default, out of reach from outside
	// a container; in the entrypoint, --listen serves every address, and a
	// --listen among the container's arguments, later, still wins.
	"surge-emulator": {
		pkg:         "./cmd/surge-emulator",
		binary:      "/surge-emulator",
		args:        []string{"--listen=:8088"},
		ports:       []string{"8088/tcp"},
		title:       "surge-emulator",
		description: "An emulated Surge API, with a JSON admin API under /_emulator/ to read its state and inject faults, for testing against Surge without reaching it.",
	},
}

var platforms = []v1.Platform{
	{OS: "linux", Architecture: "amd64"},
	{OS: "linux", Architecture: "arm64", Variant: "v8"},
}

func main() {
	name := flag.String("image", "manager", "Image to build: manager or surge-emulator.")
	out := flag.String("out", "dist/image", "Directory to write the OCI image layout to; it is replaced.")
	tag := flag.String("tag", "latest", "Tag recorded in the layout's index (org.opencontainers.image.ref.name).")
	version := flag.String("version", "", "Version the binary reports and the image's labels name; the tag when empty.")
	revision := flag.String("revision", "", "Commit the image is built from; git rev-parse HEAD when empty.")
	flag.Parse()
	image, ok := images[*name]
	if !ok {
		fmt.Fprintf(os.Stderr, "build-image: no image %q: manager or surge-emulator\n", *name)
		os.Exit(2)
	}
	if *version == "" {
		*version = *tag
	}
	if *revision == "" {
		*revision = headCommit()
	}
	if err := run(image, *out, *tag, build{image: *name, version: *version, revision: *revision}); err != nil {
		fmt.Fprintln(os.Stderr, "build-image:", err)
		os.Exit(1)
	}
}

// headCommit is the commit checked out, empty outside a git checkout.
func headCommit() string {
	out, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

func run(s spec, out, tag string, b build) error {
	epoch, err := sourceDateEpoch()
	if err != nil {
		return err
	}
	b.epoch = epoch
	annotations := s.annotations(b)
	base, err := baseLayer(epoch)
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "build-image-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(work) }()

	index := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, platform := range platforms {
		binary := filepath.Join(work, filepath.Base(s.binary)+"-"+platform.Architecture)
		if err := buildBinary(s.pkg, platform, binary, b); err != nil {
			return err
		}
		b.platform = platform.OS + "/" + platform.Architecture
		image, err := platformImage(s, platform, base, binary, b, annotations)
		if err != nil {
			return fmt.Errorf("%s/%s: %w", platform.OS, platform.Architecture, err)
		}
		index = mutate.AppendManifests(index, mutate.IndexAddendum{
			Add:        image,
			Descriptor: v1.Descriptor{Platform: &platform},
		})
	}

	index = mutate.Annotations(index, annotations).(v1.ImageIndex)

	// Written next to out first, so that a failed build never leaves half a
	// layout behind.
	staging := out + ".tmp"
	if err := os.RemoveAll(staging); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	path, err := layout.Write(staging, mutate.IndexMediaType(empty.Index, types.OCIImageIndex))
	if err != nil {
		return err
	}
	if err := path.AppendIndex(index, layout.WithAnnotations(map[string]string{
		"org.opencontainers.image.ref.name": tag,
	})); err != nil {
		return err
	}
	if err := os.RemoveAll(out); err != nil {
		return err
	}
	if err := os.Rename(staging, out); err != nil {
		return err
	}
	digest, err := index.Digest()
	if err != nil {
		return err
	}
	fmt.Printf("wrote %s: image index %s for %d platforms\n", out, digest, len(platforms))
	return nil
}

func sourceDateEpoch() (time.Time, error) {
	value := os.Getenv("SOURCE_DATE_EPOCH")
	if value == "" {
		return time.Time{}, errors.New("SOURCE_DATE_EPOCH is not set (make image sets it to the last commit's time)")
	}
	seconds, err := strconv.ParseInt(value, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH=%q: %w", value, err)
	}
	return time.Unix(seconds, 0).UTC(), nil
}

// versionPackage holds what --version prints, set by the linker.
const versionPackage = "github.com/surge-operator/surge-operator/internal/version"

// buildBinary builds the static binary of pkg, as the Dockerfile builds the
// manager's, with nothing in it that depends on where or when it was built:
// the version, the commit and SOURCE_DATE_EPOCH are linked in, Git's view
// of the checkout is not.
func buildBinary(pkg string, platform v1.Platform, output string, b build) error {
	ldflags := fmt.Sprintf("-s -w -buildid= -X %[1]s.version=%[2]s -X %[1]s.commit=%[3]s -X %[1]s.sourceDateEpoch=%[4]d",
		versionPackage, b.version, b.revision, b.epoch.Unix())
	cmd := exec.Command("go", "build", "-trimpath", "-buildvcs=false", "-ldflags="+ldflags, "-o", output, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+platform.OS, "GOARCH="+platform.Architecture)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("building %s for %s/%s: %w", pkg, platform.OS, platform.Architecture, err)
	}
	return nil
}

// sbomPath is where the image holds the SBOM of its binary.
func (s spec) sbomPath() string {
	return sbomDir + strings.TrimPrefix(s.binary, "/") + ".spdx.json"
}

// annotations are the OCI keys of the image index, its manifests and its
// labels.
func (s spec) annotations(b build) map[string]string {
	annotations := map[string]string{
		"org.opencontainers.image.source":   source,
		"org.opencontainers.image.title":    s.title,
		"org.opencontainers.image.version":  b.version,
		"org.opencontainers.image.licenses": license,
		"org.opencontainers.image.created":  b.epoch.UTC().Format(time.RFC3339),
	}
	if b.revision != "" {
		annotations["org.opencontainers.image.revision"] = b.revision
	}
	if s.description != "" {
		annotations["org.opencontainers.image.description"] = s.description
	}
	return annotations
}

func platformImage(s spec, platform v1.Platform, base v1.Layer, binary string, b build, annotations map[string]string) (v1.Image, error) {
	epoch := b.epoch
	content, err := os.ReadFile(binary)
	if err != nil {
		return nil, err
	}
	binaryLayer, err := layer([]entry{{name: strings.TrimPrefix(s.binary, "/"), mode: 0o755, content: content}}, epoch)
	if err != nil {
		return nil, err
	}
	document, err := sbom(binary, s.binary, b)
	if err != nil {
		return nil, err
	}
	sbomLayer, err := layer([]entry{
		{name: "usr/", dir: true, mode: 0o755},
		{name: "usr/share/", dir: true, mode: 0o755},
		{name: sbomDir, dir: true, mode: 0o755},
		{name: s.sbomPath(), mode: 0o644, content: document},
	}, epoch)
	if err != nil {
		return nil, err
	}
	image := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	image, err = mutate.Append(image,
		mutate.Addendum{Layer: base, History: v1.History{Created: v1.Time{Time: epoch}, CreatedBy: "build-image: users, CA bundle, /tmp"}},
		mutate.Addendum{Layer: binaryLayer, History: v1.History{Created: v1.Time{Time: epoch}, CreatedBy: "build-image: " + s.binary}},
		mutate.Addendum{Layer: sbomLayer, History: v1.History{Created: v1.Time{Time: epoch}, CreatedBy: "build-image: SPDX SBOM of " + s.binary}},
	)
	if err != nil {
		return nil, err
	}
	config, err := image.ConfigFile()
	if err != nil {
		return nil, err
	}
	config = config.DeepCopy()
	config.OS = platform.OS
	config.Architecture = platform.Architecture
	config.Variant = platform.Variant
	config.Created = v1.Time{Time: epoch}
	config.Config = v1.Config{
		User:       user,
		Entrypoint: append([]string{s.binary}, s.args...),
		WorkingDir: "/",
		Env:        []string{"PATH=/usr/local/bin:/usr/bin:/bin", "SSL_CERT_FILE=/" + caBundle},
		Labels:     annotations,
	}
	if len(s.ports) > 0 {
		config.Config.ExposedPorts = map[string]struct{}{}
		for _, port := range s.ports {
			config.Config.ExposedPorts[port] = struct{}{}
		}
	}
	image, err = mutate.ConfigFile(image, config)
	if err != nil {
		return nil, err
	}
	return mutate.Annotations(image, annotations).(v1.Image), nil
}

// baseLayer holds what distroless's static:nonroot gives the Dockerfile's
// image and the manager needs: the non-root user, CA roots and /tmp. Both
// images share it, so that a registry holding both stores it once.
func baseLayer(epoch time.Time) (v1.Layer, error) {
	roots, err := caRoots()
	if err != nil {
		return nil, err
	}
	return layer([]entry{
		{name: "etc/", dir: true, mode: 0o755},
		{name: "etc/group", mode: 0o644, content: []byte("root:x:0:\nnonroot:x:65532:\n")},
		{name: "etc/passwd", mode: 0o644, content: []byte("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")},
		{name: "etc/ssl/", dir: true, mode: 0o755},
		{name: "etc/ssl/certs/", dir: true, mode: 0o755},
		{name: caBundle, mode: 0o644, content: roots},
		{name: "home/", dir: true, mode: 0o755},
		{name: "home/nonroot/", dir: true, mode: 0o700, owner: uid},
		{name: "tmp/", dir: true, mode: 0o1777},
	}, epoch)
}

// caRoots is the PEM bundle of the roots that may be trusted without
// conditions: a PEM file cannot carry the distrust dates some roots have in
// the NSS store, so those are left out rather than trusted beyond them.
func caRoots() ([]byte, error) {
	var buf bytes.Buffer
	for root := range bundle.Roots() {
		if root.Constraint != nil {
			continue
		}
		if err := pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: root.Certificate}); err != nil {
			return nil, err
		}
	}
	if buf.Len() == 0 {
		return nil, errors.New("the CA bundle is empty")
	}
	return buf.Bytes(), nil
}

type entry struct {
	name    string
	dir     bool
	mode    int64
	owner   int
	content []byte
}

// layer writes entries, in the order given, into a gzipped OCI layer whose
// bytes depend on nothing but the entries and epoch.
func layer(entries []entry, epoch time.Time) (v1.Layer, error) {
	var buf bytes.Buffer
	w := tar.NewWriter(&buf)
	for _, e := range entries {
		header := &tar.Header{
			Name:    e.name,
			Mode:    e.mode,
			Uid:     e.owner,
			Gid:     e.owner,
			ModTime: epoch,
			Format:  tar.FormatPAX,
		}
		if e.dir {
			header.Typeflag = tar.TypeDir
		} else {
			header.Typeflag = tar.TypeReg
			header.Size = int64(len(e.content))
		}
		if err := w.WriteHeader(header); err != nil {
			return nil, err
		}
		if _, err := w.Write(e.content); err != nil {
			return nil, err
		}
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	raw := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(raw)), nil
	}, tarball.WithMediaType(types.OCILayer))
}
