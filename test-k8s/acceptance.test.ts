// The Kubernetes e2e tier (npm run test:k8s): the local platform's acceptance tests against a real cluster.
// It creates its own namespace with a target deployment and a dependency service (both run the agent image's
// node, so no other image is needed), runs remocal against them, and deletes the namespace at the end.
//
//   KUBECONFIG                 the cluster (current context)
//   REMOCAL_K8S_AGENT_IMAGE    the agent image, loaded into or pullable by the cluster
//   REMOCAL_K8S_NAMESPACE      optional; default remocal-e2e-<random>

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AppsV1Api, BatchV1Api, CoreV1Api, KubeConfig, type V1Deployment } from '@kubernetes/client-node';
import { lastJson, runRemocal, startRemocal, writeApp } from '../test/helpers/remocal.js';
import { waitFor } from '../test/helpers/processes.js';

const image = process.env.REMOCAL_K8S_AGENT_IMAGE!;
const namespace = process.env.REMOCAL_K8S_NAMESPACE ?? `remocal-e2e-${randomBytes(3).toString('hex')}`;
const config = new KubeConfig();
config.loadFromDefault();
const core = config.makeApiClient(CoreV1Api);
const apps = config.makeApiClient(AppsV1Api);
const batch = config.makeApiClient(BatchV1Api);

const SERVER = (name: string) =>
  `require('http').createServer((q,s)=>s.end(JSON.stringify({from:'${name}',path:q.url,dev:q.headers['x-dev']||null}))).listen(8080)`;

function deployment(name: string, env: Record<string, string>): V1Deployment {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace },
    spec: {
      replicas: 1,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name } },
        spec: {
          containers: [
            {
              name: 'app',
              image,
              imagePullPolicy: 'IfNotPresent',
              command: ['node', '-e', SERVER(name)],
              env: Object.entries(env).map(([key, value]) => ({ name: key, value })),
              ports: [{ containerPort: 8080, name: 'http' }],
              readinessProbe: { tcpSocket: { port: 8080 }, periodSeconds: 1 },
            },
          ],
        },
      },
    },
  };
}

const APP = String.raw`
import dns from 'node:dns';
import http from 'node:http';
const [mode, ...args] = process.argv.slice(2);
const out = (value) => process.stdout.write(JSON.stringify(value) + '\n');
switch (mode) {
  case 'env': out({ greeting: process.env.GREETING }); break;
  case 'dns': out(await dns.promises.lookup(args[0])); break;
  case 'http': { const res = await fetch(args[0], { headers: args[1] ? { 'x-dev': args[1] } : {} }); out(await res.json()); break; }
  case 'serve': {
    const server = http.createServer((req, res) => res.end(JSON.stringify({ from: 'local', path: req.url })));
    server.listen(8080, () => out({ listening: true }));
    process.on('SIGTERM', () => server.close(() => process.exit(0)));
    break;
  }
}
`;

let project: { dir: string; remove: () => void };

