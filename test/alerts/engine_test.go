package alerts_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/template"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/util/annotations"
)

// The evaluation below is Prometheus' own PromQL engine over an in-memory
// storage, with the alert state of a rule group: an alert is pending from
// the first evaluation whose result holds its labels, fires once that has
// lasted its `for`, and ends at the first evaluation without them. The
// packages that hold Prometheus' rule manager and its test storage would
// bring in its service discovery and the cloud SDKs of its remote-write
// clients, which no test here needs.

// evalStart is the time of the first sample and the first evaluation.
var evalStart = time.Unix(0, 0).UTC()

// loadSeries reads one series a line, in the notation of Prometheus' rule
// test files, with a sample every step from evalStart.
func loadSeries(text string, step time.Duration) (memoryStorage, error) {
	var series memoryStorage
	for line := range strings.Lines(text) {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		metric, values, err := promqlParser.ParseSeriesDesc(line)
		if err != nil {
			return nil, fmt.Errorf("series %q: %w", line, err)
		}
		var samples []chunks.Sample
		for i, v := range values {
			if v.Histogram != nil {
				return nil, fmt.Errorf("series %q: the operator serves no histogram gauges", line)
			}
			if !v.Omitted {
				samples = append(samples, floatSample{t: evalStart.Add(time.Duration(i) * step).UnixMilli(), f: v.Value})
			}
		}
		series = append(series, storage.NewListSeries(metric, samples))
	}
	return series, nil
}

// floatSample is one float sample; stale markers are floats too.
type floatSample struct {
	t int64
	f float64
}

func (s floatSample) T() int64                    { return s.t }
func (floatSample) ST() int64                     { return 0 }
func (s floatSample) F() float64                  { return s.f }
func (floatSample) H() *histogram.Histogram       { return nil }
func (floatSample) FH() *histogram.FloatHistogram { return nil }
func (floatSample) Type() chunkenc.ValueType      { return chunkenc.ValFloat }
func (s floatSample) Copy() chunks.Sample         { return s }

// memoryStorage is a storage.Queryable, and its own Querier, over series
// held in memory.
type memoryStorage []storage.Series

func (m memoryStorage) Querier(_, _ int64) (storage.Querier, error) { return m, nil }

func (m memoryStorage) Select(_ context.Context, _ bool, _ *storage.SelectHints, matchers ...*labels.Matcher) storage.SeriesSet {
	var selected []storage.Series
	for _, s := range m {
		if matchesAll(s.Labels(), matchers) {
			selected = append(selected, s)
		}
	}
	// The engine expects series sorted by their labels.
	slices.SortFunc(selected, func(a, b storage.Series) int { return labels.Compare(a.Labels(), b.Labels()) })
	return &seriesSet{series: selected}
}

var errNotNeeded = errors.New("label look-ups are not needed to evaluate the alerts")

func (memoryStorage) LabelValues(context.Context, string, *storage.LabelHints, ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return nil, nil, errNotNeeded
}

func (memoryStorage) LabelNames(context.Context, *storage.LabelHints, ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return nil, nil, errNotNeeded
}

func (memoryStorage) Close() error { return nil }

func matchesAll(metric labels.Labels, matchers []*labels.Matcher) bool {
	for _, m := range matchers {
		if !m.Matches(metric.Get(m.Name)) {
			return false
		}
	}
	return true
}

type seriesSet struct {
	series []storage.Series
	// at is one past the index of the current series.
	at int
}

func (s *seriesSet) Next() bool                      { s.at++; return s.at <= len(s.series) }
func (s *seriesSet) At() storage.Series              { return s.series[s.at-1] }
func (*seriesSet) Err() error                        { return nil }
func (*seriesSet) Warnings() annotations.Annotations { return nil }

// alertEvaluator evaluates one alerting rule every evaluationInterval from
// evalStart, keeping the state of its alerts between evaluations.
type alertEvaluator struct {
	t       *testing.T
	rule    rulefmt.Rule
	engine  *promql.Engine
	storage memoryStorage
	next    time.Duration
	// active holds the pending and firing alerts by their labels.
	active map[string]*activeAlert
}

