package cli_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	surgev1alpha1 "github.com/surge-operator/surge-operator/api/v1alpha1"
	"github.com/surge-operator/surge-operator/pkg/surgetest"
)

const projectKey = "sk_test_project_key_0123456789"

// withProject gives the world a SurgeProject whose key, in its Secret, is
// the only one that reaches the account: the operator's own key does not.
func (w *world) withProject(name string) {
	w.t.Helper()
	w.surge.AddProject("team", projectKey, w.account)
	w.surge.SetAPIKey("sk_test_operator_key_unrelated")
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: w.namespace, Name: name + "-key"},
		Data:       map[string][]byte{surgev1alpha1.DefaultAPIKeySecretKey: []byte(projectKey)},
	}
	project := &surgev1alpha1.SurgeProject{
		ObjectMeta: metav1.ObjectMeta{Namespace: w.namespace, Name: name},
		Spec:       surgev1alpha1.SurgeProjectSpec{APIKeySecretRef: surgev1alpha1.SecretKeyReference{Name: secret.Name}},
	}
	if err := k8s.Create(w.ctx, secret); err != nil {
		w.t.Fatal(err)
	}
	if err := k8s.Create(w.ctx, project); err != nil {
		w.t.Fatal(err)
	}
}

// parseDocuments reads the SurgeEndUsers import wrote.
func parseDocuments(t *testing.T, out string) []*surgev1alpha1.SurgeEndUser {
	t.Helper()
	decoder := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(out), 4096)
	var objs []*surgev1alpha1.SurgeEndUser
	for {
		obj := &surgev1alpha1.SurgeEndUser{}
		err := decoder.Decode(obj)
		if errors.Is(err, io.EOF) {
			return objs
		}
		if err != nil {
			t.Fatalf("import wrote YAML that does not parse: %v\n%s", err, out)
		}
		if obj.Kind == "" {
			continue
		}
		objs = append(objs, obj)
	}
}

