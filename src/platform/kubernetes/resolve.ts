// Kubernetes target strings → one running container of one pod. A workload (deployment, statefulset, …) is
// resolved through its label selector to its pods, of which the first running, ready one is picked; the user
// is told which. A CronJob is started as a Job of its own, whose pod is the target and which is deleted with
// the session.

import type { V1ContainerStatus, V1CronJob, V1LabelSelector, V1Pod } from '@kubernetes/client-node';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { InvalidTargetError, TargetNotFoundError, TargetNotReadyError, TimeoutError, type RemocalError } from '../../core/errors.js';
import { formatTarget, type KubernetesTarget } from '../target.js';
import { kubeCall, type Kube, type KubeStatus } from './api.js';

/** Containers that service meshes inject: never the app, so never picked unless named. */
export const MESH_SIDECARS = ['istio-proxy', 'linkerd-proxy'] as const;

export interface ResolvedPod {
  kind: 'pod';
  namespace: string;
  pod: V1Pod;
  podName: string;
  container: string;
  /** `containerd://4fde…`, as the pod's status says: the node-pod agent finds the container's pid with it. */
  containerId: string;
  nodeName: string;
  /** For messages: "pod/orders-6497447b6f-2d76r (picked from deployment/orders), container app". */
  description: string;
  /** Removes what resolving created (the Job started from a CronJob); a no-op otherwise. */
  release(): Promise<void>;
}

export interface ResolvedTargetless {
  kind: 'targetless';
  namespace: string;
  description: string;
  release(): Promise<void>;
}

export type ResolvedKubeTarget = ResolvedPod | ResolvedTargetless;

export interface ResolveOptions {
  /** Progress for the waits (a CronJob's pod starting). */
  onWait?: (text: string) => void;
  /** How long a started Job's pod may take to run. */
  startupTimeoutMs?: number;
  pollIntervalMs?: number;
  signal?: AbortSignal | undefined;
}

const noRelease = async () => {};

export async function resolveKubeTarget(kube: Kube, target: KubernetesTarget, options: ResolveOptions = {}): Promise<ResolvedKubeTarget> {
  const namespace = kube.namespace;
  if (target.kind === 'targetless') {
    return { kind: 'targetless', namespace, description: `targetless (namespace ${namespace})`, release: noRelease };
  }
  const label = `${target.kind}/${target.name}`;
  const notFound = (status: KubeStatus): RemocalError =>
    new TargetNotFoundError(`There is no ${target.kind} "${target.name}" in namespace ${namespace}${status.message ? ` (${status.message})` : ''}.`, {
      hint: `List what you can target with \`remocal ls -n ${namespace}\`, or pick another namespace with -n.`,
    });
  const get = { verb: 'get', namespace, name: target.name };

  switch (target.kind) {
    case 'pod': {
      const pod = await kubeCall(kube, { ...get, resource: 'pods' }, () => kube.core.readNamespacedPod({ name: target.name, namespace }), notFound);
      return choose(pod, target.container, `pod/${target.name}`, null, noRelease);
    }
    case 'deployment': {
      const object = await kubeCall(kube, { ...get, resource: 'deployments.apps' }, () => kube.apps.readNamespacedDeployment({ name: target.name, namespace }), notFound);
      return pickFromSelector(kube, label, object.spec?.selector, target.container);
    }
    case 'statefulset': {
      const object = await kubeCall(kube, { ...get, resource: 'statefulsets.apps' }, () => kube.apps.readNamespacedStatefulSet({ name: target.name, namespace }), notFound);
      return pickFromSelector(kube, label, object.spec?.selector, target.container);
    }
    case 'replicaset': {
      const object = await kubeCall(kube, { ...get, resource: 'replicasets.apps' }, () => kube.apps.readNamespacedReplicaSet({ name: target.name, namespace }), notFound);
      return pickFromSelector(kube, label, object.spec?.selector, target.container);
    }
    case 'job': {
      const object = await kubeCall(kube, { ...get, resource: 'jobs.batch' }, () => kube.batch.readNamespacedJob({ name: target.name, namespace }), notFound);
      return pickFromSelector(kube, label, object.spec?.selector, target.container);
    }
    case 'service': {
      const object = await kubeCall(kube, { ...get, resource: 'services' }, () => kube.core.readNamespacedService({ name: target.name, namespace }), notFound);
      const selector = object.spec?.selector;
      if (selector === undefined || Object.keys(selector).length === 0) {
        throw new TargetNotReadyError(`service/${target.name} has no selector, so no pods stand behind it that remocal could target.`, {
          hint: 'Target the pod or workload that serves it instead.',
        });
      }
      return pickFromSelector(kube, label, { matchLabels: selector }, target.container);
    }
    case 'rollout':
      return pickFromSelector(kube, label, await rolloutSelector(kube, target.name, namespace, notFound), target.container);
    case 'cronjob': {
      const cronJob = await kubeCall(kube, { ...get, resource: 'cronjobs.batch' }, () => kube.batch.readNamespacedCronJob({ name: target.name, namespace }), notFound);
      return startCronJob(kube, cronJob, target, options);
    }
  }
}

