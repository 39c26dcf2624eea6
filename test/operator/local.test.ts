// The local-mode operator end to end: a real `remocal operator serve` process, real `remocal exec` sessions
// through it, one real shared agent in the fixture pod, real iptables. Requests go from the host to the pod.

import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Pod } from '../../src/fixture/pod.js';
import { agentLaunch, resolveLocalTarget } from '../../src/platform/local.js';
import { startChild, stopChild } from '../../src/core/child.js';
import { answeredFrom, httpRequest } from '../helpers/net.js';
import { podIptablesRules } from '../helpers/pod.js';
import { NAMED_APP, operatorClientEnv, serveOperator } from '../helpers/local-operator.js';
import { listProcesses, waitFor } from '../helpers/processes.js';
import { cliPath, runRemocal, startPodWithApp, startRemocal, stopPodWithApp, writeApp } from '../helpers/remocal.js';


// Reads from the target: env, DNS, an outgoing connection and a file, and prints them.
const PROBE = String.raw`
import dns from 'node:dns/promises';
import fs from 'node:fs';
const addresses = await dns.lookup(process.argv[2], { all: true }).then((list) => list.map((entry) => entry.address), (error) => error.code);
const file = (() => { try { return fs.readFileSync(process.argv[3], 'utf8'); } catch (error) { return error.code; } })();
console.log(JSON.stringify({ pod: process.env.POD_NAME ?? null, addresses, file }));
`;

const USERS = { alice: 'alice-token-0123456789', bob: 'bob-token-0123456789ab', carol: 'carol-token-0123456789', admin: 'admin-token-0123456789', dave: 'dave-token-0123456789' };

let pod: Pod;
let app: { dir: string; remove: () => void };
let stateDir: string;
let operator: ChildProcess;
let url: string;
let caFile: string;

function operatorEnv(user: keyof typeof USERS): NodeJS.ProcessEnv {
  return operatorClientEnv({ url, caFile }, USERS[user]);
}

/** A project whose config steals with `filter` (or mirrors, without one). */
function project(incoming: Record<string, unknown>): { dir: string; remove: () => void } {
  const dir = writeApp({});
  mkdirSync(join(dir.dir, '.remocal'));
  writeFileSync(join(dir.dir, '.remocal', 'config.json'), JSON.stringify({ feature: { network: { incoming } } }));
  return dir;
}

interface Session {
  name: string;
  stderr(): string;
  seen(): { saw: string; dev: string | null }[];
  stop(): Promise<{ code: number | null; stderr: string }>;
  /** The CLI's exit, whatever ends it. */
  exited: Promise<{ code: number | null; stderr: string }>;
}

async function session(user: keyof typeof USERS, incoming: Record<string, unknown>, name: string = user): Promise<Session> {
  const dir = project(incoming);
  const run = startRemocal(['exec', '-t', `pid/${pod.pid}`, '--', process.execPath, join(app.dir, 'app.mjs'), String(pod.ports.target), name], {
    cwd: dir.dir,
    env: operatorEnv(user),
    timeoutMs: 90_000,
  });
  let stdout = '';
  let stderr = '';
  run.child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk));
  run.child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk));
  await waitFor(() => /remocal: (mirroring|stealing)/.test(stderr) || run.child.exitCode !== null, `${name}'s subscription`, 20_000).catch((error: Error) => {
    throw new Error(`${error.message}\nstderr: ${stderr}\nstdout: ${stdout}`);
  });
  if (run.child.exitCode !== null) throw new Error(`${name}'s session ended: ${stderr}`);
  return {
    name,
    stderr: () => stderr,
    exited: run.done.then((result) => ({ code: result.code, stderr })),
    seen: () => stdout.split('\n').filter((line) => line.startsWith('{"saw"')).map((line) => JSON.parse(line)),
    stop: async () => {
      run.child.kill('SIGTERM');
      const result = await run.done;
      dir.remove();
      return { code: result.code, stderr };
    },
  };
}

