// Outgoing UDP in the layer: the policy, the ops against an in-memory target, and the dgram hooks applied in
// this process against a pretend target that echoes every datagram (nothing leaves loopback).

import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { once } from 'node:events';
import { after, before, describe, it } from 'node:test';
import { PatchRegistry } from '../../src/layer/patches.js';
import { createUdpPolicy } from '../../src/layer/policy.js';
import type { UdpRemote } from '../../src/layer/remote.js';
import { defineUdpHooks } from '../../src/layer/udp/hooks.js';
import { UdpOps, type UdpLookup } from '../../src/layer/udp/ops.js';
import type { Result, UdpDatagram, UdpOpenRequest, UdpOpenResult } from '../../src/protocol/messages.js';
import { layerSettings, ORDERS, ORDERS_IP } from './fixtures/kit.js';

const silentLog = { debug: () => undefined, warn: () => undefined };

/** A target whose twins answer every datagram with the same bytes, from the address it was sent to. */
class EchoingTarget implements UdpRemote {
  readonly opened: Omit<UdpOpenRequest, 'op'>[] = [];
  readonly closed: number[] = [];
  readonly sent: UdpDatagram[] = [];
  failOpen: Result<never> | null = null;
  echo = true;
  private handlers: Parameters<UdpRemote['listen']>[0] | null = null;
  private nextId = 1;
  private readonly peers = new Map<number, { address: string; port: number }>();

  async open(request: Omit<UdpOpenRequest, 'op' | 'socket'>): Promise<Result<UdpOpenResult>> {
    this.opened.push(request);
    await new Promise((resolve) => setTimeout(resolve, 5));
    if (this.failOpen) return this.failOpen;
    const socket = this.nextId++;
    const result: UdpOpenResult = { socket, local: { address: '10.244.0.9', port: 40000 + socket, family: 'IPv4' } };
    if (request.connect) {
      this.peers.set(socket, request.connect);
      result.remote = { ...request.connect, family: 'IPv4' };
    }
    return { ok: true, value: result };
  }
  async close(socket: number) {
    this.closed.push(socket);
    return { ok: true as const, value: {} };
  }
  send(datagram: UdpDatagram): boolean {
    this.sent.push(datagram);
    const connected = this.peers.get(datagram.socket);
    const peer = connected ? { ...connected, family: 'IPv4' as const } : datagram.peer;
    if (this.echo) setImmediate(() => this.handlers?.onDatagram({ socket: datagram.socket, peer, data: datagram.data }));
    return true;
  }
  listen(handlers: Parameters<UdpRemote['listen']>[0]): void {
    this.handlers = handlers;
  }
  loseLink(): void {
    this.handlers?.onLinkLost();
  }
}

const lookupOrders: UdpLookup = async (hostname) => {
  if (hostname === ORDERS) return { address: ORDERS_IP, family: 4 };
  throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' });
};

describe('policy: outgoing UDP', () => {
  it('sends everything but loopback and address-less datagrams remote by default', () => {
    const policy = createUdpPolicy(layerSettings());
    assert.equal(policy.send({ hostname: '10.96.0.10', port: 53 }), 'remote');
    assert.equal(policy.send({ hostname: ORDERS, port: 53 }), 'remote');
    for (const host of ['127.0.0.1', '::1', '0.0.0.0', 'localhost']) assert.equal(policy.send({ hostname: host, port: 53 }), 'local', host);
    assert.equal(policy.send({ port: 53 }), 'local');
  });

  it('keeps everything local with udp off, whatever tcp says', () => {
    const policy = createUdpPolicy(layerSettings({ udp: false }));
    assert.equal(policy.send({ hostname: '10.96.0.10', port: 53 }), 'local');
  });

  it('reads udp:// and protocol-less patterns of the filter, and ignores tcp:// ones', () => {
    const policy = createUdpPolicy(layerSettings({ filter: { local: ['udp://:5353', 'tcp://10.0.0.0/8', '192.168.0.0/16'] } }));
    assert.equal(policy.send({ hostname: '10.1.1.1', port: 5353 }), 'local', 'udp:// port');
    assert.equal(policy.send({ hostname: '10.1.1.1', port: 53 }), 'remote', 'a tcp:// pattern says nothing of UDP');
    assert.equal(policy.send({ hostname: '192.168.1.1', port: 53 }), 'local', 'no protocol: both');
    assert.equal(policy.send({ hostname: ORDERS, port: 53 }), 'resolve-first', 'a subnet decides once the name is resolved');
  });

  it('follows a remote filter: only what it lists leaves from the target', () => {
    const policy = createUdpPolicy(layerSettings({ filter: { remote: ['udp://:53'] } }));
    assert.equal(policy.send({ hostname: '10.96.0.10', port: 53 }), 'remote');
    assert.equal(policy.send({ hostname: '10.96.0.10', port: 123 }), 'local');
  });
});

