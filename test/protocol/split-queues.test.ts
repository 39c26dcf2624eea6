// The split-queues request as the operator reads it (hostile: bounded, checked, answered in words), and the user's
// `feature.split_queues`, which must accept exactly what the operator will.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compileConfigRegex } from '../../src/config/regex.js';
import { loadConfig } from '../../src/config/load.js';
import { ConfigError } from '../../src/core/errors.js';
import { compileFilterRegex, encodeSplitQueuesRequest, MAX_FILTER_ENTRIES, MAX_SPLIT_QUEUES, parseSplitQueuesRequest } from '../../src/protocol/split-queues.js';
import { projectTree } from '../config/helpers.js';

const valid = { orders: { queueType: 'RMQ', messageFilter: { 'x-tenant': '^alice$', content_type: 'json' } }, 'events.v2': { queueType: 'NATS', messageFilter: { 'Nats-Tenant': 'a.*' } } };

function refusal(input: unknown): string {
  const parsed = parseSplitQueuesRequest(typeof input === 'string' ? input : JSON.stringify(input));
  assert.equal(parsed.ok, false, `accepted ${JSON.stringify(input).slice(0, 100)}`);
  return (parsed as { error: string }).error;
}

describe('parseSplitQueuesRequest', () => {
  it('reads back what the CLI encodes', () => {
    const parsed = parseSplitQueuesRequest(encodeSplitQueuesRequest(valid as never));
    assert.ok(parsed.ok);
    assert.deepEqual({ ...parsed.value }, valid);
  });

  it('refuses, in words, what is not a request', () => {
    assert.match(refusal('{'), /not JSON/);
    assert.match(refusal([]), /not an object/);
    assert.match(refusal({}), /names no queue/);
    assert.match(refusal({ 'bad id!': valid.orders }), /is not a queue id/);
    assert.match(refusal({ ['a'.repeat(64)]: valid.orders }), /is not a queue id/);
    assert.match(refusal({ orders: { queueType: 'SQS', messageFilter: { a: 'b' } } }), /queueType must be one of RMQ, NATS/);
    assert.match(refusal({ orders: { queueType: 'RMQ' } }), /orders: message_filter must be an object/);
    assert.match(refusal({ orders: { queueType: 'RMQ', messageFilter: {} } }), /empty: it would take every message/);
    assert.match(refusal({ orders: { queueType: 'RMQ', messageFilter: { 'x-tenant': '(' } } }), /not a valid regular expression: Unterminated group/);
    assert.match(refusal({ orders: { queueType: 'RMQ', messageFilter: { 'x tenant': 'a' } } }), /not a header or property name/);
    assert.match(refusal({ orders: { queueType: 'RMQ', messageFilter: { a: 1 } } }), /must be a regex string/);
  });

  it('bounds every count and length', () => {
    const many = Object.fromEntries(Array.from({ length: MAX_SPLIT_QUEUES + 1 }, (_, i) => [`q${i}`, valid.orders]));
    assert.match(refusal(many), /more than 16/);
    const filter = Object.fromEntries(Array.from({ length: MAX_FILTER_ENTRIES + 1 }, (_, i) => [`h${i}`, 'a']));
    assert.match(refusal({ orders: { queueType: 'RMQ', messageFilter: filter } }), /more than 16/);
    assert.match(refusal({ orders: { queueType: 'RMQ', messageFilter: { a: 'x'.repeat(1025) } } }), /longer than 1024/);
    assert.match(refusal({ orders: { queueType: 'RMQ', messageFilter: { ['h'.repeat(256)]: 'a' } } }), /not a header or property name/);
    assert.match(refusal(`"${'x'.repeat(70_000)}"`), /longer than 65536 characters/);
  });

  it('keeps a header named __proto__ a plain key, and refuses it as a queue id', () => {
    const parsed = parseSplitQueuesRequest('{"orders": {"queueType": "RMQ", "messageFilter": {"__proto__": "b"}}}');
    assert.ok(parsed.ok);
    assert.deepEqual(Object.keys(parsed.value.orders!.messageFilter), ['__proto__']);
    assert.equal(Object.getPrototypeOf(parsed.value.orders!.messageFilter), Object.prototype);
    assert.match(refusal('{"__proto__": {"queueType": "RMQ", "messageFilter": {"a": "b"}}}'), /is not a queue id/);
  });

  it('compiles filters as config regexes are compiled (case-insensitive, same syntax errors)', () => {
    for (const pattern of ['^Alice$', '(?<tenant>a)', '(?i)a', '[', 'a{2,1}']) {
      const config = (() => { try { return compileConfigRegex(pattern).flags; } catch { return 'error'; } })();
      const protocol = (() => { try { return compileFilterRegex(pattern).flags; } catch { return 'error'; } })();
      assert.equal(protocol, config, pattern);
    }
  });
});

describe('feature.split_queues', () => {
  const load = (t: import('node:test').TestContext, splitQueues: unknown) =>
    loadConfig({ cwd: projectTree(t, { '.remocal/config.json': JSON.stringify({ feature: { split_queues: splitQueues } }) }), env: {} });

  it("takes mirrord's shape, typed", (t) => {
    const { config } = load(t, { orders: { queue_type: 'RMQ', message_filter: { 'x-tenant': '^alice$' } } });
    const queues: Record<string, { queue_type: 'RMQ' | 'NATS'; message_filter: Record<string, string> }> | undefined = config.feature.split_queues;
    assert.deepEqual(queues, { orders: { queue_type: 'RMQ', message_filter: { 'x-tenant': '^alice$' } } });
  });

  it('is unset by default', (t) => {
    assert.equal(load(t, undefined).config.feature.split_queues, undefined);
  });

  it('refuses what the operator would refuse, naming the key', (t) => {
    const refused = (value: unknown): string => {
      try {
        load(t, value);
      } catch (error) {
        assert.ok(error instanceof ConfigError, String(error));
        return error.message;
      }
      assert.fail(`accepted ${JSON.stringify(value)}`);
    };
    assert.match(refused({ orders: { queue_type: 'SQS', message_filter: { a: 'b' } } }), /feature\.split_queues\.orders\.queue_type/);
    assert.match(refused({ orders: { queue_type: 'RMQ', message_filter: { a: '(' } } }), /not a valid regular expression/);
    assert.match(refused({ orders: { queue_type: 'RMQ', message_filter: {} } }), /empty/);
    assert.match(refused({ 'no spaces': { queue_type: 'RMQ', message_filter: { a: 'b' } } }), /is not a queue id/);
    assert.match(refused({ orders: { queue_type: 'RMQ', message_filter: { a: 'b' }, extra: 1 } }), /extra/);
    const many = Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`q${i}`, { queue_type: 'NATS', message_filter: { a: 'b' } }]));
    assert.match(refused(many), /at most 16/);
  });
});