// TestImportAdoptsAnExistingAccount is the onboarding of an account into
// Git: its users, made outside the operator, come out as SurgeEndUsers that
// the API server accepts as written and that the operator then adopts,
// creating nothing.
func TestImportAdoptsAnExistingAccount(t *testing.T) {
	w := newWorld(t, true)
	w.withProject("surge")
	ada := w.surge.PutUser(w.account, surgetest.User{FirstName: "Ada", LastName: "Lovelace", PhotoURL: "https://example.com/ada.png",
		Metadata: map[string]string{"customer": "4711", "surge-operator/uid": "left-by-an-old-resource"}})
	zoe := w.surge.PutUser(w.account, surgetest.User{FirstName: "Zoë", LastName: "O'Brien"})
	twin := w.surge.PutUser(w.account, surgetest.User{FirstName: "ADA", LastName: "lovelace"})
	taken := w.surge.PutUser(w.account, surgetest.User{FirstName: "Grace", LastName: "Hopper"})
	tooMuch := map[string]string{}
	for i := range 65 {
		tooMuch[fmt.Sprintf("key%d", i)] = "v"
	}
	crowded := w.surge.PutUser(w.account, surgetest.User{FirstName: "Alan", LastName: "Turing", Metadata: tooMuch})
	// A resource of the namespace already manages one user; another, of
	// another account, holds the name a user would get.
	w.endUser("managed", func(o *surgev1alpha1.SurgeEndUser) {
		o.Spec.UserID = taken.ID
		o.Spec.FirstName, o.Spec.LastName = "Grace", "Hopper"
		o.Spec.ProjectRef = &surgev1alpha1.ProjectReference{Kind: surgev1alpha1.KindSurgeProject, Name: "surge"}
		o.Spec.DeletionPolicy = surgev1alpha1.DeletionPolicyOrphan
	})
	w.waitForCondition("managed", surgev1alpha1.ConditionReady, metav1.ConditionTrue)
	w.endUser("zoe-o-brien", func(o *surgev1alpha1.SurgeEndUser) {
		o.Spec.AccountID = "acct_01j9a43avnfqzbjfch6pygvzzz"
		o.Annotations = map[string]string{surgev1alpha1.AnnotationPaused: "true"}
	})
	creates := w.surge.CountRequests(http.MethodPost, "/accounts/")

	stdout, stderr, err := w.kubectlSurge("import", "--account", w.account, "--project", "surge")
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	if strings.Contains(stdout+stderr, projectKey) {
		t.Fatal("import printed the API key")
	}
	for _, want := range []string{
		"skipped " + taken.ID + " (Grace Hopper): SurgeEndUser " + w.namespace + "/managed manages it\n",
		"skipped " + crowded.ID + " (Alan Turing): it has 65 metadata entries",
		"wrote 3 SurgeEndUsers for account " + w.account + " into namespace " + w.namespace + "; skipped 2\n",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("import reported\n%s\nwant it to hold %q", stderr, want)
		}
	}

	objs := parseDocuments(t, stdout)
	byUser := map[string]*surgev1alpha1.SurgeEndUser{}
	for _, obj := range objs {
		byUser[obj.Spec.UserID] = obj
	}
	wantNames := map[string]string{
		ada.ID:  "ada-lovelace-" + suffixOf(ada.ID),
		twin.ID: "ada-lovelace-" + suffixOf(twin.ID),
		zoe.ID:  "zoe-o-brien-" + suffixOf(zoe.ID),
	}
	if len(objs) != len(wantNames) {
		t.Fatalf("import wrote %d SurgeEndUsers, want %d:\n%s", len(objs), len(wantNames), stdout)
	}
	for id, name := range wantNames {
		obj := byUser[id]
		if obj == nil || obj.Name != name || obj.Namespace != w.namespace {
			t.Errorf("user %s written as %+v, want %s/%s", id, obj, w.namespace, name)
		}
	}
	want := surgev1alpha1.SurgeEndUserSpec{
		ProjectRef:     &surgev1alpha1.ProjectReference{Kind: surgev1alpha1.KindSurgeProject, Name: "surge"},
		AccountID:      w.account,
		UserID:         ada.ID,
		FirstName:      "Ada",
		LastName:       "Lovelace",
		PhotoURL:       "https://example.com/ada.png",
		Metadata:       map[string]string{"customer": "4711"},
		DeletionPolicy: surgev1alpha1.DeletionPolicyOrphan,
	}
	if got := byUser[ada.ID].Spec; !equalSpecs(got, want) {
		t.Errorf("Ada written as\n%+v\nwant\n%+v", got, want)
	}

	// The file applies as written, and the operator adopts every user
	// without creating one.
	for _, obj := range objs {
		if err := k8s.Create(w.ctx, obj); err != nil {
			t.Fatalf("the API server refuses %s: %v", obj.Name, err)
		}
	}
	for _, obj := range objs {
		adopted := w.waitForCondition(obj.Name, surgev1alpha1.ConditionReady, metav1.ConditionTrue)
		if adopted.Status.UserID != obj.Spec.UserID {
			t.Errorf("%s manages %s, want %s", obj.Name, adopted.Status.UserID, obj.Spec.UserID)
		}
	}
	if got := w.surge.CountRequests(http.MethodPost, "/accounts/"); got != creates {
		t.Errorf("%d users created after the import; adoption creates none", got-creates)
	}
	if user, _ := w.surge.User(ada.ID); user.Metadata["customer"] != "4711" || user.FirstName != "Ada" {
		t.Errorf("Ada's fields changed in Surge: %+v", user)
	}

	// A second import finds every user managed.
	stdout, stderr = mustImport(t, w, "--account", w.account, "--project", "surge")
	if len(parseDocuments(t, stdout)) != 0 || !strings.Contains(stderr, "wrote 0 SurgeEndUsers") {
		t.Errorf("a second import wrote\n%s\n%s", stdout, stderr)
	}
}

func mustImport(t *testing.T, w *world, args ...string) (string, string) {
	t.Helper()
	stdout, stderr, err := w.kubectlSurge(append([]string{"import"}, args...)...)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	return stdout, stderr
}

func suffixOf(id string) string {
	id = strings.ToLower(strings.TrimPrefix(id, "usr_"))
	return id[len(id)-8:]
}

func equalSpecs(a, b surgev1alpha1.SurgeEndUserSpec) bool {
	return a.AccountID == b.AccountID && a.UserID == b.UserID && a.FirstName == b.FirstName && a.LastName == b.LastName &&
		a.PhotoURL == b.PhotoURL && maps.Equal(a.Metadata, b.Metadata) && a.DeletionPolicy == b.DeletionPolicy &&
		a.TokenSecret == nil && (a.ProjectRef == nil) == (b.ProjectRef == nil) && (a.ProjectRef == nil || *a.ProjectRef == *b.ProjectRef)
}

