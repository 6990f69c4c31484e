package helm_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
)

// templateValues runs helm template on the chart with values given as the
// text of a values file.
func templateValues(t *testing.T, values string, flags ...string) (string, error) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "values.yaml")
	if err := os.WriteFile(file, []byte(values), 0o644); err != nil {
		t.Fatal(err)
	}
	return helm(append([]string{"template", "surge-operator", chartDir, "--namespace", "surge-operator", "--values", file}, flags...)...)
}

// TestSchemaRefusesNonsense: values Kubernetes or Prometheus would refuse, or
// silently ignore, fail at helm install with the place of the mistake and
// what is wrong with it.
func TestSchemaRefusesNonsense(t *testing.T) {
	for _, tc := range []struct {
		name, values string
		// want are the parts of helm's error: where, and what.
		want []string
	}{
		{"negative maxUnavailable", "podDisruptionBudget: {enabled: true, maxUnavailable: -1}",
			[]string{"'/podDisruptionBudget/maxUnavailable'", "minimum: got -1, want 0"}},
		{"maxUnavailable neither count nor percentage", "podDisruptionBudget: {maxUnavailable: half}",
			[]string{"'/podDisruptionBudget/maxUnavailable'", "'half' does not match"}},
		{"maxUnavailable over 100%", "podDisruptionBudget: {maxUnavailable: 150%}",
			[]string{"'/podDisruptionBudget/maxUnavailable'", "'150%' does not match"}},
		{"interval in words", "serviceMonitor: {interval: 5 minutes}",
			[]string{"'/serviceMonitor/interval'", "'5 minutes' does not match"}},
		{"interval without unit", `serviceMonitor: {interval: "30"}`,
			[]string{"'/serviceMonitor/interval'", "'30' does not match"}},
		{"interval units out of order", "serviceMonitor: {interval: 30s1m}",
			[]string{"'/serviceMonitor/interval'", "'30s1m' does not match"}},
		{"resources.limit for limits", "resources: {limit: {memory: 1Gi}}",
			[]string{"'/resources'", "additional properties 'limit' not allowed"}},
		{"misspelt resource name", "resources: {limits: {memroy: 1Gi}}",
			[]string{"'/resources/limits'", "additional properties 'memroy' not allowed"}},
		{"memory in MB", "resources: {limits: {memory: 256MB}}",
			[]string{"'/resources/limits/memory'", "'256MB' does not match"}},
		{"negative CPU", "resources: {requests: {cpu: -1}}",
			[]string{"'/resources/requests/cpu'", "minimum: got -1, want 0"}},
		{"misspelt podSecurityContext field", "podSecurityContext: {runAsNonroot: true}",
			[]string{"'/podSecurityContext'", "additional properties 'runAsNonroot' not allowed"}},
		{"misspelt seccomp field", "podSecurityContext: {seccompProfile: {typ: RuntimeDefault}}",
			[]string{"'/podSecurityContext/seccompProfile'", "additional properties 'typ' not allowed"}},
		{"negative user id", "podSecurityContext: {runAsUser: -5}",
			[]string{"'/podSecurityContext/runAsUser'", "minimum: got -5, want 0"}},
		{"misspelt capabilities field", "securityContext: {capabilities: {dorp: [ALL]}}",
			[]string{"'/securityContext/capabilities'", "additional properties 'dorp' not allowed"}},
		{"label value with a space", `commonLabels: {team: "platform team"}`,
			[]string{"'/commonLabels/team'", "'platform team' does not match"}},
		{"label value a number", "commonLabels: {cost-center: 4711}",
			[]string{"'/commonLabels/cost-center'", "got number, want string"}},
		{"label key with a space", `podLabels: {"team name": platform}`,
			[]string{"'/podLabels'", "additional properties 'team name' not allowed"}},
		{"annotation key with two prefixes", `podAnnotations: {"a.io/b.io/c": x}`,
			[]string{"'/podAnnotations'", "additional properties 'a.io/b.io/c' not allowed"}},
		{"fullnameOverride not a DNS label", "fullnameOverride: Billing_Surge",
			[]string{"'/fullnameOverride'", "'Billing_Surge' does not match"}},
		{"strategy type unknown", "strategy: {type: Rolling}",
			[]string{"'/strategy/type'", "value must be one of 'RollingUpdate', 'Recreate'"}},
		{"negative surge", "strategy: {rollingUpdate: {maxSurge: -1}}",
			[]string{"'/strategy/rollingUpdate/maxSurge'", "minimum: got -1, want 0"}},
		{"negative revisionHistoryLimit", "revisionHistoryLimit: -1",
			[]string{"'/revisionHistoryLimit'", "minimum: got -1, want 0"}},
		{"log level unknown", "logLevel: verbose",
			[]string{"'/logLevel'", "'verbose' does not match"}},
		{"log level zero", "logLevel: 0",
			[]string{"'/logLevel'", "minimum: got 0, want 1"}},
		{"priorityClassName not a DNS name", "priorityClassName: High",
			[]string{"'/priorityClassName'", "'High' does not match"}},
		{"volume mount without a path", "extraVolumeMounts: [{name: ca}]",
			[]string{"'/extraVolumeMounts/0'", "missing property 'mountPath'"}},
		{"misspelt volume mount field", "extraVolumeMounts: [{name: ca, mountPath: /etc/ca, readonly: true}]",
			[]string{"'/extraVolumeMounts/0'", "additional properties 'readonly' not allowed"}},
		{"volume without a name", "extraVolumes: [{configMap: {name: ca}}]",
			[]string{"'/extraVolumes/0'", "missing property 'name'"}},
		{"rbac.create not a boolean", `rbac: {create: "no"}`,
			[]string{"'/rbac/create'", "got string, want boolean"}},
		{"misspelt rbac field", "rbac: {enabled: false}",
			[]string{"'/rbac'", "additional properties 'enabled' not allowed"}},
		{"CRD annotation key with a space", `crds: {annotations: {"sync options": x}}`,
			[]string{"'/crds/annotations'", "additional properties 'sync options' not allowed"}},
		{"NetworkPolicy rule without ports", "networkPolicy: {apiServer: {ports: []}}",
			[]string{"'/networkPolicy/apiServer/ports'", "minItems: got 0, want 1"}},
		{"NetworkPolicy port out of range", "networkPolicy: {surgeAPI: {ports: [70000]}}",
			[]string{"'/networkPolicy/surgeAPI/ports/0'", "maximum: got 70,000, want 65,535"}},
		{"misspelt NetworkPolicy peer", "networkPolicy: {metricsFrom: [{namespaceSelecter: {}}]}",
			[]string{"'/networkPolicy/metricsFrom/0'", "additional properties 'namespaceSelecter' not allowed"}},
		{"misspelt NetworkPolicy field", "networkPolicy: {metricFrom: []}",
			[]string{"'/networkPolicy'", "additional properties 'metricFrom' not allowed"}},
		{"extra object a number", "extraObjects: [42]",
			[]string{"'/extraObjects/0'", "got number, want string or object"}},
		{"relabeling action unknown", "serviceMonitor: {relabelings: [{action: rename}]}",
			[]string{"'/serviceMonitor/relabelings/0/action'", "value must be one of"}},
		{"relabeling in Prometheus' own spelling", "serviceMonitor: {metricRelabelings: [{source_labels: [__name__], action: drop}]}",
			[]string{"'/serviceMonitor/metricRelabelings/0'", "additional properties 'source_labels' not allowed"}},
		{"honorLabels not a boolean", `serviceMonitor: {honorLabels: "yes"}`,
			[]string{"'/serviceMonitor/honorLabels'", "got string, want boolean"}},
		{"ServiceMonitor bearer token file", "serviceMonitor: {bearerTokenFile: /var/run/secrets/kubernetes.io/serviceaccount/token}",
			[]string{"'/serviceMonitor'", "additional properties 'bearerTokenFile' not allowed"}},
		{"client certificate Secret not a DNS name", "serviceMonitor: {clientCertSecret: Prometheus_TLS}",
			[]string{"'/serviceMonitor/clientCertSecret'", "'Prometheus_TLS' does not match"}},
		{"metrics port privileged", "metrics: {port: 443}",
			[]string{"'/metrics/port'", "minimum"}},
		{"ServiceMonitor token Secret", "serviceMonitor: {authorization: {existingSecret: prometheus-token}}",
			[]string{"'/serviceMonitor'", "additional properties 'authorization' not allowed"}},
		{"misspelt env field", "extraEnv: [{name: SURGE_API_URL, valeu: https://surge.example.com}]",
			[]string{"'/extraEnv/0'", "additional properties 'valeu' not allowed"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := templateValues(t, tc.values)
			if err == nil {
				t.Fatalf("%s was accepted", tc.values)
			}
			for _, want := range tc.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("%s: the error does not say %s:\n%v", tc.values, want, err)
				}
			}
		})
	}
}

