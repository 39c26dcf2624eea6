// Request routing through the operator, against a direct filtered steal, in one run on one fixture pod.
//
//   direct       one agent of its own (stdio), one session holding a header filter on the pod's port
//   operator/N   the local-mode operator, N sessions on the same port, each with its own header filter; the
//                requests carry the header of the LAST session subscribed, so every filter before it is asked
//
// Sessions are protocol-level clients in this process (a Link over the operator's WebSocket, answering the
// stolen requests with an in-process HTTP server), so 100 of them cost little besides what they measure. The
// load is one kept-alive connection from the host to the pod, requests one after another. Also printed: the
// operator's and the shared agent's memory per idle session.
//
// Usage (root): node --import tsx bench/operator.ts [requests per case, default 2000]

import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { createWebSocketStream, WebSocket } from 'ws';
import { startChild, stopChild } from '../src/core/child.js';
import { distFile } from '../src/core/paths.js';
import { createPod } from '../src/fixture/pod.js';
import { Link } from '../src/protocol/link.js';
import type { AgentRequest, AgentResults, AgentToIntproxy, IntproxyToAgent } from '../src/protocol/messages.js';
import { RpcClient } from '../src/protocol/rpc.js';

const REQUESTS = Number(process.argv[2] ?? 2000);
const TOKEN = 'bench-token-0123456789abcdef';

const pod = await createPod({ command: [process.execPath, distFile('pod.js')] });
const stateDir = mkdtempSync(join(tmpdir(), 'remocal-bench-operator-'));
const cleanups: (() => Promise<unknown> | unknown)[] = [() => pod.destroy(), () => rmSync(stateDir, { recursive: true, force: true })];

/** One session: a link, a filtered subscription, and an HTTP server answering what is routed to it. */
async function openSession(transport: Duplex, name: string): Promise<{ close(): void }> {
  const link = new Link<IntproxyToAgent, AgentToIntproxy>({ readable: transport, writable: transport }, { role: 'intproxy', streamIdParity: 'odd' });
  const server = http.createServer((request, response) => {
    request.resume();
    request.on('end', () => response.end(name));
  });
  link.on('message', (message) => {
    if (message.type === 'incoming') server.emit('connection', link.acceptStream(message.stream));
  });
  await link.handshake(10_000);
  const rpc = new RpcClient<AgentRequest, AgentResults>(link);
  const answer = await rpc.request({ op: 'incoming.subscribe', port: pod.ports.target, mode: 'steal', filter: { header_filter: `^x-bench: ${name}$` } });
  if (!answer.ok) throw new Error(`subscribe failed: ${answer.error.message}`);
  return { close: () => link.close() };
}

async function measure(header: string): Promise<{ p50: number; p99: number }> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const send = () =>
    new Promise<string>((resolve, reject) => {
      const request = http.request({ host: pod.ip, port: pod.ports.target, path: '/', headers: { 'x-bench': header }, agent }, (response) => {
        let body = '';
        response.on('data', (chunk: Buffer) => (body += chunk));
        response.on('end', () => resolve(body));
      });
      request.on('error', reject);
      request.end();
    });
  for (let i = 0; i < 200; i++) await send();
  const times: number[] = [];
  for (let i = 0; i < REQUESTS; i++) {
    const started = process.hrtime.bigint();
    const body = await send();
    times.push(Number(process.hrtime.bigint() - started) / 1000);
    if (body !== header) throw new Error(`request for ${header} was answered by ${body}`);
  }
  agent.destroy();
  times.sort((a, b) => a - b);
  return { p50: times[Math.floor(times.length * 0.5)]!, p99: times[Math.floor(times.length * 0.99)]! };
}

function rssKiB(pid: number): number {
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
}