/** Requests on one kept-alive connection to the pod, in order; resolves with who answered each. */
async function onOneConnection(requests: { path: string; dev?: string }[]): Promise<string[]> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const sockets = new Set<unknown>();
  const answers: string[] = [];
  try {
    for (const { path, dev } of requests) {
      answers.push(
        await new Promise<string>((resolve, reject) => {
          const request = http.request({ host: pod.ip, port: pod.ports.target, path, headers: dev === undefined ? {} : { 'x-dev': dev }, agent, timeout: 10_000 }, (response) => {
            sockets.add(response.socket);
            let body = '';
            response.setEncoding('utf8');
            response.on('data', (chunk: string) => (body += chunk));
            response.on('end', () => resolve(answeredFrom(body)));
          });
          request.on('timeout', () => request.destroy(new Error(`no answer to ${path}`)));
          request.on('error', reject);
          request.end();
        }),
      );
    }
    assert.equal(sockets.size, 1, 'every request went over the same connection');
    return answers;
  } finally {
    agent.destroy();
  }
}

function sharedAgents(): number[] {
  return listProcesses()
    // This operator's agents only: other test files run shared agents of their own at the same time.
    .filter((info) => info.argv.some((part) => part.endsWith('/dist/agent.js')) && (info.argv[info.argv.indexOf('--sessions') + 1] ?? '').startsWith(`${stateDir}/`))
    .map((info) => info.pid);
}

async function startOperator(): Promise<void> {
  ({ child: operator, url, caFile } = await serveOperator(join(stateDir, 'operator.json')));
}

before(async () => {
  ({ pod, app } = await startPodWithApp({ 'app.mjs': NAMED_APP, 'probe.mjs': PROBE }));
  stateDir = mkdtempSync(join(tmpdir(), 'remocal-operator-'));
  const users = Object.entries(USERS).map(([name, token]) => ({ name, token, admin: name === 'admin', ...(name === 'dave' ? { targets: ['container/*'] } : {}) }));
  writeFileSync(
    join(stateDir, 'operator.json'),
    JSON.stringify({ listen: { host: '127.0.0.1', port: 0 }, state_dir: join(stateDir, 'state'), users, agents: { grace: 1 }, log_level: 'debug' }),
  );
  await startOperator();
});

after(async () => {
  if (operator !== undefined) await stopChild(operator, 5000);
  await stopPodWithApp(pod, app);
  if (stateDir !== undefined) rmSync(stateDir, { recursive: true, force: true });
});

