package cli_test

import (
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	surgev1alpha1 "github.com/surge-operator/surge-operator/api/v1alpha1"
	"github.com/surge-operator/surge-operator/internal/operator"
	"github.com/surge-operator/surge-operator/pkg/surgetest"
)

// TestCheckSaysWhatStandsInTheWay: with the operator leading and a project
// whose key Surge accepts, every check passes; a revoked key and a wrong
// operator namespace each fail their line, and the command exits 1.
func TestCheckSaysWhatStandsInTheWay(t *testing.T) {
	const key = "sk_live_cli_check_key"
	w := newWorld(t, false)
	surgetest.StartOperator(t, cfg, w.surge, surgetest.WithNamespaces(w.namespace), func(o *operator.Options) {
		o.LeaderElection = true
		o.LeaderElectionNamespace = w.namespace
	})
	w.surge.AddProject("team", key, w.account)
	for _, obj := range []client.Object{
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: w.namespace, Name: "surge-key"},
			Data: map[string][]byte{surgev1alpha1.DefaultAPIKeySecretKey: []byte(key)}},
		&surgev1alpha1.SurgeProject{ObjectMeta: metav1.ObjectMeta{Namespace: w.namespace, Name: "surge"},
			Spec: surgev1alpha1.SurgeProjectSpec{APIKeySecretRef: surgev1alpha1.SecretKeyReference{Name: "surge-key"}}},
	} {
		if err := k8s.Create(w.ctx, obj); err != nil {
			t.Fatal(err)
		}
	}
	project := "SurgeProject " + w.namespace + "/surge"

	var out string
	w.eventually("every check passes", func() (bool, string) {
		var err error
		out, _, err = w.kubectlSurge("check", "--operator-namespace", w.namespace)
		return err == nil, out
	})
	for _, line := range []string{"ok    CRDs: ", "ok    operator: leader ", "ok    " + project + ": Surge accepts its key", "ok    Surge: answered the operator's key check of " + project} {
		if !strings.Contains(out, line) {
			t.Errorf("check printed\n%s\nwant a line starting %q", out, line)
		}
	}

	asYAML := w.mustRun("check", "--operator-namespace", w.namespace, "-o", "yaml")
	if !strings.Contains(asYAML, "- check: operator\n  detail: leader ") || strings.Contains(asYAML, "ok: false") {
		t.Errorf("check -o yaml printed\n%s", asYAML)
	}

	out, _, err := w.kubectlSurge("check", "--operator-namespace", "nowhere")
	if err == nil || !strings.Contains(out, "FAIL  operator: no Lease surge-operator.surge.app in namespace nowhere") {
		t.Errorf("check without the operator's Lease: %v, printed\n%s", err, out)
	}

	w.surge.RevokeAPIKey(key)
	w.eventually("the revoked key fails its check", func() (bool, string) {
		out, _, err := w.kubectlSurge("check", "--operator-namespace", w.namespace)
		return err != nil && strings.Contains(out, fmt.Sprintf("FAIL  %s: Ready=False (%s)", project, surgev1alpha1.ReasonAPIKeyRejected)), out
	})
}
