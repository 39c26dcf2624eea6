// What the operator serves sessions on, and who may: the one place local mode and Kubernetes mode differ for
// the session registry and the API. A catalog checks a namespace, authorizes a user on a target, and resolves
// the target to what its agent is started with. Checked before the target is resolved, so a refused user
// learns nothing about the target either.

import type { Target } from '../platform/target.js';
import type { Identity } from './identity.js';

export interface ResolvedForSession<T> {
  /** The agent's key: sessions whose targets resolve to the same one share one agent (a pod, a process). */
  agentKey: string;
  /** What the launcher starts the agent with. */
  target: T;
  /** "pod/orders-… (picked from deployment/orders), container app", "pid 4242 (node server.js)". */
  description: string;
  hasProcess: boolean;
  /** Every name the target goes by, for the policies' targetPath: as asked, its pod, the workload owning the pod. */
  names: string[];
  /** The target pod's labels, for the policies' selector; none for a target on a host. */
  labels: Record<string, string>;
}

export interface TargetCatalog<T> {
  /** `local` in local mode; the cluster's namespaces in Kubernetes mode. Throws a 404 for one it does not serve. */
  checkNamespace(namespace: string): void;
  /** Throws an OperatorForbiddenError when `identity` may not open sessions on `target` in `namespace`. */
  authorize(identity: Identity, namespace: string, target: Target): Promise<void>;
  resolve(namespace: string, target: Target): Promise<ResolvedForSession<T>>;
  /** Whether `identity` may end sessions that are not theirs in `namespace`. */
  mayEndOthers(identity: Identity, namespace: string): Promise<boolean>;
}
