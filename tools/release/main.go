// Command release builds what a release of surge-operator publishes, offline,
// into one directory (make release VERSION=vX.Y.Z; make then packages the
// chart into it with tools/package-chart):
//
//   - image/: the manager's image for linux/amd64 and linux/arm64, built by
//     ko, as an OCI layout tagged VERSION;
//   - install.yaml, every object of config/default with the image pinned by
//     digest, and crds.yaml, the CRDs alone;
//   - kubectl-surge_VERSION_OS_ARCH.tar.gz for linux and darwin on amd64 and
//     arm64, their checksums.txt, and surge.yaml, the krew plugin manifest.
//
// With -provenance, run once the chart and the SBOMs are in the directory
// too, it writes the release's SLSA provenance instead: the predicate alone,
// provenance.slsa.json, which cosign attests on the image, and an in-toto
// statement of it whose subjects are every file of the release and the
// image, provenance.intoto.json.
//
// With -image manager or -image surge-emulator, it builds that image alone,
// the way a release builds the manager's (make image).
//
// It runs from the repository root, or -root.
package main

import (
	"archive/tar"
	"bytes"
	"cmp"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"text/template"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/ko/pkg/build"
	"golang.org/x/crypto/x509roots/fallback/bundle"
	"sigs.k8s.io/kustomize/api/krusty"
	kustomizetypes "sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

const (
	module     = "github.com/surge-operator/surge-operator"
	versionPkg = module + "/internal/version"
	// nonRoot is the user the image runs as, as distroless' nonroot.
	nonRoot = "65532"
	refName = "org.opencontainers.image.ref.name"
	source  = "https://github.com/surge-operator/surge-operator"
)

var (
	imagePlatforms  = []string{"linux/amd64", "linux/arm64"}
	pluginPlatforms = []string{"linux/amd64", "linux/arm64", "darwin/amd64", "darwin/arm64"}
	semver          = regexp.MustCompile(`^v(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?$`)
)

type options struct {
	version, out, repository, revision string
	epoch                              time.Time
	provenance                         bool
	// image, when set, builds that image alone into out, tagged tag.
	image, tag string
	// cyclonedx is cyclonedx-gomod, which writes each image's SBOM.
	cyclonedx string
}

func main() {
	var opts options
	var epoch int64
	flag.StringVar(&opts.version, "version", "", "The release, such as v0.2.0.")
	flag.StringVar(&opts.out, "out", "dist/release", "Where the release is written; emptied first.")
	flag.StringVar(&opts.repository, "repository", "ghcr.io/surge-operator/surge-operator", "Where the image will be pushed, without tag.")
	flag.StringVar(&opts.revision, "revision", "", "The commit released.")
	flag.Int64Var(&epoch, "source-date-epoch", 0, "The time of the commit released, in seconds: the time of every file and layer, so that the same commit gives the same release.")
	flag.BoolVar(&opts.provenance, "provenance", false, "Write the provenance of the release already in -out, instead of building one.")
	flag.StringVar(&opts.image, "image", "", "Build this image alone into -out, as an OCI layout: manager or surge-emulator (make image).")
	flag.StringVar(&opts.tag, "tag", "", "The tag of -image's layout; -version when empty.")
	flag.StringVar(&opts.cyclonedx, "cyclonedx", "bin/cyclonedx-gomod", "cyclonedx-gomod, which writes the SBOM each image holds.")
	root := flag.String("root", ".", "The repository's root.")
	flag.Parse()
	opts.epoch = time.Unix(epoch, 0).UTC()
	if err := os.Chdir(*root); err != nil {
		fmt.Fprintln(os.Stderr, "release:", err)
		os.Exit(1)
	}
	do := run
	switch {
	case opts.provenance:
		do = writeProvenance
	case opts.image != "":
		do = writeImage
	}
	if err := do(context.Background(), opts); err != nil {
		fmt.Fprintln(os.Stderr, "release:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, opts options) error {
	if !semver.MatchString(opts.version) {
		return fmt.Errorf("-version %q: a semantic version with a leading v, such as v0.2.0", opts.version)
	}
	if err := os.RemoveAll(opts.out); err != nil {
		return err
	}
	if err := os.MkdirAll(opts.out, 0o755); err != nil {
		return err
	}
	digest, sboms, err := buildLayout(ctx, opts, imageSpecs["manager"], filepath.Join(opts.out, "image"), opts.version)
	if err != nil {
		return fmt.Errorf("building the image: %w", err)
	}
	if err := os.WriteFile(filepath.Join(opts.out, "surge-operator.cdx.json"), sboms["linux/amd64"], 0o644); err != nil {
		return err
	}
	image := opts.repository + "@" + digest.String()
	if err := writeManifests(opts.out, image); err != nil {
		return err
	}
	archives, err := buildPlugins(opts)
	if err != nil {
		return fmt.Errorf("building kubectl surge: %w", err)
	}
	sums, err := writeChecksums(opts.out, archives)
	if err != nil {
		return err
	}
	if err := writeKrewManifest(opts, sums); err != nil {
		return err
	}
	fmt.Printf("wrote %s: image %s, manifests, kubectl surge for %s\n", opts.out, image, strings.Join(pluginPlatforms, ", "))
	return nil
}

// imageSpec is one image the project builds.
type imageSpec struct {
	// importPath is the binary's Go package; ko names the binary after its
	// last element, in /ko-app.
	importPath string
	// args follow the binary in the entrypoint, so that a container's
	// arguments are added to them rather than replacing them.
	args []string
	// ports are exposed, as "8088/tcp".
	ports              []string
	title, description string
}

var imageSpecs = map[string]imageSpec{
	"manager": {
		importPath:  module,
		title:       "surge-operator",
		description: "Keeps Surge end users equal to SurgeEndUser resources.",
	},
	// The emulator listens on loopback by default, out of reach from outside
	// a container; in the entrypoint, --listen serves every address, and a
	// --listen among the container's arguments, later, still wins.
	"surge-emulator": {
		importPath:  module + "/cmd/surge-emulator",
		args:        []string{"--listen=:8088"},
		ports:       []string{"8088/tcp"},
		title:       "surge-emulator",
		description: "An emulated Surge API, with a JSON admin API under /_emulator/ to read its state and inject faults, for testing against Surge without reaching it.",
	},
}

// writeImage builds the image -image names into -out (make image).
func writeImage(ctx context.Context, opts options) error {
	spec, ok := imageSpecs[opts.image]
	if !ok {
		return fmt.Errorf("-image %q: manager or surge-emulator", opts.image)
	}
	tag := cmp.Or(opts.tag, opts.version)
	if err := os.RemoveAll(opts.out); err != nil {
		return err
	}
	digest, _, err := buildLayout(ctx, opts, spec, opts.out, tag)
	if err != nil {
		return err
	}
	fmt.Printf("wrote %s: %s %s@%s\n", opts.out, opts.image, tag, digest)
	return nil
}

// buildLayout builds the image of spec with ko for every image platform,
// on a base of our own making (the CA bundle and a passwd entry for the
// non-root user, nothing else), so that no base image is pulled; adds its
// CycloneDX SBOM, its entrypoint's arguments, ports and OCI labels; and
// writes it as an OCI layout tagged tag. It returns the index's digest and
// each platform's SBOM.
func buildLayout(ctx context.Context, opts options, spec imageSpec, dir, tag string) (v1.Hash, map[string][]byte, error) {
	base, err := baseIndex(opts.epoch)
	if err != nil {
		return v1.Hash{}, nil, err
	}
	baseRef, err := name.ParseReference("localhost/surge-operator/static-base:" + opts.version)
	if err != nil {
		return v1.Hash{}, nil, err
	}
	root, err := os.Getwd()
	if err != nil {
		return v1.Hash{}, nil, err
	}
	builder, err := build.NewGo(ctx, root,
		build.WithPlatforms(imagePlatforms...),
		build.WithBaseImages(func(context.Context, string) (name.Reference, build.Result, error) { return baseRef, base, nil }),
		build.WithConfig(map[string]build.Config{spec.importPath: {
			ID:      spec.title,
			Ldflags: build.StringArray{ldflags(opts)},
		}}),
		build.WithCreationTime(v1.Time{Time: opts.epoch}),
		build.WithKoDataCreationTime(v1.Time{Time: opts.epoch}),
		build.WithUser(nonRoot+":"+nonRoot),
		build.WithTrimpath(true),
		build.WithDisabledSBOM(),
	)
	if err != nil {
		return v1.Hash{}, nil, err
	}
	result, err := builder.Build(ctx, build.StrictScheme+spec.importPath)
	if err != nil {
		return v1.Hash{}, nil, err
	}
	built, ok := result.(v1.ImageIndex)
	if !ok {
		return v1.Hash{}, nil, errors.New("ko built one image, not an index of the platforms")
	}
	labels := map[string]string{
		"org.opencontainers.image.source":   source,
		"org.opencontainers.image.title":    spec.title,
		"org.opencontainers.image.version":  opts.version,
		"org.opencontainers.image.licenses": "Apache-2.0",
		"org.opencontainers.image.created":  opts.epoch.Format(time.RFC3339),
	}
	if opts.revision != "" {
		labels["org.opencontainers.image.revision"] = opts.revision
	}
	if spec.description != "" {
		labels["org.opencontainers.image.description"] = spec.description
	}
	index, sboms, err := finishImages(opts, spec, built, labels)
	if err != nil {
		return v1.Hash{}, nil, err
	}
	path, err := layout.Write(dir, empty.Index)
	if err != nil {
		return v1.Hash{}, nil, err
	}
	if err := path.AppendIndex(index, layout.WithAnnotations(map[string]string{refName: tag})); err != nil {
		return v1.Hash{}, nil, err
	}
	digest, err := index.Digest()
	return digest, sboms, err
}

// finishImages gives each platform's image what ko leaves out: the SBOM of
// its binary at /usr/share/sbom, the entrypoint's arguments, the exposed
// ports, and the OCI labels, also as the annotations of its manifest and
// of the index.
func finishImages(opts options, spec imageSpec, built v1.ImageIndex, labels map[string]string) (v1.ImageIndex, map[string][]byte, error) {
	manifest, err := built.IndexManifest()
	if err != nil {
		return nil, nil, err
	}
	sboms := map[string][]byte{}
	binary := path.Base(spec.importPath)
	var index v1.ImageIndex = mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, desc := range manifest.Manifests {
		img, err := built.Image(desc.Digest)
		if err != nil {
			return nil, nil, err
		}
		program, err := fileOf(img, "ko-app/"+binary)
		if err != nil {
			return nil, nil, err
		}
		sbom, err := sbomOf(opts, program)
		if err != nil {
			return nil, nil, err
		}
		sboms[desc.Platform.OS+"/"+desc.Platform.Architecture] = sbom
		layer, err := fileLayer(opts.epoch, "usr/share/sbom/"+binary+".cdx.json", sbom)
		if err != nil {
			return nil, nil, err
		}
		if img, err = mutate.AppendLayers(img, layer); err != nil {
			return nil, nil, err
		}
		config, err := img.ConfigFile()
		if err != nil {
			return nil, nil, err
		}
		config = config.DeepCopy()
		config.Config.Entrypoint = append([]string{"/ko-app/" + binary}, spec.args...)
		config.Config.Cmd = nil
		config.Config.Labels = labels
		config.Config.ExposedPorts = nil
		for _, port := range spec.ports {
			if config.Config.ExposedPorts == nil {
				config.Config.ExposedPorts = map[string]struct{}{}
			}
			config.Config.ExposedPorts[port] = struct{}{}
		}
		if img, err = mutate.ConfigFile(img, config); err != nil {
			return nil, nil, err
		}
		img = mutate.Annotations(img, labels).(v1.Image)
		index = mutate.AppendManifests(index, mutate.IndexAddendum{
			Add:        img,
			Descriptor: v1.Descriptor{Platform: desc.Platform},
		})
	}
	return mutate.Annotations(index, labels).(v1.ImageIndex), sboms, nil
}

// sbomOf is the CycloneDX SBOM of a Go binary, by cyclonedx-gomod from the
// build information the binary records: every module linked, with its
// version, hash and licence, read from the module cache, never fetched.
func sbomOf(opts options, binary []byte) ([]byte, error) {
	dir, err := os.MkdirTemp("", "release-sbom-")
	if err != nil {
		return nil, err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	program := filepath.Join(dir, "program")
	if err := os.WriteFile(program, binary, 0o755); err != nil {
		return nil, err
	}
	cmd := exec.Command(opts.cyclonedx, "bin", "-licenses", "-assert-licenses", "-json", "-noserial", "-notimestamp",
		"-version", opts.version, program)
	// It looks modules up from a directory of its own, outside any go.sum:
	// there the go command would ask the checksum database about modules
	// it has not asked about before, which GOPROXY=off forbids. The cache's
	// modules were checked against go.sum when the build downloaded them.
	cmd.Env = append(os.Environ(), "GOPROXY=off", "GOSUMDB=off", "GOFLAGS=-mod=mod")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	sbom, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("cyclonedx-gomod: %w\n%s", err, stderr.String())
	}
	return sbom, nil
}

// fileOf reads one regular file of the image's filesystem.
func fileOf(img v1.Image, name string) ([]byte, error) {
	flat := mutate.Extract(img)
	defer func() { _ = flat.Close() }()
	tr := tar.NewReader(flat)
	for {
		header, err := tr.Next()
		if err != nil {
			return nil, fmt.Errorf("the image holds no /%s: %w", name, err)
		}
		if strings.TrimPrefix(header.Name, "/") == name && header.Typeflag == tar.TypeReg {
			return io.ReadAll(tr)
		}
	}
}

// fileLayer is a layer of one file, and the directories above it.
func fileLayer(epoch time.Time, name string, content []byte) (v1.Layer, error) {
	var entries []tarEntry
	dirs := strings.Split(path.Dir(name), "/")
	for i := range dirs {
		entries = append(entries, dirEntry(epoch, strings.Join(dirs[:i+1], "/")+"/"))
	}
	return layerOf(append(entries, fileEntry(epoch, name, 0o644, content)))
}

// tarEntry is a header and, for a regular file, its content.
type tarEntry struct {
	header  tar.Header
	content []byte
}

func dirEntry(epoch time.Time, name string) tarEntry {
	return tarEntry{header: tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o755, ModTime: epoch}}
}

func fileEntry(epoch time.Time, name string, mode int64, content []byte) tarEntry {
	return tarEntry{
		header:  tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(content)), ModTime: epoch},
		content: content,
	}
}

