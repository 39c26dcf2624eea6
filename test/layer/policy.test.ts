// The layer's decisions, without patching anything: the policy, the net and dns ops against a pretend target,
// and the error builders against errors Node really produced on loopback.

import assert from 'node:assert/strict';
import dns from 'node:dns';
import { once } from 'node:events';
import net from 'node:net';
import { describe, it } from 'node:test';
import { DnsOps, orderAddresses, parseLookupArguments } from '../../src/layer/dns/ops.js';
import { connectError, getaddrinfoError, queryError, uvErrno } from '../../src/layer/errors.js';
import { NetOps, peerAddressOf } from '../../src/layer/net/ops.js';
import { createPolicy, isLoopbackAddress, isPackageManagerCli } from '../../src/layer/policy.js';
import { layerSettings, ORDERS, ORDERS_IP, ORDERS_IP6 } from './fixtures/kit.js';
import { TestRemote } from './fixtures/test-remote.js';

describe('policy: outgoing connections', () => {
  it('sends everything but loopback remote by default', () => {
    const policy = createPolicy(layerSettings());
    assert.equal(policy.connect({ hostname: ORDERS, port: 80 }), 'remote');
    assert.equal(policy.connect({ hostname: '10.0.0.1', port: 80 }), 'remote');
    for (const host of ['127.0.0.1', '127.1.2.3', '::1', '0.0.0.0', '::', '::ffff:127.0.0.1', 'localhost', 'LocalHost.']) {
      assert.equal(policy.connect({ hostname: host, port: 80 }), 'local', host);
    }
  });

  it('sends loopback remote too when ignoreLocalhost is false', () => {
    const policy = createPolicy(layerSettings({ ignoreLocalhost: false }));
    assert.equal(policy.connect({ hostname: '127.0.0.1', port: 5432 }), 'remote');
    assert.equal(policy.connect({ hostname: 'localhost', port: 5432 }), 'remote');
  });

  it('keeps everything local with tcp off', () => {
    const policy = createPolicy(layerSettings({ tcp: false }));
    assert.equal(policy.connect({ hostname: ORDERS, port: 80 }), 'local');
    assert.equal(policy.connect({ hostname: '10.0.0.1', port: 80 }), 'local');
  });

  it('follows a local filter: listed local, the rest remote', () => {
    const policy = createPolicy(layerSettings({ filter: { local: ['*.internal.example', '10.1.0.0/16', ':6379', 'udp://10.9.0.0/16'] } }));
    assert.equal(policy.connect({ hostname: 'db.internal.example', port: 5432 }), 'local', 'wildcard name');
    assert.equal(policy.connect({ hostname: '10.1.4.4', port: 80 }), 'local', 'subnet');
    assert.equal(policy.connect({ hostname: ORDERS, port: 6379 }), 'local', 'port');
    assert.equal(policy.connect({ hostname: '10.9.1.1', port: 80 }), 'remote', 'a udp pattern says nothing about tcp');
    assert.equal(policy.connect({ hostname: '10.2.0.1', port: 80 }), 'remote');
    assert.equal(policy.connect({ hostname: ORDERS, port: 80 }), 'resolve-first', 'a name could be in the subnet');
    assert.equal(policy.connect({ hostname: ORDERS, address: '10.1.0.9', port: 80 }), 'local');
    assert.equal(policy.connect({ hostname: ORDERS, address: ORDERS_IP, port: 80 }), 'remote');
  });

  it('follows a remote filter: listed remote, the rest local', () => {
    const policy = createPolicy(layerSettings({ filter: { remote: [ORDERS, '10.96.0.0/16:443'] } }));
    assert.equal(policy.connect({ hostname: ORDERS, port: 1234 }), 'remote');
    assert.equal(policy.connect({ hostname: '10.96.1.1', port: 443 }), 'remote');
    assert.equal(policy.connect({ hostname: '10.96.1.1', port: 80 }), 'local');
    assert.equal(policy.connect({ hostname: 'api.example.com', port: 80 }), 'local', 'the subnet pattern needs port 443');
    assert.equal(policy.connect({ hostname: 'api.example.com', port: 443 }), 'resolve-first');
    assert.equal(policy.connect({ hostname: '127.0.0.1', port: 443 }), 'local');
  });

  it('treats an empty list as no filter', () => {
    assert.equal(createPolicy(layerSettings({ filter: { local: [] } })).connect({ hostname: ORDERS, port: 80 }), 'remote');
  });

  it('recognises loopback addresses', () => {
    for (const address of ['127.0.0.1', '127.255.255.254', '::1', '0:0:0:0:0:0:0:1', '::ffff:127.0.0.2']) assert.ok(isLoopbackAddress(address), address);
    for (const address of ['10.0.0.1', '::2', 'fe80::1', '128.0.0.1', 'localhost']) assert.ok(!isLoopbackAddress(address), address);
  });
});

