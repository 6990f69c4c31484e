// Package image_test builds the manager's and the Surge emulator's images as
// make image does, reads the OCI layouts back and checks what a cluster would
// run: the platforms, the user, the entrypoint, and the binary itself.
package image_test

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"maps"
	"net"
	"net/http"
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

// image is one image make image builds, and what it must hold.
type image struct {
	// name is what make image's builder, tools/release, takes as -image.
	name string
	// entrypoint is the image's entrypoint; its first element is the binary.
	entrypoint []string
	// ports are the exposed ports.
	ports []string
	// title is the org.opencontainers.image.title label.
	title string
	// run checks the linux/amd64 binary, extracted from the image, given the
	// image's config.
	run func(t *testing.T, binary string, config *v1.ConfigFile)
}

var images = []image{
	{
		name:       "manager",
		entrypoint: []string{"/ko-app/surge-operator"},
		title:      "surge-operator",
		run:        runManagerHelp,
	},
	{
		name:       "surge-emulator",
		entrypoint: []string{"/ko-app/surge-emulator", "--listen=:8088"},
		ports:      []string{"8088/tcp"},
		title:      "surge-emulator",
		run:        runEmulator,
	},
}

var (
	// workDir holds the layouts the tests build.
	workDir string
	builds  atomic.Int64
	// shared are the layouts, by image, that TestImageLayout inspects and
	// that TestImageIsReproducible builds again.
	sharedMu sync.Mutex
	shared   = map[string]string{}
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

func sharedLayout(t *testing.T, name string) string {
	t.Helper()
	skipWithoutImage(t)
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if dir, ok := shared[name]; ok {
		if dir == "" {
			t.Fatalf("the %s image did not build", name)
		}
		return dir
	}
	shared[name] = ""
	shared[name] = buildLayout(t, name)
	return shared[name]
}

func skipWithoutImage(t *testing.T) {
	t.Helper()
	if os.Getenv("SKIP_IMAGE") == "1" {
		t.Skip("SKIP_IMAGE=1: the image is not built")
	}
}

// buildLayout runs what make image runs, tools/release with -image, into a
// new directory.
func buildLayout(t *testing.T, name string) string {
	t.Helper()
	skipWithoutImage(t)
	out := filepath.Join(workDir, fmt.Sprintf("%s-%d", name, builds.Add(1)))
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	tools := exec.CommandContext(ctx, "make", "--no-print-directory", "cyclonedx-gomod")
	tools.Dir = repoRoot
	if output, err := tools.CombinedOutput(); err != nil {
		t.Fatalf("make cyclonedx-gomod: %v\n%s", err, output)
	}
	cmd := exec.CommandContext(ctx, "go", "run", "./release", "-root", "..", "-image", name, "-out", out,
		"-tag", "v0.0.0-test", "-version", "v0.0.0-test", "-revision", headCommit(t), "-source-date-epoch", strconv.Itoa(epoch))
	cmd.Dir = filepath.Join(repoRoot, "tools")
	var output bytes.Buffer
	cmd.Stdout, cmd.Stderr = &output, &output
	if err := cmd.Run(); err != nil {
		t.Fatalf("tools/release -image %s: %v\n%s", name, err, output.String())
	}
	return out
}

// headCommit is the commit checked out, empty outside a git checkout.
func headCommit(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("git", "-C", repoRoot, "rev-parse", "HEAD").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
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
	for _, want := range images {
		t.Run(want.name, func(t *testing.T) { checkLayout(t, want, sharedLayout(t, want.name)) })
	}
}

func checkLayout(t *testing.T, want image, dir string) {
	index := imageIndex(t, dir)
	manifest, err := index.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var platforms []string
	byPlatform := map[string]v1.Image{}
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
		byPlatform[platform] = image
	}
	slices.Sort(platforms)
	if !slices.Equal(platforms, []string{"linux/amd64", "linux/arm64"}) {
		t.Fatalf("the image is for %v, want linux/amd64 and linux/arm64", platforms)
	}

	for platform, image := range byPlatform {
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
			if !slices.Equal(config.Config.Entrypoint, want.entrypoint) {
				t.Errorf("the entrypoint is %v, want %v", config.Config.Entrypoint, want.entrypoint)
			}
			if len(config.Config.Cmd) != 0 {
				t.Errorf("the image has the default arguments %v, want none", config.Config.Cmd)
			}
			var ports []string
			for port := range config.Config.ExposedPorts {
				ports = append(ports, port)
			}
			slices.Sort(ports)
			if !slices.Equal(ports, want.ports) {
				t.Errorf("the image exposes %v, want %v", ports, want.ports)
			}
			labels := config.Config.Labels
			if labels["org.opencontainers.image.title"] != want.title || labels["org.opencontainers.image.source"] == "" {
				t.Errorf("the image's labels are %v, want the title %q and a source", labels, want.title)
			}
			checkOCIKeys(t, "the image's labels", labels)
			imageManifest, err := image.Manifest()
			if err != nil {
				t.Fatal(err)
			}
			// ko records the base it built on, which holds the CA bundle
			// and the non-root user and is pulled from nowhere.
			own := maps.Clone(imageManifest.Annotations)
			if !strings.HasPrefix(own["org.opencontainers.image.base.name"], "localhost/") || own["org.opencontainers.image.base.digest"] == "" {
				t.Errorf("the %s manifest does not name the base ko built on: %v", platform, own)
			}
			delete(own, "org.opencontainers.image.base.name")
			delete(own, "org.opencontainers.image.base.digest")
			if !maps.Equal(own, labels) {
				t.Errorf("the %s manifest's annotations %v differ from the labels %v", platform, imageManifest.Annotations, labels)
			}
			if !maps.Equal(manifest.Annotations, labels) {
				t.Errorf("the index's annotations %v differ from the %s labels %v", manifest.Annotations, platform, labels)
			}
			if !config.Created.Time.Equal(time.Unix(epoch, 0)) {
				t.Errorf("the image was created at %v, want SOURCE_DATE_EPOCH %v", config.Created.Time, time.Unix(epoch, 0).UTC())
			}
			files := readFiles(t, image)
			binaryPath := strings.TrimPrefix(want.entrypoint[0], "/")
			binary, ok := files[binaryPath]
			if !ok || binary.header.Mode&0o111 == 0 {
				t.Fatalf("the image has no executable /%s", binaryPath)
			}
			roots := x509.NewCertPool()
			if !roots.AppendCertsFromPEM(files["etc/ssl/certs/ca-certificates.crt"].content) {
				t.Errorf("the image has no CA bundle at /etc/ssl/certs/ca-certificates.crt")
			}
			if passwd := string(files["etc/passwd"].content); !strings.Contains(passwd, ":65532:65532:") {
				t.Errorf("/etc/passwd names no user 65532:\n%s", passwd)
			}
			checkSBOM(t, files, want.entrypoint[0], platform, labels)
			if platform != "linux/amd64" {
				return
			}
			if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
				t.Logf("not running the linux/amd64 %s on %s/%s", binaryPath, runtime.GOOS, runtime.GOARCH)
				return
			}
			path := filepath.Join(t.TempDir(), filepath.Base(binaryPath))
			if err := os.WriteFile(path, binary.content, 0o755); err != nil {
				t.Fatal(err)
			}
			want.run(t, path, config)
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
	ref, err := name.ParseReference(host.Host + "/surge/" + want.name + ":test")
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
	wantDigest, _ := index.Digest()
	if got, _ := pulled.Digest(); got != wantDigest {
		t.Errorf("the registry serves index %s, the layout holds %s", got, wantDigest)
	}
}

