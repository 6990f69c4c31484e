package operatortest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/util/wait"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/surge-operator/surge-operator/internal/operator"
)

// ManagerNamespace is where the suites install the manager's ServiceAccount
// and its namespaced RBAC, as `kubectl apply -k config/default` does.
const ManagerNamespace = "surge-operator-system"

// rbacPlaceholderNamespace is the namespace config/rbac names, which
// config/default replaces.
const rbacPlaceholderNamespace = "system"

// modulePath identifies the repository's go.mod when looking for config/.
const modulePath = "github.com/surge-operator/surge-operator"

// ManagerRBAC is the ServiceAccount, roles and bindings of config/rbac,
// decoded from the files its kustomization lists, and so from the role that
// make manifests generates from the markers. The suites run the operator
// with exactly these rights, so that a verb the code needs and the markers
// lack fails a test instead of a deployment.
type ManagerRBAC struct {
	ServiceAccount      *corev1.ServiceAccount
	Roles               []*rbacv1.Role
	ClusterRoles        []*rbacv1.ClusterRole
	RoleBindings        []*rbacv1.RoleBinding
	ClusterRoleBindings []*rbacv1.ClusterRoleBinding
}

// rbacKustomization is the part of config/rbac/kustomization.yaml that this
// package understands; decoding it strictly fails on anything else (a
// patch, a prefix), which applying the files as they are would ignore.
type rbacKustomization struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Resources  []string `json:"resources"`
}

// ReadManagerRBAC reads config/rbac, placed in namespace as kustomize's
// namespace transformer places it.
func ReadManagerRBAC(namespace string) (*ManagerRBAC, error) {
	dir, err := repoPath("config", "rbac")
	if err != nil {
		return nil, err
	}
	raw, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		return nil, err
	}
	var kustomization rbacKustomization
	if err := yaml.UnmarshalStrict(raw, &kustomization); err != nil {
		return nil, fmt.Errorf("config/rbac/kustomization.yaml does more than list resources, which the suites cannot reproduce: %w", err)
	}
	rbac := &ManagerRBAC{}
	decoder := serializer.NewCodecFactory(operator.Scheme()).UniversalDeserializer()
	for _, resource := range kustomization.Resources {
		docs, err := readDocuments(filepath.Join(dir, resource))
		if err != nil {
			return nil, err
		}
		for _, doc := range docs {
			obj, _, err := decoder.Decode(doc, nil, nil)
			if err != nil {
				return nil, fmt.Errorf("config/rbac/%s: %w", resource, err)
			}
			if err := rbac.add(obj, namespace); err != nil {
				return nil, fmt.Errorf("config/rbac/%s: %w", resource, err)
			}
		}
	}
	if rbac.ServiceAccount == nil {
		return nil, errors.New("config/rbac holds no ServiceAccount for the manager")
	}
	return rbac, nil
}

func (r *ManagerRBAC) add(obj any, namespace string) error {
	switch obj := obj.(type) {
	case *corev1.ServiceAccount:
		if r.ServiceAccount != nil {
			return fmt.Errorf("a second ServiceAccount %s; the suites know of one manager", obj.Name)
		}
		obj.Namespace = namespace
		r.ServiceAccount = obj
	case *rbacv1.Role:
		obj.Namespace = namespace
		r.Roles = append(r.Roles, obj)
	case *rbacv1.ClusterRole:
		r.ClusterRoles = append(r.ClusterRoles, obj)
	case *rbacv1.RoleBinding:
		obj.Namespace = namespace
		placeSubjects(obj.Subjects, namespace)
		r.RoleBindings = append(r.RoleBindings, obj)
	case *rbacv1.ClusterRoleBinding:
		placeSubjects(obj.Subjects, namespace)
		r.ClusterRoleBindings = append(r.ClusterRoleBindings, obj)
	default:
		return fmt.Errorf("a %T, which the suites do not install", obj)
	}
	return nil
}

func placeSubjects(subjects []rbacv1.Subject, namespace string) {
	for i := range subjects {
		if subjects[i].Kind == rbacv1.ServiceAccountKind && subjects[i].Namespace == rbacPlaceholderNamespace {
			subjects[i].Namespace = namespace
		}
	}
}

// ClusterRole returns the ClusterRole of that name, such as manager-role,
// the one generated from the markers.
func (r *ManagerRBAC) ClusterRole(name string) (*rbacv1.ClusterRole, error) {
	for _, role := range r.ClusterRoles {
		if role.Name == name {
			return role, nil
		}
	}
	return nil, fmt.Errorf("config/rbac holds no ClusterRole %s", name)
}