describe('policy: DNS', () => {
  it('resolves names in the target, localhost and IP literals here', () => {
    const policy = createPolicy(layerSettings());
    assert.equal(policy.lookup(ORDERS), 'remote');
    assert.equal(policy.lookup('localhost'), 'local');
    assert.equal(policy.lookup('10.0.0.1'), 'local');
    assert.equal(policy.lookup('fd00::1'), 'local');
    assert.equal(policy.queries, 'remote');
  });

  it('keeps all DNS local when disabled', () => {
    const policy = createPolicy(layerSettings({ dns: false }));
    assert.equal(policy.lookup(ORDERS), 'local');
    assert.equal(policy.queries, 'local');
  });
});

describe('policy: npm and npx themselves', () => {
  it('are recognised by their script, or by a shim linking to it', () => {
    const link = (target: string) => () => target;
    assert.equal(isPackageManagerCli('/usr/lib/node_modules/npm/bin/npm-cli.js'), true);
    assert.equal(isPackageManagerCli('/usr/bin/npx', link('/usr/lib/node_modules/npm/bin/npx-cli.js')), true);
    assert.equal(isPackageManagerCli('/usr/bin/npm', link('/home/me/my-npm-wrapper.js')), false);
    assert.equal(isPackageManagerCli('/srv/app/npm-helper.js'), false);
  });
});

