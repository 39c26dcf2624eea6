// `remocal ls`: the targets a user can pick in a namespace, written as `-t` takes them. A kind the user may not
// list, or that the cluster does not serve (Argo Rollouts), is left out with the reason, not a failure: a
// developer allowed to see pods alone still gets a useful list.

import type { V1Pod } from '@kubernetes/client-node';
import { KubeForbiddenError, isRemocalError } from '../../core/errors.js';
import { apiStatus, kubeError, type Kube } from './api.js';
import { MESH_SIDECARS, isReady } from './resolve.js';

export interface ListedTarget {
  /** As `-t` takes it: `deployment/orders`, `pod/multi/container/app`. */
  target: string;
  kind: string;
  ready: boolean;
  /** "2/2 ready", "Running", "schedule 0 3 * * *". */
  detail: string;
}

export interface TargetList {
  namespace: string;
  context: string;
  targets: ListedTarget[];
  /** Kinds left out, and why. */
  skipped: { kind: string; reason: string }[];
}

interface KindLister {
  kind: string;
  resource: string;
  list(kube: Kube, namespace: string): Promise<ListedTarget[]>;
}

const listers: KindLister[] = [
  {
    kind: 'pod',
    resource: 'pods',
    async list(kube, namespace) {
      const pods = await kube.core.listNamespacedPod({ namespace });
      return pods.items.filter((pod) => pod.status?.phase === 'Running').flatMap(podTargets);
    },
  },
  {
    kind: 'deployment',
    resource: 'deployments.apps',
    async list(kube, namespace) {
      const list = await kube.apps.listNamespacedDeployment({ namespace });
      return list.items.map((item) => replicated('deployment', item.metadata?.name, item.status?.readyReplicas, item.spec?.replicas));
    },
  },
  {
    kind: 'statefulset',
    resource: 'statefulsets.apps',
    async list(kube, namespace) {
      const list = await kube.apps.listNamespacedStatefulSet({ namespace });
      return list.items.map((item) => replicated('statefulset', item.metadata?.name, item.status?.readyReplicas, item.spec?.replicas));
    },
  },
  {
    kind: 'replicaset',
    resource: 'replicasets.apps',
    async list(kube, namespace) {
      const list = await kube.apps.listNamespacedReplicaSet({ namespace });
      // A deployment's replica sets are reached through the deployment; listing them too would only be noise.
      return list.items
        .filter((item) => (item.metadata?.ownerReferences ?? []).length === 0)
        .map((item) => replicated('replicaset', item.metadata?.name, item.status?.readyReplicas, item.spec?.replicas));
    },
  },
  {
    kind: 'job',
    resource: 'jobs.batch',
    async list(kube, namespace) {
      const list = await kube.batch.listNamespacedJob({ namespace });
      return list.items.map((item) => {
        const active = item.status?.active ?? 0;
        return { target: `job/${item.metadata?.name}`, kind: 'job', ready: active > 0, detail: active > 0 ? `${active} active` : 'finished' };
      });
    },
  },
  {
    kind: 'cronjob',
    resource: 'cronjobs.batch',
    async list(kube, namespace) {
      const list = await kube.batch.listNamespacedCronJob({ namespace });
      // Targeting a CronJob starts a Job of its own: always possible.
      return list.items.map((item) => ({ target: `cronjob/${item.metadata?.name}`, kind: 'cronjob', ready: true, detail: `schedule ${item.spec?.schedule}` }));
    },
  },
  {
    kind: 'service',
    resource: 'services',
    async list(kube, namespace) {
      const list = await kube.core.listNamespacedService({ namespace });
      return list.items
        .filter((item) => Object.keys(item.spec?.selector ?? {}).length > 0)
        .map((item) => ({ target: `service/${item.metadata?.name}`, kind: 'service', ready: true, detail: `selects ${Object.entries(item.spec!.selector!).map(([key, value]) => `${key}=${value}`).join(',')}` }));
    },
  },
  {
    kind: 'rollout',
    resource: 'rollouts.argoproj.io',
    async list(kube, namespace) {
      const list = (await kube.custom.listNamespacedCustomObject({ group: 'argoproj.io', version: 'v1alpha1', namespace, plural: 'rollouts' })) as {
        items?: { metadata?: { name?: string }; spec?: { replicas?: number }; status?: { readyReplicas?: number } }[];
      };
      return (list.items ?? []).map((item) => replicated('rollout', item.metadata?.name, item.status?.readyReplicas, item.spec?.replicas));
    },
  },
];

function replicated(kind: string, name: string | undefined, ready: number | undefined, wanted: number | undefined): ListedTarget {
  return { target: `${kind}/${name}`, kind, ready: (ready ?? 0) > 0, detail: `${ready ?? 0}/${wanted ?? 0} ready` };
}

function podTargets(pod: V1Pod): ListedTarget[] {
  const name = pod.metadata?.name ?? '';
  const ready = isReady(pod);
  const detail = ready ? 'Running, ready' : 'Running, not ready';
  const containers = (pod.spec?.containers ?? []).map((container) => container.name).filter((container) => !(MESH_SIDECARS as readonly string[]).includes(container));
  if (containers.length <= 1) return [{ target: `pod/${name}`, kind: 'pod', ready, detail }];
  return containers.map((container) => ({ target: `pod/${name}/container/${container}`, kind: 'pod', ready, detail }));
}

export async function listTargets(kube: Kube): Promise<TargetList> {
  const namespace = kube.namespace;
  const results = await Promise.all(
    listers.map(async (lister) => {
      try {
        return { lister, targets: await lister.list(kube, namespace), skipped: '' };
      } catch (error) {
        const status = apiStatus(error);
        // A 404 for a whole kind is an API group the cluster does not serve (no Argo Rollouts).
        if (status?.code === 404) return { lister, targets: undefined, skipped: 'not served by this cluster' };
        const failure = kubeError(kube, { verb: 'list', resource: lister.resource, namespace }, error);
        if (failure instanceof KubeForbiddenError) return { lister, targets: undefined, skipped: `no permission to list ${lister.resource}` };
        if (isRemocalError(failure)) throw failure;
        throw error;
      }
    }),
  );
  const targets: ListedTarget[] = [];
  const skipped: TargetList['skipped'] = [];
  for (const result of results) {
    if (result.targets !== undefined) targets.push(...result.targets.sort((a, b) => a.target.localeCompare(b.target)));
    else skipped.push({ kind: result.lister.kind, reason: result.skipped });
  }
  return { namespace, context: kube.contextName, targets, skipped };
}

export function formatTargetList(list: TargetList): string {
  const lines: string[] = [];
  if (list.targets.length === 0) lines.push(`No targets in namespace ${list.namespace} (context ${list.context}).`);
  const width = Math.max(0, ...list.targets.map((target) => target.target.length));
  for (const target of list.targets) lines.push(`${target.target.padEnd(width)}  ${target.detail}`);
  for (const skip of list.skipped) lines.push(`(${skip.kind}s left out: ${skip.reason})`);
  lines.push('', `Use one with: remocal exec -t <target> -n ${list.namespace} -- <command>`);
  return `${lines.join('\n')}\n`;
}