// writeTar writes the entries, in order, as a tar stream.
func writeTar(w io.Writer, entries []tarEntry) error {
	tw := tar.NewWriter(w)
	for _, entry := range entries {
		if err := tw.WriteHeader(&entry.header); err != nil {
			return err
		}
		if _, err := tw.Write(entry.content); err != nil {
			return err
		}
	}
	return tw.Close()
}

// layerOf is an uncompressed OCI layer of the entries.
func layerOf(entries []tarEntry) (v1.Layer, error) {
	var buf bytes.Buffer
	if err := writeTar(&buf, entries); err != nil {
		return nil, err
	}
	content := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(content)), nil
	}, tarball.WithMediaType(types.OCILayer))
}

func ldflags(opts options) string {
	return fmt.Sprintf("-s -w -X %s.version=%s -X %s.commit=%s -X %s.sourceDateEpoch=%d",
		versionPkg, opts.version, versionPkg, opts.revision, versionPkg, opts.epoch.Unix())
}

// baseIndex is the base of the image for every image platform.
func baseIndex(epoch time.Time) (v1.ImageIndex, error) {
	layer, err := baseLayer(epoch)
	if err != nil {
		return nil, err
	}
	var index v1.ImageIndex = empty.Index
	index = mutate.IndexMediaType(index, types.OCIImageIndex)
	for _, platform := range imagePlatforms {
		goos, goarch, _ := strings.Cut(platform, "/")
		img, err := mutate.AppendLayers(mutate.MediaType(empty.Image, types.OCIManifestSchema1), layer)
		if err != nil {
			return nil, err
		}
		config, err := img.ConfigFile()
		if err != nil {
			return nil, err
		}
		config = config.DeepCopy()
		config.OS, config.Architecture, config.Created = goos, goarch, v1.Time{Time: epoch}
		config.Config = v1.Config{User: nonRoot, Env: []string{"SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"}}
		if img, err = mutate.ConfigFile(img, config); err != nil {
			return nil, err
		}
		index = mutate.AppendManifests(index, mutate.IndexAddendum{
			Add:        img,
			Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: goos, Architecture: goarch}},
		})
	}
	return index, nil
}

