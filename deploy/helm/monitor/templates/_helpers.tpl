{{/* Names and labels. */}}
{{- define "monitor.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "monitor.fullname" -}}
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

{{- define "monitor.selectorLabels" -}}
app.kubernetes.io/name: {{ include "monitor.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "monitor.labels" -}}
{{ include "monitor.selectorLabels" . }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "monitor.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s:%s@%s" .Values.image.repository $tag .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/* The daemon's monitor.yaml: .Values.config, with .Values.sinks as output.sinks. */}}
{{- define "monitor.config" -}}
{{- $config := deepCopy (default dict .Values.config) }}
{{- if .Values.sinks }}
{{- $output := default dict (get $config "output") }}
{{- if hasKey $output "sinks" }}
{{- fail "set the sinks in `sinks`, not in `config.output.sinks`" }}
{{- end }}
{{- $_ := set $output "sinks" .Values.sinks }}
{{- $_ := set $config "output" $output }}
{{- end }}
{{- toYaml $config }}
{{- end }}

{{/* The port of config.metrics.address (HOST:PORT), which the probes and Prometheus use. */}}
{{- define "monitor.metricsPort" -}}
{{- $address := "" }}
{{- with .Values.config.metrics }}{{ $address = .address | default "" | toString }}{{ end }}
{{- if not $address }}
{{- fail "config.metrics.address must be set (e.g. 0.0.0.0:9376): the probes and Prometheus need /healthz and /metrics" }}
{{- end }}
{{- if or (hasPrefix "127." $address) (hasPrefix "[::1]" $address) (hasPrefix "localhost" $address) }}
{{- fail "config.metrics.address must not be a loopback address: the kubelet's probes come to the pod IP" }}
{{- end }}
{{- splitList ":" $address | last }}
{{- end }}
