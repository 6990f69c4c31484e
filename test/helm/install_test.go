package helm_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/surge-operator/surge-operator/test/podsecurity"

	"github.com/surge-operator/surge-operator/test/manifests"
)

const (
	release     = "surge-operator"
	endUsersCRD = "surgeendusers.surge.app"
)

// addedShortNames are the chart's three CRDs, and the short name that the
// upgrade's changed copy of each adds.
var addedShortNames = map[string]string{
	endUsersCRD:                      "surgeuser",
	"surgeprojects.surge.app":        "surgeproj",
	"clustersurgeprojects.surge.app": "csurgeproj",
}

// TestInstallUpgradeUninstall walks a release through its life as a user
// would: helm install, helm upgrade with changed values and all three CRDs
// changed, helm uninstall, which keeps the CRDs and the resources in them,
// and helm install again over the kept CRDs.
func TestInstallUpgradeUninstall(t *testing.T) {
	ctx := context.Background()
	namespace := restrictedNamespace(ctx, t, "surge-operator")
	chart := copyChart(t)

	mustHelm(t, "install", release, chart, "--namespace", namespace, "--set", "apiKey.existingSecret=surge-api-key")

	if err := manifests.WaitEstablished(ctx, k8s, endUsersCRD); err != nil {
		t.Fatalf("CRD %s is not established after helm install: %v", endUsersCRD, err)
	}
	deployment := &appsv1.Deployment{}
	mustGet(ctx, t, namespace, release, deployment)
	if deployment.Spec.Template.Spec.ServiceAccountName != release {
		t.Errorf("the manager runs as ServiceAccount %q", deployment.Spec.Template.Spec.ServiceAccountName)
	}
	mustGet(ctx, t, namespace, release, &corev1.ServiceAccount{})
	mustGet(ctx, t, namespace, release+"-metrics", &corev1.Service{})
	mustGet(ctx, t, namespace, release+"-leader-election", &rbacv1.Role{})
	binding := &rbacv1.ClusterRoleBinding{}
	mustGet(ctx, t, "", release+"-manager", binding)
	if len(binding.Subjects) != 1 || binding.Subjects[0].Name != release || binding.Subjects[0].Namespace != namespace {
		t.Errorf("the manager's ClusterRoleBinding binds %+v, want the release's ServiceAccount", binding.Subjects)
	}
	mustGet(ctx, t, "", binding.RoleRef.Name, &rbacv1.ClusterRole{})
	podsecurity.ExpectRestricted(ctx, t, k8s, namespace, deployment.Spec.Template.Spec)

	endUser := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(`
apiVersion: surge.app/v1alpha1
kind: SurgeEndUser
metadata: {name: ada-lovelace, namespace: surge-operator}
spec: {accountID: acct_01j9a43avnfqzbjfch6pygv1td, firstName: Ada}
`), &endUser.Object); err != nil {
		t.Fatal(err)
	}
	if err := k8s.Create(ctx, endUser); err != nil {
		t.Fatalf("creating a SurgeEndUser after helm install: %v", err)
	}

	for name := range addedShortNames {
		changeCRD(t, chart, name)
	}
	mustHelm(t, "upgrade", release, chart, "--namespace", namespace,
		"--set", "apiKey.existingSecret=surge-api-key",
		"--set", "replicaCount=2", "--set", "extraArgs[0]=--resync-interval=5m", "--set", "podDisruptionBudget.enabled=true")
	mustGet(ctx, t, namespace, release, deployment)
	if deployment.Spec.Replicas == nil || *deployment.Spec.Replicas != 2 {
		t.Errorf("after helm upgrade --set replicaCount=2 the Deployment has %v replicas", deployment.Spec.Replicas)
	}
	if !slices.Contains(deployment.Spec.Template.Spec.Containers[0].Args, "--resync-interval=5m") {
		t.Errorf("after helm upgrade the manager's args are %v, want --resync-interval=5m among them", deployment.Spec.Template.Spec.Containers[0].Args)
	}
	mustGet(ctx, t, namespace, release, &policyv1.PodDisruptionBudget{})
	for name, added := range addedShortNames {
		crd := liveCRD(ctx, t, name)
		if shortNames, _, _ := unstructured.NestedStringSlice(crd.Object, "spec", "names", "shortNames"); !slices.Contains(shortNames, added) {
			t.Errorf("helm upgrade did not upgrade CRD %s: its short names are %v, want %s among them", name, shortNames, added)
		}
	}

	mustHelm(t, "uninstall", release, "--namespace", namespace)
	for _, gone := range []struct {
		key client.ObjectKey
		obj client.Object
	}{
		{client.ObjectKey{Namespace: namespace, Name: release}, &appsv1.Deployment{}},
		{client.ObjectKey{Namespace: namespace, Name: release}, &corev1.ServiceAccount{}},
		{client.ObjectKey{Namespace: namespace, Name: release + "-leader-election"}, &rbacv1.Role{}},
		{client.ObjectKey{Name: release + "-manager"}, &rbacv1.ClusterRole{}},
	} {
		if err := k8s.Get(ctx, gone.key, gone.obj); !apierrors.IsNotFound(err) {
			t.Errorf("%T %s after helm uninstall: got %v, want it gone", gone.obj, gone.key.Name, err)
		}
	}
	for name := range addedShortNames {
		liveCRD(ctx, t, name)
	}
	if err := k8s.Get(ctx, client.ObjectKeyFromObject(endUser), endUser.DeepCopy()); err != nil {
		t.Errorf("SurgeEndUser %s is gone after helm uninstall: %v", endUser.GetName(), err)
	}

	// The kept CRDs still carry the release's ownership, so installing the
	// same release again takes them over.
	mustHelm(t, "install", release, chart, "--namespace", namespace)
	mustGet(ctx, t, namespace, release, &appsv1.Deployment{})
}

func mustGet(ctx context.Context, t *testing.T, namespace, name string, obj client.Object) {
	t.Helper()
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, obj); err != nil {
		t.Fatalf("reading %T %s: %v", obj, name, err)
	}
}

func liveCRD(ctx context.Context, t *testing.T, name string) *unstructured.Unstructured {
	t.Helper()
	crd := &unstructured.Unstructured{}
	crd.SetAPIVersion("apiextensions.k8s.io/v1")
	crd.SetKind("CustomResourceDefinition")
	mustGet(ctx, t, "", name, crd)
	return crd
}

func copyChart(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "surge-operator")
	if err := os.CopyFS(dir, os.DirFS(chartDir)); err != nil {
		t.Fatal(err)
	}
	return dir
}

// changeCRD replaces the template of the named CRD in the chart copy with
// the CRD as it renders plus one more short name: a new chart version whose
// CRD changed.
func changeCRD(t *testing.T, chart, name string) {
	t.Helper()
	plural, group, _ := strings.Cut(name, ".")
	template := filepath.Join("templates", "crds", group+"_"+plural+".yaml")
	rendered := mustHelm(t, "template", release, chart, "--namespace", "surge-operator", "--show-only", template)
	crd := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(rendered), &crd.Object); err != nil {
		t.Fatal(err)
	}
	shortNames, _, _ := unstructured.NestedStringSlice(crd.Object, "spec", "names", "shortNames")
	if err := unstructured.SetNestedStringSlice(crd.Object, append(shortNames, addedShortNames[name]), "spec", "names", "shortNames"); err != nil {
		t.Fatal(err)
	}
	changed, err := yaml.Marshal(crd.Object)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(chart, template), changed, 0o644); err != nil {
		t.Fatal(err)
	}
}
