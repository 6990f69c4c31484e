package operator_test

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/surge-operator/surge-operator/internal/operator"
	"github.com/surge-operator/surge-operator/internal/operatortest"
)

// TestMetricsAreServedToAuthorizedScrapersOnly: the metrics endpoint answers
// a ServiceAccount bound to the shipped metrics reader role, and no one else.
func TestMetricsAreServedToAuthorizedScrapersOnly(t *testing.T) {
	ctx, cluster, address := startMetricsServer(t, operator.Options{})

	scraper := serviceAccountToken(ctx, t, cluster, "scraper")
	stranger := serviceAccountToken(ctx, t, cluster, "stranger")
	letScraperReadMetrics(ctx, t, cluster)

	cases := []struct {
		name  string
		token string
		want  int
	}{
		{"the scraper", scraper, http.StatusOK},
		{"a ServiceAccount without the role", stranger, http.StatusForbidden},
		{"no token", "", http.StatusUnauthorized},
		{"a forged token", "not-a-token", http.StatusUnauthorized},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var status int
			var body string
			deadline := time.Now().Add(30 * time.Second)
			for {
				status, body = scrape(t, address, c.token)
				// The server takes a moment to start.
				if status == c.want || time.Now().After(deadline) {
					break
				}
				time.Sleep(200 * time.Millisecond)
			}
			if status != c.want {
				t.Fatalf("status %d, want %d", status, c.want)
			}
			if c.want == http.StatusOK && len(body) == 0 {
				t.Error("no metrics in the answer")
			}
		})
	}
}

// startMetricsServer starts an API server and, on it, the manager with
// opts serving secure metrics on a free local address, as the manager's
// ServiceAccount: checking a scraper takes the metrics auth role that
// config/rbac binds to it. It returns the test's context, the cluster and
// the address.
func startMetricsServer(t *testing.T, opts operator.Options) (context.Context, *operatortest.Cluster, string) {
	t.Helper()
	cluster, err := operatortest.StartCluster()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cluster.Stop() })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)

	address := freeAddress(t)
	opts.SurgeAPIURL = "http://127.0.0.1:1"
	opts.MetricsBindAddress = address
	opts.SecureMetrics = true
	opts.HealthProbeBindAddress = "0"
	opts.Rebuildable = true
	mgr, err := operator.NewManager(cluster.Operator, opts)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = mgr.Start(ctx) }()
	return ctx, cluster, address
}

func serviceAccountToken(ctx context.Context, t *testing.T, cluster *operatortest.Cluster, name string) string {
	t.Helper()
	must(t, cluster.Client.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name}}))
	clientset, err := kubernetes.NewForConfig(cluster.Config)
	if err != nil {
		t.Fatal(err)
	}
	request, err := clientset.CoreV1().ServiceAccounts("default").CreateToken(ctx, name, &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return request.Status.Token
}

