// The copy pod of a copy-target session, as plain data: built from the target's pod template (a workload's
// `spec.template`, a CronJob's job template, or a pod's own spec), with its probes removed (a copy that idles, or
// whose traffic goes to a developer's machine, must not be killed for failing them), its command kept or replaced
// by an idle one, and the excluded containers dropped.
//
// Labels: by default the copy keeps the target's labels, so the target's Services send it its share of the
// traffic (what a developer usually wants from a copy of a Deployment), but never the labels a controller adopts
// pods by: a ReplicaSet's `pod-template-hash`, a StatefulSet's `controller-revision-hash` and pod name, a Job's
// `controller-uid`/`job-name`, an Argo Rollout's `rollouts-pod-template-hash`. Without those no controller's
// selector matches the copy, so none adopts it, counts it as a replica or deletes it. With `keepLabels: false` the
// copy carries only remocal's labels (as the recorded `copy-pod-create` did) and no Service sends it anything.
// Either way it has no ownerReferences: the session owns it, through the `remocal.dev/session` label, and the
// operator deletes it (at the session's end, or at its next start when the session is gone).

import type { V1Container, V1Pod, V1PodSpec, V1PodTemplateSpec } from '@kubernetes/client-node';
import type { CopyTargetRequest } from '../protocol/copy-target.js';

/** The kinds a copy can be made of. */
export const COPY_KINDS = ['pod', 'deployment', 'statefulset', 'replicaset', 'job', 'cronjob', 'rollout'] as const;
export type CopyKind = (typeof COPY_KINDS)[number];

export const COPY_OF_LABEL = 'remocal.dev/copy-of';
export const COPY_SESSION_LABEL = 'remocal.dev/session';
export const COPY_SOURCE_ANNOTATION = 'remocal.dev/source';
export const COPY_OWNER_ANNOTATION = 'remocal.dev/owner';
export const COPY_COMMAND_ANNOTATION = 'remocal.dev/command';

/** Labels by which a controller selects, and may adopt, its pods. */
export const ADOPTION_LABELS = [
  'pod-template-hash',
  'controller-revision-hash',
  'statefulset.kubernetes.io/pod-name',
  'apps.kubernetes.io/pod-index',
  'controller-uid',
  'job-name',
  'batch.kubernetes.io/controller-uid',
  'batch.kubernetes.io/job-name',
  'batch.kubernetes.io/job-completion-index',
  'rollouts-pod-template-hash',
] as const;

/**
 * The idle command: a shell that waits for its stop signal. `sleep … & wait` so that SIGTERM is handled at once (a
 * shell runs its trap only after the foreground command ends).
 */
export const IDLE_COMMAND = ['sh', '-c', "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done"];

export interface CopySource {
  kind: CopyKind;
  name: string;
  namespace: string;
  template: V1PodTemplateSpec;
  /** The template is a running pod's spec (a `pod` target): what the API server filled in for that pod is dropped. */
  fromPod: boolean;
  /** The target's pods crash (CrashLoopBackOff, or a container that exits with an error): `auto` idles the copy. */
  crashing: boolean;
}

export interface CopyIdentity {
  session: string;
  owner: string;
  /** A few random characters that make the copy's name unique. */
  suffix: string;
}

/** `deployment.orders`: a label value (63 characters at most, alphanumeric at both ends). */
export function copyOfValue(kind: CopyKind, name: string): string {
  return `${kind}.${name}`.slice(0, 63).replace(/[^A-Za-z0-9]+$/, '');
}

/** `orders-copy-x7k2q`, within the 63 characters a pod name may use as a DNS label. */
export function copyPodName(name: string, suffix: string): string {
  const tail = `-copy-${suffix}`;
  return `${name.slice(0, 63 - tail.length).replace(/[-.]+$/, '')}${tail}`;
}

/** Whether the copy idles: asked, or (auto) the original's command ends (jobs) or crashes. */
export function copyIdles(source: Pick<CopySource, 'kind' | 'crashing'>, command: CopyTargetRequest['command']): boolean {
  if (command !== 'auto') return command === 'idle';
  return source.kind === 'job' || source.kind === 'cronjob' || source.crashing;
}