/** A LabelSelector in the query form the API takes: `app=orders,tier in (web,api)`. */
export function selectorQuery(selector: V1LabelSelector): string {
  const parts = Object.entries(selector.matchLabels ?? {}).map(([key, value]) => `${key}=${value}`);
  for (const expression of selector.matchExpressions ?? []) {
    const values = (expression.values ?? []).join(',');
    switch (expression.operator) {
      case 'In':
        parts.push(`${expression.key} in (${values})`);
        break;
      case 'NotIn':
        parts.push(`${expression.key} notin (${values})`);
        break;
      case 'Exists':
        parts.push(expression.key);
        break;
      case 'DoesNotExist':
        parts.push(`!${expression.key}`);
        break;
    }
  }
  return parts.join(',');
}

async function pickFromSelector(kube: Kube, label: string, selector: V1LabelSelector | undefined, container: string | null): Promise<ResolvedPod> {
  const namespace = kube.namespace;
  const query = selector === undefined ? '' : selectorQuery(selector);
  if (query === '') throw new TargetNotReadyError(`${label} has no label selector, so remocal cannot find its pods.`);
  const list = await kubeCall(kube, { verb: 'list', resource: 'pods', namespace }, () => kube.core.listNamespacedPod({ namespace, labelSelector: query }));
  const pods = [...list.items].filter((pod) => pod.metadata?.deletionTimestamp === undefined || pod.metadata.deletionTimestamp === null);
  pods.sort((a, b) => (a.metadata?.name ?? '').localeCompare(b.metadata?.name ?? ''));
  const ready = pods.filter(isReady);
  const pod = ready[0];
  if (pod === undefined) {
    if (pods.length === 0) {
      throw new TargetNotReadyError(`${label} has no pods in namespace ${namespace} (selector ${query}).`, {
        hint: `Scale it up (\`kubectl scale ${label} --replicas=1 -n ${namespace}\`) or pick another target.`,
      });
    }
    throw new TargetNotReadyError(
      `${label} has no running, ready pod: ${pods.map((candidate) => `${candidate.metadata?.name} is ${podState(candidate)}`).join('; ')}.`,
    );
  }
  return choose(pod, container, label, `${ready.length} of ${pods.length} pods ready`, noRelease);
}

export function isReady(pod: V1Pod): boolean {
  return pod.status?.phase === 'Running' && (pod.status.conditions ?? []).some((condition) => condition.type === 'Ready' && condition.status === 'True');
}

/** Why a pod cannot be a target, in the words `kubectl get pods` would use; `statuses` narrows it to some containers. */
export function podState(pod: V1Pod, statuses: V1ContainerStatus[] = pod.status?.containerStatuses ?? []): string {
  const phase = pod.status?.phase ?? 'Unknown';
  const unscheduled = (pod.status?.conditions ?? []).find((condition) => condition.type === 'PodScheduled' && condition.status === 'False');
  if (phase === 'Pending' && unscheduled !== undefined) return `Pending, not scheduled: ${unscheduled.message ?? unscheduled.reason ?? 'no node fits'}`;
  for (const status of statuses) {
    const state = containerState(status);
    if (state !== null) return `${phase}, ${state}`;
  }
  if (phase === 'Running') return 'Running but not ready';
  return phase;
}

