// `remocal exec` against the fixture pod: a Node app run on the host sees the pod's environment, DNS and
// network. Every connection the app makes goes to the pod's own addresses or to loopback.

import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { Pod } from '../../src/fixture/pod.js';
import { lastJson, runRemocal, startPodWithApp, stopPodWithApp } from '../helpers/remocal.js';

let pod: Pod;
let app: { dir: string; remove: () => void };

const APP = String.raw`
import dns from 'node:dns';
import http from 'node:http';
import net from 'node:net';
import { execFile } from 'node:child_process';
const [mode, ...args] = process.argv.slice(2);
const out = (value) => { process.stdout.write(JSON.stringify(value) + '\n'); };
const errorFields = (e) => ({ code: e.code, errno: e.errno, syscall: e.syscall, address: e.address, port: e.port, hostname: e.hostname, message: e.message });
function get(url) {
  return new Promise((resolve, reject) => {
    http.get(url, (res) => { const peer = res.socket.remoteAddress; let body = ''; res.setEncoding('utf8'); res.on('data', (c) => body += c); res.on('end', () => resolve({ status: res.statusCode, body: JSON.parse(body), peer })); }).on('error', reject);
  });
}
function rawEcho(host, port) {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port });
    // Written before the connection exists: must still be delivered.
    socket.write('early-');
    socket.end('bytes');
    let data = '';
    socket.setEncoding('utf8');
    socket.on('data', (c) => data += c);
    socket.on('connect', () => { socket.peer = { address: socket.remoteAddress, port: socket.remotePort, family: socket.remoteFamily, local: socket.localAddress }; });
    socket.on('close', () => resolve({ data, ...socket.peer }));
    socket.on('error', reject);
  });
}
function connectError(host, port) {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    socket.on('connect', () => { socket.destroy(); resolve({ connected: true }); });
    socket.on('error', (e) => resolve(errorFields(e)));
  });
}
switch (mode) {
  case 'env': out({ greeting: process.env.GREETING, database: process.env.DATABASE_URL, path: process.env.PATH, pod: process.env.POD_NAME, home: process.env.HOME }); break;
  case 'dns': {
    const short = await dns.promises.lookup(args[0]);
    const hostsOnly = await dns.promises.lookup(args[1]);
    const all = await dns.promises.lookup(args[0], { all: true });
    const resolved = await dns.promises.resolve4(args[2]);
    const local = await dns.promises.lookup('localhost');
    out({ short, hostsOnly, all, resolved, local });
    break;
  }
  case 'http': out(await get(args[0])); break;
  case 'fetch': { const res = await fetch(args[0]); out({ status: res.status, body: await res.json() }); break; }
  case 'raw': out(await rawEcho(args[0], Number(args[1]))); break;
  case 'error': out(await connectError(args[0], Number(args[1]))); break;
  case 'lookup-error': dns.lookup(args[0], (e) => out(e ? errorFields(e) : { found: true })); break;
  case 'child': execFile(process.execPath, [process.argv[1], 'http', args[0]], (e, stdout) => { if (e) throw e; process.stdout.write(stdout); }); break;
  case 'peer': { const socket = net.connect({ host: args[0], port: Number(args[1]) }); let data = ''; socket.setEncoding('utf8'); socket.on('data', (c) => data += c); socket.on('end', () => out({ seenAs: data })); socket.on('error', (e) => out(errorFields(e))); break; }
}
`;

before(async () => {
  ({ pod, app } = await startPodWithApp({ 'app.mjs': APP }));
});

after(() => stopPodWithApp(pod, app));

function exec(args: string[], extra: string[] = []) {
  return runRemocal(['exec', '-q', '-t', `pid/${pod.pid}`, ...extra, '--', process.execPath, 'app.mjs', ...args], { cwd: app.dir });
}

