// The agent's policy checks, one rule at a time, each from both sides: what the policy refuses is refused with the
// policy's name and rule, and what it allows still passes. End to end (a real operator, agent and app) in
// test/operator/policies.test.ts.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SessionGuard } from '../../../src/agent/policy/guard.js';
import type { AgentSubscribeRequest } from '../../../src/protocol/messages.js';
import type { AppliedPolicy, PolicySpec } from '../../../src/protocol/policy.js';

function guardOf(spec: PolicySpec, name = 'shop/rules'): SessionGuard {
  return new SessionGuard([{ kind: 'RemocalPolicy', name, spec }] satisfies AppliedPolicy[]);
}

const steal = (filter: AgentSubscribeRequest['filter'], port = 8080): AgentSubscribeRequest => ({ op: 'incoming.subscribe', port, mode: 'steal', filter });
const mirror: AgentSubscribeRequest = { op: 'incoming.subscribe', port: 8080, mode: 'mirror', filter: null };
const headers = (...lines: [string, string][]) => ({ method: 'GET', path: '/', rawHeaders: lines.flat() });

describe('policy guard: incoming', () => {
  it('block steal refuses every steal and lets a mirror through', () => {
    const guard = guardOf({ block: ['steal'] });
    const refused = guard.subscribeRefusal(steal({ header_filter: '^x-dev: a$' }), true);
    assert.equal(refused?.code, 'REMOCAL_POLICY_BLOCKED');
    assert.match(refused!.message, /^policy shop\/rules forbids stealing port 8080 of the target \(block: steal\)$/);
    assert.equal(guard.subscribeRefusal(mirror, false), null);
  });

  it('block mirror refuses mirrors only', () => {
    const guard = guardOf({ block: ['mirror'] });
    assert.match(guard.subscribeRefusal(mirror, false)!.message, /forbids mirroring port 8080 .*\(block: mirror\)/);
    assert.equal(guard.subscribeRefusal(steal(null), false), null);
  });

  it('block steal-without-filter refuses a whole-port steal and allows a filtered one', () => {
    const guard = guardOf({ block: ['steal-without-filter'] });
    assert.match(guard.subscribeRefusal(steal(null), false)!.message, /without an HTTP filter \(block: steal-without-filter\)/);
    assert.equal(guard.subscribeRefusal(steal({ path_filter: '^/x' }), true), null);
  });

  it('a required header filter: the steal needs a header filter the pattern matches, and each request the header', () => {
    const guard = guardOf({ network: { incoming: { httpFilter: { headerFilter: '^x-dev: ' } } } });
    assert.equal(guard.subscribeRefusal(steal({ header_filter: '^x-dev: alice$' }), true), null);
    assert.equal(guard.subscribeRefusal(steal({ all_of: [{ path: '^/api' }, { header: 'x-dev: bob' }] }), true), null);
    for (const filter of [null, { path_filter: '^/api' }, { header_filter: '^x-other: 1$' }, { any_of: [{ header: 'x-dev: a' }, { path: '/b' }] }]) {
      const refused = guard.subscribeRefusal(steal(filter), filter !== null);
      assert.ok(refused, `refused: ${JSON.stringify(filter)}`);
      assert.match(refused.message, /\(network\.incoming\.httpFilter\.headerFilter: "\^x-dev: "\)$/);
    }
    assert.equal(guard.admits(headers(['X-Dev', 'alice'])), true);
    assert.equal(guard.admits(headers(['x-other', 'alice'])), false);
  });

  it('block override gives the refusal a takeover answers with; no policy, none', () => {
    assert.match(guardOf({ block: ['override'] }).overrideRefusal(8080)!.message, /taking port 8080 over .*\(block: override\)/);
    assert.equal(guardOf({}).overrideRefusal(8080), undefined);
  });
});

