// Conflicts between sessions on one target, end to end: a real local-mode operator process, real `remocal exec`
// sessions of different users through it, one real shared agent in the fixture pod, real iptables. Each check
// sends requests from the host to the pod's IP and looks at who answered, besides what each CLI printed. Last,
// the same pod without the operator, where each session has an agent of its own and none can displace another.

import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Pod } from '../../src/fixture/pod.js';
import { startChild, stopChild } from '../../src/core/child.js';
import { answeredFrom, httpRequest } from '../helpers/net.js';
import { podIptablesRules } from '../helpers/pod.js';
import { NAMED_APP, operatorClientEnv, serveOperator } from '../helpers/local-operator.js';
import { waitFor } from '../helpers/processes.js';
import { cliPath, runRemocal, startPodWithApp, startRemocal, stopPodWithApp, writeApp } from '../helpers/remocal.js';


const USERS = { alice: 'alice-token-0123456789', bob: 'bob-token-0123456789ab', carol: 'carol-token-0123456789' };
type User = keyof typeof USERS;

let pod: Pod;
let app: { dir: string; remove: () => void };
let stateDir: string;
let operator: ChildProcess;
let url: string;
let caFile: string;

function operatorEnv(user: User): NodeJS.ProcessEnv {
  return operatorClientEnv({ url, caFile }, USERS[user]);
}

interface Session {
  user: User;
  stderr(): string;
  seen(): string[];
  /** Still running. */
  running(): boolean;
  stop(): Promise<{ code: number | null; stderr: string }>;
  /** The CLI's exit, whatever ends it. */
  exited: Promise<{ code: number | null; stderr: string }>;
}

/** A `remocal exec` of the app as `user`, with `incoming` as its project's config; resolves once `ready` shows in its stderr or it exits. */
async function session(user: User, incoming: Record<string, unknown>, ready = /remocal: (mirroring|stealing)/, env = operatorEnv(user)): Promise<Session> {
  const project = writeApp({});
  mkdirSync(join(project.dir, '.remocal'));
  writeFileSync(join(project.dir, '.remocal', 'config.json'), JSON.stringify({ feature: { network: { incoming } } }));
  const run = startRemocal(['exec', '-t', `pid/${pod.pid}`, '--', process.execPath, join(app.dir, 'app.mjs'), String(pod.ports.target), user], {
    cwd: project.dir,
    env,
    timeoutMs: 90_000,
  });
  let stdout = '';
  let stderr = '';
  run.child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk));
  run.child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk));
  const exited = run.done.then((result) => {
    project.remove();
    return { code: result.code, stderr };
  });
  await waitFor(() => ready.test(stderr) || run.child.exitCode !== null, `${user}'s session`, 20_000).catch((error: Error) => {
    throw new Error(`${error.message}\nstderr: ${stderr}\nstdout: ${stdout}`);
  });
  return {
    user,
    stderr: () => stderr,
    seen: () => stdout.split('\n').filter((line) => line.startsWith('{"saw"')).map((line) => (JSON.parse(line) as { saw: string }).saw),
    running: () => run.child.exitCode === null && run.child.signalCode === null,
    exited,
    stop: async () => {
      run.child.kill('SIGTERM');
      return exited;
    },
  };
}

/** Ends every session given, whatever state it is in. */
async function stopAll(...sessions: (Session | undefined)[]): Promise<void> {
  await Promise.all(sessions.map((each) => each?.stop()));
}

/** Who answered a request sent from the host to the pod's port. */
async function who(path: string, headers: Record<string, string> = {}): Promise<string> {
  return answeredFrom((await httpRequest({ host: pod.ip, port: pod.ports.target, path, headers })).body);
}

interface ListedSession {
  metadata: { name: string };
  spec: { owner: string; target: string };
  status: { phase: string; ports: { port: number; mode: string; filter: unknown; overlaps?: { session: string; owner: string; request: string }[] }[] };
}

async function listed(): Promise<ListedSession[]> {
  const result = await runRemocal(['session', 'list', '--json'], { env: operatorEnv('carol') });
  assert.equal(result.code, 0, result.stderr);
  return JSON.parse(result.stdout) as ListedSession[];
}

/**
 * The sessions as listed once `ready` holds for them: the operator refreshes what its agents know of their
 * sessions every few seconds, so a change shows in the list a little after it happened.
 */
