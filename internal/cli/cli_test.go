package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	surgev1alpha1 "github.com/surge-operator/surge-operator/api/v1alpha1"
	"github.com/surge-operator/surge-operator/internal/cli"
	"github.com/surge-operator/surge-operator/pkg/surgetest"
)

var (
	cfg        *rest.Config
	k8s        client.Client
	kubeconfig string
	worlds     atomic.Int64
)

// TestMain runs one API server for the package, and gives kubectl surge a
// kubeconfig file for it, as a person's would be.
func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	env := &envtest.Environment{CRDs: surgetest.CRDs()}
	var err error
	cfg, err = env.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting envtest (run through make test, which builds its binaries):", err)
		return 1
	}
	defer func() { _ = env.Stop() }()
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = surgev1alpha1.AddToScheme(scheme)
	if k8s, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	admin, err := env.AddUser(envtest.User{Name: "kubectl-surge-test", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	raw, err := admin.KubeConfig()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	dir, err := os.MkdirTemp("", "kubectl-surge-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = os.RemoveAll(dir) }()
	kubeconfig = filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kubeconfig, raw, 0o600); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// world is one test's namespace, emulator with one account, and operator
// watching that namespace.
type world struct {
	t         *testing.T
	ctx       context.Context
	namespace string
	account   string
	surge     *surgetest.Emulator
	env       map[string]string
}

func newWorld(t *testing.T, startOperator bool) *world {
	t.Helper()
	n := worlds.Add(1)
	w := &world{
		t:         t,
		ctx:       context.Background(),
		namespace: fmt.Sprintf("cli-%d", n),
		account:   fmt.Sprintf("acct_01j9a43avnfqzbjfch6pygv%03d", n),
		surge:     surgetest.NewEmulator(t),
	}
	w.surge.AddAccount(w.account)
	w.env = map[string]string{"SURGE_API_URL": w.surge.URL()}
	if err := k8s.Create(w.ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: w.namespace}}); err != nil {
		t.Fatal(err)
	}
	if startOperator {
		surgetest.StartOperator(t, cfg, w.surge, surgetest.WithNamespaces(w.namespace), surgetest.WithResyncInterval(time.Minute))
	}
	return w
}

// kubectlSurge runs kubectl surge with the test's kubeconfig and the
// world's namespace, as kubectl would run the plugin.
func (w *world) kubectlSurge(args ...string) (stdout, stderr string, err error) {
	w.t.Helper()
	var out, errOut bytes.Buffer
	args = append(args, "--kubeconfig", kubeconfig, "-n", w.namespace)
	code := cli.Run(w.ctx, args, cli.Streams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut}, func(key string) string { return w.env[key] })
	if code != 0 {
		err = fmt.Errorf("kubectl surge %s exited %d", strings.Join(args, " "), code)
	}
	return out.String(), errOut.String(), err
}

func (w *world) mustRun(args ...string) string {
	w.t.Helper()
	stdout, stderr, err := w.kubectlSurge(args...)
	if err != nil {
		w.t.Fatalf("%v\nstdout:\n%s\nstderr:\n%s", err, stdout, stderr)
	}
	return stdout
}

func (w *world) endUser(name string, mutate ...func(*surgev1alpha1.SurgeEndUser)) *surgev1alpha1.SurgeEndUser {
	obj := &surgev1alpha1.SurgeEndUser{
		ObjectMeta: metav1.ObjectMeta{Namespace: w.namespace, Name: name},
		Spec:       surgev1alpha1.SurgeEndUserSpec{AccountID: w.account, FirstName: "Ada", LastName: "Lovelace"},
	}
	for _, m := range mutate {
		m(obj)
	}
	if err := k8s.Create(w.ctx, obj); err != nil {
		w.t.Fatalf("creating %s: %v", name, err)
	}
	return obj
}

func (w *world) get(name string) *surgev1alpha1.SurgeEndUser {
	w.t.Helper()
	obj := &surgev1alpha1.SurgeEndUser{}
	if err := k8s.Get(w.ctx, client.ObjectKey{Namespace: w.namespace, Name: name}, obj); err != nil {
		w.t.Fatal(err)
	}
	return obj
}

