// Kubernetes mode's targets: the workloads of the cluster's namespaces. The API server has already checked the
// user's RBAC on `targets/portforward` (or `targets`) before it proxied the request; the operator then asks, with
// a SubjectAccessReview as the user, whether they may `get` the workload they name, so a user sees through the
// operator no more than kubectl shows them. Ending someone else's session takes the verb `kill` on `sessions`.

import { AuthorizationV1Api, type V1SubjectAccessReview } from '@kubernetes/client-node';
import { OperatorForbiddenError, OperatorUnavailableError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import type { Kube } from '../platform/kubernetes/api.js';
import { resolveKubeTarget, type ResolvedPod } from '../platform/kubernetes/resolve.js';
import { formatTarget, type KubernetesKind, type Target } from '../platform/target.js';
import type { CopyCatalog, ResolvedForSession, SplitCatalog, TargetCatalog } from './catalog.js';
import type { CopyTargets } from './copy-targets.js';
import { splitWorkload, type SplitSessions } from './queues/split-sessions.js';
import type { Identity } from './identity.js';
import { NotServedError } from './not-served.js';

const NAMESPACE = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

/** The resource (and group) a target kind is read as, for the SubjectAccessReview. */
const RESOURCE_OF: Record<KubernetesKind, { group: string; resource: string }> = {
  pod: { group: '', resource: 'pods' },
  deployment: { group: 'apps', resource: 'deployments' },
  statefulset: { group: 'apps', resource: 'statefulsets' },
  replicaset: { group: 'apps', resource: 'replicasets' },
  job: { group: 'batch', resource: 'jobs' },
  cronjob: { group: 'batch', resource: 'cronjobs' },
  rollout: { group: 'argoproj.io', resource: 'rollouts' },
  service: { group: '', resource: 'services' },
};

export interface ResourceAttributes {
  namespace: string;
  verb: string;
  group: string;
  resource: string;
  subresource?: string;
  name?: string;
}

/** Asks the API server whether `identity` may do `attributes`, as the user, with the operator's ServiceAccount. */
export class AccessReviewer {
  private readonly api: AuthorizationV1Api;

  constructor(
    kube: Kube,
    private readonly log: Logger,
  ) {
    this.api = kube.config.makeApiClient(AuthorizationV1Api);
  }

  async allowed(identity: Identity, attributes: ResourceAttributes): Promise<boolean> {
    const body: V1SubjectAccessReview = {
      apiVersion: 'authorization.k8s.io/v1',
      kind: 'SubjectAccessReview',
      spec: { user: identity.user, groups: identity.groups, extra: identity.extra, resourceAttributes: attributes },
    };
    let review: V1SubjectAccessReview;
    try {
      review = await this.api.createSubjectAccessReview({ body });
    } catch (error) {
      this.log.error({ err: error, attributes }, 'SubjectAccessReview failed');
      throw new OperatorUnavailableError(`The operator could not check your access: the SubjectAccessReview failed (${(error as Error).message}).`, {
        hint: 'The operator\'s ServiceAccount needs the ClusterRole system:auth-delegator: `remocal operator setup` binds it.',
      });
    }
    // RBAC answers allowed: false, never denied: true; anything but allowed is a no.
    return review.status?.allowed === true;
  }
}

/**
 * Every name a pod target goes by: as asked, the pod (with and without its container), and the workload that owns
 * the pod. A Deployment's pods are owned by a ReplicaSet named after the Deployment and the pods'
 * pod-template-hash, which is how the Deployment's name is found without another request.
 */
export function targetNames(asked: Target, resolved: ResolvedPod): string[] {
  const names = new Set([formatTarget(asked), `pod/${resolved.podName}`, `pod/${resolved.podName}/container/${resolved.container}`]);
  const hash = resolved.pod.metadata?.labels?.['pod-template-hash'];
  for (const owner of resolved.pod.metadata?.ownerReferences ?? []) {
    if (owner.controller !== true) continue;
    const kind = owner.kind.toLowerCase();
    names.add(`${kind}/${owner.name}`);
    if (kind === 'replicaset' && hash !== undefined && owner.name.endsWith(`-${hash}`)) names.add(`deployment/${owner.name.slice(0, -hash.length - 1)}`);
  }
  return [...names];
}

/** The copies a KubeCatalog makes, through CopyTargets: the copy pod is the session's target, with its own agent. */
function copyCatalog(copies: CopyTargets): CopyCatalog<ResolvedPod> {
  return {
    async scopeOf(namespace, target) {
      const source = await copies.source(namespace, target);
      return { names: [formatTarget(target), `${source.kind}/${source.name}`], labels: { ...(source.template.metadata?.labels ?? {}) } };
    },
    async create(session, namespace, target, request) {
      const created = await copies.create(session, namespace, target, request);
      const { resolved } = created;
      return {
        resolved: {
          // Its own agent: sessions on a copy are never joined to the original's, nor to another session's copy.
          agentKey: `${namespace}/${resolved.podName}/${resolved.container}`,
          target: resolved,
          description: resolved.description,
          hasProcess: true,
          names: [formatTarget(target), ...created.names],
          labels: created.labels,
        },
        record: created.record,
        release: created.release,
      };
    },
    list: () => copies.list(),
  };
}

export class KubeCatalog implements TargetCatalog<ResolvedPod> {
  readonly copies: CopyCatalog<ResolvedPod> | undefined;
  readonly splits: SplitCatalog | undefined;

  constructor(
    private readonly kube: Kube,
    private readonly reviewer: AccessReviewer,
    copies?: CopyTargets,
    splits?: SplitSessions,
  ) {
    this.copies = copies === undefined ? undefined : copyCatalog(copies);
    this.splits = splits === undefined ? undefined : { join: (session, namespace, target, request) => splits.join(session, splitWorkload(namespace, target), request), status: () => splits.status() };
  }

  checkNamespace(namespace: string): void {
    if (!NAMESPACE.test(namespace)) throw new NotServedError(`"${namespace}" is not a namespace name`, 400);
  }

  async authorize(identity: Identity, namespace: string, target: Target, options: { copy?: boolean; scaleDown?: boolean } = {}): Promise<void> {
    if (target.platform !== 'kubernetes') {
      throw new OperatorForbiddenError(`This operator serves the cluster's workloads, not ${formatTarget(target)}, a target on some host.`, {
        hint: 'A host\'s targets go through a local-mode operator on that host (local_operator.url).',
      });
    }
    // A copy of a CronJob is a pod from its job template, which does run.
    if (target.kind === 'targetless' || (target.kind === 'cronjob' && options.copy !== true)) {
      throw new OperatorForbiddenError(`Sessions on ${target.kind === 'targetless' ? 'targetless' : 'a cronjob'} are not shared through the operator: there is no running pod to share.`, {
        hint: 'Run it with `operator: false`: a session of its own, with its own agent.',
      });
    }
    const { group, resource } = RESOURCE_OF[target.kind];
    if (!(await this.reviewer.allowed(identity, { namespace, verb: 'get', group, resource, name: target.name }))) {
      throw new OperatorForbiddenError(`${identity.user} may not get ${resource}${group === '' ? '' : `.${group}`} "${target.name}" in namespace ${namespace}, so may not open a session on it.`, {
        hint: `Check it with \`kubectl auth can-i get ${resource}${group === '' ? '' : `.${group}`}/${target.name} -n ${namespace}\`; an admin grants it with a Role.`,
      });
    }
    // A copy is a pod the operator creates, and a scale-down stops the team's own pods: being allowed to look at a
    // workload is not being allowed either. The copy takes a right of remocal's own; the scale-down the user's own
    // right to scale the workload, as \`kubectl scale\` would need.
    if (options.copy === true && !(await this.reviewer.allowed(identity, { namespace, verb: 'create', group: 'operator.remocal.dev', resource: 'copytargets', name: target.name }))) {
      throw new OperatorForbiddenError(`${identity.user} may not make copy targets in namespace ${namespace}.`, {
        hint: `An admin grants it with a Role: verbs [create] on copytargets.operator.remocal.dev (the ClusterRole remocal-user has it). Check it with \`kubectl auth can-i create copytargets.operator.remocal.dev -n ${namespace}\`.`,
      });
    }
    if (options.scaleDown === true && !(await this.reviewer.allowed(identity, { namespace, verb: 'patch', group, resource, subresource: 'scale', name: target.name }))) {
      throw new OperatorForbiddenError(`${identity.user} may not scale ${resource}${group === '' ? '' : `.${group}`} "${target.name}" in namespace ${namespace}, so may not scale it down for a copy (scale_down).`, {
        hint: `Run the copy without scale_down, or ask an admin for patch on ${resource}/scale; check it with \`kubectl auth can-i patch ${resource}${group === '' ? '' : `.${group}`}/${target.name} --subresource=scale -n ${namespace}\`.`,
      });
    }
  }

  async resolve(namespace: string, target: Target): Promise<ResolvedForSession<ResolvedPod>> {
    if (target.platform !== 'kubernetes' || target.kind === 'targetless') throw new Error('unreachable: authorize refuses other targets');
    const resolved = await resolveKubeTarget({ ...this.kube, namespace }, target);
    if (resolved.kind !== 'pod') throw new Error('unreachable: only targetless resolves to no pod');
    return {
      agentKey: `${namespace}/${resolved.podName}/${resolved.container}`,
      target: resolved,
      description: resolved.description,
      hasProcess: true,
      names: targetNames(target, resolved),
      labels: { ...(resolved.pod.metadata?.labels ?? {}) },
    };
  }

  async mayEndOthers(identity: Identity, namespace: string): Promise<boolean> {
    return identity.admin || this.reviewer.allowed(identity, { namespace, verb: 'kill', group: 'operator.remocal.dev', resource: 'sessions' });
  }
}
