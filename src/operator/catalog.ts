// What the operator serves sessions on, and who may: the one place local mode and Kubernetes mode differ for
// the session registry and the API. A catalog checks a namespace, authorizes a user on a target, and resolves
// the target to what its agent is started with. Checked before the target is resolved, so a refused user
// learns nothing about the target either.

import type { CopyTargetRequest } from '../protocol/copy-target.js';
import type { KubernetesTarget, Target } from '../platform/target.js';
import type { CopyRecord } from './copy-targets.js';
import type { JoinedSplit, SplitStatus } from './queues/split-sessions.js';
import type { SplitQueuesRequest } from '../protocol/split-queues.js';
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

/** A copy the catalog made for one session: the session runs against it, and it goes with the session. */
export interface CopyForSession<T> {
  resolved: ResolvedForSession<T>;
  record: CopyRecord;
  /** Deletes the copy and scales the workload back; idempotent, never throws. */
  release(): Promise<void>;
}

/** Copy targets (Kubernetes mode only): sessions that run against a copy of their target. */
export interface CopyCatalog<T> {
  /** The target's names and its pod template's labels, to choose the policies that decide whether it may be copied. */
  scopeOf(namespace: string, target: KubernetesTarget): Promise<{ names: string[]; labels: Record<string, string> }>;
  create(session: { id: string; owner: string }, namespace: string, target: KubernetesTarget, request: CopyTargetRequest): Promise<CopyForSession<T>>;
  /** The copies that exist now, being created included. */
  list(): CopyRecord[];
}

/** Split queues (Kubernetes mode only): sessions that take their own share of the workload's queues. */
export interface SplitCatalog {
  join(session: { id: string; owner: string }, namespace: string, target: KubernetesTarget, request: SplitQueuesRequest): Promise<JoinedSplit>;
  status(): Promise<SplitStatus[]>;
}

export interface TargetCatalog<T> {
  /** Present when the catalog can copy targets; a session asking for a copy elsewhere is refused in words. */
  readonly copies?: CopyCatalog<T> | undefined;
  /** Present when the catalog can split queues; a session asking for it elsewhere is refused in words. */
  readonly splits?: SplitCatalog | undefined;
  /** `local` in local mode; the cluster's namespaces in Kubernetes mode. Throws a 404 for one it does not serve. */
  checkNamespace(namespace: string): void;
  /** Throws an OperatorForbiddenError when `identity` may not open sessions on `target` in `namespace`. */
  /** `copy`, `scaleDown`: the session runs on a copy of the target, with the workload scaled down (Kubernetes mode). */
  authorize(identity: Identity, namespace: string, target: Target, options?: { copy?: boolean; scaleDown?: boolean }): Promise<void>;
  resolve(namespace: string, target: Target): Promise<ResolvedForSession<T>>;
  /** Whether `identity` may end sessions that are not theirs in `namespace`. */
  mayEndOthers(identity: Identity, namespace: string): Promise<boolean>;
}
