// message_filter: every entry must match, headers before properties, and bad filters are config errors.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError } from '../../../src/core/errors.js';
import { compileMessageFilter } from '../../../src/operator/queues/filter.js';

describe('message filter', () => {
  const message = (headers: Record<string, string>, properties: Record<string, string> = {}) => ({ headers, properties });

  it('matches when every entry matches, a header or a property', () => {
    const filter = compileMessageFilter({ 'x-dev': '^alice$', content_type: 'json' });
    assert.ok(filter.matches(message({ 'x-dev': 'alice' }, { content_type: 'application/json' })));
    assert.ok(!filter.matches(message({ 'x-dev': 'alice' }, { content_type: 'text/plain' })));
    assert.ok(!filter.matches(message({ 'x-dev': 'bob' }, { content_type: 'application/json' })));
    assert.ok(!filter.matches(message({}, { content_type: 'application/json' })), 'a name found nowhere does not match');
  });

  it('looks at the header before the property of the same name', () => {
    const filter = compileMessageFilter({ type: '^order$' });
    assert.ok(filter.matches(message({ type: 'order' }, { type: 'refund' })));
    assert.ok(!filter.matches(message({ type: 'refund' }, { type: 'order' })));
    assert.ok(filter.matches(message({}, { type: 'ORDER' })), 'case-insensitive, as every config regex');
  });

  it('refuses an empty filter, a bad regex and an oversized one', () => {
    assert.throws(() => compileMessageFilter({}), ConfigError);
    assert.throws(() => compileMessageFilter({ 'x-dev': '(' }), ConfigError);
    assert.throws(() => compileMessageFilter({ 'x-dev': 'a'.repeat(2000) }), ConfigError);
  });
});
