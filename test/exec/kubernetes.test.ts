// `remocal exec` and `port-forward` against a Kubernetes target, end to end: the recorded fake API server stands
// in for the cluster's API (target resolution, the ephemeral-container PATCH, the port-forward websocket), and
// the fixture pod for the pod. The agent, the kube-link, the protocol and every packet are real, so this is
// the local platform's acceptance test (outgoing, DNS, env, steal with a filter, cleanup) on the Kubernetes path.

import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { after, before, beforeEach, afterEach, describe, it } from 'node:test';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Pod } from '../../src/fixture/pod.js';
import { childExited, startChild } from '../../src/core/child.js';
import { distFile } from '../../src/core/paths.js';
import { installFakeKubelet, portForwardInto, type FakeKubelet } from '../helpers/fake-kubelet.js';
import { loadFixture, startFakeKubeApi, type FakeKubeApi } from '../helpers/kube-api.js';
import { validateAgainstOpenApi } from '../helpers/openapi.js';
import { waitFor } from '../helpers/processes.js';
import { answeredFrom, echoThrough, freePort, httpRequest } from '../helpers/net.js';
import { podIptablesRules } from '../helpers/pod.js';
import { lastJson, runRemocal, startPodWithApp, startRemocal, stopPodWithApp } from '../helpers/remocal.js';

const APP = String.raw`
import dns from 'node:dns';
import http from 'node:http';
const [mode, ...args] = process.argv.slice(2);
const out = (value) => process.stdout.write(JSON.stringify(value) + '\n');
switch (mode) {
  case 'env': out({ greeting: process.env.GREETING, pod: process.env.POD_NAME }); break;
  case 'dns': out({ short: await dns.promises.lookup(args[0]) }); break;
  case 'http': {
    const res = await fetch(args[0]);
    out({ status: res.status, body: await res.json() });
    break;
  }
  case 'serve': {
    const server = http.createServer((req, res) => {
      out({ saw: req.url, dev: req.headers['x-dev'] ?? null });
      res.end(JSON.stringify({ from: 'local' }));
    });
    server.listen(Number(args[0]), () => out({ listening: true }));
    process.on('SIGTERM', () => server.close(() => process.exit(0)));
    break;
  }
  case 'sleep': setTimeout(() => out({ slept: true }), Number(args[0])); break;
}
`;

const POD = 'orders-6497447b6f-2d76r';
let pod: Pod;
let app: { dir: string; remove: () => void };
let api: FakeKubeApi;
let kubelet: FakeKubelet;
const forwards: ChildProcess[] = [];

before(async () => {
  ({ pod, app } = await startPodWithApp({ 'app.mjs': APP }));
  api = await startFakeKubeApi({ log: () => {}, portForward: (namespace, name, port) => portForwardInto(pod, forwards)(namespace, name, port) });
  mkdirSync(join(app.dir, '.remocal'));
  writeFileSync(join(app.dir, '.remocal', 'config.json'), JSON.stringify({ kubeconfig: api.kubeconfig('admin'), agent: { startup_timeout: 20 } }));
});

after(async () => {
  await api?.close();
  await stopPodWithApp(pod, app);
});

beforeEach(() => {
  kubelet = installFakeKubelet(api, pod, POD, forwards);
});

afterEach(async () => {
  kubelet.uninstall();
  for (const agent of kubelet.agents) {
    if (agent.exitCode === null && agent.signalCode === null) agent.kill('SIGKILL');
  }
});

function exec(args: string[], extra: string[] = []) {
  return runRemocal(['exec', '-t', 'deployment/orders', '-n', 'shop', ...extra, '--', process.execPath, 'app.mjs', ...args], { cwd: app.dir, timeoutMs: 60_000 });
}

async function request(path: string, headers: Record<string, string>): Promise<string> {
  return (await httpRequest({ host: pod.ip, port: pod.ports.target, path, headers })).body;
}

/** The session's agent exits with its session: nothing of it stays in the pod. */
async function agentGone(): Promise<void> {
  const agent = kubelet.agents.at(-1)!;
  const exit = await Promise.race([childExited(agent), new Promise<null>((resolve) => setTimeout(() => resolve(null), 10_000))]);
  assert.notEqual(exit, null, 'the agent exits when its session ends');
}

