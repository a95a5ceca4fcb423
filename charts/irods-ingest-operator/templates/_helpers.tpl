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
The ACL rules of the shared `worker` Redis user (workers.credentials.mode=shared), exactly
irods_ingest.store.keys.WORKER_ACL_RULES (tests/chart/test_chart_redis_acl.py compares them):
read-write ii:*, read-only iic:* (job configs and handler code), no channels, and only the
commands a worker sends (no SCAN/KEYS, FUNCTION, CONFIG, SELECT, pub/sub...).
*/}}
{{- define "irods-ingest-operator.workerAcl" -}}
resetkeys ~ii:* %R~iic:* resetchannels -@all +ping +hello +blmove +lmove +llen +lrange +zcard +smembers +sadd +srem +sismember +smismember +get +set +del +unlink +exists +expire +pexpire +hget +hgetall +hmget +hset +hscan +hincrby +multi +exec +discard +evalsha +script|load +script|exists +lpush +rpush +lrem +ltrim +rpop +zadd +zrem +zrangebyscore +hdel
{{- end }}

{{/*
True (non-empty) in the shared credential mode: one `worker` Redis user for every job.
*/}}
{{- define "irods-ingest-operator.sharedWorkers" -}}
{{- if eq .Values.workers.credentials.mode "shared" }}true{{ end }}
{{- end }}

{{/*
The Secret name and key the operator passes to workers in shared mode (WORKER_REDIS_SECRET):
the chart's copy for the bundled Redis, the user's own for an external one.
*/}}
{{- define "irods-ingest-operator.sharedWorkerSecretRef" -}}
{{- $name := include "irods-ingest-operator.workerRedisSecretName" . }}
{{- if not .Values.redis.bundled.enabled }}
{{- $name = .Values.redis.external.workerSecret }}
{{- end }}
{{- printf "%s/%s" $name .Values.workers.redisSecret.key }}
{{- end }}

{{/*
A Kubernetes quantity (Ki Mi Gi Ti Pi, k M G T P suffixes, or none) in bytes, as a float.
Usage: include "irods-ingest-operator.quantityBytes" (dict "value" "1Gi" "what" "values path")
*/}}
{{- define "irods-ingest-operator.quantityBytes" -}}
{{- $value := toString .value | trim }}
{{- if not (regexMatch "^[0-9]+(\\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|k|M|G|T|P)?$" $value) }}
{{- fail (printf "%s=%q is not a memory quantity this chart understands (a number with an optional Ki, Mi, Gi, Ti, k, M, G or T suffix)" .what $value) }}
{{- end }}
{{- $number := regexReplaceAll "[A-Za-z]+$" $value "" }}
{{- $suffix := regexReplaceAll "^[0-9.]+" $value "" }}
{{- $factors := dict "" 1.0 "k" 1e3 "M" 1e6 "G" 1e9 "T" 1e12 "P" 1e15 "Ki" 1024.0 "Mi" 1048576.0 "Gi" 1073741824.0 "Ti" 1099511627776.0 "Pi" 1125899906842624.0 }}
{{- mulf (float64 $number) (get $factors $suffix) }}
{{- end }}

{{/*
The bundled Redis's maxmemory in bytes (empty: none): redis.bundled.maxmemory, or 80 % of the
container's memory limit. Redis counts neither its own overhead beyond the dataset nor a
snapshot fork's copied pages in maxmemory: the rest of the limit is that headroom.
*/}}
{{- define "irods-ingest-operator.redisMaxmemory" -}}
{{- $redis := .Values.redis.bundled }}
{{- $limit := "" }}
{{- with $redis.resources }}{{ with .limits }}{{ with .memory }}
{{- $limit = include "irods-ingest-operator.quantityBytes" (dict "value" . "what" "redis.bundled.resources.limits.memory") }}
{{- end }}{{ end }}{{ end }}
{{- if $redis.maxmemory }}
{{- $bytes := include "irods-ingest-operator.quantityBytes" (dict "value" $redis.maxmemory "what" "redis.bundled.maxmemory") | float64 }}
{{- if and $limit (ge $bytes (float64 $limit)) }}
{{- fail (printf "redis.bundled.maxmemory=%s must stay below redis.bundled.resources.limits.memory=%s, or the kubelet OOM-kills Redis before it refuses writes" (toString $redis.maxmemory) (toString $redis.resources.limits.memory)) }}
{{- end }}
{{- printf "%d" (int64 (floor $bytes)) }}
{{- else if $limit }}
{{- printf "%d" (int64 (floor (mulf (float64 $limit) 0.8))) }}
{{- end }}
{{- end }}