/** Why a container is not running ("container app exited with code 1 (restarted 2 times)"), or null if it runs. */
function containerState(status: V1ContainerStatus): string | null {
  const restarted = status.restartCount > 0 ? ` (restarted ${status.restartCount} times)` : '';
  const waiting = status.state?.waiting;
  if (waiting !== undefined && waiting !== null) return `container ${status.name} ${waiting.reason ?? 'waiting'}${restarted}`;
  const terminated = status.state?.terminated;
  if (terminated !== undefined && terminated !== null) return `container ${status.name} exited with code ${terminated.exitCode}${restarted}`;
  return null;
}

/** The container to stand in for: the named one, else the only one that is not a mesh sidecar. */
export function chooseContainer(pod: V1Pod, wanted: string | null, label: string): string {
  const names = (pod.spec?.containers ?? []).map((container) => container.name);
  const podName = pod.metadata?.name ?? '';
  if (wanted !== null) {
    if (names.includes(wanted)) return wanted;
    throw new InvalidTargetError(`pod/${podName} has no container "${wanted}"; its containers are ${names.join(', ')}.`, {
      hint: `Name one of them: ${label}/container/${names.find((name) => !isMeshSidecar(name)) ?? names[0]}.`,
    });
  }
  const defaultContainer = pod.metadata?.annotations?.['kubectl.kubernetes.io/default-container'];
  if (defaultContainer !== undefined && names.includes(defaultContainer)) return defaultContainer;
  const candidates = names.filter((name) => !isMeshSidecar(name));
  if (candidates.length === 1) return candidates[0]!;
  const sidecars = names.filter(isMeshSidecar);
  throw new InvalidTargetError(
    `pod/${podName} has ${names.length} containers (${names.join(', ')}); say which one the command stands in for` +
      `${sidecars.length > 0 ? ` (${sidecars.join(', ')} is a mesh sidecar and never chosen by default)` : ''}.`,
    { hint: `Add the container to the target, for example: ${label}/container/${candidates[0] ?? names[0]}.` },
  );
}

function isMeshSidecar(name: string): boolean {
  return (MESH_SIDECARS as readonly string[]).includes(name);
}

function choose(pod: V1Pod, wanted: string | null, label: string, picked: string | null, release: () => Promise<void>): ResolvedPod {
  const podName = pod.metadata?.name ?? '';
  const namespace = pod.metadata?.namespace ?? '';
  if (pod.status?.phase !== 'Running') {
    throw new TargetNotReadyError(`pod/${podName} is not running: it is ${podState(pod)}.`);
  }
  const container = chooseContainer(pod, wanted, label);
  const status = (pod.status.containerStatuses ?? []).find((candidate) => candidate.name === container);
  if (status?.state?.running === undefined || status.state.running === null || status.containerID === undefined) {
    const state = status === undefined ? 'not started' : podState(pod, [status]);
    throw new TargetNotReadyError(`Container ${container} of pod/${podName} is not running (${state}).`, {
      hint: `See why with \`kubectl describe pod ${podName} -n ${namespace}\` and \`kubectl logs ${podName} -c ${container} -n ${namespace} --previous\`.`,
    });
  }
  const from = label === `pod/${podName}` ? '' : ` (picked from ${label}${picked === null ? '' : `, ${picked}`})`;
  return {
    kind: 'pod',
    namespace,
    pod,
    podName,
    container,
    containerId: status.containerID,
    nodeName: pod.spec?.nodeName ?? '',
    description: `pod/${podName}${from}, container ${container}`,
    release,
  };
}

