package helm_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"sigs.k8s.io/yaml"

	"github.com/surge-operator/surge-operator/test/manifests"
)

// packageChart runs the program behind make chart-package.
func packageChart(t *testing.T, args ...string) (string, error) {
	t.Helper()
	chart, err := filepath.Abs(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", append([]string{"run", "./package-chart", "-helm", helmBinary, "-chart", chart}, args...)...)
	cmd.Dir = filepath.Join(repoRoot, "tools")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	return out.String(), err
}

// imageLayout writes an OCI layout as make image does: one image index,
// tagged.
func imageLayout(t *testing.T, tag string) (dir, digest string) {
	t.Helper()
	img, err := random.Image(256, 1)
	if err != nil {
		t.Fatal(err)
	}
	index := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex), mutate.IndexAddendum{Add: img})
	dir = t.TempDir()
	path, err := layout.Write(dir, mutate.IndexMediaType(empty.Index, types.OCIImageIndex))
	if err != nil {
		t.Fatal(err)
	}
	if err := path.AppendIndex(index, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": tag})); err != nil {
		t.Fatal(err)
	}
	hash, err := index.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return dir, hash.String()
}

// TestPackagedChartInstallsTheImageMakeImageBuilt: the chart make
// chart-package writes names the image of the layout, by repository, tag and
// digest, with the version given, and keeps the comments of its values.
func TestPackagedChartInstallsTheImageMakeImageBuilt(t *testing.T) {
	layoutDir, digest := imageLayout(t, "v9.8.7-rc.1")
	out := t.TempDir()
	chartBefore, err := os.ReadFile(filepath.Join(chartDir, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}

	report, err := packageChart(t, "-image-dir", layoutDir, "-repository", "registry.example.com/platform/surge-operator", "-version", "v9.8.7-rc.1", "-out", out)
	if err != nil {
		t.Fatalf("package-chart: %v\n%s", err, report)
	}
	packaged := filepath.Join(out, "surge-operator-9.8.7-rc.1.tgz")
	if !strings.Contains(report, "wrote "+packaged+", installing registry.example.com/platform/surge-operator:v9.8.7-rc.1@"+digest) ||
		!strings.Contains(report, "crane push "+layoutDir+" registry.example.com/platform/surge-operator:v9.8.7-rc.1\n") {
		t.Errorf("package-chart said:\n%s", report)
	}

	var chart struct {
		Version    string `json:"version"`
		AppVersion string `json:"appVersion"`
	}
	if err := yaml.Unmarshal([]byte(mustHelm(t, "show", "chart", packaged)), &chart); err != nil {
		t.Fatal(err)
	}
	if chart.Version != "9.8.7-rc.1" || chart.AppVersion != "v9.8.7-rc.1" {
		t.Errorf("the packaged chart is version %q, appVersion %q; want 9.8.7-rc.1 and v9.8.7-rc.1", chart.Version, chart.AppVersion)
	}
	values := mustHelm(t, "show", "values", packaged)
	for _, want := range []string{
		"  repository: \"registry.example.com/platform/surge-operator\"\n",
		"  tag: \"v9.8.7-rc.1\"\n",
		"  digest: \"" + digest + "\"\n",
		"  # -- A digest (sha256:…) pins the image; it wins over the tag.\n",
	} {
		if !strings.Contains(values, want) {
			t.Errorf("the packaged values lack %q:\n%s", want, values)
		}
	}
	if out := mustHelm(t, "lint", "--strict", packaged); !strings.Contains(out, "0 chart(s) failed") {
		t.Errorf("helm lint of the packaged chart:\n%s", out)
	}
	objects, err := manifests.Decode(strings.NewReader(mustHelm(t, "template", "surge-operator", packaged, "--namespace", "surge-operator")))
	if err != nil {
		t.Fatal(err)
	}
	if _, container := deploymentOf(t, objects); container.Image != "registry.example.com/platform/surge-operator@"+digest {
		t.Errorf("the packaged chart runs %s, want the layout's index by digest", container.Image)
	}

	chartAfter, err := os.ReadFile(filepath.Join(chartDir, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(chartBefore, chartAfter) {
		t.Error("packaging changed the chart in the repository")
	}
}

func TestPackageChartRefusals(t *testing.T) {
	layoutDir, _ := imageLayout(t, "v0.1.0")
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"no layout", []string{"-image-dir", t.TempDir(), "-repository", "r.example.com/x", "-version", "v0.1.0"}, "run make image first"},
		{"a tag in the repository", []string{"-image-dir", layoutDir, "-repository", "r.example.com/x:v1", "-version", "v0.1.0"}, "without tag or digest"},
		{"a version Helm refuses", []string{"-image-dir", layoutDir, "-repository", "r.example.com/x", "-version", "0.1"}, "a semantic version with a leading v"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, err := packageChart(t, append(tc.args, "-out", t.TempDir())...)
			if err == nil || !strings.Contains(out, tc.want) {
				t.Errorf("package-chart %v: %v\n%s\nwant a refusal saying %q", tc.args, err, out, tc.want)
			}
		})
	}
}

// TestReleaseMetadataAgrees: the chart's version is its appVersion, which
// make uses as VERSION, and CHANGELOG.md has a section for it, or the
// Unreleased one it will become.
func TestReleaseMetadataAgrees(t *testing.T) {
	var chart struct {
		Version    string `json:"version"`
		AppVersion string `json:"appVersion"`
	}
	raw, err := os.ReadFile(filepath.Join(chartDir, "Chart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(raw, &chart); err != nil {
		t.Fatal(err)
	}
	if "v"+chart.Version != chart.AppVersion {
		t.Errorf("Chart.yaml has version %q and appVersion %q; want appVersion v<version>", chart.Version, chart.AppVersion)
	}
	changelog, err := os.ReadFile(filepath.Join(repoRoot, "CHANGELOG.md"))
	if err != nil {
		t.Fatal(err)
	}
	section := regexp.MustCompile(`(?m)^## \[(Unreleased|` + regexp.QuoteMeta(chart.Version) + `)\]`)
	if !section.Match(changelog) {
		t.Errorf("CHANGELOG.md has no section [Unreleased] or [%s]", chart.Version)
	}
	// make -n prints what make image would run, with the version it gives.
	cmd := exec.Command("make", "-n", "image")
	cmd.Dir = repoRoot
	// A VERSION or IMAGE_TAG of the environment would override the defaults.
	for _, variable := range os.Environ() {
		if !strings.HasPrefix(variable, "VERSION=") && !strings.HasPrefix(variable, "IMAGE_TAG=") {
			cmd.Env = append(cmd.Env, variable)
		}
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make -n image: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "-tag "+chart.AppVersion+" -version "+chart.AppVersion+" ") {
		t.Errorf("make image does not build version %s, the chart's appVersion:\n%s", chart.AppVersion, out)
	}
}