describe('remocal exec -t deployment/… (fake API server, real agent in the fixture pod)', () => {
  it("env and DNS come from the pod; the steps say which pod was picked and where the agent runs", async () => {
    const env = await exec(['env']);
    assert.equal(env.code, 0, env.stderr);
    assert.deepEqual(lastJson(env), { greeting: pod.env.GREETING, pod: pod.env.POD_NAME });
    assert.match(env.stderr, /target: pod\/orders-6497447b6f-2d76r \(picked from deployment\/orders, 2 of 2 pods ready\), container app/);
    assert.match(env.stderr, /agent: ephemeral container remocal-agent-[0-9a-f]{6} in pod\/orders-6497447b6f-2d76r/);
    await agentGone();
    // The agent was told to expect no client after its TTL, and to serve the target's files.
    assert.deepEqual(kubelet.lastArgs().slice(2, 8), ['--ttl', '30', '--log-level', 'info', '--files', 'read']);

    const dns = await exec(['dns', pod.names.apiName]);
    assert.equal(dns.code, 0, dns.stderr);
    assert.equal((lastJson(dns) as { short: { address: string } }).short.address, pod.serviceIps.api);
    await agentGone();
  });

  it('outgoing connections are opened from the pod, through the port-forward', async () => {
    const before = forwards.length;
    const result = await exec(['http', `http://${pod.names.apiName}:${pod.ports.apiHttp}/hello`]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal((lastJson(result) as { status: number }).status, 200);
    assert.equal(forwards.length - before, 1, 'the whole session went over one port-forward stream');
    await agentGone();
  });

  it('steal with a filter: matching requests reach the local app, the rest the pod; no iptables rule stays', async () => {
    const project = join(app.dir, 'steal');
    mkdirSync(join(project, '.remocal'), { recursive: true });
    writeFileSync(
      join(project, '.remocal', 'config.json'),
      JSON.stringify({ kubeconfig: api.kubeconfig('admin'), feature: { network: { incoming: { mode: 'steal', http_filter: { header_filter: '^x-dev: alice$' } } } } }),
    );
    const run = startRemocal(['exec', '-t', 'deployment/orders', '--', process.execPath, join(app.dir, 'app.mjs'), 'serve', String(pod.ports.target)], { cwd: project, timeoutMs: 60_000 });
    let stderr = '';
    run.child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk));
    try {
      await waitFor(() => /stealing the HTTP requests that match/.test(stderr), `the steal (stderr: ${stderr})`, 30_000);
      assert.equal(answeredFrom(await request('/mine', { 'x-dev': 'alice' })), 'local');
      assert.notEqual(answeredFrom(await request('/theirs', { 'x-dev': 'bob' })), 'local');
    } finally {
      run.child.kill('SIGTERM');
      await run.done;
    }
    await agentGone();
    assert.doesNotMatch(await podIptablesRules(pod), /remocal/i);
    // The agent needed NET_ADMIN to redirect, and was asked for it.
    const patch = api.requests.findLast((entry) => entry.method === 'PATCH');
    assert.deepEqual((patch?.body as { spec: { ephemeralContainers: { securityContext: unknown }[] } }).spec.ephemeralContainers[0]!.securityContext, { capabilities: { add: ['SYS_PTRACE', 'NET_ADMIN'] }, runAsUser: 0, runAsNonRoot: false });
  });

  it('a dropped port-forward is reported within seconds and ends the agent', async () => {
    const run = startRemocal(['exec', '-t', 'deployment/orders', '--', process.execPath, 'app.mjs', 'sleep', '60000'], { cwd: app.dir, timeoutMs: 60_000 });
    let stderr = '';
    run.child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk));
    await waitFor(() => /running /.test(stderr), `the session (stderr: ${stderr})`, 30_000);
    const started = Date.now();
    forwards.at(-1)!.kill('SIGKILL');
    const result = await run.done;
    assert.equal(result.code, 125, result.stderr);
    assert.match(result.stderr, /agent/i);
    assert.ok(Date.now() - started < 15_000, `reported after ${Date.now() - started} ms`);
    await agentGone();
  });

  it('port-forward -L reaches a service by the name the pod resolves', async () => {
    const local = await freePort();
    const run = startRemocal(['port-forward', '-t', 'deployment/orders', '-L', `${local}:${pod.names.dbName}:${pod.ports.db}`], { cwd: app.dir, timeoutMs: 60_000 });
    let stderr = '';
    run.child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk));
    try {
      await waitFor(() => /press Ctrl-C/.test(stderr) || run.child.exitCode !== null, 'the forward', 30_000);
      assert.match(stderr, /press Ctrl-C/, stderr);
      assert.equal(await echoThrough(local, 'from the cluster side'), 'from the cluster side');
    } finally {
      run.child.kill('SIGTERM');
      await run.done;
    }
    await agentGone();
  });
});