// baseLayer holds the CA roots Go's x509roots module pins and the passwd
// and group entries of the non-root user.
func baseLayer(epoch time.Time) (v1.Layer, error) {
	var roots bytes.Buffer
	for root := range bundle.Roots() {
		// A PEM file cannot carry the distrust dates of constrained
		// roots; they are left out rather than trusted beyond them.
		if root.Constraint != nil {
			continue
		}
		if err := pem.Encode(&roots, &pem.Block{Type: "CERTIFICATE", Bytes: root.Certificate}); err != nil {
			return nil, err
		}
	}
	var entries []tarEntry
	for _, dir := range []string{"etc/", "etc/ssl/", "etc/ssl/certs/", "home/", "home/nonroot/"} {
		entry := dirEntry(epoch, dir)
		if dir == "home/nonroot/" {
			entry.header.Uid, entry.header.Gid, entry.header.Mode = 65532, 65532, 0o700
		}
		entries = append(entries, entry)
	}
	return layerOf(append(entries,
		fileEntry(epoch, "etc/passwd", 0o644, []byte("nonroot:x:"+nonRoot+":"+nonRoot+":nonroot:/home/nonroot:/sbin/nologin\n")),
		fileEntry(epoch, "etc/group", 0o644, []byte("nonroot:x:"+nonRoot+":\n")),
		fileEntry(epoch, "etc/ssl/certs/ca-certificates.crt", 0o644, roots.Bytes()),
	))
}

