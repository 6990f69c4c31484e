// Package uninstall_test removes the operator as docs/install.md says,
// running the commands of its "Uninstalling" section in their order against
// a real API server (envtest) with the operator running and resources of
// all three kinds in use, and checks that nothing is left behind: no CRD,
// no resource held by a finalizer, no user in Surge that should have gone.
package uninstall_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	surgev1alpha1 "github.com/surge-operator/surge-operator/api/v1alpha1"
	"github.com/surge-operator/surge-operator/internal/operator"
	"github.com/surge-operator/surge-operator/pkg/surgetest"
	"github.com/surge-operator/surge-operator/test/docs"
)

const (
	// repoRoot is relative to this package's directory, where go test runs.
	repoRoot = "../.."

	operatorNamespace = "surge-operator"
	tenantNamespace   = "team-a"
	operatorAccount   = "acct_01j9a43avnfqzbjfch6pyuninst"
	teamAccount       = "acct_01j9a43avnfqzbjfch6pyteam01"
	customerAccount   = "acct_01j9a43avnfqzbjfch6pycust01"
	teamKey           = "sk_live_team_key_uninstall_0123"
	customersKey      = "sk_live_customers_key_uninstall"

	// stepTimeout bounds each documented command, as a person would wait
	// for kubectl before looking for what holds it.
	stepTimeout = time.Minute
)

var installDoc = filepath.Join(repoRoot, "docs", "install.md")

// TestUninstallAsDocumented: with the operator running and SurgeEndUsers
// served by the operator's own key, a SurgeProject and a
// ClusterSurgeProject (and one ClusterSurgeProject nobody uses), each
// documented command finishes, and afterwards the three CRDs are gone, the
// users whose resources said Delete are gone from Surge and the orphaned
// one is kept.
func TestUninstallAsDocumented(t *testing.T) {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		t.Skip("KUBEBUILDER_ASSETS is not set: run through make test, which builds envtest's binaries")
	}
	steps := uninstallSteps(t)
	ctx := context.Background()
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(repoRoot, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("starting envtest: %v", err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	scheme := operator.Scheme()
	if err := apiextensionsv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	k8s, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}

	surge := surgetest.NewEmulator(t)
	surge.AddAccount(operatorAccount)
	surge.AddProject("team", teamKey, teamAccount)
	surge.AddProject("customers", customersKey, customerAccount)
	installed := surgetest.StartOperator(t, cfg, surge)
	world := &cluster{t: t, ctx: ctx, k8s: k8s}
	world.create(
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: operatorNamespace}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: tenantNamespace}},
		apiKeySecret(tenantNamespace, "team-key", teamKey),
		apiKeySecret(operatorNamespace, "customers-key", customersKey),
		&surgev1alpha1.SurgeProject{
			ObjectMeta: metav1.ObjectMeta{Namespace: tenantNamespace, Name: "team"},
			Spec:       surgev1alpha1.SurgeProjectSpec{APIKeySecretRef: surgev1alpha1.SecretKeyReference{Name: "team-key"}},
		},
		clusterProject("customers"),
		// Unused, it still carries the operator's finalizer.
		clusterProject("spare"),
		endUser("ada", "", operatorAccount, surgev1alpha1.DeletionPolicyDelete),
		endUser("grace", surgev1alpha1.KindSurgeProject+"/team", teamAccount, surgev1alpha1.DeletionPolicyDelete),
		endUser("hedy", surgev1alpha1.KindClusterSurgeProject+"/customers", customerAccount, surgev1alpha1.DeletionPolicyDelete),
		endUser("kept", surgev1alpha1.KindClusterSurgeProject+"/customers", customerAccount, surgev1alpha1.DeletionPolicyOrphan),
	)
	world.waitForReadyEndUsers(4)
	world.waitForProjectFinalizers(3)
	kept := world.userIDOf("kept")

	for i, step := range steps {
		t.Logf("step %d: %s", i+1, step)
		world.run(step, installed)
	}

	crds := &apiextensionsv1.CustomResourceDefinitionList{}
	if err := k8s.List(ctx, crds); err != nil {
		t.Fatal(err)
	}
	for _, crd := range crds.Items {
		if crd.Spec.Group == surgev1alpha1.GroupVersion.Group {
			t.Errorf("CRD %s is still there after the documented steps: %s", crd.Name, world.describeStuck(crd))
		}
	}
	remaining := map[string]bool{}
	for _, user := range surge.AllUsers() {
		remaining[user.ID] = true
	}
	if !remaining[kept] || len(remaining) != 1 {
		t.Errorf("Surge holds users %v after the uninstall, want only %s, whose resource said Orphan", remaining, kept)
	}
}

