// Package credentials decides which Surge API key and client serve a
// SurgeEndUser: the key of the SurgeProject or ClusterSurgeProject it names,
// or the operator's own key. It alone reads API keys, checks whether a
// namespace and an account may use a project, and builds, caches and
// rebuilds the clients; reconcilers only ask it.
package credentials

import (
	"context"
	"crypto/sha256"
	"fmt"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	surgev1alpha1 "github.com/surge-operator/surge-operator/api/v1alpha1"
	"github.com/surge-operator/surge-operator/internal/surge"
)

// KeyRefreshInterval is how long a key read from a project's Secret is used
// before it is read again, so that a rotated key is picked up within it.
const KeyRefreshInterval = 20 * time.Second

// NewClientFunc builds a Surge client for a base URL and key, with the
// operator's settings (rate limit, retries, metrics). scope names the key
// in metrics: the project's reference, empty for the operator's own key.
type NewClientFunc func(scope, apiURL, apiKey string) (*surge.Client, error)

// Manager hands out the Surge client of each resource.
type Manager struct {
	// cache reads projects and namespaces, which the manager watches.
	cache client.Reader
	// secrets reads a project's Secret by name, around the cache: the
	// operator neither lists nor watches Secrets it was not told of.
	secrets client.Reader
	// defaultClient serves resources without projectRef; nil without
	// SURGE_API_KEY.
	defaultClient *surge.Client
	defaultURL    string
	// allowedURLs are the API URLs a SurgeProject may name besides
	// defaultURL. A ClusterSurgeProject, made by a cluster administrator,
	// may name any.
	allowedURLs []string
	newClient   NewClientFunc
	// clientForgotten is told the scope of each client dropped for good.
	clientForgotten func(scope string)
	clock           clock.PassiveClock
	ignoreCluster   bool

	mu      sync.Mutex
	clients map[Ref]*projectClient
}

// projectClient is the cached client of one project and what it was built
// from.
type projectClient struct {
	client    *surge.Client
	apiURL    string
	keyDigest [sha256.Size]byte
	readAt    time.Time
}

// Options configures a Manager.
type Options struct {
	Cache   client.Reader
	Secrets client.Reader
	// DefaultAPIKey is the operator's own key (SURGE_API_KEY), for
	// resources without projectRef; empty when there is none.
	DefaultAPIKey string
	DefaultURL    string
	AllowedURLs   []string
	NewClient     NewClientFunc
	// ClientForgotten, if set, is told the scope of a project's client
	// when the project is gone, so that what was recorded under it (its
	// metrics) goes too.
	ClientForgotten func(scope string)
	Clock           clock.PassiveClock
	// IgnoreClusterProjects refuses every ClusterSurgeProject without
	// reading it: an installation scoped to some namespaces may not read
	// them, and another installation serves them.
	IgnoreClusterProjects bool
}

// NewManager returns a Manager; it fails only when the default key cannot
// make a client.
func NewManager(opts Options) (*Manager, error) {
	m := &Manager{
		cache:           opts.Cache,
		secrets:         opts.Secrets,
		defaultURL:      opts.DefaultURL,
		allowedURLs:     opts.AllowedURLs,
		newClient:       opts.NewClient,
		clientForgotten: opts.ClientForgotten,
		clock:           opts.Clock,
		clients:         map[Ref]*projectClient{},
		ignoreCluster:   opts.IgnoreClusterProjects,
	}
	if m.clock == nil {
		m.clock = clock.RealClock{}
	}
	if opts.DefaultAPIKey != "" {
		c, err := opts.NewClient("", opts.DefaultURL, opts.DefaultAPIKey)
		if err != nil {
			return nil, err
		}
		m.defaultClient = c
	}
	return m, nil
}

// Key is the Surge client of one resource's key, and how to read the key
// again when Surge rejects it.
type Key struct {
	// Scope names the project whose key the client uses, empty for the
	// operator's own key: what one key can see is cached per scope.
	Scope  string
	Client *surge.Client
	// Reload rereads the project's key; nil for the operator's own key,
	// which only a restart changes.
	Reload func(context.Context) (*surge.Client, error)
}

// KeyFor returns the key that serves obj, or a *Refusal saying why obj may
// not reach Surge. Other errors are transient.
func (m *Manager) KeyFor(ctx context.Context, obj *surgev1alpha1.SurgeEndUser) (Key, error) {
	p, named, err := m.admitted(ctx, obj)
	if err != nil {
		return Key{}, err
	}
	if !named {
		return Key{Client: m.defaultClient}, nil
	}
	current, err := m.projectClient(ctx, p, false)
	if err != nil {
		return Key{}, err
	}
	return Key{Scope: p.ref.String(), Client: current, Reload: func(ctx context.Context) (*surge.Client, error) {
		return m.projectClient(ctx, p, true)
	}}, nil
}

// Admits returns nil when obj may reach Surge through its project, as
// KeyFor decides, without reading the key; otherwise the *Refusal or
// the error KeyFor would return.
func (m *Manager) Admits(ctx context.Context, obj *surgev1alpha1.SurgeEndUser) error {
	_, _, err := m.admitted(ctx, obj)
	return err
}