// writeManifests writes install.yaml, config/default with the image, and
// crds.yaml, with kustomize's own library.
func writeManifests(out, image string) error {
	overlay, err := os.MkdirTemp("config", ".release-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(overlay) }()
	repository, digest, _ := strings.Cut(image, "@")
	kustomization := fmt.Sprintf("resources:\n- ../default\nimages:\n- name: controller\n  newName: %s\n  digest: %s\n", repository, digest)
	if err := os.WriteFile(filepath.Join(overlay, "kustomization.yaml"), []byte(kustomization), 0o644); err != nil {
		return err
	}
	options := krusty.MakeDefaultOptions()
	options.LoadRestrictions = kustomizetypes.LoadRestrictionsNone
	resources, err := krusty.MakeKustomizer(options).Run(filesys.MakeFsOnDisk(), overlay)
	if err != nil {
		return fmt.Errorf("kustomize config/default: %w", err)
	}
	installation, err := resources.AsYaml()
	if err != nil {
		return err
	}
	if !bytes.Contains(installation, []byte(image)) {
		return fmt.Errorf("config/default does not use the image named controller: install.yaml would not install %s", image)
	}
	if err := os.WriteFile(filepath.Join(out, "install.yaml"), installation, 0o644); err != nil {
		return err
	}
	crds, err := filepath.Glob(filepath.Join("config", "crd", "bases", "*.yaml"))
	if err != nil {
		return err
	}
	var all bytes.Buffer
	for _, crd := range crds {
		content, err := os.ReadFile(crd)
		if err != nil {
			return err
		}
		all.WriteString("---\n")
		all.Write(content)
	}
	return os.WriteFile(filepath.Join(out, "crds.yaml"), all.Bytes(), 0o644)
}

// buildPlugins builds kubectl-surge for every plugin platform, each in a
// .tar.gz with the licence, and returns the archives' names.
func buildPlugins(opts options) ([]string, error) {
	license, err := os.ReadFile("LICENSE")
	if err != nil {
		return nil, err
	}
	work, err := os.MkdirTemp("", "release-plugin-")
	if err != nil {
		return nil, err
	}
	defer func() { _ = os.RemoveAll(work) }()
	var archives []string
	for _, platform := range pluginPlatforms {
		goos, goarch, _ := strings.Cut(platform, "/")
		binary := filepath.Join(work, goos+"-"+goarch, "kubectl-surge")
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags", ldflags(opts), "-o", binary, "./cmd/kubectl-surge")
		cmd.Env = append(os.Environ(), "GOOS="+goos, "GOARCH="+goarch, "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("go build for %s: %w\n%s", platform, err, out)
		}
		content, err := os.ReadFile(binary)
		if err != nil {
			return nil, err
		}
		if platform == "linux/amd64" {
			sbom, err := sbomOf(opts, content)
			if err != nil {
				return nil, err
			}
			if err := os.WriteFile(filepath.Join(opts.out, "kubectl-surge.cdx.json"), sbom, 0o644); err != nil {
				return nil, err
			}
		}
		archive := fmt.Sprintf("kubectl-surge_%s_%s_%s.tar.gz", opts.version, goos, goarch)
		if err := writeTarGz(filepath.Join(opts.out, archive), opts.epoch, map[string][]byte{"kubectl-surge": content, "LICENSE": license}); err != nil {
			return nil, err
		}
		archives = append(archives, archive)
	}
	return archives, nil
}

func writeTarGz(path string, epoch time.Time, files map[string][]byte) error {
	var entries []tarEntry
	for _, name := range slices.Sorted(maps.Keys(files)) {
		mode := int64(0o644)
		if name == "kubectl-surge" {
			mode = 0o755
		}
		entries = append(entries, fileEntry(epoch, name, mode, files[name]))
	}
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	gz.ModTime = epoch
	if err := writeTar(gz, entries); err != nil {
		return err
	}
	if err := gz.Close(); err != nil {
		return err
	}
	return os.WriteFile(path, buf.Bytes(), 0o644)
}

// writeChecksums writes checksums.txt, in sha256sum's format, and returns
// the checksum of each archive.
func writeChecksums(out string, archives []string) (map[string]string, error) {
	sums := map[string]string{}
	var lines strings.Builder
	for _, archive := range archives {
		content, err := os.ReadFile(filepath.Join(out, archive))
		if err != nil {
			return nil, err
		}
		sum := sha256.Sum256(content)
		sums[archive] = hex.EncodeToString(sum[:])
		fmt.Fprintf(&lines, "%s  %s\n", sums[archive], archive)
	}
	return sums, os.WriteFile(filepath.Join(out, "checksums.txt"), []byte(lines.String()), 0o644)
}

var krewManifest = template.Must(template.New("krew").Parse(`apiVersion: krew.googlecontainertools.github.com/v1alpha2
kind: Plugin
metadata:
  name: surge
spec:
  version: {{ .Version }}
  homepage: {{ .Source }}
  shortDescription: Plan, import and inspect Surge end users declared as SurgeEndUsers
  description: |
    kubectl surge shows what applying SurgeEndUser manifests would do (plan),
    writes SurgeEndUsers for an existing Surge account (import), explains the
    state of a SurgeEndUser or project, and releases deletions the
    surge-operator's mass-deletion brake holds.
  platforms:
{{- range .Platforms }}
  - selector:
      matchLabels:
        os: {{ .OS }}
        arch: {{ .Arch }}
    uri: {{ $.Source }}/releases/download/{{ $.Version }}/{{ .Archive }}
    sha256: {{ .SHA256 }}
    bin: kubectl-surge
    files:
    - from: kubectl-surge
      to: .
    - from: LICENSE
      to: .
{{- end }}
`))

// writeKrewManifest writes surge.yaml, the plugin's manifest for krew's
// index, pointing at the archives as the release's assets.
func writeKrewManifest(opts options, sums map[string]string) error {
	type platform struct{ OS, Arch, Archive, SHA256 string }
	data := struct {
		Version, Source string
		Platforms       []platform
	}{Version: opts.version, Source: source}
	for _, p := range pluginPlatforms {
		goos, goarch, _ := strings.Cut(p, "/")
		archive := fmt.Sprintf("kubectl-surge_%s_%s_%s.tar.gz", opts.version, goos, goarch)
		data.Platforms = append(data.Platforms, platform{OS: goos, Arch: goarch, Archive: archive, SHA256: sums[archive]})
	}
	var buf bytes.Buffer
	if err := krewManifest.Execute(&buf, data); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(opts.out, "surge.yaml"), buf.Bytes(), 0o644)
}

