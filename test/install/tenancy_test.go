package install_test

import (
	"context"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/surge-operator/surge-operator/test/docs"
	"github.com/surge-operator/surge-operator/test/manifests"
)

var tenancyDoc = filepath.Join(repoRoot, "docs", "tenancy.md")

// TestTenantRBACAsDocumented grants a tenant what docs/tenancy.md says to
// grant, and asks the API server's authorizer what the tenant may then do:
// the built-in edit role bound by a RoleBinding in the tenant's namespace,
// then the document's ClusterRole and ClusterRoleBinding for the one
// ClusterSurgeProject it uses.
func TestTenantRBACAsDocumented(t *testing.T) {
	ctx := context.Background()
	for _, name := range []string{"customer-acme", "customer-globex"} {
		err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	// envtest runs no controller manager, so the built-in edit role stays
	// empty: this role holds what its aggregation would put in it from the
	// installation (edit takes view's rules too).
	edit := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "surge-tenancy-test-edit"}}
	for _, r := range rolesOf(t, installed, "") {
		if r.kind == "ClusterRole" && (r.labels["rbac.authorization.k8s.io/aggregate-to-edit"] == "true" || r.labels["rbac.authorization.k8s.io/aggregate-to-view"] == "true") {
			edit.Rules = append(edit.Rules, r.rules...)
		}
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: "customer-acme", Name: "acme-developers"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: edit.Name},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "Group", Name: "acme-developers"}},
	}
	for _, obj := range []client.Object{edit, binding} {
		if err := k8s.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
	}

	tenant := tenantAsker{t: t, user: "alice", groups: []string{"acme-developers", "system:authenticated"}}
	tenant.expect(ctx, true,
		authorizationv1.ResourceAttributes{Namespace: "customer-acme", Group: "surge.app", Resource: "surgeendusers", Verb: "create"},
		authorizationv1.ResourceAttributes{Namespace: "customer-acme", Group: "surge.app", Resource: "surgeendusers", Verb: "delete"},
		authorizationv1.ResourceAttributes{Namespace: "customer-acme", Group: "surge.app", Resource: "surgeprojects", Verb: "list"},
	)
	tenant.expect(ctx, false,
		authorizationv1.ResourceAttributes{Namespace: "customer-globex", Group: "surge.app", Resource: "surgeendusers", Verb: "create"},
		authorizationv1.ResourceAttributes{Namespace: "customer-acme", Group: "surge.app", Resource: "surgeendusers", Subresource: "status", Verb: "patch"},
		authorizationv1.ResourceAttributes{Namespace: "customer-acme", Group: "surge.app", Resource: "surgeprojects", Verb: "create"},
		// A RoleBinding does not reach cluster-scoped resources, whatever
		// its role lists.
		authorizationv1.ResourceAttributes{Group: "surge.app", Resource: "clustersurgeprojects", Name: "acme", Verb: "get"},
		authorizationv1.ResourceAttributes{Group: "surge.app", Resource: "clustersurgeprojects", Verb: "list"},
	)

	documented := documentedTenantRBAC(t)
	for _, obj := range documented {
		if err := apply(ctx, obj); err != nil {
			t.Fatalf("applying %s from %s: %v", manifests.Describe(obj), tenancyDoc, err)
		}
	}
	tenant.expect(ctx, true,
		authorizationv1.ResourceAttributes{Group: "surge.app", Resource: "clustersurgeprojects", Name: "acme", Verb: "get"},
	)
	tenant.expect(ctx, false,
		authorizationv1.ResourceAttributes{Group: "surge.app", Resource: "clustersurgeprojects", Name: "globex", Verb: "get"},
		authorizationv1.ResourceAttributes{Group: "surge.app", Resource: "clustersurgeprojects", Verb: "list"},
		authorizationv1.ResourceAttributes{Group: "surge.app", Resource: "clustersurgeprojects", Name: "acme", Verb: "update"},
	)
}

// documentedTenantRBAC returns the objects of the YAML blocks in the
// section of docs/tenancy.md on the RBAC to grant tenants.
func documentedTenantRBAC(t *testing.T) []*unstructured.Unstructured {
	t.Helper()
	var yamlText strings.Builder
	for _, block := range docs.FencedBlocks(t, tenancyDoc, "The RBAC to grant tenants", "yaml") {
		yamlText.WriteString("---\n" + block)
	}
	objects, err := manifests.Decode(strings.NewReader(yamlText.String()))
	if err != nil {
		t.Fatalf("decoding the RBAC of %s: %v", tenancyDoc, err)
	}
	kinds := map[string]bool{}
	for _, obj := range objects {
		kinds[obj.GetKind()] = true
	}
	if !kinds["ClusterRole"] || !kinds["ClusterRoleBinding"] {
		t.Fatalf("%s's RBAC section grants ClusterSurgeProjects with %v, want a ClusterRole and a ClusterRoleBinding", tenancyDoc, slices.Sorted(maps.Keys(kinds)))
	}
	return objects
}

// tenantAsker asks the authorizer on behalf of one tenant.
type tenantAsker struct {
	t      *testing.T
	user   string
	groups []string
}

// expect checks that each request is allowed (or denied), waiting a little
// for a grant just made to reach the authorizer, which reads RBAC through
// informers.
func (a tenantAsker) expect(ctx context.Context, allowed bool, requests ...authorizationv1.ResourceAttributes) {
	a.t.Helper()
	for _, attrs := range requests {
		var got bool
		var reason string
		err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 5*time.Second, true, func(ctx context.Context) (bool, error) {
			var err error
			got, reason, err = authorized(ctx, a.user, a.groups, attrs)
			return got == allowed, err
		})
		if err != nil {
			what := attributes(attrs)
			if attrs.Name != "" {
				what += " named " + attrs.Name
			}
			a.t.Errorf("a tenant of customer-acme may %s: %v, want %v (%s)", what, got, allowed, reason)
		}
	}
}
