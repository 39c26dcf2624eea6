// Whether the policies that apply to a session let it split the queues it asks for: a `split-queues` block refuses
// any split, and every policy with `splitQueues.allow` must list each queue id asked (so two policies allow only
// what both allow). Decided in the operator, before anything is patched or consumed, since the agent has no part in
// queue splitting. Each refusal names the policy and the rule, as the agent's refusals do.

import { PolicyBlockedError } from '../../core/errors.js';
import type { AppliedPolicy } from '../../protocol/policy.js';
import type { SplitQueuesRequest } from '../../protocol/split-queues.js';

/** Throws PolicyBlockedError when a policy forbids splitting one of the queues of `request` on `target` (`deployment/orders`). */
export function checkSplitQueuePolicies(policies: readonly AppliedPolicy[], request: SplitQueuesRequest, target: string): void {
  const ids = Object.keys(request);
  if (ids.length === 0) return;
  const blocking = policies.find((policy) => policy.spec.block?.includes('split-queues'));
  if (blocking !== undefined) {
    throw new PolicyBlockedError(`Policy ${blocking.name} forbids splitting the queues of ${target} (block: split-queues).`, { hint: 'Run without feature.split_queues, or ask the policy\'s owner.' });
  }
  for (const policy of policies) {
    const allow = policy.spec.splitQueues?.allow;
    if (allow === undefined) continue;
    const refused = ids.filter((id) => !allow.includes(id));
    if (refused.length === 0) continue;
    throw new PolicyBlockedError(
      `Policy ${policy.name} does not let sessions on ${target} split ${refused.map((id) => `"${id}"`).join(', ')} (splitQueues.allow: ${allow.length === 0 ? 'none' : allow.join(', ')}).`,
      { hint: 'Split only the queues it allows, or ask the policy\'s owner.' },
    );
  }
}
