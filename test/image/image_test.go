// Package image_test builds the manager's image as make image does, reads
// the OCI layout back and checks what a cluster would run: the platforms,
// the user, the entrypoint, and the binary itself.
package image_test

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

const (
	// repoRoot is relative to this package's directory, where go test runs.
	repoRoot = "../.."
	// epoch is an arbitrary SOURCE_DATE_EPOCH: 2026-01-02T03:04:05Z.
	epoch = 1767323045
)

var (
	// workDir holds the layouts the tests build.
	workDir string
	builds  atomic.Int64
	// shared is the layout that TestImageLayout inspects and that
	// TestImageIsReproducible builds again.
	shared     string
	sharedOnce sync.Once
)

func TestMain(m *testing.M) {
	var err error
	workDir, err = os.MkdirTemp("", "image-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(workDir)
	os.Exit(code)
}

func sharedLayout(t *testing.T) string {
	t.Helper()
	skipWithoutImage(t)
	sharedOnce.Do(func() { shared = buildLayout(t) })
	if shared == "" {
		t.Fatal("the image did not build")
	}
	return shared
}

func skipWithoutImage(t *testing.T) {
	t.Helper()
	if os.Getenv("SKIP_IMAGE") == "1" {
		t.Skip("SKIP_IMAGE=1: the image is not built")
	}
}

// buildLayout runs the program behind make image into a new directory.
func buildLayout(t *testing.T) string {
	t.Helper()
	skipWithoutImage(t)
	out := filepath.Join(workDir, fmt.Sprintf("image-%d", builds.Add(1)))
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "run", "./hack/build-image", "-out", out, "-tag", "v0.0.0-test")
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), "SOURCE_DATE_EPOCH="+strconv.Itoa(epoch))
	var output bytes.Buffer
	cmd.Stdout, cmd.Stderr = &output, &output
	if err := cmd.Run(); err != nil {
		t.Fatalf("hack/build-image: %v\n%s", err, output.String())
	}
	return out
}

// imageIndex reads the one image index that the layout's index.json names.
func imageIndex(t *testing.T, dir string) v1.ImageIndex {
	t.Helper()
	root, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatalf("reading the OCI layout: %v", err)
	}
	manifest, err := root.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(manifest.Manifests) != 1 || !manifest.Manifests[0].MediaType.IsIndex() {
		t.Fatalf("the layout's index.json names %+v, want one image index", manifest.Manifests)
	}
	index, err := root.ImageIndex(manifest.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	return index
}

func TestImageLayout(t *testing.T) {
	index := imageIndex(t, sharedLayout(t))
	manifest, err := index.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var platforms []string
	images := map[string]v1.Image{}
	for _, desc := range manifest.Manifests {
		if desc.Platform == nil {
			t.Fatalf("manifest %s names no platform", desc.Digest)
		}
		platform := desc.Platform.OS + "/" + desc.Platform.Architecture
		platforms = append(platforms, platform)
		image, err := index.Image(desc.Digest)
		if err != nil {
			t.Fatal(err)
		}
		images[platform] = image
	}
	slices.Sort(platforms)
	if !slices.Equal(platforms, []string{"linux/amd64", "linux/arm64"}) {
		t.Fatalf("the image is for %v, want linux/amd64 and linux/arm64", platforms)
	}

	for platform, image := range images {
		t.Run(platform, func(t *testing.T) {
			config, err := image.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			if config.OS+"/"+config.Architecture != platform {
				t.Errorf("the %s manifest's config says %s/%s", platform, config.OS, config.Architecture)
			}
			if user := config.Config.User; user != "65532:65532" {
				t.Errorf("the image runs as user %q, want 65532:65532 (non-root, as the Dockerfile's)", user)
			}
			if !slices.Equal(config.Config.Entrypoint, []string{"/manager"}) {
				t.Errorf("the entrypoint is %v, want [/manager]", config.Config.Entrypoint)
			}
			if !config.Created.Time.Equal(time.Unix(epoch, 0)) {
				t.Errorf("the image was created at %v, want SOURCE_DATE_EPOCH %v", config.Created.Time, time.Unix(epoch, 0).UTC())
			}
			files := readFiles(t, image)
			manager, ok := files["manager"]
			if !ok || manager.header.Mode&0o111 == 0 {
				t.Fatalf("the image has no executable /manager")
			}
			roots := x509.NewCertPool()
			if !roots.AppendCertsFromPEM(files["etc/ssl/certs/ca-certificates.crt"].content) {
				t.Errorf("the image has no CA bundle at /etc/ssl/certs/ca-certificates.crt")
			}
			if passwd := string(files["etc/passwd"].content); !strings.Contains(passwd, ":65532:65532:") {
				t.Errorf("/etc/passwd names no user 65532:\n%s", passwd)
			}
			if platform == "linux/amd64" {
				runManagerHelp(t, manager.content)
			}
		})
	}

	// Anything that takes an OCI layout can push it: the whole index goes to
	// a registry and comes back with the same digest.
	server := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer server.Close()
	host, err := url.Parse(server.URL)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(host.Host + "/surge/operator:test")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(ref, index); err != nil {
		t.Fatalf("pushing the layout to a registry: %v", err)
	}
	pulled, err := remote.Index(ref)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := index.Digest()
	if got, _ := pulled.Digest(); got != want {
		t.Errorf("the registry serves index %s, the layout holds %s", got, want)
	}
}