// TestSchemaAcceptsWhatKubernetesDoes: the tightened values still take
// every form Kubernetes and Prometheus accept.
func TestSchemaAcceptsWhatKubernetesDoes(t *testing.T) {
	for _, values := range []string{
		"podDisruptionBudget: {enabled: true, maxUnavailable: 0}",
		"podDisruptionBudget: {enabled: true, maxUnavailable: 50%}",
		"podDisruptionBudget: {enabled: true, maxUnavailable: 100%}",
		"metrics: {tls: {existingSecret: m}}\nserviceMonitor: {enabled: true, clientCertSecret: p, interval: \"\"}",
		"metrics: {tls: {existingSecret: m}}\nserviceMonitor: {enabled: true, clientCertSecret: p, interval: 1m30s, scrapeTimeout: 10s}",
		"metrics: {tls: {existingSecret: m}}\nserviceMonitor: {enabled: true, clientCertSecret: p, interval: 500ms, scrapeTimeout: 10s}",
		"metrics: {tls: {existingSecret: m}}\nserviceMonitor: {enabled: true, clientCertSecret: p, interval: 1h, scrapeTimeout: 10s}",
		"resources: {requests: {cpu: 0.5, memory: 1.5Gi, ephemeral-storage: 1G}, limits: {cpu: 2, memory: 2e9, hugepages-2Mi: 64Mi, example.com/gpu: 1}}",
		"resources: {requests: {cpu: 250m}, claims: [{name: gpu}]}",
		"resources: {}",
		"podSecurityContext: {runAsNonRoot: true, runAsUser: 65532, fsGroup: 65532, seccompProfile: {type: RuntimeDefault}, sysctls: [{name: net.ipv4.ip_local_port_range, value: 1024 65535}]}",
		"securityContext: {readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}, appArmorProfile: {type: RuntimeDefault}}",
		"extraEnv: [{name: GOMEMLIMIT, valueFrom: {resourceFieldRef: {resource: limits.memory}}}]",
	} {
		if _, err := templateValues(t, values); err != nil {
			t.Errorf("%s was refused: %v", values, err)
		}
	}
}

