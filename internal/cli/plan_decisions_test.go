package cli

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	surgev1alpha1 "github.com/surge-operator/surge-operator/api/v1alpha1"
	"github.com/surge-operator/surge-operator/internal/remote"
)

func TestPlanDecisions(t *testing.T) {
	spec := func(policies ...surgev1alpha1.ManagementPolicy) *surgev1alpha1.SurgeEndUser {
		return &surgev1alpha1.SurgeEndUser{
			ObjectMeta: metav1.ObjectMeta{Namespace: "billing", Name: "ada", UID: "uid-1"},
			Spec:       surgev1alpha1.SurgeEndUserSpec{FirstName: "Ada", DeletionPolicy: surgev1alpha1.DeletionPolicyDelete, ManagementPolicies: policies},
		}
	}
	drifted := remote.User{ID: "usr_1", FirstName: "Grace"}
	in := remote.User{ID: "usr_1", FirstName: "Ada"}
	for _, tc := range []struct {
		name   string
		got    planEntry
		action string
		detail string
	}{
		{"a user equal to the spec", changeOf(spec(), in, remote.FieldsOf(spec())), planUnchanged, "end user usr_1"},
		{"drift is updated", changeOf(spec(), drifted, remote.FieldsOf(spec())), planUpdate, "updates firstName"},
		{"drift only observed", changeOf(spec(surgev1alpha1.ManagementObserve), drifted, remote.FieldsOf(spec())), planUnchanged, "reported as Synced=False"},
		{"a deletion that deletes", deletionOf(&surgev1alpha1.SurgeEndUser{Spec: spec().Spec, Status: surgev1alpha1.SurgeEndUserStatus{UserID: "usr_1"}}), planDelete, "deletes end user usr_1 in Surge"},
		{"a deletion without Delete", deletionOf(&surgev1alpha1.SurgeEndUser{Spec: spec(surgev1alpha1.ManagementObserve).Spec, Status: surgev1alpha1.SurgeEndUserStatus{UserID: "usr_1"}}), planDelete, "leaves end user usr_1 in Surge"},
		{"a deletion of a resource without a user", deletionOf(&surgev1alpha1.SurgeEndUser{Spec: spec().Spec}), planDelete, "nothing is deleted in Surge"},
		{"no user, Create allowed", (&planner{}).creation(spec(), "none found"), planCreate, "a new end user"},
		{"no user, observe only", (&planner{}).creation(spec(surgev1alpha1.ManagementObserve), "none found"), planRefused, "do not allow Create"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.got.Action != tc.action || !strings.Contains(tc.got.Detail, tc.detail) {
				t.Errorf("planned %s (%s), want %s with %q", tc.got.Action, tc.got.Detail, tc.action, tc.detail)
			}
		})
	}
}

func TestAPlanNeedsAttentionWhenItDeletesOrRefuses(t *testing.T) {
	for _, tc := range []struct {
		actions []string
		want    bool
	}{
		{[]string{planCreate, planAdopt, planUpdate, planUnchanged}, false},
		{[]string{planCreate, planDelete}, true},
		{[]string{planRefused}, true},
		{[]string{planUnknown}, true},
		{nil, false},
	} {
		var entries []planEntry
		for _, action := range tc.actions {
			entries = append(entries, planEntry{Action: action})
		}
		if got := needsAttention(entries); got != tc.want {
			t.Errorf("needsAttention(%v) = %v, want %v", tc.actions, got, tc.want)
		}
	}
}
