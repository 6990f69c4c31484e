package operator

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"maps"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	authenticationclient "k8s.io/client-go/kubernetes/typed/authentication/v1"
	authorizationclient "k8s.io/client-go/kubernetes/typed/authorization/v1"
	"k8s.io/client-go/rest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
)

const (
	// allowedScrapeTTL is how long a scrape's allowed outcome is kept: a
	// minute, as controller-runtime's filter keeps a token's review, so a
	// revoked token or binding is shut out within it.
	allowedScrapeTTL = time.Minute
	// refusedScrapeTTL is shorter, as controller-runtime keeps a denial 30
	// seconds, so that a scraper just granted the role is let in soon.
	refusedScrapeTTL = 30 * time.Second
	// maxKeptScrapeOutcomes bounds the memory that callers with made-up
	// tokens can take; real scrapers are a handful.
	maxKeptScrapeOutcomes = 1024
	// scrapeReviewTimeout bounds both reviews of a scrape together, so that
	// a slow API server does not hold the scraper's connection open.
	scrapeReviewTimeout = 5 * time.Second
	// maxConcurrentScrapeReviews bounds the reviews in flight. Scrapers
	// whose outcome is kept need none, so only new or expired tokens wait
	// for one, and a burst of them cannot load the API server.
	maxConcurrentScrapeReviews = 4
)

// scrapeLimits are the bounds of the metrics filter's reviews.
type scrapeLimits struct {
	timeout       time.Duration
	maxConcurrent int
	now           func() time.Time
}

// authorizedScrapesOnly is the metrics endpoint's filter: a request must
// carry a bearer token that the API server accepts (a TokenReview), for a
// user the API server allows to get the path (a SubjectAccessReview), as
// the metrics reader ClusterRole grants. It does what controller-runtime's
// own filter does, without the k8s.io/apiserver packages that filter brings
// into the binary: 29 MB of a 78 MB binary, and 21 MB of resident memory in
// make bench at 1,000 users. Prometheus scrapes every 15 to 60 seconds, so
// the outcome of the two reviews is kept for a while.
func authorizedScrapesOnly(cfg *rest.Config, httpClient *http.Client) (metricsserver.Filter, error) {
	return scrapeFilter(cfg, httpClient, scrapeLimits{timeout: scrapeReviewTimeout, maxConcurrent: maxConcurrentScrapeReviews, now: time.Now})
}

func scrapeFilter(cfg *rest.Config, httpClient *http.Client, limits scrapeLimits) (metricsserver.Filter, error) {
	tokenReviews, err := authenticationclient.NewForConfigAndClient(cfg, httpClient)
	if err != nil {
		return nil, fmt.Errorf("building the TokenReview client: %w", err)
	}
	accessReviews, err := authorizationclient.NewForConfigAndClient(cfg, httpClient)
	if err != nil {
		return nil, fmt.Errorf("building the SubjectAccessReview client: %w", err)
	}
	reviewer := &scrapeReviewer{
		tokens:   tokenReviews.TokenReviews(),
		access:   accessReviews.SubjectAccessReviews(),
		timeout:  limits.timeout,
		slots:    make(chan struct{}, limits.maxConcurrent),
		outcomes: &scrapeOutcomes{now: limits.now, kept: map[[sha256.Size]byte]scrapeOutcome{}},
	}
	return func(log logr.Logger, next http.Handler) (http.Handler, error) {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if presentedTrustedCertificate(r) {
				next.ServeHTTP(w, r)
				return
			}
			status, err := reviewer.authorize(r.Context(), r)
			if err != nil {
				log.Error(err, "Cannot check a scrape's credentials")
			}
			if status != http.StatusOK {
				if status == http.StatusServiceUnavailable {
					w.Header().Set("Retry-After", "1")
				}
				http.Error(w, http.StatusText(status), status)
				return
			}
			next.ServeHTTP(w, r)
		}), nil
	}, nil
}

type scrapeReviewer struct {
	tokens   authenticationclient.TokenReviewInterface
	access   authorizationclient.SubjectAccessReviewInterface
	timeout  time.Duration
	slots    chan struct{}
	outcomes *scrapeOutcomes
}

