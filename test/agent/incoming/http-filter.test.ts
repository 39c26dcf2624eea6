// compileHttpFilter against mirrord's semantics: headers as `Name: value`, paths with and without the query,
// methods case-insensitively, all_of / any_of, and the ports the filter applies to.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileHttpFilter, type FilterableRequest, type HttpFilterConfig } from '../../../src/agent/incoming/http-filter.js';

const request = (method: string, path: string, headers: Record<string, string> = {}): FilterableRequest => ({
  method,
  path,
  rawHeaders: Object.entries(headers).flat(),
});

const filter = (config: Partial<HttpFilterConfig>) => compileHttpFilter(config as HttpFilterConfig);

test('header_filter is tried on each header as "Name: value", case-insensitively', () => {
  const matches = filter({ header_filter: '^x-user: alice$' });
  assert.equal(matches(request('GET', '/', { Host: 'a', 'X-User': 'Alice' })), true);
  assert.equal(matches(request('GET', '/', { 'X-User': 'bob' })), false);
  assert.equal(matches(request('GET', '/x-user: alice')), false);
});

test('path_filter matches the path with its query string, and without it', () => {
  const anchored = filter({ path_filter: '^/api/users$' });
  assert.equal(anchored(request('GET', '/api/users')), true);
  assert.equal(anchored(request('GET', '/api/users?page=2')), true);
  assert.equal(anchored(request('GET', '/api/users/7')), false);
  const onQuery = filter({ path_filter: 'debug=1' });
  assert.equal(onQuery(request('GET', '/a?debug=1')), true);
});

test('method_filter compares methods case-insensitively', () => {
  const matches = filter({ method_filter: 'post' });
  assert.equal(matches(request('POST', '/')), true);
  assert.equal(matches(request('GET', '/')), false);
});

test('all_of needs every part, any_of one of them', () => {
  const parts = [{ header: '^x-user: alice$' }, { path: '^/api' }, { method: 'POST' }];
  const all = filter({ all_of: parts });
  const any = filter({ any_of: parts });
  const full = request('POST', '/api/x', { 'x-user': 'alice' });
  const partial = request('GET', '/api/x', { 'x-user': 'alice' });
  const none = request('GET', '/other', { 'x-user': 'bob' });
  assert.deepEqual([all(full), all(partial), all(none)], [true, false, false]);
  assert.deepEqual([any(full), any(partial), any(none)], [true, true, false]);
});

test('ports limit where the filter applies; without a filter it applies nowhere', () => {
  const limited = filter({ path_filter: '/', ports: [80, 8080] });
  assert.equal(limited.appliesToPort(8080), true);
  assert.equal(limited.appliesToPort(9090), false);
  assert.equal(filter({ path_filter: '/' }).appliesToPort(9090), true);
  const unset = filter({ ports: [80] });
  assert.equal(unset.isSet, false);
  assert.equal(unset.appliesToPort(80), false);
});
