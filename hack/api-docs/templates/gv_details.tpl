{{- define "gvDetails" -}}
API group and version `{{ .GroupVersionString }}`. {{ .Doc }}

Kinds:
{{- range .SortedKinds }}
- {{ $.TypeForKind . | markdownRenderTypeLink }}
{{- end }}
{{ range .SortedTypes }}
{{- template "type" . }}
{{- end }}
{{- end -}}
