// Package operator assembles the controller manager: the scheme, the Surge
// client, the reconciler, metrics and health checks. main.go and the local
// sandbox both start the operator through it.
package operator

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	surgev1alpha1 "github.com/surge-operator/surge-operator/api/v1alpha1"
	"github.com/surge-operator/surge-operator/internal/controller"
	"github.com/surge-operator/surge-operator/internal/credentials"
	"github.com/surge-operator/surge-operator/internal/metrics"
	"github.com/surge-operator/surge-operator/internal/remote"
	"github.com/surge-operator/surge-operator/internal/surge"
)

// Options configures the operator. Zero values take the defaults below.
type Options struct {
	SurgeAPIURL string
	// AllowInsecureSurgeAPIURL accepts a plain http:// API URL on a host
	// other than the loopback interface, which sends the API key in clear.
	AllowInsecureSurgeAPIURL bool
	// SurgeAPIKey is the operator's own API key, for SurgeEndUsers without
	// spec.projectRef. Optional: without it, such resources stall.
	SurgeAPIKey string
	// AllowedSurgeAPIURLs are the API URLs a SurgeProject may name besides
	// SurgeAPIURL.
	AllowedSurgeAPIURLs []string

	ResyncInterval time.Duration
	// ProjectRecheckInterval is how often each project's key is read and
	// checked again for its status.
	ProjectRecheckInterval time.Duration
	// TerminatingNamespaceGrace is how long a SurgeEndUser whose namespace
	// is being deleted waits for a stall of its deletion to be lifted
	// before it leaves its user in Surge.
	TerminatingNamespaceGrace time.Duration
	// DeletionBrakeLimit is how many deletions of users in Surge a project
	// may make in DeletionBrakeWindow before the rest are held; negative
	// turns the brake off, zero takes the default.
	DeletionBrakeLimit  int
	DeletionBrakeWindow time.Duration
	// DeletionBrakePercent lowers the limit to that share of a project's
	// SurgeEndUsers (never below 5); negative leaves the share out.
	DeletionBrakePercent    int
	MaxConcurrentReconciles int
	SurgeRequestsPerSecond  float64
	SurgeBurst              int

	// Namespaces limits the operator to these namespaces; empty means all.
	Namespaces []string
	// SurgeClientOptions are applied after the defaults, to tune the client.
	SurgeClientOptions []surge.Option
	// SurgeAttemptTimeout bounds each request to Surge. A create whose
	// answer was lost is taken as committed or not only once twice this
	// has passed since it was sent: Surge may commit a request whose client
	// gave up.
	SurgeAttemptTimeout time.Duration
	// RemoteTimeout bounds the Surge calls of one reconcile.
	RemoteTimeout time.Duration

	// Rebuildable lets one process build the manager more than once (tests
	// restart the operator), which controller-runtime refuses by default.
	Rebuildable bool

	MetricsBindAddress string
	SecureMetrics      bool
	// MetricsCertDir holds tls.crt and tls.key, the metrics endpoint's
	// certificate, reloaded when they change; empty: one of the manager's
	// own making, which no scraper can verify.
	MetricsCertDir string
	// MetricsClientCAFile is a PEM bundle of CAs: a scraper presenting a
	// certificate that one of them signed is let in without a token.
	MetricsClientCAFile    string
	HealthProbeBindAddress string
	// PprofBindAddress serves net/http/pprof, for profiling; empty or "0"
	// turns it off.
	PprofBindAddress string

	LeaderElection   bool
	LeaderElectionID string
	// WatchLabelSelector limits the SurgeEndUsers this instance reconciles
	// to those whose labels match, so that instances share them out
	// (shards); nil reconciles every one. Every instance still reads them
	// all, which claims and the projects' counts need.
	WatchLabelSelector labels.Selector
	// IgnoreClusterProjects serves no ClusterSurgeProject, and reads none:
	// an installation scoped to some namespaces (--cluster-projects=false)
	// leaves them to the one that serves the cluster.
	IgnoreClusterProjects bool
	// LeaderElectionNamespace holds the Lease; required with LeaderElection.
	LeaderElectionNamespace string
	// LeaseDuration, RenewDeadline and RetryPeriod time the election; zero
	// values take the defaults below.
	LeaseDuration time.Duration
	RenewDeadline time.Duration
	RetryPeriod   time.Duration
}