func scrape(t *testing.T, address, token string) (int, string) {
	t.Helper()
	// The manager serves metrics with a certificate of its own making.
	httpClient := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	req, err := http.NewRequest(http.MethodGet, "https://"+address+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer func() { _ = resp.Body.Close() }()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func freeAddress(t *testing.T) string {
	t.Helper()
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = listener.Close() }()
	return listener.Addr().String()
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// reviewCounter passes the filter's requests to the API server, counting
// the TokenReviews and SubjectAccessReviews among them. While held, a
// review waits until it is let go or its request gives up.
type reviewCounter struct {
	next    http.RoundTripper
	reviews atomic.Int64
	waiting atomic.Int64

	mu   sync.Mutex
	hold chan struct{}
}

func (c *reviewCounter) RoundTrip(req *http.Request) (*http.Response, error) {
	if strings.HasSuffix(req.URL.Path, "/tokenreviews") || strings.HasSuffix(req.URL.Path, "/subjectaccessreviews") {
		c.reviews.Add(1)
		c.mu.Lock()
		hold := c.hold
		c.mu.Unlock()
		if hold != nil {
			c.waiting.Add(1)
			select {
			case <-hold:
				c.waiting.Add(-1)
			case <-req.Context().Done():
				c.waiting.Add(-1)
				return nil, req.Context().Err()
			}
		}
	}
	return c.next.RoundTrip(req)
}

// holdReviews makes reviews wait from now on; the returned function lets
// them go.
func (c *reviewCounter) holdReviews() (letGo func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	hold := make(chan struct{})
	c.hold = hold
	return func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.hold = nil
		close(hold)
	}
}

// TestMetricsReviewsAreCachedTimedAndBounded: the outcome of a scrape's
// reviews is kept a while, keyed by its token, a review that hangs is
// given up, and reviews beyond the bound are turned away at once.
func TestMetricsReviewsAreCachedTimedAndBounded(t *testing.T) {
	cluster, err := operatortest.StartCluster()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cluster.Stop() })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)

	scraper := serviceAccountToken(ctx, t, cluster, "scraper")
	stranger := serviceAccountToken(ctx, t, cluster, "stranger")
	letScraperReadMetrics(ctx, t, cluster)

	httpClient, err := rest.HTTPClientFor(cluster.Config)
	if err != nil {
		t.Fatal(err)
	}
	counter := &reviewCounter{next: httpClient.Transport}
	httpClient.Transport = counter
	clock := clocktesting.NewFakeClock(time.Now())
	const timeout, maxConcurrent = 2 * time.Second, 2
	filter, err := operator.ScrapeFilter(cluster.Config, httpClient, timeout, maxConcurrent, clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	handler, err := filter(logr.Discard(), http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("metrics\n"))
	}))
	if err != nil {
		t.Fatal(err)
	}
	endpoint := httptest.NewTLSServer(handler)
	t.Cleanup(endpoint.Close)
	address := endpoint.Listener.Addr().String()

	// scrapeCounting scrapes with token and returns the status and the
	// reviews the scrape made.
	scrapeCounting := func(t *testing.T, token string) (int, int64) {
		t.Helper()
		before := counter.reviews.Load()
		status, _ := scrape(t, address, token)
		return status, counter.reviews.Load() - before
	}
	expect := func(t *testing.T, what, token string, wantStatus int, wantReviews int64) {
		t.Helper()
		if status, reviews := scrapeCounting(t, token); status != wantStatus || reviews != wantReviews {
			t.Errorf("%s: status %d after %d reviews, want %d after %d", what, status, reviews, wantStatus, wantReviews)
		}
	}

	t.Run("an allowed token is reviewed once a minute", func(t *testing.T) {
		expect(t, "first scrape", scraper, http.StatusOK, 2)
		expect(t, "second scrape", scraper, http.StatusOK, 0)
		clock.Step(59 * time.Second)
		expect(t, "scrape within the minute", scraper, http.StatusOK, 0)
		clock.Step(2 * time.Second)
		expect(t, "scrape after the minute", scraper, http.StatusOK, 2)
	})
	t.Run("a refused token is reviewed again sooner", func(t *testing.T) {
		expect(t, "first scrape without the role", stranger, http.StatusForbidden, 2)
		expect(t, "second scrape without the role", stranger, http.StatusForbidden, 0)
		expect(t, "first forged token", "not-a-token", http.StatusUnauthorized, 1)
		expect(t, "second forged token", "not-a-token", http.StatusUnauthorized, 0)
		clock.Step(31 * time.Second)
		expect(t, "scrape without the role after 30 s", stranger, http.StatusForbidden, 2)
		expect(t, "forged token after 30 s", "not-a-token", http.StatusUnauthorized, 1)
		expect(t, "scraper within its minute", scraper, http.StatusOK, 0)
	})
	t.Run("a review that hangs is given up", func(t *testing.T) {
		clock.Step(2 * time.Minute)
		letGo := counter.holdReviews()
		defer letGo()
		start := time.Now()
		if status, _ := scrapeCounting(t, scraper); status != http.StatusInternalServerError {
			t.Errorf("a scrape whose review hangs: status %d, want 500", status)
		}
		if took := time.Since(start); took > timeout+time.Second {
			t.Errorf("a scrape whose review hangs took %v, want about %v", took, timeout)
		}
	})
	t.Run("reviews beyond the bound are turned away", func(t *testing.T) {
		clock.Step(2 * time.Minute)
		letGo := counter.holdReviews()
		statuses := make(chan int, maxConcurrent)
		for range maxConcurrent {
			go func() {
				status, _ := scrape(t, address, scraper)
				statuses <- status
			}()
		}
		deadline := time.Now().Add(timeout / 2)
		for counter.waiting.Load() < maxConcurrent && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if status, _ := scrapeCounting(t, stranger); status != http.StatusServiceUnavailable {
			t.Errorf("a scrape while %d reviews are under way: status %d, want 503", maxConcurrent, status)
		}
		letGo()
		for range maxConcurrent {
			if status := <-statuses; status != http.StatusOK {
				t.Errorf("a scrape whose review was held: status %d, want 200", status)
			}
		}
	})
}

// waitUntilAllowed waits until RBAC lets user get /metrics, so that the
// filter's first review already sees the binding.
func waitUntilAllowed(ctx context.Context, t *testing.T, cfg *rest.Config, user string) {
	t.Helper()
	clientset, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		review, err := clientset.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User:                  user,
			Groups:                []string{"system:serviceaccounts", "system:serviceaccounts:default", "system:authenticated"},
			NonResourceAttributes: &authorizationv1.NonResourceAttributes{Path: "/metrics", Verb: "get"},
		}}, metav1.CreateOptions{})
		if err == nil && review.Status.Allowed {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("RBAC does not let %s get /metrics: %v, %+v", user, err, review)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// letScraperReadMetrics binds config/rbac's metrics-reader ClusterRole, which
// the cluster has installed, to the ServiceAccount default/scraper, and
// waits until the authorizer says so: a refusal is kept for a while, so the
// first scrape must already see the binding.
func letScraperReadMetrics(ctx context.Context, t *testing.T, cluster *operatortest.Cluster) {
	t.Helper()
	must(t, cluster.Client.Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "scraper-reads-metrics"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "metrics-reader"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: "default", Name: "scraper"}},
	}))
	waitUntilAllowed(ctx, t, cluster.Config, "system:serviceaccount:default:scraper")
}
