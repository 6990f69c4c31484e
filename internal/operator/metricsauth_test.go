package operator_test

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/surge-operator/surge-operator/internal/operator"
	"github.com/surge-operator/surge-operator/internal/operatortest"
)

// TestMetricsAreServedToAuthorizedScrapersOnly: the metrics endpoint answers
// a ServiceAccount bound to the shipped metrics reader role, and no one else.
func TestMetricsAreServedToAuthorizedScrapersOnly(t *testing.T) {
	cluster, err := operatortest.StartCluster()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cluster.Stop() })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)

	address := freeAddress(t)
	// As the manager's ServiceAccount: checking a scraper takes the
	// metrics auth role that config/rbac binds to it.
	mgr, err := operator.NewManager(cluster.Operator, operator.Options{
		SurgeAPIURL:            "http://127.0.0.1:1",
		MetricsBindAddress:     address,
		SecureMetrics:          true,
		HealthProbeBindAddress: "0",
		Rebuildable:            true,
	})
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = mgr.Start(ctx) }()

	scraper := serviceAccountToken(ctx, t, cluster, "scraper")
	stranger := serviceAccountToken(ctx, t, cluster, "stranger")
	// The reader role is config/rbac's, which the cluster has installed.
	must(t, cluster.Client.Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "scraper-reads-metrics"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "metrics-reader"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: "default", Name: "scraper"}},
	}))

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
				// RBAC takes a moment to see a new binding, and the server
				// a moment to start.
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
