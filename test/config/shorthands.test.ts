// mirrord's short forms, each against the object form it stands for.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { resolveConfig } from '../../src/config/resolve.js';
import type { RemocalConfig } from '../../src/config/options.js';

function fromFile(data: unknown): RemocalConfig {
  const resolution = resolveConfig({ file: { path: 'config.json', data } });
  assert.deepEqual(resolution.problems, []);
  return resolution.config!;
}

test('"target": "<path>" is { path }', () => {
  assert.equal(fromFile({ target: 'pod/web/container/app' }).target.path, 'pod/web/container/app');
  assert.equal(fromFile({ target: 'targetless' }).target.path, 'targetless');
});

test('target.path in mirrord object form resolves to the string form', () => {
  assert.equal(fromFile({ target: { path: { deployment: 'api', container: 'app' } } }).target.path, 'deployment/api/container/app');
  assert.equal(fromFile({ target: { path: { pod: 'web' } } }).target.path, 'pod/web');
});

test('"env": true / false', () => {
  assert.equal(fromFile({ feature: { env: true } }).feature.env.enabled, true);
  assert.equal(fromFile({ feature: { env: false } }).feature.env.enabled, false);
});

test('env include / exclude / unset: a ;-separated string or an array', () => {
  const config = fromFile({ feature: { env: { include: 'A;B_*; C ', exclude: ['SECRET', 'TOKEN_?'], unset: 'AWS_PROFILE' } } });
  assert.deepEqual(config.feature.env.include, ['A', 'B_*', 'C']);
  assert.deepEqual(config.feature.env.exclude, ['SECRET', 'TOKEN_?']);
  assert.deepEqual(config.feature.env.unset, ['AWS_PROFILE']);
});

test('"fs": mode string, true (read), false (local)', () => {
  assert.equal(fromFile({ feature: { fs: 'write' } }).feature.fs.mode, 'write');
  assert.equal(fromFile({ feature: { fs: 'localwithoverrides' } }).feature.fs.mode, 'localwithoverrides');
  assert.equal(fromFile({ feature: { fs: true } }).feature.fs.mode, 'read');
  assert.equal(fromFile({ feature: { fs: false } }).feature.fs.mode, 'local');
});

test('fs pattern lists: one regex or an array (a single string is never split)', () => {
  const config = fromFile({ feature: { fs: { read_write: '.+\\.json;x', local: ['.+\\.js', '.+\\.mjs'] } } });
  assert.deepEqual(config.feature.fs.read_write, ['.+\\.json;x']);
  assert.deepEqual(config.feature.fs.local, ['.+\\.js', '.+\\.mjs']);
});

test('"incoming": mode string, true (default), false (off)', () => {
  assert.equal(fromFile({ feature: { network: { incoming: 'steal' } } }).feature.network.incoming.mode, 'steal');
  assert.equal(fromFile({ feature: { network: { incoming: 'off' } } }).feature.network.incoming.mode, 'off');
  assert.equal(fromFile({ feature: { network: { incoming: true } } }).feature.network.incoming.mode, 'mirror');
  assert.equal(fromFile({ feature: { network: { incoming: false } } }).feature.network.incoming.mode, 'off');
});

test('"outgoing": true / "remote" (defaults), false / "local" (no tcp, no udp)', () => {
  for (const value of [true, 'remote']) {
    const { tcp, udp } = fromFile({ feature: { network: { outgoing: value } } }).feature.network.outgoing;
    assert.deepEqual({ tcp, udp }, { tcp: true, udp: true });
  }
  for (const value of [false, 'local']) {
    const { tcp, udp } = fromFile({ feature: { network: { outgoing: value } } }).feature.network.outgoing;
    assert.deepEqual({ tcp, udp }, { tcp: false, udp: false });
  }
});

test('outgoing filter: one pattern string or an array', () => {
  assert.deepEqual(fromFile({ feature: { network: { outgoing: { filter: { remote: 'db.internal:5432' } } } } }).feature.network.outgoing.filter, { remote: ['db.internal:5432'] });
});

test('"dns": true / false', () => {
  assert.equal(fromFile({ feature: { network: { dns: false } } }).feature.network.dns.enabled, false);
  assert.equal(fromFile({ feature: { network: { dns: true } } }).feature.network.dns.enabled, true);
});

test('"network": false turns incoming, outgoing and DNS off; true keeps the defaults', () => {
  const off = fromFile({ feature: { network: false } }).feature.network;
  assert.deepEqual([off.incoming.mode, off.outgoing.tcp, off.outgoing.udp, off.dns.enabled], ['off', false, false, false]);
  const on = fromFile({ feature: { network: true } }).feature.network;
  assert.deepEqual([on.incoming.mode, on.outgoing.tcp, on.outgoing.udp, on.dns.enabled], ['mirror', true, true, true]);
});

test('a short form in the file still gives way to an env var for one of its keys', () => {
  const resolution = resolveConfig({ file: { path: 'c.json', data: { feature: { network: false } } }, env: { REMOCAL_FEATURE_NETWORK_DNS_ENABLED: 'true' } });
  assert.equal(resolution.config!.feature.network.dns.enabled, true);
  assert.equal(resolution.config!.feature.network.incoming.mode, 'off');
});

test('null is "not set", as mirrord writes it', () => {
  const config = fromFile({ target: null, agent: { namespace: null }, connect_tcp: null });
  assert.equal(config.target.path, undefined);
  assert.equal(config.agent.namespace, undefined);
});

test('agent.log_level accepts RUST_LOG directives and keeps the most verbose level named', () => {
  assert.equal(fromFile({ agent: { log_level: 'mirrord=trace,warn' } }).agent.log_level, 'trace');
  assert.equal(fromFile({ agent: { log_level: 'WARN' } }).agent.log_level, 'warn');
});
