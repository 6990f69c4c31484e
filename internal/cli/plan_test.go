package cli_test

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	surgev1alpha1 "github.com/surge-operator/surge-operator/api/v1alpha1"
	"github.com/surge-operator/surge-operator/pkg/surgetest"
)

// writesTo counts the requests that are not reads.
func writesTo(e *surgetest.Emulator) int {
	return e.CountRequests(http.MethodPost, "/") + e.CountRequests(http.MethodPatch, "/") + e.CountRequests(http.MethodDelete, "/")
}

type planned struct {
	Resources []struct {
		Name   string   `json:"name"`
		Action string   `json:"action"`
		UserID string   `json:"userID"`
		Fields []string `json:"fields"`
		Reason string   `json:"reason"`
		Detail string   `json:"detail"`
	} `json:"resources"`
}

// TestPlanSaysWhatApplyingWouldDo: manifests of a namespace, planned
// against the live cluster and account, come out as one action per
// resource, with exit code 2 because something would be deleted or
// refused, and nothing is written to the cluster or to Surge.
func TestPlanSaysWhatApplyingWouldDo(t *testing.T) {
	w := newWorld(t, true)
	w.env["SURGE_API_KEY"] = w.surge.APIKey()
	grace := w.surge.PutUser(w.account, surgetest.User{FirstName: "Grace", LastName: "Hopper"})
	legacy := w.surge.PutUser(w.account, surgetest.User{FirstName: "Alan", LastName: "Turing", Metadata: map[string]string{
		surgev1alpha1.MetadataNamespace: w.namespace, surgev1alpha1.MetadataName: "alan", surgev1alpha1.MetadataUID: "uid-of-a-deleted-resource",
	}})
	for _, name := range []string{"ada", "kept", "old"} {
		w.endUser(name)
	}
	var live []string
	for _, name := range []string{"ada", "kept", "old"} {
		live = append(live, w.waitForCondition(name, surgev1alpha1.ConditionReady, metav1.ConditionTrue).Status.UserID)
	}

	dir := t.TempDir()
	manifest := func(name, spec string) string {
		return "apiVersion: surge.app/v1alpha1\nkind: SurgeEndUser\nmetadata:\n  name: " + name + "\nspec:\n  accountID: " + w.account + "\n" + spec
	}
	files := map[string]string{
		"live.yaml": manifest("ada", "  firstName: Augusta\n  lastName: Lovelace\n") + "\n---\n" +
			manifest("kept", "  firstName: Ada\n  lastName: Lovelace\n") + "\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: unrelated}\n",
		"nested/new.yaml": manifest("grace", "  firstName: Grace\n  lastName: Hopper\n  userID: "+grace.ID+"\n") + "\n---\n" +
			manifest("alan", "  firstName: Alan\n  lastName: Turing\n") + "\n---\n" +
			manifest("newcomer", "  firstName: Edsger\n"),
		"refused.yaml": "apiVersion: surge.app/v1alpha1\nkind: SurgeEndUser\nmetadata: {name: typo}\nspec: {accountID: account_1, firstName: X}\n---\n" +
			manifest("elsewhere", "  firstName: Barbara\n  projectRef: {kind: SurgeProject, name: missing}\n"),
	}
	for name, content := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writes := writesTo(w.surge)
	before := &surgev1alpha1.SurgeEndUserList{}
	if err := k8s.List(w.ctx, before, client.InNamespace(w.namespace)); err != nil {
		t.Fatal(err)
	}

	stdout, stderr, err := w.kubectlSurge("plan", "-f", dir, "-o", "json")
	if err == nil || !strings.Contains(err.Error(), "exited 2") {
		t.Fatalf("plan exited with %v, want 2\n%s", err, stderr)
	}
	var plan planned
	if err := json.Unmarshal([]byte(stdout), &plan); err != nil {
		t.Fatalf("plan -o json printed %v\n%s", err, stdout)
	}
	got := map[string]string{}
	for _, r := range plan.Resources {
		got[r.Name] = r.Action
		switch r.Name {
		case "ada":
			if r.UserID != live[0] || !slices.Equal(r.Fields, []string{"firstName"}) {
				t.Errorf("ada: %+v, want an update of firstName of %s", r, live[0])
			}
		case "grace":
			if r.UserID != grace.ID || !strings.Contains(r.Detail, "named by spec.userID") {
				t.Errorf("grace: %+v, want the adoption of %s", r, grace.ID)
			}
		case "alan":
			if r.UserID != legacy.ID || !strings.Contains(r.Detail, "earlier SurgeEndUser of the same name") {
				t.Errorf("alan: %+v, want the adoption of %s", r, legacy.ID)
			}
		case "old":
			if r.UserID != live[2] || !strings.Contains(r.Detail, "deletes end user "+live[2]) {
				t.Errorf("old: %+v, want the deletion of %s", r, live[2])
			}
		case "typo":
			if !strings.Contains(r.Detail, "accountID must be a Surge account id starting with acct_") {
				t.Errorf("typo: %+v, want admission's message", r)
			}
		case "elsewhere":
			if r.Reason != "ProjectNotFound" {
				t.Errorf("elsewhere: %+v, want ProjectNotFound", r)
			}
		}
	}
	want := map[string]string{
		"ada": "update", "kept": "unchanged", "grace": "adopt", "alan": "adopt", "newcomer": "create",
		"old": "delete", "typo": "refused", "elsewhere": "refused",
	}
	for name, action := range want {
		if got[name] != action {
			t.Errorf("%s planned as %q, want %q", name, got[name], action)
		}
	}
	if len(got) != len(want) {
		t.Errorf("planned %v, want %v", got, want)
	}

	if n := writesTo(w.surge) - writes; n != 0 {
		t.Errorf("plan wrote %d times to Surge", n)
	}
	after := &surgev1alpha1.SurgeEndUserList{}
	if err := k8s.List(w.ctx, after, client.InNamespace(w.namespace)); err != nil {
		t.Fatal(err)
	}
	if len(after.Items) != len(before.Items) || w.get("ada").Spec.FirstName != "Ada" {
		t.Errorf("plan changed the cluster: %d SurgeEndUsers, was %d; ada's first name %q", len(after.Items), len(before.Items), w.get("ada").Spec.FirstName)
	}

	text, _, _ := w.kubectlSurge("plan", "-f", filepath.Join(dir, "live.yaml"))
	lines := strings.Split(text, "\n")
	if !slices.ContainsFunc(lines, func(line string) bool {
		fields := strings.Fields(line)
		return len(fields) > 2 && fields[0] == "update" && fields[1] == w.namespace+"/ada"
	}) || !strings.Contains(text, "plan: 1 update, 1 unchanged, 1 delete") {
		t.Errorf("plan printed\n%s\nwant a line updating ada and the summary", text)
	}
}

// TestPlanOfNothingToChange exits 0.
func TestPlanOfNothingToChange(t *testing.T) {
	w := newWorld(t, true)
	w.env["SURGE_API_KEY"] = w.surge.APIKey()
	w.endUser("ada")
	w.waitForCondition("ada", surgev1alpha1.ConditionReady, metav1.ConditionTrue)
	file := filepath.Join(t.TempDir(), "ada.yaml")
	content := "apiVersion: surge.app/v1alpha1\nkind: SurgeEndUser\nmetadata: {name: ada}\nspec: {accountID: " + w.account + ", firstName: Ada, lastName: Lovelace}\n"
	if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	out, stderr, err := w.kubectlSurge("plan", "-f", file)
	if err != nil || !strings.Contains(out, "unchanged") || !strings.Contains(out, "plan: 1 unchanged") {
		t.Errorf("plan: %v\n%s%s", err, out, stderr)
	}
}