try {
  // --- direct: an agent of its own over stdio ---------------------------------------------------------------
  const direct = startChild('nsenter', [`--net=${pod.netnsPath}`, '--', process.execPath, distFile('agent.js'), '--pid', String(pod.pid), '--files', 'off'], { stdio: ['pipe', 'pipe', 'inherit'] });
  const { Duplex: DuplexClass } = await import('node:stream');
  const stdio = DuplexClass.from({ readable: direct.stdout!, writable: direct.stdin! });
  const directSession = await openSession(stdio, 'direct');
  const directResult = await measure('direct');
  directSession.close();
  await stopChild(direct, 5000);

  // --- through the operator ------------------------------------------------------------------------------
  writeFileSync(join(stateDir, 'operator.json'), JSON.stringify({ listen: { host: '127.0.0.1', port: 0 }, state_dir: join(stateDir, 'state'), users: [{ name: 'bench', token: TOKEN }], log_level: 'warn', sessions: { idle_timeout: 3600 } }));
  const operator = startChild(process.execPath, [distFile('cli.js'), 'operator', 'serve', '--config', join(stateDir, 'operator.json')], { stdio: ['ignore', 'pipe', 'inherit'] });
  cleanups.unshift(() => stopChild(operator, 5000));
  let out = '';
  operator.stdout!.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  while (!/clients trust/.test(out)) await once(operator.stdout!, 'data');
  const [, url, caFile] = /listening at (\S+); clients trust (\S+) /.exec(out)!;
  const ca = readFileSync(caFile!, 'utf8');
  const portforward = `${url!.replace('https:', 'wss:')}/apis/operator.remocal.dev/v1/namespaces/local/targets/pid.${pod.pid}/portforward?files=off`;
  const viaOperator = async (name: string) => {
    const ws = new WebSocket(portforward, { headers: { authorization: `Bearer ${TOKEN}` }, ca, perMessageDeflate: false });
    // The stream is made in the 'open' listener: frames that came with the upgrade are emitted before an awaited
    // continuation runs, and would be lost.
    const stream = await new Promise<Duplex>((resolve) => ws.once('open', () => resolve(createWebSocketStream(ws))));
    return openSession(stream, name);
  };

  const sessions: { close(): void }[] = [];
  const results: { sessions: number; p50: number; p99: number }[] = [];
  let rssBefore: { operator: number; agent: number } | undefined;
  for (const count of [1, 10, 100]) {
    while (sessions.length < count) {
      sessions.push(await viaOperator(`s${sessions.length}`));
      if (sessions.length === 1) {
        const agentPid = Number(readFileSync(join(stateDir, 'state', 'agents', `pid_${pod.pid}.pid`), 'utf8'));
        rssBefore = { operator: rssKiB(operator.pid!), agent: rssKiB(agentPid) };
      }
    }
    results.push({ sessions: count, ...(await measure(`s${count - 1}`)) });
  }
  const agentPid = Number(readFileSync(join(stateDir, 'state', 'agents', `pid_${pod.pid}.pid`), 'utf8'));
  const perSession = { operator: (rssKiB(operator.pid!) - rssBefore!.operator) / 99, agent: (rssKiB(agentPid) - rssBefore!.agent) / 99 };
  for (const each of sessions) each.close();

  const us = (value: number) => `${value.toFixed(0)} µs`;
  console.log(`requests per case: ${REQUESTS}, one kept-alive connection, sequential`);
  console.log(`direct filtered steal         p50 ${us(directResult.p50)}  p99 ${us(directResult.p99)}`);
  for (const result of results) {
    console.log(
      `operator, ${String(result.sessions).padStart(3)} session(s)      p50 ${us(result.p50)}  p99 ${us(result.p99)}  ` +
        `p50 ${(result.p50 / directResult.p50).toFixed(2)}x direct, ${(result.p50 / results[0]!.p50).toFixed(2)}x 1 session`,
    );
  }
  const hundred = results.at(-1)!;
  console.log(`target p50(100) <= 1.2x p50(1): ${(hundred.p50 / results[0]!.p50).toFixed(2)}x ${hundred.p50 / results[0]!.p50 <= 1.2 ? 'met' : 'MISSED'}`);
  console.log(`memory per idle session: operator ${perSession.operator.toFixed(0)} KiB, shared agent ${perSession.agent.toFixed(0)} KiB (RSS growth from 1 to 100 sessions / 99)`);
} finally {
  for (const cleanup of cleanups) await cleanup();
}
