package metrics

import (
	"fmt"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func TestBoundedLabels(t *testing.T) {
	labels := &boundedLabels{limit: 2, kept: map[string]bool{}}
	steps := []struct {
		scope string
		want  string
	}{
		{"SurgeProject team-a/surge", "SurgeProject team-a/surge"},
		{ScopeOperatorKey, ScopeOperatorKey},
		{"SurgeProject team-b/surge", "SurgeProject team-b/surge"},
		{"SurgeProject team-c/surge", otherProjects},
		{"SurgeProject team-a/surge", "SurgeProject team-a/surge"},
	}
	for i, step := range steps {
		if got := labels.of(step.scope); got != step.want {
			t.Errorf("step %d: %s is labelled %q, want %q", i, step.scope, got, step.want)
		}
	}
	if !labels.forget("SurgeProject team-a/surge") || labels.forget("SurgeProject team-c/surge") {
		t.Errorf("forget reports a label for a project without one, or none for one with")
	}
	if got := labels.of("SurgeProject team-c/surge"); got != "SurgeProject team-c/surge" {
		t.Errorf("a label freed by a deleted project is not given to the next: %q", got)
	}
}

// TestRequestsAreCountedPerProject: a failing tenant's key shows in the
// request counter by its project, and its series go with the project.
func TestRequestsAreCountedPerProject(t *testing.T) {
	scope := fmt.Sprintf("SurgeProject %s/surge", t.Name())
	SurgeObserver{Scope: scope}.RequestDone("get_user", 503, 0)
	counter, err := surgeRequests.GetMetricWithLabelValues("get_user", "503", scope)
	if err != nil {
		t.Fatal(err)
	}
	if got := counterValue(t, counter); got != 1 {
		t.Errorf("requests of %s counted %v, want 1", scope, got)
	}
	ForgetScope(scope)
	if deleted := surgeRequests.DeleteLabelValues("get_user", "503", scope); deleted {
		t.Errorf("the series of a deleted project outlive it")
	}
}

func counterValue(t *testing.T, counter prometheus.Counter) float64 {
	t.Helper()
	var metric dto.Metric
	if err := counter.Write(&metric); err != nil {
		t.Fatal(err)
	}
	return metric.GetCounter().GetValue()
}
