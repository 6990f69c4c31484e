// Command manager runs the surge-operator: it keeps Surge end users equal to
// SurgeEndUser resources.
package main

import (
	"flag"
	"fmt"
	"math"
	"os"
	"strings"

	"github.com/KimMachineGun/automemlimit/memlimit"
	"k8s.io/apimachinery/pkg/labels"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/surge-operator/surge-operator/internal/operator"
	"github.com/surge-operator/surge-operator/internal/surge"
	"github.com/surge-operator/surge-operator/internal/version"
)

func main() {
	opts := operator.Options{}
	defaultURL := surge.DefaultAPIURL
	if fromEnv := os.Getenv("SURGE_API_URL"); fromEnv != "" {
		defaultURL = fromEnv
	}
	flag.StringVar(&opts.SurgeAPIURL, "surge-api-url", defaultURL, "Base URL of the Surge API (env SURGE_API_URL).")
	flag.BoolVar(&opts.AllowInsecureSurgeAPIURL, "allow-insecure-surge-api-url", false, "Accept a plain http:// --surge-api-url on a host other than localhost, which sends the API key in clear; for a trusted network only.")
	flag.DurationVar(&opts.ResyncInterval, "resync-interval", operator.DefaultResyncInterval, "How often a settled SurgeEndUser is compared with Surge.")
	flag.IntVar(&opts.DeletionBrakeLimit, "deletion-brake-limit", operator.DefaultDeletionBrakeLimit, "How many end users a project may delete in Surge within --deletion-brake-window before the mass-deletion brake holds the rest until a person releases them; negative turns the brake off.")
	flag.DurationVar(&opts.DeletionBrakeWindow, "deletion-brake-window", operator.DefaultDeletionBrakeWindow, "The window of --deletion-brake-limit.")
	flag.IntVar(&opts.DeletionBrakePercent, "deletion-brake-percent", operator.DefaultDeletionBrakePercent, "Lowers --deletion-brake-limit to this share of a project's SurgeEndUsers, never below 5; negative leaves the share out.")
	flag.DurationVar(&opts.TerminatingNamespaceGrace, "terminating-namespace-grace", operator.DefaultTerminatingNamespaceGrace, "How long a SurgeEndUser whose namespace is being deleted waits for a stall of its deletion (a revoked key, a key Secret gone) to be lifted before it goes and leaves its user in Surge.")
	flag.IntVar(&opts.MaxConcurrentReconciles, "max-concurrent-reconciles", operator.DefaultMaxConcurrentReconciles, "How many SurgeEndUsers are reconciled at once.")
	flag.Float64Var(&opts.SurgeRequestsPerSecond, "surge-requests-per-second", operator.DefaultSurgeRequestsPerSecond, "Ceiling of the adaptive rate of Surge API requests per second, per API key: the client slows down on 429s and climbs back up to it; set it to what Surge's terms grant a key (a negative value: no client-side pacing).")
	flag.IntVar(&opts.SurgeBurst, "surge-burst", operator.DefaultSurgeBurst, "Most requests sent at once above the adaptive rate; at low rates the client allows less, half a second's worth.")
	flag.DurationVar(&opts.SurgeAttemptTimeout, "surge-request-timeout", operator.DefaultSurgeAttemptTimeout, "How long one request to Surge may take. A create whose answer was lost is settled only once twice this has passed since it was sent, since Surge may still commit it; a resource is checked again that long after an update.")
	flag.StringVar(&opts.MetricsBindAddress, "metrics-bind-address", ":8443", "Address the metrics endpoint binds to; 0 turns it off.")
	flag.BoolVar(&opts.SecureMetrics, "metrics-secure", true, "Serve metrics over HTTPS, for authenticated and authorized clients only.")
	flag.StringVar(&opts.MetricsCertDir, "metrics-cert-dir", "", "Directory holding tls.crt and tls.key, the metrics endpoint's certificate (a kubernetes.io/tls Secret's keys), reloaded when they change; empty: a self-signed one.")
	flag.StringVar(&opts.MetricsClientCAFile, "metrics-client-ca", "", "PEM file of CAs: a scraper presenting a client certificate they signed may read metrics without a token (mutual TLS).")
	flag.StringVar(&opts.HealthProbeBindAddress, "health-probe-bind-address", ":8081", "Address the health probes bind to; 0 turns them off.")
	flag.StringVar(&opts.PprofBindAddress, "pprof-bind-address", "0", "Address net/http/pprof is served on, for profiling; 0 turns it off. Serve it on localhost only: it is not authenticated.")
	flag.BoolVar(&opts.LeaderElection, "leader-elect", false, "Elect a leader, so that only one replica reconciles at a time.")
	flag.StringVar(&opts.LeaderElectionNamespace, "leader-election-namespace", operator.InClusterNamespace(), "Namespace of the leader election Lease; in a cluster, the pod's own namespace. Required with --leader-elect outside a cluster.")
	flag.DurationVar(&opts.LeaseDuration, "leader-election-lease-duration", operator.DefaultLeaseDuration, "How long a standby waits after the leader's last renewal before taking over.")
	flag.DurationVar(&opts.RenewDeadline, "leader-election-renew-deadline", operator.DefaultRenewDeadline, "How long the leader retries renewing before it gives up leadership and exits; less than the lease duration.")
	flag.DurationVar(&opts.RetryPeriod, "leader-election-retry-period", operator.DefaultRetryPeriod, "How often the leader renews and a standby tries to acquire the Lease.")
	flag.StringVar(&opts.LeaderElectionID, "leader-election-id", "", "Name of the leader election Lease; each shard needs its own (default surge-operator.surge.app).")
	var watchNamespaces, allowedURLs, watchLabelSelector string
	flag.StringVar(&watchLabelSelector, "watch-label-selector", "", "Reconcile only the SurgeEndUsers whose labels match this selector, such as surge.app/shard=b or 'surge.app/shard notin (b,c)': one shard of several instances. Empty reconciles all.")
	flag.StringVar(&allowedURLs, "allowed-surge-api-urls", "", "Comma-separated Surge API URLs a namespaced SurgeProject may name in spec.apiURL, besides --surge-api-url.")
	flag.StringVar(&watchNamespaces, "watch-namespace", "", "Comma-separated namespaces to watch; empty watches all.")
	clusterProjects := flag.Bool("cluster-projects", true, "Serve ClusterSurgeProjects. An installation scoped to some namespaces (--watch-namespace) with namespace-scoped RBAC sets it to false: it neither reads nor serves them, and refuses SurgeEndUsers that name one.")
	printVersion := flag.Bool("version", false, "Print the version, the commit and the source's date, and exit.")
	zapOptions := zap.Options{}
	zapOptions.BindFlags(flag.CommandLine)
	flag.Parse()
	if *printVersion {
		fmt.Print(version.Get())
		return
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOptions)))
	log := ctrl.Log.WithName("setup")

	// A GOMEMLIMIT set in the environment is the runtime's own, and wins.
	memoryLimit, err := memlimit.Set(memlimit.WithRatio(operator.MemoryLimitShare),
		memlimit.WithProvider(operator.ContainerMemoryLimit(os.Getenv)))
	if err != nil {
		log.Error(err, "Cannot read the container's memory limit")
		os.Exit(1)
	}
	if memoryLimit < math.MaxInt64 {
		log.Info("Go memory limit", "bytes", memoryLimit)
	}

	opts.SurgeAPIKey = os.Getenv("SURGE_API_KEY")
	opts.IgnoreClusterProjects = !*clusterProjects
	if allowedURLs != "" {
		opts.AllowedSurgeAPIURLs = strings.Split(allowedURLs, ",")
	}
	if watchNamespaces != "" {
		opts.Namespaces = strings.Split(watchNamespaces, ",")
	}
	if watchLabelSelector != "" {
		if opts.WatchLabelSelector, err = labels.Parse(watchLabelSelector); err != nil {
			log.Error(err, "Invalid --watch-label-selector")
			os.Exit(1)
		}
	}
	cfg, err := ctrl.GetConfig()
	if err != nil {
		log.Error(err, "Cannot reach Kubernetes")
		os.Exit(1)
	}
	mgr, err := operator.NewManager(cfg, opts)
	if err != nil {
		log.Error(err, "Cannot start the operator")
		os.Exit(1)
	}
	build := version.Get()
	log.Info("Starting the operator", "version", build.Version, "commit", build.Commit, "surgeAPIURL", surge.LoggableURL(opts.SurgeAPIURL), "resyncInterval", opts.ResyncInterval)
	if err := mgr.Start(ctrl.SetupSignalHandler()); err != nil {
		log.Error(err, "The operator stopped")
		os.Exit(1)
	}
}
