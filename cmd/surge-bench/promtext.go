package main

import (
	"bytes"
	"fmt"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// sample is one counter, gauge or untyped sample of an exposition.
type sample struct {
	name   string
	labels map[string]string
	value  float64
}

// parseMetrics reads the samples of the named counters and gauges from the
// Prometheus text format, with Prometheus' own parser.
func parseMetrics(raw []byte, names ...string) ([]sample, error) {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("reading metrics: %w", err)
	}
	var samples []sample
	for _, name := range names {
		family, ok := families[name]
		if !ok {
			continue
		}
		for _, metric := range family.GetMetric() {
			s := sample{name: name, labels: map[string]string{}, value: valueOf(family.GetType(), metric)}
			for _, label := range metric.GetLabel() {
				s.labels[label.GetName()] = label.GetValue()
			}
			samples = append(samples, s)
		}
	}
	return samples, nil
}

func valueOf(kind dto.MetricType, metric *dto.Metric) float64 {
	switch kind {
	case dto.MetricType_COUNTER:
		return metric.GetCounter().GetValue()
	case dto.MetricType_GAUGE:
		return metric.GetGauge().GetValue()
	default:
		return metric.GetUntyped().GetValue()
	}
}

// sumSamples adds up the samples whose labels include match.
func sumSamples(samples []sample, name string, match map[string]string) float64 {
	total := 0.0
	for _, s := range samples {
		if s.name != name {
			continue
		}
		matches := true
		for k, v := range match {
			if s.labels[k] != v {
				matches = false
				break
			}
		}
		if matches {
			total += s.value
		}
	}
	return total
}
