// Command chart-readme writes the Helm chart's README.md from its Chart.yaml
// and the comments of its values.yaml, so that the values a user reads about
// are the values the chart has, with their defaults:
//
//   - the comment right above a key describes it; a key without one is an
//     error, so no value goes undocumented;
//   - a map some of whose keys are commented is documented key by key, under
//     a row of its own when it has a comment; any other value (a scalar, a
//     list, a map whose keys have no comments) is one row, with its default
//     in YAML flow style.
//
// It runs from the repository root (make chart-readme):
//
//	go run ./hack/chart-readme [-chart charts/surge-operator]
package main

import (
	"bytes"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/template"

	yaml "go.yaml.in/yaml/v3"
)

//go:embed README.md.tmpl
var readmeTemplate string

func main() {
	chart := flag.String("chart", "charts/surge-operator", "the chart's directory; README.md is written there")
	flag.Parse()
	readme, err := generate(*chart)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chart-readme:", err)
		os.Exit(1)
	}
	if err := os.WriteFile(filepath.Join(*chart, "README.md"), readme, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "chart-readme:", err)
		os.Exit(1)
	}
}

// chartMetadata is what the README shows of Chart.yaml.
type chartMetadata struct {
	Name        string `yaml:"name"`
	Description string `yaml:"description"`
	Version     string `yaml:"version"`
	AppVersion  string `yaml:"appVersion"`
	KubeVersion string `yaml:"kubeVersion"`
	Home        string `yaml:"home"`
}

// row is one line of the values table; Default is empty for a map
// documented key by key.
type row struct {
	Key, Default, Description string
}

func generate(chartDir string) ([]byte, error) {
	raw, err := os.ReadFile(filepath.Join(chartDir, "Chart.yaml"))
	if err != nil {
		return nil, err
	}
	var chart chartMetadata
	if err := yaml.Unmarshal(raw, &chart); err != nil {
		return nil, fmt.Errorf("Chart.yaml: %w", err)
	}
	raw, err = os.ReadFile(filepath.Join(chartDir, "values.yaml"))
	if err != nil {
		return nil, err
	}
	rows, err := valueRows(raw)
	if err != nil {
		return nil, fmt.Errorf("values.yaml: %w", err)
	}
	tmpl, err := template.New("README.md").Funcs(template.FuncMap{"cell": cell, "code": code}).Parse(readmeTemplate)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	if err := tmpl.Execute(&out, struct {
		Chart  chartMetadata
		Values []row
	}{chart, rows}); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// valueRows lists the documented values of a values file, in file order.
func valueRows(raw []byte) ([]row, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return nil, err
	}
	if len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, errors.New("not a map of values")
	}
	var rows []row
	var problems []string
	var walk func(mapping *yaml.Node, prefix string)
	walk = func(mapping *yaml.Node, prefix string) {
		for i := 0; i+1 < len(mapping.Content); i += 2 {
			key, value := mapping.Content[i], mapping.Content[i+1]
			path := prefix + key.Value
			description := commentText(key.HeadComment)
			if value.Kind == yaml.MappingNode && hasCommentedKey(value) {
				if description != "" {
					rows = append(rows, row{Key: path, Description: description})
				}
				walk(value, path+".")
				continue
			}
			if description == "" {
				problems = append(problems, path)
				continue
			}
			rows = append(rows, row{Key: path, Default: flow(value), Description: description})
		}
	}
	walk(doc.Content[0], "")
	if len(problems) > 0 {
		return nil, fmt.Errorf("no comment describes %s; write one right above each", strings.Join(problems, ", "))
	}
	return rows, nil
}

func hasCommentedKey(mapping *yaml.Node) bool {
	for i := 0; i < len(mapping.Content); i += 2 {
		if mapping.Content[i].HeadComment != "" {
			return true
		}
	}
	return false
}

// commentText joins the lines of a comment into one paragraph.
func commentText(comment string) string {
	var words []string
	for line := range strings.SplitSeq(comment, "\n") {
		line = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "#"))
		if line != "" {
			words = append(words, line)
		}
	}
	return strings.Join(words, " ")
}

// flow writes a value in YAML flow style, on one line, as a table cell can
// hold it.
func flow(node *yaml.Node) string {
	switch node.Kind {
	case yaml.MappingNode:
		parts := make([]string, 0, len(node.Content)/2)
		for i := 0; i+1 < len(node.Content); i += 2 {
			parts = append(parts, flow(node.Content[i])+": "+flow(node.Content[i+1]))
		}
		return "{" + strings.Join(parts, ", ") + "}"
	case yaml.SequenceNode:
		parts := make([]string, 0, len(node.Content))
		for _, item := range node.Content {
			parts = append(parts, flow(item))
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case yaml.AliasNode:
		return flow(node.Alias)
	default:
		if node.Tag == "!!null" && node.Value == "" {
			return "null"
		}
		// Quoted in the file, or empty: quoted here too, so that "1" and ""
		// read as the strings they are.
		if node.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0 || node.Value == "" {
			return strconv.Quote(node.Value)
		}
		return node.Value
	}
}

// cell escapes text for a Markdown table cell: pipes everywhere, and angle
// brackets outside code spans, where Markdown would read <release> as HTML.
func cell(text string) string {
	parts := strings.Split(text, "`")
	for i, part := range parts {
		part = strings.ReplaceAll(part, "|", `\|`)
		if i%2 == 0 {
			part = strings.NewReplacer("<", "&lt;", ">", "&gt;").Replace(part)
		}
		parts[i] = part
	}
	return strings.Join(parts, "`")
}

// code writes text as a code span in a table cell.
func code(text string) string {
	return "`" + strings.ReplaceAll(text, "|", `\|`) + "`"
}
