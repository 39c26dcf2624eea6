// The operator in Kubernetes mode, end to end on the aggregated-API path: the recorded fake API server plays the
// cluster's API server and its aggregator (front-proxy client certificate, X-Remote-User/Group, RBAC before the
// proxy, the portforward upgrade spliced through), the fake kubelet starts the operator's shared agent in the
// fixture pod when the operator adds its ephemeral container, and `remocal exec` runs as a developer would, with
// a kubeconfig that names only the API server. The operator, the agents, iptables and every packet are real.

import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Pod } from '../../src/fixture/pod.js';
import { childExited } from '../../src/core/child.js';
import { operatorConfigSchema } from '../../src/operator/config.js';
import { startOperator, type RunningOperator } from '../../src/operator/server.js';
import type { AggregatedAccess } from '../helpers/aggregator.js';
import type { TestCertificates } from '../helpers/certificates.js';
import { installFakeKubelet, portForwardInto, type FakeKubelet } from '../helpers/fake-kubelet.js';
import { kubeTokens, startFakeKubeApi, type FakeKubeApi, type KubeUser } from '../helpers/kube-api.js';
import { fakeOperatorCluster, type OperatorCluster, type ReviewSeen } from '../helpers/kube-cluster.js';
import { servePolicies, type FakePolicies } from '../helpers/kube-policies.js';
import { serveJobs } from '../helpers/kube-jobs.js';
import { answeredFrom, httpRequest } from '../helpers/net.js';
import { podIptablesRules } from '../helpers/pod.js';
import { waitFor } from '../helpers/processes.js';
import { runRemocal, startPodWithApp, startRemocal, stopPodWithApp } from '../helpers/remocal.js';

const APP = String.raw`
import http from 'node:http';
const [mode, ...args] = process.argv.slice(2);
const out = (value) => process.stdout.write(JSON.stringify(value) + '\n');
switch (mode) {
  case 'env': out({ greeting: process.env.GREETING }); break;
  case 'serve': {
    const server = http.createServer((req, res) => {
      out({ saw: req.url });
      res.end(JSON.stringify({ from: args[1] }));
    });
    server.listen(Number(args[0]), () => out({ listening: true }));
    process.on('SIGTERM', () => server.close(() => process.exit(0)));
    break;
  }
}
`;

const POD = 'orders-6497447b6f-2d76r';

let pod: Pod;
let app: { dir: string; remove: () => void };
let api: FakeKubeApi;
let kubelet: FakeKubelet;
let operator: RunningOperator;
let cluster: OperatorCluster;
let certificates: TestCertificates;
let proxied: AggregatedAccess[];
let policies: FakePolicies;
const forwards: ChildProcess[] = [];
/** What the aggregator's RBAC refuses dev-alice, as `verb resource[/subresource]`. */
const aliceLacks = new Set<string>();
/** What SubjectAccessReviews deny dev-alice, as `verb resource name`. */
const reviewsDeny = new Set<string>();
let reviews: ReviewSeen[];
/** The requestheader CA the ConfigMap holds; a test rotates it. */
let requestHeaderCa = '';
let frontProxy: { cert: string; key: string };

function project(name: string, user: KubeUser, extra: Record<string, unknown> = {}): string {
  const dir = join(app.dir, name);
  mkdirSync(join(dir, '.remocal'), { recursive: true });
  writeFileSync(join(dir, '.remocal', 'config.json'), JSON.stringify({ kubeconfig: api.kubeconfig(user), agent: { startup_timeout: 30 }, ...extra }));
  return dir;
}

function steal(name: string): Record<string, unknown> {
  return { feature: { network: { incoming: { mode: 'steal', http_filter: { header_filter: `^x-dev: ${name}$` } } } } };
}

