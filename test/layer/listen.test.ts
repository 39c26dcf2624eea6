// The listen hook: its decisions without patching anything (policy, argument parsing, ops), then the
// "listen" scenarios (test/layer/fixtures/listen-scenarios.ts) in a child process each, on Node 20, 22 and 24.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { connectableAddress, IncomingOps, parseListenArguments } from '../../src/layer/incoming/ops.js';
import { createPolicy, isUnspecifiedAddress } from '../../src/layer/policy.js';
import { layerSettings } from './fixtures/kit.js';
import { scenarioSuites } from './fixtures/main.js';
import { TestRemote } from './fixtures/test-remote.js';
import { nodeBinaries, runScenario } from './helpers.js';

describe('policy: listening', () => {
  it('subscribes the asked port, after portMapping', () => {
    const policy = createPolicy(layerSettings({ incoming: { portMapping: [[3000, 80]] } }));
    assert.equal(policy.subscribePort({ port: 3000, address: '0.0.0.0' }), 80);
    assert.equal(policy.subscribePort({ port: 4000, address: '::' }), 4000);
    assert.equal(policy.subscribePort({ port: 4000, address: '10.1.2.3' }), 4000);
  });

  it('binds listenPorts instead of the asked port, never for port 0', () => {
    const policy = createPolicy(layerSettings({ incoming: { listenPorts: [[80, 8080]] } }));
    assert.equal(policy.listenPort(80), 8080);
    assert.equal(policy.listenPort(81), 81);
    assert.equal(policy.listenPort(0), 0);
  });

  it('leaves out ignorePorts, ports not in `ports`, and loopback with ignoreLocalhost', () => {
    assert.equal(createPolicy(layerSettings({ incoming: { ignorePorts: [9229] } })).subscribePort({ port: 9229, address: '0.0.0.0' }), null);
    const only = createPolicy(layerSettings({ incoming: { ports: [80] } }));
    assert.equal(only.subscribePort({ port: 80, address: '0.0.0.0' }), 80);
    assert.equal(only.subscribePort({ port: 81, address: '0.0.0.0' }), null);
    const local = createPolicy(layerSettings({ incoming: { ignoreLocalhost: true } }));
    for (const address of ['127.0.0.1', '127.0.0.2', '::1', '::ffff:127.0.0.1']) assert.equal(local.subscribePort({ port: 80, address }), null, address);
    for (const address of ['0.0.0.0', '::', '10.0.0.1']) assert.equal(local.subscribePort({ port: 80, address }), 80, address);
    const all = createPolicy(layerSettings({ incoming: { ignoreLocalhost: false } }));
    assert.equal(all.subscribePort({ port: 80, address: '127.0.0.1' }), 80);
  });

  it('does nothing with incoming off', () => {
    const policy = createPolicy(layerSettings({ incoming: { mode: 'off', listenPorts: [[80, 8080]] } }));
    assert.equal(policy.listenPort(80), 80);
    assert.equal(policy.subscribePort({ port: 80, address: '0.0.0.0' }), null);
  });

  it('knows the unspecified addresses', () => {
    for (const address of ['0.0.0.0', '::', '0:0:0:0:0:0:0:0', '::ffff:0.0.0.0']) assert.ok(isUnspecifiedAddress(address), address);
    for (const address of ['127.0.0.1', '::1', '10.0.0.1', 'fe80::1']) assert.ok(!isUnspecifiedAddress(address), address);
  });
});

