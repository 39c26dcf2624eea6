// Outgoing UDP under `remocal exec` against the fixture pod: the app's own dgram sockets send from the pod and
// get the pod's answers, with the real peer as rinfo. Every datagram goes to the pod's addresses or to loopback,
// and every wait is bounded.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Pod } from '../../src/fixture/pod.js';
import { join } from 'node:path';
import { lastJson, repoRoot, runRemocal, startPodWithApp, stopPodWithApp } from '../helpers/remocal.js';

let pod: Pod;
let app: { dir: string; remove: () => void };

const APP = String.raw`
import dgram from 'node:dgram';
import { createRequire } from 'node:module';
// The app lives in a temporary directory: it borrows remocal's own dns-packet.
const dnsPacket = createRequire(${JSON.stringify(join(repoRoot, 'package.json'))})('dns-packet');
const [mode, ...args] = process.argv.slice(2);
const out = (value) => { process.stdout.write(JSON.stringify(value) + '\n'); };
const errorFields = (e) => ({ error: true, code: e.code, syscall: e.syscall, address: e.address, port: e.port, text: e.message });
// Resolves with the first reply, an error, or { timeout: true } after ms: a datagram may simply get no answer.
function exchange(socket, send, ms = 3000) {
  return new Promise((resolve) => {
    const timer = setTimeout(() => { socket.close(); resolve({ timeout: true }); }, ms);
    socket.on('error', (e) => { clearTimeout(timer); socket.close(); resolve(errorFields(e)); });
    socket.on('message', (message, rinfo) => { clearTimeout(timer); const local = socket.address(); socket.close(); resolve({ message, rinfo, local }); });
    send((error) => { if (error) { clearTimeout(timer); socket.close(); resolve(errorFields(error)); } });
  });
}
switch (mode) {
  case 'echo': {
    const socket = dgram.createSocket('udp4');
    const seen = await exchange(socket, (cb) => socket.send('ping-over-udp', Number(args[1]), args[0], cb));
    out(seen.message ? { data: seen.message.toString(), rinfo: seen.rinfo, localPort: seen.local.port } : seen);
    break;
  }
  case 'connected-echo': {
    const socket = dgram.createSocket('udp4');
    const seen = await exchange(socket, (cb) => socket.connect(Number(args[1]), args[0], (error) => {
      if (error) return cb(error);
      socket.peer = socket.remoteAddress();
      socket.send(Buffer.from('xxconnectedxx'), 2, 9, cb);
    }));
    out(seen.message ? { data: seen.message.toString(), rinfo: seen.rinfo, peer: socket.peer } : seen);
    break;
  }
  case 'dns': {
    const socket = dgram.createSocket('udp4');
    const query = dnsPacket.encode({ type: 'query', id: 4242, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'A', name: args[0] }] });
    const seen = await exchange(socket, (cb) => socket.send(query, 0, query.length, 53, args[1], cb));
    if (!seen.message) { out(seen); break; }
    const answer = dnsPacket.decode(seen.message);
    out({ id: answer.id, answers: answer.answers.map((a) => ({ name: a.name, type: a.type, data: a.data })), rinfo: seen.rinfo });
    break;
  }
  case 'loopback': {
    const server = dgram.createSocket('udp4');
    server.on('message', (message, rinfo) => server.send(Buffer.concat([Buffer.from('local:'), message]), rinfo.port, rinfo.address));
    await new Promise((resolve) => server.bind(0, '127.0.0.1', resolve));
    const client = dgram.createSocket('udp4');
    const seen = await exchange(client, (cb) => client.send('hi', server.address().port, '127.0.0.1', cb));
    server.close();
    out(seen.message ? { data: seen.message.toString(), rinfo: seen.rinfo } : seen);
    break;
  }
}
`;

before(async () => {
  ({ pod, app } = await startPodWithApp({ 'app.mjs': APP }));
});

after(() => stopPodWithApp(pod, app));

function exec(args: string[], env: Record<string, string> = {}) {
  return runRemocal(['exec', '-q', '-t', `pid/${pod.pid}`, '--', process.execPath, 'app.mjs', ...args], { cwd: app.dir, env });
}

describe('outgoing UDP under remocal exec', () => {
  it("sends a datagram from the pod and gets the echo with the real peer as rinfo", async () => {
    const result = await exec(['echo', pod.serviceIps.api, String(pod.ports.echo)]);
    assert.equal(result.code, 0, result.stderr);
    const seen = lastJson<Record<string, any>>(result);
    assert.equal(seen.data, 'ping-over-udp');
    assert.deepEqual(seen.rinfo, { address: pod.serviceIps.api, family: 'IPv4', port: pod.ports.echo, size: 13 });
    assert.ok(seen.localPort > 0, 'the app socket is bound, as on a first send');
  });

  it('connects a dgram socket to the pod: remoteAddress() names the real peer, and send needs no address', async () => {
    const result = await exec(['connected-echo', pod.serviceIps.api, String(pod.ports.echo)]);
    assert.equal(result.code, 0, result.stderr);
    const seen = lastJson<Record<string, any>>(result);
    assert.equal(seen.data, 'connected');
    assert.deepEqual(seen.peer, { address: pod.serviceIps.api, family: 'IPv4', port: pod.ports.echo });
    assert.equal(seen.rinfo.address, pod.serviceIps.api);
  });

  it("answers the app's own DNS client (dns-packet over dgram) from the pod's nameserver", async () => {
    const before = pod.dnsQueries.length;
    const result = await exec(['dns', pod.names.apiFqdn, pod.serviceIps.dns]);
    assert.equal(result.code, 0, result.stderr);
    const seen = lastJson<Record<string, any>>(result);
    assert.equal(seen.id, 4242);
    assert.deepEqual(seen.answers.map((a: { type: string; data: string }) => [a.type, a.data]), [['A', pod.serviceIps.api]]);
    assert.equal(seen.rinfo.address, pod.serviceIps.dns);
    assert.equal(seen.rinfo.port, 53);
    const asked = pod.dnsQueries.slice(before);
    assert.ok(asked.some((query) => query.name === pod.names.apiFqdn && query.transport === 'udp'), 'the pod DNS server saw the query over UDP');
  });

  it('keeps a loopback exchange local', async () => {
    const result = await exec(['loopback']);
    assert.equal(result.code, 0, result.stderr);
    const seen = lastJson<Record<string, any>>(result);
    assert.equal(seen.data, 'local:hi');
    assert.equal(seen.rinfo.address, '127.0.0.1');
  });

  it('keeps every datagram local with outgoing.udp false: the pod-only address is then out of reach', async () => {
    const result = await exec(['echo', pod.serviceIps.api, String(pod.ports.echo)], { REMOCAL_FEATURE_NETWORK_OUTGOING_UDP: 'false' });
    assert.equal(result.code, 0, result.stderr);
    const seen = lastJson<Record<string, any>>(result);
    assert.equal(seen.data, undefined, 'no echo may come back');
    assert.ok(seen.timeout === true || seen.error === true, JSON.stringify(seen));
  });
});
