// Copy targets end to end, through `remocal operator serve` in Kubernetes mode behind the recorded fake API server:
// `remocal exec` with `copy_target: { enabled, scale_down }` on deployment/orders makes the operator create the copy
// pod (kube-copies.ts answers its create and shows it Running) and scale the deployment to 0; the operator adds its
// agent's ephemeral container to the copy, and the fake kubelet starts the real agent in the fixture pod as if it
// were the copy. The app then reads the copy's env, connects out from it and steals its port. Then the operator is
// killed in the middle of such a session, and the next one puts the cluster back at its start.

import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { childExited, stopChild } from '../../src/core/child.js';
import type { Pod } from '../../src/fixture/pod.js';
import { SCALED_DOWN_ANNOTATION, parseHolder } from '../../src/operator/copy-targets.js';
import { installFakeKubelet, portForwardInto, type FakeKubelet } from '../helpers/fake-kubelet.js';
import { kubeTokens, startFakeKubeApi, type FakeKubeApi } from '../helpers/kube-api.js';
import { fakeOperatorCluster, writeKubeOperatorConfig, type OperatorCluster } from '../helpers/kube-cluster.js';
import { serveCopies, type FakeCopies } from '../helpers/kube-copies.js';
import { serveJobs } from '../helpers/kube-jobs.js';
import { servePolicies } from '../helpers/kube-policies.js';
import { serveOperator, type ServedOperator } from '../helpers/local-operator.js';
import { answeredFrom, httpRequest } from '../helpers/net.js';
import { podIptablesRules } from '../helpers/pod.js';
import { waitFor } from '../helpers/processes.js';
import { runRemocal, startRemocal, startPodWithApp, stopPodWithApp, type RunResult } from '../helpers/remocal.js';

type Json = Record<string, any>;

/** Reports the target's env and an answer from a service only the pod's network reaches, then serves its port. */
const APP = String.raw`
import http from 'node:http';
const [port, name] = [Number(process.argv[2]), process.argv[3]];
const out = (value) => process.stdout.write(JSON.stringify(value) + '\n');
out({ greeting: process.env.GREETING });
http.get(process.env.ORDERS_API_URL + '/hello', (res) => {
  res.resume();
  res.on('end', () => {
    out({ outgoing: res.statusCode });
    const server = http.createServer((req, res) => {
      out({ saw: req.url });
      res.end(JSON.stringify({ from: name }));
    });
    server.listen(port, () => out({ listening: port }));
    process.on('SIGTERM', () => server.close(() => process.exit(0)));
  });
}).on('error', (error) => out({ outgoing: error.message }));
`;

const POD = 'orders-6497447b6f-2d76r';

let pod: Pod;
let app: { dir: string; remove: () => void };
let api: FakeKubeApi;
let copies: FakeCopies;
let kubelet: FakeKubelet;
let cluster: OperatorCluster;
let configFile: string;
const operators: ChildProcess[] = [];
/** Whether dev-alice may scale deployment/orders (a scale_down needs it). */
let mayScale = true;
const forwards: ChildProcess[] = [];

/** `remocal operator serve` on the shared state dir, with the aggregator pointed at it. */
async function serve(): Promise<ServedOperator> {
  const served = await serveOperator(configFile);
  operators.push(served.child);
  cluster.aggregateTo(served);
  return served;
}

/** A session of dev-alice on a scale_down copy of deployment/orders, stealing what carries `x-dev: <name>`. */
function copySession(name: string): { dir: string; run: ReturnType<typeof startRemocal>; stdout: () => string; stderr: () => string } {
  const dir = join(app.dir, name);
  mkdirSync(join(dir, '.remocal'), { recursive: true });
  const config = {
    kubeconfig: api.kubeconfig('dev-alice'),
    agent: { startup_timeout: 30 },
    feature: {
      copy_target: { enabled: true, scale_down: true },
      network: { incoming: { mode: 'steal', http_filter: { header_filter: `^x-dev: ${name}$` } } },
    },
  };
  writeFileSync(join(dir, '.remocal', 'config.json'), JSON.stringify(config));
  const run = startRemocal(['exec', '-t', 'deployment/orders', '--', process.execPath, join(app.dir, 'app.mjs'), String(pod.ports.target), `${name}-app`], { cwd: dir, timeoutMs: 120_000 });
  let stdout = '';
  let stderr = '';
  run.child.stdout!.on('data', (chunk: Buffer | string) => (stdout += chunk.toString()));
  run.child.stderr!.on('data', (chunk: Buffer | string) => (stderr += chunk.toString()));
  return { dir, run, stdout: () => stdout, stderr: () => stderr };
}

