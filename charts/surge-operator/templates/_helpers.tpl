{{/*
The chart's name as objects and labels carry it.
*/}}
{{- define "surge-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
The release's full name: fullnameOverride, or the release name with the
chart's name appended unless the release name already holds it. Every object
is named after it.
*/}}
{{- define "surge-operator.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "surge-operator.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
The metrics Service's name. Service names are DNS labels of at most 63
characters, so the full name is cut to leave room for the suffix.
*/}}
{{- define "surge-operator.metricsServiceName" -}}
{{- printf "%s-metrics" (include "surge-operator.fullname" . | trunc 55 | trimSuffix "-") -}}
{{- end -}}

{{/*
The labels built as maps and written with toYaml, so that a release name
that reads as a number stays a string.
*/}}
{{- define "surge-operator.selectorLabels" -}}
{{- toYaml (dict "app.kubernetes.io/name" (include "surge-operator.name" .) "app.kubernetes.io/instance" .Release.Name) -}}
{{- end -}}

{{- define "surge-operator.ownLabels" -}}
{{- $labels := include "surge-operator.selectorLabels" . | fromYaml -}}
{{- $_ := set $labels "app.kubernetes.io/version" .Chart.AppVersion -}}
{{- $_ = set $labels "app.kubernetes.io/managed-by" .Release.Service -}}
{{- $_ = set $labels "helm.sh/chart" (printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_") -}}
{{- toYaml $labels -}}
{{- end -}}

{{/*
Every object's labels. commonLabels come under the chart's own, which they
cannot replace: selectors and the recommended labels depend on them.
*/}}
{{- define "surge-operator.labels" -}}
{{- toYaml (merge (include "surge-operator.ownLabels" . | fromYaml) .Values.commonLabels) -}}
{{- end -}}

{{/*
The manager pod's labels: the chart's own, then podLabels, then
commonLabels.
*/}}
{{- define "surge-operator.podLabels" -}}
{{- toYaml (merge (include "surge-operator.ownLabels" . | fromYaml) .Values.podLabels .Values.commonLabels) -}}
{{- end -}}

{{- define "surge-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "surge-operator.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is needed when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/*
The image reference: a digest, when given, pins it whatever the tag says.
*/}}
{{- define "surge-operator.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{/*
The CRDs' annotations from crds.annotations. Whether Helm keeps them is
crds.keep's to say.
*/}}
{{- define "surge-operator.crdAnnotations" -}}
{{- with .Values.crds.annotations -}}
{{- if hasKey . "helm.sh/resource-policy" -}}
{{- fail "crds.annotations cannot set helm.sh/resource-policy; crds.keep decides whether Helm keeps the CRDs" -}}
{{- end -}}
{{- toYaml . -}}
{{- end -}}
{{- end -}}

{{/*
The names of the shards, comma-separated, for the main instance's
--watch-label-selector; a name may be given once only.
*/}}
{{- define "surge-operator.shardNames" -}}
{{- $names := list -}}
{{- range .Values.shards -}}
{{- if has .name $names -}}
{{- fail (printf "shards: %q is listed twice" .name) -}}
{{- end -}}
{{- $names = append $names .name -}}
{{- end -}}
{{- join "," $names -}}
{{- end -}}

{{/*
The pull secrets of imagePullSecrets and an umbrella chart's
global.imagePullSecrets, each once, as a YAML list; empty when there are none.
*/}}
{{- define "surge-operator.imagePullSecrets" -}}
{{- $names := list -}}
{{- range concat ((.Values.global | default dict).imagePullSecrets | default list) .Values.imagePullSecrets -}}
{{- $name := ternary . (get (kindIs "map" . | ternary . dict) "name") (kindIs "string" .) -}}
{{- if and $name (not (has $name $names)) -}}
{{- $names = append $names $name -}}
{{- end -}}
{{- end -}}
{{- $secrets := list -}}
{{- range $names -}}
{{- $secrets = append $secrets (dict "name" .) -}}
{{- end -}}
{{- with $secrets -}}
{{- toYaml . -}}
{{- end -}}
{{- end -}}
