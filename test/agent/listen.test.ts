// The real agent process in listen mode (`agent --listen`, as it runs in a Kubernetes pod), driven over real
// loopback sockets: the key handshake, one client only, and every way the agent ends without its client.

import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readlinkSync, rmdirSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { childExited, startChild, stopChild } from '../../src/core/child.js';
import { AGENT_AUTH_MAGIC, AGENT_KEY_ENV, AGENT_NONCE_BYTES, AUTH_ACCEPTED, newSessionKeys, signNonce } from '../../src/protocol/agent-auth.js';
import { Link, type LinkTransport } from '../../src/protocol/link.js';
import type { AgentRequest, AgentResults, AgentToIntproxy, IntproxyToAgent } from '../../src/protocol/messages.js';
import { RpcClient } from '../../src/protocol/rpc.js';

const agentMain = fileURLToPath(new URL('../../src/agent/main.ts', import.meta.url));
const KEYS = newSessionKeys();
const SECRET = KEYS.privateKey;

const agents: AgentRun[] = [];
const sockets: Socket[] = [];
after(async () => {
  for (const socket of sockets) socket.destroy();
  await Promise.all(agents.map((agent) => agent.stop()));
});

/** The agent script under tsx, as a pod would run the bundle, with its stdout and stderr collected. */
class AgentRun {
  readonly child: ChildProcess;
  stdout = '';
  stderr = '';

  constructor(args: readonly string[], env: NodeJS.ProcessEnv = { [AGENT_KEY_ENV]: KEYS.publicKey }) {
    const { [AGENT_KEY_ENV]: _inherited, ...base } = process.env;
    this.child = startChild(process.execPath, ['--import', import.meta.resolve('tsx'), agentMain, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...base, NODE_OPTIONS: '', ...env },
    });
    this.child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (this.stdout += chunk));
    this.child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (this.stderr += chunk));
    agents.push(this);
  }

  /** The port from the agent's `remocal-agent listening <host>:<port>` line. */
  async port(timeoutMs = 15_000): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const match = /^remocal-agent listening 127\.0\.0\.1:(\d+)$/m.exec(this.stdout);
      if (match !== null) return Number(match[1]);
      if (this.child.exitCode !== null || Date.now() > deadline) {
        throw new Error(`the agent did not listen (exit ${this.child.exitCode})\nstdout: ${this.stdout}\nstderr: ${this.stderr}`);
      }
      await delay(20);
    }
  }

  async exit(timeoutMs: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    // Unref'd: a timer left over from a race already won must not hold the test process open.
    const timeout = delay(timeoutMs, null, { ref: false });
    const exited = await Promise.race([childExited(this.child), timeout]);
    if (exited === null) throw new Error(`the agent still runs after ${timeoutMs} ms\nstderr: ${this.stderr}`);
    return exited;
  }

  /** Log lines and the client's view of a socket travel separately: wait for the line rather than assume it. */
  async logged(pattern: RegExp, timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!pattern.test(this.stderr)) {
      if (Date.now() > deadline) throw new Error(`the agent did not log ${pattern}\nstderr: ${this.stderr}`);
      await delay(20);
    }
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  stop(): Promise<void> {
    return stopChild(this.child, 1000);
  }
}

function listenAgent(...extra: string[]): AgentRun {
  return new AgentRun(['--listen', '127.0.0.1:0', '--pid', String(process.pid), ...extra]);
}

function connectTo(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    sockets.push(socket);
    socket.once('connect', () => {
      socket.off('error', reject);
      resolve(socket);
    });
    socket.once('error', reject);
  });
}

/** Exactly n bytes, leaving whatever follows buffered for the next reader; null if the socket ends first. */
function readExactly(socket: Socket, bytes: number, timeoutMs = 5000): Promise<Buffer | null> {
  return new Promise((resolve, reject) => {
    const done = (result: Buffer | null): void => {
      clearTimeout(timer);
      socket.off('readable', onReadable);
      socket.off('close', onClose);
      resolve(result);
    };
    const onReadable = (): void => {
      const chunk = socket.read(bytes) as Buffer | null;
      if (chunk !== null) done(chunk.length === bytes ? chunk : null);
    };
    const onClose = (): void => done(null);
    const timer = setTimeout(() => reject(new Error(`no ${bytes} bytes within ${timeoutMs} ms`)), timeoutMs);
    socket.on('readable', onReadable);
    socket.once('close', onClose);
  });
}

async function readChallenge(socket: Socket): Promise<Buffer> {
  const challenge = await readExactly(socket, AGENT_AUTH_MAGIC.length + AGENT_NONCE_BYTES);
  assert.ok(challenge !== null, 'the agent closed before sending its nonce');
  assert.deepEqual(challenge.subarray(0, AGENT_AUTH_MAGIC.length), AGENT_AUTH_MAGIC);
  return challenge.subarray(AGENT_AUTH_MAGIC.length);
}

