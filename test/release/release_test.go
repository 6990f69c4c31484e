// Package release_test proves make release and make publish end to end, as
// a user would install what they build: the image and the chart are pushed
// and signed with cosign to a registry (go-containerregistry's, in the test
// process), their signatures and those of the release's files verify, the
// chart is installed from the registry with helm into a real API server,
// and the plugin built for this machine says the version released.
package release_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	appsv1 "k8s.io/api/apps/v1"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
)

const (
	repoRoot = "../.."
	version  = "v0.9.0-rc.1"
)

func TestReleaseInstallsFromARegistry(t *testing.T) {
	helm := os.Getenv("HELM")
	if helm == "" {
		t.Fatal("HELM is not set: run through make test, which builds helm")
	}
	registryServer := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(registryServer.Close)
	host := strings.TrimPrefix(registryServer.URL, "http://")
	repository := host + "/platform/surge-operator"

	out := t.TempDir()
	keys := signingKeys(t)
	settings := []string{"VERSION=" + version, "RELEASE_DIR=" + out, "IMAGE_REPO=" + repository,
		"CHART_REPO=oci://" + host + "/charts", "INSECURE_REGISTRY=1", "COSIGN_KEY=" + filepath.Join(keys, "cosign.key")}
	runMake(t, append([]string{"release"}, settings...)...)

	// The image, as a user pushes it: the index make release wrote.
	path, err := layout.FromPath(filepath.Join(out, "image"))
	if err != nil {
		t.Fatal(err)
	}
	top, err := path.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	manifest, err := top.IndexManifest()
	if err != nil || len(manifest.Manifests) != 1 || manifest.Manifests[0].Annotations["org.opencontainers.image.ref.name"] != version {
		t.Fatalf("the image layout holds %+v (%v), want one index tagged %s", manifest, err, version)
	}
	index, err := top.ImageIndex(manifest.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	checkPlatforms(t, index)
	digest, err := index.Digest()
	if err != nil {
		t.Fatal(err)
	}

	// Published as the release workflow publishes, and signed.
	runMake(t, append([]string{"publish"}, settings...)...)
	tag, err := name.NewTag(repository+":"+version, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if pushed, err := remote.Head(tag); err != nil || pushed.Digest != digest {
		t.Fatalf("the tag %s points at %v (%v), want the image built, %s", tag, pushed, err, digest)
	}
	chartVersion := strings.TrimPrefix(version, "v")
	cosign := filepath.Join(repoRoot, "bin", "cosign")
	for _, artifact := range []string{repository + "@" + digest.String(), host + "/charts/surge-operator:" + chartVersion} {
		verify := exec.Command(cosign, "verify", "--key", filepath.Join(keys, "cosign.pub"), "--insecure-ignore-tlog",
			"--allow-insecure-registry", "--allow-http-registry", artifact)
		if output, err := verify.CombinedOutput(); err != nil {
			t.Errorf("cosign verify %s: %v\n%s", artifact, err, output)
		}
	}
	for _, attestation := range []string{"cyclonedx", "slsaprovenance1"} {
		verify := exec.Command(cosign, "verify-attestation", "--key", filepath.Join(keys, "cosign.pub"), "--insecure-ignore-tlog",
			"--allow-insecure-registry", "--allow-http-registry", "--type", attestation, repository+"@"+digest.String())
		if output, err := verify.CombinedOutput(); err != nil {
			t.Errorf("cosign verify-attestation --type %s: %v\n%s", attestation, err, output)
		}
	}
	for _, file := range []string{"surge-operator-" + chartVersion + ".tgz", "install.yaml", "crds.yaml", "checksums.txt", "surge.yaml",
		"surge-operator.cdx.json", "kubectl-surge.cdx.json", "provenance.intoto.json"} {
		verify := exec.Command(cosign, "verify-blob", "--key", filepath.Join(keys, "cosign.pub"), "--insecure-ignore-tlog",
			"--signature", filepath.Join(out, file+".sig"), filepath.Join(out, file))
		if output, err := verify.CombinedOutput(); err != nil {
			t.Errorf("cosign verify-blob %s: %v\n%s", file, err, output)
		}
	}

	// The chart, installed from the registry as an OCI chart.
	env, cfg := helmEnvironment(t)
	runHelm(t, helm, env, "install", "surge-operator", "oci://"+host+"/charts/surge-operator", "--version", chartVersion,
		"--plain-http", "--namespace", "surge-operator", "--create-namespace")
	deployment := &appsv1.Deployment{}
	k8s, err := client.New(cfg, client.Options{Scheme: clientgoscheme.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: "surge-operator", Name: "surge-operator"}, deployment); err != nil {
		t.Fatalf("the installed Deployment: %v", err)
	}
	// The digest pins the image, whatever becomes of the tag.
	want := repository + "@" + digest.String()
	if got := deployment.Spec.Template.Spec.Containers[0].Image; got != want {
		t.Errorf("the chart installed from the registry runs %s, want the image pushed, %s", got, want)
	}
	// The image's entrypoint is ko's; a command of the Deployment's own
	// would name a binary the image does not hold.
	if command := deployment.Spec.Template.Spec.Containers[0].Command; len(command) > 0 {
		t.Errorf("the Deployment runs %v instead of the image's entrypoint", command)
	}

	manifests := func(file string) string {
		content, err := os.ReadFile(filepath.Join(out, file))
		if err != nil {
			t.Fatal(err)
		}
		return string(content)
	}
	if install := manifests("install.yaml"); !strings.Contains(install, "image: "+repository+"@"+digest.String()) {
		t.Errorf("install.yaml does not run %s@%s", repository, digest)
	}
	if crds := manifests("crds.yaml"); strings.Count(crds, "kind: CustomResourceDefinition") != 3 {
		t.Errorf("crds.yaml holds %d CRDs, want 3", strings.Count(crds, "kind: CustomResourceDefinition"))
	}
	if krew := manifests("surge.yaml"); !strings.Contains(krew, "version: "+version) || strings.Count(krew, "sha256: ") != 4 {
		t.Errorf("the krew manifest does not name %s with four archives:\n%s", version, krew)
	}

	checkSBOMs(t, out)
	checkProvenance(t, out, digest, chartVersion)

	// kubectl surge, from the archive for this machine, as its checksum says.
	archive := fmt.Sprintf("kubectl-surge_%s_%s_%s.tar.gz", version, runtime.GOOS, runtime.GOARCH)
	content := []byte(manifests(archive))
	sum := sha256.Sum256(content)
	if !strings.Contains(manifests("checksums.txt"), hex.EncodeToString(sum[:])+"  "+archive+"\n") {
		t.Errorf("checksums.txt does not hold the checksum of %s", archive)
	}
	plugin := filepath.Join(t.TempDir(), "kubectl-surge")
	if err := os.WriteFile(plugin, fileInTarGz(t, content, "kubectl-surge"), 0o755); err != nil {
		t.Fatal(err)
	}
	printed, err := exec.Command(plugin, "version").CombinedOutput()
	if err != nil || !strings.Contains(string(printed), version) {
		t.Errorf("kubectl surge version printed %q (%v), want %s", printed, err, version)
	}
}

// checkSBOMs: each SBOM lists the modules its binary links, every one with
// its licence resolved.
func checkSBOMs(t *testing.T, out string) {
	t.Helper()
	for _, file := range []string{"surge-operator.cdx.json", "kubectl-surge.cdx.json"} {
		var sbom struct {
			BOMFormat  string `json:"bomFormat"`
			Components []struct {
				Name     string            `json:"name"`
				Licenses []json.RawMessage `json:"licenses"`
			} `json:"components"`
		}
		raw, err := os.ReadFile(filepath.Join(out, file))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(raw, &sbom); err != nil || sbom.BOMFormat != "CycloneDX" || len(sbom.Components) < 10 {
			t.Errorf("%s is not a CycloneDX SBOM of the modules: %v, %d components", file, err, len(sbom.Components))
			continue
		}
		for _, component := range sbom.Components {
			if len(component.Licenses) == 0 {
				t.Errorf("%s: module %s has no licence", file, component.Name)
			}
		}
	}
}

// checkProvenance: the in-toto statement names the commit built and the
// image and the chart among its subjects.
func checkProvenance(t *testing.T, out string, image v1.Hash, chartVersion string) {
	t.Helper()
	var statement struct {
		Type    string `json:"_type"`
		Subject []struct {
			Name   string            `json:"name"`
			Digest map[string]string `json:"digest"`
		} `json:"subject"`
		PredicateType string `json:"predicateType"`
	}
	raw, err := os.ReadFile(filepath.Join(out, "provenance.intoto.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &statement); err != nil || statement.Type != "https://in-toto.io/Statement/v1" || statement.PredicateType != "https://slsa.dev/provenance/v1" {
		t.Fatalf("provenance.intoto.json is not an in-toto statement of SLSA provenance: %v", err)
	}
	chart, err := os.ReadFile(filepath.Join(out, "surge-operator-"+chartVersion+".tgz"))
	if err != nil {
		t.Fatal(err)
	}
	chartSum := sha256.Sum256(chart)
	found := map[string]bool{}
	for _, subject := range statement.Subject {
		found[subject.Digest["sha256"]] = true
	}
	if !found[image.Hex] || !found[hex.EncodeToString(chartSum[:])] {
		t.Errorf("the provenance's subjects %+v lack the image %s or the chart", statement.Subject, image)
	}
}

// runMake runs make in the repository with these targets and variables.
func runMake(t *testing.T, args ...string) {
	t.Helper()
	cmd := exec.Command("make", append([]string{"--no-print-directory"}, args...)...)
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), "COSIGN_PASSWORD="+keyPassword)
	if output, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make %s: %v\n%s", strings.Join(args, " "), err, output)
	}
}

