// The Job a job step runs: the template CronJob's jobTemplate, as `kubectl create job --from=cronjob/…` would
// make it, plus what makes it a step: the step's env on every container, the step's timeout as the Job's
// deadline, no retries unless the template asks for them, a TTL that removes it should the operator die before
// it does, and the labels the operator finds it by. Plain data, so the tests validate it against the API's types.

import { randomBytes } from 'node:crypto';
import type { V1CronJob, V1Job, V1EnvVar } from '@kubernetes/client-node';
import { JOB_STEP_LABEL, JOB_STEP_OWNER_ANNOTATION, type JobStepRequest } from '../protocol/job-step.js';

/** How long a finished step's Job stays if nobody deletes it: the operator does, when the session ends. */
const ORPHAN_TTL_SECONDS = 3600;

export function jobStepName(template: string): string {
  // 13 + 52 at most + 6 = 71 would be too long for a label value: cut the template's part.
  return `remocal-step-${template.slice(0, 43).replace(/-+$/, '')}-${randomBytes(3).toString('hex').slice(0, 5)}`;
}

export function jobStepSpec(cronJob: V1CronJob, request: JobStepRequest, owner: string, name: string): V1Job {
  const namespace = cronJob.metadata?.namespace;
  const template = structuredClone(cronJob.spec?.jobTemplate ?? {});
  const spec = template.spec ?? { template: {} };
  const stepEnv: V1EnvVar[] = Object.entries(request.env).map(([envName, value]) => ({ name: envName, value }));
  const withStepEnv = (env: V1EnvVar[] | undefined): V1EnvVar[] | undefined => {
    const kept = (env ?? []).filter((variable) => !Object.hasOwn(request.env, variable.name));
    const merged = [...kept, ...stepEnv];
    return merged.length === 0 ? undefined : merged;
  };
  const podSpec = spec.template.spec;
  if (podSpec !== undefined) {
    podSpec.containers = podSpec.containers.map((container) => ({ ...container, env: withStepEnv(container.env) }));
  }
  const labels = { ...template.metadata?.labels, [JOB_STEP_LABEL]: request.template };
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: {
      name,
      ...(namespace === undefined ? {} : { namespace }),
      labels,
      annotations: { ...template.metadata?.annotations, [JOB_STEP_OWNER_ANNOTATION]: owner, 'cronjob.kubernetes.io/instantiate': 'manual' },
    },
    spec: {
      ...spec,
      backoffLimit: spec.backoffLimit ?? 0,
      activeDeadlineSeconds: Math.min(spec.activeDeadlineSeconds ?? request.timeoutSeconds, request.timeoutSeconds),
      ttlSecondsAfterFinished: Math.min(spec.ttlSecondsAfterFinished ?? ORPHAN_TTL_SECONDS, ORPHAN_TTL_SECONDS),
      template: { ...spec.template, metadata: { ...spec.template.metadata, labels: { ...spec.template.metadata?.labels, [JOB_STEP_LABEL]: request.template } } },
    },
  };
}
