package install_test

import (
	"context"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/surge-operator/surge-operator/test/manifests"
)

// role is a Role or ClusterRole.
type role struct {
	kind, name string
	labels     map[string]string
	rules      []rbacv1.PolicyRule
}

func (r role) String() string { return r.kind + " " + r.name }

func rolesOf(t *testing.T, objects []*unstructured.Unstructured, prefix string) map[string]role {
	t.Helper()
	roles := map[string]role{}
	for _, obj := range objects {
		if obj.GetKind() != "Role" && obj.GetKind() != "ClusterRole" {
			continue
		}
		var rules struct {
			Rules []rbacv1.PolicyRule `json:"rules"`
		}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, &rules); err != nil {
			t.Fatalf("decoding %s: %v", manifests.Describe(obj), err)
		}
		r := role{kind: obj.GetKind(), name: prefix + obj.GetName(), labels: obj.GetLabels(), rules: rules.Rules}
		roles[r.String()] = r
	}
	return roles
}

// TestNoWildcardPermissions: every permission the installation grants is
// spelled out, so that a new resource or verb is never granted by accident.
func TestNoWildcardPermissions(t *testing.T) {
	for _, r := range rolesOf(t, installed, "") {
		for _, rule := range r.rules {
			for field, values := range map[string][]string{
				"apiGroups": rule.APIGroups, "resources": rule.Resources, "verbs": rule.Verbs, "nonResourceURLs": rule.NonResourceURLs,
			} {
				for _, v := range values {
					if strings.Contains(v, "*") {
						t.Errorf("%s grants %s %q", r, field, v)
					}
				}
			}
		}
	}
}

// TestOnlyTheGeneratedRoleReachesSecrets: the installation ships the
// manager's generated role (config/rbac/role.yaml) unchanged, and no other
// role it ships grants anything on Secrets.
func TestOnlyTheGeneratedRoleReachesSecrets(t *testing.T) {
	generated := rolesOf(t, manifests.ReadFile(t, filepath.Join(repoRoot, "config", "rbac", "role.yaml")), namePrefix)
	if len(generated) == 0 {
		t.Fatal("config/rbac/role.yaml holds no role")
	}
	shipped := rolesOf(t, installed, "")
	for key, want := range generated {
		got, ok := shipped[key]
		if !ok {
			t.Errorf("config/default does not install %s from config/rbac/role.yaml", key)
			continue
		}
		if !reflect.DeepEqual(got.rules, want.rules) {
			t.Errorf("config/default installs %s with rules\n%+v\nbut config/rbac/role.yaml says\n%+v", key, got.rules, want.rules)
		}
	}
	for key, r := range shipped {
		if _, ok := generated[key]; ok {
			continue
		}
		for _, rule := range r.rules {
			if grantsSecrets(rule) {
				t.Errorf("%s grants %v on Secrets; only the generated manager role may", r, rule.Verbs)
			}
		}
	}
}

func grantsSecrets(rule rbacv1.PolicyRule) bool {
	if !slices.Contains(rule.APIGroups, "") && !slices.Contains(rule.APIGroups, "*") {
		return false
	}
	return slices.ContainsFunc(rule.Resources, func(resource string) bool {
		return resource == "*" || resource == "secrets" || strings.HasPrefix(resource, "secrets/")
	})
}

// TestUserRoles: the roles for the cluster's users aggregate into the
// built-in view, edit and admin roles, and none lets a user forge the status
// the operator reports.
func TestUserRoles(t *testing.T) {
	readOnly := []string{"get", "list", "watch"}
	aggregated := map[string]bool{}
	for _, r := range rolesOf(t, installed, "") {
		for _, to := range []string{"view", "edit", "admin"} {
			if r.labels["rbac.authorization.k8s.io/aggregate-to-"+to] != "true" {
				continue
			}
			for _, rule := range r.rules {
				if !slices.Contains(rule.APIGroups, "surge.app") {
					continue
				}
				if slices.Contains(rule.Resources, "surgeendusers") && slices.Contains(rule.Verbs, "list") {
					aggregated[to] = true
				}
				for _, verb := range rule.Verbs {
					if to == "view" && !slices.Contains(readOnly, verb) {
						t.Errorf("%s aggregates into view but grants %q", r, verb)
					}
					if slices.Contains(rule.Resources, "surgeendusers/status") && !slices.Contains(readOnly, verb) {
						t.Errorf("%s lets users %s the status of SurgeEndUsers", r, verb)
					}
				}
			}
		}
	}
	for _, to := range []string{"view", "edit", "admin"} {
		if !aggregated[to] {
			t.Errorf("users with the built-in %s role cannot list SurgeEndUsers: no role aggregates into it", to)
		}
	}
}

