// The operator tier of the Kubernetes e2e tests: installs the operator with the objects `remocal operator setup`
// prints, waits for its APIService to be Available, then runs two filtered steals on one deployment through it
// and checks that each developer gets only their requests. Then the policy CRDs: Established, a bad policy refused
// by the API server itself, and a RemocalPolicy that blocks stealing from the deployment while mirroring still
// works. Everything is removed at the end, the APIService first (while it points at a missing backend, discovery
// fails for everyone) and the CRDs last (deleting one deletes its policies).
//
//   REMOCAL_K8S_OPERATOR_IMAGE   the operator image (Dockerfile.operator), loaded into or pullable by the cluster
//   REMOCAL_K8S_AGENT_IMAGE      the agent image, as for the other tier

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ApiException, ApiextensionsV1Api, AppsV1Api, BatchV1Api, CoreV1Api, CustomObjectsApi, KubeConfig, KubernetesObjectApi, type KubernetesObject } from '@kubernetes/client-node';
import { POLICY_BLOCKED, POLICY_GROUP, POLICY_VERSION } from '../src/protocol/policy.js';
import { operatorInstallObjects, operatorServiceNames, OPERATOR_APISERVICE } from '../src/operator/install.js';
import { POLICY_RESOURCES } from '../src/operator/policy-crd.js';
import { issueWithThrowawayCa } from '../src/operator/tls.js';
import { clusterOperator } from '../src/platform/operator/kube-platform.js';
import { connectKube } from '../src/platform/kubernetes/api.js';
import { lastJson, runRemocal, startRemocal, writeApp } from '../test/helpers/remocal.js';
import { waitFor } from '../test/helpers/processes.js';

const operatorImage = process.env.REMOCAL_K8S_OPERATOR_IMAGE;
const agentImage = process.env.REMOCAL_K8S_AGENT_IMAGE!;
const suffix = randomBytes(3).toString('hex');
const operatorNamespace = `remocal-e2e-operator-${suffix}`;
const namespace = `remocal-e2e-shared-${suffix}`;

const config = new KubeConfig();
config.loadFromDefault();
const core = config.makeApiClient(CoreV1Api);
const apps = config.makeApiClient(AppsV1Api);
const batch = config.makeApiClient(BatchV1Api);
const objects = KubernetesObjectApi.makeApiClient(config);
const extensions = config.makeApiClient(ApiextensionsV1Api);
const custom = config.makeApiClient(CustomObjectsApi);
const policyPlural = POLICY_RESOURCES.RemocalPolicy.plural;

const APP = String.raw`
import http from 'node:http';
const [mode, ...args] = process.argv.slice(2);
const out = (value) => process.stdout.write(JSON.stringify(value) + '\n');
if (mode === 'http') {
  const res = await fetch(args[0], { headers: { 'x-dev': args[1] } });
  out(await res.json());
} else {
  const server = http.createServer((req, res) => {
    out({ saw: req.url });
    res.end(JSON.stringify({ from: args[0], path: req.url }));
  });
  server.listen(8080, () => out({ listening: true }));
  process.on('SIGTERM', () => server.close(() => process.exit(0)));
}
`;

let installed: KubernetesObject[] = [];
let project: { dir: string; remove: () => void };