// TestSchemaPatternsAgreeWithKubernetes holds the schema's patterns for
// labels and quantities to what the API server accepts.
func TestSchemaPatternsAgreeWithKubernetes(t *testing.T) {
	schema := readSchema(t)
	labels := schemaAt(t, schema, schema, "definitions", "labels")
	var keyPattern, valuePattern string
	for pattern, value := range labels["patternProperties"].(map[string]any) {
		keyPattern = pattern
		valuePattern, _ = value.(map[string]any)["pattern"].(string)
	}
	quantityPattern, _ := schemaAt(t, schema, schema, "definitions", "quantity")["pattern"].(string)
	for _, tc := range []struct {
		what    string
		pattern string
		valid   func(string) bool
		samples []string
	}{
		{"label key", keyPattern, func(s string) bool { return len(validation.IsQualifiedName(s)) == 0 }, []string{
			"team", "app.kubernetes.io/name", "example.com/a_b.c-d", "A", "a/b", "-a", "a-", "a b", "a.io/b/c", "a.io/", "/a",
			"Example.com/a", "a..b/c", "a.-b/c", strings.Repeat("a", 63), strings.Repeat("a", 64), "",
		}},
		{"label value", valuePattern, func(s string) bool { return len(validation.IsValidLabelValue(s)) == 0 }, []string{
			"", "platform", "a_b.c-D", "-a", "a-", "a b", "a/b", strings.Repeat("a", 63),
		}},
		{"quantity", quantityPattern, func(s string) bool {
			q, err := resource.ParseQuantity(s)
			return err == nil && q.Sign() >= 0
		}, []string{
			"1", "100m", "0.5", ".5", "1.", "256Mi", "1Gi", "2e9", "2E-3", "1k", "1K", "1Ki", "1MB", "256MB", "+1", "-1", "1.5.5", "", "1 Gi",
		}},
	} {
		pattern := regexp.MustCompile(tc.pattern)
		for _, sample := range tc.samples {
			// The schema bounds the length of label values apart from the pattern.
			if got, want := pattern.MatchString(sample), tc.valid(sample); got != want && (tc.what != "label value" || len(sample) <= 63) {
				t.Errorf("the schema's %s pattern says %q is valid: %v; Kubernetes says %v", tc.what, sample, got, want)
			}
		}
	}
}