/** Waits until the session steals, or fails with what the CLI said. */
async function stealing(session: ReturnType<typeof copySession>): Promise<void> {
  await waitFor(() => /stealing the HTTP requests that match/.test(session.stderr()) || session.run.child.exitCode !== null, 'the copy session to steal', 60_000);
  if (session.run.child.exitCode !== null) {
    const result = await session.run.done;
    throw new Error(`the session ended (${result.code}): ${result.stderr}`);
  }
}

/** The one copy pod that exists now. */
function onlyCopy(): string {
  const names = [...copies.pods.keys()];
  assert.equal(names.length, 1, `one copy pod, not ${JSON.stringify(names)}`);
  return names[0]!;
}

async function copyTargetsTable(): Promise<Json> {
  const response = await fetch(`${api.url}/apis/operator.remocal.dev/v1/namespaces/shop/copytargets`, {
    headers: { authorization: `Bearer ${kubeTokens['dev-alice']}`, accept: 'application/json;as=Table;v=v1;g=meta.k8s.io' },
  });
  assert.equal(response.status, 200);
  return (await response.json()) as Json;
}

before(async () => {
  ({ pod, app } = await startPodWithApp({ 'app.mjs': APP }));
  api = await startFakeKubeApi({ log: () => {}, portForward: (namespace, name, port) => portForwardInto(pod, forwards)(namespace, name, port) });
  // The copies before the kubelet: the kubelet adds its agent's status to the copy as kube-copies answers it.
  copies = serveCopies(api);
  kubelet = installFakeKubelet(api, pod, POD, forwards, { path: /^\/api\/v1\/namespaces\/shop\/pods\/([^/]+-copy-[^/]+)$/, body: (name) => copies.answer(name) });
  servePolicies(api);
  serveJobs(api);
  // dev-alice's Role gives her get on the workloads of shop, remocal-user's create on copytargets, and (unless a test
  // takes it away) patch on the deployment's scale.
  cluster = fakeOperatorCluster(api, {
    reviewAllows: ({ verb, resource, subresource }) => verb === 'get' || (verb === 'create' && resource === 'copytargets') || (verb === 'patch' && subresource === 'scale' && mayScale),
  });
  configFile = writeKubeOperatorConfig(app.dir, api);
});

after(async () => {
  for (const operator of operators) await stopChild(operator);
  kubelet?.uninstall();
  for (const agent of kubelet?.agents ?? []) if (agent.exitCode === null && agent.signalCode === null) agent.kill('SIGKILL');
  for (const forward of forwards) if (forward.exitCode === null && forward.signalCode === null) forward.kill('SIGKILL');
  await api?.close();
  cluster?.remove();
  await stopPodWithApp(pod, app);
});