{{/*
Labels of the worker pods the operator creates (irods_ingest_operator.constants.SELECTOR_LABELS).
*/}}
{{- define "irods-ingest-operator.workerPodSelectorLabels" -}}
app.kubernetes.io/name: irods-ingest-worker
app.kubernetes.io/component: worker
{{- end }}

{{/*
Namespaces that get the workers' NetworkPolicy: the watched namespaces (namespaced mode; none
known in cluster-wide mode) plus networkPolicy.extraWorkerNamespaces.
*/}}
{{- define "irods-ingest-operator.workerPolicyNamespaces" -}}
{{- $namespaces := list }}
{{- if not .Values.rbac.clusterWide }}
{{- $namespaces = fromYamlArray (include "irods-ingest-operator.watchNamespaces" .) }}
{{- end }}
{{- toYaml (uniq (concat $namespaces .Values.networkPolicy.extraWorkerNamespaces)) }}
{{- end }}

{{/*
The namespaceSelector of worker pods allowed to reach the bundled Redis.
*/}}
{{- define "irods-ingest-operator.workerNamespaceSelector" -}}
{{- if .Values.networkPolicy.workerNamespaceSelector }}
{{- toYaml .Values.networkPolicy.workerNamespaceSelector }}
{{- else if .Values.rbac.clusterWide }}
{{- /* SyncJobs may be in any namespace: any namespace (workers still need their password). */ -}}
{}
{{- else }}
matchExpressions:
  - key: kubernetes.io/metadata.name
    operator: In
    values:
      {{- toYaml (fromYamlArray (include "irods-ingest-operator.workerPolicyNamespaces" .)) | nindent 6 }}
{{- end }}
{{- end }}

{{/*
What the operator's and Redis's pod-template checksums hash: everything that decides which
Redis and which Secret keys they use, but no password (a hash of a user-chosen password can be
guessed offline by anyone who may read the pod template). A password change restarts them
through redis.credentialsRevision, or `kubectl rollout restart`.
*/}}
{{- define "irods-ingest-operator.redisChecksumInputs" -}}
{{- $inputs := dict "revision" (toString .Values.redis.credentialsRevision) "mode" .Values.workers.credentials.mode }}
{{- if .Values.redis.bundled.enabled }}
{{- $_ := set $inputs "bundled" (omit .Values.redis.bundled.auth "password") }}
{{- else }}
{{- $external := omit .Values.redis.external "url" }}
{{- with .Values.redis.external.url }}
{{- /* scheme, host and database only: user info and query (?password=...) may hold secrets */ -}}
{{- $_ := set $external "url" (regexReplaceAll (include "irods-ingest-operator.redisUrlPattern" $) . "${1}://${2}${3}") }}
{{- end }}
{{- $_ := set $inputs "external" $external }}
{{- end }}
{{- toJson $inputs }}
{{- end }}

{{/*
A well-formed Redis URL: scheme (1), optional user info, host[:port] (2), optional /db (3),
optional ?options. Regular expressions only: urlParse's errors print the whole URL.
*/}}
{{- define "irods-ingest-operator.redisUrlPattern" -}}
^(rediss?)://(?:[^@/?#\s]*@)?([^@/?#\s]+)(/[0-9]*)?(?:\?[^#\s]*)?$
{{- end }}