describe('policy guard: outgoing', () => {
  const at = (address: string, port: number, ...names: string[]) => ({ address, port, names });

  it('block outgoing refuses every destination', () => {
    assert.deepEqual(guardOf({ block: ['outgoing'] }).outgoingRefusal(at('10.0.0.1', 80)), { policy: 'shop/rules', rule: 'block: outgoing' });
  });

  it('a blocked CIDR, with its except, and IPv4 seen through an IPv6 socket', () => {
    const guard = guardOf({ network: { outgoing: { block: [{ ipBlock: { cidr: '10.20.0.0/16', except: ['10.20.5.0/24'] } }] } } });
    assert.deepEqual(guard.outgoingRefusal(at('10.20.1.9', 5432)), { policy: 'shop/rules', rule: 'network.outgoing.block[0]' });
    assert.deepEqual(guard.outgoingRefusal(at('::ffff:10.20.1.9', 5432))?.rule, 'network.outgoing.block[0]');
    assert.equal(guard.outgoingRefusal(at('10.20.5.7', 5432)), null);
    assert.equal(guard.outgoingRefusal(at('10.21.0.1', 5432)), null);
  });

  it('IPv6 blocks', () => {
    const guard = guardOf({ network: { outgoing: { block: [{ ipBlock: { cidr: 'fd00:1::/64' } }] } } });
    assert.ok(guard.outgoingRefusal(at('fd00:1::5', 443)));
    assert.equal(guard.outgoingRefusal(at('fd00:2::5', 443)), null);
  });

  it('a blocked hostname matches the name asked for or resolved, and ports narrow a rule', () => {
    const guard = guardOf({ network: { outgoing: { block: [{ hostname: '^db\\.prod\\b', ports: [5432] }] } } });
    assert.ok(guard.outgoingRefusal(at('10.0.0.9', 5432, 'db.prod.svc')));
    assert.equal(guard.outgoingRefusal(at('10.0.0.9', 80, 'db.prod.svc')), null);
    assert.equal(guard.outgoingRefusal(at('10.0.0.9', 5432, 'db.staging.svc')), null);
    assert.equal(guard.outgoingRefusal(at('10.0.0.9', 5432)), null);
  });

  it('a rule of ports alone matches them anywhere', () => {
    const guard = guardOf({ network: { outgoing: { block: [{ ports: [25] }] } } });
    assert.ok(guard.outgoingRefusal(at('192.0.2.1', 25)));
    assert.equal(guard.outgoingRefusal(at('192.0.2.1', 26)), null);
  });

  it('an allow list lets through only what one of its rules matches', () => {
    const guard = guardOf({ network: { outgoing: { allow: [{ ipBlock: { cidr: '10.96.0.0/12' } }, { hostname: '\\.svc$' }] } } });
    assert.equal(guard.outgoingRefusal(at('10.96.0.10', 53)), null);
    assert.equal(guard.outgoingRefusal(at('192.0.2.7', 443, 'orders.shop.svc')), null);
    assert.deepEqual(guard.outgoingRefusal(at('192.0.2.7', 443, 'example.org'))?.rule, 'network.outgoing.allow (no rule allows it)');
  });

  it('several policies: each must allow, and the refusal names the one that did not', () => {
    const guard = new SessionGuard([
      { kind: 'RemocalClusterPolicy', name: 'everyone', spec: { network: { outgoing: { block: [{ ports: [6379] }] } } } },
      { kind: 'RemocalPolicy', name: 'shop/db', spec: { network: { outgoing: { block: [{ ports: [5432] }] } } } },
    ]);
    assert.equal(guard.outgoingRefusal(at('10.0.0.1', 6379))?.policy, 'everyone');
    assert.equal(guard.outgoingRefusal(at('10.0.0.1', 5432))?.policy, 'shop/db');
    assert.equal(guard.outgoingRefusal(at('10.0.0.1', 80)), null);
  });
});

describe('policy guard: files and env', () => {
  it('notFound, local and readOnly, against every path the operation touches', () => {
    const guard = guardOf({ fs: { notFound: ['^/etc/secret'], local: ['^/app/config'], readOnly: ['^/data/'] } });
    assert.deepEqual(guard.fileRefusal('read', ['/etc/secret/key']), { code: 'ENOENT', policy: 'shop/rules', rule: 'fs.notFound: ^/etc/secret' });
    // As asked through a link or `..`, the resolved path still meets the rule.
    assert.equal(guard.fileRefusal('read', ['/tmp/link', '/etc/secret/key'])?.code, 'ENOENT');
    assert.equal(guard.fileRefusal('read', ['/etc/../etc/secret/key'])?.code, 'ENOENT');
    assert.equal(guard.fileRefusal('read', ['/app/config.yaml'])?.code, 'EACCES');
    assert.equal(guard.fileRefusal('read', ['/data/orders.db']), null);
    assert.deepEqual(guard.fileRefusal('write', ['/data/orders.db']), { code: 'EACCES', policy: 'shop/rules', rule: 'fs.readOnly: ^/data/' });
    assert.equal(guard.fileRefusal('write', ['/tmp/scratch']), null);
  });

  it('patterns with back-references or named groups keep their meaning beside others', () => {
    const guard = guardOf({ fs: { notFound: ['^/(x)\\1/', '^/(?<d>y)\\k<d>/'], local: ['^/z'] } });
    assert.equal(guard.fileRefusal('read', ['/xx/file'])?.code, 'ENOENT');
    assert.equal(guard.fileRefusal('read', ['/yy/file'])?.code, 'ENOENT');
    assert.equal(guard.fileRefusal('read', ['/xy/file']), null);
    assert.equal(guard.fileRefusal('read', ['/z/file'])?.code, 'EACCES');
  });

  it('block fs-write refuses every change and no read', () => {
    const guard = guardOf({ block: ['fs-write'] });
    assert.equal(guard.fileRefusal('write', ['/tmp/x'])?.rule, 'block: fs-write');
    assert.equal(guard.fileRefusal('read', ['/tmp/x']), null);
  });

  it('env.exclude holds back the names its globs match, and only those', () => {
    const guard = guardOf({ env: { exclude: ['AWS_*', 'DB_PASSWORD'] } });
    const { env, excluded } = guard.filterEnv({ AWS_SECRET: 's', AWS_REGION: 'r', DB_PASSWORD: 'p', DB_HOST: 'h', XAWS_Y: 'x' });
    assert.deepEqual(env, { DB_HOST: 'h', XAWS_Y: 'x' });
    assert.deepEqual(
      excluded.map(({ name, refusal }) => `${name} ${refusal.rule}`),
      ['AWS_SECRET env.exclude: AWS_*', 'AWS_REGION env.exclude: AWS_*', 'DB_PASSWORD env.exclude: DB_PASSWORD'],
    );
  });

  it('no policy refuses nothing', () => {
    assert.equal(SessionGuard.NONE.blocked('steal'), null);
    assert.equal(SessionGuard.NONE.fileRefusal('write', ['/x']), null);
    assert.equal(SessionGuard.NONE.outgoingRefusal({ address: '10.0.0.1', port: 1, names: [] }), null);
    assert.equal(SessionGuard.NONE.admits(headers()), true);
  });
});