// Install creates the namespace, the ServiceAccount, roles and bindings,
// waits until the API server's authorizer grants what they bind, and
// returns a copy of admin that impersonates the ServiceAccount.
func (r *ManagerRBAC) Install(ctx context.Context, admin *rest.Config, k8s client.Client) (*rest.Config, error) {
	namespace := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: r.ServiceAccount.Namespace}}
	objects := []client.Object{namespace, r.ServiceAccount}
	for _, obj := range r.Roles {
		objects = append(objects, obj)
	}
	for _, obj := range r.ClusterRoles {
		objects = append(objects, obj)
	}
	for _, obj := range r.RoleBindings {
		objects = append(objects, obj)
	}
	for _, obj := range r.ClusterRoleBindings {
		objects = append(objects, obj)
	}
	for _, obj := range objects {
		if err := k8s.Create(ctx, obj); err != nil {
			return nil, fmt.Errorf("installing %T %s: %w", obj, obj.GetName(), err)
		}
	}
	for _, binding := range r.RoleBindings {
		if err := r.waitForGrant(ctx, k8s, binding.RoleRef, binding.Namespace); err != nil {
			return nil, err
		}
	}
	for _, binding := range r.ClusterRoleBindings {
		if err := r.waitForGrant(ctx, k8s, binding.RoleRef, ""); err != nil {
			return nil, err
		}
	}
	return Impersonating(admin, r.ServiceAccount), nil
}

// waitForGrant waits until the ServiceAccount may do what the first rule of
// the bound role says: RBAC reaches the authorizer through its informers, a
// moment after the binding is created, and an operator started before that
// would begin with refused watches and their backoff.
func (r *ManagerRBAC) waitForGrant(ctx context.Context, k8s client.Client, ref rbacv1.RoleRef, namespace string) error {
	var rules []rbacv1.PolicyRule
	switch ref.Kind {
	case "Role":
		for _, role := range r.Roles {
			if role.Name == ref.Name {
				rules = role.Rules
			}
		}
	case "ClusterRole":
		for _, role := range r.ClusterRoles {
			if role.Name == ref.Name {
				rules = role.Rules
			}
		}
	}
	if len(rules) == 0 {
		return fmt.Errorf("config/rbac binds %s %s, which it does not hold or which grants nothing", ref.Kind, ref.Name)
	}
	return WaitForGrant(ctx, k8s, r.ServiceAccount, rules[0], namespace)
}

// WaitForGrant waits until the API server lets account do the first verb
// on the first resource of rule, in namespace ("" for any).
func WaitForGrant(ctx context.Context, k8s client.Client, account *corev1.ServiceAccount, rule rbacv1.PolicyRule, namespace string) error {
	spec := authorizationv1.SubjectAccessReviewSpec{
		User:   ServiceAccountUser(account),
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + account.Namespace, "system:authenticated"},
	}
	if len(rule.NonResourceURLs) > 0 {
		spec.NonResourceAttributes = &authorizationv1.NonResourceAttributes{Path: rule.NonResourceURLs[0], Verb: rule.Verbs[0]}
	} else {
		resource, subresource, _ := strings.Cut(rule.Resources[0], "/")
		spec.ResourceAttributes = &authorizationv1.ResourceAttributes{
			Namespace: namespace, Group: rule.APIGroups[0], Resource: resource, Subresource: subresource, Verb: rule.Verbs[0],
		}
	}
	var reason string
	err := wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, 20*time.Second, true, func(ctx context.Context) (bool, error) {
		review := &authorizationv1.SubjectAccessReview{Spec: spec}
		if err := k8s.Create(ctx, review); err != nil {
			return false, err
		}
		reason = review.Status.Reason
		return review.Status.Allowed, nil
	})
	if err != nil {
		return fmt.Errorf("ServiceAccount %s/%s was never granted %v (%s): %w", account.Namespace, account.Name, rule, reason, err)
	}
	return nil
}

// ServiceAccountUser is the user name the API server gives account.
func ServiceAccountUser(account *corev1.ServiceAccount) string {
	return "system:serviceaccount:" + account.Namespace + ":" + account.Name
}

// Impersonating returns a copy of admin that acts as account. The API server
// gives an impersonated ServiceAccount the groups its tokens carry.
func Impersonating(admin *rest.Config, account *corev1.ServiceAccount) *rest.Config {
	cfg := rest.CopyConfig(admin)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: ServiceAccountUser(account)}
	return cfg
}

// readDocuments splits a YAML stream into its non-empty documents.
func readDocuments(path string) ([][]byte, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(raw)))
	var docs [][]byte
	for {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if len(bytes.TrimSpace(stripComments(doc))) > 0 {
			docs = append(docs, doc)
		}
	}
}

func stripComments(doc []byte) []byte {
	var kept [][]byte
	for line := range bytes.SplitSeq(doc, []byte("\n")) {
		if !bytes.HasPrefix(bytes.TrimSpace(line), []byte("#")) {
			kept = append(kept, line)
		}
	}
	return bytes.Join(kept, []byte("\n"))
}

// repoPath is a path in this repository. The suites run in their package's
// directory, below the repository's go.mod.
func repoPath(parts ...string) (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		mod, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.HasPrefix(string(mod), "module "+modulePath+"\n") {
			return filepath.Join(append([]string{dir}, parts...)...), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod of %s above the working directory", modulePath)
		}
		dir = parent
	}
}
