// The shared agent as the operator runs it in a cluster (`agent --sessions tcp --listen …`): the control link
// and every session come to one TCP port, each connection proving it holds the operator's key first. Real
// agent, real fixture pod, real iptables; the test plays the operator's side of each connection.

import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { after, afterEach, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Pod } from '../../src/fixture/pod.js';
import { childExited, startChild, stopChild } from '../../src/core/child.js';
import { AGENT_AUTH_MAGIC, AGENT_KEY_ENV, AGENT_NONCE_BYTES, AUTH_ACCEPTED, newSessionKeys, signNonce, type SessionKeys } from '../../src/protocol/agent-auth.js';
import { Link } from '../../src/protocol/link.js';
import type { AgentRequest, AgentResults, AgentToIntproxy, IntproxyToAgent } from '../../src/protocol/messages.js';
import { RpcClient } from '../../src/protocol/rpc.js';
import type { AgentToOperator, ControlRequest, ControlResults, OperatorToAgent, Preamble } from '../../src/protocol/shared-agent.js';
import { createTestPod, podIptablesRules } from '../helpers/pod.js';
import { waitFor } from '../helpers/processes.js';

const agentMain = fileURLToPath(new URL('../../src/agent/main.ts', import.meta.url));

interface TcpAgent {
  child: ChildProcess;
  port: number;
  keys: SessionKeys;
  stderr: () => string;
}

const running: ChildProcess[] = [];
const sockets: Socket[] = [];

async function startAgent(pod: Pod, options: { ttl?: number; idle?: number } = {}): Promise<TcpAgent> {
  const keys = newSessionKeys();
  const child = startChild(
    'nsenter',
    [
      `--net=${pod.netnsPath}`, '--', process.execPath, '--import', import.meta.resolve('tsx'), agentMain,
      '--pid', String(pod.pid), '--sessions', 'tcp', '--listen', `${pod.ip}:0`,
      '--ttl', String(options.ttl ?? 30), '--idle-timeout', String(options.idle ?? 30),
    ],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NODE_OPTIONS: '', [AGENT_KEY_ENV]: keys.publicKey } },
  );
  running.push(child);
  let stderr = '';
  let stdout = '';
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  const port = await waitFor(() => Number(/remocal-agent listening [^\s]+:(\d+)/.exec(stdout)?.[1]) || undefined, `the agent to listen (stderr: ${stderr})`, 30_000);
  return { child, port, keys, stderr: () => stderr };
}

function readBytes(socket: Socket, count: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const onReadable = (): void => {
      const chunk = socket.read(count) as Buffer | null;
      if (chunk === null) return;
      socket.off('readable', onReadable);
      socket.off('close', onClose);
      resolve(chunk);
    };
    const onClose = (): void => reject(new Error('closed'));
    socket.on('readable', onReadable);
    socket.once('close', onClose);
    onReadable();
  });
}

/** A connection past the agent's challenge, signed with `privateKey`, with `preamble` written. */
async function connectAs(pod: Pod, agent: TcpAgent, preamble: Preamble, privateKey = agent.keys.privateKey): Promise<Socket> {
  const socket = connect(agent.port, pod.ip);
  sockets.push(socket);
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  const challenge = await readBytes(socket, AGENT_AUTH_MAGIC.length + AGENT_NONCE_BYTES);
  assert.ok(challenge.subarray(0, AGENT_AUTH_MAGIC.length).equals(AGENT_AUTH_MAGIC));
  socket.write(signNonce(privateKey, challenge.subarray(AGENT_AUTH_MAGIC.length)));
  assert.equal((await readBytes(socket, 1))[0], AUTH_ACCEPTED);
  socket.write(`${JSON.stringify(preamble)}\n`);
  return socket;
}

async function openControl(pod: Pod, agent: TcpAgent): Promise<{ link: Link<OperatorToAgent, AgentToOperator>; rpc: RpcClient<ControlRequest, ControlResults> }> {
  const socket = await connectAs(pod, agent, { kind: 'control' });
  const link = new Link<OperatorToAgent, AgentToOperator>({ readable: socket, writable: socket }, { role: 'operator', streamIdParity: 'odd', info: { pid: process.pid } });
  await link.handshake(10_000);
  return { link, rpc: new RpcClient<ControlRequest, ControlResults>(link, { defaultTimeoutMs: 10_000 }) };
}

