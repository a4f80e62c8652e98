{{/* Chart name, truncated to the 63 characters a label value allows. */}}
{{- define "rollout-guard.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name. Also the Service name, so it is part of the
serving certificate's DNS names.
*/}}
{{- define "rollout-guard.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "rollout-guard.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "rollout-guard.labels" -}}
helm.sh/chart: {{ include "rollout-guard.chart" . }}
{{ include "rollout-guard.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: admission-webhook
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "rollout-guard.selectorLabels" -}}
app.kubernetes.io/name: {{ include "rollout-guard.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "rollout-guard.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "rollout-guard.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "rollout-guard.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/*
TLS mode, one of certManager, existingSecret, selfSigned. Setting both
tls.certManager.enabled and tls.existingSecret is ambiguous and fails.
*/}}
{{- define "rollout-guard.tlsMode" -}}
{{- if and .Values.tls.certManager.enabled .Values.tls.existingSecret }}
{{- fail "tls: set either tls.certManager.enabled or tls.existingSecret, not both" }}
{{- end }}
{{- if .Values.tls.certManager.enabled }}certManager
{{- else if .Values.tls.existingSecret }}existingSecret
{{- else }}selfSigned
{{- end }}
{{- end }}

{{/* Name of the Secret that holds tls.crt and tls.key for the server. */}}
{{- define "rollout-guard.tlsSecretName" -}}
{{- if eq (include "rollout-guard.tlsMode" .) "existingSecret" }}
{{- .Values.tls.existingSecret }}
{{- else }}
{{- printf "%s-tls" (include "rollout-guard.fullname" .) }}
{{- end }}
{{- end }}

{{/* DNS names the API server may use to reach the Service. */}}
{{- define "rollout-guard.dnsNames" -}}
{{- $fullname := include "rollout-guard.fullname" . }}
{{- $ns := .Release.Namespace }}
{{- list (printf "%s.%s.svc" $fullname $ns) (printf "%s.%s.svc.%s" $fullname $ns .Values.clusterDomain) (printf "%s.%s" $fullname $ns) $fullname | toJson }}
{{- end }}

{{/*
Namespaces no webhook ever intercepts: kube-system and the release namespace
are always in the list, whatever webhook.excludedNamespaces says, so the
webhook can never block the control plane or its own rollout.
*/}}
{{- define "rollout-guard.excludedNamespaces" -}}
{{- concat (list "kube-system" .Release.Namespace) .Values.webhook.excludedNamespaces | uniq | toJson }}
{{- end }}

{{- define "rollout-guard.namespaceSelector" -}}
matchExpressions:
  - key: kubernetes.io/metadata.name
    operator: NotIn
    values: {{ include "rollout-guard.excludedNamespaces" . }}
  - key: {{ .Values.webhook.optOutLabel | quote }}
    operator: NotIn
    values: ["true"]
{{- end }}