// TestImportWithAKeyOfItsOwn: without --project, the key comes from a file
// or the environment, and the resources use the operator's own key.
func TestImportWithAKeyOfItsOwn(t *testing.T) {
	w := newWorld(t, false)
	w.surge.PutUser(w.account, surgetest.User{FirstName: "Ada"})
	keyFile := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(keyFile, []byte(w.surge.APIKey()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	stdout, _ := mustImport(t, w, "--account", w.account, "--api-key-file", keyFile, "--deletion-policy", "Delete")
	objs := parseDocuments(t, stdout)
	if len(objs) != 1 || objs[0].Name != "ada" || objs[0].Spec.ProjectRef != nil || objs[0].Spec.DeletionPolicy != surgev1alpha1.DeletionPolicyDelete {
		t.Errorf("import wrote\n%s", stdout)
	}

	w.env["SURGE_API_KEY"] = w.surge.APIKey()
	if stdout, _ := mustImport(t, w, "--account", w.account); len(parseDocuments(t, stdout)) != 1 {
		t.Errorf("import with SURGE_API_KEY wrote\n%s", stdout)
	}
	if strings.Contains(stdout, w.surge.APIKey()) {
		t.Error("import printed the API key")
	}
}

func TestImportRefusals(t *testing.T) {
	w := newWorld(t, false)
	w.surge.PutUser(w.account, surgetest.User{FirstName: "Ada"})
	shared := &surgev1alpha1.ClusterSurgeProject{
		ObjectMeta: metav1.ObjectMeta{Name: w.namespace + "-shared"},
		Spec: surgev1alpha1.ClusterSurgeProjectSpec{
			APIKeySecretRef: surgev1alpha1.NamespacedSecretKeyReference{Namespace: w.namespace, SecretKeyReference: surgev1alpha1.SecretKeyReference{Name: "shared"}},
			Namespaces:      []string{"somewhere-else"},
		},
	}
	if err := k8s.Create(w.ctx, shared); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"no account", []string{"--account", "usr_123"}, nil, "is not a Surge account id"},
		{"no key", []string{"--account", w.account}, nil, "no API key"},
		{"a key Surge rejects", []string{"--account", w.account}, map[string]string{"SURGE_API_KEY": "sk_test_wrong"}, "listing the users of " + w.account},
		{"an account the key cannot reach", []string{"--account", "acct_01j9a43avnfqzbjfch6pygvzzz"}, map[string]string{"SURGE_API_KEY": w.surge.APIKey()}, "surge does not know account"},
		{"a project that does not exist", []string{"--account", w.account, "--project", "missing"}, nil, "would stall with ProjectNotFound"},
		{"a project that refuses the namespace", []string{"--account", w.account, "--project", "ClusterSurgeProject/" + shared.Name}, nil, "would stall with NamespaceNotAllowed"},
		{"a project and a key file", []string{"--account", w.account, "--project", "surge", "--api-key-file", "key"}, nil, "exclude each other"},
		{"an unknown policy", []string{"--account", w.account, "--deletion-policy", "Keep"}, nil, "Orphan or Delete"},
		{"an unknown project kind", []string{"--account", w.account, "--project", "Vault/x"}, nil, "ClusterSurgeProject/NAME"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w.env = map[string]string{"SURGE_API_URL": w.surge.URL()}
			maps.Copy(w.env, tc.env)
			stdout, stderr, err := w.kubectlSurge(append([]string{"import"}, tc.args...)...)
			if err == nil {
				t.Fatalf("import succeeded:\n%s", stdout)
			}
			var all bytes.Buffer
			all.WriteString(stdout + stderr)
			if !strings.Contains(all.String(), tc.want) {
				t.Errorf("import said\n%s\nwant %q", all.String(), tc.want)
			}
			if strings.Contains(all.String(), w.surge.APIKey()) {
				t.Error("import printed the API key")
			}
		})
	}
}

// TestImportObserveOnly: --observe-only writes resources that the operator
// only reads: applied, they observe their users in sync and write nothing
// to Surge.
func TestImportObserveOnly(t *testing.T) {
	w := newWorld(t, true)
	w.withProject("surge")
	ada := w.surge.PutUser(w.account, surgetest.User{FirstName: "Ada", LastName: "Lovelace", Metadata: map[string]string{"customer": "4711"}})
	writes := func() int {
		return w.surge.CountRequests(http.MethodPost, "/") + w.surge.CountRequests(http.MethodPatch, "/") + w.surge.CountRequests(http.MethodDelete, "/")
	}
	before := writes()

	stdout, _ := mustImport(t, w, "--account", w.account, "--project", "surge", "--observe-only")
	objs := parseDocuments(t, stdout)
	if len(objs) != 1 || !slices.Equal(objs[0].Spec.ManagementPolicies, []surgev1alpha1.ManagementPolicy{surgev1alpha1.ManagementObserve}) {
		t.Fatalf("import --observe-only wrote\n%s", stdout)
	}
	if err := k8s.Create(w.ctx, objs[0]); err != nil {
		t.Fatalf("the API server refuses %s: %v", objs[0].Name, err)
	}
	observed := w.waitForCondition(objs[0].Name, surgev1alpha1.ConditionSynced, metav1.ConditionTrue)
	if observed.Status.UserID != ada.ID {
		t.Errorf("%s observes %q, want %s", observed.Name, observed.Status.UserID, ada.ID)
	}
	if got := writes() - before; got != 0 {
		t.Errorf("%d writes reached Surge for an observe-only import", got)
	}
}