describe('a copy target through the operator, end to end', { timeout: 240_000 }, () => {
  it('remocal exec on a scale_down copy of deployment/orders: env, outgoing and steal through the copy\'s agent; kubectl lists the copy; the deployment is at 0, then back', async () => {
    const operator = await serve();
    const session = copySession('copy');
    try {
      await stealing(session);
      const copy = onlyCopy();
      // The agent went into the copy, not into the deployment's own pod.
      assert.deepEqual(kubelet.patched, [copy]);
      // remocal session list shows the session's copy.
      const listed = await runRemocal(['session', 'list', '--json'], { cwd: session.dir });
      assert.equal(listed.code, 0, listed.stderr);
      const items = (JSON.parse(listed.stdout) as { metadata: { name: string }; spec: { owner: string; copy?: { pod: string; source: string; scaledDown: boolean } } }[]).filter((item) => item.spec.copy !== undefined);
      assert.deepEqual(items.map((item) => item.spec.copy), [{ pod: copy, source: 'deployment/orders', scaledDown: true }]);
      const id = items[0]!.metadata.name;
      assert.deepEqual(copies.problems, [], 'the copy and the scale are valid against the OpenAPI types');

      // The workload is at 0 with its holder in the cluster, for the session's lifetime.
      assert.equal(copies.replicas(), 0);
      assert.deepEqual(parseHolder(copies.deployment().metadata.annotations[SCALED_DOWN_ANNOTATION]), { session: id, owner: 'dev-alice', replicas: 2 });

      // What the app saw came from the copy: its env, and a service only its network reaches.
      await waitFor(() => /"listening"/.test(session.stdout()), 'the app to listen', 10_000);
      assert.match(session.stdout(), /\{"greeting":"hello from the pod"\}/);
      assert.match(session.stdout(), /\{"outgoing":200\}/);
      // A request to the copy's port with the session's header reaches the app; one without it, the copy's own.
      const ask = async (dev?: string): Promise<string> =>
        answeredFrom((await httpRequest({ host: pod.ip, port: pod.ports.target, path: '/through-the-copy', headers: dev === undefined ? {} : { 'x-dev': dev } })).body);
      assert.equal(await ask('copy'), 'copy-app');
      assert.equal(await ask(), 'target');

      // kubectl get copytargets, through the API server and the aggregator.
      const table = await copyTargetsTable();
      assert.equal(table.kind, 'Table');
      assert.equal(table.rows.length, 1);
      assert.deepEqual((table.rows[0].cells as unknown[]).slice(0, 6), [copy, 'deployment/orders', id, 'dev-alice', true, 'Running']);
    } finally {
      session.run.child.kill('SIGTERM');
    }
    const result = await session.run.done;
    assert.equal(result.code, 0, result.stderr);

    // The session gone, its copy goes and the deployment comes back, as the API server records them.
    await waitFor(() => copies.pods.size === 0 && copies.replicas() === 2, 'the copy deleted and the replicas back', 15_000);
    assert.equal(copies.deleted.length, 1);
    assert.equal(copies.deployment().metadata.annotations?.[SCALED_DOWN_ANNOTATION], undefined);
    assert.deepEqual((await copyTargetsTable()).rows, []);
    const agent = kubelet.agents.at(-1)!;
    await Promise.race([childExited(agent), new Promise((resolve) => setTimeout(resolve, 20_000))]);
    assert.notEqual(agent.exitCode ?? agent.signalCode, null, 'the copy\'s agent ended after its session');
    assert.doesNotMatch(await podIptablesRules(pod), /remocal/i);
    await stopChild(operator.child);
  });

  it('an operator killed mid-session: the next one scales the deployment back and deletes the copy at its start; the session ends with an error', async () => {
    const first = await serve();
    const session = copySession('restart');
    let result: RunResult;
    try {
      await stealing(session);
      const copy = onlyCopy();
      const agent = kubelet.agents.at(-1)!;
      assert.equal(copies.replicas(), 0);
      const deletedBefore = copies.deleted.length;

      first.child.kill('SIGKILL');
      await childExited(first.child);
      // Nothing was released: the copy and the scale-down are the cluster's, not the dead process's.
      assert.equal(copies.pods.has(copy), true);
      assert.equal(copies.replicas(), 0);

      await serve();
      // serveOperator resolves once the new operator listens, which it does only after undoing what it found.
      assert.equal(copies.replicas(), 2, 'scaled back to the replicas the annotation saved');
      assert.deepEqual(copies.deleted.slice(deletedBefore), [copy]);
      assert.equal(copies.pods.size, 0);
      assert.equal(copies.deployment().metadata.annotations?.[SCALED_DOWN_ANNOTATION], undefined);
      assert.equal(copies.deployment().metadata.labels?.['remocal.dev/scaled-down'], undefined);
      assert.deepEqual((await copyTargetsTable()).rows, []);

      result = await session.run.done;
      // The dead operator's agent, its control link gone quiet, ends and takes its rules with it.
      await waitFor(() => agent.exitCode !== null || agent.signalCode !== null, 'the killed operator\'s agent to end', 30_000);
      assert.doesNotMatch(await podIptablesRules(pod), /remocal/i);
    } finally {
      session.run.child.kill('SIGKILL');
    }
    assert.equal(result.code, 125, result.stderr);
    assert.equal(result.signal, null, 'the CLI ended by itself, not by the timeout\'s SIGKILL');
    // Regression: this was "The agent … exited with code 0", of an agent that had not exited.
    assert.match(result.stderr, /The session on deployment\/orders .*was closed: the connection to the operator dropped \(WebSocket \d+\): it stopped, restarted or cannot be reached\./);
    assert.match(result.stderr, /REMOCAL_OPERATOR_UNAVAILABLE/);
    assert.doesNotMatch(result.stderr, /exited with code/);
  });

  it('a user who may not scale the deployment is refused a scale_down copy in words, before anything is created', async () => {
    const operator = await serve();
    mayScale = false;
    try {
      const session = copySession('noscale');
      const result = await session.run.done;
      assert.equal(result.code, 125, result.stderr);
      assert.match(result.stderr, /dev-alice may not scale deployments\.apps "orders" in namespace shop, so may not scale it down for a copy \(scale_down\)/);
      assert.match(result.stderr, /kubectl auth can-i patch deployments\.apps\/orders --subresource=scale -n shop/);
      assert.match(result.stderr, /REMOCAL_OPERATOR_FORBIDDEN/);
      assert.deepEqual([...copies.pods.keys()], [], 'no copy was made');
      assert.equal(copies.replicas(), 2, 'the deployment keeps its replicas');
      assert.ok(cluster.reviews.some((review) => review.verb === 'patch' && review.resource === 'deployments' && review.subresource === 'scale' && review.name === 'orders'));
    } finally {
      mayScale = true;
      await stopChild(operator.child);
    }
  });

  it('asked the API server nothing it has no recording or rule for', () => {
    assert.deepEqual(api.unmatched.map((request) => `${request.method} ${request.path}${request.note ? ` (${request.note})` : ''}`), []);
  });
});
