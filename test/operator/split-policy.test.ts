// Policies over queue splitting: the `split-queues` block, and `splitQueues.allow`, in the CRD's schema (as the
// server would check it) and in the operator's check, which names the policy and its rule.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PolicyBlockedError } from '../../src/core/errors.js';
import { POLICY_SCHEMA } from '../../src/operator/policy-crd.js';
import { validatePolicyObject } from '../../src/operator/policies/spec-check.js';
import { checkSplitQueuePolicies } from '../../src/operator/queues/split-policy.js';
import { validateAgainstSchema } from '../../src/operator/structural.js';
import type { AppliedPolicy, PolicySpec } from '../../src/protocol/policy.js';
import type { SplitQueuesRequest } from '../../src/protocol/split-queues.js';

const policy = (name: string, spec: PolicySpec): AppliedPolicy => ({ kind: 'RemocalPolicy', name: `shop/${name}`, spec });
const ask = (...ids: string[]): SplitQueuesRequest => Object.fromEntries(ids.map((id) => [id, { queueType: 'RMQ', messageFilter: { 'x-tenant': 'alice' } }]));
const object = (spec: unknown) => ({ apiVersion: 'policies.remocal.dev/v1alpha1', kind: 'RemocalPolicy', metadata: { name: 'p', namespace: 'shop' }, spec });

function refusal(policies: AppliedPolicy[], request: SplitQueuesRequest): PolicyBlockedError {
  try {
    checkSplitQueuePolicies(policies, request, 'deployment/orders');
  } catch (error) {
    assert.ok(error instanceof PolicyBlockedError, String(error));
    return error;
  }
  assert.fail('allowed');
}

describe('policies over queue splitting', () => {
  it('the CRD accepts the block and splitQueues.allow, and refuses what is not a queue id', () => {
    assert.deepEqual(validatePolicyObject(object({ block: ['split-queues'], splitQueues: { allow: ['orders', 'events.v2'] } })).errors, []);
    assert.deepEqual(validateAgainstSchema(POLICY_SCHEMA, object({ splitQueues: { allow: ['orders', 'orders'] } })).errors, ['spec.splitQueues.allow[1]: Duplicate value: "orders"']);
    assert.match(validateAgainstSchema(POLICY_SCHEMA, object({ splitQueues: { allow: ['no spaces'] } })).errors.join(), /spec\.splitQueues\.allow: Invalid value: "no spaces": spec\.splitQueues\.allow in body should match/);
  });

  it('a `split-queues` block refuses every split, naming the policy', () => {
    const error = refusal([policy('open', {}), policy('no-split', { block: ['split-queues'] })], ask('orders'));
    assert.equal(error.message, 'Policy shop/no-split forbids splitting the queues of deployment/orders (block: split-queues).');
    assert.equal(error.code, 'REMOCAL_POLICY_BLOCKED');
  });

  it('splitQueues.allow lets through only the ids it lists, and every policy must allow', () => {
    const orders = policy('orders-only', { splitQueues: { allow: ['orders', 'events'] } });
    checkSplitQueuePolicies([orders], ask('orders', 'events'), 'deployment/orders');
    assert.equal(refusal([orders], ask('orders', 'payments', 'audit')).message, 'Policy shop/orders-only does not let sessions on deployment/orders split "payments", "audit" (splitQueues.allow: orders, events).');
    assert.match(refusal([orders, policy('events-only', { splitQueues: { allow: ['events'] } })], ask('orders')).message, /Policy shop\/events-only does not let sessions on deployment\/orders split "orders"/);
    assert.match(refusal([policy('none', { splitQueues: { allow: [] } })], ask('orders')).message, /splitQueues\.allow: none/);
  });

  it('no split asked, or no policy about it: nothing is refused', () => {
    checkSplitQueuePolicies([policy('no-split', { block: ['split-queues'] })], ask(), 'deployment/orders');
    checkSplitQueuePolicies([policy('other', { block: ['steal'] })], ask('orders'), 'deployment/orders');
  });
});