// uninstallSteps returns the commands of the shell blocks of the
// "Uninstalling" section of docs/install.md, in order, without comments.
func uninstallSteps(t *testing.T) []string {
	t.Helper()
	var steps []string
	for _, block := range docs.FencedBlocks(t, installDoc, "Uninstalling", "sh") {
		for line := range strings.Lines(block) {
			command, _, _ := strings.Cut(line, "#")
			if command = strings.TrimSpace(command); command != "" {
				steps = append(steps, command)
			}
		}
	}
	if len(steps) == 0 {
		t.Fatalf("the Uninstalling section of %s has no command", installDoc)
	}
	return steps
}

// cluster runs the documented commands against the test's API server.
type cluster struct {
	t   *testing.T
	ctx context.Context
	k8s client.Client
}

// run carries out one documented command as kubectl or helm would, and
// waits as long as they would for it to finish. installed is the running
// operator, which helm uninstall stops.
func (c *cluster) run(step string, installed *surgetest.Operator) {
	c.t.Helper()
	args := strings.Fields(step)
	switch {
	case len(args) >= 2 && args[0] == "helm" && args[1] == "uninstall":
		installed.Stop()
	case len(args) >= 3 && args[0] == "kubectl" && args[1] == "delete" && (args[2] == "crd" || args[2] == "crds"):
		c.deleteCRDs(step, args[3:])
	case len(args) >= 3 && args[0] == "kubectl" && args[1] == "delete":
		c.deleteAll(step, args[2], args[3:])
	default:
		c.t.Fatalf("%s's uninstall steps run %q, which this test cannot carry out: teach it", installDoc, step)
	}
}

// deleteAll deletes every object of a resource, as `kubectl delete
// <resource> --all` does, and waits until they are gone, as its default
// --wait does.
func (c *cluster) deleteAll(step, resource string, flags []string) {
	c.t.Helper()
	gvk, err := c.k8s.RESTMapper().KindFor(schema.GroupVersionResource{Resource: resource})
	if err != nil {
		c.t.Fatalf("%q: no resource %s: %v", step, resource, err)
	}
	mapping, err := c.k8s.RESTMapper().RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		c.t.Fatal(err)
	}
	if !slices.Contains(flags, "--all") {
		c.t.Fatalf("%q names no object and lacks --all", step)
	}
	allNamespaces := slices.Contains(flags, "--all-namespaces") || slices.Contains(flags, "-A")
	if mapping.Scope.Name() == apimeta.RESTScopeNameNamespace && !allNamespaces {
		c.t.Fatalf("%q deletes %s in the current namespace only: it needs --all-namespaces", step, resource)
	}
	for _, obj := range c.list(gvk) {
		if err := c.k8s.Delete(c.ctx, &obj); client.IgnoreNotFound(err) != nil {
			c.t.Fatalf("%q: deleting %s: %v", step, obj.GetName(), err)
		}
	}
	var left []unstructured.Unstructured
	err = wait.PollUntilContextTimeout(c.ctx, 200*time.Millisecond, stepTimeout, true, func(context.Context) (bool, error) {
		left = c.list(gvk)
		return len(left) == 0, nil
	})
	if err != nil {
		c.t.Fatalf("%q did not finish within %s: %s", step, stepTimeout, describe(left))
	}
}

// deleteCRDs deletes the named CRDs and waits until the API server has
// removed them, which it does only once every resource in them is gone.
func (c *cluster) deleteCRDs(step string, names []string) {
	c.t.Helper()
	if len(names) == 0 {
		c.t.Fatalf("%q names no CRD", step)
	}
	for _, name := range names {
		crd := &apiextensionsv1.CustomResourceDefinition{ObjectMeta: metav1.ObjectMeta{Name: name}}
		if err := c.k8s.Delete(c.ctx, crd); err != nil {
			c.t.Fatalf("%q: deleting CRD %s: %v", step, name, err)
		}
	}
	for _, name := range names {
		crd := &apiextensionsv1.CustomResourceDefinition{}
		err := wait.PollUntilContextTimeout(c.ctx, 200*time.Millisecond, stepTimeout, true, func(ctx context.Context) (bool, error) {
			err := c.k8s.Get(ctx, client.ObjectKey{Name: name}, crd)
			return apierrors.IsNotFound(err), client.IgnoreNotFound(err)
		})
		if err != nil {
			c.t.Fatalf("%q did not finish within %s: CRD %s is still there: %s", step, stepTimeout, name, c.describeStuck(*crd))
		}
	}
}

// describeStuck says what keeps a CRD: the resources left in it and their
// finalizers.
func (c *cluster) describeStuck(crd apiextensionsv1.CustomResourceDefinition) string {
	for _, version := range crd.Spec.Versions {
		if version.Storage {
			left := c.list(schema.GroupVersionKind{Group: crd.Spec.Group, Version: version.Name, Kind: crd.Spec.Names.Kind})
			return describe(left)
		}
	}
	return "no storage version"
}