describe('remocal exec on a local pod', () => {
  it("gives the app the target's environment, keeping the local machine's PATH", async () => {
    const result = await exec(['env']);
    assert.equal(result.code, 0, result.stderr);
    const seen = lastJson(result);
    assert.equal(seen.greeting, pod.env.GREETING);
    assert.equal(seen.database, pod.env.DATABASE_URL);
    assert.equal(seen.pod, pod.env.POD_NAME);
    assert.equal(seen.path, process.env.PATH);
    assert.equal(seen.home, process.env.HOME);
  });

  it("resolves a short name through the pod's search domain, and a name only its /etc/hosts knows", async () => {
    const before = pod.dnsQueries.length;
    const result = await exec(['dns', pod.names.apiName, pod.names.hostsOnlyName, pod.names.apiFqdn]);
    assert.equal(result.code, 0, result.stderr);
    const seen = lastJson<Record<string, any>>(result);
    assert.deepEqual(seen.short, { address: pod.serviceIps.api, family: 4 });
    assert.deepEqual(seen.hostsOnly, { address: pod.serviceIps.hostsOnly, family: 4 });
    assert.deepEqual(seen.all, [{ address: pod.serviceIps.api, family: 4 }]);
    assert.deepEqual(seen.resolved, [pod.serviceIps.api]);
    assert.equal(seen.local.address === '127.0.0.1' || seen.local.address === '::1', true);
    const asked = pod.dnsQueries.slice(before).map((query) => query.name);
    assert.ok(asked.includes(pod.names.apiFqdn), `the pod's DNS server saw ${asked.join(', ')}`);
    assert.ok(!asked.includes(pod.names.hostsOnlyName), 'a hosts-file name must not reach DNS');
  });

  it('reaches the pod-only service with http.get', async () => {
    const result = await exec(['http', `http://${pod.names.apiName}/orders?id=7`]);
    assert.equal(result.code, 0, result.stderr);
    const seen = lastJson<Record<string, any>>(result);
    assert.equal(seen.status, 200);
    assert.equal(seen.body.from, 'orders-api');
    assert.equal(seen.body.path, '/orders?id=7');
    assert.equal(seen.peer, pod.serviceIps.api);
  });

  it('reaches the pod-only service with fetch', async () => {
    const result = await exec(['fetch', `http://${pod.names.apiName}/via-fetch`]);
    assert.equal(result.code, 0, result.stderr);
    const seen = lastJson<Record<string, any>>(result);
    assert.equal(seen.status, 200);
    assert.equal(seen.body.path, '/via-fetch');
  });

  it('delivers writes made before the connection exists, over raw net, and reports the real peer', async () => {
    const result = await exec(['raw', pod.names.apiName, String(pod.ports.echo)]);
    assert.equal(result.code, 0, result.stderr);
    const seen = lastJson(result);
    assert.equal(seen.data, 'early-bytes');
    assert.equal(seen.address, pod.serviceIps.api);
    assert.equal(seen.port, pod.ports.echo);
    assert.equal(seen.family, 'IPv4');
  });

  it('covers a child process started with child_process', async () => {
    const result = await exec(['child', `http://${pod.names.apiName}/from-child`]);
    assert.equal(result.code, 0, result.stderr);
    const seen = lastJson<Record<string, any>>(result);
    assert.equal(seen.body.path, '/from-child');
  });

  it('fails an unknown name with a native ENOTFOUND', async () => {
    const result = await exec(['lookup-error', 'no-such-service']);
    assert.equal(result.code, 0, result.stderr);
    const seen = lastJson(result);
    assert.equal(seen.code, 'ENOTFOUND');
    assert.equal(seen.syscall, 'getaddrinfo');
    assert.equal(seen.hostname, 'no-such-service');
    assert.equal(seen.message, 'getaddrinfo ENOTFOUND no-such-service');
  });

  it('fails a closed port with a native ECONNREFUSED', async () => {
    const result = await exec(['error', pod.serviceIps.api, String(pod.ports.refused)]);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(lastJson(result), {
      code: 'ECONNREFUSED',
      errno: -111,
      syscall: 'connect',
      address: pod.serviceIps.api,
      port: pod.ports.refused,
      message: `connect ECONNREFUSED ${pod.serviceIps.api}:${pod.ports.refused}`,
    });
  });

  it('fails a silent address with a native ETIMEDOUT', async () => {
    const result = await exec(['error', pod.serviceIps.blackhole, '80']);
    assert.equal(result.code, 0, result.stderr);
    const seen = lastJson(result);
    assert.equal(seen.code, 'ETIMEDOUT');
    assert.equal(seen.syscall, 'connect');
    assert.equal(seen.address, pod.serviceIps.blackhole);
  });

  describe('outgoing filter', () => {
    let server: Server;
    let port: number;
    before(async () => {
      // Listens on the host's end of the pod's link: reachable from the host and from inside the pod, and it
      // tells which side a connection came from.
      server = createServer((socket) => socket.end(socket.remoteAddress ?? ''));
      await new Promise<void>((resolve) => server.listen(0, pod.hostIp, resolve));
      port = (server.address() as { port: number }).port;
    });
    after(() => server.close());

    it('connects from the pod by default', async () => {
      const result = await exec(['peer', pod.hostIp, String(port)]);
      assert.equal(result.code, 0, result.stderr);
      assert.equal(lastJson(result).seenAs, pod.ip);
    });

    it('connects from this machine when the address is in outgoing.filter.local', async () => {
      const filter = JSON.stringify({ local: [`${pod.hostIp}:${port}`] });
      const result = await runRemocal(['exec', '-q', '-t', `pid/${pod.pid}`, '--', process.execPath, 'app.mjs', 'peer', pod.hostIp, String(port)], {
        cwd: app.dir,
        env: { REMOCAL_FEATURE_NETWORK_OUTGOING_FILTER: filter },
      });
      assert.equal(result.code, 0, result.stderr);
      assert.equal(lastJson(result).seenAs, pod.hostIp);
    });
  });
});
