// Copy targets in the cluster (Kubernetes mode): the operator reads the target's pod template, creates the copy pod
// (copy-spec.ts), waits for it to run while saying how far it got, and deletes it when the session ends. With
// `scaleDown`, the workload is scaled to 0 for the session and back afterwards.
//
// What must survive the operator lives in the cluster, never only in memory: each copy carries its session's id
// as a label, and a scaled-down workload carries an annotation naming the session, its owner and the replica count
// to restore (with a label, so the operator finds them with one selector). Sessions do not outlive the operator,
// so at its start every copy it finds is deleted and every workload it finds scaled down is scaled back (`reconcile`).
//
// The annotation is also the lock that allows one scale-down session per workload: it is written with a merge
// patch that carries the workload's resourceVersion, so of two operators' (or two sessions') writes only one wins;
// the other gets a 409 and reads the annotation again, which now names the holder.

import { PatchStrategy, setHeaderOptions, type V1Pod } from '@kubernetes/client-node';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { CopyTargetFailedError, CopyTargetHeldError, CopyTargetUnsupportedError, TargetNotFoundError, TimeoutError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import type { CopyTargetRequest } from '../protocol/copy-target.js';
import { apiStatus, kubeCall, kubeError, type Kube, type KubeStatus } from '../platform/kubernetes/api.js';
import { chooseContainer, isReady, resolveKubeTarget, type ResolvedPod } from '../platform/kubernetes/resolve.js';
import type { KubernetesTarget } from '../platform/target.js';
import { buildCopyPod, COPY_OF_LABEL, COPY_OWNER_ANNOTATION, COPY_SESSION_LABEL, COPY_SOURCE_ANNOTATION, type CopyKind, type CopySource } from './copy-spec.js';

export const SCALED_DOWN_ANNOTATION = 'remocal.dev/scaled-down-by';
export const SCALED_DOWN_LABEL = 'remocal.dev/scaled-down';

/** The workloads a scale-down applies to, as the API names them (each has a `scale` subresource). */
const SCALABLE: Partial<Record<CopyKind, { group: string; version: string; plural: string }>> = {
  deployment: { group: 'apps', version: 'v1', plural: 'deployments' },
  statefulset: { group: 'apps', version: 'v1', plural: 'statefulsets' },
  replicaset: { group: 'apps', version: 'v1', plural: 'replicasets' },
  rollout: { group: 'argoproj.io', version: 'v1alpha1', plural: 'rollouts' },
};

/** Container waiting reasons that will not pass by waiting: the copy fails at once with the kubelet's words. */
const FATAL_WAITING = new Set(['ErrImageNeverPull', 'ErrImagePull', 'ImagePullBackOff', 'InvalidImageName', 'CreateContainerConfigError', 'CreateContainerError', 'RunContainerError', 'CrashLoopBackOff']);
/** Conflicting writes are retried this many times before the operator gives up. */
const CONFLICT_RETRIES = 5;

export interface ScaleHolder {
  session: string;
  owner: string;
  replicas: number;
}

/** A copy as `kubectl get copytargets` shows it. */
export interface CopyRecord {
  /** The copy pod's name. */
  name: string;
  namespace: string;
  session: string;
  owner: string;
  /** `deployment/orders` */
  source: string;
  scaledDown: boolean;
  /** `Creating`, `Pending (ContainerCreating)`, `Running`, `Deleting`. */
  phase: string;
  createdAt: number;
}

export interface CreatedCopy {
  record: CopyRecord;
  resolved: ResolvedPod;
  /** The template's labels and every name the copy goes by, for the policies that bind copy sessions. */
  names: string[];
  labels: Record<string, string>;
  /** Deletes the copy and scales the workload back; idempotent, never throws (failures are logged). */
  release(): Promise<void>;
}

export interface CopyTargetsOptions {
  /** How long a copy may take to run. */
  startupTimeoutMs: number;
  pollIntervalMs?: number;
}

function kindOf(target: KubernetesTarget): { kind: CopyKind; name: string } {
  if (target.kind === 'targetless' || target.kind === 'service') {
    throw new CopyTargetUnsupportedError(`A copy is made of a pod or a workload's pod template; ${target.kind === 'targetless' ? 'targetless' : `service/${target.name}`} has neither.`, {
      hint: 'Copy the workload behind it instead (deployment/…, statefulset/…, job/…).',
    });
  }
  return { kind: target.kind, name: target.name };
}

export function parseHolder(value: string | undefined): ScaleHolder | null {
  if (value === undefined) return null;
  try {
    const parsed = JSON.parse(value) as Partial<ScaleHolder>;
    if (typeof parsed.session === 'string' && typeof parsed.owner === 'string' && Number.isInteger(parsed.replicas) && parsed.replicas! >= 0) return parsed as ScaleHolder;
  } catch {
    // Someone wrote it by hand: it names nobody, and the replica count to restore is unknown.
  }
  return null;
}

type Workload = { metadata?: { resourceVersion?: string; annotations?: Record<string, string>; labels?: Record<string, string>; name?: string; namespace?: string } };

export class CopyTargets {
  private readonly copies = new Map<string, CopyRecord>();
  private readonly pollMs: number;

  constructor(
    private readonly kube: Kube,
    private readonly log: Logger,
    private readonly options: CopyTargetsOptions,
    /** Whether a session of this operator is still live: a scale-down held by one that is not is stale. */
    private readonly isLive: (session: string) => boolean,
  ) {
    this.pollMs = options.pollIntervalMs ?? 500;
  }

  list(): CopyRecord[] {
    return [...this.copies.values()];
  }

  /** The target's pod template, for the copy and for the policies that decide whether it may be copied. */
  async source(namespace: string, target: KubernetesTarget): Promise<CopySource> {
    const { kind, name } = kindOf(target);
    const notFound = (status: KubeStatus) => new TargetNotFoundError(`There is no ${kind} "${name}" in namespace ${namespace}${status.message ? ` (${status.message})` : ''}.`);
    const get = { verb: 'get', namespace, name };
    const custom = (group: string, version: string, plural: string, objectName = name): Promise<Record<string, any>> =>
      kubeCall(this.kube, { ...get, name: objectName, resource: `${plural}.${group}` }, () => this.kube.custom.getNamespacedCustomObject({ group, version, namespace, plural, name: objectName }) as Promise<Record<string, any>>, notFound);
    const fromTemplate = (template: unknown, fromPod = false): CopySource => ({ kind, name, namespace, template: (template ?? {}) as CopySource['template'], fromPod, crashing: false });
    let source: CopySource;
    switch (kind) {
      case 'pod': {
        const pod = await kubeCall(this.kube, { ...get, resource: 'pods' }, () => this.kube.core.readNamespacedPod({ name, namespace }), notFound);
        return { ...fromTemplate({ metadata: pod.metadata, spec: pod.spec }, true), crashing: crashing([pod]) };
      }
      case 'deployment':
      case 'statefulset':
      case 'replicaset':
        source = fromTemplate((await custom('apps', 'v1', `${kind}s`)).spec?.template);
        break;
      case 'job':
        source = fromTemplate((await custom('batch', 'v1', 'jobs')).spec?.template);
        break;
      case 'cronjob':
        source = fromTemplate((await custom('batch', 'v1', 'cronjobs')).spec?.jobTemplate?.spec?.template);
        break;
      case 'rollout': {
        const rollout = await custom('argoproj.io', 'v1alpha1', 'rollouts');
        const ref = rollout.spec?.workloadRef as { kind?: string; name?: string } | undefined;
        // A Rollout may borrow its template from a Deployment (workloadRef) instead of holding one.
        const template = rollout.spec?.template ?? (ref?.kind === 'Deployment' && ref.name !== undefined ? (await custom('apps', 'v1', 'deployments', ref.name)).spec?.template : undefined);
        source = fromTemplate(template);
        break;
      }
    }
    if (source.template.spec === undefined) throw new CopyTargetUnsupportedError(`${kind}/${name} has no pod template to copy.`);
    // Whether the original crashes decides what `command: auto` does; a workload without a running pod is no error.
    if (kind !== 'job' && kind !== 'cronjob') {
      source.crashing = await resolveKubeTarget({ ...this.kube, namespace }, target).then(
        () => false,
        (error: Error) => /CrashLoopBackOff|exited with code [1-9]/.test(error.message),
      );
    }
    return source;
  }

  /**
   * Creates the copy of `target` for `session` and waits for it to run; scales the workload down once it does. On
   * failure nothing is left behind.
   */
  async create(session: { id: string; owner: string }, namespace: string, target: KubernetesTarget, request: CopyTargetRequest, source?: CopySource): Promise<CreatedCopy> {
    const from = source ?? (await this.source(namespace, target));
    if (request.scaleDown && SCALABLE[from.kind] === undefined) {
      throw new CopyTargetUnsupportedError(`scale_down applies to deployments, statefulsets, replicasets and rollouts, not to ${from.kind}/${from.name}.`, {
        hint: 'Copy it without `scale_down`.',
      });
    }
    let pod: V1Pod;
    try {
      pod = buildCopyPod(from, request, { session: session.id, owner: session.owner, suffix: randomBytes(4).toString('hex').slice(0, 5) });
    } catch (error) {
      throw new CopyTargetUnsupportedError(`Cannot copy ${from.kind}/${from.name}: ${(error as Error).message}.`, { hint: 'Check feature.copy_target.exclude_containers and exclude_init_containers.' });
    }
    const name = pod.metadata!.name!;
    const record: CopyRecord = { name, namespace, session: session.id, owner: session.owner, source: `${from.kind}/${from.name}`, scaledDown: false, phase: 'Creating', createdAt: Date.now() };
    this.copies.set(name, record);
    this.log.info({ session: session.id, copy: name, namespace, source: record.source }, 'creating a copy of the target');
    const remove = async (): Promise<void> => {
      record.phase = 'Deleting';
      await this.deletePod(namespace, name);
      this.copies.delete(name);
    };
    let resolved: ResolvedPod;
    try {
      await kubeCall(this.kube, { verb: 'create', resource: 'pods', namespace }, () => this.kube.core.createNamespacedPod({ namespace, body: pod }));
      resolved = await this.waitRunning(record, target.kind === 'targetless' ? null : target.container);
      if (request.scaleDown) {
        await this.scaleDown(namespace, from.kind, from.name, session);
        record.scaledDown = true;
      }
    } catch (error) {
      await remove();
      throw error;
    }
    let released: Promise<void> | undefined;
    return {
      record,
      resolved,
      names: [`${from.kind}/${from.name}`, `pod/${name}`, `pod/${name}/container/${resolved.container}`],
      labels: { ...(from.template.metadata?.labels ?? {}) },
      release: () =>
        (released ??= (async () => {
          if (record.scaledDown) await this.restore(namespace, from.kind, from.name, session.id).catch((error: Error) => this.log.error({ err: error, workload: record.source, namespace }, 'could not scale the workload back; the operator retries at its next start'));
          await remove().catch((error: Error) => this.log.error({ err: error, copy: name, namespace }, 'could not delete the copy; the operator retries at its next start'));
          this.log.info({ session: session.id, copy: name, namespace }, 'copy removed');
        })()),
    };
  }

  /** Polls the copy until it runs, or fails with the scheduler's or the kubelet's reason as soon as there is one. */
  private async waitRunning(record: CopyRecord, container: string | null): Promise<ResolvedPod> {
    const { namespace, name } = record;
    const deadline = Date.now() + this.options.startupTimeoutMs;
    for (;;) {
      const pod = await kubeCall(this.kube, { verb: 'get', resource: 'pods', namespace, name }, () => this.kube.core.readNamespacedPod({ name, namespace }));
      const failure = failureOf(pod);
      if (failure !== null) {
        const events = await this.warnings(namespace, name);
        throw new CopyTargetFailedError(`The copy of ${record.source} (pod/${name}) cannot run: ${failure}${events === '' ? '' : ` (events: ${events})`}.`, {
          hint: `\`kubectl describe pod ${name} -n ${namespace}\` shows the same; the copy is deleted. Fix the template's image, node selector or resources, or run against the target itself.`,
        });
      }
      const chosen = chooseContainer(pod, container, record.source);
      const status = (pod.status?.containerStatuses ?? []).find((entry) => entry.name === chosen);
      if (isReady(pod) || (pod.status?.phase === 'Running' && status?.state?.running !== undefined && status.containerID !== undefined)) {
        if (status?.containerID !== undefined && status.state?.running !== undefined) {
          record.phase = 'Running';
          this.log.info({ copy: name, namespace }, 'the copy runs');
          return {
            kind: 'pod',
            namespace,
            pod,
            podName: name,
            container: chosen,
            containerId: status.containerID,
            nodeName: pod.spec?.nodeName ?? '',
            description: `pod/${name} (a copy of ${record.source}), container ${chosen}`,
            release: async () => undefined,
          };
        }
      }
      record.phase = progressOf(pod);
      if (Date.now() > deadline) {
        throw new TimeoutError(`The copy of ${record.source} (pod/${name}) did not run within ${this.options.startupTimeoutMs / 1000} s: it is ${record.phase}.`, {
          hint: 'A large image takes long to pull the first time: raise the operator\'s agents.startup_timeout, or run again.',
        });
      }
      await sleep(this.pollMs);
    }
  }

  /** The Warning events of the copy, newest last: the scheduler's and the kubelet's own words. */
  private async warnings(namespace: string, name: string): Promise<string> {
    try {
      const list = await this.kube.core.listNamespacedEvent({ namespace, fieldSelector: `involvedObject.name=${name}` });
      const seen = new Set<string>();
      for (const event of list.items) if (event.type === 'Warning' && event.message !== undefined) seen.add(`${event.reason ?? 'Warning'}: ${event.message}`);
      return [...seen].slice(-3).join('; ');
    } catch {
      return '';
    }
  }

  private async deletePod(namespace: string, name: string): Promise<void> {
    try {
      await this.kube.core.deleteNamespacedPod({ name, namespace, gracePeriodSeconds: 0 });
    } catch (error) {
      if (apiStatus(error)?.code !== 404) throw error;
    }
  }

  private workloadApi(kind: CopyKind): { group: string; version: string; plural: string } {
    const api = SCALABLE[kind];
    if (api === undefined) throw new CopyTargetUnsupportedError(`${kind} cannot be scaled down.`);
    return api;
  }

  /** Takes the workload's scale-down lock (the annotation), then scales it to 0. */
  async scaleDown(namespace: string, kind: CopyKind, name: string, session: { id: string; owner: string }): Promise<void> {
    const api = this.workloadApi(kind);
    const action = { verb: 'patch', resource: `${api.plural}.${api.group}`, namespace, name };
    for (let attempt = 0; ; attempt++) {
      const workload = (await kubeCall(this.kube, { ...action, verb: 'get' }, () => this.kube.custom.getNamespacedCustomObject({ ...api, namespace, name }))) as Workload;
      const holder = parseHolder(workload.metadata?.annotations?.[SCALED_DOWN_ANNOTATION]);
      if (holder !== null && holder.session !== session.id && this.isLive(holder.session)) {
        throw new CopyTargetHeldError(`${kind}/${name} is already scaled down by session ${holder.session} of ${holder.owner}; only one session at a time may scale a workload down.`, {
          hint: `Wait for it to end, ask ${holder.owner}, or copy the target without scale_down.`,
        });
      }
      // A holder whose session is gone left the workload at 0: the count to restore is the one it saved.
      const replicas = holder !== null ? holder.replicas : await this.replicas(namespace, kind, name);
      const patch = {
        metadata: {
          resourceVersion: workload.metadata?.resourceVersion,
          labels: { [SCALED_DOWN_LABEL]: 'true' },
          annotations: { [SCALED_DOWN_ANNOTATION]: JSON.stringify({ session: session.id, owner: session.owner, replicas } satisfies ScaleHolder) },
        },
      };
      try {
        await this.kube.custom.patchNamespacedCustomObject({ ...api, namespace, name, body: patch }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
      } catch (error) {
        if (apiStatus(error)?.code === 409 && attempt < CONFLICT_RETRIES) continue;
        throw kubeError(this.kube, action, error);
      }
      this.log.info({ workload: `${kind}/${name}`, namespace, session: session.id, replicas, resourceVersion: workload.metadata?.resourceVersion }, 'scaling the workload down');
      await this.setReplicas(namespace, kind, name, 0);
      return;
    }
  }

  /** Scales the workload back to what the session's annotation saved, then removes the annotation. */
  async restore(namespace: string, kind: CopyKind, name: string, session: string): Promise<void> {
    const api = this.workloadApi(kind);
    const workload = (await kubeCall(this.kube, { verb: 'get', resource: `${api.plural}.${api.group}`, namespace, name }, () => this.kube.custom.getNamespacedCustomObject({ ...api, namespace, name }))) as Workload;
    const holder = parseHolder(workload.metadata?.annotations?.[SCALED_DOWN_ANNOTATION]);
    if (holder === null || holder.session !== session) return;
    await this.setReplicas(namespace, kind, name, holder.replicas);
    await kubeCall(this.kube, { verb: 'patch', resource: `${api.plural}.${api.group}`, namespace, name }, () =>
      this.kube.custom.patchNamespacedCustomObject(
        { ...api, namespace, name, body: { metadata: { labels: { [SCALED_DOWN_LABEL]: null }, annotations: { [SCALED_DOWN_ANNOTATION]: null } } } },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      ),
    );
    this.log.info({ workload: `${kind}/${name}`, namespace, session, replicas: holder.replicas }, 'scaled the workload back');
  }

  private async replicas(namespace: string, kind: CopyKind, name: string): Promise<number> {
    const api = this.workloadApi(kind);
    const scale = (await kubeCall(this.kube, { verb: 'get', resource: `${api.plural}.${api.group}/scale`, namespace, name }, () => this.kube.custom.getNamespacedCustomObjectScale({ ...api, namespace, name }))) as { spec?: { replicas?: number } };
    // A Scale at 0 comes back as `spec: {}`.
    return scale.spec?.replicas ?? 0;
  }

  /** PUT of the scale subresource with the resourceVersion it was read at; a 409 (someone changed it) reads again. */
  private async setReplicas(namespace: string, kind: CopyKind, name: string, replicas: number): Promise<void> {
    const api = this.workloadApi(kind);
    const action = { verb: 'update', resource: `${api.plural}.${api.group}/scale`, namespace, name };
    for (let attempt = 0; ; attempt++) {
      const scale = (await kubeCall(this.kube, { ...action, verb: 'get' }, () => this.kube.custom.getNamespacedCustomObjectScale({ ...api, namespace, name }))) as { spec?: { replicas?: number } };
      if ((scale.spec?.replicas ?? 0) === replicas) return;
      try {
        await this.kube.custom.replaceNamespacedCustomObjectScale({ ...api, namespace, name, body: { ...scale, spec: { ...scale.spec, replicas } } });
        return;
      } catch (error) {
        if (apiStatus(error)?.code === 409 && attempt < CONFLICT_RETRIES) {
          this.log.info({ workload: `${kind}/${name}`, namespace }, 'the scale changed meanwhile (409): reading it again');
          continue;
        }
        throw kubeError(this.kube, action, error);
      }
    }
  }

  /**
   * What a previous run left: copies whose session is not live are deleted, workloads scaled down by sessions that
   * are not live are scaled back. Says what it did.
   */
  async reconcile(): Promise<string[]> {
    const done: string[] = [];
    const pods = await kubeCall(this.kube, { verb: 'list', resource: 'pods', namespace: '' }, () => this.kube.core.listPodForAllNamespaces({ labelSelector: COPY_OF_LABEL }));
    for (const pod of pods.items) {
      const session = pod.metadata?.labels?.[COPY_SESSION_LABEL] ?? '';
      const { name, namespace } = pod.metadata ?? {};
      if (this.isLive(session) || name === undefined || namespace === undefined || pod.metadata?.deletionTimestamp != null) continue;
      await this.deletePod(namespace, name);
      done.push(`deleted copy pod/${name} in ${namespace} (of ${pod.metadata?.annotations?.[COPY_SOURCE_ANNOTATION] ?? '?'}, ${pod.metadata?.annotations?.[COPY_OWNER_ANNOTATION] ?? '?'}'s session ${session})`);
    }
    for (const [kind, api] of Object.entries(SCALABLE) as [CopyKind, { group: string; version: string; plural: string }][]) {
      let list: { items?: Workload[] };
      try {
        list = (await this.kube.custom.listClusterCustomObject({ ...api, labelSelector: SCALED_DOWN_LABEL })) as { items?: Workload[] };
      } catch (error) {
        // No Argo Rollouts in this cluster: its API answers a plain 404, and there is nothing to restore.
        if (apiStatus(error)?.code === 404) continue;
        throw kubeError(this.kube, { verb: 'list', resource: `${api.plural}.${api.group}`, namespace: '' }, error);
      }
      for (const workload of list.items ?? []) {
        const holder = parseHolder(workload.metadata?.annotations?.[SCALED_DOWN_ANNOTATION]);
        const { name, namespace } = workload.metadata ?? {};
        if (holder === null || this.isLive(holder.session) || name === undefined || namespace === undefined) continue;
        await this.restore(namespace, kind, name, holder.session);
        done.push(`scaled ${kind}/${name} in ${namespace} back to ${holder.replicas} (${holder.owner}'s session ${holder.session} is gone)`);
      }
    }
    return done;
  }
}

/** Whether the original's pods crash: their restarts end in errors. */
function crashing(pods: V1Pod[]): boolean {
  return pods.some((pod) =>
    (pod.status?.containerStatuses ?? []).some(
      (status) => status.state?.waiting?.reason === 'CrashLoopBackOff' || (status.state?.terminated !== undefined && status.state.terminated.exitCode !== 0),
    ),
  );
}

/** Why the copy will not run, in the scheduler's or the kubelet's words; null while it may still run. */
export function failureOf(pod: V1Pod): string | null {
  const unscheduled = (pod.status?.conditions ?? []).find((condition) => condition.type === 'PodScheduled' && condition.status === 'False' && condition.reason === 'Unschedulable');
  if (unscheduled !== undefined) return `the scheduler found no node for it: ${unscheduled.message ?? unscheduled.reason}`;
  for (const status of [...(pod.status?.initContainerStatuses ?? []), ...(pod.status?.containerStatuses ?? [])]) {
    const waiting = status.state?.waiting;
    if (waiting?.reason !== undefined && FATAL_WAITING.has(waiting.reason)) return `container ${status.name}: ${waiting.reason}${waiting.message ? ` (${waiting.message})` : ''}`;
  }
  if (pod.status?.phase === 'Failed' || pod.status?.phase === 'Succeeded') {
    const ended = (pod.status.containerStatuses ?? []).find((status) => status.state?.terminated !== undefined);
    const terminated = ended?.state?.terminated;
    return `it ended (${pod.status.phase})${terminated === undefined ? '' : `: container ${ended!.name} exited with code ${terminated.exitCode}${terminated.reason ? ` (${terminated.reason})` : ''}`}; with \`command: idle\` the copy waits instead`;
  }
  return null;
}

/** How far the copy got: "Pending (ContainerCreating)". */
function progressOf(pod: V1Pod): string {
  const waiting = (pod.status?.containerStatuses ?? []).map((status) => status.state?.waiting?.reason).find((reason) => reason !== undefined);
  const scheduled = (pod.status?.conditions ?? []).some((condition) => condition.type === 'PodScheduled' && condition.status === 'True');
  return `${pod.status?.phase ?? 'Pending'} (${waiting ?? (scheduled ? 'scheduled' : 'waiting for a node')})`;
}
