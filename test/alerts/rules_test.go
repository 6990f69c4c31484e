// Package alerts_test checks the operator's alerts as Prometheus itself
// loads and evaluates them, with Prometheus' own packages: the rule files
// (config/alerts and the chart's copy) pass rulefmt, the validation that
// `promtool check rules` runs; every alert has a `for`, a runbook in
// docs/runbooks.md and keeps the namespace and job of the installation it is
// about; and each alert is evaluated by the PromQL engine, minute by minute
// as a rule group would be, on sample series of the situations it is meant
// to catch and of those it must leave alone.
package alerts_test

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"sigs.k8s.io/yaml"
)

const (
	// repoRoot is relative to this package's directory, where go test runs.
	repoRoot = "../.."
	// runbookBase is where docs/runbooks.md is read on the project's home
	// (the chart's home in Chart.yaml).
	runbookBase = "https://github.com/surge-operator/surge-operator/blob/main/docs/runbooks.md"
)

var (
	alertsFile     = filepath.Join(repoRoot, "config", "alerts", "prometheus_rule.yaml")
	chartRulesFile = filepath.Join(repoRoot, "charts", "surge-operator", "files", "prometheus-rules.yaml")
	runbooksFile   = filepath.Join(repoRoot, "docs", "runbooks.md")

	// promqlParser parses as a Prometheus with default settings does: the
	// rules must not need experimental features.
	promqlParser = parser.NewParser(parser.Options{})
)

// parseRules validates a rule file's content as Prometheus does when it
// loads it.
func parseRules(t *testing.T, source string, content []byte) *rulefmt.RuleGroups {
	t.Helper()
	groups, errs := rulefmt.Parse(content, false, model.UTF8Validation, promqlParser, slog.New(slog.DiscardHandler))
	for _, err := range errs {
		t.Errorf("%s: %v", source, err)
	}
	if groups == nil {
		t.FailNow()
	}
	return groups
}

