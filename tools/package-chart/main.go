// Command package-chart packages charts/surge-operator with helm package,
// with the image that make image wrote as its default (make chart-package):
//
//	bin/package-chart -helm bin/helm -image-dir dist/image \
//		-repository ghcr.io/surge-operator/surge-operator -version v0.1.0 -out dist/chart
//
// The packaged chart's image.repository is -repository, its image.tag the
// tag the layout records, and its image.digest the digest of the layout's
// image index, which pins the image whatever happens to the tag; version and
// appVersion come from -version. The chart in the repository is left as it
// is: a copy is edited, line by line, so that values.yaml keeps its
// comments, which helm show values prints to users.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
)

const refName = "org.opencontainers.image.ref.name"

func main() {
	chart := flag.String("chart", "charts/surge-operator", "The chart to package.")
	imageDir := flag.String("image-dir", "dist/image", "The OCI image layout make image wrote.")
	repository := flag.String("repository", "", "Where the image is pushed, without tag: registry.example.com/platform/surge-operator.")
	version := flag.String("version", "", "The release, as v0.1.0: the chart's appVersion, and its version without the v.")
	out := flag.String("out", "dist/chart", "Directory to write the chart's .tgz into.")
	helm := flag.String("helm", "helm", "The helm binary.")
	flag.Parse()
	packaged, image, err := run(*chart, *imageDir, *repository, *version, *out, *helm)
	if err != nil {
		fmt.Fprintln(os.Stderr, "package-chart:", err)
		os.Exit(1)
	}
	fmt.Printf("wrote %s, installing %s\npush the image there first, such as with: crane push %s %s\n",
		packaged, image, *imageDir, strings.SplitN(image, "@", 2)[0])
}

// image is the reference the packaged chart installs.
type image struct {
	repository, tag, digest string
}

func (i image) String() string { return i.repository + ":" + i.tag + "@" + i.digest }

// semver is what Helm accepts as a chart version, with a leading v for the
// appVersion.
var semver = regexp.MustCompile(`^v(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$`)

func run(chart, imageDir, repository, version, out, helm string) (string, string, error) {
	if repository == "" || strings.Contains(repository, "@") || strings.Contains(repository[strings.LastIndex(repository, "/")+1:], ":") {
		return "", "", fmt.Errorf("-repository %q: the image's repository, without tag or digest", repository)
	}
	if !semver.MatchString(version) {
		return "", "", fmt.Errorf("-version %q: a semantic version with a leading v, such as v0.1.0", version)
	}
	img, err := layoutImage(imageDir)
	if err != nil {
		return "", "", err
	}
	img.repository = repository

	work, err := os.MkdirTemp("", "package-chart-")
	if err != nil {
		return "", "", err
	}
	defer func() { _ = os.RemoveAll(work) }()
	copied := filepath.Join(work, filepath.Base(chart))
	if err := os.CopyFS(copied, os.DirFS(chart)); err != nil {
		return "", "", fmt.Errorf("copying the chart: %w", err)
	}
	chartVersion := strings.TrimPrefix(version, "v")
	if err := edit(filepath.Join(copied, "Chart.yaml"), "", map[string]string{
		"version":    chartVersion,
		"appVersion": version,
	}); err != nil {
		return "", "", err
	}
	if err := edit(filepath.Join(copied, "values.yaml"), "image", map[string]string{
		"repository": quote(img.repository),
		"tag":        quote(img.tag),
		"digest":     quote(img.digest),
	}); err != nil {
		return "", "", err
	}

	if err := os.MkdirAll(out, 0o755); err != nil {
		return "", "", err
	}
	cmd := exec.Command(helm, "package", copied, "--destination", out)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Run(); err != nil {
		return "", "", fmt.Errorf("helm package: %w\n%s", err, stderr.String())
	}
	name, err := chartName(filepath.Join(copied, "Chart.yaml"))
	if err != nil {
		return "", "", err
	}
	return filepath.Join(out, name+"-"+chartVersion+".tgz"), img.String(), nil
}

// layoutImage reads the tag and the digest of the one image index that the
// layout's index.json names, as make image writes it.
func layoutImage(dir string) (image, error) {
	raw, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return image{}, fmt.Errorf("%s holds no OCI image layout: run make image first", dir)
	}
	if err != nil {
		return image{}, err
	}
	var index struct {
		Manifests []struct {
			MediaType   string            `json:"mediaType"`
			Digest      string            `json:"digest"`
			Annotations map[string]string `json:"annotations"`
		} `json:"manifests"`
	}
	if err := json.Unmarshal(raw, &index); err != nil {
		return image{}, fmt.Errorf("%s/index.json: %w", dir, err)
	}
	if len(index.Manifests) != 1 || index.Manifests[0].MediaType != "application/vnd.oci.image.index.v1+json" {
		return image{}, fmt.Errorf("%s/index.json names %d manifests; want the one image index make image writes", dir, len(index.Manifests))
	}
	m := index.Manifests[0]
	if !strings.HasPrefix(m.Digest, "sha256:") || m.Annotations[refName] == "" {
		return image{}, fmt.Errorf("%s/index.json: the image index has no sha256 digest or no tag (%s)", dir, refName)
	}
	return image{tag: m.Annotations[refName], digest: m.Digest}, nil
}

// edit sets keys of a YAML file to values, in place: top-level keys when
// block is empty, else keys indented under the top-level key block. Every
// key must be found, so that a reshaped file fails here rather than
// packaging a chart with the old value.
func edit(path, block string, values map[string]string) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	lines := strings.Split(string(raw), "\n")
	inBlock := block == ""
	indent := ""
	found := map[string]bool{}
	for i, line := range lines {
		trimmed := strings.TrimLeft(line, " ")
		leading := line[:len(line)-len(trimmed)]
		if block != "" && leading == "" && trimmed != "" && !strings.HasPrefix(trimmed, "#") {
			inBlock = trimmed == block+":"
			indent = ""
			continue
		}
		if !inBlock || strings.HasPrefix(trimmed, "#") {
			continue
		}
		if block != "" {
			if indent == "" {
				indent = leading
			}
			if leading != indent {
				continue
			}
		} else if leading != "" {
			continue
		}
		key, _, ok := strings.Cut(trimmed, ":")
		if value, wanted := values[key]; ok && wanted {
			lines[i] = leading + key + ": " + value
			found[key] = true
		}
	}
	for key := range values {
		if !found[key] {
			return fmt.Errorf("%s: no key %s%s", path, prefixed(block), key)
		}
	}
	return os.WriteFile(path, []byte(strings.Join(lines, "\n")), 0o644)
}

func prefixed(block string) string {
	if block == "" {
		return ""
	}
	return block + "."
}

// quote writes s as a YAML double-quoted string, which JSON's quoting is.
func quote(s string) string {
	raw, _ := json.Marshal(s)
	return string(raw)
}

func chartName(path string) (string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	for line := range strings.SplitSeq(string(raw), "\n") {
		if name, ok := strings.CutPrefix(line, "name: "); ok {
			return strings.TrimSpace(name), nil
		}
	}
	return "", fmt.Errorf("%s names no chart", path)
}