async function listedOnce(ready: (items: ListedSession[]) => boolean, what: string): Promise<ListedSession[]> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const items = await listed();
    if (ready(items)) return items;
    assert.ok(Date.now() < deadline, `session list never showed ${what}: ${JSON.stringify(items)}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/**
 * The id of `user`'s one live session. A session the previous test stopped can still be listed for a moment (the
 * list is refreshed from the agents), so this waits until only the live one is.
 */
async function idOf(user: User): Promise<string> {
  const live = (items: ListedSession[]) => items.filter((each) => each.spec.owner === user && each.status.phase !== 'Closed');
  const items = await listedOnce((all) => live(all).length === 1, `one live session of ${user}`);
  return live(items)[0]!.metadata.name;
}

function count(text: string, pattern: RegExp): number {
  return text.match(new RegExp(pattern.source, 'g'))?.length ?? 0;
}

before(async () => {
  ({ pod, app } = await startPodWithApp({ 'app.mjs': NAMED_APP }));
  stateDir = mkdtempSync(join(tmpdir(), 'remocal-conflicts-'));
  const users = Object.entries(USERS).map(([name, token]) => ({ name, token }));
  writeFileSync(join(stateDir, 'operator.json'), JSON.stringify({ listen: { host: '127.0.0.1', port: 0 }, state_dir: join(stateDir, 'state'), users, agents: { grace: 1 } }));
  ({ child: operator, url, caFile } = await serveOperator(join(stateDir, 'operator.json')));
});

after(async () => {
  if (operator !== undefined) await stopChild(operator, 5000);
  await stopPodWithApp(pod, app);
  if (stateDir !== undefined) rmSync(stateDir, { recursive: true, force: true });
});

describe('conflicts between sessions on one target, through the operator', () => {
  it('on_concurrent_steal abort (the default): the second steal ends its session, naming who holds the port and how to reach them', async () => {
    const alice = await session('alice', { mode: 'steal' });
    let bob: Session | undefined;
    try {
      const aliceId = await idOf('alice');
      bob = await session('bob', { mode: 'steal' });
      const end = await bob.exited;
      assert.equal(end.code, 125, end.stderr);
      assert.match(
        end.stderr,
        new RegExp(`^remocal: error: could not subscribe to port ${pod.ports.target} of pid/${pod.pid} .*: port ${pod.ports.target} of the target is locked: stolen whole by session ${aliceId} \\(alice\\), since \\d{4}-\\d\\d-\\d\\dT[\\d:.]+Z$`, 'm'),
      );
      assert.match(end.stderr, new RegExp(`^ {2}hint: Ask alice to end it \\(\`remocal session list\` shows session ${aliceId}\\)`, 'm'));
      assert.match(end.stderr, /^ {2}\(REMOCAL_PORT_HELD\)$/m);
      assert.equal(count(end.stderr, /could not subscribe/), 1, 'the refusal is told once, as the session\'s error');
      assert.deepEqual(bob.seen(), [], 'bob\'s app got nothing');
      assert.equal(await who('/abort'), 'alice');
      assert.deepEqual(alice.seen(), ['GET /abort']);

      // The lock as `remocal session list` shows it.
      await listedOnce((items) => items.find((item) => item.metadata.name === aliceId)?.status.ports.length === 1, 'alice\'s lock');
      const human = await runRemocal(['session', 'list'], { env: operatorEnv('carol') });
      assert.equal(human.code, 0, human.stderr);
      assert.match(human.stdout, new RegExp(`^pid/${pod.pid}$\\n^ {2}${pod.ports.target} {2}locked by alice \\(session ${aliceId}\\) since \\d\\d:\\d\\d$`, 'm'));
    } finally {
      await stopAll(alice, bob);
    }
  });

  it('on_concurrent_steal continue: the second session runs without the port and says so; the first keeps its traffic', async () => {
    const alice = await session('alice', { mode: 'steal' });
    let bob: Session | undefined;
    try {
      bob = await session('bob', { mode: 'steal', on_concurrent_steal: 'continue' }, /the session goes on without port/);
      assert.match(bob.stderr(), new RegExp(`^remocal: could not subscribe to port ${pod.ports.target} of pid/${pod.pid}: port ${pod.ports.target} of the target is locked: stolen whole by session [0-9a-f]{8} \\(alice\\)`, 'm'));
      assert.match(bob.stderr(), new RegExp(`^ {2}the session goes on without port ${pod.ports.target} \\(on_concurrent_steal: continue\\)$`, 'm'));
      assert.doesNotMatch(bob.stderr(), /remocal: error:/);
      assert.equal(await who('/continue'), 'alice');
      assert.deepEqual(alice.seen(), ['GET /continue']);
      assert.deepEqual(bob.seen(), []);
      assert.ok(bob.running(), 'bob\'s session goes on');
      const end = await bob.stop();
      assert.equal(end.code, 0, end.stderr);
    } finally {
      await stopAll(alice, bob);
    }
  });

  it('on_concurrent_steal override: the second session gets the traffic; the first is told who took the port, and keeps running', async () => {
    const alice = await session('alice', { mode: 'steal' });
    let bob: Session | undefined;
    try {
      const aliceId = await idOf('alice');
      assert.equal(await who('/before'), 'alice');
      bob = await session('bob', { mode: 'steal', on_concurrent_steal: 'override' });
      const bobId = await idOf('bob');
      assert.match(bob.stderr(), new RegExp(`stealing port ${pod.ports.target} of pid/${pod.pid}.*; taken over from alice \\(session ${aliceId}\\), who goes on without it`));
      assert.equal(await who('/after'), 'bob');
      assert.deepEqual(bob.seen(), ['GET /after']);
      assert.deepEqual(alice.seen(), ['GET /before']);
      await waitFor(() => /\(REMOCAL_PORT_TAKEN\)/.test(alice.stderr()), 'alice to be told');
      assert.match(alice.stderr(), new RegExp(`^remocal: port ${pod.ports.target} of the target was taken over by session ${bobId} \\(bob\\) with on_concurrent_steal: override; your session goes on without it$`, 'm'));
      assert.ok(alice.running(), 'alice\'s session goes on');
      await listedOnce((items) => items.find((item) => item.metadata.name === aliceId)?.status.ports.length === 0, 'that alice holds nothing now');
      const aliceEnd = await alice.stop();
      assert.equal(aliceEnd.code, 0, aliceEnd.stderr);
      assert.equal(await who('/still-bob'), 'bob');
    } finally {
      await stopAll(alice, bob);
    }
  });

  it('a filtered steal on a locked port is refused naming the holder: abort ends the session, continue goes on without the port', async () => {
    const alice = await session('alice', { mode: 'steal' });
    let carol: Session | undefined;
    try {
      const aliceId = await idOf('alice');
      const filter = { header_filter: '^x-dev: carol$' };
      const aborted = await session('carol', { mode: 'steal', http_filter: filter });
      const end = await aborted.exited;
      assert.equal(end.code, 125, end.stderr);
      assert.match(end.stderr, new RegExp(`stolen whole by session ${aliceId} \\(alice\\), since [^;]+; a filtered steal cannot share a locked port`));
      assert.match(end.stderr, /\(REMOCAL_PORT_HELD\)/);

      carol = await session('carol', { mode: 'steal', http_filter: filter, on_concurrent_steal: 'continue' }, /the session goes on without port/);
      assert.ok(carol.running());
      assert.equal(await who('/c', { 'x-dev': 'carol' }), 'alice');
      assert.deepEqual(carol.seen(), []);
    } finally {
      await stopAll(alice, carol);
    }
  });

  it('the same filter as another session\'s is refused naming it (key order aside); that session keeps its requests', async () => {
    const alice = await session('alice', { mode: 'steal', http_filter: { header_filter: '^x-dev: shop$', ports: [pod.ports.target] } });
    try {
      const aliceId = await idOf('alice');
      const bob = await session('bob', { mode: 'steal', http_filter: { ports: [pod.ports.target], header_filter: '^x-dev: shop$' } });
      const end = await bob.exited;
      assert.equal(end.code, 125, end.stderr);
      assert.match(end.stderr, new RegExp(`already stolen with the same HTTP filter by session ${aliceId} \\(alice\\), since `));
      assert.match(end.stderr, /^ {2}hint: Pick a filter of your own/m);
      assert.match(end.stderr, /\(REMOCAL_FILTER_CONFLICT\)/);
      assert.equal(await who('/shop', { 'x-dev': 'shop' }), 'alice');
      assert.equal(await who('/other'), 'target');
    } finally {
      await alice.stop();
    }
  });

  it('a request that matches two sessions\' filters goes to the first; both CLIs print the overlap once, and session list shows it', async () => {
    const alice = await session('alice', { mode: 'steal', http_filter: { header_filter: '^x-dev: alice$' } });
    const bob = await session('bob', { mode: 'steal', http_filter: { path_filter: '^/orders' } });
    try {
      const [aliceId, bobId] = [await idOf('alice'), await idOf('bob')];
      assert.equal(await who('/orders/1'), 'bob');
      assert.equal(await who('/home', { 'x-dev': 'alice' }), 'alice');
      assert.equal(await who('/orders/7', { 'x-dev': 'alice' }), 'alice', 'the first subscribed wins');
      assert.equal(await who('/orders/8', { 'x-dev': 'alice' }), 'alice');
      assert.deepEqual(alice.seen(), ['GET /home', 'GET /orders/7', 'GET /orders/8']);
      assert.deepEqual(bob.seen(), ['GET /orders/1']);

      const overlap = /\(REMOCAL_FILTER_OVERLAP\)/;
      await waitFor(() => overlap.test(alice.stderr()) && overlap.test(bob.stderr()), 'both to be told of the overlap');
      assert.match(alice.stderr(), new RegExp(`^remocal: the request GET /orders/7 on port ${pod.ports.target} matched the HTTP filter of this session and that of session ${bobId} \\(bob\\); it went to this session`, 'm'));
      assert.match(bob.stderr(), new RegExp(`^remocal: the request GET /orders/7 on port ${pod.ports.target} matched the HTTP filter of this session and that of session ${aliceId} \\(alice\\); it went to session ${aliceId} \\(alice\\)`, 'm'));
      // A later overlapping request tells nobody again.
      assert.equal(await who('/orders/9', { 'x-dev': 'alice' }), 'alice');
      assert.equal(count(alice.stderr(), overlap), 1, alice.stderr());
      assert.equal(count(bob.stderr(), overlap), 1, bob.stderr());

      const items = await listedOnce((all) => all.filter((item) => item.status.ports[0]?.overlaps !== undefined).length === 2, 'the overlap');
      const ports = (id: string) => items.find((item) => item.metadata.name === id)!.status.ports;
      assert.deepEqual(ports(aliceId)[0]!.overlaps, [{ session: bobId, owner: 'bob', request: 'GET /orders/7' }]);
      assert.deepEqual(ports(bobId)[0]!.overlaps, [{ session: aliceId, owner: 'alice', request: 'GET /orders/7' }]);
      const human = await runRemocal(['session', 'list'], { env: operatorEnv('carol') });
      assert.equal(human.code, 0, human.stderr);
      assert.match(human.stdout, new RegExp(`^ {2}${pod.ports.target} {2}filtered: (alice \`\\^x-dev: alice\\$\`, bob path \`\\^/orders\`|bob path \`\\^/orders\`, alice \`\\^x-dev: alice\\$\`) — overlap (alice/bob|bob/alice) on GET /orders/7$`, 'm'));
    } finally {
      await stopAll(alice, bob);
    }
    // Once the last session ended and the agent's grace passed, the pod answers for itself again.
    const deadline = Date.now() + 15_000;
    while (/REMOCAL-/.test(await podIptablesRules(pod))) {
      assert.ok(Date.now() < deadline, 'the rules go with the last session');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.equal(await who('/orders/10', { 'x-dev': 'alice' }), 'target');
  });
});