func (c *cluster) list(gvk schema.GroupVersionKind) []unstructured.Unstructured {
	c.t.Helper()
	list := &unstructured.UnstructuredList{}
	list.SetGroupVersionKind(gvk.GroupVersion().WithKind(gvk.Kind + "List"))
	if err := c.k8s.List(c.ctx, list); err != nil {
		if apimeta.IsNoMatchError(err) || apierrors.IsNotFound(err) {
			return nil
		}
		c.t.Fatalf("listing %s: %v", gvk.Kind, err)
	}
	return list.Items
}

func describe(objs []unstructured.Unstructured) string {
	if len(objs) == 0 {
		return "nothing left in it"
	}
	var parts []string
	for _, obj := range objs {
		name := obj.GetName()
		if obj.GetNamespace() != "" {
			name = obj.GetNamespace() + "/" + name
		}
		parts = append(parts, fmt.Sprintf("%s %s held by finalizers %v", obj.GetKind(), name, obj.GetFinalizers()))
	}
	return strings.Join(parts, "; ")
}

func (c *cluster) create(objs ...client.Object) {
	c.t.Helper()
	for _, obj := range objs {
		if err := c.k8s.Create(c.ctx, obj); err != nil {
			c.t.Fatalf("creating %T %s: %v", obj, obj.GetName(), err)
		}
	}
}

func (c *cluster) waitForReadyEndUsers(n int) {
	c.t.Helper()
	list := &surgev1alpha1.SurgeEndUserList{}
	err := wait.PollUntilContextTimeout(c.ctx, 200*time.Millisecond, stepTimeout, true, func(ctx context.Context) (bool, error) {
		if err := c.k8s.List(ctx, list); err != nil {
			return false, err
		}
		ready := 0
		for _, obj := range list.Items {
			if apimeta.IsStatusConditionTrue(obj.Status.Conditions, "Ready") {
				ready++
			}
		}
		return ready == n, nil
	})
	if err != nil {
		c.t.Fatalf("waiting for %d SurgeEndUsers to be Ready: %v; %+v", n, err, list.Items)
	}
}

// waitForProjectFinalizers waits until the operator has put its finalizer
// on n projects of either kind: the uninstall must release them.
func (c *cluster) waitForProjectFinalizers(n int) {
	c.t.Helper()
	err := wait.PollUntilContextTimeout(c.ctx, 200*time.Millisecond, stepTimeout, true, func(ctx context.Context) (bool, error) {
		held := 0
		for _, kind := range []string{surgev1alpha1.KindSurgeProject, surgev1alpha1.KindClusterSurgeProject} {
			for _, obj := range c.list(surgev1alpha1.GroupVersion.WithKind(kind)) {
				if slices.Contains(obj.GetFinalizers(), "surge.app/project-in-use") {
					held++
				}
			}
		}
		return held == n, nil
	})
	if err != nil {
		c.t.Fatalf("waiting for the operator's finalizer on %d projects: %v", n, err)
	}
}

func (c *cluster) userIDOf(name string) string {
	c.t.Helper()
	obj := &surgev1alpha1.SurgeEndUser{}
	if err := c.k8s.Get(c.ctx, client.ObjectKey{Namespace: tenantNamespace, Name: name}, obj); err != nil {
		c.t.Fatal(err)
	}
	return obj.Status.UserID
}

func apiKeySecret(namespace, name, key string) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Data:       map[string][]byte{surgev1alpha1.DefaultAPIKeySecretKey: []byte(key)},
	}
}

func clusterProject(name string) *surgev1alpha1.ClusterSurgeProject {
	return &surgev1alpha1.ClusterSurgeProject{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: surgev1alpha1.ClusterSurgeProjectSpec{APIKeySecretRef: surgev1alpha1.NamespacedSecretKeyReference{
			Namespace: operatorNamespace, SecretKeyReference: surgev1alpha1.SecretKeyReference{Name: "customers-key"}}},
	}
}

// endUser is a SurgeEndUser of the tenant's namespace with a token Secret;
// project is "Kind/name", or empty for the operator's own key.
func endUser(name, project, account string, policy surgev1alpha1.DeletionPolicy) *surgev1alpha1.SurgeEndUser {
	obj := &surgev1alpha1.SurgeEndUser{
		ObjectMeta: metav1.ObjectMeta{Namespace: tenantNamespace, Name: name},
		Spec: surgev1alpha1.SurgeEndUserSpec{
			AccountID:      account,
			FirstName:      name,
			DeletionPolicy: policy,
			TokenSecret:    &surgev1alpha1.TokenSecretSpec{Name: name + "-token"},
		},
	}
	if kind, projectName, ok := strings.Cut(project, "/"); ok {
		obj.Spec.ProjectRef = &surgev1alpha1.ProjectReference{Kind: kind, Name: projectName}
	}
	return obj
}