// Defaults for Options.
const (
	DefaultResyncInterval          = 10 * time.Minute
	DefaultMaxConcurrentReconciles = 8
	// DefaultSurgeRequestsPerSecond is the ceiling of the adaptive rate:
	// high, since Surge publishes no limit and the client finds the one it
	// meets; lower it to what Surge's terms grant the key.
	DefaultSurgeRequestsPerSecond = 200
	DefaultSurgeBurst             = 40
	DefaultRemoteTimeout          = 2 * time.Minute
	DefaultSurgeAttemptTimeout    = 30 * time.Second
	// DefaultProjectRecheckInterval: SurgeEndUsers read a rotated key
	// sooner (credentials.KeyRefreshInterval); this only refreshes the
	// project's status.
	DefaultProjectRecheckInterval = time.Minute
	// DefaultTerminatingNamespaceGrace is how long a SurgeEndUser in a
	// namespace being deleted waits for a person to lift a stall of its
	// deletion, such as a revoked key, before it leaves its user in Surge.
	DefaultTerminatingNamespaceGrace = 15 * time.Minute
	// The mass-deletion brake's defaults: more than 10 deletions of users
	// in Surge in 5 minutes per project, or more than 20% of a project's
	// SurgeEndUsers, are held until a person releases them.
	DefaultDeletionBrakeLimit   = 10
	DefaultDeletionBrakeWindow  = 5 * time.Minute
	DefaultDeletionBrakePercent = 20

	// DefaultLeaseDuration is how long a standby waits after the leader's
	// last renewal before it takes over: the longest a crashed leader leaves
	// SurgeEndUsers unattended. A clean shutdown releases the Lease, so a
	// rolling update does not wait for it.
	DefaultLeaseDuration = 15 * time.Second
	// DefaultRenewDeadline is how long the leader keeps failing to renew
	// before it steps down, and exits. Two thirds of the lease leave a
	// margin for clock skew and a slow API server, so that a leader that
	// could not renew stops before a standby may start.
	DefaultRenewDeadline = 10 * time.Second
	// DefaultRetryPeriod is how often the leader renews and a standby tries
	// to acquire: it adds at most this much to a takeover, for one Lease
	// write every period.
	DefaultRetryPeriod = 2 * time.Second
	// shutdownMargin is what the manager's wait for running reconciles
	// after SIGTERM adds to the drain of their Surge calls (one attempt
	// timeout): their last status writes. The pod's
	// terminationGracePeriodSeconds (45) leaves room for it with the
	// default attempt timeout, so that the process releases the Lease and
	// exits before the kubelet kills it.
	shutdownMargin = 5 * time.Second
)

// eventReportingComponent names the operator in the events it records.
const eventReportingComponent = "surge-operator"

// serviceAccountNamespaceFile holds the pod's namespace in a cluster.
const serviceAccountNamespaceFile = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// InClusterNamespace is the namespace of the pod the manager runs in, or ""
// outside a cluster.
func InClusterNamespace() string {
	namespace, err := os.ReadFile(serviceAccountNamespaceFile)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(namespace))
}

// errNoLeaderElectionNamespace says how to fix a leader election that has
// nowhere to keep its Lease.
var errNoLeaderElectionNamespace = errors.New("leader election needs a namespace for its Lease: pass --leader-election-namespace (in a cluster it defaults to the pod's own namespace)")

// Scheme knows the built-in types and SurgeEndUser.
func Scheme() *runtime.Scheme {
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(surgev1alpha1.AddToScheme(scheme))
	return scheme
}