describe('conflicts without the operator', () => {
  const direct: NodeJS.ProcessEnv = { REMOCAL_OPERATOR: 'false' };

  it('continue goes on without the port; override is refused, ending the session, since only the operator can take a port over', async () => {
    const alice = await session('alice', { mode: 'steal' }, undefined, direct);
    let bob: Session | undefined;
    try {
      assert.match(alice.stderr(), /starting the agent in/, 'a direct session');
      bob = await session('bob', { mode: 'steal', on_concurrent_steal: 'continue' }, /the session goes on without port/, direct);
      assert.match(bob.stderr(), new RegExp(`^remocal: could not subscribe to port ${pod.ports.target} of pid/${pod.pid}: port ${pod.ports.target} of the target is already taken by another remocal session`, 'm'));
      assert.ok(bob.running());
      assert.equal(await who('/direct-continue'), 'alice');
      assert.deepEqual(bob.seen(), []);
      await bob.stop();

      bob = await session('bob', { mode: 'steal', on_concurrent_steal: 'override' }, undefined, direct);
      const end = await bob.exited;
      assert.equal(end.code, 125, end.stderr);
      assert.match(end.stderr, /already taken by another remocal session .*; on_concurrent_steal: override takes a port only from sessions on the same remocal operator, never from another agent$/m);
      assert.match(end.stderr, /\(REMOCAL_PORT_HELD\)/);
      assert.equal(await who('/direct-override'), 'alice');
      assert.deepEqual(alice.seen(), ['GET /direct-continue', 'GET /direct-override']);
    } finally {
      await stopAll(alice, bob);
    }
  });
});
