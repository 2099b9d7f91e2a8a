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

{{/*
An image reference, the one way every image of the chart is written. Pass a dict: image (repository,
tag, digest), value (the image's path in values.yaml, for messages) and, for meshwarden's own images,
appVersion (the tag when none is given). A digest pins the image: repository@digest, or
repository:tag@digest when a tag is given too (the digest decides, the tag is for people reading).
*/}}
{{- define "meshwarden.image" -}}
{{- $img := .image }}
{{- if $img.digest }}
{{- if $img.tag }}
{{- printf "%s:%s@%s" $img.repository $img.tag $img.digest }}
{{- else }}
{{- printf "%s@%s" $img.repository $img.digest }}
{{- end }}
{{- else }}
{{- $tag := default .appVersion $img.tag }}
{{- if not $tag }}
{{- fail (printf "%s: set a tag or a digest (sha256:...); there is no default tag" .value) }}
{{- end }}
{{- printf "%s:%s" $img.repository $tag }}
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
{{- include "meshwarden.validateProfile" . }}
{{- end }}

{{/*
The values that belong to one injection profile only, checked here so that the message names the value
(meshwarden would refuse the config file too, but only at start-up, in a crash-looping pod's log).
*/}}
{{- define "meshwarden.validateProfile" -}}
{{- $in := .Values.injection }}
{{- $tls := $in.xdsTLS }}
{{- if eq $in.profile "envoy" }}
{{- if not $in.xdsAddress }}
{{- fail "injection.xdsAddress is required with injection.profile=envoy: set it to host:port of your xDS server, such as xds.my-mesh.svc:18000 (or use injection.profile=istio with istiod)" }}
{{- end }}
{{- if and (not $tls.secretName) (or $tls.clientCertificate $tls.serverName) }}
{{- fail "injection.xdsTLS.secretName is required when injection.xdsTLS.clientCertificate or serverName is set: the Secret with ca.crt (and tls.crt, tls.key)" }}
{{- end }}
{{- else }}
{{- if $in.xdsAddress }}
{{- fail (printf "injection.xdsAddress is for injection.profile=envoy only, and the profile is %s: leave it empty (istiod's address is injection.istio.discoveryAddress), or set injection.profile=envoy" $in.profile) }}
{{- end }}
{{- if or $tls.secretName $tls.clientCertificate $tls.serverName }}
{{- fail (printf "injection.xdsTLS is for injection.profile=envoy only, and the profile is %s: the istio profile talks TLS to istiod on its own" $in.profile) }}
{{- end }}
{{- end }}
{{- end }}