// NewManager builds a manager running the SurgeEndUser and project
// controllers.
func NewManager(cfg *rest.Config, opts Options) (ctrl.Manager, error) {
	opts = withDefaults(opts)
	if opts.LeaderElection && opts.LeaderElectionNamespace == "" {
		return nil, errNoLeaderElectionNamespace
	}
	// Each key gets a client of its own, with its own adaptive rate and
	// its own pause after a 429: one throttled project does not slow
	// another.
	newClient := func(scope, apiURL, apiKey string) (*surge.Client, error) {
		if scope == "" {
			scope = metrics.ScopeOperatorKey
		}
		clientOptions := append([]surge.Option{
			surge.WithTimeout(opts.SurgeAttemptTimeout),
			surge.WithRateLimit(opts.SurgeRequestsPerSecond, opts.SurgeBurst),
			surge.WithObserver(metrics.SurgeObserver{Scope: scope}),
		}, opts.SurgeClientOptions...)
		if opts.AllowInsecureSurgeAPIURL {
			clientOptions = append(clientOptions, surge.WithInsecureHTTP())
		}
		return surge.New(apiURL, apiKey, clientOptions...)
	}

	metricsOptions := metricsserver.Options{
		BindAddress:   opts.MetricsBindAddress,
		SecureServing: opts.SecureMetrics,
	}
	if opts.SecureMetrics {
		metricsOptions.FilterProvider = authorizedScrapesOnly
		metricsOptions.CertDir = opts.MetricsCertDir
		if opts.MetricsClientCAFile != "" {
			trustClients, err := clientCertificatesFrom(opts.MetricsClientCAFile)
			if err != nil {
				return nil, err
			}
			metricsOptions.TLSOpts = append(metricsOptions.TLSOpts, trustClients)
		}
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                  Scheme(),
		Metrics:                 metricsOptions,
		HealthProbeBindAddress:  opts.HealthProbeBindAddress,
		PprofBindAddress:        opts.PprofBindAddress,
		LeaderElection:          opts.LeaderElection,
		LeaderElectionID:        opts.LeaderElectionID,
		LeaderElectionNamespace: opts.LeaderElectionNamespace,
		// main returns as soon as the manager stops, which is what makes
		// releasing the Lease safe.
		LeaderElectionReleaseOnCancel: true,
		LeaseDuration:                 &opts.LeaseDuration,
		RenewDeadline:                 &opts.RenewDeadline,
		RetryPeriod:                   &opts.RetryPeriod,
		GracefulShutdownTimeout:       ptr.To(opts.SurgeAttemptTimeout + shutdownMargin),
		Cache:                         cacheOptions(opts),
		Controller:                    config.Controller{SkipNameValidation: ptr.To(opts.Rebuildable)},
	})
	if err != nil {
		return nil, fmt.Errorf("creating the manager: %w", err)
	}

	credentialsManager, err := credentials.NewManager(credentials.Options{
		Cache:           mgr.GetClient(),
		Secrets:         mgr.GetAPIReader(),
		DefaultAPIKey:   opts.SurgeAPIKey,
		DefaultURL:      opts.SurgeAPIURL,
		AllowedURLs:     opts.AllowedSurgeAPIURLs,
		NewClient:       newClient,
		ClientForgotten: metrics.ForgetScope,

		IgnoreClusterProjects: opts.IgnoreClusterProjects,
	})
	if err != nil {
		return nil, fmt.Errorf("configuring the Surge client: %w", err)
	}
	recorder := newEventRecorder(mgr.GetEventRecorder(eventReportingComponent), mgr.GetClient(), eventReportingComponent)
	if err := mgr.Add(recorder); err != nil {
		return nil, err
	}
	connector := remote.NewConnector(credentialsManager, clock.RealClock{}, 0)
	if err := mgr.Add(connector); err != nil {
		return nil, err
	}
	reconciler := &controller.SurgeEndUserReconciler{
		Client:                    mgr.GetClient(),
		APIReader:                 mgr.GetAPIReader(),
		Remote:                    connector,
		Recorder:                  recorder,
		ResyncInterval:            opts.ResyncInterval,
		RemoteTimeout:             opts.RemoteTimeout,
		SettleTime:                2 * opts.SurgeAttemptTimeout,
		Drain:                     opts.SurgeAttemptTimeout,
		TerminatingNamespaceGrace: opts.TerminatingNamespaceGrace,
		Brake: &controller.DeletionBrake{
			Limit:   opts.DeletionBrakeLimit,
			Window:  opts.DeletionBrakeWindow,
			Percent: opts.DeletionBrakePercent,
		},
		MaxConcurrentReconciles: opts.MaxConcurrentReconciles,
		Selector:                opts.WatchLabelSelector,
		IgnoreClusterProjects:   opts.IgnoreClusterProjects,
	}
	if err := reconciler.SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("setting up the SurgeEndUser controller: %w", err)
	}
	projectKinds := []string{surgev1alpha1.KindSurgeProject, surgev1alpha1.KindClusterSurgeProject}
	if opts.IgnoreClusterProjects {
		projectKinds = projectKinds[:1]
	}
	for _, kind := range projectKinds {
		projects := &controller.ProjectReconciler{
			Client:          mgr.GetClient(),
			APIReader:       mgr.GetAPIReader(),
			Recorder:        recorder,
			Remote:          connector,
			Kind:            kind,
			RecheckInterval: opts.ProjectRecheckInterval,
			RemoteTimeout:   opts.RemoteTimeout,
		}
		if err := projects.SetupWithManager(mgr); err != nil {
			return nil, fmt.Errorf("setting up the %s controller: %w", kind, err)
		}
	}
	metrics.WatchManager(mgr.GetCache(), mgr.Elected(), opts.LeaderElectionID)
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return nil, err
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return nil, err
	}
	return mgr, nil
}

