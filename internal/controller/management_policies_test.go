package controller_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	surgev1alpha1 "github.com/surge-operator/surge-operator/api/v1alpha1"
	"github.com/surge-operator/surge-operator/internal/surge/emulator"
)

func observeOnly(o *surgev1alpha1.SurgeEndUser) {
	o.Spec.ManagementPolicies = []surgev1alpha1.ManagementPolicy{surgev1alpha1.ManagementObserve}
}

// writesToSurge lists the requests received that are not reads.
func (f *fixture) writesToSurge() []string {
	var writes []string
	for _, request := range f.Surge.Requests() {
		if request.Method != http.MethodGet {
			writes = append(writes, request.Method+" "+request.Path)
		}
	}
	return writes
}

// With managementPolicies ["Observe"], the operator finds the user, reports
// how it differs from the spec, leaves a user it cannot find uncreated, and
// leaves the user in Surge when the resource goes: not one write reaches
// Surge.
func TestObserveOnlyNeverWritesToSurge(t *testing.T) {
	f := newFixture(t)
	existing := f.Surge.PutUser(f.Account, emulator.User{FirstName: "Grace", LastName: "Lovelace", Metadata: map[string]string{"team": "navy"}})
	f.Surge.ResetRequests()

	f.Create(f.endUser("observed", observeOnly, func(o *surgev1alpha1.SurgeEndUser) { o.Spec.UserID = existing.ID }))
	f.Create(f.endUser("absent", observeOnly))

	obj := f.waitForCondition("observed", surgev1alpha1.ConditionSynced, metav1.ConditionFalse, surgev1alpha1.ReasonDrifted)
	if obj.Status.UserID != existing.ID {
		t.Errorf("status.userID is %q, want %s", obj.Status.UserID, existing.ID)
	}
	ready := apimeta.FindStatusCondition(obj.Status.Conditions, surgev1alpha1.ConditionReady)
	if ready == nil || ready.Status != metav1.ConditionTrue || ready.Reason != surgev1alpha1.ReasonObserved {
		t.Errorf("Ready is %+v, want True with reason Observed", ready)
	}
	synced := apimeta.FindStatusCondition(obj.Status.Conditions, surgev1alpha1.ConditionSynced)
	if !strings.Contains(synced.Message, "firstName, metadata.team") || strings.Contains(synced.Message, "lastName") {
		t.Errorf("Synced says %q, want it to name firstName and metadata.team only", synced.Message)
	}
	f.waitForCondition("absent", surgev1alpha1.ConditionStalled, metav1.ConditionTrue, surgev1alpha1.ReasonNotObserved)

	f.Delete("observed")
	f.WaitForGone("observed")
	if note := f.waitForEvent("observed", surgev1alpha1.EventOrphaned); !strings.Contains(note, "do not allow Delete") {
		t.Errorf("the Orphaned event says %q, want it to say that the policies do not allow Delete", note)
	}
	if user, ok := f.Surge.User(existing.ID); !ok || user.FirstName != "Grace" {
		t.Errorf("end user %s after the deletion: %+v (exists: %v), want it untouched", existing.ID, user, ok)
	}
	if writes := f.writesToSurge(); len(writes) > 0 {
		t.Errorf("observe-only resources wrote to Surge: %v", writes)
	}
	if users := f.Surge.Users(f.Account); len(users) != 1 {
		t.Errorf("%d users in the account, want the 1 that was there", len(users))
	}
}

// Moving a resource from ["Observe"] to ["*"] applies its spec over the user
// it observed, and Synced goes: the operator repairs drift itself again.
func TestMovingFromObserveToAllAppliesTheSpec(t *testing.T) {
	f := newFixture(t)
	existing := f.Surge.PutUser(f.Account, emulator.User{FirstName: "Grace", LastName: "Lovelace", Metadata: map[string]string{"team": "analytics"}})
	f.Create(f.endUser("moving", observeOnly, func(o *surgev1alpha1.SurgeEndUser) { o.Spec.UserID = existing.ID }))
	f.waitForCondition("moving", surgev1alpha1.ConditionSynced, metav1.ConditionFalse, surgev1alpha1.ReasonDrifted)
	if user, _ := f.Surge.User(existing.ID); user.FirstName != "Grace" {
		t.Fatalf("observe-only changed the user's first name to %q", user.FirstName)
	}

	f.Update("moving", func(o *surgev1alpha1.SurgeEndUser) {
		o.Spec.ManagementPolicies = []surgev1alpha1.ManagementPolicy{surgev1alpha1.ManagementAll}
	})
	obj := f.waitForReady("moving")
	if synced := apimeta.FindStatusCondition(obj.Status.Conditions, surgev1alpha1.ConditionSynced); synced != nil {
		t.Errorf("Synced is still there: %+v", synced)
	}
	f.Eventually("the spec applied", 10*time.Second, func() (bool, string) {
		user, _ := f.Surge.User(existing.ID)
		return user.FirstName == "Ada" && user.Metadata[surgev1alpha1.MetadataUID] == string(obj.UID), fmt.Sprintf("user %+v", user)
	})
}

// ["Observe", "Update"] repairs drift but never creates, and without
// Delete leaves the user in Surge.
func TestObserveAndUpdateRepairsButNeverCreatesOrDeletes(t *testing.T) {
	f := newFixture(t)
	existing := f.Surge.PutUser(f.Account, emulator.User{FirstName: "Grace", LastName: "Lovelace", Metadata: map[string]string{"team": "analytics"}})
	policies := func(o *surgev1alpha1.SurgeEndUser) {
		o.Spec.ManagementPolicies = []surgev1alpha1.ManagementPolicy{surgev1alpha1.ManagementObserve, surgev1alpha1.ManagementUpdate}
	}
	f.Create(f.endUser("repaired", policies, func(o *surgev1alpha1.SurgeEndUser) { o.Spec.UserID = existing.ID }))
	f.Create(f.endUser("never-made", policies))
	f.waitForReady("repaired")
	if user, _ := f.Surge.User(existing.ID); user.FirstName != "Ada" {
		t.Errorf("the user's first name is %q, want the spec's Ada", user.FirstName)
	}
	f.waitForCondition("never-made", surgev1alpha1.ConditionStalled, metav1.ConditionTrue, surgev1alpha1.ReasonNotObserved)

	f.Delete("repaired")
	f.WaitForGone("repaired")
	if _, ok := f.Surge.User(existing.ID); !ok {
		t.Error("the user was deleted, though the policies do not allow Delete")
	}
	if creates := f.Surge.CountRequests(http.MethodPost, "/accounts/"); creates > 0 {
		t.Errorf("%d creates sent, though the policies do not allow Create", creates)
	}
}