func readSchema(t *testing.T) map[string]any {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(chartDir, "values.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	var schema map[string]any
	if err := json.Unmarshal(raw, &schema); err != nil {
		t.Fatal(err)
	}
	return schema
}

// TestSchemaFollowsKubernetesTypes: where the schema spells out the fields
// of a Kubernetes type, so that a misspelt field is refused, it lists
// exactly the fields of that type in the Kubernetes version the operator is
// built against, each with its JSON type.
func TestSchemaFollowsKubernetesTypes(t *testing.T) {
	schema := readSchema(t)
	for _, tc := range []struct {
		path []string
		typ  reflect.Type
	}{
		{[]string{"properties", "podSecurityContext"}, reflect.TypeFor[corev1.PodSecurityContext]()},
		{[]string{"properties", "securityContext"}, reflect.TypeFor[corev1.SecurityContext]()},
		{[]string{"properties", "resources"}, reflect.TypeFor[corev1.ResourceRequirements]()},
		{[]string{"properties", "extraEnv", "items"}, reflect.TypeFor[corev1.EnvVar]()},
		{[]string{"properties", "extraVolumeMounts", "items"}, reflect.TypeFor[corev1.VolumeMount]()},
		{[]string{"properties", "strategy"}, reflect.TypeFor[appsv1.DeploymentStrategy]()},
	} {
		node := schemaAt(t, schema, schema, tc.path...)
		if _, ok := node["properties"]; !ok || node["additionalProperties"] != false {
			t.Errorf("%s does not list the fields of %s and refuse others", strings.Join(tc.path, "."), tc.typ)
			continue
		}
		checkFields(t, schema, strings.Join(tc.path[1:], "."), node, tc.typ)
	}
}

// schemaAt returns the schema node at path, following $refs.
func schemaAt(t *testing.T, root, node map[string]any, path ...string) map[string]any {
	t.Helper()
	for {
		ref, ok := node["$ref"].(string)
		if !ok {
			break
		}
		node = schemaAt(t, root, root, strings.Split(strings.TrimPrefix(ref, "#/"), "/")...)
	}
	if len(path) == 0 {
		return node
	}
	next, ok := node[path[0]].(map[string]any)
	if !ok {
		t.Fatalf("the schema has no %s", path[0])
	}
	return schemaAt(t, root, next, path[1:]...)
}

// checkFields compares the properties of a schema node with the JSON fields
// of a Go struct, and descends into the fields the schema spells out too.
func checkFields(t *testing.T, root map[string]any, where string, node map[string]any, typ reflect.Type) {
	t.Helper()
	properties, _ := node["properties"].(map[string]any)
	fields := map[string]reflect.Type{}
	for i := range typ.NumField() {
		name, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			fields[name] = typ.Field(i).Type
		}
	}
	for name := range properties {
		if _, ok := fields[name]; !ok {
			t.Errorf("the schema allows %s.%s, which %s does not have", where, name, typ)
		}
	}
	for name, fieldType := range fields {
		property, ok := properties[name].(map[string]any)
		if !ok {
			t.Errorf("the schema refuses %s.%s, a field of %s", where, name, typ)
			continue
		}
		property = schemaAt(t, root, property)
		if got, want := jsonTypes(property["type"]), jsonTypesOf(fieldType); !slices.Equal(got, want) {
			t.Errorf("the schema types %s.%s as %v; %s has it as %v", where, name, got, typ, want)
		}
		for fieldType.Kind() == reflect.Pointer || fieldType.Kind() == reflect.Slice {
			if fieldType.Kind() == reflect.Slice {
				items, ok := property["items"].(map[string]any)
				if !ok {
					break
				}
				property = schemaAt(t, root, items)
			}
			fieldType = fieldType.Elem()
		}
		if _, spelt := property["properties"]; spelt && fieldType.Kind() == reflect.Struct {
			checkFields(t, root, where+"."+name, property, fieldType)
		}
	}
}

func jsonTypes(v any) []string {
	var types []string
	switch v := v.(type) {
	case string:
		types = []string{v}
	case []any:
		for _, each := range v {
			s, _ := each.(string)
			types = append(types, s)
		}
	}
	slices.Sort(types)
	return types
}

func jsonTypesOf(typ reflect.Type) []string {
	for typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	switch typ {
	case reflect.TypeFor[resource.Quantity]():
		return []string{"number", "string"}
	case reflect.TypeFor[intstr.IntOrString]():
		return []string{"integer", "string"}
	}
	switch typ.Kind() {
	case reflect.Bool:
		return []string{"boolean"}
	case reflect.Int, reflect.Int32, reflect.Int64, reflect.Uint, reflect.Uint32, reflect.Uint64:
		return []string{"integer"}
	case reflect.String:
		return []string{"string"}
	case reflect.Slice:
		return []string{"array"}
	default:
		return []string{"object"}
	}
}