/** Connects and answers the agent's nonce with a signature by `privateKey`; answer is null if the agent hung up. */
async function authenticate(port: number, privateKey: string): Promise<{ socket: Socket; answer: number | null }> {
  const socket = await connectTo(port);
  socket.on('error', () => undefined);
  const nonce = await readChallenge(socket);
  socket.write(signNonce(privateKey, nonce));
  const answer = await readExactly(socket, 1);
  return { socket, answer: answer === null ? null : answer[0]! };
}

function clientLink(transport: LinkTransport): {
  link: Link<IntproxyToAgent, AgentToIntproxy>;
  rpc: RpcClient<AgentRequest, AgentResults>;
} {
  // As the intproxy's agent-link.ts makes it: the side that connected opens odd streams.
  const link = new Link<IntproxyToAgent, AgentToIntproxy>(transport, { role: 'intproxy', streamIdParity: 'odd', info: { pid: process.pid } });
  return { link, rpc: new RpcClient<AgentRequest, AgentResults>(link) };
}

describe('agent --listen', () => {
  it('refuses to start without the session key in its env', { timeout: 20_000 }, async () => {
    const agent = new AgentRun(['--listen', '127.0.0.1:0', '--pid', String(process.pid)], {});
    const { code } = await agent.exit(15_000);
    assert.equal(code, 2);
    await agent.logged(new RegExp(AGENT_KEY_ENV));
    assert.doesNotMatch(agent.stdout, /listening/);
  });

  it('drops a wrong proof and a prober that hangs up, and still takes its client after them', { timeout: 30_000 }, async () => {
    const agent = listenAgent();
    const port = await agent.port();

    // The private key of another session: a valid signature, by the wrong key.
    const wrong = await authenticate(port, newSessionKeys().privateKey);
    assert.equal(wrong.answer, null, 'a wrong proof must get no answer but a closed connection');

    const prober = await connectTo(port);
    prober.on('error', () => undefined);
    await readChallenge(prober);
    prober.destroy();

    const right = await authenticate(port, SECRET);
    assert.equal(right.answer, AUTH_ACCEPTED);
    await agent.logged(/wrong proof/);
    assert.equal(agent.running, true);
    right.socket.destroy();
    await agent.exit(10_000);
  });

  describe('with its one client', () => {
    let agent: AgentRun;
    let port: number;
    let client: ReturnType<typeof clientLink>;

    before(async () => {
      agent = listenAgent();
      port = await agent.port();
    });

    it('accepts the right proof, then speaks the protocol over the same connection', { timeout: 30_000 }, async () => {
      const { socket, answer } = await authenticate(port, SECRET);
      assert.equal(answer, AUTH_ACCEPTED);
      client = clientLink({ readable: socket, writable: socket });
      const hello = await client.link.handshake(10_000);
      assert.equal(hello.role, 'agent');
      assert.equal(typeof (await client.rpc.ping(5000)), 'number');
      const env = await client.rpc.request({ op: 'env.get' }, 5000);
      assert.equal(env.ok, true);
    });

    it('refuses every connection after its client', { timeout: 10_000 }, async () => {
      await assert.rejects(connectTo(port), { code: 'ECONNREFUSED' });
      // The session is untouched by the attempt.
      assert.equal(typeof (await client.rpc.ping(5000)), 'number');
    });

    it('exits when its client closes the link', { timeout: 20_000 }, async () => {
      client.link.close();
      const { code } = await agent.exit(15_000);
      assert.equal(code, 0);
    });
  });

  it('keeps what the client sent in the same segment as its proof', { timeout: 30_000 }, async () => {
    const agent = listenAgent();
    const socket = await connectTo(await agent.port());
    socket.on('error', () => undefined);
    const nonce = await readChallenge(socket);
    // The link reads from a stream fed only after AUTH_ACCEPTED, but writes to the socket at once: its hello
    // leaves in one write with the proof, before the agent has accepted anything.
    const inbound = new PassThrough();
    const client = clientLink({ readable: inbound, writable: socket });
    socket.cork();
    socket.write(signNonce(SECRET, nonce));
    const handshake = client.link.handshake(10_000);
    const ping = client.rpc.ping(10_000);
    socket.uncork();
    const answer = await readExactly(socket, 1);
    assert.equal(answer?.[0], AUTH_ACCEPTED);
    socket.pipe(inbound);
    await handshake;
    assert.equal(typeof (await ping), 'number');
    client.link.close();
    assert.equal((await agent.exit(15_000)).code, 0);
  });

  it('exits 0 when no client comes within --ttl', { timeout: 20_000 }, async () => {
    const agent = listenAgent('--ttl', '1');
    await agent.port();
    const started = Date.now();
    const { code } = await agent.exit(10_000);
    assert.equal(code, 0);
    assert.ok(Date.now() - started < 5000);
    await agent.logged(/no client within ttl/);
  });

  it('drops a client that sends nothing for --idle-timeout, and exits', { timeout: 20_000 }, async () => {
    const agent = listenAgent('--idle-timeout', '1');
    const { socket, answer } = await authenticate(await agent.port(), SECRET);
    assert.equal(answer, AUTH_ACCEPTED);
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    socket.resume();
    const started = Date.now();
    // Well before the agent's own 10 s wait for a hello would end the session anyway. (Its code is that of a
    // session that never began, a failure: what matters here is that it goes.)
    await agent.exit(6000);
    assert.ok(Date.now() - started < 5000);
    await closed;
    await agent.logged(/nothing arrived from the client/);
  });

  it('keeps a client that pings more often than --idle-timeout, and ends the session once it falls silent', { timeout: 20_000 }, async () => {
    const agent = listenAgent('--idle-timeout', '1');
    const { socket } = await authenticate(await agent.port(), SECRET);
    const client = clientLink({ readable: socket, writable: socket });
    await client.link.handshake(10_000);
    const until = Date.now() + 2500;
    while (Date.now() < until) {
      await client.rpc.ping(2000);
      await delay(250);
    }
    assert.equal(agent.running, true);
    assert.equal(client.link.closed, false);
    assert.doesNotMatch(agent.stderr, /nothing arrived/);

    const linkClosed = new Promise<void>((resolve) => client.link.once('close', () => resolve()));
    const silentSince = Date.now();
    const { code } = await agent.exit(6000);
    assert.equal(code, 0);
    assert.ok(Date.now() - silentSince < 5000);
    await agent.logged(/nothing arrived from the client/);
    await linkClosed;
  });
});

