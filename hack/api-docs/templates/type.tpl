{{- define "type" -}}
{{- if markdownShouldRenderType . }}
## {{ .Name }}

{{ if .IsAlias }}Underlying type: {{ markdownRenderTypeLink .UnderlyingType }}.

{{ end -}}
{{ .Doc }}
{{- with index .Markers "kubebuilder:resource" }}
{{- with index . 0 }}

Scope: {{ if eq .Scope "Cluster" }}cluster{{ else }}namespaced{{ end }}.
{{- with .ShortName }} Short names: {{ range $i, $name := . }}{{ if $i }}, {{ end }}`{{ $name }}`{{ end }}.{{ end }}
{{- with .Categories }} Categories: {{ range $i, $name := . }}{{ if $i }}, {{ end }}`{{ $name }}`{{ end }}.{{ end }}
{{- end }}
{{- end }}
{{- with index .Markers "kubebuilder:printcolumn" }}

`kubectl get` shows:

| Column | From | Shown |
|---|---|---|
{{- range . }}
| {{ .Name }} | `{{ .JSONPath }}` | {{ if gt .Priority 0 }}with `-o wide`{{ else }}always{{ end }} |
{{- end }}
{{- end }}
{{- with index .Markers "kubebuilder:validation:XValidation" }}

The API server refuses a {{ $.Name }} that breaks these rules, with these messages:
{{ range . }}
- {{ .Message }}
{{- end }}
{{- end }}
{{- if .Members }}

| Field | Type | Description | Default | Validation |
|---|---|---|---|---|
{{- if .GVK }}
| `apiVersion` | string | `{{ .GVK.Group }}/{{ .GVK.Version }}` | | |
| `kind` | string | `{{ .GVK.Kind }}` | | |
{{- end }}
{{- range .Members }}
| `{{ .Name }}` | {{ markdownRenderType .Type }} | {{ template "type_members" . }} | {{ markdownRenderDefault .Default }} | {{ template "field_validation" . }} |
{{- end }}
{{- end }}
{{- if .EnumValues }}

| Value | Description |
|---|---|
{{- range .EnumValues }}
| `{{ .Name }}` | {{ markdownRenderFieldDoc .Doc }} |
{{- end }}
{{- end }}
{{ end }}
{{- end -}}
