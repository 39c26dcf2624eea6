// `remocal port-forward` against the fixture pod: -L opens connections from the pod (its DNS, its loopback),
// -R brings the pod's port to a local server. Traffic goes only to loopback and the pod's own addresses.

import assert from 'node:assert/strict';
import { createServer as createHttpServer, type Server } from 'node:http';
import { after, before, describe, it } from 'node:test';
import type { Pod } from '../../src/fixture/pod.js';
import { runRemocal, startPodWithApp, startRemocal, stopPodWithApp } from '../helpers/remocal.js';
import { waitFor } from '../helpers/processes.js';
import { echoThrough, freePort, httpRequest } from '../helpers/net.js';

let pod: Pod;
let app: { dir: string; remove: () => void };

before(async () => {
  ({ pod, app } = await startPodWithApp({}));
});

after(() => stopPodWithApp(pod, app));

async function forwarding(args: string[]): Promise<{ stderr: () => string; stop: () => Promise<number | null> }> {
  const { child, done } = startRemocal(['port-forward', '-t', `pid/${pod.pid}`, ...args], { timeoutMs: 60_000 });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  await waitFor(() => /press Ctrl-C/.test(stderr) || child.exitCode !== null, 'the forwards to listen', 20_000);
  assert.match(stderr, /press Ctrl-C/, stderr);
  return {
    stderr: () => stderr,
    stop: async () => {
      child.kill('SIGTERM');
      return (await done).code;
    },
  };
}

describe('remocal port-forward', () => {
  it("-L: a local port reaches a service by the name the pod's DNS knows, from the pod", async () => {
    const local = await freePort();
    const forward = await forwarding(['-L', `${local}:${pod.names.dbName}:${pod.ports.db}`]);
    try {
      assert.match(forward.stderr(), new RegExp(`127\\.0\\.0\\.1:${local} → ${pod.names.dbName}:${pod.ports.db}`));
      assert.equal(await echoThrough(local, 'through the pod'), 'through the pod');
      // A second connection on the same forward.
      assert.equal(await echoThrough(local, 'again'), 'again');
    } finally {
      assert.equal(await forward.stop(), 143);
    }
  });

  it("-L localhost:<port> is the pod's own loopback", async () => {
    const local = await freePort();
    const forward = await forwarding(['-L', `${local}:localhost:${pod.ports.target}`]);
    try {
      const before = pod.httpRequests.length;
      const answer = await httpRequest({ host: '127.0.0.1', port: local, path: '/through-port-forward' });
      assert.equal(answer.status, 200);
      // The pod reports each request on its stdout, which may arrive after the answer did.
      const seen = (): string[] => pod.httpRequests.slice(before).map((entry) => JSON.stringify(entry));
      await waitFor(() => seen().some((entry) => entry.includes('/through-port-forward')), `the pod's app to see the request (saw: ${seen().join('\n')})`);
    } finally {
      await forward.stop();
    }
  });

  it("-R with --steal: the pod's port is answered by a local server", async () => {
    const local = await freePort();
    const server: Server = createHttpServer((req, res) => res.end(`local answer to ${req.url}`));
    await new Promise<void>((resolve) => server.listen(local, '127.0.0.1', resolve));
    const forward = await forwarding(['--steal', '-R', `${pod.ports.target}:${local}`]);
    try {
      await waitFor(() => /stealing port/.test(forward.stderr()), 'the steal to start', 15_000);
      const answer = await httpRequest({ host: pod.ip, port: pod.ports.target, path: '/stolen' });
      assert.deepEqual(answer, { status: 200, body: 'local answer to /stolen' });
    } finally {
      await forward.stop();
      server.close();
    }
    // After the session the pod answers for itself again.
    const after = await httpRequest({ host: pod.ip, port: pod.ports.target, path: '/after' });
    assert.equal(after.status, 200);
    assert.doesNotMatch(after.body, /local answer/);
  });

  it('-R <port> alone: the same port number on both sides, without forwarding to itself', async () => {
    const port = await freePort();
    const server: Server = createHttpServer((req, res) => res.end(`local ${port} answers ${req.url}`));
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
    const forward = await forwarding(['--steal', '-R', String(port)]);
    try {
      await waitFor(() => /stealing port/.test(forward.stderr()), 'the steal to start', 15_000);
      assert.deepEqual(await httpRequest({ host: pod.ip, port, path: '/same-port' }), { status: 200, body: `local ${port} answers /same-port` });
    } finally {
      await forward.stop();
      server.close();
    }
  });

  it('bad forwards are refused with what to write instead', async () => {
    const bad = await runRemocal(['port-forward', '-t', `pid/${pod.pid}`, '-L', 'postgres']);
    assert.equal(bad.code, 125);
    assert.match(bad.stderr, /-L postgres is not a forward: write -L \[local_port:\]host:port/);
    const none = await runRemocal(['port-forward', '-t', `pid/${pod.pid}`]);
    assert.equal(none.code, 125);
    assert.match(none.stderr, /Nothing to forward/);
    const port = await runRemocal(['port-forward', '-t', `pid/${pod.pid}`, '-R', '70000:80']);
    assert.match(port.stderr, /the remote port "70000" is not a port/);
  });
});