// TestImageIsReproducible: two builds from the same source and
// SOURCE_DATE_EPOCH are the same image, byte for byte. The manager's image
// stands for both: they are built by the same code.
func TestImageIsReproducible(t *testing.T) {
	first, err := imageIndex(t, sharedLayout(t, "manager")).Digest()
	if err != nil {
		t.Fatal(err)
	}
	second, err := imageIndex(t, buildLayout(t, "manager")).Digest()
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
	if user != "65532:65532" || entrypoint != `["/ko-app/surge-operator"]` {
		t.Errorf("the Dockerfile's image runs %s as %q, want [\"/ko-app/surge-operator\"] as 65532:65532", entrypoint, user)
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

// runManagerHelp runs the image's amd64 manager, as extracted from its
// layer: its help, and its version, which the image's labels repeat.
func runManagerHelp(t *testing.T, path string, config *v1.ConfigFile) {
	t.Helper()
	out, err := exec.Command(path, "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("manager --help: %v\n%s", err, out)
	}
	for _, flag := range []string{"-surge-api-url", "-leader-elect", "-metrics-bind-address", "-version"} {
		if !strings.Contains(string(out), flag) {
			t.Errorf("manager --help does not mention %s:\n%s", flag, out)
		}
	}
	out, err = exec.Command(path, "--version").CombinedOutput()
	if err != nil {
		t.Fatalf("manager --version: %v\n%s", err, out)
	}
	labels := config.Config.Labels
	for _, want := range []string{
		"version: " + labels["org.opencontainers.image.version"] + "\n",
		"commit:  " + labels["org.opencontainers.image.revision"] + "\n",
		"date:    " + labels["org.opencontainers.image.created"] + "\n",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("manager --version printed\n%s\nwant the line %q, as the labels say", out, strings.TrimSpace(want))
		}
	}
}

// checkOCIKeys checks the OCI keys that every image carries in its labels
// and annotations: the version the image was built as (the tag), the commit
// checked out, the license, SOURCE_DATE_EPOCH and the source.
func checkOCIKeys(t *testing.T, what string, keys map[string]string) {
	t.Helper()
	want := map[string]string{
		"org.opencontainers.image.version":  "v0.0.0-test",
		"org.opencontainers.image.licenses": "Apache-2.0",
		"org.opencontainers.image.created":  time.Unix(epoch, 0).UTC().Format(time.RFC3339),
		"org.opencontainers.image.source":   "https://github.com/surge-operator/surge-operator",
	}
	if head, err := exec.Command("git", "-C", repoRoot, "rev-parse", "HEAD").Output(); err == nil {
		want["org.opencontainers.image.revision"] = strings.TrimSpace(string(head))
	}
	for key, value := range want {
		if keys[key] != value {
			t.Errorf("%s have %s=%q, want %q", what, key, keys[key], value)
		}
	}
	license, err := os.ReadFile(filepath.Join(repoRoot, "LICENSE"))
	if err != nil || !strings.Contains(string(license), "Apache License\n") || !strings.Contains(string(license), "Version 2.0, January 2004") {
		t.Errorf("the repository's LICENSE is not the Apache License 2.0 the images declare (%v)", err)
	}
}

// runEmulator runs the image's amd64 emulator, as extracted from its layer:
// its help, then the image's entrypoint with a --listen on loopback added, as
// a container's arguments would be, and one request to its admin API.
func runEmulator(t *testing.T, path string, config *v1.ConfigFile) {
	t.Helper()
	out, err := exec.Command(path, "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("surge-emulator --help: %v\n%s", err, out)
	}
	for _, flag := range []string{"-listen", "-api-key", "-fault"} {
		if !strings.Contains(string(out), flag) {
			t.Errorf("surge-emulator --help does not mention %s:\n%s", flag, out)
		}
	}

	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	address := listener.Addr().String()
	_ = listener.Close()
	args := append(slices.Clone(config.Config.Entrypoint[1:]), "--listen="+address)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, path, args...)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	var exitErr error
	exited := make(chan struct{})
	go func() {
		exitErr = cmd.Wait()
		close(exited)
	}()
	defer func() {
		cancel()
		<-exited
	}()

	client := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-exited:
			t.Fatalf("surge-emulator %s exited: %v\n%s", strings.Join(args, " "), exitErr, logs.String())
		default:
		}
		response, err := client.Get("http://" + address + "/_emulator/users")
		if err == nil {
			var users struct {
				Data []json.RawMessage `json:"data"`
			}
			decodeErr := json.NewDecoder(response.Body).Decode(&users)
			_ = response.Body.Close()
			if response.StatusCode != http.StatusOK || decodeErr != nil || users.Data == nil {
				t.Fatalf("GET /_emulator/users: %s, %v", response.Status, decodeErr)
			}
			return
		}
		if time.Now().After(deadline) {
			cancel()
			<-exited // the logs are written until it exits
			t.Fatalf("surge-emulator did not serve on %s: %v\n%s", address, err, logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}