describe('net ops', () => {
  const remote = () => new TestRemote().host(ORDERS, [ORDERS_IP, ORDERS_IP6]).route(ORDERS_IP, 80, 1111).route(ORDERS_IP6, 80, 2222);
  const noLocalDns = async () => assert.fail('local DNS must not be asked');

  it('connects by name and reports what the name resolved to', async () => {
    const target = remote();
    const ops = new NetOps(target, createPolicy(layerSettings()), noLocalDns);
    const outcome = await ops.connect({ host: ORDERS, port: 80, family: 0 });
    assert.equal(outcome.kind, 'remote');
    assert.deepEqual(outcome.kind === 'remote' && outcome.resolved, { address: ORDERS_IP, family: 4 });
    assert.deepEqual(target.calls, [{ op: 'connect', host: ORDERS, port: 80 }], 'the agent resolves the name');
  });

  it('resolves first in the family the app asked for', async () => {
    const target = remote();
    const ops = new NetOps(target, createPolicy(layerSettings()), noLocalDns);
    const outcome = await ops.connect({ host: ORDERS, port: 80, family: 6 });
    assert.equal(outcome.kind === 'remote' && outcome.result.proxyPort, 2222);
    assert.deepEqual(target.calls, [
      { op: 'getaddrinfo', host: ORDERS, family: 6 },
      { op: 'connect', host: ORDERS_IP6, port: 80 },
    ]);
  });

  it('resolves with the local resolver when DNS stays local', async () => {
    const target = remote();
    const asked: string[] = [];
    const ops = new NetOps(target, createPolicy(layerSettings({ dns: false })), async (host) => {
      asked.push(host);
      return [{ address: ORDERS_IP, family: 4 }];
    });
    const outcome = await ops.connect({ host: ORDERS, port: 80, family: 0 });
    assert.equal(outcome.kind, 'remote');
    assert.deepEqual(asked, [ORDERS]);
    assert.deepEqual(target.calls, [{ op: 'connect', host: ORDERS_IP, port: 80 }]);
  });

  it('turns local once a subnet filter sees the address', async () => {
    const target = new TestRemote().host('cache.test', ['10.1.0.5']);
    const ops = new NetOps(target, createPolicy(layerSettings({ filter: { local: ['10.1.0.0/16'] } })), noLocalDns);
    assert.equal(ops.route({ host: 'cache.test', port: 6379, family: 0 }), 'remote');
    assert.deepEqual(await ops.connect({ host: 'cache.test', port: 6379, family: 0 }), { kind: 'local' });
    assert.deepEqual(target.callsOf('connect'), []);
  });

  it('maps failures to the errors Node gives, at the stage Node gives them', async () => {
    const ops = new NetOps(remote(), createPolicy(layerSettings()), noLocalDns);
    const missing = await ops.connect({ host: 'missing.test', port: 80, family: 0 });
    assert.equal(missing.kind === 'failed' && missing.stage, 'lookup');
    assert.equal(missing.kind === 'failed' && missing.error.message, 'getaddrinfo ENOTFOUND missing.test');
    const refused = await ops.connect({ host: ORDERS, port: 81, family: 0 });
    assert.equal(refused.kind === 'failed' && refused.stage, 'connect');
    assert.equal(refused.kind === 'failed' && refused.error.message, `connect ECONNREFUSED ${ORDERS_IP}:81`);
    assert.deepEqual(refused.kind === 'failed' && refused.resolved, { address: ORDERS_IP, family: 4 });
  });

  it('reports a session failure as a failed connect, not an exception', async () => {
    const broken = new TestRemote();
    broken.connect = async () => {
      throw new Error('intproxy gone');
    };
    const warnings: string[] = [];
    const ops = new NetOps(broken, createPolicy(layerSettings()), noLocalDns, (message) => warnings.push(message));
    const outcome = await ops.connect({ host: '10.0.0.1', port: 80, family: 0 });
    assert.equal(outcome.kind === 'failed' && outcome.error.code, 'ECONNABORTED');
    assert.equal(warnings.length, 1);
  });

  it('finds the failed peer in a remote failure', () => {
    assert.equal(peerAddressOf({ code: 'ECONNREFUSED', message: 'connect ECONNREFUSED 10.0.0.2:80' }), '10.0.0.2');
    assert.equal(peerAddressOf({ code: 'ECONNREFUSED', message: 'connect ECONNREFUSED fd00::2:80' }), 'fd00::2');
    assert.equal(peerAddressOf({ code: 'ECONNREFUSED', message: 'refused', address: '10.0.0.3' } as never), '10.0.0.3');
    assert.equal(peerAddressOf({ code: 'ECONNREFUSED', message: 'connect ECONNREFUSED db:80' }), undefined);
  });
});

describe('dns filter', () => {
  it('names in the local list resolve locally, all others on the target', () => {
    const policy = createPolicy(layerSettings({ dnsFilter: { local: ['*.corp.example', 'localonly.test:53'] } }));
    assert.equal(policy.lookup('db.corp.example'), 'local');
    assert.equal(policy.lookup('localonly.test'), 'local');
    assert.equal(policy.lookup('orders-api'), 'remote');
  });

  it('with a remote list, only the listed names resolve on the target', () => {
    const policy = createPolicy(layerSettings({ dnsFilter: { remote: ['*.svc.cluster.local', 'orders-api'] } }));
    assert.equal(policy.lookup('orders-api'), 'remote');
    assert.equal(policy.lookup('postgres.shop.svc.cluster.local'), 'remote');
    assert.equal(policy.lookup('registry.npmjs.org'), 'local');
  });

  it('an IP or subnet pattern names no host, so it does not decide lookups', () => {
    const policy = createPolicy(layerSettings({ dnsFilter: { local: ['10.0.0.0/8'] } }));
    assert.equal(policy.lookup('orders-api'), 'remote');
  });
});

