// A policy object checked as the API server checks the custom resource (the CRD's structural schema, unknown fields
// pruned), and then for what the schema cannot say and the agent relies on: every regex compiles, every CIDR is one
// string, an In or NotIn expression has values. So a policy file in local mode, and an object the API server let
// through, reach the agents only when they mean what they say.

import { isIP } from 'node:net';
import { compileConfigRegex } from '../../config/regex.js';
import type { PolicySpec } from '../../protocol/policy.js';
import { POLICY_SCHEMA } from '../policy-crd.js';
import { validateAgainstSchema } from '../structural.js';

/** The object with unknown fields pruned, and what is wrong with it (empty when nothing is). */
export function validatePolicyObject(object: unknown): { value: unknown; errors: string[] } {
  const checked = validateAgainstSchema(POLICY_SCHEMA, object);
  if (checked.errors.length > 0) return { value: checked.value, errors: checked.errors };
  const spec = ((checked.value as { spec?: unknown }).spec ?? {}) as PolicySpec;
  return { value: checked.value, errors: specProblems(spec) };
}

function specProblems(spec: PolicySpec): string[] {
  const problems: string[] = [];
  const regex = (field: string, pattern: unknown) => {
    try {
      compileConfigRegex(pattern as string);
    } catch (error) {
      problems.push(`${field}: Invalid value: ${JSON.stringify(pattern)}: not a regular expression (${(error as Error).message})`);
    }
  };
  for (const list of ['readOnly', 'local', 'notFound'] as const) {
    for (const [index, pattern] of (spec.fs?.[list] ?? []).entries()) regex(`spec.fs.${list}[${index}]`, pattern);
  }
  const headerFilter = spec.network?.incoming?.httpFilter?.headerFilter;
  if (headerFilter !== undefined) regex('spec.network.incoming.httpFilter.headerFilter', headerFilter);
  for (const direction of ['allow', 'block'] as const) {
    for (const [index, rule] of (spec.network?.outgoing?.[direction] ?? []).entries()) {
      const field = `spec.network.outgoing.${direction}[${index}]`;
      if (rule.hostname !== undefined) regex(`${field}.hostname`, rule.hostname);
      for (const [name, cidr] of [['cidr', rule.ipBlock?.cidr], ...(rule.ipBlock?.except ?? []).map((each, at) => [`except[${at}]`, each])] as [string, unknown][]) {
        if (cidr !== undefined && !isCidr(cidr)) problems.push(`${field}.ipBlock.${name}: Invalid value: ${JSON.stringify(cidr)}: must be one CIDR, such as 10.0.0.0/8`);
      }
    }
  }
  for (const [index, expression] of (spec.selector?.matchExpressions ?? []).entries()) {
    const field = `spec.selector.matchExpressions[${index}].values`;
    const values = expression.values ?? [];
    if ((expression.operator === 'In' || expression.operator === 'NotIn') && values.length === 0) problems.push(`${field}: Required value: ${expression.operator} needs values`);
    if ((expression.operator === 'Exists' || expression.operator === 'DoesNotExist') && values.length > 0) problems.push(`${field}: Forbidden: ${expression.operator} takes no values`);
  }
  return problems;
}

function isCidr(value: unknown): boolean {
  if (typeof value !== 'string') return false;
  const [address = '', bits, extra] = value.split('/');
  const family = isIP(address);
  if (family === 0 || bits === undefined || extra !== undefined || !/^\d{1,3}$/.test(bits)) return false;
  return Number(bits) <= (family === 4 ? 32 : 128);
}
