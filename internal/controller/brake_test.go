package controller_test

import (
	"fmt"
	"testing"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	surgev1alpha1 "github.com/surge-operator/surge-operator/api/v1alpha1"
)

// TestTheMassDeletionBrakeHoldsTheRestUntilReleased: a kustomization
// removed by mistake deletes 50 SurgeEndUsers at once. Exactly the
// threshold (10: 20% of the project's 50) is deleted in Surge; the rest are
// held, say so, and go once a person releases them, none lost.
func TestTheMassDeletionBrakeHoldsTheRestUntilReleased(t *testing.T) {
	const key, total, threshold = "sk_live_team_key_brake", 50, 10
	f := newTenantsFixture(t, nil)
	f.Surge.AddProject("team", key, teamAccount)
	f.apiKeySecret(f.Namespace, "surge-key", key)
	project := f.surgeProject(f.Namespace, "surge", "surge-key")
	name := func(i int) string { return fmt.Sprintf("user-%02d", i) }
	for i := range total {
		f.Create(f.endUser(name(i), in(f.Namespace, teamAccount), using(surgev1alpha1.KindSurgeProject, "surge")))
	}
	for i := range total {
		f.waitForReady(name(i))
	}

	if err := k8s.DeleteAllOf(f.Ctx, &surgev1alpha1.SurgeEndUser{}, client.InNamespace(f.Namespace)); err != nil {
		t.Fatal(err)
	}
	f.Eventually("the rest held", time.Minute, func() (bool, string) {
		held, left := f.heldDeletions()
		return held == total-threshold && left == total-threshold, fmt.Sprintf("%d held, %d left", held, left)
	})
	f.consistently("no more deletions", 3*time.Second, func() (bool, string) {
		users := len(f.Surge.Users(teamAccount))
		return users == total-threshold, fmt.Sprintf("%d users in Surge", users)
	})

	if err := k8s.Get(f.Ctx, client.ObjectKeyFromObject(project), project); err != nil {
		t.Fatal(err)
	}
	metav1.SetMetaDataAnnotation(&project.ObjectMeta, surgev1alpha1.AnnotationReleaseDeletions, time.Now().UTC().Format(time.RFC3339))
	if err := k8s.Update(f.Ctx, project); err != nil {
		t.Fatal(err)
	}
	f.Eventually("every held deletion done", time.Minute, func() (bool, string) {
		_, left := f.heldDeletions()
		users := len(f.Surge.Users(teamAccount))
		return left == 0 && users == 0, fmt.Sprintf("%d resources and %d users left", left, users)
	})
}

// heldDeletions counts the fixture's SurgeEndUsers held by the brake, and
// those left.
func (f *fixture) heldDeletions() (held, left int) {
	list := &surgev1alpha1.SurgeEndUserList{}
	if err := k8s.List(f.Ctx, list, client.InNamespace(f.Namespace)); err != nil {
		f.T.Fatal(err)
	}
	for _, obj := range list.Items {
		ready := apimeta.FindStatusCondition(obj.Status.Conditions, surgev1alpha1.ConditionReady)
		if ready != nil && ready.Status == metav1.ConditionFalse && ready.Reason == surgev1alpha1.ReasonDeletionHeld {
			held++
		}
	}
	return held, len(list.Items)
}