func (w *world) eventually(what string, check func() (bool, string)) {
	w.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok, why := check()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("%s: not within 30s: %s", what, why)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (w *world) waitForCondition(name, conditionType string, status metav1.ConditionStatus) *surgev1alpha1.SurgeEndUser {
	w.t.Helper()
	var obj *surgev1alpha1.SurgeEndUser
	w.eventually(fmt.Sprintf("%s %s=%s", name, conditionType, status), func() (bool, string) {
		obj = w.get(name)
		condition := apimeta.FindStatusCondition(obj.Status.Conditions, conditionType)
		return condition != nil && condition.Status == status, fmt.Sprintf("conditions %+v", obj.Status.Conditions)
	})
	return obj
}

func withToken(o *surgev1alpha1.SurgeEndUser) {
	o.Spec.TokenSecret = &surgev1alpha1.TokenSecretSpec{Name: o.Name + "-token", DurationSeconds: 900}
}

func TestStatusOfAReadyEndUser(t *testing.T) {
	w := newWorld(t, true)
	w.endUser("ada", withToken)
	obj := w.waitForCondition("ada", surgev1alpha1.ConditionReady, metav1.ConditionTrue)
	w.eventually("the token recorded", func() (bool, string) { return w.get("ada").Status.Token != nil, "no status.token" })

	out := w.mustRun("status", "ada")
	for _, want := range []string{
		"SurgeEndUser:     " + w.namespace + "/ada\n",
		"Ready:            True (Synced)",
		"User:             " + obj.Status.UserID + "\n",
		"Project:          none: the operator's own API key",
		"Token:            Secret ada-token; token expires ",
		"Created end user " + obj.Status.UserID,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status printed\n%s\nwant it to hold %q", out, want)
		}
	}
	if strings.Contains(out, "Why not Ready") {
		t.Errorf("a Ready resource was explained:\n%s", out)
	}
	secret := &corev1.Secret{}
	if err := k8s.Get(w.ctx, client.ObjectKey{Namespace: w.namespace, Name: "ada-token"}, secret); err != nil {
		t.Fatal(err)
	}
	if token := string(secret.Data["token"]); token == "" || strings.Contains(out, token) {
		t.Errorf("status printed the token, or there is none")
	}

	var doc struct {
		Name   string `json:"name"`
		UserID string `json:"userID"`
		Ready  struct {
			Status string `json:"status"`
		} `json:"ready"`
		Events []struct {
			Reason string `json:"reason"`
		} `json:"events"`
	}
	asJSON := w.mustRun("status", "ada", "-o", "json")
	if err := json.Unmarshal([]byte(asJSON), &doc); err != nil {
		t.Fatalf("status -o json printed what is not JSON: %v\n%s", err, asJSON)
	}
	if doc.Name != "ada" || doc.UserID != obj.Status.UserID || doc.Ready.Status != "True" || len(doc.Events) == 0 {
		t.Errorf("status -o json = %+v", doc)
	}
	if asYAML := w.mustRun("status", "ada", "-o", "yaml"); !strings.Contains(asYAML, "userID: "+obj.Status.UserID+"\n") {
		t.Errorf("status -o yaml printed\n%s", asYAML)
	}
}

// TestWrongArgumentsFailBeforeAnyCall: no cluster is reached (the server
// named does not answer), and the error says what to use.
func TestWrongArgumentsFailBeforeAnyCall(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"status", "ada", "-o", "table"}, []string{`unknown --output "table": use json or yaml`}},
		{[]string{"status"}, []string{"accepts 1 arg(s), received 0", "Usage:\n  kubectl surge status NAME"}},
		{[]string{"release-deletions", "a", "b"}, []string{"accepts 1 arg(s), received 2", "Usage:\n  kubectl surge release-deletions PROJECT"}},
		{[]string{"check", "--no-such-flag"}, []string{"unknown flag: --no-such-flag", "Usage:\n  kubectl surge check"}},
	} {
		var out, errOut bytes.Buffer
		args := append(tc.args, "--server", "https://127.0.0.1:1")
		code := cli.Run(context.Background(), args, cli.Streams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut}, func(string) string { return "" })
		for _, want := range tc.want {
			if code == 0 || !strings.Contains(errOut.String(), want) {
				t.Errorf("kubectl surge %s: exit %d, printed\n%s%s\nwant %q", strings.Join(tc.args, " "), code, out.String(), errOut.String(), want)
			}
		}
	}
}

func TestStatusSaysWhyNotReady(t *testing.T) {
	w := newWorld(t, true)
	w.endUser("stray", func(o *surgev1alpha1.SurgeEndUser) {
		o.Spec.ProjectRef = &surgev1alpha1.ProjectReference{Kind: surgev1alpha1.KindSurgeProject, Name: "missing"}
	})
	w.waitForCondition("stray", surgev1alpha1.ConditionStalled, metav1.ConditionTrue)

	out := w.mustRun("status", "stray")
	for _, want := range []string{
		"Ready:            False (ProjectNotFound)",
		"Project:          SurgeProject " + w.namespace + "/missing, which does not exist\n",
		"Why not Ready:\n  - Ready is False with reason ProjectNotFound: SurgeProject " + w.namespace + "/missing does not exist",
		"Create the project spec.projectRef names",
		"It is stalled",
		"Warning  Failed",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status printed\n%s\nwant it to hold %q", out, want)
		}
	}
}

