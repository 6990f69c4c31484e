package cli_test

import (
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	surgev1alpha1 "github.com/surge-operator/surge-operator/api/v1alpha1"
)

// TestReleaseDeletionsLetsTheHeldOnesGo: of 7 SurgeEndUsers of a project
// deleted at once, the brake lets 5 go (its floor) and holds 2; kubectl
// surge release-deletions lets them go too.
func TestReleaseDeletionsLetsTheHeldOnesGo(t *testing.T) {
	const key, total, threshold = "sk_live_cli_release_key", 7, 5
	w := newWorld(t, true)
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
	for i := range total {
		w.endUser(fmt.Sprintf("user-%d", i), func(o *surgev1alpha1.SurgeEndUser) {
			o.Spec.ProjectRef = &surgev1alpha1.ProjectReference{Kind: surgev1alpha1.KindSurgeProject, Name: "surge"}
		})
	}
	for i := range total {
		w.waitForCondition(fmt.Sprintf("user-%d", i), surgev1alpha1.ConditionReady, metav1.ConditionTrue)
	}
	if err := k8s.DeleteAllOf(w.ctx, &surgev1alpha1.SurgeEndUser{}, client.InNamespace(w.namespace)); err != nil {
		t.Fatal(err)
	}
	w.eventually("the rest held", func() (bool, string) {
		held := 0
		list := &surgev1alpha1.SurgeEndUserList{}
		if err := k8s.List(w.ctx, list, client.InNamespace(w.namespace)); err != nil {
			return false, err.Error()
		}
		for _, obj := range list.Items {
			if ready := apimeta.FindStatusCondition(obj.Status.Conditions, surgev1alpha1.ConditionReady); ready != nil && ready.Reason == surgev1alpha1.ReasonDeletionHeld {
				held++
			}
		}
		return held == total-threshold && len(list.Items) == held, fmt.Sprintf("%d held of %d left", held, len(list.Items))
	})

	status := w.mustRun("status", "surgeproject/surge")
	for _, want := range []string{"Project:         SurgeProject " + w.namespace + "/surge\n", "Key:             Secret " + w.namespace + "/surge-key\n", fmt.Sprintf("Deletions held:  %d\n", total-threshold)} {
		if !strings.Contains(status, want) {
			t.Errorf("status of the project printed\n%s\nwant it to hold %q", status, want)
		}
	}

	out := w.mustRun("release-deletions", "surge")
	if !strings.Contains(out, "SurgeProject "+w.namespace+"/surge: deletions asked for until ") {
		t.Errorf("release-deletions printed\n%s", out)
	}
	w.eventually("the held deletions done", func() (bool, string) {
		users := len(w.surge.Users(w.account))
		return users == 0, fmt.Sprintf("%d users left in Surge", users)
	})
}