describe('UdpOps', () => {
  it('opens one twin for datagrams sent before it exists, and delivers replies with the real sender', async () => {
    const target = new EchoingTarget();
    const ops = new UdpOps(target, createUdpPolicy(layerSettings()), lookupOrders);
    const received: unknown[] = [];
    const twin = ops.createTwin(4, (data, rinfo) => received.push({ data: data.toString(), rinfo }));
    await Promise.all([twin.send(Buffer.from('one'), '10.96.0.10', 53), twin.send(Buffer.from('two'), '10.96.0.11', 53)]);
    assert.equal(target.opened.length, 1);
    assert.deepEqual(
      target.sent.map((d) => [d.socket, d.peer.address, Buffer.from(d.data, 'base64').toString()]),
      [
        [1, '10.96.0.10', 'one'],
        [1, '10.96.0.11', 'two'],
      ],
    );
    await new Promise((resolve) => setTimeout(resolve, 10));
    assert.deepEqual(received, [
      { data: 'one', rinfo: { address: '10.96.0.10', family: 'IPv4', port: 53, size: 3 } },
      { data: 'two', rinfo: { address: '10.96.0.11', family: 'IPv4', port: 53, size: 3 } },
    ]);
    twin.close();
    assert.deepEqual(target.closed, [1]);
    await assert.rejects(twin.send(Buffer.from('late'), '10.96.0.10', 53), { code: 'EBADF' });
  });

  it('resolves a name as the app would, then decides again on the address', async () => {
    const ops = new UdpOps(new EchoingTarget(), createUdpPolicy(layerSettings({ filter: { local: [`${ORDERS_IP}/32`] } })), lookupOrders);
    assert.deepEqual(await ops.destination(ORDERS, 53, 4), { route: 'local', address: ORDERS_IP });
    assert.deepEqual(await ops.destination('10.96.0.10', 53, 4), { route: 'remote', address: '10.96.0.10' });
    await assert.rejects(ops.destination('no-such-name', 53, 4), { code: 'ENOTFOUND' });
  });

  it('fails an oversized datagram with EMSGSIZE and a failed open with its native code', async () => {
    const target = new EchoingTarget();
    const ops = new UdpOps(target, createUdpPolicy(layerSettings()), lookupOrders);
    const twin = ops.createTwin(4, () => undefined);
    await assert.rejects(twin.send(Buffer.alloc(70_000), '10.96.0.10', 53), { code: 'EMSGSIZE', syscall: 'send' });
    target.failOpen = { ok: false, error: { code: 'ENETUNREACH', message: 'connect ENETUNREACH 10.96.0.10:53', syscall: 'connect' } };
    await assert.rejects(twin.connect('10.96.0.10', 53), { code: 'ENETUNREACH', syscall: 'connect', address: '10.96.0.10', port: 53 });
    target.failOpen = null;
    assert.deepEqual(await twin.connect('10.96.0.10', 53), { address: '10.96.0.10', port: 53, family: 'IPv4' });
  });

  it('opens a new twin after the intproxy link is lost, keeping a connected peer', async () => {
    const target = new EchoingTarget();
    const ops = new UdpOps(target, createUdpPolicy(layerSettings()), lookupOrders);
    const twin = ops.createTwin(4, () => undefined);
    await twin.connect('10.96.0.10', 53);
    target.loseLink();
    await twin.send(Buffer.from('again'), '10.96.0.10', 53);
    assert.deepEqual(
      target.opened.map((o) => o.connect),
      [
        { address: '10.96.0.10', port: 53 },
        { address: '10.96.0.10', port: 53 },
      ],
    );
  });
});

describe('dgram hooks', () => {
  let target: EchoingTarget;
  let restore: () => void;
  before(() => {
    target = new EchoingTarget();
    const registry = new PatchRegistry();
    defineUdpHooks(registry, { ops: new UdpOps(target, createUdpPolicy(layerSettings()), lookupOrders), log: silentLog });
    restore = registry.apply();
  });
  after(() => restore());

  it('emits the echo as a message with the real peer, binds the socket, and calls back with the size', async () => {
    const socket = dgram.createSocket('udp4');
    try {
      const sent = new Promise<unknown[]>((resolve) => socket.send('hello', 0, 5, 7, '10.96.0.20', (...args) => resolve(args)));
      const [message, rinfo] = (await once(socket, 'message')) as [Buffer, dgram.RemoteInfo];
      assert.deepEqual(await sent, [null, 5]);
      assert.equal(message.toString(), 'hello');
      assert.deepEqual(rinfo, { address: '10.96.0.20', family: 'IPv4', port: 7, size: 5 });
      assert.ok(socket.address().port > 0);
    } finally {
      socket.close();
    }
  });

  it('follows connected-socket semantics for a remote connect', async () => {
    const socket = dgram.createSocket('udp4');
    try {
      assert.throws(() => socket.remoteAddress(), { code: 'ERR_SOCKET_DGRAM_NOT_CONNECTED' });
      await new Promise<void>((resolve, reject) => socket.connect(7, ORDERS, (error?: Error) => (error ? reject(error) : resolve())));
      assert.deepEqual(socket.remoteAddress(), { address: ORDERS_IP, port: 7, family: 'IPv4' });
      assert.throws(() => socket.send('x', 0, 1, 7, ORDERS_IP), { code: 'ERR_SOCKET_DGRAM_IS_CONNECTED' });
      assert.throws(() => socket.connect(7, ORDERS_IP), { code: 'ERR_SOCKET_DGRAM_IS_CONNECTED' });
      socket.send(Buffer.from('via-connect'));
      const [message, rinfo] = (await once(socket, 'message')) as [Buffer, dgram.RemoteInfo];
      assert.equal(message.toString(), 'via-connect');
      assert.equal(rinfo.address, ORDERS_IP);
      socket.disconnect();
      assert.throws(() => socket.remoteAddress(), { code: 'ERR_SOCKET_DGRAM_NOT_CONNECTED' });
    } finally {
      socket.close();
    }
  });

  it('leaves loopback datagrams to the kernel', async () => {
    const server = dgram.createSocket('udp4');
    const client = dgram.createSocket('udp4');
    try {
      await new Promise<void>((resolve) => server.bind(0, '127.0.0.1', resolve));
      const sentBefore = target.sent.length;
      client.send('local', server.address().port, '127.0.0.1');
      const [message] = (await once(server, 'message')) as [Buffer];
      assert.equal(message.toString(), 'local');
      assert.equal(target.sent.length, sentBefore);
    } finally {
      server.close();
      client.close();
    }
  });
});
