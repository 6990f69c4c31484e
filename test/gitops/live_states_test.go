package gitops_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"

	surgev1alpha1 "github.com/surge-operator/surge-operator/api/v1alpha1"
	"github.com/surge-operator/surge-operator/internal/surge/emulator"
)

// Each test drives a live SurgeEndUser into one state and checks that
// kstatus, which Flux builds on, and the Argo CD health script both read that
// state as docs/gitops.md says.

func isTrue(obj *surgev1alpha1.SurgeEndUser, conditionType string) bool {
	return apimeta.IsStatusConditionTrue(obj.Status.Conditions, conditionType)
}

func settled(obj *surgev1alpha1.SurgeEndUser) bool {
	return obj.Status.ObservedGeneration == obj.Generation
}

func ready(obj *surgev1alpha1.SurgeEndUser) bool {
	return settled(obj) && isTrue(obj, "Ready")
}

func reconciling(obj *surgev1alpha1.SurgeEndUser) bool {
	return isTrue(obj, "Reconciling")
}

func retrying(obj *surgev1alpha1.SurgeEndUser) bool {
	condition := apimeta.FindStatusCondition(obj.Status.Conditions, "Reconciling")
	return condition != nil && condition.Status == "True" && condition.Reason == "SurgeUnavailable"
}

func stalled(obj *surgev1alpha1.SurgeEndUser) bool {
	return settled(obj) && isTrue(obj, "Stalled")
}

// expectGitOpsView checks what kstatus and Argo CD conclude about a live
// object; message is a part of the Argo CD message.
func expectGitOpsView(t *testing.T, obj *unstructured.Unstructured, wantKstatus status.Status, wantHealth, message string) {
	t.Helper()
	result, err := status.Compute(obj)
	if err != nil {
		t.Fatalf("kstatus: %v", err)
	}
	if result.Status != wantKstatus {
		t.Errorf("kstatus says %s (%s), want %s", result.Status, result.Message, wantKstatus)
	}
	health := argoCDHealth(t, obj.Object)
	if health.Status != wantHealth || !strings.Contains(health.Message, message) {
		t.Errorf("Argo CD health is %s %q, want %s with a message containing %q", health.Status, health.Message, wantHealth, message)
	}
}

func TestReadyEndUserIsCurrentAndHealthy(t *testing.T) {
	f := newFixture(t)
	f.create("ada")
	obj := f.waitForState("ada", "Ready", ready)
	expectGitOpsView(t, obj, status.CurrentStatus, "Healthy", "matches the spec")
}

func TestNewEndUserIsInProgressBeforeSurgeAnswers(t *testing.T) {
	f := newFixture(t)
	f.Surge.SetLatency(3 * time.Second)
	f.create("ada")
	obj := f.waitForState("ada", "Reconciling", reconciling)
	expectGitOpsView(t, obj, status.InProgressStatus, "Progressing", "in line with the spec")
}

func TestEndUserWaitingForSurgeIsInProgressAndProgressing(t *testing.T) {
	f := newFixture(t)
	f.Surge.InjectFault(emulator.Fault{Method: http.MethodPost, PathPrefix: "/accounts/", Status: http.StatusServiceUnavailable})
	f.create("ada")
	obj := f.waitForState("ada", "Reconciling after a failure", retrying)
	expectGitOpsView(t, obj, status.InProgressStatus, "Progressing", "will retry")

	f.Surge.ClearFaults()
	obj = f.waitForState("ada", "Ready", ready)
	expectGitOpsView(t, obj, status.CurrentStatus, "Healthy", "matches the spec")
}

func TestStalledEndUserIsFailedAndDegraded(t *testing.T) {
	f := newFixture(t)
	f.create("ada")
	f.waitForState("ada", "Ready", ready)

	f.Surge.SetAPIKey("sk_live_rotated")
	f.requestReconcile("ada")
	obj := f.waitForState("ada", "Stalled", stalled)
	expectGitOpsView(t, obj, status.FailedStatus, "Degraded", "rejected the API key")
	if result, _ := status.Compute(obj); !strings.Contains(result.Message, "rejected the API key") {
		t.Errorf("kstatus message %q should carry the Stalled condition's message", result.Message)
	}

	f.Surge.SetAPIKey(testAPIKey)
	f.requestReconcile("ada")
	obj = f.waitForState("ada", "Ready again", ready)
	expectGitOpsView(t, obj, status.CurrentStatus, "Healthy", "matches the spec")
}

// TestUnappliedSpecChangeIsInProgressAndProgressing: a spec change the
// operator has not acted on yet, here because it is down, must not pass for
// the old Ready.
func TestUnappliedSpecChangeIsInProgressAndProgressing(t *testing.T) {
	f := newFixture(t)
	f.create("ada")
	f.waitForState("ada", "Ready", ready)

	f.StopOperator()
	f.Update("ada", func(obj *surgev1alpha1.SurgeEndUser) { obj.Spec.FirstName = "Augusta" })
	obj := f.waitForState("ada", "changed", func(obj *surgev1alpha1.SurgeEndUser) bool { return obj.Generation == 2 })
	expectGitOpsView(t, obj, status.InProgressStatus, "Progressing", "generation 2")

	f.StartOperator()
	obj = f.waitForState("ada", "Ready for generation 2", ready)
	expectGitOpsView(t, obj, status.CurrentStatus, "Healthy", "matches the spec")
}

func TestEndUserBeingDeletedIsTerminatingAndProgressing(t *testing.T) {
	f := newFixture(t)
	f.create("ada")
	f.waitForState("ada", "Ready", ready)

	f.Surge.InjectFault(emulator.Fault{Method: http.MethodDelete, PathPrefix: "/users/", Status: http.StatusServiceUnavailable})
	f.Delete("ada")
	obj := f.waitForState("ada", "waiting to delete", func(obj *surgev1alpha1.SurgeEndUser) bool {
		return obj.DeletionTimestamp != nil && reconciling(obj)
	})
	expectGitOpsView(t, obj, status.TerminatingStatus, "Progressing", "Being deleted")

	f.Surge.ClearFaults()
	f.WaitForGone("ada")
}

// TestPausedEndUserIsSuspended: Argo CD shows a paused resource as
// Suspended; kstatus has no such state and keeps reporting the last outcome.
func TestPausedEndUserIsSuspended(t *testing.T) {
	f := newFixture(t)
	f.create("ada")
	f.waitForState("ada", "Ready", ready)

	f.Update("ada", func(obj *surgev1alpha1.SurgeEndUser) {
		obj.Annotations = map[string]string{"surge.app/paused": "true"}
	})
	obj := f.waitForState("ada", "Paused", func(obj *surgev1alpha1.SurgeEndUser) bool { return isTrue(obj, "Paused") })
	expectGitOpsView(t, obj, status.CurrentStatus, "Suspended", "surge.app/paused")
}