type activeAlert struct {
	// metric is the labels of the expression's result, which templates
	// read as $labels.
	metric   labels.Labels
	value    float64
	activeAt time.Duration
}

// firingAlert is what a check compares of a firing alert.
type firingAlert struct {
	value       float64
	annotations map[string]string
}

func newAlertEvaluator(t *testing.T, rule rulefmt.Rule, series memoryStorage) *alertEvaluator {
	engine := promql.NewEngine(promql.EngineOpts{MaxSamples: 1_000_000, Timeout: time.Minute, Parser: promqlParser})
	t.Cleanup(func() { _ = engine.Close() })
	return &alertEvaluator{t: t, rule: rule, engine: engine, storage: series, active: map[string]*activeAlert{}}
}

// evaluateUntil evaluates the rule at every interval up to at, and returns
// the alerts that fire after the evaluation at at, by their labels without
// alertname and severity.
func (e *alertEvaluator) evaluateUntil(at time.Duration) map[string]firingAlert {
	e.t.Helper()
	for ; e.next <= at; e.next += evaluationInterval {
		e.evaluate(e.next)
	}
	firing := map[string]firingAlert{}
	for _, name := range slices.Sorted(maps.Keys(e.active)) {
		alert := e.active[name]
		if at-alert.activeAt >= time.Duration(e.rule.For) {
			firing[name] = firingAlert{value: alert.value, annotations: e.annotations(alert, at)}
		}
	}
	return firing
}

func (e *alertEvaluator) evaluate(at time.Duration) {
	e.t.Helper()
	vector, err := e.query(context.Background(), e.rule.Expr, evalStart.Add(at))
	if err != nil {
		e.t.Fatalf("evaluating %s at %s: %v", e.rule.Alert, at, err)
	}
	seen := map[string]bool{}
	for _, sample := range vector {
		metric := labels.NewBuilder(sample.Metric).Del(model.MetricNameLabel).Labels()
		// The check names an alert by its own labels: the rule's labels
		// (severity) and alertname are the same for every alert of a rule,
		// and Prometheus lets them win over the result's.
		name := labels.NewBuilder(metric).Del(labels.AlertName).Del(slices.Collect(maps.Keys(e.rule.Labels))...).Labels().String()
		if seen[name] {
			e.t.Fatalf("at %s, two results of %s give the alert %s: Prometheus refuses such an evaluation", at, e.rule.Alert, name)
		}
		seen[name] = true
		if alert, ok := e.active[name]; ok {
			alert.metric, alert.value = metric, sample.F
			continue
		}
		e.active[name] = &activeAlert{metric: metric, value: sample.F, activeAt: at}
	}
	for name := range e.active {
		if !seen[name] {
			delete(e.active, name)
		}
	}
}

func (e *alertEvaluator) query(ctx context.Context, expr string, ts time.Time) (promql.Vector, error) {
	query, err := e.engine.NewInstantQuery(ctx, e.storage, nil, expr, ts)
	if err != nil {
		return nil, err
	}
	defer query.Close()
	return query.Exec(ctx).Vector()
}

// annotations expands the rule's annotations for alert as Prometheus
// does: with $labels, $value, $externalLabels and $externalURL defined.
func (e *alertEvaluator) annotations(alert *activeAlert, at time.Duration) map[string]string {
	e.t.Helper()
	ts := evalStart.Add(at)
	data := template.AlertTemplateData(alert.metric.Map(), nil, "", promql.Sample{Metric: alert.metric, F: alert.value, T: ts.UnixMilli()})
	const definitions = "{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}{{$externalURL := .ExternalURL}}{{$value := .Value}}"
	expanded := map[string]string{}
	for name, text := range e.rule.Annotations {
		expander := template.NewTemplateExpander(context.Background(), definitions+text, "__alert_"+e.rule.Alert, data,
			model.TimeFromUnixNano(ts.UnixNano()), e.query, nil, nil)
		result, err := expander.Expand()
		if err != nil {
			e.t.Errorf("expanding the %s of %s: %v", name, e.rule.Alert, err)
		}
		expanded[name] = result
	}
	return expanded
}
