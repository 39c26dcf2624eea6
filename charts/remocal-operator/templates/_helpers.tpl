{{- define "remocal-operator.labels" -}}
app.kubernetes.io/name: remocal-operator
app.kubernetes.io/managed-by: remocal
{{- end -}}
{{- define "remocal-operator.podLabels" -}}
{{ include "remocal-operator.labels" . }}
app.kubernetes.io/component: operator
{{- end -}}
{{- define "remocal-operator.subject" -}}
- kind: ServiceAccount
  name: remocal-operator
  namespace: {{ .Values.namespace }}
{{- end -}}
