// Which policies apply to a session: a RemocalClusterPolicy to every namespace, a RemocalPolicy to its own; then its
// targetPath (a glob) against every name the target goes by, its selector against the target pod's labels, and
// copies of targets only where the policy says so.
//
// Every name, not only the one the user typed: a policy on `deployment/orders` must not be walked around by naming
// one of its pods (`pod/orders-7c9d-x2x`), so a pod also goes by the workload that owns it.

import type { AppliedPolicy, LabelSelector, PolicyKind, PolicySpec } from '../../protocol/policy.js';

/** A policy as the operator holds it, from the cluster or from a file. */
export interface StoredPolicy {
  kind: PolicyKind;
  /** Null for a RemocalClusterPolicy. */
  namespace: string | null;
  name: string;
  spec: PolicySpec;
}

/** What a session's target is, for choosing its policies. */
export interface PolicyScope {
  namespace: string;
  /** Every name of the target: as asked (`deployment/orders`), its pod (`pod/…`, `pod/…/container/app`), its owners. */
  names: readonly string[];
  /** The target pod's labels; none for a local target. */
  labels: Readonly<Record<string, string>>;
  /** The session runs on a copy of the target. */
  copy: boolean;
}

export function policyName(policy: Pick<StoredPolicy, 'namespace' | 'name'>): string {
  return policy.namespace === null ? policy.name : `${policy.namespace}/${policy.name}`;
}

export function applicablePolicies(policies: readonly StoredPolicy[], scope: PolicyScope): AppliedPolicy[] {
  return policies
    .filter((policy) => policy.namespace === null || policy.namespace === scope.namespace)
    .filter(({ spec }) => spec.targetPath === undefined || scope.names.some((name) => targetPathMatches(spec.targetPath!, name)))
    .filter(({ spec }) => spec.selector === undefined || selectorMatches(spec.selector, scope.labels))
    .filter(({ spec }) => !scope.copy || spec.appliesToCopyTargets === true)
    .map((policy) => ({ kind: policy.kind, name: policyName(policy), spec: policy.spec }));
}

/**
 * `*` is any run of characters. A path without a container covers each of the target's containers
 * (`deployment/orders` also matches `deployment/orders/container/app`).
 */
export function targetPathMatches(glob: string, name: string): boolean {
  const pattern = new RegExp(`^${glob.split('*').map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);
  return pattern.test(name) || pattern.test(name.replace(/\/container\/[^/]+$/, ''));
}

/** Kubernetes' label selector semantics: every matchLabels pair and every expression must hold. */
export function selectorMatches(selector: LabelSelector, labels: Readonly<Record<string, string>>): boolean {
  for (const [key, value] of Object.entries(selector.matchLabels ?? {})) {
    if (labels[key] !== value) return false;
  }
  for (const { key, operator, values = [] } of selector.matchExpressions ?? []) {
    const has = Object.hasOwn(labels, key);
    if (operator === 'In' && !(has && values.includes(labels[key]!))) return false;
    if (operator === 'NotIn' && has && values.includes(labels[key]!)) return false;
    if (operator === 'Exists' && !has) return false;
    if (operator === 'DoesNotExist' && has) return false;
  }
  return true;
}