describe('the local-mode operator', () => {
  it('answers /healthz without identity, and nothing else', async () => {
    const { request } = await import('node:https');
    const get = (path: string) =>
      new Promise<number>((resolve, reject) => {
        request(`${url}${path}`, { ca: readFileSync(caFile, 'utf8') }, (response) => {
          response.resume();
          resolve(response.statusCode ?? 0);
        })
          .on('error', reject)
          .end();
      });
    assert.equal(await get('/healthz'), 200);
    assert.equal(await get('/apis/operator.remocal.dev/v1/sessions'), 401);
  });

  it('an upgrade the WebSocket server refuses leaves no session behind', async () => {
    const { connect } = await import('node:tls');
    const socket = connect({ host: '127.0.0.1', port: Number(new URL(url).port), ca: readFileSync(caFile, 'utf8'), servername: 'localhost' });
    await new Promise((resolve) => socket.once('secureConnect', resolve));
    let answer = '';
    socket.setEncoding('utf8').on('data', (chunk: string) => (answer += chunk));
    socket.write(
      `GET /apis/operator.remocal.dev/v1/namespaces/local/targets/pid.${pod.pid}/portforward HTTP/1.1\r\nHost: localhost\r\n` +
        `Authorization: Bearer ${USERS.alice}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 99\r\nSec-WebSocket-Key: bad\r\n\r\n`,
    );
    await new Promise((resolve) => socket.once('close', resolve));
    assert.match(answer, /^HTTP\/1\.1 400/);
    const all = await runRemocal(['session', 'list', '--all', '--json'], { env: operatorEnv('alice') });
    const items = JSON.parse(all.stdout) as { status: { phase: string; closeReason: string | null } }[];
    assert.ok(items.every((item) => item.status.phase === 'Closed'), `no live session: ${all.stdout}`);
    assert.ok(items.some((item) => /before its WebSocket was open/.test(item.status.closeReason ?? '')), all.stdout);
  });

  it('refuses a client without a token, or with a wrong one, with a clear error', async () => {
    const none = await runRemocal(['session', 'list'], { env: { ...operatorEnv('alice'), REMOCAL_OPERATOR_TOKEN: '' } });
    assert.equal(none.code, 125, none.stderr);
    assert.match(none.stderr, /refused the request: Unauthorized: no token was sent/);
    assert.match(none.stderr, /REMOCAL_OPERATOR_TOKEN/);
    const wrong = await runRemocal(['exec', '-t', `pid/${pod.pid}`, '--', 'true'], { env: { ...operatorEnv('alice'), REMOCAL_OPERATOR_TOKEN: 'not-a-user-token-at-all' } });
    assert.equal(wrong.code, 125, wrong.stderr);
    assert.match(wrong.stderr, /the token is not one of this operator's users/);
    assert.match(wrong.stderr, /REMOCAL_OPERATOR_UNAUTHORIZED/);
  });

  it('a user opens sessions only on the targets the config allows them', async () => {
    // The agent of the session the previous test refused at its upgrade outlives it by the grace period.
    await waitFor(() => sharedAgents().length === 0, 'the previous test\'s agent to end', 15_000);
    const refused = await runRemocal(['exec', '-t', `pid/${pod.pid}`, '--', 'true'], { env: operatorEnv('dave') });
    assert.equal(refused.code, 125, refused.stderr);
    assert.match(refused.stderr, /dave may not open sessions on pid\/\d+: the operator allows container\/\*/);
    assert.match(refused.stderr, /REMOCAL_OPERATOR_FORBIDDEN/);
    assert.equal(sharedAgents().length, 0, 'no agent was started for a refused session');
  });

  it('two filtered steals on one port: on one keep-alive connection each request reaches its app, the rest the pod; a mirror sees them all', async () => {
    const alice = await session('alice', { mode: 'steal', http_filter: { header_filter: '^x-dev: alice$' } });
    const bob = await session('bob', { mode: 'steal', http_filter: { header_filter: '^x-dev: bob$' } });
    const carol = await session('carol', { mode: 'mirror' });
    try {
      assert.match(bob.stderr(), /through the operator: .*also there: alice \(session [0-9a-f]{8}\)/);
      const answers = await onOneConnection([
        { path: '/1', dev: 'alice' },
        { path: '/2', dev: 'bob' },
        { path: '/3' },
        { path: '/4', dev: 'bob' },
        { path: '/5', dev: 'alice' },
        { path: '/6', dev: 'carol' },
      ]);
      assert.deepEqual(answers, ['alice', 'bob', 'target', 'bob', 'alice', 'target']);
      assert.deepEqual(alice.seen().map((entry) => entry.saw), ['GET /1', 'GET /5']);
      assert.deepEqual(bob.seen().map((entry) => entry.saw), ['GET /2', 'GET /4']);
      await waitFor(() => carol.seen().length === 6, 'the mirror to see every request');
      assert.deepEqual(carol.seen().map((entry) => entry.saw), ['GET /1', 'GET /2', 'GET /3', 'GET /4', 'GET /5', 'GET /6']);
      assert.equal(sharedAgents().length, 1, 'one agent serves the three sessions');

      const listed = await runRemocal(['session', 'list', '--json'], { env: operatorEnv('carol') });
      assert.equal(listed.code, 0, listed.stderr);
      const items = JSON.parse(listed.stdout) as { spec: { owner: string }; status: { routedRequests: number; ports: { port: number; filter: unknown }[] } }[];
      const byOwner = new Map(items.map((item) => [item.spec.owner, item]));
      assert.deepEqual([...byOwner.keys()].sort(), ['alice', 'bob', 'carol']);
      assert.deepEqual(byOwner.get('alice')!.status.ports.map((port) => [port.port, port.filter]), [[pod.ports.target, { header_filter: '^x-dev: alice$' }]]);

      // One session ends: the others keep their traffic, on a connection opened before and after.
      const aliceEnd = await alice.stop();
      assert.equal(aliceEnd.code, 0, aliceEnd.stderr);
      assert.deepEqual(await onOneConnection([{ path: '/7', dev: 'bob' }, { path: '/8', dev: 'alice' }, { path: '/9' }]), ['bob', 'target', 'target']);
      const rules = await podIptablesRules(pod);
      assert.equal(rules.match(/^:REMOCAL-[0-9a-f]{8} /gm)?.length, 1, `one chain for the target:\n${rules}`);
    } finally {
      await Promise.all([alice, bob, carol].map((each) => each.stop().catch(() => undefined)));
    }
    await waitFor(() => sharedAgents().length === 0, 'the agent to end after the grace period', 15_000);
    assert.doesNotMatch(await podIptablesRules(pod), /REMOCAL-/, 'no rule left in the pod');
    assert.equal(answeredFrom((await httpRequest({ host: pod.ip, port: pod.ports.target, path: '/after', headers: { 'x-dev': 'bob' } })).body), 'target');
  });

  it('a whole-port steal on a port others share with filters is refused, naming them', async () => {
    const alice = await session('alice', { mode: 'steal', http_filter: { header_filter: '^x-dev: alice$' } });
    try {
      const dir = project({ mode: 'steal' });
      const bob = startRemocal(['exec', '-t', `pid/${pod.pid}`, '--', process.execPath, join(app.dir, 'app.mjs'), String(pod.ports.target), 'bob'], { cwd: dir.dir, env: operatorEnv('bob'), timeoutMs: 60_000 });
      let stderr = '';
      bob.child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk));
      await waitFor(() => /could not subscribe/.test(stderr), 'the refusal', 20_000);
      assert.match(stderr, new RegExp(`could not subscribe to port ${pod.ports.target} .*shared by filtered steals \\(session [0-9a-f]{8} \\(alice\\)`));
      bob.child.kill('SIGTERM');
      await bob.done;
      dir.remove();
      assert.equal(answeredFrom((await httpRequest({ host: pod.ip, port: pod.ports.target, path: '/a', headers: { 'x-dev': 'alice' } })).body), 'alice', 'alice keeps her requests');
    } finally {
      await alice.stop();
    }
  });

  it('outgoing, DNS, env and files work for each session through the shared agent', async () => {
    const results = await Promise.all(
      (['alice', 'bob'] as const).map((user) =>
        runRemocal(['exec', '-t', `pid/${pod.pid}`, '--', process.execPath, join(app.dir, 'probe.mjs'), pod.names.apiFqdn, pod.paths.greeting], { env: operatorEnv(user), timeoutMs: 60_000 }),
      ),
    );
    for (const result of results) {
      assert.equal(result.code, 0, result.stderr);
      const seen = JSON.parse(result.stdout.trim().split('\n').pop()!) as { pod: string; addresses: string[]; file: string };
      assert.equal(seen.pod, pod.names.hostname);
      assert.deepEqual(seen.addresses, [pod.serviceIps.api]);
      assert.equal(seen.file, pod.files.greeting);
    }
  });

  it('20 sessions on one target at once, each a real remocal exec with its own filter, through one shared agent', async () => {
    const COUNT = 20;
    const started: Session[] = [];
    try {
      // In batches, so that 60 processes do not all start at once on a small machine.
      for (let first = 0; first < COUNT; first += 5) {
        started.push(...(await Promise.all(Array.from({ length: Math.min(5, COUNT - first) }, (_, offset) => {
          const name = `dev-${first + offset}`;
          return session(first + offset === 0 ? 'admin' : 'alice', { mode: 'steal', http_filter: { header_filter: `^x-dev: ${name}$` } }, name);
        }))));
      }
      assert.equal(sharedAgents().length, 1, 'one agent serves them all');
      const answers = await onOneConnection([...started.map((each) => ({ path: `/to/${each.name}`, dev: each.name })), { path: '/to/nobody' }]);
      assert.deepEqual(answers, [...started.map((each) => each.name), 'target']);
      for (const each of started) assert.deepEqual(each.seen().map((entry) => entry.saw), [`GET /to/${each.name}`]);
    } finally {
      const results = await Promise.all(started.map((each) => each.stop()));
      for (const result of results) assert.equal(result.code, 0, result.stderr);
    }
  });

  it('sessions that start and end under load cause no errors for requests no session matches', async () => {
    const failures: string[] = [];
    let stop = false;
    let sent = 0;
    // Fresh connections, and one kept-alive connection, both without the filters' header; bounded in count.
    const fresh = (async () => {
      while (!stop && sent < 5000) {
        const answer = await httpRequest({ host: pod.ip, port: pod.ports.target, path: `/fresh/${sent}` }).catch((error: Error) => ({ status: 0, body: error.message }));
        sent++;
        if (answer.status !== 200 || answeredFrom(answer.body) !== 'target') failures.push(`fresh: ${answer.status} ${answer.body}`);
      }
    })();
    const keptAlive = (async () => {
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      try {
        while (!stop && sent < 5000) {
          const body = await new Promise<string>((resolve) => {
            const request = http.request({ host: pod.ip, port: pod.ports.target, path: `/kept/${sent}`, agent, timeout: 10_000 }, (response) => {
              let text = '';
              response.setEncoding('utf8');
              response.on('data', (chunk: string) => (text += chunk));
              response.on('end', () => resolve(answeredFrom(text)));
            });
            request.on('timeout', () => request.destroy(new Error('no answer')));
            request.on('error', (error) => resolve(error.message));
            request.end();
          });
          sent++;
          if (body !== 'target') failures.push(`kept-alive: ${body}`);
        }
      } finally {
        agent.destroy();
      }
    })();
    for (let round = 0; round < 2; round++) {
      const [alice, bob] = await Promise.all([
        session('alice', { mode: 'steal', http_filter: { header_filter: '^x-dev: alice$' } }),
        session('bob', { mode: 'steal', http_filter: { header_filter: '^x-dev: bob$' } }),
      ]);
      await Promise.all([alice.stop(), bob.stop()]);
    }
    stop = true;
    await Promise.all([fresh, keptAlive]);
    assert.deepEqual(failures, []);
    assert.ok(sent >= 20, `only ${sent} requests were sent`);
  });

  it('kill -9 of the operator: the CLI is told within 5 s, the rules go, the target keeps answering; a restarted operator serves again', async () => {
    const alice = await session('alice', { mode: 'steal', http_filter: { header_filter: '^x-dev: alice$' } });
    const agentPid = sharedAgents()[0];
    assert.ok(agentPid !== undefined, 'a shared agent runs');
    const killedAt = Date.now();
    operator.kill('SIGKILL');
    const end = await alice.exited;
    assert.ok(Date.now() - killedAt < 5000, `the CLI ended ${Date.now() - killedAt} ms after the kill`);
    assert.equal(end.code, 125, end.stderr);
    assert.match(end.stderr, /operator/);
    await waitFor(() => !sharedAgents().includes(agentPid), 'the shared agent to end with its operator', 10_000);
    for (;;) {
      const rules = await podIptablesRules(pod);
      if (!/REMOCAL-/.test(rules)) break;
      assert.ok(Date.now() - killedAt < 10_000, `the supervisor removes the rules:\n${rules}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.equal(answeredFrom((await httpRequest({ host: pod.ip, port: pod.ports.target, path: '/k', headers: { 'x-dev': 'alice' } })).body), 'target');
    await startOperator();
    const status = await runRemocal(['operator', 'status', '--json'], { env: operatorEnv('alice') });
    assert.equal(status.code, 0, status.stderr);
    assert.equal((JSON.parse(status.stdout) as { healthy: boolean }).healthy, true);
  });

  it('a session killed by an admin ends, and its CLI says who killed it', async () => {
    const bob = await session('bob', { mode: 'steal', http_filter: { header_filter: '^x-dev: bob$' } });
    const listed = await runRemocal(['session', 'list', '--json'], { env: operatorEnv('bob') });
    const id = (JSON.parse(listed.stdout) as { metadata: { name: string }; spec: { owner: string } }[]).find((item) => item.spec.owner === 'bob')!.metadata.name;
    const refused = await runRemocal(['session', 'kill', id], { env: operatorEnv('alice') });
    assert.equal(refused.code, 125);
    assert.match(refused.stderr, /belongs to bob: only its owner or an admin may end it/);
    const killed = await runRemocal(['session', 'kill', id], { env: operatorEnv('admin') });
    assert.equal(killed.code, 0, killed.stderr);
    const end = await bob.exited;
    assert.equal(end.code, 125);
    assert.match(end.stderr, /was closed: the session was killed by admin/);
    assert.match(end.stderr, /REMOCAL_SESSION_CLOSED/);
    const all = await runRemocal(['session', 'list', '--all', '--json'], { env: operatorEnv('bob') });
    const record = (JSON.parse(all.stdout) as { metadata: { name: string }; status: { closeReason: string } }[]).find((item) => item.metadata.name === id)!;
    assert.equal(record.status.closeReason, 'the session was killed by admin');
  });

  it('the shared agent killed mid-session: its session is told, and a new agent serves the next one', async () => {
    const alice = await session('alice', { mode: 'steal', http_filter: { header_filter: '^x-dev: alice$' } });
    const [agentPid] = sharedAgents();
    assert.ok(agentPid !== undefined, 'a shared agent runs');
    const killedAt = Date.now();
    process.kill(agentPid, 'SIGKILL');
    const end = await alice.exited;
    assert.ok(Date.now() - killedAt < 5000, `the CLI ended ${Date.now() - killedAt} ms after the kill`);
    assert.equal(end.code, 125, end.stderr);
    assert.match(end.stderr, /The session on pid\/\d+ .*was closed: the shared agent \(pid \d+\) was killed by SIGKILL\./);
    assert.match(end.stderr, /REMOCAL_AGENT_LOST/);
    // The killed agent's supervisor removes its rules: the pod answers for itself again.
    while (/REMOCAL-/.test(await podIptablesRules(pod))) {
      assert.ok(Date.now() - killedAt < 10_000, 'the killed agent\'s supervisor removes its rules');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const bob = await session('bob', { mode: 'steal', http_filter: { header_filter: '^x-dev: bob$' } });
    try {
      const agents = sharedAgents();
      assert.equal(agents.length, 1, 'one new shared agent');
      assert.notEqual(agents[0], agentPid);
      assert.deepEqual(await onOneConnection([{ path: '/b', dev: 'bob' }, { path: '/a', dev: 'alice' }]), ['bob', 'target']);
    } finally {
      await bob.stop();
    }
  });

  it('a restarted operator ends the agents a killed one left behind', async () => {
    await stopChild(operator, 5000);
    // An agent whose control link is still held open (here by this test), with the pid file a killed operator
    // leaves beside its socket: what a restart must clean up.
    const agentsDir = join(stateDir, 'state', 'agents');
    const launch = agentLaunch(resolveLocalTarget({ platform: 'local', kind: 'pid', pid: pod.pid }), { logLevel: 'info', files: 'read' });
    const orphan = startChild(launch.command, [...launch.args, '--sessions', join(agentsDir, 'orphan.sock')], { stdio: ['pipe', 'pipe', 'pipe'] });
    await waitFor(() => orphan.pid !== undefined || undefined, 'the orphan to start', 5000);
    writeFileSync(join(agentsDir, 'orphan.pid'), String(orphan.pid));
    await waitFor(() => sharedAgents().length === 1 || undefined, 'the orphan to run', 10_000);
    const gone = new Promise<void>((resolve) => orphan.once('exit', () => resolve()));
    await startOperator();
    await gone;
    assert.deepEqual(sharedAgents(), []);
    assert.equal(existsSync(join(agentsDir, 'orphan.pid')), false, 'its pid file is removed');
  });
});
