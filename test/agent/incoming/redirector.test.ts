// The Redirector against real pods, with each iptables backend: stolen from outside and from the pod's own
// loopback, not stolen when the agent itself connects (passthrough), and no rule left behind after close()
// or after the agent is killed with SIGKILL.

import { readFileSync } from 'node:fs';
import http from 'node:http';
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Pod } from '../../../src/fixture/pod.js';
import { runInPod, withPod } from '../../helpers/pod.js';
import { waitFor } from '../../helpers/processes.js';
import { AgentProcess, STOLEN_BODY } from './agent-process.js';

const BACKENDS = ['iptables', 'iptables-legacy'] as const;

function get(host: string, port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const request = http.get({ host, port, path: '/from-host', agent: false, timeout: 3000 }, (response) => {
      let body = '';
      response.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
      response.on('end', () => resolve(body));
    });
    request.on('timeout', () => request.destroy(new Error('timed out')));
    request.on('error', reject);
  });
}

function getInPod(pod: Pod, host: string, port: number): Promise<string> {
  return runInPod<string>(
    pod,
    `import { readFileSync } from 'node:fs';
import http from 'node:http';
     http.get({ host: ${JSON.stringify(host)}, port: ${port}, agent: false }, (response) => {
       let body = '';
       response.setEncoding('utf8').on('data', (chunk) => (body += chunk));
       response.on('end', () => console.log(JSON.stringify(body)));
     });`,
  );
}

async function remocalRules(pod: Pod): Promise<string[]> {
  const lines: string[] = [];
  for (const backend of BACKENDS) {
    const saved = await pod.exec([`${backend}-save`]);
    lines.push(...saved.stdout.split('\n').filter((line) => line.includes('REMOCAL')).map((line) => `${backend}: ${line}`));
  }
  return lines;
}

/** Milliseconds until no REMOCAL rule is left in the pod; fails after `limitMs`. */
async function timeUntilRulesGone(pod: Pod, startedAt: number, limitMs: number): Promise<number> {
  for (;;) {
    const left = await remocalRules(pod);
    const elapsed = performance.now() - startedAt;
    if (left.length === 0) return elapsed;
    if (elapsed > limitMs) assert.fail(`rules still there after ${Math.round(elapsed)} ms:\n${left.join('\n')}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

function isTargetAnswer(body: string): boolean {
  return (JSON.parse(body) as { from?: string }).from === 'target';
}

// A zombie has exited: once its parent (the agent) is gone, reaping it is up to whoever adopts it.
function isAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

for (const backend of BACKENDS) {
  describe(`Redirector with ${backend}`, () => {
    test('steals the port from outside and from the pod, passes the agent through, and cleans up on close', () =>
      withPod(
        async (pod) => {
          const agent = new AgentProcess(pod);
          try {
            await agent.ready();
            const redirected = await agent.send({ op: 'redirect', port: pod.ports.target });
            assert.equal(redirected.backend, backend, 'joins the backend the pod already uses');

            assert.equal(await get(pod.ip, pod.ports.target), STOLEN_BODY);
            // The agent reports the connection on its own channel, which can arrive after the HTTP answer.
            await waitFor(() => agent.connections.length >= 1, 'the agent to report the stolen connection');
            assert.deepEqual(
              agent.connections.map(({ address, port }) => ({ address, port })),
              [{ address: pod.ip, port: pod.ports.target }],
            );
            assert.equal(await getInPod(pod, '127.0.0.1', pod.ports.target), STOLEN_BODY, 'loopback traffic of the pod is stolen');
            await waitFor(() => agent.connections.length >= 2, 'the agent to report the loopback connection');
            assert.equal(agent.connections.at(-1)?.address, '127.0.0.1');

            for (const host of [pod.ip, '127.0.0.1']) {
              const { body } = await agent.send({ op: 'get', host, port: pod.ports.target });
              assert.ok(isTargetAnswer(body as string), `the agent's own connection to ${host} reaches the target: ${String(body)}`);
            }
            assert.equal(agent.connections.length, 2, 'passthrough connections never reach the agent listener');

            await agent.send({ op: 'close' });
            assert.deepEqual(await remocalRules(pod), []);
            assert.ok(isTargetAnswer(await get(pod.ip, pod.ports.target)));
            const supervisorPid = redirected.supervisorPid as number;
            const deadline = Date.now() + 2000;
            while (isAlive(supervisorPid) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
            assert.ok(!isAlive(supervisorPid), 'the supervisor exits with the redirector');
          } finally {
            await agent.stop();
          }
        },
        { iptables: backend },
      ));

    test('release gives the port back while other ports stay stolen', () =>
      withPod(
        async (pod) => {
          const agent = new AgentProcess(pod);
          try {
            await agent.ready();
            await agent.send({ op: 'redirect', port: pod.ports.target });
            await agent.send({ op: 'redirect', port: 9999 });
            await agent.send({ op: 'release', port: pod.ports.target });
            assert.ok(isTargetAnswer(await get(pod.ip, pod.ports.target)));
            assert.equal(await get(pod.ip, 9999), STOLEN_BODY);
            await agent.send({ op: 'close' });
          } finally {
            await agent.stop();
          }
        },
        { iptables: backend },
      ));

    test('kill -9 of the agent: the supervisor removes the rules and exits', () =>
      withPod(
        async (pod) => {
          const agent = new AgentProcess(pod);
          try {
            await agent.ready();
            const { supervisorPid } = await agent.send({ op: 'redirect', port: pod.ports.target });
            assert.equal(await get(pod.ip, pod.ports.target), STOLEN_BODY);
            assert.notDeepEqual(await remocalRules(pod), []);

            const killedAt = performance.now();
            process.kill(agent.pid, 'SIGKILL');
            // The time is printed, not asserted: on a loaded machine it is the scheduler's, not ours (about
            // 100 ms when idle). The bound only keeps a supervisor that never cleans up from hanging the test.
            const goneMs = await timeUntilRulesGone(pod, killedAt, 10_000);
            console.log(`# ${backend}: rules gone ${goneMs.toFixed(0)} ms after kill -9`);

            assert.ok(isTargetAnswer(await get(pod.ip, pod.ports.target)), 'the target answers directly again');
            const deadline = Date.now() + 2000;
            while (isAlive(supervisorPid as number) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
            assert.ok(!isAlive(supervisorPid as number), 'the supervisor is not left behind');
          } finally {
            await agent.stop();
          }
        },
        { iptables: backend },
      ));
  });
}
