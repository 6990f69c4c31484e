package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var chartDir = filepath.Join("..", "..", "charts", "surge-operator")

// TestCommittedReadmeIsCurrent fails when values.yaml, Chart.yaml or the
// template changed and the chart's README.md was not regenerated.
func TestCommittedReadmeIsCurrent(t *testing.T) {
	want, err := generate(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(chartDir, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("charts/surge-operator/README.md is stale: run make chart-readme and commit it")
	}
}

// TestReadmeDocumentsEverySchemaValue: each value the schema accepts has a
// row, but for those an umbrella chart passes, which the README explains
// apart.
func TestReadmeDocumentsEverySchemaValue(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(chartDir, "values.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	var schema struct {
		Properties map[string]struct {
			Properties map[string]any `json:"properties"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(raw, &schema); err != nil {
		t.Fatal(err)
	}
	raw, err = os.ReadFile(filepath.Join(chartDir, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	rows, err := valueRows(raw)
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for _, r := range rows {
		for path := r.Key; path != ""; {
			documented[path] = true
			path, _, _ = cutLast(path)
		}
	}
	for name, property := range schema.Properties {
		if name == "global" || name == "enabled" {
			continue
		}
		if !documented[name] {
			t.Errorf("the README does not document %s, which the schema accepts: give it a default and a comment in values.yaml", name)
		}
		for child := range property.Properties {
			if !documented[name+"."+child] && !documented[name] {
				t.Errorf("the README does not document %s.%s", name, child)
			}
		}
	}
}

func cutLast(path string) (string, string, bool) {
	i := strings.LastIndex(path, ".")
	if i < 0 {
		return "", path, false
	}
	return path[:i], path[i+1:], true
}

func TestValueRows(t *testing.T) {
	rows, err := valueRows([]byte(`# The file's own comment, about no value.

# Documented as one.
resources:
  limits: {memory: 1Gi}
# The group.
monitor:
  # Render it.
  enabled: false
  # Quoted as it was.
  label: "1"
  # Empty.
  name: ""
  # Unset.
  selector:
`))
	if err != nil {
		t.Fatal(err)
	}
	want := []row{
		{"resources", "{limits: {memory: 1Gi}}", "Documented as one."},
		{"monitor", "", "The group."},
		{"monitor.enabled", "false", "Render it."},
		{"monitor.label", `"1"`, "Quoted as it was."},
		{"monitor.name", `""`, "Empty."},
		{"monitor.selector", "null", "Unset."},
	}
	if len(rows) != len(want) {
		t.Fatalf("got rows %+v, want %+v", rows, want)
	}
	for i := range want {
		if rows[i] != want[i] {
			t.Errorf("row %d is %+v, want %+v", i, rows[i], want[i])
		}
	}
}

func TestUndocumentedValueIsAnError(t *testing.T) {
	_, err := valueRows([]byte(`# Render it.
enabled: true
image:
  # The image.
  repository: example.com/operator
  tag: ""
replicas: 1
`))
	if err == nil || !strings.Contains(err.Error(), "image.tag, replicas") {
		t.Errorf("got %v, want an error naming image.tag and replicas", err)
	}
}

func TestCell(t *testing.T) {
	for in, want := range map[string]string{
		"the <release>-metrics Service":    "the &lt;release&gt;-metrics Service",
		"`<release>-metrics` as is":        "`<release>-metrics` as is",
		"a | b, `c | d`":                   `a \| b, ` + "`c \\| d`",
		"replicaCount > 1 and `{a: b}` ok": "replicaCount &gt; 1 and `{a: b}` ok",
	} {
		if got := cell(in); got != want {
			t.Errorf("cell(%q) = %q, want %q", in, got, want)
		}
	}
}
