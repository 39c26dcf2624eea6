// Policies end to end: a real local-mode operator reading policy files, real `remocal exec` sessions through it,
// one real shared agent in the fixture pod. One test per rule, each from both sides: what the policy forbids is
// refused, with the policy's name and rule, and what it allows still works. A raw protocol client that skips the
// CLI meets the same refusals, and a policy changed while a session runs applies to its next operations.

import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import type { Duplex } from 'node:stream';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createWebSocketStream, WebSocket } from 'ws';
import { startChild, stopChild } from '../../src/core/child.js';
import type { Pod } from '../../src/fixture/pod.js';
import { Link } from '../../src/protocol/link.js';
import type { AgentEvent, AgentRequest, AgentResults, AgentToIntproxy, IntproxyToAgent } from '../../src/protocol/messages.js';
import type { PolicySpec } from '../../src/protocol/policy.js';
import { RpcClient } from '../../src/protocol/rpc.js';
import { answeredFrom, freePort, httpRequest } from '../helpers/net.js';
import { NAMED_APP, operatorClientEnv, serveOperator } from '../helpers/local-operator.js';
import { waitFor } from '../helpers/processes.js';
import { cliPath, runRemocal, startPodWithApp, startRemocal, stopPodWithApp, type RunResult } from '../helpers/remocal.js';


// Runs the steps in argv[2] (JSON) one after another and prints what each got: an answer, or the error's code.
const PROBE = String.raw`
import net from 'node:net';
import dgram from 'node:dgram';
import fs from 'node:fs';
import dns from 'node:dns/promises';
const connect = (host, port) => new Promise((resolve) => {
  const socket = net.connect({ host, port });
  socket.setTimeout(5000, () => { socket.destroy(); resolve({ error: 'timeout' }); });
  socket.once('connect', () => socket.end('ping'));
  let data = '';
  socket.on('data', (chunk) => (data += chunk));
  socket.once('end', () => resolve('echo:' + data));
  socket.once('error', (error) => resolve({ error: error.code }));
});
const udp = (host, port) => new Promise((resolve) => {
  const socket = dgram.createSocket('udp4');
  const timer = setTimeout(() => { socket.close(); resolve({ error: 'no answer' }); }, 2000);
  socket.once('message', (message) => { clearTimeout(timer); socket.close(); resolve('echo:' + message); });
  socket.send('ping', port, host, (error) => { if (error) { clearTimeout(timer); socket.close(); resolve({ error: error.code }); } });
});
const results = [];
for (const step of JSON.parse(process.argv[2])) {
  try {
    if (step.connect) results.push(await connect(...step.connect));
    else if (step.udp) results.push(await udp(...step.udp));
    else if (step.lookup) results.push((await dns.lookup(step.lookup)).address);
    else if (step.read) results.push(fs.readFileSync(step.read, 'utf8'));
    else if (step.write) { fs.writeFileSync(step.write[0], step.write[1]); results.push('written'); }
    else if ('env' in step) results.push(process.env[step.env] ?? null);
  } catch (error) {
    results.push({ error: error.code });
  }
}
console.log(JSON.stringify(results));
`;

const USERS = { alice: 'alice-token-0123456789', bob: 'bob-token-0123456789ab' };

let pod: Pod;
let app: { dir: string; remove: () => void };
let stateDir: string;
let policyDir: string;
let operator: ChildProcess;
let url: string;
let caFile: string;

function operatorEnv(user: keyof typeof USERS): NodeJS.ProcessEnv {
  return operatorClientEnv({ url, caFile }, USERS[user]);
}

/** A project directory whose config is `config`. */
function project(config: Record<string, unknown>): { dir: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'remocal-policy-project-'));
  mkdirSync(join(dir, '.remocal'));
  writeFileSync(join(dir, '.remocal', 'config.json'), JSON.stringify(config));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** What the operator says applies to `user` on the pod. */
