package operator_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/surge-operator/surge-operator/internal/operator"
)

// TestMetricsOverMutualTLS: with --metrics-cert-dir and --metrics-client-ca,
// as the chart sets them for its ServiceMonitor, a scraper verifies the
// endpoint's certificate, and one presenting a certificate of the CA reads
// metrics without a token; with a certificate of another CA, or none, a
// token is still needed.
func TestMetricsOverMutualTLS(t *testing.T) {
	ca := newTestCA(t, "metrics CA")
	stranger := newTestCA(t, "another CA")
	dir := t.TempDir()
	serving := ca.issue(t, "surge-operator-metrics", x509.ExtKeyUsageServerAuth)
	must(t, os.WriteFile(filepath.Join(dir, "tls.crt"), serving.certPEM, 0o600))
	must(t, os.WriteFile(filepath.Join(dir, "tls.key"), serving.keyPEM, 0o600))
	must(t, os.WriteFile(filepath.Join(dir, "ca.crt"), ca.certPEM, 0o600))

	_, _, address := startMetricsServer(t, operator.Options{
		MetricsCertDir:      dir,
		MetricsClientCAFile: filepath.Join(dir, "ca.crt"),
	})

	scrapeWith := func(client *keyPair) (int, error) {
		config := &tls.Config{RootCAs: ca.pool(), ServerName: "surge-operator-metrics"}
		if client != nil {
			cert, err := tls.X509KeyPair(client.certPEM, client.keyPEM)
			if err != nil {
				t.Fatal(err)
			}
			config.Certificates = []tls.Certificate{cert}
		}
		httpClient := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: config}}
		resp, err := httpClient.Get("https://" + address + "/metrics")
		if err != nil {
			return 0, err
		}
		_ = resp.Body.Close()
		return resp.StatusCode, nil
	}
	prometheus := ca.issue(t, "prometheus", x509.ExtKeyUsageClientAuth)
	var status int
	var err error
	deadline := time.Now().Add(30 * time.Second)
	for {
		// The server takes a moment to start.
		status, err = scrapeWith(&prometheus)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil || status != http.StatusOK {
		t.Errorf("a scraper with a certificate of the CA, verifying the endpoint's: status %d, %v; want 200", status, err)
	}
	impostor := stranger.issue(t, "prometheus", x509.ExtKeyUsageClientAuth)
	// Go's TLS client holds back a certificate that the CAs the server
	// names did not sign, and the server would refuse it: either way, no
	// metrics without a token.
	if status, err := scrapeWith(&impostor); err == nil && status != http.StatusUnauthorized {
		t.Errorf("a scraper with a certificate of another CA: status %d, want it refused", status)
	}
	if status, err := scrapeWith(nil); err != nil || status != http.StatusUnauthorized {
		t.Errorf("a scraper without a certificate or a token: status %d, %v; want 401", status, err)
	}
}

type keyPair struct {
	cert            *x509.Certificate
	key             *ecdsa.PrivateKey
	certPEM, keyPEM []byte
}

type testCA struct{ keyPair }

func newTestCA(t *testing.T, name string) testCA {
	t.Helper()
	template := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	return testCA{signed(t, template, nil)}
}

// issue signs a certificate for name, valid for it as a DNS name and for
// 127.0.0.1.
func (ca testCA) issue(t *testing.T, name string, usage x509.ExtKeyUsage) keyPair {
	t.Helper()
	template := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: name},
		DNSNames:     []string{name},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
	}
	return signed(t, template, &ca.keyPair)
}

func (ca testCA) pool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	return pool
}

// signed makes a key and a certificate of template, signed by parent or,
// without one, by itself.
func signed(t *testing.T, template *x509.Certificate, parent *keyPair) keyPair {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	issuer, signer := template, key
	if parent != nil {
		issuer, signer = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, template, issuer, &key.PublicKey, signer)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return keyPair{
		cert:    cert,
		key:     key,
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyPEM:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
	}
}
