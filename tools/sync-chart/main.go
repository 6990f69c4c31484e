// Command sync-chart writes the parts of the Helm chart that have their
// source of truth in config/, so that the chart and the kustomize
// installation never disagree:
//
//   - every CRD of config/crd/bases becomes a template under templates/crds,
//     rendered only with crds.enabled, kept on uninstall with crds.keep and
//     annotated with crds.annotations;
//   - the rules of the ClusterRole in config/rbac/role.yaml become the
//     manager's ClusterRole, rendered only with rbac.create;
//   - every ClusterRole of config/rbac that aggregates into the built-in
//     admin, edit or view roles becomes a ClusterRole of the release,
//     rendered only with rbac.create;
//   - the rule groups of config/alerts become files/prometheus-rules.yaml.
//
// It runs from the repository root (make chart). Templates under
// templates/crds whose CRD is gone from config are removed.
package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

const (
	chartDir = "charts/surge-operator"
	crdDir   = "config/crd/bases"
	rbacDir  = "config/rbac"
	roleFile = "config/rbac/role.yaml"
	alerts   = "config/alerts/prometheus_rule.yaml"

	aggregateLabelPrefix = "rbac.authorization.k8s.io/aggregate-to-"

	// Placeholders stand in the marshalled YAML where template actions go.
	// They survive marshalling unquoted and are replaced afterwards.
	fullnamePlaceholder = "SYNC_CHART_FULLNAME"
	labelsPlaceholder   = "SYNC_CHART_LABELS"
	keepPlaceholder     = "SYNC_CHART_KEEP"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "sync-chart:", err)
		os.Exit(1)
	}
}

func run() error {
	if err := syncCRDs(); err != nil {
		return err
	}
	if err := syncManagerRole(); err != nil {
		return err
	}
	if err := syncUserRoles(); err != nil {
		return err
	}
	return syncAlerts()
}

func syncCRDs() error {
	sources, err := filepath.Glob(filepath.Join(crdDir, "*.yaml"))
	if err != nil {
		return err
	}
	if len(sources) == 0 {
		return fmt.Errorf("%s holds no CRD; run make manifests", crdDir)
	}
	outDir := filepath.Join(chartDir, "templates", "crds")
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return err
	}
	written := map[string]bool{}
	for _, source := range sources {
		objects, err := readObjects(source)
		if err != nil {
			return err
		}
		var body strings.Builder
		for _, crd := range objects {
			if crd["kind"] != "CustomResourceDefinition" {
				return fmt.Errorf("%s holds a %v, not a CustomResourceDefinition", source, crd["kind"])
			}
			metadata := mapAt(crd, "metadata")
			mapAt(metadata, "labels")[labelsPlaceholder] = ""
			mapAt(metadata, "annotations")["helm.sh/resource-policy"] = keepPlaceholder
			text, err := render(crd)
			if err != nil {
				return fmt.Errorf("%s: %w", source, err)
			}
			body.WriteString("---\n")
			body.WriteString(text)
		}
		name := filepath.Base(source)
		content := generatedHeader(source) +
			"{{- if .Values.crds.enabled }}\n" + body.String() + "{{- end }}\n"
		if err := os.WriteFile(filepath.Join(outDir, name), []byte(content), 0o644); err != nil {
			return err
		}
		written[name] = true
	}
	stale, err := filepath.Glob(filepath.Join(outDir, "*.yaml"))
	if err != nil {
		return err
	}
	for _, path := range stale {
		if !written[filepath.Base(path)] {
			if err := os.Remove(path); err != nil {
				return err
			}
		}
	}
	return nil
}

func syncManagerRole() error {
	objects, err := readObjects(roleFile)
	if err != nil {
		return err
	}
	var rules []any
	for _, obj := range objects {
		if obj["kind"] != "ClusterRole" {
			// controller-gen writes a Role for markers limited to a namespace;
			// the chart has no namespace to give it but the release's.
			return fmt.Errorf("%s holds a %v, which the chart cannot install; give the marker no namespace", roleFile, obj["kind"])
		}
		list, _ := obj["rules"].([]any)
		rules = append(rules, list...)
	}
	if len(rules) == 0 {
		return fmt.Errorf("%s grants nothing; run make manifests", roleFile)
	}
	role := clusterRole("manager", nil, rules)
	text, err := render(role)
	if err != nil {
		return err
	}
	return writeTemplate("manager-clusterrole.yaml", generatedHeader(roleFile)+onlyWithRBAC(text))
}

