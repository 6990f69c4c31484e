package install_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/surge-operator/surge-operator/test/manifests"
)

// buildInstaller runs hack/build-installer.sh, the script behind
// `make build-installer`, and reads the single file it writes.
func buildInstaller(t *testing.T, image string) []*unstructured.Unstructured {
	t.Helper()
	kubectl, err := kubectlPath()
	if err != nil {
		t.Fatal(err)
	}
	output := filepath.Join(t.TempDir(), "dist", "install.yaml")
	var stderr bytes.Buffer
	cmd := exec.Command(filepath.Join(repoRoot, "hack", "build-installer.sh"), image, output)
	cmd.Env = append(os.Environ(), "KUBECTL="+kubectl)
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("hack/build-installer.sh %s: %v\n%s", image, err, stderr.String())
	}
	return manifests.ReadFile(t, output)
}

func managerImage(t *testing.T, objects []*unstructured.Unstructured) string {
	t.Helper()
	for _, obj := range objects {
		if obj.GetKind() != "Deployment" || obj.GetName() != deploymentName {
			continue
		}
		containers, _, _ := unstructured.NestedSlice(obj.Object, "spec", "template", "spec", "containers")
		for _, c := range containers {
			container, _ := c.(map[string]any)
			if container["name"] == "manager" {
				image, _ := container["image"].(string)
				return image
			}
		}
	}
	t.Fatalf("the installer has no Deployment %s with a manager container", deploymentName)
	return ""
}

// TestInstallerIsConfigDefaultWithTheImage: the single-file installer holds
// exactly what `kubectl apply -k config/default` installs, except for the
// manager's image, which is the one asked for, tag or digest, even behind a
// registry with a port.
func TestInstallerIsConfigDefaultWithTheImage(t *testing.T) {
	for _, image := range []string{
		"registry.example.com:5000/surge/operator:v1.2.3",
		"registry.example.com/surge/operator@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
	} {
		t.Run(image, func(t *testing.T) {
			bundle := buildInstaller(t, image)
			if got := managerImage(t, bundle); got != image {
				t.Errorf("the manager's image is %q, want %q", got, image)
			}
			if len(bundle) != len(installed) {
				t.Errorf("the installer holds %d objects, config/default %d", len(bundle), len(installed))
			}
			for i, obj := range bundle {
				if i >= len(installed) {
					break
				}
				want := installed[i].DeepCopy()
				if want.GetKind() == "Deployment" {
					want = setManagerImage(t, want, image)
				}
				if !reflect.DeepEqual(obj.Object, want.Object) {
					t.Errorf("object %d of the installer is %s, which differs from config/default's %s", i, manifests.Describe(obj), manifests.Describe(want))
				}
			}
		})
	}
}

func setManagerImage(t *testing.T, deployment *unstructured.Unstructured, image string) *unstructured.Unstructured {
	t.Helper()
	containers, _, _ := unstructured.NestedSlice(deployment.Object, "spec", "template", "spec", "containers")
	for _, c := range containers {
		if container, _ := c.(map[string]any); container["name"] == "manager" {
			container["image"] = image
		}
	}
	if err := unstructured.SetNestedSlice(deployment.Object, containers, "spec", "template", "spec", "containers"); err != nil {
		t.Fatal(err)
	}
	return deployment
}

// TestInstallerApplies applies the installer the way
// `kubectl apply --server-side -f dist/install.yaml` would: its CRD and
// Namespace for real, so that the namespaced objects can resolve, then every
// object as a dry run, expecting no error and no warning.
func TestInstallerApplies(t *testing.T) {
	ctx := context.Background()
	bundle := buildInstaller(t, "registry.example.com/surge/operator:v1.2.3")
	for _, obj := range bundle {
		switch obj.GetKind() {
		case "CustomResourceDefinition", "Namespace":
			if err := apply(ctx, obj); err != nil {
				t.Fatalf("installing %s: %v", manifests.Describe(obj), err)
			}
		}
	}
	for _, obj := range bundle {
		if obj.GetKind() != "CustomResourceDefinition" {
			continue
		}
		if err := manifests.WaitEstablished(ctx, k8s, obj.GetName()); err != nil {
			t.Fatalf("CRD %s is not established: %v", obj.GetName(), err)
		}
	}
	expectCleanDryRun(ctx, t, bundle)
}