async function until(probe: () => Promise<boolean>, what: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

function developer(name: string, incoming: Record<string, unknown> = { mode: 'steal', http_filter: { header_filter: `^x-dev: ${name}$` } }): string {
  const dir = join(project.dir, name);
  mkdirSync(join(dir, '.remocal'), { recursive: true });
  writeFileSync(join(dir, '.remocal', 'config.json'), JSON.stringify({ operator: true, target: { namespace }, agent: { image: agentImage, startup_timeout: 120 }, feature: { network: { incoming } } }));
  return dir;
}

/** A request to deployment/target's Service from inside the cluster (a targetless session); the answer's `from`. */
async function ask(dev: string): Promise<string> {
  const result = await runRemocal(['exec', '-t', 'targetless', '--', process.execPath, join(project.dir, 'app.mjs'), 'http', 'http://target/', dev], { cwd: project.dir, timeoutMs: 180_000 });
  return (lastJson(result) as { from: string }).from;
}

/** The status code of a failed API call, or 0 when it did not fail. */
async function statusOf(call: Promise<unknown>): Promise<{ code: number; message: string }> {
  try {
    await call;
    return { code: 0, message: '' };
  } catch (error) {
    if (!(error instanceof ApiException)) throw error;
    const body = typeof error.body === 'string' && error.body.startsWith('{') ? (JSON.parse(error.body) as { message?: string }) : {};
    return { code: error.code, message: body.message ?? String(error.body) };
  }
}

describe(`the operator on a real cluster (namespace ${namespace})`, { skip: operatorImage === undefined ? 'REMOCAL_K8S_OPERATOR_IMAGE is not set: the operator tier needs an operator image' : false }, () => {
  before(async () => {
    installed = operatorInstallObjects({ namespace: operatorNamespace, image: operatorImage!, agentImage, certificate: issueWithThrowawayCa(operatorServiceNames(operatorNamespace)) }) as KubernetesObject[];
    for (const object of installed) await objects.create(object);
    await until(async () => (await clusterOperator(connectKube({}))).available, `the APIService ${OPERATOR_APISERVICE} to be Available`, 180_000);

    await core.createNamespace({ body: { metadata: { name: namespace, labels: { 'app.kubernetes.io/managed-by': 'remocal-e2e' } } } });
    await apps.createNamespacedDeployment({
      namespace,
      body: {
        metadata: { name: 'target', namespace },
        spec: {
          replicas: 1,
          selector: { matchLabels: { app: 'target' } },
          template: {
            metadata: { labels: { app: 'target' } },
            spec: { containers: [{ name: 'app', image: agentImage, command: ['node', '-e', "require('http').createServer((q,s)=>s.end(JSON.stringify({from:'target'}))).listen(8080)"], ports: [{ containerPort: 8080 }] }] },
          },
        },
      },
    });
    await core.createNamespacedService({ namespace, body: { metadata: { name: 'target' }, spec: { selector: { app: 'target' }, ports: [{ port: 80, targetPort: 8080 }] } } });
    await until(async () => ((await apps.readNamespacedDeployment({ name: 'target', namespace })).status?.readyReplicas ?? 0) >= 1, 'deployment/target', 180_000);
    project = writeApp({ 'app.mjs': APP });
    mkdirSync(join(project.dir, '.remocal'));
    writeFileSync(join(project.dir, '.remocal', 'config.json'), JSON.stringify({ operator: false, target: { namespace }, agent: { image: agentImage, startup_timeout: 120 } }));
  });

  after(async () => {
    project?.remove();
    await core.deleteNamespace({ name: namespace }).catch(() => undefined);
    // The APIService first, the CRDs last (deleting one deletes its policies), the rest between.
    const order = (object: KubernetesObject) => (object.kind === 'APIService' ? 0 : object.kind === 'CustomResourceDefinition' ? 2 : 1);
    for (const object of [...installed].sort((a, b) => order(a) - order(b))) {
      await objects.delete(object).catch(() => undefined);
    }
  });

  it('two developers steal port 8080 of deployment/target with their own filters; the rest reach the pod', async () => {
    const runs = ['alice', 'bob'].map((name) => startRemocal(['exec', '-t', 'deployment/target', '--', process.execPath, join(project.dir, 'app.mjs'), 'serve', name], { cwd: developer(name), timeoutMs: 400_000 }));
    const stderr = ['', ''];
    runs.forEach((run, index) => run.child.stderr!.on('data', (chunk: Buffer) => (stderr[index] += chunk.toString())));
    try {
      for (const index of [0, 1]) await waitFor(() => /stealing the HTTP requests that match/.test(stderr[index]!) || undefined, `session ${index} to steal`, 240_000);
      for (const index of [0, 1]) assert.match(stderr[index]!, /through the operator/);
      assert.equal(await ask('alice'), 'alice');
      assert.equal(await ask('bob'), 'bob');
      assert.equal(await ask('carol'), 'target');
    } finally {
      for (const run of runs) run.child.kill('SIGTERM');
      for (const run of runs) await run.done;
    }
  });

  it('installed both policy CRDs, and they are Established', async () => {
    for (const object of installed.filter((candidate) => candidate.kind === 'CustomResourceDefinition')) {
      const name = object.metadata!.name!;
      await until(async () => ((await extensions.readCustomResourceDefinition({ name })).status?.conditions ?? []).some((condition) => condition.type === 'Established' && condition.status === 'True'), `${name} to be Established`, 60_000);
    }
  });

  it('the API server itself refuses a policy with a block remocal does not know (422)', async () => {
    const refused = await statusOf(
      custom.createNamespacedCustomObject({
        group: POLICY_GROUP,
        version: POLICY_VERSION,
        namespace,
        plural: policyPlural,
        body: { apiVersion: `${POLICY_GROUP}/${POLICY_VERSION}`, kind: 'RemocalPolicy', metadata: { name: 'bad-block' }, spec: { targetPath: 'deployment/target', block: ['teleport'] } },
      }),
    );
    assert.equal(refused.code, 422, refused.message);
    assert.match(refused.message, /spec\.block: Unsupported value: "teleport"/);
  });

  it('a RemocalPolicy that blocks steal on deployment/target refuses a stealing session, naming itself; mirroring still works', async () => {
    const name = 'no-steal';
    await custom.createNamespacedCustomObject({
      group: POLICY_GROUP,
      version: POLICY_VERSION,
      namespace,
      plural: policyPlural,
      body: { apiVersion: `${POLICY_GROUP}/${POLICY_VERSION}`, kind: 'RemocalPolicy', metadata: { name }, spec: { targetPath: 'deployment/target', block: ['steal'] } },
    });
    try {
      // The operator learns of the policy through its watch, a moment after the create: a steal that still got
      // through ran before that, so it is ended and tried again, until one is refused or the deadline passes.
      const deadline = Date.now() + 120_000;
      let refusal: string | undefined;
      while (refusal === undefined) {
        const run = startRemocal(['exec', '-t', 'deployment/target', '--', process.execPath, join(project.dir, 'app.mjs'), 'serve', 'blocked'], { cwd: developer('blocked'), timeoutMs: 300_000 });
        let output = '';
        run.child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
        run.child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
        let exitCode: number | null | undefined;
        void run.done.then((result) => (exitCode = result.code));
        const outcome = await waitFor(
          () => (output.includes(POLICY_BLOCKED) ? 'refused' : exitCode !== undefined ? 'ended' : /stealing the HTTP requests that match/.test(output) ? 'stealing' : undefined),
          'the steal to be refused or to start',
          240_000,
        ).catch((error: Error) => assert.fail(`${error.message}:\n${output}`));
        // A session that ended without the refusal failed for another reason.
        assert.notEqual(outcome, 'ended', `the session ended (exit ${exitCode}) without ${POLICY_BLOCKED}:\n${output}`);
        if (outcome === 'refused') {
          // Refused: the command fails (or is stopped here when it lingers), and the output says which policy.
          const result = await Promise.race([run.done, new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 30_000).unref())]);
          if (result === undefined) run.child.kill('SIGTERM');
          else assert.notEqual(result.code, 0, output);
          await run.done;
          refusal = output;
        } else {
          run.child.kill('SIGTERM');
          await run.done;
          assert.ok(Date.now() < deadline, `the operator still let a session steal from deployment/target after the policy was created:\n${output}`);
        }
      }
      assert.ok(refusal.includes(`${namespace}/${name}`), `the refusal names the policy:\n${refusal}`);

      const mirror = startRemocal(['exec', '-t', 'deployment/target', '--', process.execPath, join(project.dir, 'app.mjs'), 'serve', 'mirror'], { cwd: developer('mirror', { mode: 'mirror' }), timeoutMs: 400_000 });
      let mirrorOut = '';
      let mirrorErr = '';
      mirror.child.stdout!.on('data', (chunk: Buffer) => (mirrorOut += chunk.toString()));
      mirror.child.stderr!.on('data', (chunk: Buffer) => (mirrorErr += chunk.toString()));
      try {
        await waitFor(() => /mirroring port 8080/.test(mirrorErr) || undefined, 'the mirroring session', 240_000);
        assert.doesNotMatch(mirrorErr, new RegExp(POLICY_BLOCKED));
        // The target still answers, and the local app gets a copy.
        assert.equal(await ask('carol'), 'target');
        await waitFor(() => mirrorOut.includes('"saw":"/"') || undefined, 'a mirrored copy of the request', 60_000);
      } finally {
        mirror.child.kill('SIGTERM');
        await mirror.done;
      }
    } finally {
      await custom.deleteNamespacedCustomObject({ group: POLICY_GROUP, version: POLICY_VERSION, namespace, plural: policyPlural, name });
    }
  });

  // Copy targets: a Job whose pod has completed is copied (its command ends, so the copy idles) and `exec` runs
  // against the copy; then a scale_down round trip on deployment/target.
  it('copies a Job whose pod has completed, runs exec against the copy, and deletes the copy at the end', async () => {
    await batch.createNamespacedJob({
      namespace,
      body: {
        metadata: { name: 'done' },
        spec: { backoffLimit: 0, template: { spec: { restartPolicy: 'Never', containers: [{ name: 'app', image: agentImage, env: [{ name: 'GREETING', value: 'from-the-job' }], command: ['node', '-e', 'process.exit(0)'] }] } } },
      },
    });
    await until(async () => ((await batch.readNamespacedJob({ name: 'done', namespace })).status?.succeeded ?? 0) >= 1, 'job/done to complete', 180_000);
    const dir = developer('copier');
    writeFileSync(join(dir, '.remocal', 'config.json'), JSON.stringify({ operator: true, target: { namespace }, agent: { image: agentImage, startup_timeout: 120 }, feature: { copy_target: true } }));
    const result = await runRemocal(['exec', '-t', 'job/done', '--', process.execPath, '-e', 'console.log(JSON.stringify({ greeting: process.env.GREETING }))'], { cwd: dir, timeoutMs: 300_000 });
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(lastJson(result), { greeting: 'from-the-job' });
    assert.match(result.stderr, /copy/);
    await until(async () => (await core.listNamespacedPod({ namespace, labelSelector: 'remocal.dev/copy-of=job.done' })).items.length === 0, 'the copy to be deleted', 120_000);
  });

  it('scale_down takes deployment/target to 0 for the session, and back to 1 after it', async () => {
    const dir = developer('scaler');
    writeFileSync(join(dir, '.remocal', 'config.json'), JSON.stringify({ operator: true, target: { namespace }, agent: { image: agentImage, startup_timeout: 120 }, feature: { copy_target: { enabled: true, scale_down: true } } }));
    const run = startRemocal(['exec', '-t', 'deployment/target', '--', process.execPath, join(project.dir, 'app.mjs'), 'serve', 'copy'], { cwd: dir, timeoutMs: 400_000 });
    let stdout = '';
    run.child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    try {
      await waitFor(() => stdout.includes('"listening":true') || undefined, 'the session on the copy', 300_000);
      const scaled = await apps.readNamespacedDeployment({ name: 'target', namespace });
      assert.equal(scaled.spec?.replicas, 0);
      assert.match(scaled.metadata?.annotations?.['remocal.dev/scaled-down-by'] ?? '', /"replicas":1/);
    } finally {
      run.child.kill('SIGTERM');
      await run.done;
    }
    await until(async () => (await apps.readNamespacedDeployment({ name: 'target', namespace })).spec?.replicas === 1, 'deployment/target back at 1 replica', 120_000);
    const restored = await apps.readNamespacedDeployment({ name: 'target', namespace });
    assert.equal(restored.metadata?.annotations?.['remocal.dev/scaled-down-by'], undefined);
  });
  it('splits a RabbitMQ queue: the developer\'s app consumes only its tenant\'s messages, the deployed consumer\'s env is pointed away and back', async () => {
    const rabbitImage = process.env.REMOCAL_K8S_RABBITMQ_IMAGE ?? 'rabbitmq:3.10-alpine';
    const url = 'amqp://remocal:remocal@rabbitmq:5672';
    await apps.createNamespacedDeployment({
      namespace,
      body: {
        metadata: { name: 'rabbitmq', namespace },
        spec: {
          replicas: 1,
          selector: { matchLabels: { app: 'rabbitmq' } },
          template: {
            metadata: { labels: { app: 'rabbitmq' } },
            spec: { containers: [{ name: 'rabbitmq', image: rabbitImage, env: [{ name: 'RABBITMQ_DEFAULT_USER', value: 'remocal' }, { name: 'RABBITMQ_DEFAULT_PASS', value: 'remocal' }], ports: [{ containerPort: 5672 }], readinessProbe: { tcpSocket: { port: 5672 }, periodSeconds: 2 } }] },
          },
        },
      },
    });
    await core.createNamespacedService({ namespace, body: { metadata: { name: 'rabbitmq' }, spec: { selector: { app: 'rabbitmq' }, ports: [{ port: 5672, targetPort: 5672 }] } } });
    await core.createNamespacedSecret({ namespace, body: { metadata: { name: 'rabbitmq' }, stringData: { url } } });
    await objects.create({ apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'RoleBinding', metadata: { name: 'remocal-operator:split-secrets', namespace }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'remocal-operator-split-secrets' }, subjects: [{ kind: 'ServiceAccount', name: 'remocal-operator', namespace: operatorNamespace }] } as KubernetesObject);
    // The deployed consumer: its queue's name is in ORDERS_QUEUE, which the split points away and back.
    await apps.createNamespacedDeployment({
      namespace,
      body: {
        metadata: { name: 'orders', namespace },
        spec: {
          replicas: 1,
          selector: { matchLabels: { app: 'orders' } },
          template: { metadata: { labels: { app: 'orders' } }, spec: { containers: [{ name: 'app', image: agentImage, env: [{ name: 'ORDERS_QUEUE', value: 'orders' }], command: ['node', '-e', 'setInterval(() => {}, 1 << 30)'] }] } },
        },
      },
    });
    await custom.createNamespacedCustomObject({
      group: 'queues.remocal.dev',
      version: 'v1alpha1',
      namespace,
      plural: 'remocalsplitconfigs',
      body: {
        apiVersion: 'queues.remocal.dev/v1alpha1',
        kind: 'RemocalSplitConfig',
        metadata: { name: 'orders', namespace },
        spec: { targetRef: { kind: 'Deployment', name: 'orders' }, queues: { orders: { queueType: 'RMQ', queueName: { env: { container: 'app', name: 'ORDERS_QUEUE' } }, connection: { secretRef: { name: 'rabbitmq', key: 'url' } } } } },
      },
    });
    await until(async () => ((await apps.readNamespacedDeployment({ name: 'rabbitmq', namespace })).status?.readyReplicas ?? 0) >= 1, 'rabbitmq to be ready', 300_000);
    await until(async () => ((await apps.readNamespacedDeployment({ name: 'orders', namespace })).status?.readyReplicas ?? 0) >= 1, 'deployment/orders to be ready', 180_000);

    const amqplib = new URL('../node_modules/amqplib/channel_api.js', import.meta.url).href;
    writeFileSync(join(project.dir, 'queue.mjs'), `
import amqplib from '${amqplib}';
const [mode, url, count] = process.argv.slice(2);
const out = (value) => process.stdout.write(JSON.stringify(value) + '\\n');
const connection = await amqplib.connect(url);
if (mode === 'publish') {
  const channel = await connection.createConfirmChannel();
  await channel.assertQueue('orders', { durable: true });
  for (let id = 0; id < Number(count); id++) channel.sendToQueue('orders', Buffer.from(String(id)), { persistent: true, headers: { 'x-tenant': id % 2 === 0 ? 'alice' : 'bob' } });
  await channel.waitForConfirms();
  await connection.close();
  out({ published: Number(count) });
} else {
  const channel = await connection.createChannel();
  out({ queue: process.env.ORDERS_QUEUE });
  await channel.consume(process.env.ORDERS_QUEUE, (message) => { out({ got: Number(message.content.toString()), tenant: String(message.properties.headers['x-tenant']) }); channel.ack(message); });
  process.on('SIGTERM', () => connection.close().then(() => process.exit(0)));
}
`);
    // The queue exists before the split starts, as a deployed consumer's would.
    const declared = await runRemocal(['exec', '-t', 'targetless', '--', process.execPath, join(project.dir, 'queue.mjs'), 'publish', url, '0'], { cwd: project.dir, timeoutMs: 180_000 });
    assert.equal(declared.code, 0, declared.stderr);
    const dir = developer('splitter');
    writeFileSync(join(dir, '.remocal', 'config.json'), JSON.stringify({ operator: true, target: { namespace }, agent: { image: agentImage, startup_timeout: 120 }, feature: { split_queues: { orders: { queue_type: 'RMQ', message_filter: { 'x-tenant': '^alice$' } } } } }));
    const run = startRemocal(['exec', '-t', 'deployment/orders', '--', process.execPath, join(project.dir, 'queue.mjs'), 'consume', url], { cwd: dir, timeoutMs: 400_000 });
    let stdout = '';
    run.child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    const lines = () => stdout.split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line) as { queue?: string; got?: number; tenant?: string });
    try {
      await waitFor(() => lines().some((line) => line.queue !== undefined) || undefined, 'the split session\'s app', 300_000);
      assert.match(lines().find((line) => line.queue !== undefined)!.queue!, /^orders\.remocal\.[0-9a-f]{8}$/);
      const pointed = await apps.readNamespacedDeployment({ name: 'orders', namespace });
      assert.equal(pointed.spec?.template.spec?.containers[0]?.env?.find((entry) => entry.name === 'ORDERS_QUEUE')?.value, 'orders.remocal.deployed');
      const published = await runRemocal(['exec', '-t', 'targetless', '--', process.execPath, join(project.dir, 'queue.mjs'), 'publish', url, '20'], { cwd: project.dir, timeoutMs: 180_000 });
      assert.equal(published.code, 0, published.stderr);
      await waitFor(() => lines().filter((line) => line.got !== undefined).length >= 10 || undefined, 'alice\'s 10 messages', 120_000);
      const got = lines().filter((line) => line.got !== undefined);
      assert.deepEqual(got.map((line) => line.got), [0, 2, 4, 6, 8, 10, 12, 14, 16, 18]);
    } finally {
      run.child.kill('SIGTERM');
      await run.done;
    }
    await until(async () => (await apps.readNamespacedDeployment({ name: 'orders', namespace })).spec?.template.spec?.containers[0]?.env?.find((entry) => entry.name === 'ORDERS_QUEUE')?.value === 'orders', 'deployment/orders pointed back at its queue', 120_000);
  });
});
