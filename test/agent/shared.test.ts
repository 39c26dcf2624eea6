// The shared agent (`agent --sessions`, as the operator runs it) end to end at the protocol level: the real
// agent in a fixture pod, the operator's control link on its stdio, and each session a unix-socket connection
// opened with its preamble line, then an ordinary intproxy link. Each session answers its streams with a local
// HTTP server of its own, reached over a real loopback socket as the intproxy does, so a client sending
// requests to the pod's IP can tell from the answer who served it.

import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import type { Pod } from '../../src/fixture/pod.js';
import { childExited, startChild, stopChild } from '../../src/core/child.js';
import { splice } from '../../src/core/splice.js';
import { Link } from '../../src/protocol/link.js';
import type {
  AgentEvent,
  AgentRequest,
  AgentResults,
  AgentToIntproxy,
  HttpFilterSpec,
  IncomingEvent,
  IncomingMode,
  IntproxyToAgent,
  Result,
  SubscribeResult,
} from '../../src/protocol/messages.js';
import { RpcClient } from '../../src/protocol/rpc.js';
import type {
  AgentToOperator,
  ControlRequest,
  ControlResults,
  OperatorToAgent,
  SessionPreamble,
  SessionStateEvent,
  SessionStats,
} from '../../src/protocol/shared-agent.js';
import { MAX_PREAMBLE_BYTES } from '../../src/protocol/shared-agent.js';
import { answeredFrom } from '../helpers/net.js';
import { createTestPod, podIptablesRules } from '../helpers/pod.js';
import { waitFor } from '../helpers/processes.js';

const agentMain = fileURLToPath(new URL('../../src/agent/main.ts', import.meta.url));
const TEST_TIMEOUT_MS = 90_000;

// --- cleanup ----------------------------------------------------------------------------------------------

/** What the running test opened, undone in reverse order after it, whether it passed or not. */
const cleanups: (() => Promise<void> | void)[] = [];
function onCleanup(undo: () => Promise<void> | void): void {
  cleanups.push(undo);
}

/** Resolves with `promise`, or fails naming `what` after `timeoutMs`. */
async function within<T>(promise: Promise<T>, what: string, timeoutMs = 10_000): Promise<T> {
  const controller = new AbortController();
  const timeout = delay(timeoutMs, undefined, { signal: controller.signal, ref: false }).then(() => {
    throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
  }, () => undefined as never);
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    controller.abort();
  }
}

/** The remocal chains in the pod's nat table, both iptables backends. */
async function remocalChains(pod: Pod): Promise<string[]> {
  return [...(await podIptablesRules(pod)).matchAll(/^:(REMOCAL-[0-9a-f]{8}) /gm)].map((match) => match[1]!);
}

// --- the agent and its control link ----------------------------------------------------------------------

/** The shared agent in the pod's network namespace, with the operator's control link on its stdio. */
class SharedAgent {
  readonly child: ChildProcess;
  readonly control: Link<OperatorToAgent, AgentToOperator>;
  readonly rpc: RpcClient<ControlRequest, ControlResults>;
  readonly socketPath: string;
  /** The agent's `session` reports on the control link, in order. */
  readonly sessionEvents: SessionStateEvent[] = [];
  stderr = '';
  private readonly dir: string;