// operatorRules returns the rule groups of config/alerts: the spec of its
// PrometheusRule, which is a Prometheus rule file.
func operatorRules(t *testing.T) *rulefmt.RuleGroups {
	t.Helper()
	raw, err := os.ReadFile(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	var rule struct {
		Kind string         `json:"kind"`
		Spec map[string]any `json:"spec"`
	}
	if err := yaml.Unmarshal(raw, &rule); err != nil {
		t.Fatalf("reading %s: %v", alertsFile, err)
	}
	if rule.Kind != "PrometheusRule" {
		t.Fatalf("%s holds a %s, want a PrometheusRule", alertsFile, rule.Kind)
	}
	spec, err := yaml.Marshal(rule.Spec)
	if err != nil {
		t.Fatal(err)
	}
	return parseRules(t, alertsFile, spec)
}

// alertingRules returns every alerting rule of config/alerts.
func alertingRules(t *testing.T) map[string]rulefmt.Rule {
	t.Helper()
	alerts := map[string]rulefmt.Rule{}
	for _, group := range operatorRules(t).Groups {
		for _, rule := range group.Rules {
			if rule.Alert != "" {
				alerts[rule.Alert] = rule
			}
		}
	}
	if len(alerts) == 0 {
		t.Fatalf("%s holds no alert", alertsFile)
	}
	return alerts
}

// TestRuleFilesAreValid: both rule files pass Prometheus' validation, and
// the chart installs the same rules as config/alerts.
func TestRuleFilesAreValid(t *testing.T) {
	fromConfig := operatorRules(t)
	raw, err := os.ReadFile(chartRulesFile)
	if err != nil {
		t.Fatal(err)
	}
	fromChart := parseRules(t, chartRulesFile, raw)
	if !reflect.DeepEqual(fromConfig, fromChart) {
		t.Errorf("%s differs from %s: run make chart", chartRulesFile, alertsFile)
	}

	// The check can fail: an unknown field, a broken query and a broken
	// template are refused.
	for name, broken := range map[string]string{
		"an unknown field": "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up == 0\n    fro: 5m\n",
		"a broken query":   "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: sum(up\n",
		"a broken template": "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up == 0\n" +
			"    annotations:\n      summary: '{{ $labels.job '\n",
	} {
		if _, errs := rulefmt.Parse([]byte(broken), false, model.UTF8Validation, promqlParser, slog.New(slog.DiscardHandler)); len(errs) == 0 {
			t.Errorf("a rule file with %s passes validation", name)
		}
	}
}

// installationLabels are what tells one installation of the operator from
// another in Prometheus: the namespace and the job of its Service.
var installationLabels = []string{"namespace", "job"}

// TestEveryAlertIsActionable: each alert waits a `for` before it fires, has
// a severity, a summary, a description and a runbook that exists, and every
// aggregation in its expression keeps the namespace and job.
func TestEveryAlertIsActionable(t *testing.T) {
	runbooks, err := os.ReadFile(runbooksFile)
	if err != nil {
		t.Fatal(err)
	}
	anchors := headingAnchors(string(runbooks))
	for name, rule := range alertingRules(t) {
		if rule.For <= 0 {
			t.Errorf("%s fires on the first evaluation: give it a for", name)
		}
		if rule.Labels["severity"] == "" {
			t.Errorf("%s has no severity label", name)
		}
		for _, annotation := range []string{"summary", "description"} {
			if rule.Annotations[annotation] == "" {
				t.Errorf("%s has no %s", name, annotation)
			}
		}
		runbook := rule.Annotations["runbook_url"]
		base, anchor, _ := strings.Cut(runbook, "#")
		if base != runbookBase || anchor != strings.ToLower(name) {
			t.Errorf("%s has runbook_url %q, want %s#%s", name, runbook, runbookBase, strings.ToLower(name))
		} else if !anchors[anchor] {
			t.Errorf("%s has runbook_url %q, but %s has no heading %q", name, runbook, runbooksFile, name)
		}

		expr, err := promqlParser.ParseExpr(rule.Expr)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		parser.Inspect(expr, func(node parser.Node, _ []parser.Node) error {
			aggregate, ok := node.(*parser.AggregateExpr)
			if !ok || keepsSeriesLabels(aggregate.Op) {
				return nil
			}
			for _, label := range installationLabels {
				if kept := slices.Contains(aggregate.Grouping, label) != aggregate.Without; !kept {
					t.Errorf("%s: %s drops the label %s: alerts of two installations would merge", name, aggregate, label)
				}
			}
			return nil
		})
	}
}

// keepsSeriesLabels reports the aggregations that pick series and keep
// their labels whatever the grouping.
func keepsSeriesLabels(op parser.ItemType) bool {
	return op == parser.TOPK || op == parser.BOTTOMK || op == parser.LIMITK || op == parser.LIMIT_RATIO
}

var headingLine = regexp.MustCompile(`(?m)^#{1,6} +(.+?) *$`)

// headingAnchors returns the anchors GitHub gives the headings of a
// Markdown document: lower case, spaces as hyphens, other punctuation
// dropped.
func headingAnchors(markdown string) map[string]bool {
	anchors := map[string]bool{}
	for _, match := range headingLine.FindAllStringSubmatch(markdown, -1) {
		var anchor strings.Builder
		for _, r := range strings.ToLower(match[1]) {
			switch {
			case r == ' ':
				anchor.WriteRune('-')
			case r == '-' || r == '_' || ('a' <= r && r <= 'z') || ('0' <= r && r <= '9'):
				anchor.WriteRune(r)
			}
		}
		anchors[anchor.String()] = true
	}
	return anchors
}

func TestHeadingAnchors(t *testing.T) {
	got := headingAnchors("# Runbooks\n\n## SurgeTokenAboutToExpire\ntext\n### With two replicas\n")
	want := map[string]bool{"runbooks": true, "surgetokenabouttoexpire": true, "with-two-replicas": true}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("anchors %v, want %v", got, want)
	}
	if fmt.Sprint(headingAnchors("no heading")) != "map[]" {
		t.Errorf("a document without headings has anchors")
	}
}