func withDefaults(opts Options) Options {
	if opts.SurgeAPIURL == "" {
		opts.SurgeAPIURL = surge.DefaultAPIURL
	}
	if opts.ResyncInterval <= 0 {
		opts.ResyncInterval = DefaultResyncInterval
	}
	if opts.ProjectRecheckInterval <= 0 {
		opts.ProjectRecheckInterval = DefaultProjectRecheckInterval
	}
	if opts.TerminatingNamespaceGrace <= 0 {
		opts.TerminatingNamespaceGrace = DefaultTerminatingNamespaceGrace
	}
	if opts.DeletionBrakeLimit == 0 {
		opts.DeletionBrakeLimit = DefaultDeletionBrakeLimit
	}
	if opts.DeletionBrakeWindow <= 0 {
		opts.DeletionBrakeWindow = DefaultDeletionBrakeWindow
	}
	if opts.DeletionBrakePercent == 0 {
		opts.DeletionBrakePercent = DefaultDeletionBrakePercent
	}
	if opts.MaxConcurrentReconciles <= 0 {
		opts.MaxConcurrentReconciles = DefaultMaxConcurrentReconciles
	}
	if opts.SurgeRequestsPerSecond == 0 {
		opts.SurgeRequestsPerSecond = DefaultSurgeRequestsPerSecond
	}
	if opts.SurgeBurst <= 0 {
		opts.SurgeBurst = DefaultSurgeBurst
	}
	if opts.RemoteTimeout <= 0 {
		opts.RemoteTimeout = DefaultRemoteTimeout
	}
	if opts.SurgeAttemptTimeout <= 0 {
		opts.SurgeAttemptTimeout = DefaultSurgeAttemptTimeout
	}
	if opts.LeaderElectionID == "" {
		opts.LeaderElectionID = "surge-operator.surge.app"
	}
	if opts.LeaseDuration <= 0 {
		opts.LeaseDuration = DefaultLeaseDuration
	}
	if opts.RenewDeadline <= 0 {
		opts.RenewDeadline = DefaultRenewDeadline
	}
	if opts.RetryPeriod <= 0 {
		opts.RetryPeriod = DefaultRetryPeriod
	}
	return opts
}

// cacheOptions caches only the Secrets the operator writes, and of those and
// of SurgeEndUsers only what is read from the cache, so that memory grows
// slowly with end users, and neither a cluster with many Secrets nor large
// Secrets labelled as the operator's swell it.
func cacheOptions(opts Options) cache.Options {
	options := cache.Options{
		// Nothing reads managedFields; dropping them saves memory per object.
		DefaultTransform: cache.TransformStripManagedFields(),
		ByObject: map[client.Object]cache.ByObject{
			&corev1.Secret{}: {
				Label: labels.SelectorFromSet(labels.Set{
					surgev1alpha1.LabelManagedBy: surgev1alpha1.LabelManagedByValue,
				}),
				Transform: controller.SummarizeCachedSecret,
			},
			&surgev1alpha1.SurgeEndUser{}: {Transform: controller.SlimCachedEndUser},
		},
	}
	if len(opts.Namespaces) > 0 {
		options.DefaultNamespaces = make(map[string]cache.Config, len(opts.Namespaces))
		for _, namespace := range opts.Namespaces {
			options.DefaultNamespaces[namespace] = cache.Config{}
		}
	}
	return options
}