  private constructor(pod: Pod) {
    this.dir = mkdtempSync(join(tmpdir(), 'remocal-shared-'));
    this.socketPath = join(this.dir, 'agent.sock');
    this.child = startChild(
      'nsenter',
      [`--net=${pod.netnsPath}`, '--', process.execPath, '--import', import.meta.resolve('tsx'), agentMain, '--pid', String(pod.pid), '--sessions', this.socketPath],
      { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, NODE_OPTIONS: '' } },
    );
    this.child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (this.stderr += chunk));
    this.control = new Link<OperatorToAgent, AgentToOperator>(
      { readable: this.child.stdout!, writable: this.child.stdin! },
      { role: 'operator', streamIdParity: 'odd', info: { pid: process.pid } },
    );
    this.control.on('message', (message) => {
      if (message.type === 'session') this.sessionEvents.push(message);
    });
    this.rpc = new RpcClient<ControlRequest, ControlResults>(this.control, { defaultTimeoutMs: 10_000 });
  }

  /** Starts the agent; resolves once its control link is up, which is after its session socket listens. */
  static async start(pod: Pod): Promise<SharedAgent> {
    const agent = new SharedAgent(pod);
    onCleanup(() => agent.stop());
    try {
      await agent.control.handshake(30_000);
    } catch (error) {
      throw new Error(`the shared agent did not come up: ${(error as Error).message}\nstderr: ${agent.stderr}`);
    }
    return agent;
  }

  async sessions(): Promise<SessionStats[]> {
    const result = await this.rpc.request({ op: 'agent.sessions' });
    assert.ok(result.ok, `agent.sessions failed: ${JSON.stringify(result)}`);
    return result.value.sessions;
  }

  /** Resolves once the agent reported `state` for `session` on the control link. */
  reported(session: string, state: SessionStateEvent['state']): Promise<SessionStateEvent> {
    return waitFor(
      () => this.sessionEvents.find((event) => event.session === session && event.state === state),
      `the agent to report session ${session} ${state}\nstderr: ${this.stderr}`,
    );
  }

  exited(timeoutMs: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    return within(childExited(this.child), `the agent to exit\nstderr: ${this.stderr}`, timeoutMs);
  }

  async stop(): Promise<void> {
    this.control.close();
    await this.exited(40_000).catch(() => undefined);
    await stopChild(this.child, 1000);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

// --- one session ---------------------------------------------------------------------------------------

/** What a session's local server saw. */
interface Seen {
  /** How the request reached the session: a stolen request, or a mirrored copy of the connection. */
  via: IncomingMode;
  path: string;
  dev: string | undefined;
}

/** A local HTTP server standing in for the session's app; it records what it receives in `seen`. */
async function startApp(name: string, via: IncomingMode, seen: Seen[]): Promise<number> {
  const server = http.createServer((request, response) => {
    const dev = request.headers['x-dev'];
    seen.push({ via, path: request.url ?? '', dev: typeof dev === 'string' ? dev : undefined });
    request.resume();
    request.on('end', () => response.end(JSON.stringify({ from: name, path: request.url })));
  });
  const sockets = new Set<Socket>();
  server.on('connection', (socket) => sockets.add(socket));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  onCleanup(
    () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  );
  return (server.address() as { port: number }).port;
}

/**
 * One session as the operator would open it for an intproxy: preamble line, then a Link on the socket. Its
 * streams go to a local HTTP server answering `{"from": <name>}`, as the intproxy connects them to the app;
 * mirrored copies go to a second one, whose answers are dropped as the intproxy drops them.
 */
class SessionClient {
  readonly seen: Seen[] = [];
  readonly events: AgentEvent[] = [];
  readonly announced: IncomingEvent[] = [];
  readonly link: Link<IntproxyToAgent, AgentToIntproxy>;
  readonly rpc: RpcClient<AgentRequest, AgentResults>;
  /** Resolves when the session's link closed, with its error if it failed. */
  readonly closed: Promise<Error | undefined>;
  private readonly modes = new Map<number, IncomingMode>();
  private readonly ports: Record<IncomingMode, number> = { steal: 0, mirror: 0 };

  private constructor(
    readonly name: string,
    private readonly socket: Socket,
  ) {
    this.link = new Link<IntproxyToAgent, AgentToIntproxy>({ readable: socket, writable: socket }, { role: 'intproxy', streamIdParity: 'odd', info: { pid: process.pid } });
    this.rpc = new RpcClient<AgentRequest, AgentResults>(this.link, { defaultTimeoutMs: 15_000 });
    this.closed = new Promise((resolve) => this.link.once('close', resolve));
    this.link.on('message', (message) => {
      if (message.type === 'incoming') this.onIncoming(message);
      else if (message.type === 'event') this.events.push(message.event);
    });
  }

  /** Session id `name`, owned by `<name>-owner`; resolves once the session's link is up. */
  static async open(agent: SharedAgent, name: string, extra: Pick<SessionPreamble, 'env' | 'policies'> = {}): Promise<SessionClient> {
    const socket = await connectUnix(agent.socketPath);
    const preamble: SessionPreamble = { kind: 'session', session: name, owner: `${name}-owner`, files: 'read', ...extra };
    socket.write(`${JSON.stringify(preamble)}\n`);
    const session = new SessionClient(name, socket);
    onCleanup(() => session.close());
    session.ports.steal = await startApp(name, 'steal', session.seen);
    session.ports.mirror = await startApp(name, 'mirror', session.seen);
    await session.link.handshake(10_000);
    return session;
  }

  subscribe(port: number, mode: IncomingMode, filter: HttpFilterSpec | null = null): Promise<Result<SubscribeResult>> {
    return this.rpc.request({ op: 'incoming.subscribe', port, mode, filter }).then((result) => {
      if (result.ok) this.modes.set(result.value.subscription, mode);
      return result;
    });
  }

  /** Subscribes, and fails the test if the agent refuses. */
  async take(port: number, mode: IncomingMode, filter: HttpFilterSpec | null = null): Promise<number> {
    const result = await this.subscribe(port, mode, filter);
    assert.ok(result.ok, `${this.name}: ${mode} of port ${port} was refused: ${JSON.stringify(result)}`);
    return result.value.subscription;
  }

  /** The paths this session served (steal), or saw copies of (mirror), in order. */
  paths(via: IncomingMode): string[] {
    return this.seen.filter((entry) => entry.via === via).map((entry) => entry.path);
  }

  /** Ends the session as the operator does when its client leaves: the connection closes. */
  async close(): Promise<void> {
    this.link.close();
    this.socket.destroy();
    await this.closed;
  }

  private onIncoming(event: IncomingEvent): void {
    this.announced.push(event);
    const stream = this.link.acceptStream(event.stream);
    const mode = this.modes.get(event.subscription) ?? 'steal';
    const local = connect({ host: '127.0.0.1', port: this.ports[mode], allowHalfOpen: true });
    onCleanup(() => void local.destroy());
    local.once('error', () => stream.destroy());
    local.once('connect', () => {
      if (mode === 'mirror') {
        local.setNoDelay(true);
        stream.pipe(local);
        local.resume();
        stream.on('error', () => local.destroy());
      } else {
        splice(local, stream);
      }
    });
  }
}

function connectUnix(path: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(path);
    socket.once('connect', () => {
      socket.off('error', reject);
      resolve(socket);
    });
    socket.once('error', reject);
  });
}

