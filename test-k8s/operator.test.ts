// The operator tier of the Kubernetes e2e tests: installs the operator with the objects `remocal operator setup`
// prints, waits for its APIService to be Available, then runs two filtered steals on one deployment through it
// and checks that each developer gets only their requests. Everything is removed at the end, the APIService
// first (while it points at a missing backend, discovery fails for everyone).
//
//   REMOCAL_K8S_OPERATOR_IMAGE   the operator image (Dockerfile.operator), loaded into or pullable by the cluster
//   REMOCAL_K8S_AGENT_IMAGE      the agent image, as for the other tier

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AppsV1Api, CoreV1Api, KubeConfig, KubernetesObjectApi, type KubernetesObject } from '@kubernetes/client-node';
import { operatorInstallObjects, operatorServiceNames, OPERATOR_APISERVICE } from '../src/operator/install.js';
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
const objects = KubernetesObjectApi.makeApiClient(config);

const APP = String.raw`
import http from 'node:http';
const [mode, ...args] = process.argv.slice(2);
const out = (value) => process.stdout.write(JSON.stringify(value) + '\n');
if (mode === 'http') {
  const res = await fetch(args[0], { headers: { 'x-dev': args[1] } });
  out(await res.json());
} else {
  const server = http.createServer((req, res) => res.end(JSON.stringify({ from: args[0], path: req.url })));
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

function developer(name: string): string {
  const dir = join(project.dir, name);
  mkdirSync(join(dir, '.remocal'), { recursive: true });
  writeFileSync(
    join(dir, '.remocal', 'config.json'),
    JSON.stringify({ operator: true, target: { namespace }, agent: { image: agentImage, startup_timeout: 120 }, feature: { network: { incoming: { mode: 'steal', http_filter: { header_filter: `^x-dev: ${name}$` } } } } }),
  );
  return dir;
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
    // The APIService first, then the rest.
    for (const object of [...installed].sort((a, b) => Number(b.kind === 'APIService') - Number(a.kind === 'APIService'))) {
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
      const ask = async (dev: string): Promise<string> => {
        const result = await runRemocal(['exec', '-t', 'targetless', '--', process.execPath, join(project.dir, 'app.mjs'), 'http', 'http://target/', dev], { cwd: project.dir, timeoutMs: 180_000 });
        return (lastJson(result) as { from: string }).from;
      };
      assert.equal(await ask('alice'), 'alice');
      assert.equal(await ask('bob'), 'bob');
      assert.equal(await ask('carol'), 'target');
    } finally {
      for (const run of runs) run.child.kill('SIGTERM');
      for (const run of runs) await run.done;
    }
  });
});