describe('listen arguments', () => {
  const cb = () => {};
  const tcp = (args: unknown[]) => {
    const request = parseListenArguments(args);
    assert.equal(request.kind, 'tcp', JSON.stringify(args));
    return request as Extract<typeof request, { kind: 'tcp' }>;
  };

  it('reads every TCP form as Node does', () => {
    assert.deepEqual(
      [
        [],
        [cb],
        [null],
        [3000],
        ['3000'],
        [3000, '127.0.0.1', 10, cb],
        [{ port: 3000, host: '::', ipv6Only: true }],
        [{ port: undefined }],
        [{ port: null, host: 'localhost' }, cb],
      ].map((args) => {
        const { port, host, ipv6Only } = tcp(args);
        return { port, host, ipv6Only };
      }),
      [
        { port: 0, host: undefined, ipv6Only: false },
        { port: 0, host: undefined, ipv6Only: false },
        { port: 0, host: undefined, ipv6Only: false },
        { port: 3000, host: undefined, ipv6Only: false },
        { port: 3000, host: undefined, ipv6Only: false },
        { port: 3000, host: '127.0.0.1', ipv6Only: false },
        { port: 3000, host: '::', ipv6Only: true },
        { port: 0, host: undefined, ipv6Only: false },
        { port: 0, host: 'localhost', ipv6Only: false },
      ],
    );
  });

  it('leaves paths, handles, file descriptors and invalid ports to Node', () => {
    for (const args of [['/tmp/app.sock'], [{ path: '/tmp/app.sock' }], [{ fd: 3 }], [{ handle: {} }], [{ _handle: {} }], [-1], [70000], ['  '], [{}], [{ port: 1.5 }]]) {
      assert.equal(parseListenArguments(args).kind, 'untouched', JSON.stringify(args));
    }
  });

  it('rewrites only the port, and drops the callback for a second attempt', () => {
    const options = { port: 3000, host: '127.0.0.1', backlog: 5 };
    assert.deepEqual(tcp([options, cb]).withPort(4000, true), [{ ...options, port: 4000 }, cb]);
    assert.deepEqual(tcp([options, cb]).withPort(0, false), [{ ...options, port: 0 }]);
    assert.equal(options.port, 3000, "the app's options object is not changed");
    assert.deepEqual(tcp(['3000', 'localhost', 7, cb]).withPort(0, false), [0, 'localhost', 7]);
    assert.deepEqual(tcp([cb]).withPort(5, true), [5, cb]);
  });
});

describe('incoming ops', () => {
  const ops = new IncomingOps(new TestRemote(), createPolicy(layerSettings()), () => {});

  it('retries a taken port on a free one, and nothing else', () => {
    assert.equal(ops.retryPort({ code: 'EADDRINUSE', syscall: 'listen' }, 3000), 0);
    assert.equal(ops.retryPort({ code: 'EADDRINUSE', syscall: 'listen' }, 0), null);
    assert.equal(ops.retryPort({ code: 'EACCES', syscall: 'listen' }, 80), null);
    assert.equal(ops.retryPort(new Error('boom'), 3000), null);
  });

  it('reports the asked port only when the real one differs', () => {
    assert.equal(ops.reportedPort({ asked: 3000, port: 41000, address: '::', ipv6Only: false }), 3000);
    assert.equal(ops.reportedPort({ asked: 3000, port: 3000, address: '::', ipv6Only: false }), null);
    assert.equal(ops.reportedPort({ asked: 0, port: 41000, address: '::', ipv6Only: false }), null);
  });

  it('connects to loopback for a server on every interface', () => {
    assert.equal(connectableAddress('0.0.0.0', false), '127.0.0.1');
    assert.equal(connectableAddress('::', false), '127.0.0.1');
    assert.equal(connectableAddress('::', true), '::1');
    assert.equal(connectableAddress('', false), '127.0.0.1');
    assert.equal(connectableAddress('10.0.0.7', false), '10.0.0.7');
    assert.equal(connectableAddress('fe80::1%eth0', false), 'fe80::1');
  });
});

const suite = 'listen';

for (const node of nodeBinaries()) {
  describe(`layer listen on Node ${node.version}`, () => {
    for (const name of Object.keys(scenarioSuites[suite]!)) {
      it(name, () => runScenario(node, suite, name));
    }
  });
}
