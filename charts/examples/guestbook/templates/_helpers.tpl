{{- define "guestbook.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The release's name for its objects (at most 60 characters, leaving room
for "-kv").
*/}}
{{- define "guestbook.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 60 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 60 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 60 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "guestbook.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "guestbook.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
Selector labels of one tier: include with (list $ "web") or (list $ "kv").
*/}}
{{- define "guestbook.selectorLabels" -}}
{{- $root := index . 0 }}
app.kubernetes.io/name: {{ include "guestbook.name" $root }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{- define "guestbook.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default "latest" }}
{{- end }}

{{/*
The password: the value given, else the one the release's Secret holds
(so an upgrade keeps it), else a random one.
*/}}
{{- define "guestbook.password" -}}
{{- if .Values.password }}
{{- .Values.password }}
{{- else }}
{{- $secret := lookup "v1" "Secret" .Release.Namespace (printf "%s-password" (include "guestbook.fullname" .)) }}
{{- if and $secret $secret.data (index $secret.data "password") }}
{{- index $secret.data "password" | b64dec }}
{{- else }}
{{- randAlphaNum 16 }}
{{- end }}
{{- end }}
{{- end }}