describe('remocal exec -t targetless (fake API server, real agent in a Job\'s pod)', () => {
  it('creates the agent Job, reaches the cluster network through it, and deletes the Job at the end', async () => {
    type Json = Record<string, any>;  
    let job: Json | undefined;
    const agents: ChildProcess[] = [];
    const deleted: string[] = [];
    const agentPod = structuredClone(loadFixture('agent-pod-create.json')) as Json;
    agentPod.status = { phase: 'Running', containerStatuses: [{ name: 'remocal-agent', ready: true, restartCount: 0, image: 'remocal/agent', imageID: '', state: { running: { startedAt: '2026-11-25T13:58:44Z' } } }] };
    const removers = [
      api.override('POST', '/apis/batch/v1/namespaces/shop/jobs', (request) => {
        job = request.body as Json;
        const container = job.spec.template.spec.containers[0];
        const env = Object.fromEntries((container.env as { name: string; value: string }[]).map((entry) => [entry.name, entry.value]));
        // The Job's pod: here, the fixture pod's network namespace (the agent of a targetless session has no target process).
        agents.push(startChild('nsenter', [`--net=${pod.netnsPath}`, '--', process.execPath, distFile('agent.js'), ...container.args], { stdio: 'ignore', env: { ...process.env, ...env } }));
        return { status: 201, body: job };
      }),
      api.override('GET', /^\/api\/v1\/namespaces\/shop\/pods\?labelSelector=remocal\.dev%2Fsession/, () => ({ status: 200, body: { kind: 'PodList', apiVersion: 'v1', metadata: {}, items: job === undefined ? [] : [agentPod] } })),
      api.override('DELETE', /^\/apis\/batch\/v1\/namespaces\/shop\/jobs\//, (request) => {
        deleted.push(request.pathname);
        return { status: 200, body: { kind: 'Status', apiVersion: 'v1', status: 'Success' } };
      }),
    ];
    try {
      const result = await runRemocal(['exec', '-t', 'targetless', '--', process.execPath, 'app.mjs', 'http', `http://${pod.serviceIps.api}:${pod.ports.apiHttp}/targetless`], { cwd: app.dir, timeoutMs: 60_000 });
      assert.equal(result.code, 0, result.stderr);
      assert.equal((lastJson(result) as { status: number }).status, 200);
      assert.match(result.stderr, /agent: agent job\/remocal-agent-[0-9a-f]{6} in namespace shop/);
      assert.ok(job !== undefined);
      assert.deepEqual(validateAgainstOpenApi(job, 'io.k8s.api.batch.v1.Job'), []);
      assert.deepEqual(deleted, [`/apis/batch/v1/namespaces/shop/jobs/${job.metadata.name}`]);
      const exit = await Promise.race([childExited(agents[0]!), new Promise<null>((resolve) => setTimeout(() => resolve(null), 10_000))]);
      assert.notEqual(exit, null, 'the agent exits with its session');
    } finally {
      for (const remove of removers) remove();
      for (const agent of agents) if (agent.exitCode === null) agent.kill('SIGKILL');
    }
  });
});

describe('interrupting a Kubernetes session while it starts', () => {
  it('SIGTERM while the agent Job is pending deletes the Job and exits 143', async () => {
    type Json = Record<string, any>;  
    const project = join(app.dir, 'node-mode');
    mkdirSync(join(project, '.remocal'), { recursive: true });
    writeFileSync(join(project, '.remocal', 'config.json'), JSON.stringify({ kubeconfig: api.kubeconfig('admin'), agent: { ephemeral: false, startup_timeout: 60 } }));
    let job: Json | undefined;
    const deleted: string[] = [];
    const removers = [
      api.override('POST', '/apis/batch/v1/namespaces/shop/jobs', (request) => {
        job = request.body as Json;
        return { status: 201, body: job };
      }),
      // The Job's pod never shows up (an image pull, a full node…).
      api.override('GET', /^\/api\/v1\/namespaces\/shop\/pods\?labelSelector=remocal\.dev%2Fsession/, () => ({ status: 200, body: { kind: 'PodList', apiVersion: 'v1', metadata: {}, items: [] } })),
      api.override('DELETE', /^\/apis\/batch\/v1\/namespaces\/shop\/jobs\//, (request) => {
        deleted.push(request.pathname);
        return { status: 200, body: { kind: 'Status', apiVersion: 'v1', status: 'Success' } };
      }),
    ];
    try {
      const run = startRemocal(['exec', '-t', 'deployment/orders', '--', process.execPath, join(app.dir, 'app.mjs'), 'env'], { cwd: project, timeoutMs: 60_000 });
      let stderr = '';
      run.child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk));
      await waitFor(() => /waiting for the agent pod/.test(stderr), `the wait (stderr: ${stderr})`, 20_000);
      run.child.kill('SIGTERM');
      const result = await run.done;
      assert.equal(result.code, 143, result.stderr);
      assert.match(result.stderr, /SIGTERM: stopping, and removing what the session started/);
      assert.deepEqual(deleted, [`/apis/batch/v1/namespaces/shop/jobs/${job!.metadata.name}`]);
    } finally {
      for (const remove of removers) remove();
    }
  });
});
