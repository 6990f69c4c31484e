// Package monitoring_test checks the alerts (config/alerts, and the chart's
// PrometheusRule made from them) and the Grafana dashboard: every expression
// parses with the Prometheus query parser, and every metric it names is one
// that the running operator exports.
package monitoring_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/yaml"

	surgev1alpha1 "github.com/surge-operator/surge-operator/api/v1alpha1"
	"github.com/surge-operator/surge-operator/internal/operatortest"
	"github.com/surge-operator/surge-operator/internal/surge/emulator"
)

const (
	// repoRoot is relative to this package's directory, where go test runs.
	repoRoot = "../.."
	apiKey   = "sk_demo_monitoring"
)

var (
	alertsFile    = filepath.Join(repoRoot, "config", "alerts", "prometheus_rule.yaml")
	dashboardFile = filepath.Join(repoRoot, "charts", "surge-operator", "dashboards", "surge-operator.json")

	cluster *operatortest.Cluster
)

func TestMain(m *testing.M) {
	var err error
	cluster, err = operatortest.StartCluster()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	_ = cluster.Stop()
	os.Exit(code)
}

// query is one PromQL expression and where it comes from.
type query struct {
	source, expr string
}

func alertQueries(t *testing.T) []query {
	t.Helper()
	raw, err := os.ReadFile(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	var rule struct {
		Spec struct {
			Groups []struct {
				Name  string `json:"name"`
				Rules []struct {
					Alert string `json:"alert"`
					Expr  string `json:"expr"`
				} `json:"rules"`
			} `json:"groups"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(raw, &rule); err != nil {
		t.Fatalf("reading %s: %v", alertsFile, err)
	}
	var queries []query
	for _, group := range rule.Spec.Groups {
		for _, r := range group.Rules {
			queries = append(queries, query{source: "alert " + r.Alert, expr: r.Expr})
		}
	}
	if len(queries) == 0 {
		t.Fatalf("%s holds no rule", alertsFile)
	}
	return queries
}

// grafanaVariables are the interval variables Grafana replaces in a query
// before sending it to Prometheus.
var grafanaVariables = strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "6h")

func dashboardQueries(t *testing.T) []query {
	t.Helper()
	raw, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var dashboard struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dashboard); err != nil {
		t.Fatalf("reading %s: %v", dashboardFile, err)
	}
	var queries []query
	for _, panel := range dashboard.Panels {
		if len(panel.Targets) == 0 {
			t.Errorf("panel %q has no query", panel.Title)
		}
		for _, target := range panel.Targets {
			queries = append(queries, query{source: "panel " + panel.Title, expr: grafanaVariables.Replace(target.Expr)})
		}
	}
	if len(queries) == 0 {
		t.Fatalf("%s has no panel", dashboardFile)
	}
	return queries
}

// metricNames parses expr and returns the metric names its selectors name.
func metricNames(expr string) ([]string, error) {
	// Default options: the stable PromQL that every Prometheus evaluates.
	node, err := parser.NewParser(parser.Options{}).ParseExpr(expr)
	if err != nil {
		return nil, err
	}
	var names []string
	parser.Inspect(node, func(node parser.Node, _ []parser.Node) error {
		if selector, ok := node.(*parser.VectorSelector); ok {
			names = append(names, selector.Name)
		}
		return nil
	})
	return names, nil
}

// exportedSeries runs the real operator on an end user with a component
// token, through a 429 and a 503 from Surge, so that every metric it has is
// written, and returns the names of the series it serves.
func exportedSeries(t *testing.T) map[string]bool {
	t.Helper()
	world := operatortest.NewWorld(t, cluster, operatortest.Settings{NamespacePrefix: "monitoring", APIKey: apiKey})
	world.Surge.InjectFault(emulator.Fault{Status: 429, Count: 1})
	world.Create(&surgev1alpha1.SurgeEndUser{
		ObjectMeta: metav1.ObjectMeta{Name: "ada", Namespace: world.Namespace},
		Spec: surgev1alpha1.SurgeEndUserSpec{
			AccountID:   world.Account,
			FirstName:   "Ada",
			TokenSecret: &surgev1alpha1.TokenSecretSpec{Name: "ada-token"},
		},
	})
	world.Eventually("ada ready with a token", 30*time.Second, func() (bool, string) {
		obj := world.Get("ada")
		return obj.Status.Token != nil && obj.Status.UserID != "", fmt.Sprintf("status %+v", obj.Status)
	})
	world.Surge.InjectFault(emulator.Fault{Method: "GET", Status: 503, Count: 1})
	world.Update("ada", func(obj *surgev1alpha1.SurgeEndUser) {
		if obj.Annotations == nil {
			obj.Annotations = map[string]string{}
		}
		obj.Annotations["surge.app/reconcile-requested-at"] = time.Now().Format(time.RFC3339Nano)
	})

	series := map[string]bool{}
	world.Eventually("the retried GET counted", 30*time.Second, func() (bool, string) {
		families, err := ctrlmetrics.Registry.Gather()
		if err != nil {
			return false, err.Error()
		}
		clear(series)
		for _, family := range families {
			for _, name := range seriesNames(family) {
				series[name] = true
			}
		}
		return series["surge_operator_surge_retries_total"], "no retry exported yet"
	})
	return series
}

// seriesNames are the names a family's samples carry in Prometheus.
func seriesNames(family *dto.MetricFamily) []string {
	name := family.GetName()
	switch family.GetType() {
	case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
		return []string{name + "_bucket", name + "_sum", name + "_count"}
	case dto.MetricType_SUMMARY:
		return []string{name, name + "_sum", name + "_count"}
	}
	return []string{name}
}

// TestQueriesUseExportedMetrics parses every alert and panel query and
// checks each metric it names against what the running operator serves.
func TestQueriesUseExportedMetrics(t *testing.T) {
	exported := exportedSeries(t)
	queries := append(alertQueries(t), dashboardQueries(t)...)
	for _, q := range queries {
		names, err := metricNames(q.expr)
		if err != nil {
			t.Errorf("%s: %q does not parse: %v", q.source, q.expr, err)
			continue
		}
		if len(names) == 0 {
			t.Errorf("%s: %q names no metric", q.source, q.expr)
		}
		for _, name := range names {
			if !exported[name] {
				t.Errorf("%s: %q uses %s, which the operator does not export", q.source, q.expr, name)
			}
		}
	}

	// The check can fail: a misspelt metric and a broken query are caught.
	names, err := metricNames(`sum(rate(surge_operator_surge_request_total[5m]))`)
	if err != nil || !slices.Equal(names, []string{"surge_operator_surge_request_total"}) || exported[names[0]] {
		t.Errorf("a misspelt metric goes unnoticed: names %v, err %v", names, err)
	}
	if _, err := metricNames(`sum(rate(surge_operator_surge_requests_total[5m])`); err == nil {
		t.Errorf("an unbalanced query parses")
	}
}

// TestDashboardFollowsTheChosenInstallation: every selector of every panel
// keeps to the installation chosen in the dashboard's namespace and job
// variables, so that two installations in one Prometheus are not summed
// together, and the variables list what the operator exports.
func TestDashboardFollowsTheChosenInstallation(t *testing.T) {
	raw, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var dashboard struct {
		Templating struct {
			List []struct {
				Name       string `json:"name"`
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(raw, &dashboard); err != nil {
		t.Fatal(err)
	}
	variables := map[string]string{}
	for _, variable := range dashboard.Templating.List {
		variables[variable.Name] = variable.Definition
	}
	for _, name := range []string{"namespace", "job", "project"} {
		definition, ok := variables[name]
		inner, isLabelValues := strings.CutPrefix(definition, "label_values(")
		if !ok || !isLabelValues {
			t.Errorf("the dashboard has no %s variable listing label values: %q", name, definition)
			continue
		}
		selector := inner[:strings.LastIndex(inner, ",")]
		if names, err := metricNames(selector); err != nil || len(names) != 1 {
			t.Errorf("the %s variable lists values of %q, which is not one metric: %v", name, selector, err)
		}
	}
	for _, q := range dashboardQueries(t) {
		node, err := parser.NewParser(parser.Options{}).ParseExpr(q.expr)
		if err != nil {
			t.Errorf("%s: %v", q.source, err)
			continue
		}
		parser.Inspect(node, func(node parser.Node, _ []parser.Node) error {
			selector, ok := node.(*parser.VectorSelector)
			if !ok {
				return nil
			}
			for _, want := range []string{`namespace=~"$namespace"`, `job=~"$job"`} {
				if !slices.ContainsFunc(selector.LabelMatchers, func(m *labels.Matcher) bool { return m.String() == want }) {
					t.Errorf("%s: %s does not keep to the chosen installation (%s)", q.source, selector, want)
				}
			}
			return nil
		})
	}
}