// keyPassword protects the test's signing key, as COSIGN_PASSWORD does a
// release's.
const keyPassword = "release-test"

// signingKeys makes a cosign key pair, cosign.key and cosign.pub, in a
// directory of its own, and returns the directory. cosign is built first,
// as make release would build it.
func signingKeys(t *testing.T) string {
	t.Helper()
	runMake(t, "cosign")
	cosign, err := filepath.Abs(filepath.Join(repoRoot, "bin", "cosign"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	generate := exec.Command(cosign, "generate-key-pair")
	generate.Dir = dir
	generate.Env = append(os.Environ(), "COSIGN_PASSWORD="+keyPassword)
	if output, err := generate.CombinedOutput(); err != nil {
		t.Fatalf("cosign generate-key-pair: %v\n%s", err, output)
	}
	return dir
}

// checkPlatforms: the image is built for linux/amd64 and linux/arm64, runs
// as the non-root user and carries the version.
func checkPlatforms(t *testing.T, index v1.ImageIndex) {
	t.Helper()
	manifest, err := index.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	platforms := map[string]bool{}
	for _, m := range manifest.Manifests {
		if m.Platform == nil {
			continue
		}
		platforms[m.Platform.OS+"/"+m.Platform.Architecture] = true
		img, err := index.Image(m.Digest)
		if err != nil {
			t.Fatal(err)
		}
		config, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if config.Config.User != "65532:65532" || config.Config.Labels["org.opencontainers.image.version"] != version {
			t.Errorf("the %s image runs as %q with labels %v, want 65532:65532 and the version", m.Platform, config.Config.User, config.Config.Labels)
		}
		if len(config.Config.Entrypoint) != 1 || !imageHolds(t, img, strings.TrimPrefix(config.Config.Entrypoint[0], "/")) {
			t.Errorf("the %s image's entrypoint %v is not a file it holds", m.Platform, config.Config.Entrypoint)
		}
	}
	if !platforms["linux/amd64"] || !platforms["linux/arm64"] {
		t.Errorf("the image is built for %v, want linux/amd64 and linux/arm64", platforms)
	}
}

// imageHolds says whether the image's filesystem has the file.
func imageHolds(t *testing.T, img v1.Image, file string) bool {
	t.Helper()
	flat := mutate.Extract(img)
	defer func() { _ = flat.Close() }()
	tr := tar.NewReader(flat)
	for {
		header, err := tr.Next()
		if err != nil {
			return false
		}
		if strings.TrimPrefix(header.Name, "/") == file && header.Typeflag == tar.TypeReg {
			return true
		}
	}
}

// helmEnvironment starts an API server and returns the environment helm
// needs to reach it, away from the user's own helm configuration.
func helmEnvironment(t *testing.T) ([]string, *rest.Config) {
	t.Helper()
	ctrllog.SetLogger(logr.Discard())
	testEnv := &envtest.Environment{}
	cfg, err := testEnv.Start()
	if err != nil {
		t.Fatalf("starting envtest (run through make test, which builds its binaries): %v", err)
	}
	t.Cleanup(func() { _ = testEnv.Stop() })
	admin, err := testEnv.AddUser(envtest.User{Name: "release-test", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig, err := admin.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	path := filepath.Join(home, "kubeconfig")
	if err := os.WriteFile(path, kubeconfig, 0o600); err != nil {
		t.Fatal(err)
	}
	return []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + home, "KUBECONFIG=" + path,
		"HELM_CACHE_HOME=" + filepath.Join(home, "cache"), "HELM_CONFIG_HOME=" + filepath.Join(home, "config"),
		"HELM_DATA_HOME=" + filepath.Join(home, "data"),
	}, cfg
}

func runHelm(t *testing.T, helm string, env []string, args ...string) {
	t.Helper()
	cmd := exec.Command(helm, args...)
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func fileInTarGz(t *testing.T, archive []byte, name string) []byte {
	t.Helper()
	gz, err := gzip.NewReader(bytes.NewReader(archive))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	for {
		header, err := tr.Next()
		if err != nil {
			t.Fatalf("%s is not in the archive: %v", name, err)
		}
		if header.Name == name {
			content, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			return content
		}
	}
}