// TestImageIsReproducible: two builds from the same source and
// SOURCE_DATE_EPOCH are the same image, byte for byte.
func TestImageIsReproducible(t *testing.T) {
	first, err := imageIndex(t, sharedLayout(t)).Digest()
	if err != nil {
		t.Fatal(err)
	}
	second, err := imageIndex(t, buildLayout(t)).Digest()
	if err != nil {
		t.Fatal(err)
	}
	if first != second {
		t.Errorf("two builds of the same source give indexes %s and %s", first, second)
	}
}

// TestDockerfileMatchesTheImage: those who build with Docker get the same
// user and entrypoint.
func TestDockerfileMatchesTheImage(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(repoRoot, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	var user, entrypoint string
	scanner := bufio.NewScanner(bytes.NewReader(raw))
	for scanner.Scan() {
		instruction, argument, _ := strings.Cut(strings.TrimSpace(scanner.Text()), " ")
		switch instruction {
		case "FROM":
			user, entrypoint = "", ""
		case "USER":
			user = argument
		case "ENTRYPOINT":
			entrypoint = argument
		}
	}
	if user != "65532:65532" || entrypoint != `["/manager"]` {
		t.Errorf("the Dockerfile's image runs %s as %q, want [\"/manager\"] as 65532:65532", entrypoint, user)
	}
}

type file struct {
	header  *tar.Header
	content []byte
}

// readFiles reads the image's filesystem, its layers flattened.
func readFiles(t *testing.T, image v1.Image) map[string]file {
	t.Helper()
	flat := mutate.Extract(image)
	defer func() { _ = flat.Close() }()
	files := map[string]file{}
	reader := tar.NewReader(flat)
	for {
		header, err := reader.Next()
		if errors.Is(err, io.EOF) {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		content, err := io.ReadAll(reader)
		if err != nil {
			t.Fatal(err)
		}
		files[strings.TrimPrefix(header.Name, "/")] = file{header: header, content: content}
	}
}

// runManagerHelp runs the image's amd64 manager, as extracted from its layer.
func runManagerHelp(t *testing.T, binary []byte) {
	t.Helper()
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		t.Logf("not running the linux/amd64 manager on %s/%s", runtime.GOOS, runtime.GOARCH)
		return
	}
	path := filepath.Join(t.TempDir(), "manager")
	if err := os.WriteFile(path, binary, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(path, "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("manager --help: %v\n%s", err, out)
	}
	for _, flag := range []string{"-surge-api-url", "-leader-elect", "-metrics-bind-address"} {
		if !strings.Contains(string(out), flag) {
			t.Errorf("manager --help does not mention %s:\n%s", flag, out)
		}
	}
}