// TestBindingsGrantTheManager: every binding names a role the installation
// ships, for the manager's ServiceAccount.
func TestBindingsGrantTheManager(t *testing.T) {
	shipped := rolesOf(t, installed, "")
	serviceAccount := namePrefix + "controller-manager"
	bindings := 0
	for _, obj := range installed {
		if obj.GetKind() != "RoleBinding" && obj.GetKind() != "ClusterRoleBinding" {
			continue
		}
		bindings++
		binding := &rbacv1.RoleBinding{}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, binding); err != nil {
			t.Fatalf("decoding %s: %v", manifests.Describe(obj), err)
		}
		if _, ok := shipped[binding.RoleRef.Kind+" "+binding.RoleRef.Name]; !ok {
			t.Errorf("%s refers to %s %s, which config/default does not install", manifests.Describe(obj), binding.RoleRef.Kind, binding.RoleRef.Name)
		}
		want := []rbacv1.Subject{{Kind: "ServiceAccount", Name: serviceAccount, Namespace: namespace}}
		if !reflect.DeepEqual(binding.Subjects, want) {
			t.Errorf("%s binds %+v, want the manager's ServiceAccount %s/%s", manifests.Describe(obj), binding.Subjects, namespace, serviceAccount)
		}
	}
	if bindings == 0 {
		t.Error("config/default binds no role")
	}
}

// TestManagerCanDoItsJob installs the ServiceAccount and RBAC for real and
// asks the API server's authorizer whether the manager may do what it needs
// to run: elect a leader, record events, watch SurgeEndUsers and their
// status, and authorize metrics scrapes.
func TestManagerCanDoItsJob(t *testing.T) {
	ctx := context.Background()
	for _, obj := range installed {
		switch obj.GetKind() {
		case "ServiceAccount", "Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding":
			if err := apply(ctx, obj); err != nil {
				t.Fatalf("installing %s: %v", manifests.Describe(obj), err)
			}
		}
	}
	user := "system:serviceaccount:" + namespace + ":" + namePrefix + "controller-manager"
	groups := []string{"system:serviceaccounts", "system:serviceaccounts:" + namespace, "system:authenticated"}

	allowed := []authorizationv1.ResourceAttributes{
		{Namespace: namespace, Group: "coordination.k8s.io", Resource: "leases", Verb: "get"},
		{Namespace: namespace, Group: "coordination.k8s.io", Resource: "leases", Verb: "create"},
		{Namespace: namespace, Group: "coordination.k8s.io", Resource: "leases", Verb: "update"},
		{Namespace: namespace, Resource: "events", Verb: "create"},
		{Namespace: "default", Group: "events.k8s.io", Resource: "events", Verb: "create"},
		{Group: "surge.app", Resource: "surgeendusers", Verb: "list"},
		{Group: "surge.app", Resource: "surgeendusers", Verb: "watch"},
		{Namespace: "default", Group: "surge.app", Resource: "surgeendusers", Verb: "update"},
		{Namespace: "default", Group: "surge.app", Resource: "surgeendusers", Subresource: "status", Verb: "patch"},
		{Namespace: "default", Group: "surge.app", Resource: "surgeendusers", Subresource: "finalizers", Verb: "update"},
		{Group: "surge.app", Resource: "surgeprojects", Verb: "watch"},
		{Group: "surge.app", Resource: "clustersurgeprojects", Verb: "watch"},
		{Namespace: "default", Group: "surge.app", Resource: "surgeprojects", Subresource: "status", Verb: "patch"},
		{Group: "surge.app", Resource: "clustersurgeprojects", Subresource: "finalizers", Verb: "update"},
		{Resource: "namespaces", Verb: "watch"},
		{Group: "authentication.k8s.io", Resource: "tokenreviews", Verb: "create"},
		{Group: "authorization.k8s.io", Resource: "subjectaccessreviews", Verb: "create"},
	}
	// RBAC reaches the authorizer through its informers: wait for the first
	// grant to be seen, then ask for the rest.
	err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
		ok, _, err := authorized(ctx, user, groups, allowed[0])
		return ok, err
	})
	if err != nil {
		t.Fatalf("the manager's ServiceAccount was never allowed %s: %v", attributes(allowed[0]), err)
	}
	for _, attrs := range allowed {
		ok, reason, err := authorized(ctx, user, groups, attrs)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			t.Errorf("the manager may not %s (%s)", attributes(attrs), reason)
		}
	}

	// Leader election rights stay in the operator's namespace.
	denied := authorizationv1.ResourceAttributes{Namespace: "kube-system", Group: "coordination.k8s.io", Resource: "leases", Verb: "update"}
	if ok, _, err := authorized(ctx, user, groups, denied); err != nil || ok {
		t.Errorf("the manager may %s (err %v); its Lease rights should be confined to %s", attributes(denied), err, namespace)
	}
}

func authorized(ctx context.Context, user string, groups []string, attrs authorizationv1.ResourceAttributes) (bool, string, error) {
	review := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User: user, Groups: groups, ResourceAttributes: &attrs,
	}}
	if err := k8s.Create(ctx, review); err != nil {
		return false, "", err
	}
	return review.Status.Allowed, review.Status.Reason, nil
}

func attributes(a authorizationv1.ResourceAttributes) string {
	resource := a.Resource
	if a.Subresource != "" {
		resource += "/" + a.Subresource
	}
	if a.Group != "" {
		resource += "." + a.Group
	}
	where := "in all namespaces"
	if a.Namespace != "" {
		where = "in " + a.Namespace
	}
	return fmt.Sprintf("%s %s %s", a.Verb, resource, where)
}
