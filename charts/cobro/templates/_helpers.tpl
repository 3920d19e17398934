{{/*
Names. Every object of a service is named <fullname>-<service> (63 characters at most).
*/}}
{{- define "cobro.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "cobro.fullname" -}}
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

{{- define "cobro.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* <fullname>-<service>. Call with (dict "root" $ "name" $name). */}}
{{- define "cobro.serviceName" -}}
{{- printf "%s-%s" (include "cobro.fullname" .root | trunc 48 | trimSuffix "-") .name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* <fullname>-<service>-migrate, the migration Job. */}}
{{- define "cobro.migrateName" -}}
{{- printf "%s-migrate" (include "cobro.serviceName" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels.
*/}}
{{- define "cobro.selectorLabels" -}}
app.kubernetes.io/name: {{ include "cobro.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "cobro.labels" -}}
helm.sh/chart: {{ include "cobro.chart" . }}
{{ include "cobro.selectorLabels" . }}
app.kubernetes.io/version: {{ include "cobro.imageTag" . | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: cobro
{{- end }}

{{/* A service's pods. Call with (dict "root" $ "name" $name). */}}
{{- define "cobro.componentSelectorLabels" -}}
{{ include "cobro.selectorLabels" .root }}
app.kubernetes.io/component: {{ .name }}
{{- end }}

{{- define "cobro.componentLabels" -}}
{{ include "cobro.labels" .root }}
app.kubernetes.io/component: {{ .name }}
{{- end }}

{{/*
Image.
*/}}
{{- define "cobro.imageTag" -}}
{{- .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{- define "cobro.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (include "cobro.imageTag" .) }}
{{- end }}
{{- end }}

{{/*
Service facts.
*/}}
{{/* Services that own a database schema (all but the gateway). Call with the service values. */}}
{{- define "cobro.hasDatabase" -}}
{{- if hasKey . "database" }}true{{ end }}
{{- end }}

{{/* gRPC services get native gRPC probes; the gateway speaks HTTP. Call with the service name. */}}
{{- define "cobro.portName" -}}
{{- if eq . "gateway" }}http{{ else }}grpc{{ end }}
{{- end }}

{{/* identity's gRPC address, for JWKS and service credentials. */}}
{{- define "cobro.identityUrl" -}}
{{- if .Values.auth.identityUrl }}
{{- .Values.auth.identityUrl }}
{{- else }}
{{- printf "http://%s:%v" (include "cobro.serviceName" (dict "root" . "name" "identity")) .Values.services.identity.port }}
{{- end }}
{{- end }}

{{- define "cobro.vaultUrl" -}}
{{- printf "http://%s:%v" (include "cobro.serviceName" (dict "root" . "name" "vault")) .Values.services.vault.port }}
{{- end }}

{{/* The in-cluster gRPC URL of a service: (dict "root" $ "name" "invoicing"). */}}
{{- define "cobro.serviceUrl" -}}
{{- $svc := index .root.Values.services .name }}
{{- printf "http://%s:%v" (include "cobro.serviceName" (dict "root" .root "name" .name)) $svc.port }}
{{- end }}

{{/* COBRO__<SVC>__… prefix. */}}
{{- define "cobro.envPrefix" -}}
{{- printf "COBRO__%s__" (upper .) }}
{{- end }}

{{/*
The non-secret environment of a service: its ConfigMap's data. Call with
(dict "root" $ "name" $name "svc" $svc). Only what the service reads: the gateway's
configuration section refuses unknown keys, so it gets its listen address, telemetry, identity's
address and Redis only (sessions, limits).
*/}}
{{- define "cobro.configData" -}}
{{- $root := .root }}
{{- $name := .name }}
{{- $svc := .svc }}
{{- $prefix := include "cobro.envPrefix" $name -}}
COBRO_ENV: {{ $root.Values.config.env | quote }}
COBRO__TELEMETRY__LOG_FORMAT: {{ $root.Values.config.logFormat | quote }}
COBRO__TELEMETRY__METRICS_LISTEN: {{ printf "0.0.0.0:%v" $root.Values.metricsPort | quote }}
{{ $prefix }}LISTEN: {{ printf "0.0.0.0:%v" $svc.port | quote }}
{{- with $root.Values.config.rustLog }}
RUST_LOG: {{ . | quote }}
{{- end }}
{{- with $root.Values.otel.endpoint }}
OTEL_EXPORTER_OTLP_ENDPOINT: {{ . | quote }}
{{- end }}
{{- if include "cobro.hasDatabase" $svc }}
{{- if not $root.Values.kafka.brokers }}
{{- fail "kafka.brokers is required: the bootstrap servers, e.g. [kafka-0.kafka:9092, kafka-1.kafka:9092]" }}
{{- end }}
COBRO__KAFKA__BROKERS: {{ join "," $root.Values.kafka.brokers | quote }}
COBRO__KAFKA__PARTITIONS: {{ $root.Values.kafka.partitions | quote }}
COBRO__KAFKA__REPLICATION_FACTOR: {{ $root.Values.kafka.replicationFactor | quote }}
COBRO__KAFKA__IDEMPOTENT_PRODUCER: {{ $root.Values.kafka.idempotentProducer | quote }}
{{- if $root.Values.kafka.tls.enabled }}
{{- if not $root.Values.kafka.tls.caSecret }}
{{- fail "kafka.tls.caSecret is required with kafka.tls.enabled: the Secret holding the brokers' CA certificate" }}
{{- end }}
COBRO__KAFKA__SECURITY_PROTOCOL: "ssl"
COBRO__KAFKA__SSL_CA_LOCATION: {{ printf "/etc/cobro/kafka-ca/%s" $root.Values.kafka.tls.caKey | quote }}
COBRO__KAFKA__SSL_CERTIFICATE_LOCATION: "/etc/cobro/kafka-user/user.crt"
COBRO__KAFKA__SSL_KEY_LOCATION: "/etc/cobro/kafka-user/user.key"
{{- end }}
COBRO__GRPC__DRAIN_DELAY: {{ $root.Values.config.drainDelay | quote }}
COBRO__AUTH__IDENTITY_URL: {{ include "cobro.identityUrl" $root | quote }}
{{- end }}
{{- if eq $name "gateway" }}
COBRO__AUTH__IDENTITY_URL: {{ include "cobro.identityUrl" $root | quote }}
{{- range $target := list "invoicing" "payments" "notifications" "reconciliation" }}
{{ printf "COBRO__GATEWAY__%s_URL" (upper $target) }}: {{ include "cobro.serviceUrl" (dict "root" $root "name" $target) | quote }}
{{- end }}
{{- end }}
{{- if eq $name "payments" }}
COBRO__PAYMENTS__VAULT_URL: {{ include "cobro.vaultUrl" $root | quote }}
{{- end }}
{{- range $key, $value := $svc.env }}
{{ $key }}: {{ $value | toString | quote }}
{{- end }}
{{- end }}

{{/*
One env entry read from an existing Secret. Call with
(dict "env" "COBRO__X" "ref" $ref "what" "services.x.database" "help" "…" "optional" false).
A required reference without a secretName stops the install with a message naming the value.
*/}}
{{- define "cobro.secretEnvVar" -}}
- name: {{ .env }}
  valueFrom:
    secretKeyRef:
      name: {{ required (printf "%s.secretName is required: the name of an existing Secret holding %s (%s) under the key %s.key" .what .help .env .what) .ref.secretName | quote }}
      key: {{ required (printf "%s.key is required" .what) .ref.key | quote }}
      {{- if .ref.optional }}
      optional: true
      {{- end }}
{{- end }}

{{/*
The secret environment of a service: env entries with secretKeyRef. Call with
(dict "root" $ "name" $name "svc" $svc).
*/}}
{{- define "cobro.secretEnv" -}}
{{- $root := .root }}
{{- $name := .name }}
{{- $svc := .svc }}
{{- $prefix := include "cobro.envPrefix" $name }}
{{- if include "cobro.hasDatabase" $svc }}
{{ include "cobro.secretEnvVar" (dict "env" (printf "%sDATABASE_URL" $prefix) "ref" $svc.database "what" (printf "services.%s.database" $name) "help" (printf "the %s database URL, postgres://cobro_%s:…@host:5432/cobro" $name $name)) }}
{{- end }}
{{- if or (eq $name "identity") (eq $name "gateway") }}
{{ include "cobro.secretEnvVar" (dict "env" "COBRO__REDIS__URL" "ref" $root.Values.redis "what" "redis" "help" "the Redis URL, redis://[:password@]host:6379") }}
{{- end }}
{{- if eq $name "identity" }}
{{ include "cobro.secretEnvVar" (dict "env" "COBRO__IDENTITY__DATA_KEY" "ref" $svc.dataKey "what" "services.identity.dataKey" "help" "identity's data key, base64 of 32 bytes") }}
{{ include "cobro.secretEnvVar" (dict "env" "COBRO__IDENTITY__API_KEY_PEPPER" "ref" $svc.apiKeyPepper "what" "services.identity.apiKeyPepper" "help" "identity's API key pepper, base64 of at least 32 bytes") }}
{{- end }}
{{- if eq $name "vault" }}
{{ include "cobro.secretEnvVar" (dict "env" "COBRO__VAULT__KEK" "ref" $svc.kek "what" "services.vault.kek" "help" "the vault's key-encryption key, base64 of 32 bytes") }}
{{- end }}
{{- if and (eq $name "payments") $svc.clientSecret.secretName }}
{{ include "cobro.secretEnvVar" (dict "env" "COBRO__PAYMENTS__CLIENT_SECRET" "ref" $svc.clientSecret "what" "services.payments.clientSecret" "help" "payments' client secret at identity") }}
{{- end }}
{{- if and (eq $name "gateway") $svc.clientSecret $svc.clientSecret.secretName }}
{{ include "cobro.secretEnvVar" (dict "env" "COBRO__GATEWAY__CLIENT_SECRET" "ref" $svc.clientSecret "what" "services.gateway.clientSecret" "help" "the gateway's client secret at identity") }}
{{- end }}
{{- if and (eq $name "notifications") $svc.smtpPassword.secretName }}
{{ include "cobro.secretEnvVar" (dict "env" "COBRO__NOTIFICATIONS__SMTP__PASSWORD" "ref" $svc.smtpPassword "what" "services.notifications.smtpPassword" "help" "the SMTP password") }}
{{- end }}
{{- range $i, $extra := $svc.secretEnv }}
{{ include "cobro.secretEnvVar" (dict "env" $extra.name "ref" $extra "what" (printf "services.%s.secretEnv[%d]" $name $i) "help" $extra.name) }}
{{- end }}
{{- end }}

{{/* Pod volumes and mounts: /tmp is the only writable path. */}}
{{- define "cobro.tmpVolume" -}}
- name: tmp
  emptyDir:
    {{- with .Values.tmpVolume.sizeLimit }}
    sizeLimit: {{ . }}
    {{- else }} {}
    {{- end }}
{{- end }}

{{/* Scheduling shared by Deployments and Jobs. */}}
{{- define "cobro.podScheduling" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}
