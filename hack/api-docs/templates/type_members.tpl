{{- define "type_members" -}}
{{- if eq .Name "metadata" -}}
Standard object metadata: name, namespace, labels, annotations.
{{- else -}}
{{ markdownRenderFieldDoc .Doc }}
{{- end -}}
{{- end -}}

{{- define "field_validation" -}}
{{- range .Validation }}{{ markdownRenderFieldDoc . }}<br />{{ end -}}
{{- with index .Markers "kubebuilder:validation:XValidation" }}{{ range . }}{{ markdownRenderFieldDoc .Message }}<br />{{ end }}{{ end -}}
{{- end -}}