// admitted returns the project that admits obj; named is false for a
// resource served by the operator's own key.
func (m *Manager) admitted(ctx context.Context, obj *surgev1alpha1.SurgeEndUser) (p project, named bool, err error) {
	ref, named := RefOf(obj)
	if !named {
		if m.defaultClient == nil {
			return project{}, false, refuse(ReasonNoProject,
				"spec.projectRef is not set and the operator has no API key of its own (SURGE_API_KEY): name a SurgeProject or ClusterSurgeProject in spec.projectRef")
		}
		return project{}, false, nil
	}
	p, err = m.project(ctx, ref)
	if err != nil {
		return project{}, true, err
	}
	namespace := &corev1.Namespace{}
	if err := m.cache.Get(ctx, types.NamespacedName{Name: obj.Namespace}, namespace); err != nil {
		return project{}, true, fmt.Errorf("reading namespace %s: %w", obj.Namespace, err)
	}
	if refusal := admit(p, namespace, obj); refusal != nil {
		return project{}, true, refusal
	}
	return p, true, nil
}

// ProjectClient returns the client of a project itself, for checking its
// key; refresh reads the key again even when the cached one is recent.
func (m *Manager) ProjectClient(ctx context.Context, ref Ref, refresh bool) (*surge.Client, error) {
	p, err := m.project(ctx, ref)
	if err != nil {
		return nil, err
	}
	return m.projectClient(ctx, p, refresh)
}

// Forget drops the cached client of a project that is gone.
func (m *Manager) Forget(ref Ref) {
	m.mu.Lock()
	delete(m.clients, ref)
	m.mu.Unlock()
	if m.clientForgotten != nil {
		m.clientForgotten(ref.String())
	}
}

func (m *Manager) project(ctx context.Context, ref Ref) (project, error) {
	var p project
	var err error
	switch {
	case ref.Kind == surgev1alpha1.KindClusterSurgeProject && m.ignoreCluster:
		return project{}, refuse(ReasonClusterProjectNotServed,
			"%s is a ClusterSurgeProject, and this installation of the operator serves only the SurgeProjects of the namespaces it watches (--cluster-projects=false): name a SurgeProject of this namespace in spec.projectRef",
			ref)
	case ref.Kind == surgev1alpha1.KindClusterSurgeProject:
		obj := &surgev1alpha1.ClusterSurgeProject{}
		if err = m.cache.Get(ctx, types.NamespacedName{Name: ref.Name}, obj); err == nil {
			p = fromClusterSurgeProject(obj)
		}
	default:
		obj := &surgev1alpha1.SurgeProject{}
		if err = m.cache.Get(ctx, types.NamespacedName{Namespace: ref.Namespace, Name: ref.Name}, obj); err == nil {
			p = fromSurgeProject(obj)
		}
	}
	if apierrors.IsNotFound(err) {
		return project{}, refuse(ReasonProjectNotFound, "%s does not exist: create it, or fix spec.projectRef", ref)
	}
	if err != nil {
		return project{}, fmt.Errorf("reading %s: %w", ref, err)
	}
	if p.apiURL == "" {
		p.apiURL = m.defaultURL
	}
	if ref.Kind == surgev1alpha1.KindSurgeProject && p.apiURL != m.defaultURL && !slices.Contains(m.allowedURLs, p.apiURL) {
		return project{}, refuse(ReasonAPIURLNotAllowed,
			"%s names apiURL %s, which the operator does not allow for a SurgeProject: remove spec.apiURL, or ask the cluster's administrators to allow it (--allowed-surge-api-urls)",
			ref, p.apiURL)
	}
	return p, nil
}

// projectClient returns the cached client of p while its key is recent,
// and otherwise reads the key again, building a new client only when the
// key or the URL changed.
func (m *Manager) projectClient(ctx context.Context, p project, refresh bool) (*surge.Client, error) {
	now := m.clock.Now()
	m.mu.Lock()
	cached, ok := m.clients[p.ref]
	// readAt is renewed under the lock by whoever reads the key again.
	fresh := ok && !refresh && cached.apiURL == p.apiURL && now.Sub(cached.readAt) < KeyRefreshInterval
	m.mu.Unlock()
	if fresh {
		return cached.client, nil
	}

	key, err := m.readKey(ctx, p)
	if err != nil {
		return nil, err
	}
	digest := sha256.Sum256(key)
	m.mu.Lock()
	defer m.mu.Unlock()
	if cached, ok := m.clients[p.ref]; ok && cached.apiURL == p.apiURL && cached.keyDigest == digest {
		cached.readAt = now
		return cached.client, nil
	}
	c, err := m.newClient(p.ref.String(), p.apiURL, string(key))
	if err != nil {
		return nil, refuse(ReasonAPIURLNotAllowed, "%s cannot be used: %v", p.ref, err)
	}
	m.clients[p.ref] = &projectClient{client: c, apiURL: p.apiURL, keyDigest: digest, readAt: now}
	return c, nil
}

func (m *Manager) readKey(ctx context.Context, p project) ([]byte, error) {
	secret := &corev1.Secret{}
	err := m.secrets.Get(ctx, p.secret, secret)
	if apierrors.IsNotFound(err) {
		return nil, refuse(ReasonAPIKeyUnreadable, "Secret %s/%s, the API key of %s, does not exist", p.secret.Namespace, p.secret.Name, p.ref)
	}
	if apierrors.IsForbidden(err) {
		return nil, refuse(ReasonAPIKeyUnreadable, "the operator may not read Secret %s/%s, the API key of %s", p.secret.Namespace, p.secret.Name, p.ref)
	}
	if err != nil {
		return nil, fmt.Errorf("reading the API key of %s: %w", p.ref, err)
	}
	key := secret.Data[p.secretKey]
	if len(key) == 0 {
		return nil, refuse(ReasonAPIKeyUnreadable, "Secret %s/%s, the API key of %s, has no key %q or it is empty",
			p.secret.Namespace, p.secret.Name, p.ref, p.secretKey)
	}
	return key, nil
}