// authorize answers 200 for a request that may go on, and otherwise the
// status to refuse it with: a kept outcome, 503 when the reviews in flight
// are at their bound, or the outcome of new reviews. Errors never hold the
// token.
func (s *scrapeReviewer) authorize(ctx context.Context, r *http.Request) (int, error) {
	token, found := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	token = strings.TrimSpace(token)
	if !found || token == "" {
		return http.StatusUnauthorized, nil
	}
	verb := verbOf(r.Method)
	key := outcomeKey(token, verb, r.URL.Path)
	if status, kept := s.outcomes.get(key); kept {
		return status, nil
	}
	select {
	case s.slots <- struct{}{}:
		defer func() { <-s.slots }()
	default:
		return http.StatusServiceUnavailable, nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	status, err := s.review(ctx, token, verb, r.URL.Path)
	if err == nil {
		s.outcomes.put(key, status)
	}
	return status, err
}

// review asks the API server whether token is valid and its user may use
// verb on path.
func (s *scrapeReviewer) review(ctx context.Context, token, verb, path string) (int, error) {
	tokenReview, err := s.tokens.Create(ctx, &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: token}}, metav1.CreateOptions{})
	if err != nil {
		return http.StatusInternalServerError, fmt.Errorf("reviewing a token: %w", err)
	}
	if !tokenReview.Status.Authenticated {
		return http.StatusUnauthorized, nil
	}
	user := tokenReview.Status.User
	extra := make(map[string]authorizationv1.ExtraValue, len(user.Extra))
	for key, values := range user.Extra {
		extra[key] = authorizationv1.ExtraValue(values)
	}
	accessReview, err := s.access.Create(ctx, &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User:                  user.Username,
		UID:                   user.UID,
		Groups:                user.Groups,
		Extra:                 extra,
		NonResourceAttributes: &authorizationv1.NonResourceAttributes{Path: path, Verb: verb},
	}}, metav1.CreateOptions{})
	if err != nil {
		return http.StatusInternalServerError, fmt.Errorf("reviewing the access of %s: %w", user.Username, err)
	}
	if !accessReview.Status.Allowed {
		return http.StatusForbidden, nil
	}
	return http.StatusOK, nil
}

// outcomeKey names a scrape's outcome by a digest of its token, so that the
// tokens themselves are not kept, and by what it asked for, which the
// access review depends on.
func outcomeKey(token, verb, path string) [sha256.Size]byte {
	return sha256.Sum256([]byte(token + "\x00" + verb + "\x00" + path))
}

type scrapeOutcome struct {
	status  int
	expires time.Time
}

// scrapeOutcomes keeps the outcomes of recent reviews, allowed ones for
// allowedScrapeTTL and refusals for refusedScrapeTTL. Failed reviews are
// not kept: they are tried again at the next scrape.
type scrapeOutcomes struct {
	now  func() time.Time
	mu   sync.Mutex
	kept map[[sha256.Size]byte]scrapeOutcome
}

func (o *scrapeOutcomes) get(key [sha256.Size]byte) (int, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	outcome, found := o.kept[key]
	if !found || !o.now().Before(outcome.expires) {
		return 0, false
	}
	return outcome.status, true
}

func (o *scrapeOutcomes) put(key [sha256.Size]byte, status int) {
	ttl := refusedScrapeTTL
	if status == http.StatusOK {
		ttl = allowedScrapeTTL
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	now := o.now()
	if len(o.kept) >= maxKeptScrapeOutcomes {
		maps.DeleteFunc(o.kept, func(_ [sha256.Size]byte, outcome scrapeOutcome) bool { return !now.Before(outcome.expires) })
	}
	if _, replaces := o.kept[key]; !replaces && len(o.kept) >= maxKeptScrapeOutcomes {
		// Full of outcomes still valid: those stay, so that a flood of
		// made-up tokens cannot push out the scrapers already kept.
		return
	}
	o.kept[key] = scrapeOutcome{status: status, expires: now.Add(ttl)}
}

// verbOf is the verb RBAC rules name for an HTTP method on a non-resource
// path.
func verbOf(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead:
		return "get"
	case http.MethodPost:
		return "create"
	case http.MethodPut:
		return "update"
	}
	return strings.ToLower(method)
}

// clientCertificatesFrom makes the metrics endpoint ask scrapers for a
// client certificate, and verify one signed by a CA of the PEM bundle at
// path: the mutual TLS of a ServiceMonitor whose certificate comes from a
// Secret, which needs no token.
func clientCertificatesFrom(path string) (func(*tls.Config), error) {
	bundle, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading --metrics-client-ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(bundle) {
		return nil, fmt.Errorf("--metrics-client-ca %s holds no PEM certificate", path)
	}
	return func(c *tls.Config) {
		c.ClientAuth = tls.VerifyClientCertIfGiven
		c.ClientCAs = pool
	}, nil
}

// presentedTrustedCertificate says whether the scraper presented a client
// certificate that a CA of --metrics-client-ca signed: TLS verified it, or
// the handshake would have failed.
func presentedTrustedCertificate(r *http.Request) bool {
	return r.TLS != nil && len(r.TLS.VerifiedChains) > 0
}