async function eventually(probe: () => Promise<boolean>, what: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

function remocal(args: string[], cwd = project.dir) {
  return runRemocal(args, { cwd, timeoutMs: 180_000 });
}

before(async () => {
  await core.createNamespace({ body: { metadata: { name: namespace, labels: { 'app.kubernetes.io/managed-by': 'remocal-e2e' } } } });
  await apps.createNamespacedDeployment({ namespace, body: deployment('target', { GREETING: 'hello from the cluster' }) });
  await apps.createNamespacedDeployment({ namespace, body: deployment('deps', {}) });
  for (const name of ['target', 'deps']) {
    await core.createNamespacedService({ namespace, body: { metadata: { name }, spec: { selector: { app: name }, ports: [{ port: 80, targetPort: 8080 }] } } });
  }
  const deadline = Date.now() + 180_000;
  for (const name of ['target', 'deps']) {
    for (;;) {
      const status = (await apps.readNamespacedDeployment({ name, namespace })).status;
      if ((status?.readyReplicas ?? 0) >= 1) break;
      if (Date.now() > deadline) throw new Error(`deployment/${name} in ${namespace} did not become ready`);
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }
  project = writeApp({ 'app.mjs': APP });
  mkdirSync(join(project.dir, '.remocal'));
  writeFileSync(join(project.dir, '.remocal', 'config.json'), JSON.stringify({ target: { namespace }, agent: { image, startup_timeout: 120 } }));
});

after(async () => {
  project?.remove();
  await core.deleteNamespace({ name: namespace }).catch(() => undefined);
});

describe(`remocal on a real cluster (namespace ${namespace})`, () => {
  it("env: the target's environment", async () => {
    const result = await remocal(['exec', '-t', 'deployment/target', '--', process.execPath, 'app.mjs', 'env']);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(lastJson(result), { greeting: 'hello from the cluster' });
  });

  it("DNS: the cluster's resolver and search domains", async () => {
    const result = await remocal(['exec', '-t', 'deployment/target', '--', process.execPath, 'app.mjs', 'dns', 'deps']);
    assert.equal(result.code, 0, result.stderr);
    const service = await core.readNamespacedService({ name: 'deps', namespace });
    assert.equal((lastJson(result) as { address: string }).address, service.spec?.clusterIP);
  });

  it('outgoing: a service by its short name, from the pod', async () => {
    const result = await remocal(['exec', '-t', 'deployment/target', '--', process.execPath, 'app.mjs', 'http', 'http://deps/hello']);
    assert.equal(result.code, 0, result.stderr);
    assert.equal((lastJson(result) as { from: string }).from, 'deps');
  });

  it('targetless: the cluster network without a target', async () => {
    const result = await remocal(['exec', '-t', 'targetless', '--', process.execPath, 'app.mjs', 'http', 'http://deps/']);
    assert.equal(result.code, 0, result.stderr);
    assert.equal((lastJson(result) as { from: string }).from, 'deps');
  });

  it('steal with a filter: matching requests reach the local app, the rest the pod', async () => {
    const steal = join(project.dir, 'steal');
    mkdirSync(join(steal, '.remocal'), { recursive: true });
    writeFileSync(
      join(steal, '.remocal', 'config.json'),
      JSON.stringify({ target: { namespace }, agent: { image, startup_timeout: 120 }, feature: { network: { incoming: { mode: 'steal', http_filter: { header_filter: '^x-dev: alice$' } } } } }),
    );
    const run = startRemocal(['exec', '-t', 'deployment/target', '--', process.execPath, join(project.dir, 'app.mjs'), 'serve'], { cwd: steal, timeoutMs: 300_000 });
    let stderr = '';
    run.child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk));
    try {
      await waitFor(() => /stealing the HTTP requests/.test(stderr), `the steal (stderr: ${stderr})`, 180_000);
      // A client inside the cluster: a targetless session of its own.
      const alice = await remocal(['exec', '-t', 'targetless', '--', process.execPath, 'app.mjs', 'http', 'http://target/a', 'alice']);
      assert.equal((lastJson(alice) as { from: string }).from, 'local', alice.stderr);
      const bob = await remocal(['exec', '-t', 'targetless', '--', process.execPath, 'app.mjs', 'http', 'http://target/b', 'bob']);
      assert.equal((lastJson(bob) as { from: string }).from, 'target', bob.stderr);
    } finally {
      run.child.kill('SIGTERM');
      await run.done;
    }
    const after = await remocal(['exec', '-t', 'targetless', '--', process.execPath, 'app.mjs', 'http', 'http://target/after', 'alice']);
    assert.equal((lastJson(after) as { from: string }).from, 'target', 'the pod answers for itself again');
  });

  it('cleanup: node agents run as Jobs that are gone after the session; ephemeral agents have exited', async () => {
    const nodeMode = join(project.dir, 'node-mode');
    mkdirSync(join(nodeMode, '.remocal'), { recursive: true });
    writeFileSync(join(nodeMode, '.remocal', 'config.json'), JSON.stringify({ target: { namespace }, agent: { image, startup_timeout: 120, ephemeral: false } }));
    const result = await remocal(['exec', '-t', 'deployment/target', '--', process.execPath, join(project.dir, 'app.mjs'), 'env'], nodeMode);
    assert.equal(result.code, 0, result.stderr);
    await eventually(async () => (await batch.listNamespacedJob({ namespace, labelSelector: 'app.kubernetes.io/managed-by=remocal' })).items.length === 0, 'no agent Job left', 60_000);
    await eventually(
      async () => {
        const pods = await core.listNamespacedPod({ namespace, labelSelector: 'app=target' });
        const agents = pods.items.flatMap((pod) => pod.status?.ephemeralContainerStatuses ?? []);
        assert.ok(agents.length > 0, 'the earlier sessions added ephemeral agents');
        return agents.every((status) => status.state?.running === undefined || status.state.running === null);
      },
      'every ephemeral agent to exit',
      60_000,
    );
  });
});