{{/*
Fail early on value combinations the schema cannot express.
*/}}
{{- define "irods-ingest-operator.validate" -}}
{{- if and (not .Values.redis.bundled.enabled) (not .Values.redis.external.url) (not .Values.redis.external.existingSecret) }}
{{- fail "redis: enable redis.bundled, or set redis.external.url or redis.external.existingSecret" }}
{{- end }}
{{- /* Secret values are checked here rather than by schema patterns, whose errors print the value. */ -}}
{{- if not (regexMatch "^[A-Za-z0-9]*$" .Values.redis.bundled.auth.password) }}
{{- fail "redis.bundled.auth.password may hold letters and digits only (the value is not shown)" }}
{{- end }}
{{- if and .Values.redis.external.url (not (regexMatch (include "irods-ingest-operator.redisUrlPattern" .) .Values.redis.external.url)) }}
{{- fail "redis.external.url is not redis[s]://[USER:PASSWORD@]HOST[:PORT][/DB][?OPTIONS] (the value is not shown: it may hold a password); percent-encode @ / ? # and spaces in the user and password" }}
{{- end }}
{{- if and .Values.redis.bundled.enabled (or .Values.redis.external.url .Values.redis.external.existingSecret .Values.redis.external.workerSecret) }}
{{- fail "redis: redis.external.* is set but redis.bundled.enabled is true; choose one (set redis.bundled.enabled=false for an external Redis)" }}
{{- end }}
{{- $shared := include "irods-ingest-operator.sharedWorkers" . }}
{{- if and $shared (not .Values.redis.bundled.enabled) (not .Values.redis.external.workerSecret) }}
{{- fail "workers.credentials.mode=shared with an external Redis (redis.external.url or redis.external.existingSecret) would give every worker the operator's full-access Redis URL. Fix: use workers.credentials.mode=perJob (the default: a Redis user per SyncJob, made by the operator), or create a restricted worker user (docs/deploy.md, \"Security\"), put its URL in a Secret in every SyncJob namespace and name that Secret in redis.external.workerSecret" }}
{{- end }}
{{- if and .Values.redis.external.workerSecret (not $shared) }}
{{- fail "redis.external.workerSecret is used only with workers.credentials.mode=shared: unset it, or set the mode to shared" }}
{{- end }}
{{- if and .Values.redis.external.workerSecret (eq .Values.redis.external.workerSecret .Values.redis.external.existingSecret) }}
{{- fail "redis.external.workerSecret names the operator's own Secret (redis.external.existingSecret): workers would get the operator's full-access URL; give workers a Secret of their own" }}
{{- end }}
{{- if and $shared .Values.redis.bundled.enabled .Values.workers.redisSecret.create .Values.redis.bundled.auth.existingSecret }}
{{- fail "workers.redisSecret.create=true needs the worker user's password, which is in a Secret the chart did not make: set workers.redisSecret.create=false and create the workers' Secret (see docs/deploy.md)" }}
{{- end }}
{{- if regexMatch "(?m)^\\s*maxmemory(-policy)?\\s" .Values.redis.bundled.extraConfig }}
{{- fail "redis.bundled.extraConfig sets maxmemory or maxmemory-policy: use redis.bundled.maxmemory (the chart keeps it below the memory limit, with the policy noeviction)" }}
{{- end }}
{{- if and .Values.serviceMonitor.enabled (not .Values.metrics.enabled) }}
{{- fail "serviceMonitor.enabled=true needs metrics.enabled=true" }}
{{- end }}
{{- if and .Values.rbac.clusterWide .Values.watchNamespaces }}
{{- fail "watchNamespaces lists namespaces, but rbac.clusterWide=true watches them all: use one or the other" }}
{{- end }}
{{- end }}