async function appliedPolicies(user: keyof typeof USERS = 'alice'): Promise<string[]> {
  const result = await runRemocal(['policy', 'check', '-t', `pid/${pod.pid}`, '--json'], { env: operatorEnv(user) });
  assert.equal(result.code, 0, result.stderr);
  return (JSON.parse(result.stdout) as { policies: { name: string }[] }).policies.map((policy) => policy.name);
}

/** Writes a policy file and waits until the operator applies it; returns what removes it again (and waits). */
async function policy(name: string, spec: PolicySpec, kind: 'RemocalPolicy' | 'RemocalClusterPolicy' = 'RemocalPolicy'): Promise<() => Promise<void>> {
  const file = join(policyDir, `${name}.yaml`);
  writeFileSync(file, JSON.stringify({ apiVersion: 'policies.remocal.dev/v1alpha1', kind, metadata: { name }, spec }));
  const applied = kind === 'RemocalPolicy' ? `local/${name}` : name;
  await waitForPolicies((names) => names.includes(applied), `${applied} to apply`);
  return async () => {
    rmSync(file, { force: true });
    await waitForPolicies((names) => !names.includes(applied), `${applied} to go`);
  };
}

async function waitForPolicies(done: (names: string[]) => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!done(await appliedPolicies())) {
    assert.ok(Date.now() < deadline, `timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function withPolicy(name: string, spec: PolicySpec, body: () => Promise<void>): Promise<void> {
  const remove = await policy(name, spec);
  try {
    await body();
  } finally {
    await remove();
  }
}

/** Runs the probe's steps through the operator as `user`; its results, and the whole run. */
async function probe(steps: object[], config: Record<string, unknown> = {}, user: keyof typeof USERS = 'alice'): Promise<{ results: unknown[]; run: RunResult }> {
  const dir = project(config);
  try {
    const run = await runRemocal(['exec', '-t', `pid/${pod.pid}`, '--', process.execPath, join(app.dir, 'probe.mjs'), JSON.stringify(steps)], { cwd: dir.dir, env: operatorEnv(user), timeoutMs: 60_000 });
    assert.equal(run.code, 0, run.stderr);
    const line = run.stdout.trim().split('\n').filter((entry) => entry.startsWith('[')).pop();
    assert.ok(line, `no results: ${run.stdout}\n${run.stderr}`);
    return { results: JSON.parse(line) as unknown[], run };
  } finally {
    dir.remove();
  }
}

interface Listening {
  stderr(): string;
  seen(): string[];
  stop(): Promise<void>;
}

/** An app listening on the pod's port through the operator with `incoming`, once its subscription answered. */
async function listen(user: keyof typeof USERS, incoming: Record<string, unknown>): Promise<Listening> {
  const dir = project({ feature: { network: { incoming } } });
  const run = startRemocal(['exec', '-t', `pid/${pod.pid}`, '--', process.execPath, join(app.dir, 'app.mjs'), String(pod.ports.target), user], { cwd: dir.dir, env: operatorEnv(user), timeoutMs: 60_000 });
  let stdout = '';
  let stderr = '';
  run.child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk));
  run.child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk));
  await waitFor(() => /remocal: (mirroring|stealing)|goes on without port/.test(stderr) || run.child.exitCode !== null, `${user}'s subscription`, 20_000);
  if (run.child.exitCode !== null) dir.remove();
  return {
    stderr: () => stderr,
    seen: () => stdout.split('\n').filter((line) => line.startsWith('{"saw"')).map((line) => (JSON.parse(line) as { saw: string }).saw),
    stop: async () => {
      run.child.kill('SIGTERM');
      await run.done;
      dir.remove();
    },
  };
}

/** A session whose subscription the policy refuses: the CLI ends, saying which policy and rule. */
async function refusedListen(user: keyof typeof USERS, incoming: Record<string, unknown>): Promise<RunResult> {
  const dir = project({ feature: { network: { incoming } } });
  try {
    return await runRemocal(['exec', '-t', `pid/${pod.pid}`, '--', process.execPath, join(app.dir, 'app.mjs'), String(pod.ports.target), user], { cwd: dir.dir, env: operatorEnv(user), timeoutMs: 60_000 });
  } finally {
    dir.remove();
  }
}

interface RawSession {
  link: Link<IntproxyToAgent, AgentToIntproxy>;
  rpc: RpcClient<AgentRequest, AgentResults>;
  notices: Extract<AgentEvent, { kind: 'notice' }>[];
}

/** A session opened by hand, as a client that skips remocal's CLI and layer would: the link, and what it was told. */
async function rawSession(user: keyof typeof USERS, body: (session: RawSession) => Promise<void>): Promise<void> {
  const ws = new WebSocket(`${url.replace(/^https/, 'wss')}/apis/operator.remocal.dev/v1/namespaces/local/targets/pid.${pod.pid}/portforward?files=write`, {
    headers: { authorization: `Bearer ${USERS[user]}` },
    ca: await readFile(caFile),
  });
  // The stream is made in the 'open' listener: frames that came with the upgrade are emitted before an awaited
  // continuation runs.
  const stream = await new Promise<Duplex>((resolve, reject) => {
    ws.once('open', () => resolve(createWebSocketStream(ws)));
    ws.once('error', reject);
  });
  const link = new Link<IntproxyToAgent, AgentToIntproxy>({ readable: stream, writable: stream }, { role: 'intproxy', streamIdParity: 'odd' });
  const notices: RawSession['notices'] = [];
  link.on('message', (message) => {
    if (message.type === 'event' && message.event.kind === 'notice') notices.push(message.event);
  });
  try {
    await link.handshake(10_000);
    await body({ link, rpc: new RpcClient<AgentRequest, AgentResults>(link), notices });
  } finally {
    link.close();
    ws.close();
  }
}

function request(path: string, headers: Record<string, string> = {}): Promise<string> {
  return httpRequest({ host: pod.ip, port: pod.ports.target, path, headers }).then((answer) => answeredFrom(answer.body));
}

async function startOperator(): Promise<void> {
  ({ child: operator, url, caFile } = await serveOperator(join(stateDir, 'operator.json')));
}

before(async () => {
  ({ pod, app } = await startPodWithApp({ 'app.mjs': NAMED_APP, 'probe.mjs': PROBE }));
  stateDir = mkdtempSync(join(tmpdir(), 'remocal-operator-policies-'));
  policyDir = join(stateDir, 'policies');
  mkdirSync(policyDir);
  const users = Object.entries(USERS).map(([name, token]) => ({ name, token }));
  writeFileSync(
    join(stateDir, 'operator.json'),
    JSON.stringify({ listen: { host: '127.0.0.1', port: 0 }, state_dir: join(stateDir, 'state'), users, agents: { grace: 1 }, policies: { dir: policyDir, reload: 0.2 } }),
  );
  await startOperator();
});

after(async () => {
  if (operator !== undefined) await stopChild(operator, 5000);
  await stopPodWithApp(pod, app);
  if (stateDir !== undefined) rmSync(stateDir, { recursive: true, force: true });
});

const POLICY_HINT = /hint: An admin's policy forbids it/;

describe('policies, enforced by the local-mode operator', () => {
  it('block steal: a steal is refused with the policy named; a mirror still sees the traffic', async () => {
    await withPolicy('no-steal', { block: ['steal'] }, async () => {
      const refused = await refusedListen('alice', { mode: 'steal', http_filter: { header_filter: '^x-dev: alice$' } });
      assert.equal(refused.code, 125, refused.stderr);
      assert.match(refused.stderr, /policy local\/no-steal forbids stealing port \d+ of the target \(block: steal\)/);
      assert.match(refused.stderr, POLICY_HINT);
      assert.match(refused.stderr, /REMOCAL_POLICY_BLOCKED/);
      const mirror = await listen('bob', { mode: 'mirror' });
      try {
        assert.equal(await request('/mirrored'), 'target');
        await waitFor(() => mirror.seen().includes('GET /mirrored') || undefined, 'the mirror to see the request');
      } finally {
        await mirror.stop();
      }
    });
  });

  it('block steal-without-filter: a whole-port steal is refused; a filtered steal gets its requests', async () => {
    await withPolicy('filters-only', { block: ['steal-without-filter'] }, async () => {
      const refused = await refusedListen('alice', { mode: 'steal' });
      assert.equal(refused.code, 125, refused.stderr);
      assert.match(refused.stderr, /policy local\/filters-only forbids stealing port \d+ of the target without an HTTP filter \(block: steal-without-filter\)/);
      const filtered = await listen('alice', { mode: 'steal', http_filter: { header_filter: '^x-dev: alice$' } });
      try {
        assert.equal(await request('/mine', { 'x-dev': 'alice' }), 'alice');
        assert.equal(await request('/not-mine'), 'target');
      } finally {
        await filtered.stop();
      }
    });
  });

  it('block mirror: a mirror is refused; a steal still works', async () => {
    await withPolicy('no-mirror', { block: ['mirror'] }, async () => {
      const refused = await refusedListen('bob', { mode: 'mirror' });
      assert.equal(refused.code, 125, refused.stderr);
      assert.match(refused.stderr, /policy local\/no-mirror forbids mirroring port \d+ of the target \(block: mirror\)/);
      const steal = await listen('bob', { mode: 'steal' });
      try {
        assert.equal(await request('/stolen'), 'bob');
      } finally {
        await steal.stop();
      }
    });
  });

  it('block override: taking a port over is refused; without override the session goes on as the config says', async () => {
    await withPolicy('no-override', { block: ['override'] }, async () => {
      const holder = await listen('alice', { mode: 'steal' });
      try {
        const refused = await refusedListen('bob', { mode: 'steal', on_concurrent_steal: 'override' });
        assert.equal(refused.code, 125, refused.stderr);
        assert.match(refused.stderr, /policy local\/no-override forbids taking port \d+ over from other sessions .*\(block: override\)/);
        const continuing = await listen('bob', { mode: 'steal', on_concurrent_steal: 'continue' });
        try {
          assert.match(continuing.stderr(), /the session goes on without port \d+ \(on_concurrent_steal: continue\)/);
          assert.equal(await request('/held'), 'alice', 'the holder keeps its port');
        } finally {
          await continuing.stop();
        }
      } finally {
        await holder.stop();
      }
    });
  });

  it('a required header filter: a steal without it is refused; with it, only requests carrying the header are routed', async () => {
    await withPolicy('tagged', { network: { incoming: { httpFilter: { headerFilter: '^x-dev: ' } } } }, async () => {
      const refused = await refusedListen('alice', { mode: 'steal', http_filter: { path_filter: '^/api' } });
      assert.equal(refused.code, 125, refused.stderr);
      assert.match(refused.stderr, /policy local\/tagged forbids stealing port \d+ of the target without a header filter that matches "\^x-dev: " \(network\.incoming\.httpFilter\.headerFilter: "\^x-dev: "\)/);
      // The filter's text matches the policy's pattern, but it also takes requests without the header: those the
      // agent does not route to the session.
      const tagged = await listen('alice', { mode: 'steal', http_filter: { header_filter: 'x-dev: alice|x-other: 1' } });
      try {
        assert.equal(await request('/tagged', { 'x-dev': 'alice' }), 'alice');
        assert.equal(await request('/untagged', { 'x-other': '1' }), 'target');
      } finally {
        await tagged.stop();
      }
    });
  });

  it('block outgoing: connections and datagrams are refused, the user told which policy; DNS and files still work', async () => {
    await withPolicy('no-outgoing', { block: ['outgoing'] }, async () => {
      const { results, run } = await probe([{ connect: [pod.serviceIps.api, pod.ports.echo] }, { udp: [pod.serviceIps.api, pod.ports.echo] }, { lookup: pod.names.apiFqdn }, { read: pod.paths.greeting }]);
      assert.deepEqual(results, [{ error: 'EACCES' }, { error: 'no answer' }, pod.serviceIps.api, pod.files.greeting]);
      assert.match(run.stderr, new RegExp(`policy local/no-outgoing refused a connection to ${pod.serviceIps.api.replaceAll('.', '\\.')}:${pod.ports.echo} \\(block: outgoing\\)`));
      assert.match(run.stderr, /REMOCAL_POLICY_BLOCKED/);
    });
  });

  it('outgoing block by CIDR, by host name (asked or resolved) and by port; what no rule names still connects', async () => {
    const api = pod.serviceIps.api;
    await withPolicy('no-api-ip', { network: { outgoing: { block: [{ ipBlock: { cidr: `${api}/32` } }] } } }, async () => {
      const { results } = await probe([{ connect: [api, pod.ports.echo] }, { connect: [pod.serviceIps.dns, pod.ports.dns] }]);
      assert.deepEqual(results, [{ error: 'EACCES' }, 'echo:']);
    });
    await withPolicy('no-api-name', { network: { outgoing: { block: [{ hostname: `^${pod.names.apiName}\\.` }] } } }, async () => {
      // By name; then by the address that name resolved to in this session; then by another name.
      const { results } = await probe([{ connect: [pod.names.apiFqdn, pod.ports.echo] }, { lookup: pod.names.apiFqdn }, { connect: [api, pod.ports.echo] }]);
      assert.deepEqual(results, [{ error: 'EACCES' }, api, { error: 'EACCES' }]);
      const other = await probe([{ connect: [pod.names.dbFqdn, pod.ports.db] }]);
      assert.deepEqual(other.results, ['echo:ping']);
    });
    await withPolicy('no-echo-port', { network: { outgoing: { block: [{ ports: [pod.ports.echo] }] } } }, async () => {
      const { results } = await probe([{ connect: [api, pod.ports.echo] }, { connect: [api, pod.ports.db] }]);
      assert.deepEqual(results, [{ error: 'EACCES' }, 'echo:ping']);
    });
  });

  it('outgoing allow by CIDR, by host name and by port: only what a rule names connects', async () => {
    const api = pod.serviceIps.api;
    await withPolicy('only-dns-ip', { network: { outgoing: { allow: [{ ipBlock: { cidr: `${pod.serviceIps.dns}/32` } }] } } }, async () => {
      const { results, run } = await probe([{ connect: [pod.serviceIps.dns, pod.ports.dns] }, { connect: [api, pod.ports.echo] }]);
      assert.deepEqual(results, ['echo:', { error: 'EACCES' }]);
      assert.match(run.stderr, /\(network\.outgoing\.allow \(no rule allows it\)\)/);
    });
    await withPolicy('only-db-name', { network: { outgoing: { allow: [{ hostname: `^${pod.names.dbName}\\.` }] } } }, async () => {
      const { results } = await probe([{ connect: [pod.names.dbFqdn, pod.ports.db] }, { connect: [pod.names.apiFqdn, pod.ports.db] }]);
      assert.deepEqual(results, ['echo:ping', { error: 'EACCES' }]);
    });
    await withPolicy('only-db-port', { network: { outgoing: { allow: [{ ports: [pod.ports.db] }] } } }, async () => {
      const { results } = await probe([{ connect: [api, pod.ports.db] }, { connect: [api, pod.ports.echo] }, { udp: [api, pod.ports.echo] }]);
      assert.deepEqual(results, ['echo:ping', { error: 'EACCES' }, { error: 'no answer' }]);
    });
  });

  it('block fs-write: a change to the target\'s files is refused and leaves the file as it was; reads still work', async () => {
    const file = `${pod.paths.dataDir}/policy-written.txt`;
    await withPolicy('read-only-files', { block: ['fs-write'] }, async () => {
      const { results, run } = await probe([{ write: [file, 'x'] }, { read: pod.paths.greeting }], { feature: { fs: { mode: 'write' } } });
      assert.deepEqual(results, [{ error: 'EACCES' }, pod.files.greeting]);
      assert.equal(existsSync(pod.rootPath(file)), false, 'nothing was written in the pod');
      assert.match(run.stderr, /policy local\/read-only-files refused a change to \/var\/run\/pod-data\/policy-written\.txt \(block: fs-write\)/);
    });
  });

  it('fs.notFound, fs.local and fs.readOnly: the CLI keeps those paths from the target as its own lists would, the agent refuses them to anyone who asks; other paths as usual', async () => {
    const locked = `${pod.paths.dataDir}/locked.txt`;
    const free = `${pod.paths.dataDir}/free.txt`;
    const rules = { notFound: ['greeting\\.txt$'], local: ['config\\.json$'], readOnly: ['locked\\.txt$'] };
    await withPolicy('file-rules', { fs: rules }, async () => {
      // Through remocal's own CLI the layer treats the policy's paths as not found, local and read only: nothing
      // of them is asked of the target (this machine has none of these files), so the agent refuses nothing.
      const { results, run } = await probe([{ read: pod.paths.greeting }, { read: pod.paths.config }, { write: [locked, 'no'] }, { write: [free, 'yes'] }], { feature: { fs: { mode: 'write' } } });
      assert.deepEqual(results, [{ error: 'ENOENT' }, { error: 'ENOENT' }, { error: 'ENOENT' }, 'written']);
      assert.equal(existsSync(pod.rootPath(locked)), false);
      assert.equal(await readFile(pod.rootPath(free), 'utf8'), 'yes');
      assert.doesNotMatch(run.stderr, /REMOCAL_POLICY_BLOCKED/);
      // Asked anyway, as a client that ignores the lists would: refused, with the policy and rule named.
      await rawSession('bob', async ({ rpc, notices }) => {
        const answers = await Promise.all([
          rpc.request({ op: 'fs.readFile', path: pod.paths.greeting }),
          rpc.request({ op: 'fs.readFile', path: pod.paths.config }),
          rpc.request({ op: 'fs.writeFile', path: locked, data: Buffer.from('no').toString('base64') }),
          rpc.request({ op: 'fs.writeFile', path: `${pod.paths.dataDir}/../pod-data/locked.txt`, data: 'eA==' }),
          rpc.request({ op: 'fs.readFile', path: pod.paths.dataDir.replace('/pod-data', '/pod-data/.') + '/greeting.txt' }),
        ]);
        assert.deepEqual(answers.map((answer) => (answer.ok ? 'ok' : answer.error.code)), ['ENOENT', 'EACCES', 'EACCES', 'EACCES', 'ENOENT']);
        assert.equal(existsSync(pod.rootPath(locked)), false);
        await waitFor(() => notices.length >= 3 || undefined, 'the notices');
        const told = notices.map((notice) => notice.message).join('\n');
        assert.match(told, /policy local\/file-rules refused a read of \/var\/run\/pod-data\/greeting\.txt \(fs\.notFound: greeting\\\.txt\$\)/);
        assert.match(told, /refused a read of .*config\.json \(fs\.local: config\\\.json\$\)/);
        assert.match(told, /refused a change to .*locked\.txt \(fs\.readOnly: locked\\\.txt\$\)/);
      });
    });
    rmSync(pod.rootPath(free), { force: true });
  });

  it('block env: the session runs with this machine\'s environment only, and is told why; outgoing still works', async () => {
    await withPolicy('no-env', { block: ['env'] }, async () => {
      const { results, run } = await probe([{ env: 'POD_NAME' }, { connect: [pod.serviceIps.api, pod.ports.db] }]);
      assert.deepEqual(results, [null, 'echo:ping']);
      assert.match(run.stderr, /policy local\/no-env refused the target's environment/);
    });
  });

  it('env.exclude: the variables it names are held back, the others come from the target', async () => {
    await withPolicy('no-secrets', { env: { exclude: ['DATABASE_*', 'GREETING'] } }, async () => {
      const { results, run } = await probe([{ env: 'DATABASE_URL' }, { env: 'GREETING' }, { env: 'POD_NAME' }]);
      assert.deepEqual(results, [null, null, pod.names.hostname]);
      assert.match(run.stderr, /policy local\/no-secrets refused the target's DATABASE_URL \(env\.exclude: DATABASE_\*\)/);
    });
  });

  it('block port-forward: remocal port-forward is refused; remocal exec on the target still runs', async () => {
    await withPolicy('no-forwarding', { block: ['port-forward'] }, async () => {
      const refused = await runRemocal(['port-forward', '-t', `pid/${pod.pid}`, '-L', `${await freePort()}:${pod.serviceIps.api}:${pod.ports.echo}`], { env: operatorEnv('alice'), timeoutMs: 30_000 });
      assert.equal(refused.code, 125, refused.stderr);
      assert.match(refused.stderr, /Policy local\/no-forwarding forbids remocal port-forward on pid\/\d+ \(block: port-forward\)/);
      assert.match(refused.stderr, /REMOCAL_POLICY_BLOCKED/);
      const { results } = await probe([{ connect: [pod.serviceIps.api, pod.ports.db] }]);
      assert.deepEqual(results, ['echo:ping']);
    });
  });

  it('a policy scoped to other targets does not apply; a cluster policy applies to all', async () => {
    // Written first, so that the operator has read it by the time the second one applies.
    const elsewhere = join(policyDir, 'elsewhere.yaml');
    writeFileSync(elsewhere, JSON.stringify({ apiVersion: 'policies.remocal.dev/v1alpha1', kind: 'RemocalPolicy', metadata: { name: 'elsewhere' }, spec: { targetPath: 'container/*', block: ['outgoing'] } }));
    const everywhere = await policy('everyone', { network: { outgoing: { block: [{ ports: [pod.ports.echo] }] } } }, 'RemocalClusterPolicy');
    try {
      assert.deepEqual(await appliedPolicies(), ['everyone']);
      const { results } = await probe([{ connect: [pod.serviceIps.api, pod.ports.db] }, { connect: [pod.serviceIps.api, pod.ports.echo] }]);
      assert.deepEqual(results, ['echo:ping', { error: 'EACCES' }]);
    } finally {
      rmSync(elsewhere, { force: true });
      await everywhere();
    }
  });

  it('a policy added while a session runs applies to its next operations, and its removal too', async () => {
    const dir = project({});
    // Connects every 100 ms and prints each outcome, so one session sees the policy come and go.
    const run = startRemocal(
      ['exec', '-q', '-t', `pid/${pod.pid}`, '--', process.execPath, '-e', `
        const net = require('node:net');
        const attempt = () => {
          const socket = net.connect(${pod.ports.db}, ${JSON.stringify(pod.serviceIps.api)}, () => socket.end('ping'));
          let data = '';
          socket.on('data', (chunk) => (data += chunk));
          socket.on('end', () => { console.log('echo:' + data); setTimeout(attempt, 100); });
          socket.on('error', (error) => { console.log(error.code); setTimeout(attempt, 100); });
        };
        attempt();`],
      { cwd: dir.dir, env: operatorEnv('alice'), timeoutMs: 60_000 },
    );
    let stdout = '';
    run.child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    const outcomes = () => stdout.split('\n').filter((line) => line !== '');
    try {
      await waitFor(() => outcomes().includes('echo:ping') || undefined, 'a first connection', 20_000);
      const remove = await policy('late', { network: { outgoing: { block: [{ ports: [pod.ports.db] }] } } });
      const refusedAt = outcomes().length;
      await waitFor(() => outcomes().slice(refusedAt).includes('EACCES') || undefined, 'the running session to meet the new policy', 10_000);
      await remove();
      const allowedAt = outcomes().length;
      await waitFor(() => outcomes().slice(allowedAt).includes('echo:ping') || undefined, 'the running session to be free of it again', 10_000);
    } finally {
      run.child.kill('SIGTERM');
      await run.done;
      dir.remove();
    }
  });

  it('a raw protocol client that skips the CLI meets the same refusals, and is told the policy', async () => {
    await withPolicy('raw', { block: ['steal'], network: { outgoing: { block: [{ ports: [pod.ports.echo] }] } } }, async () => {
      await rawSession('bob', async ({ link, rpc, notices }) => {
        const subscribe = await rpc.request({ op: 'incoming.subscribe', port: pod.ports.target, mode: 'steal', filter: null });
        assert.equal(subscribe.ok, false);
        assert.equal(!subscribe.ok && subscribe.error.code, 'REMOCAL_POLICY_BLOCKED');
        assert.match(!subscribe.ok ? subscribe.error.message : '', /policy local\/raw forbids stealing port \d+ .*\(block: steal\)/);
        const streams = [link.openStream(), link.openStream()];
        // Each ends with the link: an error then is not this test's.
        for (const stream of streams) stream.on('error', () => undefined);
        const connect = await rpc.request({ op: 'tcp.connect', host: pod.serviceIps.api, port: pod.ports.echo, stream: streams[0]!.id });
        assert.equal(!connect.ok && connect.error.code, 'EACCES');
        await waitFor(() => notices.find((notice) => /policy local\/raw refused a connection to .* \(network\.outgoing\.block\[0\]\)/.test(notice.message)), 'the notice');
        const allowed = await rpc.request({ op: 'tcp.connect', host: pod.serviceIps.api, port: pod.ports.db, stream: streams[1]!.id });
        assert.equal(allowed.ok, true);
      });
    });
  });

  it('more policies than a session carries: the session is refused, saying the admins should merge them', async () => {
    const files = Array.from({ length: 257 }, (_, index) => join(policyDir, `many-${index}.json`));
    files.forEach((file, index) =>
      writeFileSync(file, JSON.stringify({ apiVersion: 'policies.remocal.dev/v1alpha1', kind: 'RemocalClusterPolicy', metadata: { name: `many-${index}` }, spec: { env: { exclude: [`NOTHING_${index}`] } } })),
    );
    try {
      await waitForPolicies((names) => names.length === 257, 'the 257 policies to apply');
      const dir = project({});
      try {
        const refused = await runRemocal(['exec', '-t', `pid/${pod.pid}`, '--', process.execPath, '-e', 'console.log("ran")'], { cwd: dir.dir, env: operatorEnv('alice'), timeoutMs: 60_000 });
        assert.equal(refused.code, 125, refused.stderr);
        assert.doesNotMatch(refused.stdout, /ran/);
        assert.match(refused.stderr, /The session on pid\/\d+ .* was refused: 257 policies \(\d+ bytes\) apply to pid\/\d+: more than a session carries \(256 policies/);
        assert.match(refused.stderr, /hint: Ask the admins to merge policies/);
      } finally {
        dir.remove();
      }
    } finally {
      files.forEach((file) => rmSync(file, { force: true }));
      await waitForPolicies((names) => names.length === 0, 'the policies to go');
    }
  });

  it('remocal policy check shows the policies that apply and what they leave a session', async () => {
    await withPolicy('shown', { block: ['steal-without-filter'], env: { exclude: ['AWS_*'] }, network: { outgoing: { block: [{ ipBlock: { cidr: '10.0.0.0/8', except: ['10.1.0.0/16'] }, ports: [5432] }] } } }, async () => {
      const check = await runRemocal(['policy', 'check', '-t', `pid/${pod.pid}`], { env: operatorEnv('alice') });
      assert.equal(check.code, 0, check.stderr);
      assert.match(check.stdout, /1 policy applies to you on pid\/\d+ \(namespace local\):/);
      assert.match(check.stdout, /local\/shown \(RemocalPolicy\)\n {4}blocks: steal-without-filter\n {4}outgoing blocked to: 10\.0\.0\.0\/8 except 10\.1\.0\.0\/16 port 5432\n {4}env hidden: AWS_\*/);
      assert.match(check.stdout, /steal a whole port: no \(local\/shown\)/);
      assert.match(check.stdout, /read the target's environment: yes, without AWS_\*/);
    });
    const none = await runRemocal(['policy', 'check', '-t', `pid/${pod.pid}`], { env: operatorEnv('alice') });
    assert.match(none.stdout, /No policy applies to you on pid\/\d+/);
  });
});
