package credentials

import (
	"context"
	"errors"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	surgev1alpha1 "github.com/surge-operator/surge-operator/api/v1alpha1"
)

// TestIgnoredClusterProjectsAreRefusedUnread: an installation that serves
// no ClusterSurgeProject refuses a resource naming one, with a reason that
// says so, before reading anything it may not read.
func TestIgnoredClusterProjectsAreRefusedUnread(t *testing.T) {
	m, err := NewManager(Options{IgnoreClusterProjects: true})
	if err != nil {
		t.Fatal(err)
	}
	obj := &surgev1alpha1.SurgeEndUser{
		ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "ada"},
		Spec: surgev1alpha1.SurgeEndUserSpec{
			ProjectRef: &surgev1alpha1.ProjectReference{Kind: surgev1alpha1.KindClusterSurgeProject, Name: "shared"},
		},
	}
	_, err = m.KeyFor(context.Background(), obj)
	refusal, ok := errors.AsType[*Refusal](err)
	if !ok || refusal.Reason != ReasonClusterProjectNotServed {
		t.Errorf("KeyFor = %v, want a refusal with reason %s", err, ReasonClusterProjectNotServed)
	}
}
