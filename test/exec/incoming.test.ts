// Incoming traffic end to end: requests sent from the host to the pod's IP, with the local app run through
// `remocal exec`. Mirror, steal, filtered steal on one keep-alive connection, h2c, websocket upgrade,
// port_mapping, the local app failing, a second session's steal of a held port refused, and no iptables rule
// left behind.

import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createPod, type Pod } from '../../src/fixture/pod.js';
import { findAgent, waitFor } from '../helpers/processes.js';
import { answeredFrom, httpRequest, type HttpAnswer } from '../helpers/net.js';
import { podIptablesRules } from '../helpers/pod.js';
import { startRemocal, writeApp, startPodWithApp, stopPodWithApp } from '../helpers/remocal.js';

let pod: Pod;

// The developer's app: answers every request with where it came from, prints each one it saw as JSON, echoes
// websocket frames after an upgrade, and fails /crash by closing the connection without answering.
const APP = String.raw`
import http from 'node:http';
const port = Number(process.argv[2] ?? 8080);
const server = http.createServer((req, res) => {
  let body = '';
  req.setEncoding('utf8');
  req.on('data', (c) => body += c);
  req.on('end', () => {
    process.stdout.write(JSON.stringify({ saw: req.method + ' ' + req.url, dev: req.headers['x-dev'] ?? null, body }) + '\n');
    if (req.url === '/crash') { req.socket.destroy(); return; }
    const payload = JSON.stringify({ from: 'local', path: req.url });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) });
    res.end(payload);
  });
});
server.on('upgrade', (req, socket) => {
  socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
  socket.on('data', (chunk) => socket.write(Buffer.concat([Buffer.from('local:'), chunk])));
});
server.listen(port, () => process.stdout.write(JSON.stringify({ listening: server.address().port }) + '\n'));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
`;

let app: { dir: string; remove: () => void };

before(async () => {
  ({ pod, app } = await startPodWithApp({ 'app.mjs': APP }));
});

after(() => stopPodWithApp(pod, app));

/** A project directory whose .remocal/config.json sets feature.network.incoming. */
function projectWithIncoming(incoming: Record<string, unknown>): { dir: string; remove: () => void } {
  const project = writeApp({});
  mkdirSync(join(project.dir, '.remocal'));
  writeFileSync(join(project.dir, '.remocal', 'config.json'), JSON.stringify({ feature: { network: { incoming } } }));
  return project;
}

interface Session {
  stdout: () => string;
  stderr: () => string;
  seen: () => { saw: string; dev: string | null; body: string }[];
  stop: () => Promise<void>;
  child: ReturnType<typeof startRemocal>['child'];
}

/** Starts the app through remocal and waits until remocal says the port is subscribed. */
async function session(args: string[], appArgs: string[] = [], cwd = app.dir): Promise<Session> {
  const run = startRemocal(['exec', '-t', `pid/${pod.pid}`, ...args, '--', process.execPath, join(app.dir, 'app.mjs'), ...appArgs], { cwd, timeoutMs: 60_000 });
  let stdout = '';
  let stderr = '';
  run.child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk));
  run.child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk));
  await waitFor(() => /remocal: (mirroring|stealing)/.test(stderr), `the subscription (stderr so far: ${stderr})`, 15_000).catch((error: Error) => {
    throw new Error(`${error.message}\nstderr: ${stderr}\nstdout: ${stdout}`);
  });
  return {
    stdout: () => stdout,
    stderr: () => stderr,
    seen: () => stdout.split('\n').filter((line) => line.startsWith('{"saw"')).map((line) => JSON.parse(line)),
    child: run.child,
    stop: async () => {
      run.child.kill('SIGTERM');
      await run.done;
    },
  };
}

function request(path: string, headers: Record<string, string> = {}, method = 'GET'): Promise<HttpAnswer> {
  return httpRequest({ host: pod.ip, port: pod.ports.target, path, method, headers });
}

function iptablesRules(): Promise<string> {
  return podIptablesRules(pod);
}

