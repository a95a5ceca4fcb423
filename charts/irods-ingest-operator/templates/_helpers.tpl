{{/*
Chart name, overridable with .Values.nameOverride.
*/}}
{{- define "irods-ingest-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name, truncated to 63 characters (the DNS label limit).
A release name that already contains the chart name is used as is.
*/}}
{{- define "irods-ingest-operator.fullname" -}}
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

{{/*
Chart name and version, for the helm.sh/chart label.
*/}}
{{- define "irods-ingest-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Selector labels: stable across upgrades, so never add version-dependent labels here.
*/}}
{{- define "irods-ingest-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "irods-ingest-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Common labels for every resource.
*/}}
{{- define "irods-ingest-operator.labels" -}}
helm.sh/chart: {{ include "irods-ingest-operator.chart" . }}
{{ include "irods-ingest-operator.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: irods-ingest-operator
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Name of the ServiceAccount the operator runs as.
*/}}
{{- define "irods-ingest-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "irods-ingest-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
An image reference from {repository, tag, digest}; the tag defaults to the chart's appVersion.
Usage: include "irods-ingest-operator.image" (dict "image" .Values.image "context" $)
*/}}
{{- define "irods-ingest-operator.image" -}}
{{- $tag := default .context.Chart.AppVersion .image.tag -}}
{{- if .image.digest -}}
{{- printf "%s:%s@%s" .image.repository $tag .image.digest -}}
{{- else -}}
{{- printf "%s:%s" .image.repository $tag -}}
{{- end -}}
{{- end }}

{{/*
The namespaces whose SyncJobs the operator reconciles, as a list (namespaced mode only):
watchNamespaces, or the release namespace when that is empty.
*/}}
{{- define "irods-ingest-operator.watchNamespaces" -}}
{{- if .Values.watchNamespaces }}
{{- toYaml (uniq .Values.watchNamespaces) }}
{{- else }}
{{- toYaml (list .Release.Namespace) }}
{{- end }}
{{- end }}

{{/*
Namespaces that get a copy of the workers' Redis Secret: the watched namespaces (namespaced
mode) or the release namespace (cluster-wide mode), plus workers.redisSecret.extraNamespaces.
*/}}
{{- define "irods-ingest-operator.workerSecretNamespaces" -}}
{{- $namespaces := list .Release.Namespace }}
{{- if not .Values.rbac.clusterWide }}
{{- $namespaces = fromYamlArray (include "irods-ingest-operator.watchNamespaces" .) }}
{{- end }}
{{- toYaml (uniq (concat $namespaces .Values.workers.redisSecret.extraNamespaces)) }}
{{- end }}

{{/*
Name of the Secret (in each SyncJob namespace) holding the workers' Redis URL.
*/}}
{{- define "irods-ingest-operator.workerRedisSecretName" -}}
{{- default (printf "%s-worker-redis" (include "irods-ingest-operator.fullname" .)) .Values.workers.redisSecret.name | trunc 253 }}
{{- end }}

{{/*
Bundled Redis: object names, and the Secret holding its password and URL.
*/}}
{{- define "irods-ingest-operator.redisName" -}}
{{- printf "%s-redis" (include "irods-ingest-operator.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "irods-ingest-operator.redisSelectorLabels" -}}
app.kubernetes.io/name: {{ include "irods-ingest-operator.name" . }}-redis
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
The Secret and key the operator reads its Redis URL from.
*/}}
{{- define "irods-ingest-operator.redisUrlSecretName" -}}
{{- if .Values.redis.bundled.enabled }}
{{- default (include "irods-ingest-operator.redisName" .) .Values.redis.bundled.auth.existingSecret }}
{{- else }}
{{- default (printf "%s-redis-url" (include "irods-ingest-operator.fullname" .)) .Values.redis.external.existingSecret }}
{{- end }}
{{- end }}

{{- define "irods-ingest-operator.redisUrlSecretKey" -}}
{{- if .Values.redis.bundled.enabled }}
{{- .Values.redis.bundled.auth.urlKey }}
{{- else }}
{{- .Values.redis.external.urlKey }}
{{- end }}
{{- end }}

{{/*
The Redis URL, when the chart knows it (bundled Redis with a chart-managed password, or an
inline external URL); empty when it lives only in a Secret the user made. The bundled
password is generated once and kept across upgrades (looked up from the live Secret).
*/}}
{{- define "irods-ingest-operator.redisPassword" -}}
{{- $secretName := include "irods-ingest-operator.redisName" . }}
{{- $existing := lookup "v1" "Secret" .Release.Namespace $secretName }}
{{- if .Values.redis.bundled.auth.password }}
{{- .Values.redis.bundled.auth.password }}
{{- else if and $existing $existing.data (hasKey $existing.data .Values.redis.bundled.auth.passwordKey) }}
{{- index $existing.data .Values.redis.bundled.auth.passwordKey | b64dec }}
{{- else }}
{{- randAlphaNum 32 }}
{{- end }}
{{- end }}

{{- define "irods-ingest-operator.bundledRedisUrl" -}}
{{- printf "redis://%s:%s@%s.%s.svc:6379/0" (default "" .user) .password (include "irods-ingest-operator.redisName" .context) .context.Release.Namespace }}
{{- end }}

{{/*
The bundled Redis's `worker` ACL user's password: given, kept from the existing Secret, or generated.
*/}}
{{- define "irods-ingest-operator.redisWorkerPassword" -}}
{{- $existing := lookup "v1" "Secret" .Release.Namespace (include "irods-ingest-operator.redisName" .) }}
{{- if and $existing $existing.data (hasKey $existing.data .Values.redis.bundled.auth.workerPasswordKey) }}
{{- index $existing.data .Values.redis.bundled.auth.workerPasswordKey | b64dec }}
{{- else }}
{{- randAlphaNum 32 }}
{{- end }}
{{- end }}

{{/*
The ACL rule of the workers' Redis user (kept in step with irods_ingest.store.keys):
everything under ii:*, read-only under iic:* (job configs and handler code).
*/}}
{{- define "irods-ingest-operator.workerAcl" -}}
~ii:* %R~iic:* &* +@all -@admin -@dangerous +info
{{- end }}

{{/*
Fail early on value combinations the schema cannot express.
*/}}
{{- define "irods-ingest-operator.validate" -}}
{{- if and (not .Values.redis.bundled.enabled) (not .Values.redis.external.url) (not .Values.redis.external.existingSecret) }}
{{- fail "redis: enable redis.bundled, or set redis.external.url or redis.external.existingSecret" }}
{{- end }}
{{- if and .Values.redis.bundled.enabled (or .Values.redis.external.url .Values.redis.external.existingSecret) }}
{{- fail "redis: redis.external.* is set but redis.bundled.enabled is true; choose one (set redis.bundled.enabled=false for an external Redis)" }}
{{- end }}
{{- if and .Values.workers.redisSecret.create (or .Values.redis.bundled.auth.existingSecret .Values.redis.external.existingSecret) }}
{{- fail "workers.redisSecret.create=true needs the Redis URL, which is in a Secret the chart did not make: set workers.redisSecret.create=false and create the workers' Secret (see docs/deploy.md)" }}
{{- end }}
{{- if and .Values.serviceMonitor.enabled (not .Values.metrics.enabled) }}
{{- fail "serviceMonitor.enabled=true needs metrics.enabled=true" }}
{{- end }}
{{- if and .Values.rbac.clusterWide .Values.watchNamespaces }}
{{- fail "watchNamespaces lists namespaces, but rbac.clusterWide=true watches them all: use one or the other" }}
{{- end }}
{{- end }}