// writeProvenance writes the SLSA v1 provenance of the release in opts.out:
// how it was built (make release, at which commit, with which parameters)
// and, in the in-toto statement, what: every file and the image.
func writeProvenance(_ context.Context, opts options) error {
	predicate := map[string]any{
		"buildDefinition": map[string]any{
			"buildType": source + "/blob/main/docs/releasing.md",
			"externalParameters": map[string]any{
				"version":    opts.version,
				"repository": opts.repository,
			},
			"resolvedDependencies": []any{map[string]any{
				"uri":    "git+" + source + "@refs/tags/" + opts.version,
				"digest": map[string]string{"gitCommit": opts.revision},
			}},
		},
		"runDetails": map[string]any{
			"builder":  map[string]any{"id": source + "/blob/main/Makefile#release"},
			"metadata": map[string]any{"invocationId": opts.version + "@" + opts.revision},
		},
	}
	var subjects []any
	entries, err := os.ReadDir(opts.out)
	if err != nil {
		return err
	}
	for _, entry := range entries {
		if entry.IsDir() || strings.HasSuffix(entry.Name(), ".sig") || strings.HasPrefix(entry.Name(), "provenance.") {
			continue
		}
		content, err := os.ReadFile(filepath.Join(opts.out, entry.Name()))
		if err != nil {
			return err
		}
		sum := sha256.Sum256(content)
		subjects = append(subjects, map[string]any{"name": entry.Name(), "digest": map[string]string{"sha256": hex.EncodeToString(sum[:])}})
	}
	path, err := layout.FromPath(filepath.Join(opts.out, "image"))
	if err != nil {
		return err
	}
	index, err := path.ImageIndex()
	if err != nil {
		return err
	}
	manifest, err := index.IndexManifest()
	if err != nil || len(manifest.Manifests) != 1 {
		return fmt.Errorf("the image layout holds no single image: %v", err)
	}
	subjects = append(subjects, map[string]any{
		"name":   opts.repository + ":" + opts.version,
		"digest": map[string]string{"sha256": manifest.Manifests[0].Digest.Hex},
	})
	statement := map[string]any{
		"_type":         "https://in-toto.io/Statement/v1",
		"subject":       subjects,
		"predicateType": "https://slsa.dev/provenance/v1",
		"predicate":     predicate,
	}
	for file, content := range map[string]any{"provenance.slsa.json": predicate, "provenance.intoto.json": statement} {
		encoded, err := json.MarshalIndent(content, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(opts.out, file), append(encoded, '\n'), 0o644); err != nil {
			return err
		}
	}
	return nil
}