func TestStatusOfAResourceNoOperatorWatches(t *testing.T) {
	w := newWorld(t, false)
	w.endUser("unseen")
	out := w.mustRun("status", "unseen")
	if !strings.Contains(out, "the operator has not written its status yet: is it running, and does it watch namespace "+w.namespace) {
		t.Errorf("status printed\n%s\nwant it to say that no operator has seen the resource", out)
	}
	if _, _, err := w.kubectlSurge("status", "nobody"); err == nil {
		t.Error("status of a resource that does not exist succeeded")
	}
}

func TestRenewMintsANewTokenNow(t *testing.T) {
	w := newWorld(t, true)
	w.endUser("ada", withToken)
	w.endUser("grace")
	w.waitForCondition("ada", surgev1alpha1.ConditionReady, metav1.ConditionTrue)
	w.eventually("the token recorded", func() (bool, string) { return w.get("ada").Status.Token != nil, "no status.token" })
	minted := w.surge.CountRequests(http.MethodPost, "/users/")

	out := w.mustRun("renew", "ada", "--wait")
	if !strings.Contains(out, "SurgeEndUser "+w.namespace+"/ada: new token requested\n") ||
		!strings.Contains(out, "SurgeEndUser "+w.namespace+"/ada: new token in Secret ada-token, expires ") {
		t.Errorf("renew printed\n%s", out)
	}
	obj := w.get("ada")
	request := obj.Annotations[surgev1alpha1.AnnotationRenewTokenRequestedAt]
	if request == "" || obj.Status.Token.RenewalRequest != request {
		t.Errorf("annotation %q, status.token.renewalRequest %q: want the same request", request, obj.Status.Token.RenewalRequest)
	}
	if got := w.surge.CountRequests(http.MethodPost, "/users/"); got != minted+1 {
		t.Errorf("%d tokens minted for one renewal", got-minted)
	}

	_, stderr, err := w.kubectlSurge("renew", "grace")
	if err == nil || !strings.Contains(stderr, "has no spec.tokenSecret") {
		t.Errorf("renew of a resource without a token: %v, %q", err, stderr)
	}
	if _, _, err := w.kubectlSurge("renew"); err == nil {
		t.Error("renew of nothing succeeded")
	}
}

func TestPauseAndResume(t *testing.T) {
	w := newWorld(t, true)
	w.endUser("ada")
	w.endUser("grace", func(o *surgev1alpha1.SurgeEndUser) { o.Labels = map[string]string{"team": "compilers"} })
	w.waitForCondition("grace", surgev1alpha1.ConditionReady, metav1.ConditionTrue)

	out := w.mustRun("pause", "--all")
	for _, name := range []string{"ada", "grace"} {
		if !strings.Contains(out, "SurgeEndUser "+w.namespace+"/"+name+": paused\n") {
			t.Errorf("pause printed\n%s\nwant %s paused", out, name)
		}
		w.waitForCondition(name, surgev1alpha1.ConditionPaused, metav1.ConditionTrue)
	}
	if out := w.mustRun("pause", "ada"); !strings.Contains(out, "already paused") {
		t.Errorf("pausing again printed %q", out)
	}
	if out := w.mustRun("status", "ada"); !strings.Contains(out, "it is paused (annotation surge.app/paused: \"true\")") {
		t.Errorf("status of a paused resource printed\n%s", out)
	}

	out = w.mustRun("resume", "-l", "team=compilers")
	if !strings.Contains(out, "SurgeEndUser "+w.namespace+"/grace: resumed\n") || strings.Contains(out, "/ada") {
		t.Errorf("resume -l team=compilers printed\n%s", out)
	}
	w.eventually("grace resumed", func() (bool, string) {
		obj := w.get("grace")
		_, paused := obj.Annotations[surgev1alpha1.AnnotationPaused]
		return !paused && apimeta.FindStatusCondition(obj.Status.Conditions, surgev1alpha1.ConditionPaused) == nil, "still paused"
	})
	if _, paused := w.get("ada").Annotations[surgev1alpha1.AnnotationPaused]; !paused {
		t.Error("ada was resumed along with grace")
	}
}
