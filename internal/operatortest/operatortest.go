// Package operatortest gives the operator's own suites a world per test,
// built on the public test kit (pkg/surgetest) that other teams use: a
// kube-apiserver and etcd from envtest with the kit's CRDs and the manager's
// ServiceAccount and RBAC from config/rbac, and for each test a namespace,
// an emulator with one account, and an operator watching only that
// namespace, acting as that ServiceAccount.
package operatortest

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	surgev1alpha1 "github.com/surge-operator/surge-operator/api/v1alpha1"
	"github.com/surge-operator/surge-operator/internal/operator"
	"github.com/surge-operator/surge-operator/pkg/surgetest"
)

// Cluster is a running envtest API server with the CRDs and the manager's
// RBAC installed.
type Cluster struct {
	// Config and Client are the cluster's administrator, for the tests.
	Config *rest.Config
	Client client.Client
	// Operator is what the operator connects with: Config impersonating
	// the manager's ServiceAccount, with the rights config/rbac binds to it
	// and no others.
	Operator *rest.Config
	env      *envtest.Environment
}

// StartCluster starts envtest with the CRDs of the test kit and installs the
// manager's ServiceAccount and RBAC in ManagerNamespace. Its binaries come
// from KUBEBUILDER_ASSETS, which make test sets.
func StartCluster() (*Cluster, error) {
	env := &envtest.Environment{CRDs: surgetest.CRDs()}
	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("starting envtest (run through make test, which builds its binaries): %w", err)
	}
	cluster, err := setUpCluster(env, cfg)
	if err != nil {
		_ = env.Stop()
		return nil, err
	}
	return cluster, nil
}

func setUpCluster(env *envtest.Environment, cfg *rest.Config) (*Cluster, error) {
	k8s, err := client.New(cfg, client.Options{Scheme: operator.Scheme()})
	if err != nil {
		return nil, err
	}
	rbac, err := ReadManagerRBAC(ManagerNamespace)
	if err != nil {
		return nil, err
	}
	operatorConfig, err := rbac.Install(context.Background(), cfg, k8s)
	if err != nil {
		return nil, err
	}
	return &Cluster{Config: cfg, Client: k8s, Operator: operatorConfig, env: env}, nil
}

// ServiceAccountWithRules creates a ServiceAccount named name in
// ManagerNamespace, bound cluster-wide to a ClusterRole of these rules
// alone, and returns a config that impersonates it: an operator deployed
// with less than the shipped RBAC.
func (c *Cluster) ServiceAccountWithRules(ctx context.Context, name string, rules []rbacv1.PolicyRule) (*rest.Config, error) {
	account := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ManagerNamespace, Name: name}}
	role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: rules}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ManagerNamespace, Name: name}},
	}
	for _, obj := range []client.Object{account, role, binding} {
		if err := c.Client.Create(ctx, obj); err != nil {
			return nil, fmt.Errorf("creating %T %s: %w", obj, name, err)
		}
	}
	if err := WaitForGrant(ctx, c.Client, account, rules[0], ""); err != nil {
		return nil, err
	}
	return Impersonating(c.Config, account), nil
}

// Stop stops the API server and etcd.
func (c *Cluster) Stop() error { return c.env.Stop() }

var worlds atomic.Int64

// World is one test's namespace, emulator and operator.
type World struct {
	T         *testing.T
	Ctx       context.Context
	K8s       client.Client
	Namespace string
	// Namespaces are the World's further namespaces, by the names asked
	// for in Settings.ExtraNamespaces; the operator watches them too.
	Namespaces map[string]string
	Account    string
	Surge      *surgetest.Emulator

	cluster        *Cluster
	operatorConfig *rest.Config
	apiKey         string
	options        []surgetest.Option
	operator       *surgetest.Operator
}

// Settings of a World.
type Settings struct {
	// NamespacePrefix names the World's namespace.
	NamespacePrefix string
	// APIKey is the emulator's key and the operator's own.
	APIKey string
	// PageSize of the emulator's user lists.
	PageSize int
	// ExtraNamespaces are further namespaces to create and watch, as for
	// several tenants.
	ExtraNamespaces []string
	// SurgeNow is the emulator's clock, which issues the tokens' expiry;
	// time.Now when nil. Another clock than the operator's plays a Surge whose
	// clock is skewed.
	SurgeNow func() time.Time
	// Operator adjusts the operator's options.
	Operator []surgetest.Option
	// OperatorConfig is what the operator connects with; the cluster's
	// Operator, the shipped ServiceAccount, when nil.
	OperatorConfig *rest.Config
}