describe('incoming traffic', () => {
  it('mirror: the client gets the target\'s answer, and the local app sees the same request', async () => {
    const s = await session([]);
    try {
      const answer = await request('/mirrored?n=1', { 'x-dev': 'alice' });
      assert.equal(answeredFrom(answer.body), 'target');
      await waitFor(() => s.seen().some((entry) => entry.saw === 'GET /mirrored?n=1'), 'the mirrored copy');
      assert.equal(s.seen().find((entry) => entry.saw === 'GET /mirrored?n=1')?.dev, 'alice');
    } finally {
      await s.stop();
    }
  });

  it('steal: the local app answers instead of the target', async () => {
    const s = await session(['--steal']);
    try {
      const answer = await request('/stolen').catch((error: Error) => {
        throw new Error(`${error.message}\nremocal said:\n${s.stderr()}\napp said:\n${s.stdout()}`);
      });
      assert.equal(answeredFrom(answer.body), 'local');
      assert.ok(s.seen().some((entry) => entry.saw === 'GET /stolen'));
    } finally {
      await s.stop();
    }
    const after = await request('/after');
    assert.equal(answeredFrom(after.body), 'target', 'the target answers again once the session ends');
  });

  it('filtered steal: on one keep-alive connection, matching requests go to the app and the rest to the target', async () => {
    const project = projectWithIncoming({
      mode: 'steal',
      http_filter: { any_of: [{ header: '^x-dev: alice$' }, { path: '^/alice/' }, { method: 'DELETE' }] },
    });
    const s = await session([], [], project.dir);
    try {
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      const sockets = new Set<Socket>();
      const send = (path: string, headers: Record<string, string> = {}, method = 'GET') =>
        new Promise<string>((resolve, reject) => {
          const req = http.request({ host: pod.ip, port: pod.ports.target, path, method, headers, agent }, (res) => {
            sockets.add(res.socket as Socket);
            let body = '';
            res.setEncoding('utf8');
            res.on('data', (chunk) => (body += chunk));
            res.on('end', () => resolve(answeredFrom(body)));
          });
          req.on('error', reject);
          req.end();
        });
      assert.equal(await send('/a', { 'x-dev': 'alice' }), 'local');
      assert.equal(await send('/b', { 'x-dev': 'bob' }), 'target');
      assert.equal(await send('/alice/orders'), 'local');
      assert.equal(await send('/c'), 'target');
      assert.equal(await send('/d', {}, 'DELETE'), 'local');
      assert.equal(await send('/e', {}, 'POST'), 'target');
      assert.equal(sockets.size, 1, 'all on one keep-alive connection');
      agent.destroy();
      assert.deepEqual(
        s.seen().map((entry) => entry.saw),
        ['GET /a', 'GET /alice/orders', 'DELETE /d'],
      );
    } finally {
      await s.stop();
      project.remove();
    }
  });

  it('filtered steal: pipelined requests in one write are answered in order', async () => {
    const project = projectWithIncoming({ mode: 'steal', http_filter: { header_filter: '^x-dev: alice$' } });
    const filtered = await session([], [], project.dir);
    try {
      const socket = connect({ host: pod.ip, port: pod.ports.target });
      const raw = ['/p1', '/p2', '/p3', '/p4']
        .map((path, i) => `GET ${path} HTTP/1.1\r\nHost: pod\r\n${i % 2 === 0 ? 'X-Dev: alice\r\n' : ''}\r\n`)
        .join('');
      socket.write(raw);
      let text = '';
      socket.setEncoding('utf8');
      socket.on('data', (chunk) => (text += chunk));
      await waitFor(() => (text.match(/"from":/g) ?? []).length === 4, `four answers (so far: ${text.length} bytes)`);
      socket.destroy();
      const answers = [...text.matchAll(/"from":"(\w+)"/g)].map((match) => match[1]);
      assert.deepEqual(answers, ['local', 'target', 'local', 'target']);
    } finally {
      await filtered.stop();
      project.remove();
    }
  });

  it('filtered steal: the local app failing gives a 502 that says so, and the rest still reaches the target', async () => {
    const project = projectWithIncoming({ mode: 'steal', http_filter: { path_filter: '^/crash' } });
    const s = await session([], [], project.dir);
    try {
      const crashed = await request('/crash');
      assert.equal(crashed.status, 502);
      assert.match(crashed.body, /local app/);
      const other = await request('/fine');
      assert.equal(other.status, 200);
      assert.equal(answeredFrom(other.body), 'target');
    } finally {
      await s.stop();
      project.remove();
    }
  });

  it('a session ending does not cut the target\'s connections: the next answer on them says Connection: close', async () => {
    const project = projectWithIncoming({ mode: 'steal', http_filter: { header_filter: '^x-dev: alice$' } });
    const s = await session([], [], project.dir);
    const socket = connect({ host: pod.ip, port: pod.ports.target });
    let text = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk) => (text += chunk));
    try {
      socket.write('GET /before HTTP/1.1\r\nHost: pod\r\n\r\n');
      await waitFor(() => text.includes('"from":"target"'), 'the first answer');
      await s.stop();
      text = '';
      socket.write('GET /after HTTP/1.1\r\nHost: pod\r\n\r\n');
      await waitFor(() => text.includes('"from":"target"'), `the answer after the session ended (got: ${text})`);
      assert.match(text, /^HTTP\/1\.1 200/);
      assert.match(text, /\r\nConnection: close\r\n/i);
    } finally {
      socket.destroy();
      project.remove();
    }
  });

  it('starting a steal does not reset the target\'s established connections (regression: conntrack starts with the first nat rule)', async () => {
    // A fresh pod: no nat rule has ever existed in it, so conntrack picks up this connection mid-stream.
    const fresh = await createPod();
    const socket = connect({ host: fresh.ip, port: fresh.ports.target });
    let text = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk) => (text += chunk));
    let error: Error | undefined;
    socket.on('error', (caught) => (error = caught));
    const run = startRemocal(['exec', '-t', `pid/${fresh.pid}`, '--steal', '--', process.execPath, join(app.dir, 'app.mjs')], { cwd: app.dir });
    let stderr = '';
    run.child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk));
    try {
      socket.write('GET /established HTTP/1.1\r\nHost: pod\r\n\r\n');
      await waitFor(() => text.includes('"from":"target"'), 'the first answer');
      await waitFor(() => /remocal: stealing/.test(stderr), 'the steal to start');
      text = '';
      socket.write('GET /still-the-target HTTP/1.1\r\nHost: pod\r\n\r\n');
      await waitFor(() => text.includes('"from":"target"') || error !== undefined, 'the second answer');
      assert.equal(error, undefined);
      assert.match(text, /"path":"\/still-the-target"/);
    } finally {
      socket.destroy();
      run.child.kill('SIGTERM');
      await run.done;
      await fresh.destroy();
    }
  });

  it('h2c: streams are routed one by one', async () => {
    const project = projectWithIncoming({ mode: 'steal', http_filter: { header_filter: '^x-dev: alice$' } });
    const s = await session([], [], project.dir);
    const client = http2.connect(`http://${pod.ip}:${pod.ports.target}`);
    try {
      const get = (headers: Record<string, string>) =>
        new Promise<string>((resolve, reject) => {
          const stream = client.request({ ':path': '/h2', ...headers });
          let body = '';
          stream.setEncoding('utf8');
          stream.on('data', (chunk) => (body += chunk));
          stream.on('end', () => resolve(answeredFrom(body)));
          stream.on('error', reject);
        });
      const [mine, theirs] = await Promise.all([get({ 'x-dev': 'alice' }), get({})]);
      assert.equal(mine, 'local');
      assert.equal(theirs, 'target');
    } finally {
      client.close();
      await s.stop();
      project.remove();
    }
  });

  it('a matching websocket upgrade moves the whole connection to the app', async () => {
    const project = projectWithIncoming({ mode: 'steal', http_filter: { path_filter: '^/ws' } });
    const s = await session([], [], project.dir);
    try {
      const socket = connect({ host: pod.ip, port: pod.ports.target });
      socket.write('GET /ws HTTP/1.1\r\nHost: pod\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n');
      let text = '';
      socket.setEncoding('utf8');
      socket.on('data', (chunk) => (text += chunk));
      await waitFor(() => text.includes('101 Switching Protocols'), 'the upgrade');
      socket.write('ping');
      await waitFor(() => text.includes('local:ping'), 'the echo through the upgraded connection');
      socket.destroy();
    } finally {
      await s.stop();
      project.remove();
    }
  });

  it('port_mapping: the app listens on another local port and gets the target\'s port', async () => {
    const project = projectWithIncoming({ mode: 'steal', port_mapping: [[18080, 8080]] });
    const s = await session([], ['18080'], project.dir);
    try {
      assert.match(s.stderr(), /stealing port 8080 of pid\/\d+: its traffic goes to your app on local port 18080/);
      assert.equal(answeredFrom((await request('/mapped')).body), 'local');
    } finally {
      await s.stop();
      project.remove();
    }
  });

  it('without the operator, a second steal of a held port ends that session naming the first, which keeps its traffic', async () => {
    const first = await session(['--steal']);
    const holder = await waitFor(() => findAgent(pod.pid), 'the first session\'s agent');
    const chain = /REMOCAL-[0-9a-f]{8}/.exec(await iptablesRules())?.[0];
    assert.ok(chain !== undefined, 'the first session has a chain');
    const second = startRemocal(['exec', '-t', `pid/${pod.pid}`, '--steal', '--', process.execPath, join(app.dir, 'app.mjs')], { cwd: app.dir, timeoutMs: 60_000 });
    let stderr = '';
    let stdout = '';
    second.child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk));
    second.child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk));
    try {
      const port = pod.ports.target;
      // on_concurrent_steal is abort by default: the refused session ends, as remocal's own failure.
      const end = await second.done;
      assert.equal(end.code, 125, stderr);
      assert.match(stderr, /\(REMOCAL_PORT_HELD\)/);
      const held = `port ${port} of the target is already taken by another remocal session \\(chain ${chain}, agent pid ${holder.pid}\\)`;
      assert.match(stderr, new RegExp(`^remocal: error: could not subscribe to port ${port} of pid/${pod.pid}\\b.*: ${held}$`, 'm'));
      assert.match(stderr, /^ {2}hint: To share one port between developers \(each with an HTTP filter\), use the remocal operator: see docs\/operator\.md\..*stop the other session/m);
      assert.doesNotMatch(stderr, /remocal: stealing/);

      const answer = await request('/still-the-first');
      assert.equal(answeredFrom(answer.body), 'local');
      await waitFor(() => first.seen().some((entry) => entry.saw === 'GET /still-the-first'), 'the first session to get the request');
      assert.doesNotMatch(stdout, /still-the-first/, 'the refused session gets nothing');
    } finally {
      second.child.kill('SIGTERM');
      await second.done;
      await first.stop();
    }
    // The holder is gone: the port can be stolen again.
    const next = await session(['--steal']);
    try {
      assert.equal(answeredFrom((await request('/next')).body), 'local');
      assert.ok(next.seen().some((entry) => entry.saw === 'GET /next'));
    } finally {
      await next.stop();
    }
  });

  it('leaves no rule behind after the session, and none within 1 s of a kill -9 of the agent', async () => {
    const s = await session(['--steal']);
    assert.match(await iptablesRules(), /REMOCAL-/);
    await s.stop();
    assert.doesNotMatch(await iptablesRules(), /REMOCAL-/);
    assert.equal(answeredFrom((await request('/again')).body), 'target');

    const killed = await session(['--steal']);
    try {
      const agent = await waitFor(() => findAgent(pod.pid), 'the agent');
      process.kill(agent.pid, 'SIGKILL');
      const killedAt = Date.now();
      let rules = await iptablesRules();
      while (/REMOCAL-/.test(rules) && Date.now() - killedAt < 1000) {
        await new Promise((resolve) => setTimeout(resolve, 25));
        rules = await iptablesRules();
      }
      assert.doesNotMatch(rules, /REMOCAL-/, `rules still there ${Date.now() - killedAt} ms after kill -9`);
      assert.equal(answeredFrom((await request('/after-kill')).body), 'target');
    } finally {
      await killed.stop();
    }
  });
});