function withoutProbes(container: V1Container, idle: boolean, fromPod: boolean): V1Container {
  const { livenessProbe: _liveness, readinessProbe: _readiness, startupProbe: _startup, ...rest } = container;
  const copied: V1Container = idle ? { ...rest, command: IDLE_COMMAND, args: [] } : rest;
  if (idle) delete copied.args;
  // The service account token's volume is the API server's addition to a running pod; the copy gets its own.
  if (fromPod && copied.volumeMounts !== undefined) copied.volumeMounts = copied.volumeMounts.filter((mount) => !mount.name.startsWith('kube-api-access-'));
  return copied;
}

function kept(containers: V1Container[] | undefined, excluded: readonly string[]): V1Container[] {
  return (containers ?? []).filter((container) => !excluded.includes(container.name));
}

/**
 * The copy pod. Throws a plain Error with words for the user when the exclusions name containers the template
 * does not have, or leave it none (the caller turns it into the catalog's error).
 */
export function buildCopyPod(source: CopySource, request: CopyTargetRequest, identity: CopyIdentity): V1Pod {
  const spec = source.template.spec;
  if (spec === undefined) throw new Error(`${source.kind}/${source.name} has no pod template`);
  const names = (list: V1Container[] | undefined): string[] => (list ?? []).map((container) => container.name);
  const unknown = [
    ...request.excludeContainers.filter((name) => !names(spec.containers).includes(name)),
    ...request.excludeInitContainers.filter((name) => !names(spec.initContainers).includes(name)),
  ];
  if (unknown.length > 0) {
    throw new Error(`${source.kind}/${source.name} has no container ${unknown.join(', ')} to exclude (containers: ${names(spec.containers).join(', ') || 'none'}; init containers: ${names(spec.initContainers).join(', ') || 'none'})`);
  }
  const idle = copyIdles(source, request.command);
  const containers = kept(spec.containers, request.excludeContainers).map((container) => withoutProbes(container, idle, source.fromPod));
  if (containers.length === 0) throw new Error(`excluding ${request.excludeContainers.join(', ')} leaves the copy of ${source.kind}/${source.name} no container`);
  const initContainers = kept(spec.initContainers, request.excludeInitContainers).map((container) => withoutProbes(container, false, source.fromPod));

  const { ephemeralContainers: _ephemeral, nodeName: _node, hostname: _hostname, subdomain: _subdomain, ...rest } = spec;
  const podSpec: V1PodSpec = { ...(source.fromPod ? rest : { ...rest, ...pick(spec, ['hostname', 'subdomain']) }), containers };
  if (initContainers.length > 0) podSpec.initContainers = initContainers;
  else delete podSpec.initContainers;
  if (source.fromPod) {
    if (podSpec.volumes !== undefined) podSpec.volumes = podSpec.volumes.filter((volume) => !volume.name.startsWith('kube-api-access-'));
    // The deprecated alias the API server fills in from serviceAccountName; sent back, it must agree, so leave it out.
    delete podSpec.serviceAccount;
  }

  const templateLabels = source.template.metadata?.labels ?? {};
  const labels: Record<string, string> = request.keepLabels ? Object.fromEntries(Object.entries(templateLabels).filter(([key]) => !(ADOPTION_LABELS as readonly string[]).includes(key))) : {};
  labels[COPY_OF_LABEL] = copyOfValue(source.kind, source.name);
  labels[COPY_SESSION_LABEL] = identity.session;
  labels['app.kubernetes.io/managed-by'] = 'remocal';
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: copyPodName(source.name, identity.suffix),
      namespace: source.namespace,
      labels,
      annotations: {
        ...(source.fromPod ? {} : (source.template.metadata?.annotations ?? {})),
        [COPY_SOURCE_ANNOTATION]: `${source.kind}/${source.name}`,
        [COPY_OWNER_ANNOTATION]: identity.owner,
        [COPY_COMMAND_ANNOTATION]: idle ? 'idle' : 'kept',
      },
    },
    spec: podSpec,
  };
}

function pick(spec: V1PodSpec, keys: ('hostname' | 'subdomain')[]): Partial<V1PodSpec> {
  return Object.fromEntries(keys.filter((key) => spec[key] !== undefined).map((key) => [key, spec[key]]));
}