// syncUserRoles copies the roles meant for the cluster's users: a ClusterRole
// is one of them when it aggregates into a built-in role.
func syncUserRoles() error {
	sources, err := filepath.Glob(filepath.Join(rbacDir, "*.yaml"))
	if err != nil {
		return err
	}
	var docs []string
	var from []string
	for _, source := range sources {
		if source == roleFile || filepath.Base(source) == "kustomization.yaml" {
			continue
		}
		objects, err := readObjects(source)
		if err != nil {
			return err
		}
		for _, obj := range objects {
			if obj["kind"] != "ClusterRole" {
				continue
			}
			metadata := mapAt(obj, "metadata")
			aggregate := map[string]any{}
			for key, value := range mapAt(metadata, "labels") {
				if strings.HasPrefix(key, aggregateLabelPrefix) {
					aggregate[key] = value
				}
			}
			if len(aggregate) == 0 {
				continue
			}
			name, _ := metadata["name"].(string)
			rules, _ := obj["rules"].([]any)
			text, err := render(clusterRole(name, aggregate, rules))
			if err != nil {
				return fmt.Errorf("%s: %w", source, err)
			}
			docs = append(docs, text)
			from = append(from, source)
		}
	}
	if len(docs) == 0 {
		return fmt.Errorf("%s holds no ClusterRole labelled %s*", rbacDir, aggregateLabelPrefix)
	}
	var body string
	for _, doc := range docs {
		body += "---\n" + doc
	}
	return writeTemplate("user-clusterroles.yaml", generatedHeader(strings.Join(slices.Compact(from), ", "))+onlyWithRBAC(body))
}

func syncAlerts() error {
	objects, err := readObjects(alerts)
	if err != nil {
		return err
	}
	if len(objects) != 1 || objects[0]["kind"] != "PrometheusRule" {
		return fmt.Errorf("%s should hold one PrometheusRule", alerts)
	}
	spec, err := yaml.Marshal(objects[0]["spec"])
	if err != nil {
		return err
	}
	// The chart reads this file with .Files.Get, which does not template it:
	// the alerts' own {{ $labels }} stay as they are.
	content := fmt.Sprintf("# Generated by make chart from %s; edit that file instead.\n%s", alerts, spec)
	return os.WriteFile(filepath.Join(chartDir, "files", "prometheus-rules.yaml"), []byte(content), 0o644)
}

func clusterRole(name string, labels map[string]any, rules []any) map[string]any {
	allLabels := map[string]any{labelsPlaceholder: ""}
	for key, value := range labels {
		allLabels[key] = value
	}
	return map[string]any{
		"apiVersion": "rbac.authorization.k8s.io/v1",
		"kind":       "ClusterRole",
		"metadata": map[string]any{
			"name":   fullnamePlaceholder + "-" + name,
			"labels": allLabels,
		},
		"rules": rules,
	}
}

var (
	labelsLine = regexp.MustCompile(`(?m)^( *)` + labelsPlaceholder + `: ""$`)
	keepLine   = regexp.MustCompile(`(?m)^( *)helm\.sh/resource-policy: ` + keepPlaceholder + `$`)
)

// render marshals obj and turns the placeholders into template actions.
// Text that looks like a template action is escaped first, so that Helm
// prints it as it is.
func render(obj map[string]any) (string, error) {
	raw, err := yaml.Marshal(obj)
	if err != nil {
		return "", err
	}
	text := strings.ReplaceAll(string(raw), "{{", `{{ "{{" }}`)
	text = strings.ReplaceAll(text, fullnamePlaceholder, `{{ include "surge-operator.fullname" . }}`)
	text = labelsLine.ReplaceAllStringFunc(text, func(line string) string {
		indent := len(line) - len(strings.TrimLeft(line, " "))
		return fmt.Sprintf(`%s{{- include "surge-operator.labels" . | nindent %d }}`, strings.Repeat(" ", indent), indent)
	})
	text = keepLine.ReplaceAllStringFunc(text, func(line string) string {
		indent := strings.Repeat(" ", len(line)-len(strings.TrimLeft(line, " ")))
		return indent + "{{- if .Values.crds.keep }}\n" + indent + "helm.sh/resource-policy: keep\n" + indent + "{{- end }}\n" +
			indent + `{{- with include "surge-operator.crdAnnotations" . }}` + "\n" +
			fmt.Sprintf("%s{{- . | nindent %d }}\n", indent, len(indent)) +
			indent + "{{- end }}"
	})
	for _, placeholder := range []string{fullnamePlaceholder, labelsPlaceholder, keepPlaceholder} {
		if strings.Contains(text, placeholder) {
			return "", fmt.Errorf("%s left in the template: the YAML took an unexpected shape", placeholder)
		}
	}
	return text, nil
}

// onlyWithRBAC renders text only when the chart creates RBAC objects.
func onlyWithRBAC(text string) string {
	return "{{- if .Values.rbac.create }}\n" + text + "{{- end }}\n"
}

func generatedHeader(source string) string {
	return fmt.Sprintf("{{- /* make chart writes this file from %s: change that, not this. */ -}}\n", source)
}

func writeTemplate(name, content string) error {
	dir := filepath.Join(chartDir, "templates", "rbac")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644)
}

// readObjects reads every YAML document of a file, skipping empty ones.
func readObjects(path string) ([]map[string]any, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	decoder := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(raw), 4096)
	var objects []map[string]any
	for {
		var obj map[string]any
		if err := decoder.Decode(&obj); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if len(obj) > 0 {
			objects = append(objects, obj)
		}
	}
	return objects, nil
}

// mapAt returns the map under key, creating it when missing.
func mapAt(obj map[string]any, key string) map[string]any {
	m, ok := obj[key].(map[string]any)
	if !ok {
		m = map[string]any{}
		obj[key] = m
	}
	return m
}
