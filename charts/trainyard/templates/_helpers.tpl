{{/*
Names and labels shared by every template.
*/}}

{{- define "trainyard.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 40 | trimSuffix "-" -}}
{{- end -}}

{{/*
The release's base name. Capped at 40 characters so that "<fullname>-trainer-launcher" and
the other suffixed names stay within Kubernetes' 63-character limit.
*/}}
{{- define "trainyard.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "trainyard.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels of every object. */}}
{{- define "trainyard.labels" -}}
helm.sh/chart: {{ include "trainyard.chart" . }}
app.kubernetes.io/name: {{ include "trainyard.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: trainyard
{{- end -}}

{{/* Selector labels of one component; call with (dict "ctx" $ "component" "backend"). */}}
{{- define "trainyard.selectorLabels" -}}
app.kubernetes.io/name: {{ include "trainyard.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Labels of one component's objects; same argument as trainyard.selectorLabels. */}}
{{- define "trainyard.componentLabels" -}}
{{ include "trainyard.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "trainyard.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "trainyard.backendName" -}}
{{- printf "%s-backend" (include "trainyard.fullname" .) -}}
{{- end -}}

{{- define "trainyard.workerName" -}}
{{- printf "%s-worker" (include "trainyard.fullname" .) -}}
{{- end -}}

{{- define "trainyard.backendInternalName" -}}
{{- printf "%s-backend-internal" (include "trainyard.fullname" .) -}}
{{- end -}}

{{/* Where trainer Jobs run by default: apart from the platform's pods and Secrets. */}}
{{- define "trainyard.trainingNamespace" -}}
{{- default (printf "%s-training" .Release.Name) .Values.training.namespace -}}
{{- end -}}

{{/* Every namespace trainer Jobs may run in (the default one and the projects'), as a JSON
list without repeats; read it with fromJsonArray. */}}
{{- define "trainyard.trainingNamespaces" -}}
{{- $namespaces := list (include "trainyard.trainingNamespace" .) -}}
{{- range $slug, $namespace := .Values.training.projectNamespaces -}}
{{- $namespaces = append $namespaces $namespace -}}
{{- end -}}
{{- $namespaces | uniq | toJson -}}
{{- end -}}

{{/* The ServiceAccount trainer pods run as ("default" unless the chart creates one or one is named). */}}
{{- define "trainyard.trainerServiceAccount" -}}
{{- if .Values.training.serviceAccount.name -}}
{{- .Values.training.serviceAccount.name -}}
{{- else if .Values.training.serviceAccount.create -}}
{{- printf "%s-trainer" (include "trainyard.fullname" .) -}}
{{- else -}}
default
{{- end -}}
{{- end -}}

{{/* The internal Service's cluster address: what the worker, and by default trainers, call. */}}
{{- define "trainyard.backendUrl" -}}
{{- printf "http://%s.%s.svc:%d" (include "trainyard.backendInternalName" .) .Release.Namespace (int .Values.service.internalPort) -}}
{{- end -}}

{{/* Where users open the platform: publicUrl, else the Ingress host's URL, else "". */}}
{{- define "trainyard.publicUrl" -}}
{{- if .Values.publicUrl -}}
{{- .Values.publicUrl | trimSuffix "/" -}}
{{- else if .Values.ingress.enabled -}}
{{- printf "%s://%s" (ternary "https" "http" .Values.ingress.tls.enabled) .Values.ingress.host -}}
{{- end -}}
{{- end -}}

{{/* The URL handed to trainers for their callbacks. */}}
{{- define "trainyard.callbackUrl" -}}
{{- if .Values.callbacks.url -}}
{{- .Values.callbacks.url | trimSuffix "/" -}}
{{- else if .Values.callbacks.viaIngress -}}
{{- $public := include "trainyard.publicUrl" . -}}
{{- if not $public -}}
{{- fail "callbacks.viaIngress needs the public URL: set ingress (enabled, with a host), publicUrl or callbacks.url" -}}
{{- end -}}
{{- $public -}}
{{- else -}}
{{- include "trainyard.backendUrl" . -}}
{{- end -}}
{{- end -}}

{{/* Host names the API answers to besides the public URL's: the internal Service's names
(the worker and trainers call it by them) and allowedHosts. A JSON list. */}}
{{- define "trainyard.allowedHosts" -}}
{{- $internal := include "trainyard.backendInternalName" . -}}
{{- $hosts := list $internal (printf "%s.%s" $internal .Release.Namespace) (printf "%s.%s.svc" $internal .Release.Namespace) (printf "%s.%s.svc.cluster.local" $internal .Release.Namespace) -}}
{{- concat $hosts .Values.allowedHosts | uniq | toJson -}}
{{- end -}}

{{/* The render stops here, naming the values, when sign-in or TLS is not configured. */}}
{{- define "trainyard.checkSecurityValues" -}}
{{- if not (and .Values.oidc.issuer .Values.oidc.audience) -}}
{{- fail "oidc.issuer and oidc.audience are required: the chart runs the API with TRAINYARD_AUTH_MODE=oidc (sign-in through your IdP; docs/operations.md)" -}}
{{- end -}}
{{- if and .Values.ingress.enabled .Values.ingress.tls.enabled (not (or .Values.ingress.tls.secretName .Values.ingress.tls.clusterIssuer)) -}}
{{- fail "ingress.tls needs secretName (an existing kubernetes.io/tls Secret) or clusterIssuer (a cert-manager ClusterIssuer); plain HTTP only with ingress.tls.enabled: false" -}}
{{- end -}}
{{- if has .Release.Namespace (include "trainyard.trainingNamespaces" . | fromJsonArray) -}}
{{- fail (printf "training.namespace and training.projectNamespaces must not name the release namespace (%s): the worker may list the Secrets of every training namespace, and this one holds the platform's own credentials" .Release.Namespace) -}}
{{- end -}}
{{- if eq (int .Values.backend.port) (int .Values.backend.internalPort) -}}
{{- fail "backend.port and backend.internalPort must differ: the internal API has a port of its own" -}}
{{- end -}}
{{- end -}}

{{/* The probes: on the internal port (never routed by the Ingress), with a loopback Host so the
API's Host check passes whatever the pod's address. */}}
{{- define "trainyard.probeGet" -}}
httpGet:
  path: {{ . }}
  port: internal
  httpHeaders:
    - name: Host
      value: localhost
{{- end -}}

{{/* framework -> "repository:tag" of every trainer image. */}}
{{- define "trainyard.trainerImages" -}}
{{- $images := dict -}}
{{- range $framework, $image := .Values.training.images -}}
{{- $_ := set $images $framework (printf "%s:%s" $image.repository (default $.Chart.AppVersion $image.tag)) -}}
{{- end -}}
{{- toJson $images -}}
{{- end -}}

{{/* Settings both processes read (the backend and the worker share the storage and Temporal). */}}
{{- define "trainyard.sharedConfig" -}}
TRAINYARD_TEMPORAL_ADDRESS: {{ .Values.temporal.address | quote }}
TRAINYARD_TEMPORAL_NAMESPACE: {{ .Values.temporal.namespace | quote }}
TRAINYARD_TASK_QUEUE: {{ .Values.temporal.taskQueue | quote }}
TRAINYARD_STORAGE_URL: {{ .Values.storage.url | quote }}
TRAINYARD_S3_REGION: {{ .Values.storage.s3.region | quote }}
{{- with .Values.storage.s3.endpointUrl }}
TRAINYARD_S3_ENDPOINT_URL: {{ . | quote }}
{{- end }}
{{- with .Values.mlflow.trackingUri }}
TRAINYARD_MLFLOW_TRACKING_URI: {{ . | quote }}
{{- end }}
# One JSON object a line, for the cluster's log collector.
TRAINYARD_LOG_FORMAT: "json"
{{- with .Values.tracing.otlpEndpoint }}
# Traces (tracing.*): the worker hands the endpoint on to trainer Jobs.
OTEL_EXPORTER_OTLP_ENDPOINT: {{ . | quote }}
{{- end }}
{{- range $name, $value := .Values.tracing.env }}
{{ $name }}: {{ $value | quote }}
{{- end }}
# Scratch space only: state lives in PostgreSQL and S3. An emptyDir is mounted at /tmp.
TRAINYARD_DATA_DIR: "/tmp/trainyard"
{{- end -}}

{{/* The NetworkPolicy peer admitted on the metrics ports: Prometheus (metrics.scraper). */}}
{{- define "trainyard.scraperPeer" -}}
- namespaceSelector:
    matchLabels:
      {{- toYaml .Values.metrics.scraper.namespaceLabels | nindent 6 }}
  {{- with .Values.metrics.scraper.podLabels }}
  podSelector:
    matchLabels:
      {{- toYaml . | nindent 6 }}
  {{- end }}
{{- end -}}

{{/* env entries of one secret key: (dict "name" "TRAINYARD_X" "ref" .Values.secrets.x). */}}
{{- define "trainyard.secretEnv" -}}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ .ref.name | quote }}
      key: {{ .ref.key | quote }}
{{- end -}}

{{/* The S3 credentials; include only when secrets.s3.name is set. */}}
{{- define "trainyard.s3SecretEnv" -}}
{{- with .Values.secrets.s3 -}}
- name: TRAINYARD_S3_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ .name | quote }}
      key: {{ .accessKeyIdKey | quote }}
- name: TRAINYARD_S3_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ .name | quote }}
      key: {{ .secretAccessKeyKey | quote }}
{{- end -}}
{{- end -}}

{{/* Pod and container security settings of both deployments. */}}
{{- define "trainyard.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "trainyard.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}