describe('agent --container-id', () => {
  it('exits 3 when no process is in that container', { timeout: 20_000 }, async () => {
    const agent = new AgentRun(['--container-id', `containerd://${'0'.repeat(64)}`, '--listen', '127.0.0.1:0']);
    const { code } = await agent.exit(15_000);
    assert.equal(code, 3);
    await agent.logged(/containerd:\/\/0{64}/);
  });

  it('runs again under nsenter in the container\'s network namespace, and exits with its code', { timeout: 30_000 }, async (t) => {
    const id = randomBytes(32).toString('hex');
    const target = startChild('unshare', ['--net', 'sleep', '60'], { stdio: 'ignore' });
    const cgroup = containerCgroup(target.pid!, id);
    if (cgroup === null) {
      await stopChild(target, 500);
      t.skip('cannot make a container cgroup here (needs root and a writable cgroup hierarchy)');
      return;
    }
    try {
      // unshare has exec'd sleep by the time its netns differs from ours.
      const ownNetns = readlinkSync('/proc/self/ns/net');
      for (let tries = 0; readlinkSync(`/proc/${target.pid}/ns/net`) === ownNetns; tries++) {
        assert.ok(tries < 200, 'unshare did not enter a new network namespace');
        await delay(10);
      }
      const agent = new AgentRun(['--container-id', `containerd://${id}`, '--listen', '127.0.0.1:0', '--ttl', '2', '--log-level', 'debug']);
      await agent.port();
      await agent.logged(/"started child"/);
      // startChild logs the nsenter child's pid, which is the agent's own once nsenter has exec'd node. (The line
      // has pino's own pid field too; JSON.parse keeps the last, the child's.)
      const started = agent.stderr.split('\n').filter((line) => line.includes('"started child"')).map((line) => JSON.parse(line) as { pid: number; args: string[] });
      assert.equal(started.length, 1);
      const inner = started[0]!;
      assert.deepEqual(inner.args.slice(-2), ['--pid', String(target.pid)]);
      assert.equal(inner.args.includes('--container-id'), false);
      assert.equal(readlinkSync(`/proc/${inner.pid}/ns/net`), readlinkSync(`/proc/${target.pid}/ns/net`));
      const { code } = await agent.exit(15_000);
      assert.equal(code, 0);
      await agent.logged(/no client within ttl/);
    } finally {
      await stopChild(target, 500);
      cgroup.remove();
    }
  });
});

/**
 * Puts a process in a cgroup named as containerd names a Kubernetes container (cgroupfs driver), on the first
 * hierarchy that takes it: cgroup v2 alone, v2 beside v1, or v1's pids controller.
 */
function containerCgroup(pid: number, id: string): { remove(): void } | null {
  for (const root of ['/sys/fs/cgroup', '/sys/fs/cgroup/unified', '/sys/fs/cgroup/pids']) {
    if (!existsSync(join(root, 'cgroup.procs'))) continue;
    const levels = ['remocal-test-kubepods', 'besteffort', `pod${process.pid}`, id];
    const made: string[] = [];
    try {
      let dir = root;
      for (const level of levels) {
        dir = join(dir, level);
        mkdirSync(dir);
        made.unshift(dir);
      }
      writeFileSync(join(dir, 'cgroup.procs'), String(pid));
      return {
        remove() {
          for (const path of made) rmdirOrRetry(path);
        },
      };
    } catch {
      for (const path of made) rmdirOrRetry(path);
    }
  }
  return null;
}

/** A cgroup can be removed only once its last process is gone, which the kernel notes a moment after exit. */
function rmdirOrRetry(path: string): void {
  for (let tries = 0; tries < 50; tries++) {
    try {
      rmdirSync(path);
      return;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
    }
  }
}