async function rolloutSelector(kube: Kube, name: string, namespace: string, notFound: (status: KubeStatus) => RemocalError): Promise<V1LabelSelector | undefined> {
  const rollout = (await kubeCall(
    kube,
    { verb: 'get', resource: 'rollouts.argoproj.io', namespace, name },
    () => kube.custom.getNamespacedCustomObject({ group: 'argoproj.io', version: 'v1alpha1', namespace, plural: 'rollouts', name }),
    // A Status NotFound is a missing rollout; the plain-text "404 page not found" means the API group itself is
    // not served, i.e. Argo Rollouts is not installed.
    (status) =>
      status.reason === 'NotFound'
        ? notFound(status)
        : new TargetNotFoundError(`rollout/${name}: this cluster has no Argo Rollouts (the API argoproj.io/v1alpha1 rollouts is not served).`, {
            hint: 'Install Argo Rollouts, or target the deployment or pods directly.',
          }),
  )) as { spec?: { selector?: V1LabelSelector; workloadRef?: { kind?: string; name?: string } } };
  if (rollout.spec?.selector !== undefined) return rollout.spec.selector;
  const workload = rollout.spec?.workloadRef;
  if (workload?.kind === 'Deployment' && workload.name !== undefined) {
    const deployment = await kubeCall(kube, { verb: 'get', resource: 'deployments.apps', namespace, name: workload.name }, () =>
      kube.apps.readNamespacedDeployment({ name: workload.name!, namespace }),
    );
    return deployment.spec?.selector;
  }
  return undefined;
}

/** `kubectl create job --from=cronjob/<name>`: a Job from the CronJob's template, owned by it. */
export function jobFromCronJob(cronJob: V1CronJob, suffix: string): { apiVersion: string; kind: string; metadata: Record<string, unknown>; spec: unknown } {
  const name = cronJob.metadata?.name ?? 'cronjob';
  const template = cronJob.spec?.jobTemplate;
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: {
      // Job names become pod label values: 63 characters at most.
      name: `${name.slice(0, 63 - 16)}-remocal-${suffix}`,
      namespace: cronJob.metadata?.namespace,
      labels: { ...(template?.metadata?.labels ?? {}), 'app.kubernetes.io/managed-by': 'remocal' },
      annotations: { ...(template?.metadata?.annotations ?? {}), 'cronjob.kubernetes.io/instantiate': 'manual' },
      ownerReferences: [
        // No blockOwnerDeletion, as `kubectl create job --from`: with OwnerReferencesPermissionEnforcement it would
        // need update on cronjobs/finalizers, which a developer rarely has.
        { apiVersion: 'batch/v1', kind: 'CronJob', name, uid: cronJob.metadata?.uid, controller: true },
      ],
    },
    spec: template?.spec,
  };
}

async function startCronJob(kube: Kube, cronJob: V1CronJob, target: Extract<KubernetesTarget, { name: string }>, options: ResolveOptions): Promise<ResolvedPod> {
  const namespace = kube.namespace;
  const job = jobFromCronJob(cronJob, randomBytes(3).toString('hex'));
  const jobName = job.metadata.name as string;
  const created = await kubeCall(kube, { verb: 'create', resource: 'jobs.batch', namespace, name: jobName }, () =>
    kube.batch.createNamespacedJob({ namespace, body: job as never }),
  );
  const release = async () => {
    await kube.batch.deleteNamespacedJob({ name: jobName, namespace, propagationPolicy: 'Background' }).catch(() => undefined);
  };
  try {
    options.onWait?.(`started job/${jobName} from ${formatTarget(target)}; waiting for its pod`);
    const selector = created.spec?.selector ?? { matchLabels: { 'job-name': jobName } };
    const deadline = Date.now() + (options.startupTimeoutMs ?? 60_000);
    for (;;) {
      const list = await kubeCall(kube, { verb: 'list', resource: 'pods', namespace }, () => kube.core.listNamespacedPod({ namespace, labelSelector: selectorQuery(selector) }));
      const pod = list.items.find(isReady);
      if (pod !== undefined) {
        const resolved = choose(pod, target.container, `job/${jobName}`, null, release);
        return { ...resolved, description: `pod/${resolved.podName} (of job/${jobName}, started from cronjob/${target.name}), container ${resolved.container}` };
      }
      if (Date.now() > deadline) {
        const states = list.items.map((candidate) => `${candidate.metadata?.name} is ${podState(candidate)}`).join('; ');
        throw new TimeoutError(`The pod of job/${jobName} (from cronjob/${target.name}) did not become ready in time${states ? `: ${states}` : ''}.`, {
          hint: 'Raise agent.startup_timeout if the image is slow to pull.',
        });
      }
      await sleep(options.pollIntervalMs ?? 1000, undefined, { signal: options.signal });
    }
  } catch (error) {
    await release();
    throw error;
  }
}
