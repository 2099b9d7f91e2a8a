{{/* Names, labels and the few values computed from several others. */}}

{{- define "meshwarden.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Prefix of every object name: the release name, with the chart name unless it already holds it. */}}
{{- define "meshwarden.fullname" -}}
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

{{- define "meshwarden.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Pod selector labels; never change them, a Deployment's selector is immutable. */}}
{{- define "meshwarden.selectorLabels" -}}
app.kubernetes.io/name: {{ include "meshwarden.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Labels of every object. part-of: meshwarden is how meshwarden finds its own webhook configurations
(config certs.webhookSelector), so it is on every object and never overridable.
*/}}
{{- define "meshwarden.labels" -}}
helm.sh/chart: {{ include "meshwarden.chart" . }}
{{ include "meshwarden.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: meshwarden
{{- end }}

{{- define "meshwarden.serviceName" -}}
{{- printf "%s-webhook" (include "meshwarden.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "meshwarden.configName" -}}
{{- printf "%s-config" (include "meshwarden.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "meshwarden.templatesName" -}}
{{- printf "%s-templates" (include "meshwarden.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Name of both webhook configurations (they are different kinds, so one name serves both). */}}
{{- define "meshwarden.webhookConfigName" -}}
{{- include "meshwarden.fullname" . }}
{{- end }}

{{/* The Secret meshwarden serves its certificate from. */}}
{{- define "meshwarden.certSecretName" -}}
{{- if eq .Values.certs.mode "files" }}
{{- .Values.certs.files.secretName }}
{{- else }}
{{- default (printf "%s-webhook-tls" (include "meshwarden.fullname" .)) .Values.certs.secretName | trunc 253 }}
{{- end }}
{{- end }}

{{/* The Certificate cert-manager's CA injector reads, as namespace/name. */}}
{{- define "meshwarden.certificateName" -}}
{{- printf "%s-webhook" (include "meshwarden.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "meshwarden.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/*
Namespaces neither webhook may ever match: the system namespaces and meshwarden's own, so that
meshwarden's pods (and the ReplicaSets that create them) never wait for meshwarden.
*/}}
{{- define "meshwarden.excludedNamespaces" -}}
- key: kubernetes.io/metadata.name
  operator: NotIn
  values:
    - kube-system
    - kube-public
    - kube-node-lease
    - {{ .Release.Namespace | quote }}
{{- end }}

{{/* Where the API server sends admission requests for path (passed as .path). */}}
{{- define "meshwarden.clientConfig" -}}
{{- $root := .root -}}
{{- if $root.Values.webhook.url -}}
url: {{ printf "%s%s" (trimSuffix "/" $root.Values.webhook.url) .path | quote }}
{{- else -}}
service:
  name: {{ include "meshwarden.serviceName" $root }}
  namespace: {{ $root.Release.Namespace | quote }}
  path: {{ .path }}
  port: 443
{{- end }}
{{- if and (eq $root.Values.certs.mode "files") $root.Values.certs.files.caBundle }}
caBundle: {{ $root.Values.certs.files.caBundle | quote }}
{{- end }}
{{- end }}

{{/*
Annotations of both webhook configurations. In cert-manager mode cert-manager's CA injector fills
caBundle from the Certificate; in self and files modes meshwarden does, and the chart never sets it
(a helm upgrade therefore never resets it).
*/}}
{{- define "meshwarden.webhookAnnotations" -}}
{{- $a := dict }}
{{- if eq .root.Values.certs.mode "cert-manager" }}
{{- $_ := set $a "cert-manager.io/inject-ca-from" (printf "%s/%s" .root.Release.Namespace (include "meshwarden.certificateName" .root)) }}
{{- end }}
{{- $a = merge $a .extra }}
{{- with $a }}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/*
Checks values against the cluster that the schema cannot express. Native sidecars need Kubernetes
1.29; an unversioned development build of the API server (v0.0.0-...) is given the benefit of the doubt.
*/}}
{{- define "meshwarden.validate" -}}
{{- $kv := .Capabilities.KubeVersion.Version }}
{{- if and .Values.injection.nativeSidecar (not (hasPrefix "v0.0.0" $kv)) (semverCompare "<1.29.0-0" $kv) }}
{{- fail (printf "injection.nativeSidecar needs Kubernetes 1.29 or newer, the cluster runs %s: set injection.nativeSidecar=false" $kv) }}
{{- end }}
{{- end }}
