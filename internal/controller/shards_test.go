package controller_test

import (
	"fmt"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/labels"

	surgev1alpha1 "github.com/surge-operator/surge-operator/api/v1alpha1"
	"github.com/surge-operator/surge-operator/internal/operatortest"
	"github.com/surge-operator/surge-operator/pkg/surgetest"
)

func selector(t *testing.T, s string) labels.Selector {
	t.Helper()
	parsed, err := labels.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return parsed
}

// Two instances share the SurgeEndUsers out by label: each resource is
// reconciled by the one instance whose selector matches it, and a resource
// relabelled into the other's share is taken over there, with no second
// user made.
func TestShardsShareOutTheResources(t *testing.T) {
	f := newFixtureWithSettings(t, operatortest.Settings{PageSize: 5, Operator: []surgetest.Option{
		surgetest.WithWatchLabelSelector(selector(t, surgev1alpha1.LabelShard+" notin (a)")),
	}})
	shardA := f.StartInstance(surgetest.WithWatchLabelSelector(selector(t, surgev1alpha1.LabelShard+"=a")))
	f.Create(f.endUser("in-a", func(o *surgev1alpha1.SurgeEndUser) { o.Labels = map[string]string{surgev1alpha1.LabelShard: "a"} }))
	f.Create(f.endUser("elsewhere"))
	ids := map[string]string{}
	for _, name := range []string{"in-a", "elsewhere"} {
		ids[name] = f.waitForReady(name).Status.UserID
	}

	shardA.Stop()
	for _, name := range []string{"in-a", "elsewhere"} {
		f.Update(name, func(o *surgev1alpha1.SurgeEndUser) { o.Spec.FirstName = "Augusta" })
	}
	firstName := func(name string) string {
		user, _ := f.Surge.User(ids[name])
		return user.FirstName
	}
	f.Eventually("the main instance updates its own resource", 20*time.Second, func() (bool, string) {
		return firstName("elsewhere") == "Augusta", "first name " + firstName("elsewhere")
	})
	f.consistently("the main instance leaves shard a's resource alone", 3*time.Second, func() (bool, string) {
		return firstName("in-a") == "Ada", "first name " + firstName("in-a")
	})

	f.Update("in-a", func(o *surgev1alpha1.SurgeEndUser) { delete(o.Labels, surgev1alpha1.LabelShard) })
	f.Eventually("the main instance takes the relabelled resource over", 20*time.Second, func() (bool, string) {
		return firstName("in-a") == "Augusta", "first name " + firstName("in-a")
	})
	if obj := f.waitForReady("in-a"); obj.Status.UserID != ids["in-a"] {
		t.Errorf("in-a manages %s after the handover, want %s", obj.Status.UserID, ids["in-a"])
	}
	if users := f.usersNamed("in-a"); len(users) != 1 {
		t.Errorf("%d users of in-a in Surge, want 1: %v", len(users), fmt.Sprint(users))
	}
}
