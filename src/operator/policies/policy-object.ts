// One policy object (RemocalPolicy or RemocalClusterPolicy) as an admin wrote it, checked as the API server checks
// the custom resource: the same kinds, names and spec schema, so that a file that works on a host works in a cluster.

import { POLICY_GROUP, POLICY_VERSION, type PolicySpec } from '../../protocol/policy.js';
import { validatePolicyObject } from './spec-check.js';
import type { StoredPolicy } from './select.js';

const NAME = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

/** The policy, or what is wrong with it. `defaultNamespace`: where a RemocalPolicy without one lives. */
export function parsePolicyObject(raw: unknown, defaultNamespace: string): StoredPolicy | string {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return 'a policy is an object with apiVersion, kind, metadata and spec';
  const { apiVersion, kind, metadata, spec } = raw as Record<string, unknown>;
  if (apiVersion !== `${POLICY_GROUP}/${POLICY_VERSION}`) return `apiVersion must be ${POLICY_GROUP}/${POLICY_VERSION}, not ${JSON.stringify(apiVersion)}`;
  if (kind !== 'RemocalPolicy' && kind !== 'RemocalClusterPolicy') return `kind must be RemocalPolicy or RemocalClusterPolicy, not ${JSON.stringify(kind)}`;
  const { name, namespace } = (typeof metadata === 'object' && metadata !== null ? metadata : {}) as Record<string, unknown>;
  if (typeof name !== 'string' || !NAME.test(name)) return `metadata.name must be a DNS subdomain name (lower-case letters, digits, - and .), not ${JSON.stringify(name)}`;
  if (kind === 'RemocalClusterPolicy' && namespace !== undefined) return `${name}: a RemocalClusterPolicy applies to every namespace and has no metadata.namespace`;
  if (namespace !== undefined && (typeof namespace !== 'string' || !NAME.test(namespace))) return `${name}: metadata.namespace is not a namespace name`;
  if (spec === undefined || spec === null) return `${kind} "${name}" is invalid: spec: Required value`;
  const checked = validatePolicyObject(raw);
  if (checked.errors.length > 0) return `${kind} "${name}" is invalid: ${checked.errors.join(', ')}`;
  return {
    kind,
    namespace: kind === 'RemocalClusterPolicy' ? null : ((namespace as string | undefined) ?? defaultNamespace),
    name,
    spec: (checked.value as { spec: PolicySpec }).spec,
  };
}