function exitOf(child: ChildProcess, timeoutMs: number): Promise<{ code: number | null; signal: NodeJS.Signals | null } | 'running'> {
  return Promise.race([childExited(child), new Promise<'running'>((resolve) => setTimeout(() => resolve('running'), timeoutMs).unref())]);
}

describe('shared agent over TCP (agent --sessions tcp, as in a cluster)', { timeout: 180_000 }, () => {
  let pod: Pod;
  before(async () => {
    pod = await createTestPod();
  });
  after(async () => {
    await pod.destroy();
  });
  afterEach(async () => {
    for (const socket of sockets.splice(0)) socket.destroy();
    for (const child of running.splice(0)) await stopChild(child, 2000);
  });

  it('serves the control link and sessions on one port; a second control link and a wrong key are refused', async () => {
    const agent = await startAgent(pod);
    const control = await openControl(pod, agent);

    const socket = await connectAs(pod, agent, { kind: 'session', session: 's1', owner: 'alice', files: 'read' });
    const session = new Link<IntproxyToAgent, AgentToIntproxy>({ readable: socket, writable: socket }, { role: 'intproxy', streamIdParity: 'odd', info: { pid: process.pid } });
    await session.handshake(10_000);
    const rpc = new RpcClient<AgentRequest, AgentResults>(session, { defaultTimeoutMs: 10_000 });
    const env = await rpc.request({ op: 'env.get' });
    assert.ok(env.ok && env.value.env?.GREETING === pod.env.GREETING && pod.env.GREETING !== undefined, `the pod's env through the session: ${JSON.stringify(env)}`);
    const stolen = await rpc.request({ op: 'incoming.subscribe', port: pod.ports.target, mode: 'steal', filter: { header_filter: '^x-dev: alice$' } });
    assert.ok(stolen.ok, JSON.stringify(stolen));

    const listed = await control.rpc.request({ op: 'agent.sessions' });
    assert.ok(listed.ok);
    assert.deepEqual(listed.value.sessions.map((entry) => [entry.session, entry.owner, entry.subscriptions.length]), [['s1', 'alice', 1]]);

    // Whoever else gets into the pod's network cannot take the agent over: a second control link is closed,
    // and a proof made with another key never gets past the challenge.
    const second = await connectAs(pod, agent, { kind: 'control' });
    await new Promise((resolve) => second.once('close', resolve));
    await assert.rejects(connectAs(pod, agent, { kind: 'control' }, newSessionKeys().privateKey), /closed/);
    assert.ok((await control.rpc.request({ op: 'agent.sessions' })).ok, 'the first control link still works');
    assert.match(agent.stderr(), /control link, which this agent has already/);
    assert.match(agent.stderr(), /failed to authenticate: wrong proof/);
  });

  it('a control link that falls silent ends the agent, and its rules go with it', async () => {
    const agent = await startAgent(pod, { idle: 2 });
    await openControl(pod, agent);
    const socket = await connectAs(pod, agent, { kind: 'session', session: 's2', owner: 'bob', files: 'off' });
    const session = new Link<IntproxyToAgent, AgentToIntproxy>({ readable: socket, writable: socket }, { role: 'intproxy', streamIdParity: 'odd', info: { pid: process.pid } });
    await session.handshake(10_000);
    const rpc = new RpcClient<AgentRequest, AgentResults>(session, { defaultTimeoutMs: 10_000 });
    assert.ok((await rpc.request({ op: 'incoming.subscribe', port: pod.ports.target, mode: 'steal', filter: null })).ok);
    assert.match(await podIptablesRules(pod), /REMOCAL-/);

    // The test never pings: the agent must not wait for an operator that stopped talking.
    const exit = await exitOf(agent.child, 20_000);
    assert.deepEqual(exit, { code: 0, signal: null });
    assert.match(agent.stderr(), /nothing arrived on the control link for too long/);
    assert.doesNotMatch(await podIptablesRules(pod), /REMOCAL-/);
  });

  it('without a control link within its ttl, the agent exits', async () => {
    const agent = await startAgent(pod, { ttl: 1 });
    assert.deepEqual(await exitOf(agent.child, 20_000), { code: 0, signal: null });
    assert.match(agent.stderr(), /no control link within 1 s/);
  });
});