/** A request straight to the operator, as anyone on the network could send it. */
function callOperator(headers: Record<string, string>, client?: { cert: string; key: string }): Promise<{ status: number; body: { message?: string } }> {
  const url = new URL(operator.url);
  return new Promise((resolve, reject) => {
    const request = https.request(
      { host: url.hostname, port: url.port, path: '/apis/operator.remocal.dev/v1/namespaces/shop/sessions', ca: readFileSync(operator.caFile!, 'utf8'), agent: false, headers, ...client },
      (response) => {
        let text = '';
        response.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, body: JSON.parse(text) as { message?: string } }));
      },
    );
    request.on('error', reject);
    request.end();
  });
}

/** A request through the fake API server, as kubectl sends it. */
async function callApi(user: KubeUser, path: string, accept = 'application/json'): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(`${api.url}${path}`, { headers: { authorization: `Bearer ${kubeTokens[user]}`, accept } });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

before(async () => {
  ({ pod, app } = await startPodWithApp({ 'app.mjs': APP }));
  api = await startFakeKubeApi({ log: () => {}, portForward: (namespace, name, port) => portForwardInto(pod, forwards)(namespace, name, port) });
  kubelet = installFakeKubelet(api, pod, POD, forwards);
  policies = servePolicies(api);
  serveJobs(api);
  cluster = fakeOperatorCluster(api, {
    requestHeaderCa: () => requestHeaderCa,
    // dev-alice's Role gives her get on the workloads of shop, less what a test takes away.
    reviewAllows: ({ verb, resource, name }) => verb === 'get' && !reviewsDeny.has(`${verb} ${resource} ${name ?? ''}`),
    allows: (access) => access.user === 'admin' || !aliceLacks.has(`${access.verb} ${access.subresource === undefined ? access.resource : `${access.resource}/${access.subresource}`}`),
  });
  ({ certificates, frontProxy, reviews, proxied } = cluster);
  certificates.ca('other-ca');
  requestHeaderCa = certificates.read('front-proxy-ca.pem');

  const state = join(app.dir, 'operator-state');
  const config = operatorConfigSchema.parse({
    mode: 'kubernetes',
    kubernetes: { kubeconfig: api.kubeconfig('admin'), authentication_reload: 0.5, agent: { ttl: 30 } },
    listen: { host: '127.0.0.1', port: 0 },
    state_dir: state,
    agents: { grace: 1, startup_timeout: 30 },
    log_level: 'warn',
  });
  operator = await startOperator(config);
  cluster.aggregateTo({ url: operator.url, caFile: operator.caFile! });
});

after(async () => {
  await operator?.close();
  kubelet?.uninstall();
  for (const agent of kubelet?.agents ?? []) if (agent.exitCode === null && agent.signalCode === null) agent.kill('SIGKILL');
  await api?.close();
  cluster?.remove();
  await stopPodWithApp(pod, app);
});

