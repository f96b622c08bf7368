{{/* Names, labels and the few derived values every template shares. */}}

{{- define "bridge.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name: the release name, prefixed to the chart name unless it already contains it.
Truncated to 63 characters (a DNS label), with room left for the "-metrics" suffix.
*/}}
{{- define "bridge.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 55 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 55 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 55 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "bridge.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "bridge.selectorLabels" -}}
app.kubernetes.io/name: {{ include "bridge.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "bridge.labels" -}}
helm.sh/chart: {{ include "bridge.chart" . }}
{{ include "bridge.selectorLabels" . }}
app.kubernetes.io/component: {{ .Values.mode }}
app.kubernetes.io/version: {{ include "bridge.imageTag" . | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "bridge.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "bridge.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "bridge.imageTag" -}}
{{- default .Chart.AppVersion .Values.image.tag }}
{{- end }}

{{- define "bridge.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (include "bridge.imageTag" .) }}
{{- end }}
{{- end }}

{{/* The bridge.yaml this release runs: `config` for a worker, `replicaConfig` for a replica. */}}
{{- define "bridge.config" -}}
{{- if eq .Values.mode "replica" }}
{{- toYaml .Values.replicaConfig }}
{{- else }}
{{- toYaml .Values.config }}
{{- end }}
{{- end }}

{{/* metrics.port of that bridge.yaml (bridge's default 9400 when unset). */}}
{{- define "bridge.metricsPort" -}}
{{- $config := ternary .Values.replicaConfig .Values.config (eq .Values.mode "replica") }}
{{- $metrics := default (dict) $config.metrics }}
{{- default 9400 $metrics.port | int }}
{{- end }}

{{/* The bridge subcommand for the mode. */}}
{{- define "bridge.command" -}}
{{- ternary "replica" "run" (eq .Values.mode "replica") }}
{{- end }}

{{/* Rules the schema cannot express; they fail the render with a message naming the value. */}}
{{- define "bridge.validate" -}}
{{- if and .Values.autoscaling.enabled (ne .Values.kind "Deployment") }}
{{- fail "autoscaling.enabled needs kind: Deployment (a DaemonSet runs one pod per node)" }}
{{- end }}
{{- if and (eq .Values.data.type "persistentVolumeClaim") (not .Values.data.persistentVolumeClaim.claimName) }}
{{- fail "data.type persistentVolumeClaim needs data.persistentVolumeClaim.claimName" }}
{{- end }}
{{- if and .Values.autoscaling.enabled (lt (int .Values.autoscaling.maxReplicas) (int .Values.autoscaling.minReplicas)) }}
{{- fail "autoscaling.maxReplicas must not be below autoscaling.minReplicas" }}
{{- end }}
{{- $config := ternary .Values.replicaConfig .Values.config (eq .Values.mode "replica") }}
{{- if and $config.metrics (hasKey $config.metrics "enabled") (not $config.metrics.enabled) }}
{{- fail "metrics.enabled: false leaves the probes nothing to ask; keep the metrics server on" }}
{{- end }}
{{- end }}