// NewWorld creates the namespace and the emulator and starts the operator;
// all of it ends with the test.
func NewWorld(t *testing.T, cluster *Cluster, settings Settings) *World {
	t.Helper()
	n := worlds.Add(1)
	w := &World{
		T:              t,
		Ctx:            context.Background(),
		K8s:            cluster.Client,
		Namespace:      fmt.Sprintf("%s-%d", settings.NamespacePrefix, n),
		Account:        fmt.Sprintf("acct_01j9a43avnfqzbjfch6pygv%03d", n),
		Namespaces:     map[string]string{},
		Surge:          surgetest.NewEmulator(t),
		cluster:        cluster,
		operatorConfig: settings.OperatorConfig,
		options:        settings.Operator,
	}
	if w.operatorConfig == nil {
		w.operatorConfig = cluster.Operator
	}
	if settings.APIKey != "" {
		w.Surge.SetAPIKey(settings.APIKey)
	}
	w.apiKey = w.Surge.APIKey()
	w.Surge.SetPageSize(settings.PageSize)
	w.Surge.AddAccount(w.Account)
	if settings.SurgeNow != nil {
		w.Surge.SetClock(settings.SurgeNow)
	}
	for _, extra := range settings.ExtraNamespaces {
		w.Namespaces[extra] = fmt.Sprintf("%s-%s", w.Namespace, extra)
	}
	for _, namespace := range w.watched() {
		if err := w.K8s.Create(w.Ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}); err != nil {
			t.Fatalf("creating namespace: %v", err)
		}
	}
	w.StartOperator()
	return w
}

// StartOperator runs the real manager against the World's emulator, in the
// World's namespaces, as the World's ServiceAccount, until StopOperator or
// the end of the test. Settled
// resources are compared with Surge once a minute, seldom enough for tests
// that count requests.
func (w *World) StartOperator() {
	w.T.Helper()
	w.operator = w.StartInstance(w.options...)
}

// StartInstance runs one more operator beside the World's, as StartOperator
// does, with opts on top: another shard. It stops at the end of the test.
func (w *World) StartInstance(opts ...surgetest.Option) *surgetest.Operator {
	w.T.Helper()
	options := append([]surgetest.Option{
		surgetest.WithNamespaces(w.watched()...),
		surgetest.WithAPIKey(w.apiKey),
		surgetest.WithResyncInterval(time.Minute),
	}, opts...)
	return surgetest.StartOperator(w.T, w.operatorConfig, w.Surge, options...)
}

func (w *World) watched() []string {
	namespaces := []string{w.Namespace}
	for _, namespace := range w.Namespaces {
		namespaces = append(namespaces, namespace)
	}
	return namespaces
}

// StopOperator stops the operator, cancelling whatever it has in flight.
func (w *World) StopOperator() { w.operator.Stop() }

// RestartOperator stops the operator and starts a new one with empty
// memory, as after a crash or a change of leader.
func (w *World) RestartOperator() {
	w.T.Helper()
	w.StopOperator()
	w.StartOperator()
}

// Get reads the named SurgeEndUser.
func (w *World) Get(name string) *surgev1alpha1.SurgeEndUser {
	w.T.Helper()
	obj := &surgev1alpha1.SurgeEndUser{}
	if err := w.K8s.Get(w.Ctx, client.ObjectKey{Namespace: w.Namespace, Name: name}, obj); err != nil {
		w.T.Fatalf("reading %s: %v", name, err)
	}
	return obj
}

// Create creates obj, failing the test if the API server refuses it.
func (w *World) Create(obj *surgev1alpha1.SurgeEndUser) {
	w.T.Helper()
	if err := w.K8s.Create(w.Ctx, obj); err != nil {
		w.T.Fatalf("creating %s: %v", obj.Name, err)
	}
}

// Update applies a change to the live object, retrying on conflicts with
// the operator's own writes, as kubectl edit would have a person do.
func (w *World) Update(name string, mutate func(*surgev1alpha1.SurgeEndUser)) {
	w.T.Helper()
	w.Eventually("update "+name, 10*time.Second, func() (bool, string) {
		obj := w.Get(name)
		mutate(obj)
		if err := w.K8s.Update(w.Ctx, obj); err != nil {
			return false, err.Error()
		}
		return true, ""
	})
}

// Delete deletes the named SurgeEndUser.
func (w *World) Delete(name string) {
	w.T.Helper()
	obj := &surgev1alpha1.SurgeEndUser{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: w.Namespace}}
	if err := w.K8s.Delete(w.Ctx, obj); err != nil {
		w.T.Fatalf("deleting %s: %v", name, err)
	}
}

// WaitForGone waits until the named SurgeEndUser no longer exists.
func (w *World) WaitForGone(name string) {
	w.T.Helper()
	w.Eventually(name+" deleted", 20*time.Second, func() (bool, string) {
		err := w.K8s.Get(w.Ctx, client.ObjectKey{Namespace: w.Namespace, Name: name}, &surgev1alpha1.SurgeEndUser{})
		if err == nil {
			return false, "still there"
		}
		return client.IgnoreNotFound(err) == nil, err.Error()
	})
}

// Eventually polls check until it holds or the timeout passes; the last
// reason it gave is the failure message.
func (w *World) Eventually(what string, timeout time.Duration, check func() (bool, string)) {
	w.T.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, reason := check()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			w.T.Fatalf("%s: not within %s: %s", what, timeout, reason)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