// --- the client, from the host ------------------------------------------------------------------------------

/** An HTTP client with one kept-alive connection to the pod's app port, recording which sockets it used. */
class KeepAliveClient {
  readonly sockets = new Set<Socket>();
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 1 });

  constructor(
    private readonly host: string,
    private readonly port: number,
  ) {
    onCleanup(() => this.close());
  }

  /** Who answered `path` (sent with `x-dev: <dev>` if given). */
  get(path: string, dev?: string): Promise<string> {
    return within(
      new Promise<string>((resolve, reject) => {
        const headers = dev === undefined ? {} : { 'x-dev': dev };
        const request = http.request({ host: this.host, port: this.port, path, headers, agent: this.agent }, (response) => {
          this.sockets.add(response.socket as Socket);
          let body = '';
          response.setEncoding('utf8');
          response.on('data', (chunk: string) => (body += chunk));
          response.on('end', () => resolve(answeredFrom(body)));
        });
        request.on('error', reject);
        request.end();
      }),
      `an answer to ${path}`,
    );
  }

  close(): void {
    this.agent.destroy();
  }
}

// --- the tests --------------------------------------------------------------------------------------------

describe('shared agent (agent --sessions)', { timeout: 10 * TEST_TIMEOUT_MS }, () => {
  let pod: Pod;
  before(async () => {
    pod = await createTestPod();
  });
  after(async () => {
    await pod.destroy();
  });
  afterEach(async () => {
    for (const undo of cleanups.splice(0).reverse()) await undo();
  });

  /**
   * The paths of the requests the pod's own app received, in order, once it has reported `count` of them: the
   * pod reports each request on its stdout, which may arrive after the answer reached the client.
   */
  const targetPaths = async (prefix: string, count: number): Promise<string[]> => {
    const seen = (): string[] =>
      pod.httpRequests.filter((request) => request.service === 'target' && request.path.startsWith(prefix)).map((request) => request.path);
    await waitFor(() => seen().length >= count || undefined, `the pod to report ${count} requests under ${prefix} (saw ${seen().join(' ')})`).catch(() => undefined);
    return seen();
  };

  const aliceOnly: HttpFilterSpec = { header_filter: '^x-dev: alice$' };
  const bobOnly: HttpFilterSpec = { header_filter: '^x-dev: bob$' };

  it('routes each request of one keep-alive connection to the session whose filter matches, the rest to the app', { timeout: TEST_TIMEOUT_MS }, async () => {
    const agent = await SharedAgent.start(pod);
    const alice = await SessionClient.open(agent, 'alice');
    const bob = await SessionClient.open(agent, 'bob');
    await alice.take(pod.ports.target, 'steal', aliceOnly);
    await bob.take(pod.ports.target, 'steal', bobOnly);

    const client = new KeepAliveClient(pod.ip, pod.ports.target);
    const sent: [string, string | undefined, string][] = [
      ['/t1/1', 'alice', 'alice'],
      ['/t1/2', 'bob', 'bob'],
      ['/t1/3', undefined, 'target'],
      ['/t1/4', 'bob', 'bob'],
      ['/t1/5', 'alice', 'alice'],
      ['/t1/6', 'carol', 'target'],
      ['/t1/7', 'alice', 'alice'],
      ['/t1/8', undefined, 'target'],
    ];
    for (const [path, dev, expected] of sent) assert.equal(await client.get(path, dev), expected, `${path} (x-dev: ${dev})`);

    assert.equal(client.sockets.size, 1, 'every request went over the one kept-alive connection');
    assert.deepEqual(alice.paths('steal'), ['/t1/1', '/t1/5', '/t1/7']);
    assert.deepEqual(bob.paths('steal'), ['/t1/2', '/t1/4']);
    assert.deepEqual(await targetPaths('/t1/', 3), ['/t1/3', '/t1/6', '/t1/8']);
    assert.ok(alice.announced.every((event) => event.kind === 'request') && bob.announced.every((event) => event.kind === 'request'));
  });

  it('gives a mirroring session its copy of every request while the answers still come from the right places', { timeout: TEST_TIMEOUT_MS }, async () => {
    const agent = await SharedAgent.start(pod);
    const alice = await SessionClient.open(agent, 'alice');
    const bob = await SessionClient.open(agent, 'bob');
    const watcher = await SessionClient.open(agent, 'watcher');
    await alice.take(pod.ports.target, 'steal', aliceOnly);
    await bob.take(pod.ports.target, 'steal', bobOnly);
    await watcher.take(pod.ports.target, 'mirror');

    const client = new KeepAliveClient(pod.ip, pod.ports.target);
    assert.equal(await client.get('/t2/1', 'alice'), 'alice');
    assert.equal(await client.get('/t2/2'), 'target');
    assert.equal(await client.get('/t2/3', 'bob'), 'bob');
    assert.equal(await client.get('/t2/4', 'alice'), 'alice');
    assert.equal(await client.get('/t2/5'), 'target');
    assert.equal(client.sockets.size, 1);

    const all = ['/t2/1', '/t2/2', '/t2/3', '/t2/4', '/t2/5'];
    // The copy travels beside the answers: wait for it rather than assume it arrived first.
    await waitFor(() => watcher.paths('mirror').length >= all.length || undefined, `the mirror's copies (saw ${watcher.paths('mirror').join(' ')})`);
    assert.deepEqual(watcher.paths('mirror'), all, 'the mirror saw every request, in order');
    assert.deepEqual(watcher.paths('steal'), [], 'the mirror served nothing');
    assert.equal(watcher.announced.length, 1, 'one copy per client connection');
    assert.equal(watcher.announced[0]!.kind, 'connection');
    assert.deepEqual(alice.paths('steal'), ['/t2/1', '/t2/4']);
    assert.deepEqual(bob.paths('steal'), ['/t2/3']);
    assert.deepEqual(await targetPaths('/t2/', 2), ['/t2/2', '/t2/5']);
  });

  it('leaves the other sessions, the kept-alive connection and the one chain intact when one session ends', { timeout: TEST_TIMEOUT_MS }, async () => {
    const agent = await SharedAgent.start(pod);
    const alice = await SessionClient.open(agent, 'alice');
    const bob = await SessionClient.open(agent, 'bob');
    await alice.take(pod.ports.target, 'steal', aliceOnly);
    await bob.take(pod.ports.target, 'steal', bobOnly);
    assert.equal((await remocalChains(pod)).length, 1);

    const client = new KeepAliveClient(pod.ip, pod.ports.target);
    assert.equal(await client.get('/t3/1', 'alice'), 'alice');
    assert.equal(await client.get('/t3/2', 'bob'), 'bob');

    await alice.close();
    await agent.reported('alice', 'closed');
    assert.deepEqual((await agent.sessions()).map((session) => session.session), ['bob']);

    assert.equal(await client.get('/t3/3', 'alice'), 'target', "alice's requests are the app's again");
    assert.equal(await client.get('/t3/4', 'bob'), 'bob');
    assert.equal(await client.get('/t3/5'), 'target');
    assert.equal(await client.get('/t3/6', 'bob'), 'bob');
    assert.equal(client.sockets.size, 1, 'the client connection survived the session');
    assert.deepEqual(alice.paths('steal'), ['/t3/1']);
    assert.deepEqual(bob.paths('steal'), ['/t3/2', '/t3/4', '/t3/6']);
    assert.deepEqual(await targetPaths('/t3/', 2), ['/t3/3', '/t3/5']);
    assert.equal((await remocalChains(pod)).length, 1, 'still exactly one remocal chain');
    assert.equal(bob.link.closed, false);
  });

  it('refuses conflicting steals with REMOCAL_PORT_HELD naming the holders, and a second subscription of one port', { timeout: TEST_TIMEOUT_MS }, async () => {
    const agent = await SharedAgent.start(pod);
    const alice = await SessionClient.open(agent, 'alice');
    const bob = await SessionClient.open(agent, 'bob');
    const carol = await SessionClient.open(agent, 'carol');
    await alice.take(pod.ports.target, 'steal', aliceOnly);
    await bob.take(pod.ports.target, 'steal', bobOnly);

    const whole = await carol.subscribe(pod.ports.target, 'steal');
    assert.ok(!whole.ok, 'a whole-port steal on a port held by filtered steals is refused');
    assert.equal(whole.error.code, 'REMOCAL_PORT_HELD');
    for (const holder of ['session alice (alice-owner)', 'session bob (bob-owner)']) assert.match(whole.error.message, new RegExp(holder.replace(/[()]/g, '\\$&')));

    // Another port, which carol steals whole (nothing needs to listen there for the rule to be set).
    const otherPort = pod.ports.target + 1;
    await carol.take(otherPort, 'steal');
    const filtered = await alice.subscribe(otherPort, 'steal', aliceOnly);
    assert.ok(!filtered.ok, 'a filtered steal on a port stolen whole is refused');
    assert.equal(filtered.error.code, 'REMOCAL_PORT_HELD');
    assert.match(filtered.error.message, /stolen whole by session carol \(carol-owner\)/);

    const twice = await alice.subscribe(pod.ports.target, 'steal', aliceOnly);
    assert.ok(!twice.ok);
    assert.equal(twice.error.code, 'EADDRINUSE');
    const twiceMirror = await alice.subscribe(pod.ports.target, 'mirror');
    assert.ok(!twiceMirror.ok);
    assert.equal(twiceMirror.error.code, 'EADDRINUSE');

    // The refusals changed nothing: the holders still get their requests.
    const client = new KeepAliveClient(pod.ip, pod.ports.target);
    assert.equal(await client.get('/t4/1', 'alice'), 'alice');
    assert.equal(await client.get('/t4/2', 'bob'), 'bob');
    assert.equal(await client.get('/t4/3'), 'target');
    const subscriptions = Object.fromEntries((await agent.sessions()).map((session) => [session.session, session.subscriptions.map((s) => s.port)]));
    assert.deepEqual(subscriptions, { alice: [pod.ports.target], bob: [pod.ports.target], carol: [otherPort] });
  });

  it('lays the operator\'s env for one session over the target\'s environment, for that session alone, even where a policy holds the environment back', { timeout: TEST_TIMEOUT_MS }, async () => {
    const agent = await SharedAgent.start(pod);
    const split = await SessionClient.open(agent, 'split', { env: { ORDERS_QUEUE: 'orders.remocal.split', GREETING: 'from the operator' } });
    const plain = await SessionClient.open(agent, 'plain');
    const held = await SessionClient.open(agent, 'held', {
      env: { ORDERS_QUEUE: 'orders.remocal.held' },
      policies: [{ kind: 'RemocalPolicy', name: 'shop/no-env', spec: { block: ['env'] } }],
    });
    const envOf = async (session: SessionClient) => {
      const answer = await session.rpc.request({ op: 'env.get' });
      assert.ok(answer.ok, JSON.stringify(answer));
      return answer.value.env!;
    };
    const [splitEnv, plainEnv, heldEnv] = [await envOf(split), await envOf(plain), await envOf(held)];
    assert.equal(splitEnv.ORDERS_QUEUE, 'orders.remocal.split');
    assert.equal(splitEnv.GREETING, 'from the operator');
    assert.equal(splitEnv.DATABASE_URL, plainEnv.DATABASE_URL, 'the rest is the target\'s own');
    assert.equal(plainEnv.GREETING, 'hello from the pod');
    assert.equal(plainEnv.ORDERS_QUEUE, undefined);
    assert.deepEqual(heldEnv, { ORDERS_QUEUE: 'orders.remocal.held' });
  });

  it('lists the sessions on the control link and ends one with session.end', { timeout: TEST_TIMEOUT_MS }, async () => {
    const agent = await SharedAgent.start(pod);
    const alice = await SessionClient.open(agent, 'alice');
    const bob = await SessionClient.open(agent, 'bob');
    await agent.reported('alice', 'ready');
    await agent.reported('bob', 'ready');
    const before = Date.now();
    await alice.take(pod.ports.target, 'steal', aliceOnly);
    await bob.take(pod.ports.target, 'steal', bobOnly);

    const client = new KeepAliveClient(pod.ip, pod.ports.target);
    assert.equal(await client.get('/t5/1', 'alice'), 'alice');
    assert.equal(await client.get('/t5/2', 'alice'), 'alice');
    assert.equal(await client.get('/t5/3', 'bob'), 'bob');
    assert.equal(await client.get('/t5/4'), 'target');

    const listed = (await agent.sessions()).sort((a, b) => a.session.localeCompare(b.session));
    assert.deepEqual(
      listed.map(({ session, owner, ready, routed, subscriptions }) => ({
        session,
        owner,
        ready,
        routed,
        subscriptions: subscriptions.map(({ port, mode, filter }) => ({ port, mode, filter })),
      })),
      [
        { session: 'alice', owner: 'alice-owner', ready: true, routed: 2, subscriptions: [{ port: pod.ports.target, mode: 'steal', filter: aliceOnly }] },
        { session: 'bob', owner: 'bob-owner', ready: true, routed: 1, subscriptions: [{ port: pod.ports.target, mode: 'steal', filter: bobOnly }] },
      ],
    );
    for (const session of listed) {
      assert.ok(session.subscriptions[0]!.since >= before - 1000);
      assert.ok(session.lastActivity >= before - 1000);
    }

    const ended = await agent.rpc.request({ op: 'session.end', session: 'bob', code: 'REMOCAL_SESSION_KILLED', reason: 'ended by an admin', hint: 'start it again' });
    assert.deepEqual(ended, { ok: true, value: { found: true } });
    assert.equal(await within(bob.closed, "bob's link to close"), undefined, 'the link closes cleanly');
    assert.deepEqual(bob.events, [{ kind: 'session_closed', code: 'REMOCAL_SESSION_KILLED', reason: 'ended by an admin', hint: 'start it again' }]);
    await agent.reported('bob', 'closed');
    assert.deepEqual((await agent.sessions()).map((session) => session.session), ['alice']);
    assert.deepEqual(await agent.rpc.request({ op: 'session.end', session: 'nobody', code: 'X', reason: 'y' }), { ok: true, value: { found: false } });

    assert.equal(await client.get('/t5/5', 'bob'), 'target');
    assert.equal(await client.get('/t5/6', 'alice'), 'alice');
    assert.equal(alice.link.closed, false);
  });

  it('ends when the control link closes, and removes its chain', { timeout: TEST_TIMEOUT_MS }, async () => {
    const agent = await SharedAgent.start(pod);
    const alice = await SessionClient.open(agent, 'alice');
    await alice.take(pod.ports.target, 'steal', aliceOnly);
    const client = new KeepAliveClient(pod.ip, pod.ports.target);
    assert.equal(await client.get('/t6/1', 'alice'), 'alice');
    assert.equal((await remocalChains(pod)).length, 1);
    // An idle kept-alive client connection would hold the agent's drain for its full 30 s.
    client.close();

    agent.control.close();
    assert.deepEqual(await agent.exited(20_000), { code: 0, signal: null });
    await within(alice.closed, "alice's link to close");
    assert.ok(
      alice.events.some((event) => event.kind === 'session_closed' && event.code === 'REMOCAL_AGENT_LOST'),
      `alice was told why: ${JSON.stringify(alice.events)}`,
    );
    assert.deepEqual(await remocalChains(pod), [], 'no remocal chain is left in the pod');
    const fresh = new KeepAliveClient(pod.ip, pod.ports.target);
    assert.equal(await fresh.get('/t6/2', 'alice'), 'target');
  });

  it('drops connections with a bad preamble and keeps serving', { timeout: TEST_TIMEOUT_MS }, async () => {
    const agent = await SharedAgent.start(pod);
    const longButValid = JSON.stringify({ kind: 'session', session: 'padded', owner: 'x', files: 'read', padding: 'p'.repeat(MAX_PREAMBLE_BYTES + 1000) });
    const bad: [string, string][] = [
      ['not JSON', 'hello agent\n'],
      [`longer than ${MAX_PREAMBLE_BYTES} bytes without a newline`, 'x'.repeat(MAX_PREAMBLE_BYTES + 1000)],
      [`longer than ${MAX_PREAMBLE_BYTES} bytes, with its newline`, `${longButValid}\n`],
      ['policies that are not a list', `${JSON.stringify({ kind: 'session', session: 'badpolicies', owner: 'x', files: 'read', policies: 'all' })}\n`],
      ['a policy without a spec', `${JSON.stringify({ kind: 'session', session: 'nospec', owner: 'x', files: 'read', policies: [{ kind: 'RemocalPolicy', name: 'shop/x' }] })}\n`],
      ['no session id', `${JSON.stringify({ kind: 'session', owner: 'x', files: 'read' })}\n`],
      ['no owner', `${JSON.stringify({ kind: 'session', session: 'noowner', files: 'read' })}\n`],
      ['no files mode', `${JSON.stringify({ kind: 'session', session: 'nofiles', owner: 'x' })}\n`],
      ['another kind', `${JSON.stringify({ kind: 'control', session: 'other', owner: 'x', files: 'read' })}\n`],
      ['an invalid session id', `${JSON.stringify({ kind: 'session', session: '../Evil', owner: 'x', files: 'read' })}\n`],
      ['env that is not an object', `${JSON.stringify({ kind: 'session', session: 'badenv', owner: 'x', files: 'read', env: ['A=1'] })}\n`],
      ['env with a name that is not a variable name', `${JSON.stringify({ kind: 'session', session: 'badname', owner: 'x', files: 'read', env: { 'A=B': '1' } })}\n`],
      ['env with a value that is not a string', `${JSON.stringify({ kind: 'session', session: 'badvalue', owner: 'x', files: 'read', env: { A: 1 } })}\n`],
      ['env with too many vars', `${JSON.stringify({ kind: 'session', session: 'manyenv', owner: 'x', files: 'read', env: Object.fromEntries(Array.from({ length: 65 }, (_, index) => [`V${index}`, 'x'])) })}\n`],
    ];
    for (const [what, bytes] of bad) {
      const socket = await connectUnix(agent.socketPath);
      onCleanup(() => void socket.destroy());
      socket.on('error', () => undefined);
      socket.resume();
      const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
      socket.write(bytes);
      await within(closed, `the agent to drop a preamble with ${what}`);
    }
    assert.deepEqual(await agent.sessions(), [], 'none of them became a session');

    const alice = await SessionClient.open(agent, 'alice');
    await alice.take(pod.ports.target, 'steal', aliceOnly);
    const client = new KeepAliveClient(pod.ip, pod.ports.target);
    assert.equal(await client.get('/t7/1', 'alice'), 'alice');
    assert.equal(await client.get('/t7/2'), 'target');
    assert.deepEqual((await agent.sessions()).map((session) => session.session), ['alice']);
  });

  it('routes one request to each of 20 sessions filtering the same port', { timeout: TEST_TIMEOUT_MS }, async () => {
    const agent = await SharedAgent.start(pod);
    const names = Array.from({ length: 20 }, (_, index) => `dev-${String(index).padStart(2, '0')}`);
    const sessions = await Promise.all(names.map((name) => SessionClient.open(agent, name)));
    for (const session of sessions) await session.take(pod.ports.target, 'steal', { header_filter: `^x-dev: ${session.name}$` });
    assert.equal((await agent.sessions()).length, 20);
    assert.equal((await remocalChains(pod)).length, 1, 'one chain, whoever subscribes');

    const client = new KeepAliveClient(pod.ip, pod.ports.target);
    // Reverse order, so that a request does not simply go to the session that subscribed first.
    for (const name of [...names].reverse()) assert.equal(await client.get(`/t8/${name}`, name), name);
    assert.equal(await client.get('/t8/none'), 'target');

    for (const session of sessions) {
      assert.deepEqual(session.seen, [{ via: 'steal', path: `/t8/${session.name}`, dev: session.name }], `${session.name} got exactly its own request`);
    }
    assert.deepEqual(await targetPaths('/t8/', 1), ['/t8/none']);
    const routed = Object.fromEntries((await agent.sessions()).map((session) => [session.session, session.routed]));
    assert.deepEqual(routed, Object.fromEntries(names.map((name) => [name, 1])));
  });
});