describe('dns ops', () => {
  it('parses lookup arguments as Node does, and leaves to Node what it answers or rejects itself', () => {
    const done = () => {};
    assert.deepEqual(parseLookupArguments(ORDERS, done, undefined, true)?.request, { hostname: ORDERS, family: 0, all: false, order: null });
    assert.deepEqual(parseLookupArguments(ORDERS, 6, done, true)?.request, { hostname: ORDERS, family: 6, all: false, order: null });
    assert.deepEqual(parseLookupArguments(ORDERS, { family: 'IPv4', all: true, verbatim: false }, done, true)?.request, {
      hostname: ORDERS,
      family: 4,
      all: true,
      order: 'ipv4first',
    });
    assert.deepEqual(parseLookupArguments(ORDERS, { hints: dns.ADDRCONFIG | dns.V4MAPPED, order: 'ipv6first' }, undefined, false)?.request, {
      hostname: ORDERS,
      family: 0,
      all: false,
      order: 'ipv6first',
    });
    assert.equal(parseLookupArguments('', done, undefined, true), null, 'empty name: Node answers');
    assert.equal(parseLookupArguments(ORDERS, 5, done, true), null, 'bad family: Node throws');
    assert.equal(parseLookupArguments(ORDERS, { hints: 0xfffff }, done, true), null, 'bad hints: Node throws');
    assert.equal(parseLookupArguments(ORDERS, { family: 'IPv4' }, undefined, false), null, 'promises: no family names');
    assert.equal(parseLookupArguments(ORDERS, {}, undefined, true), null, 'no callback: Node throws');
  });

  it('orders addresses as asked', () => {
    const mixed = [
      { address: ORDERS_IP6, family: 6 as const },
      { address: ORDERS_IP, family: 4 as const },
    ];
    assert.deepEqual(orderAddresses(mixed, 'verbatim'), mixed);
    assert.deepEqual(orderAddresses(mixed, 'ipv4first'), [mixed[1], mixed[0]]);
    assert.deepEqual(orderAddresses([...mixed].reverse(), 'ipv6first'), mixed);
  });

  it('answers lookups and queries from the target, with Node-shaped errors', async () => {
    const target = new TestRemote({ hosts: { [ORDERS]: [ORDERS_IP] }, records: { [`${ORDERS} TXT`]: [['a']] } });
    const ops = new DnsOps(target, createPolicy(layerSettings()), () => 'verbatim');
    assert.deepEqual(await ops.lookup({ hostname: ORDERS, family: 0, all: false, order: null }), [{ address: ORDERS_IP, family: 4 }]);
    await assert.rejects(ops.lookup({ hostname: ORDERS, family: 6, all: false, order: null }), { code: 'ENOTFOUND', syscall: 'getaddrinfo', hostname: ORDERS });
    assert.deepEqual(await ops.query('resolveTxt', ORDERS, false), [['a']]);
    await assert.rejects(ops.query('resolveMx', ORDERS, false), { code: 'ENOTFOUND', syscall: 'queryMx', hostname: ORDERS, errno: undefined });
    await assert.rejects(ops.reverse('10.0.0.1'), { code: 'ENOTFOUND', syscall: 'getHostByAddr', hostname: '10.0.0.1' });
  });
});

describe('errors', () => {
  it('match a real ECONNREFUSED from loopback field by field', async () => {
    const server = net.createServer().listen(0, '127.0.0.1');
    await once(server, 'listening');
    const { port } = server.address() as net.AddressInfo;
    await new Promise((resolve) => server.close(resolve));
    const socket = net.connect(port, '127.0.0.1');
    const [native] = (await once(socket, 'error').catch((error: unknown) => [error])) as [NodeJS.ErrnoException];
    const built = connectError('ECONNREFUSED', '127.0.0.1', port);
    assert.deepEqual(Object.keys(built), Object.keys(native));
    assert.deepEqual({ ...built, message: built.message }, { ...native, message: native.message });
  });

  it('use the errno numbers of this Node', () => {
    assert.equal(uvErrno('ENOTFOUND'), -3008);
    assert.equal(uvErrno('EAI_AGAIN'), -3001);
    assert.equal(uvErrno('ECONNREFUSED'), -111);
    assert.equal(uvErrno('REMOCAL_SOMETHING'), undefined);
    assert.equal(getaddrinfoError('EAI_NODATA', 'x').code, 'ENOTFOUND');
    assert.deepEqual(Object.keys(queryError('ESERVFAIL', 'queryA', 'x')), ['errno', 'code', 'syscall', 'hostname']);
  });
});