describe('operator in Kubernetes mode, behind the API server', { timeout: 240_000 }, () => {
  it('believes only the front proxy: no certificate, another CA, or a CN not allowed is 401', async () => {
    const claims = { 'X-Remote-User': 'admin', 'X-Remote-Group': 'system:masters' };
    const none = await callOperator(claims);
    assert.equal(none.status, 401);
    assert.match(none.body.message ?? '', /no client certificate was presented/);
    const outsider = await callOperator(claims, certificates.client('outsider', 'front-proxy-client', 'other-ca'));
    assert.equal(outsider.status, 401);
    assert.match(outsider.body.message ?? '', /not signed by the API server's requestheader client CA/);
    const intruder = await callOperator(claims, certificates.client('intruder', 'intruder', 'front-proxy-ca'));
    assert.equal(intruder.status, 401);
    assert.match(intruder.body.message ?? '', /CN "intruder" is not one of the requestheader allowed names/);
  });

  it('takes a rotated requestheader CA from the ConfigMap without a restart', async () => {
    const claims = { 'X-Remote-User': 'admin', 'X-Remote-Group': 'system:masters' };
    const rotatedCa = certificates.ca('front-proxy-ca-2');
    const rotated = certificates.client('front-proxy-client-2', 'front-proxy-client', 'front-proxy-ca-2');
    const original = requestHeaderCa;
    assert.equal((await callOperator(claims, rotated)).status, 401);
    requestHeaderCa = rotatedCa;
    try {
      const seen = { status: 0 };
      await waitFor(() => {
        void callOperator(claims, rotated).then((answer) => (seen.status = answer.status), () => undefined);
        return seen.status === 200 || undefined;
      }, 'the operator to trust the rotated CA', 15_000);
      assert.equal((await callOperator(claims, frontProxy)).status, 401, 'the old CA is no longer trusted');
    } finally {
      requestHeaderCa = original;
    }
    const back = { status: 0 };
    await waitFor(() => {
      void callOperator(claims, frontProxy).then((answer) => (back.status = answer.status), () => undefined);
      return back.status === 200 || undefined;
    }, 'the operator to trust the original CA again', 15_000);
  });

  it('serves discovery and a Table for kubectl through the aggregator; a user without RBAC gets the API server\'s 403', async () => {
    const discovery = await callApi('dev-alice', '/apis/operator.remocal.dev/v1');
    assert.equal(discovery.status, 200);
    assert.equal(discovery.body.kind, 'APIResourceList');
    const table = await callApi('admin', '/apis/operator.remocal.dev/v1/namespaces/shop/sessions?limit=500', 'application/json;as=Table;v=v1;g=meta.k8s.io');
    assert.equal(table.status, 200);
    assert.equal(table.body.kind, 'Table');
    aliceLacks.add('list sessions');
    try {
      const refused = await callApi('dev-alice', '/apis/operator.remocal.dev/v1/namespaces/shop/sessions');
      assert.equal(refused.status, 403);
      assert.equal(refused.body.message, 'sessions.operator.remocal.dev is forbidden: User "dev-alice" cannot list resource "sessions" in API group "operator.remocal.dev" in the namespace "shop"');
    } finally {
      aliceLacks.clear();
    }
  });

  it('remocal exec: two developers steal one port of deployment/orders with their own filters, through one shared agent', async () => {
    const agentsBefore = kubelet.agents.length;
    const start = (user: KubeUser, name: string) =>
      startRemocal(['exec', '-t', 'deployment/orders', '--', process.execPath, join(app.dir, 'app.mjs'), 'serve', String(pod.ports.target), `${name}-app`], { cwd: project(name, user, steal(name)), timeoutMs: 90_000 });
    const runs: ReturnType<typeof startRemocal>[] = [];
    const stderr: string[] = [];
    const stealing = async (index: number): Promise<void> => {
      await waitFor(() => /stealing the HTTP requests that match/.test(stderr[index]!), `session ${index} to steal`, 60_000).catch(async (error: Error) => {
        runs[index]!.child.kill('SIGKILL');
        throw new Error(`${error.message}: ${(await runs[index]!.done).stderr}`);
      });
    };
    try {
      // One after the other, so that the second is told who is there already.
      for (const [index, user, name] of [[0, 'admin', 'admin'], [1, 'dev-alice', 'alice']] as const) {
        runs.push(start(user, name));
        stderr.push('');
        runs[index]!.child.stderr!.on('data', (chunk: Buffer | string) => (stderr[index] += chunk.toString()));
        await stealing(index);
      }
      assert.match(stderr[0]!, /found: v1\.operator\.remocal\.dev is Available/);
      assert.match(stderr[1]!, /through the operator: pod\/orders-6497447b6f-2d76r .*also there: admin \(session [0-9a-f]+\)/);
      const ask = async (dev: string | undefined): Promise<string> =>
        answeredFrom((await httpRequest({ host: pod.ip, port: pod.ports.target, path: `/from-${dev ?? 'nobody'}`, headers: dev === undefined ? {} : { 'x-dev': dev } })).body);
      assert.equal(await ask('admin'), 'admin-app');
      assert.equal(await ask('alice'), 'alice-app');
      assert.equal(await ask(undefined), 'target');
      assert.equal(await ask('bob'), 'target');
      assert.equal(kubelet.agents.length - agentsBefore, 1, 'both sessions are served by one agent');
      assert.deepEqual(kubelet.lastArgs().slice(0, 4), ['--sessions', 'tcp', '--listen', kubelet.lastArgs()[3]]);

      // The upgrade reached the operator as each user, checked by RBAC as a `get` of targets/portforward.
      assert.ok(proxied.some((entry) => entry.user === 'dev-alice' && entry.verb === 'get' && entry.resource === 'targets' && entry.subresource === 'portforward' && entry.name === 'deployment.orders'));
      assert.ok(reviews.some((review) => review.user === 'dev-alice' && review.verb === 'get' && review.resource === 'deployments' && review.name === 'orders'));

      const sessions = await callApi('dev-alice', '/apis/operator.remocal.dev/v1/namespaces/shop/sessions');
      const items = (sessions.body.items as { spec: { owner: string; target: string }; status: { phase: string } }[]).filter((item) => item.status.phase !== 'Closed');
      assert.deepEqual(items.map((item) => item.spec.owner).sort(), ['admin', 'dev-alice']);

      // The CLI's session commands take the same path: the kubeconfig's API server, the config's namespace.
      const aliceDir = project('alice', 'dev-alice', steal('alice'));
      const listed = await runRemocal(['session', 'list', '--json'], { cwd: aliceDir });
      assert.equal(listed.code, 0, listed.stderr);
      const listedItems = JSON.parse(listed.stdout) as { metadata: { name: string }; spec: { owner: string } }[];
      assert.deepEqual(listedItems.map((item) => item.spec.owner).sort(), ['admin', 'dev-alice']);
      const adminSession = listedItems.find((item) => item.spec.owner === 'admin')!.metadata.name;
      const refused = await runRemocal(['session', 'kill', adminSession], { cwd: aliceDir });
      assert.notEqual(refused.code, 0);
      assert.match(refused.stderr, new RegExp(`session ${adminSession} belongs to admin: only its owner or an admin may end it`));
      assert.ok(reviews.some((review) => review.user === 'dev-alice' && review.verb === 'kill' && review.resource === 'sessions'), 'the operator asked whether dev-alice may kill');
    } finally {
      for (const run of runs) run.child.kill('SIGTERM');
    }
    for (const run of runs) {
      const result = await run.done;
      // The app closes its server on SIGTERM and exits 0; remocal exits with it.
      assert.equal(result.code, 0, result.stderr);
    }
    // The last session gone, the agent ends after the grace period, and its rules with it.
    const agent = kubelet.agents.at(-1)!;
    await Promise.race([childExited(agent), new Promise((resolve) => setTimeout(resolve, 20_000))]);
    assert.notEqual(agent.exitCode ?? agent.signalCode, null, 'the shared agent ended after its last session');
    assert.doesNotMatch(await podIptablesRules(pod), /remocal/i);
  });

  it('policies from the cluster: a RemocalPolicy applies as it is created and changed, by target name, pod name or labels, and stops applying when deleted', async () => {
    const aliceDir = project('alice-policies', 'dev-alice', steal('alice'));
    const applied = async (target: string): Promise<string[]> => {
      const check = await runRemocal(['policy', 'check', '-t', target, '--json'], { cwd: aliceDir });
      assert.equal(check.code, 0, check.stderr);
      return (JSON.parse(check.stdout) as { policies: { name: string }[] }).policies.map((policy) => policy.name);
    };
    const until = async (target: string, expected: string[]): Promise<void> => {
      const deadline = Date.now() + 10_000;
      for (let names = await applied(target); JSON.stringify(names) !== JSON.stringify(expected); names = await applied(target)) {
        assert.ok(Date.now() < deadline, `the operator's watch to show ${JSON.stringify(expected)} on ${target}, not ${JSON.stringify(names)}`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    };
    policies.apply({ kind: 'RemocalPolicy', metadata: { name: 'no-steal', namespace: 'shop' }, spec: { targetPath: 'deployment/orders', block: ['steal'] } });
    policies.apply({ kind: 'RemocalPolicy', metadata: { name: 'elsewhere', namespace: 'other' }, spec: { block: ['outgoing'] } });
    try {
      await until('deployment/orders', ['shop/no-steal']);
      // Naming the deployment's pod does not walk around a policy on the deployment.
      await until(`pod/${POD}`, ['shop/no-steal']);
      const refused = await runRemocal(['exec', '-t', `pod/${POD}`, '--', process.execPath, join(app.dir, 'app.mjs'), 'serve', String(pod.ports.target), 'alice-app'], { cwd: aliceDir, timeoutMs: 60_000 });
      assert.equal(refused.code, 125, refused.stderr);
      assert.match(refused.stderr, /policy shop\/no-steal forbids stealing port \d+ of the target \(block: steal\)/);
      assert.match(refused.stderr, /REMOCAL_POLICY_BLOCKED/);
      // Changed in the cluster: now by the pod's labels, and for outgoing traffic only.
      policies.apply({ kind: 'RemocalPolicy', metadata: { name: 'no-steal', namespace: 'shop' }, spec: { selector: { matchLabels: { app: 'orders' } }, block: ['outgoing'] } });
      await until('deployment/orders', ['shop/no-steal']);
      const check = await runRemocal(['policy', 'check', '-t', 'deployment/orders'], { cwd: aliceDir });
      assert.match(check.stdout, /connect out from the target: no \(shop\/no-steal\)/);
      assert.match(check.stdout, /steal with an HTTP filter: yes/);
      policies.apply({ kind: 'RemocalPolicy', metadata: { name: 'no-steal', namespace: 'shop' }, spec: { selector: { matchLabels: { app: 'payments' } }, block: ['outgoing'] } });
      await until('deployment/orders', []);
    } finally {
      policies.delete('RemocalPolicy', 'no-steal', 'shop');
      policies.delete('RemocalPolicy', 'elsewhere', 'other');
    }
    await until('deployment/orders', []);
  });

  it('a SubjectAccessReview that says no refuses the session, naming what is missing', async () => {
    reviewsDeny.add('get deployments orders');
    try {
      const result = await runRemocal(['exec', '-t', 'deployment/orders', '--', process.execPath, join(app.dir, 'app.mjs'), 'env'], { cwd: project('alice-denied', 'dev-alice'), timeoutMs: 60_000 });
      assert.notEqual(result.code, 0);
      assert.match(result.stderr, /dev-alice may not get deployments\.apps "orders" in namespace shop/);
      assert.match(result.stderr, /kubectl auth can-i get deployments\.apps\/orders -n shop/);
    } finally {
      reviewsDeny.clear();
    }
  });

  it('operator: true with no operator in the cluster fails and says how to install one', async () => {
    const remove = api.override('GET', '/apis/apiregistration.k8s.io/v1/apiservices/v1.operator.remocal.dev', () => api.recorded('apiservice-operator-absent'));
    try {
      const result = await runRemocal(['exec', '-t', 'deployment/orders', '--operator', 'true', '--', 'true'], { cwd: project('no-operator', 'admin'), timeoutMs: 60_000 });
      assert.notEqual(result.code, 0);
      assert.match(result.stderr, /the cluster has no APIService v1\.operator\.remocal\.dev/);
      assert.match(result.stderr, /remocal operator setup \| kubectl apply -f -/);
    } finally {
      remove();
    }
  });

  it('asked the API server nothing it has no recording or rule for', () => {
    assert.deepEqual(api.unmatched.map((request) => `${request.method} ${request.path}${request.note ? ` (${request.note})` : ''}`), []);
  });
});
