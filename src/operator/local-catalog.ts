// Local mode's targets: the processes, containers and network namespaces of this host, in the one namespace
// `local`, open to the users the config's `targets` patterns allow.

import { OperatorForbiddenError } from '../core/errors.js';
import { resolveLocalTarget, type ResolvedLocalTarget } from '../platform/local.js';
import { formatTarget, type Target } from '../platform/target.js';
import type { ResolvedForSession, TargetCatalog } from './catalog.js';
import type { Identity } from './identity.js';
import { checkTargetAccess } from './target-access.js';
import { NotServedError } from './not-served.js';

/** The namespace local targets live in, in the API's paths. */
export const LOCAL_NAMESPACE = 'local';

export class LocalCatalog implements TargetCatalog<ResolvedLocalTarget> {
  constructor(private readonly allowed: readonly string[]) {}

  checkNamespace(namespace: string): void {
    if (namespace !== LOCAL_NAMESPACE) throw new NotServedError(`this operator serves the namespace "${LOCAL_NAMESPACE}" only (local targets), not "${namespace}"`);
  }

  async authorize(identity: Identity, _namespace: string, target: Target): Promise<void> {
    if (target.platform !== 'local') {
      throw new OperatorForbiddenError(`This operator serves the targets of its host (pid/, container/, netns/), not ${formatTarget(target)}.`, {
        hint: 'Kubernetes targets go through the operator installed in the cluster: leave local_operator unset.',
      });
    }
    checkTargetAccess(identity, formatTarget(target), this.allowed);
  }

  async resolve(_namespace: string, target: Target): Promise<ResolvedForSession<ResolvedLocalTarget>> {
    if (target.platform !== 'local') throw new Error('unreachable: authorize refuses other targets');
    const resolved = resolveLocalTarget(target);
    return { agentKey: formatTarget(target), target: resolved, description: resolved.description, hasProcess: resolved.pid !== null, names: [formatTarget(target)], labels: {} };
  }

  async mayEndOthers(identity: Identity): Promise<boolean> {
    return identity.admin;
  }
}
