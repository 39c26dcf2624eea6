// Target resolution and its error paths, against the recorded fake API server (real HTTP answers recorded
// from a Kubernetes 1.23 server, through the real client).

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  ClusterUnreachableError,
  InvalidTargetError,
  KubeConfigError,
  KubeForbiddenError,
  TargetNotFoundError,
  TargetNotReadyError,
} from '../../src/core/errors.js';
import { connectKube, type Kube } from '../../src/platform/kubernetes/api.js';
import { resolveKubeTarget, selectorQuery, type ResolvedPod } from '../../src/platform/kubernetes/resolve.js';
import { listTargets, formatTargetList } from '../../src/platform/kubernetes/list.js';
import { parseTarget, type KubernetesTarget } from '../../src/platform/target.js';
import { loadFixture, startFakeKubeApi, type FakeKubeApi } from '../helpers/kube-api.js';
import { validateAgainstOpenApi } from '../helpers/openapi.js';

let api: FakeKubeApi;
let admin: Kube;

before(async () => {
  api = await startFakeKubeApi({ log: () => {} });
  admin = connectKube({ kubeconfig: api.kubeconfig('admin') });
});

after(() => api.close());

function resolve(text: string, kube = admin) {
  return resolveKubeTarget(kube, parseTarget(text) as KubernetesTarget, { pollIntervalMs: 20, startupTimeoutMs: 2000 });
}

async function rejection(promise: Promise<unknown>): Promise<Error> {
  return promise.then(
    () => assert.fail('expected a failure'),
    (error: unknown) => error as Error,
  );
}

describe('Kubernetes target resolution', () => {
  it('pod/<name>: its only container, with the containerID and node the agent needs', async () => {
    const resolved = (await resolve('pod/orders-6497447b6f-2d76r')) as ResolvedPod;
    assert.equal(resolved.kind, 'pod');
    assert.equal(resolved.container, 'app');
    assert.equal(resolved.containerId, 'containerd://3042f4e246cde80d81149fd8b5986a9abbbbc2c78a2000bb399a8822aeca7971');
    assert.equal(resolved.nodeName, 'vm');
    assert.equal(resolved.namespace, 'shop');
    assert.equal(resolved.description, 'pod/orders-6497447b6f-2d76r, container app');
    assert.deepEqual(api.unmatched, []);
  });

  it('a pod with several containers needs a choice; the error lists them and never picks the mesh sidecar', async () => {
    const error = await rejection(resolve('pod/multi'));
    assert.ok(error instanceof InvalidTargetError);
    assert.match(error.message, /pod\/multi has 3 containers \(app, istio-proxy, worker\)/);
    assert.match(error.message, /istio-proxy is a mesh sidecar and never chosen by default/);
    assert.match((error as InvalidTargetError).hint!, /pod\/multi\/container\/app/);

    assert.equal(((await resolve('pod/multi/container/worker')) as ResolvedPod).container, 'worker');
    // Named explicitly, a sidecar is what the user asked for.
    assert.equal(((await resolve('pod/multi/container/istio-proxy')) as ResolvedPod).container, 'istio-proxy');
    const missing = await rejection(resolve('pod/multi/container/web'));
    assert.ok(missing instanceof InvalidTargetError);
    assert.match(missing.message, /pod\/multi has no container "web"; its containers are app, istio-proxy, worker/);
  });

  it('an app beside a mesh sidecar is chosen without being named', async () => {
    const pod = structuredClone(loadFixture('pod-multi.json')) as { metadata: { name: string }; spec: { containers: { name: string }[] }; status: { containerStatuses: { name: string }[] } };
    pod.metadata.name = 'meshed';
    pod.spec.containers = pod.spec.containers.filter((container) => container.name !== 'worker');
    pod.status.containerStatuses = pod.status.containerStatuses.filter((status) => status.name !== 'worker');
    const remove = api.override('GET', '/api/v1/namespaces/shop/pods/meshed', () => ({ status: 200, body: pod }));
    try {
      const resolved = (await resolve('pod/meshed')) as ResolvedPod;
      assert.equal(resolved.container, 'app');
    } finally {
      remove();
    }
  });

  it('a Pending pod and a crash-looping pod are not targets, and the message says why', async () => {
    const pending = await rejection(resolve('pod/stuck'));
    assert.ok(pending instanceof TargetNotReadyError);
    assert.equal(pending.message, "pod/stuck is not running: it is Pending, not scheduled: 0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector..");
    const crashing = await rejection(resolve('pod/crashing'));
    assert.ok(crashing instanceof TargetNotReadyError);
    assert.match(crashing.message, /Container app of pod\/crashing is not running \(Running, container app exited with code 1 \(restarted 2 times\)\)/);
    assert.match((crashing as TargetNotReadyError).hint!, /kubectl logs crashing -c app -n shop --previous/);
  });

  it('what does not exist is named, with how to find what does', async () => {
    for (const [target, kind] of [
      ['pod/nope', 'pod'],
      ['deployment/nope', 'deployment'],
      ['statefulset/nope', 'statefulset'],
      ['job/nope', 'job'],
      ['cronjob/nope', 'cronjob'],
      ['service/nope', 'service'],
    ] as const) {
      const error = await rejection(resolve(target));
      assert.ok(error instanceof TargetNotFoundError, `${target}: ${String(error)}`);
      assert.match(error.message, new RegExp(`^There is no ${kind} "nope" in namespace shop`), target);
      assert.match((error as TargetNotFoundError).hint!, /remocal ls -n shop/);
    }
  });

  it('a deployment picks a running, ready pod behind it, and says which', async () => {
    const resolved = (await resolve('deployment/orders')) as ResolvedPod;
    assert.equal(resolved.podName, 'orders-6497447b6f-2d76r');
    assert.equal(resolved.description, 'pod/orders-6497447b6f-2d76r (picked from deployment/orders, 2 of 2 pods ready), container app');
    const request = api.requests.findLast((entry) => entry.pathname === '/api/v1/namespaces/shop/pods');
    assert.equal(request?.query.get('labelSelector'), 'app=orders');
  });

  it('statefulset, job and service resolve through their selectors', async () => {
    const ledger = (await resolve('statefulset/ledger')) as ResolvedPod;
    assert.match(ledger.description, /^pod\/ledger-0 \(picked from statefulset\/ledger/);
    const migrate = (await resolve('job/migrate')) as ResolvedPod;
    assert.match(migrate.podName, /^migrate-/);
    const service = (await resolve('service/orders')) as ResolvedPod;
    assert.match(service.description, /picked from service\/orders/);
  });

  it('a workload whose pods are not ready lists them and their state', async () => {
    const pods = structuredClone(loadFixture('pods-list.json')) as { items: { metadata: { name: string } }[] };
    pods.items = pods.items.filter((pod) => ['stuck', 'crashing'].includes(pod.metadata.name));
    const remove = api.override('GET', '/api/v1/namespaces/shop/pods?labelSelector=app%3Dorders', () => ({ status: 200, body: pods }));
    try {
      const error = await rejection(resolve('deployment/orders'));
      assert.ok(error instanceof TargetNotReadyError);
      assert.match(error.message, /deployment\/orders has no running, ready pod: crashing is Running, container app exited with code 1 \(restarted 2 times\); stuck is Pending, not scheduled/);
    } finally {
      remove();
    }
  });

  it('rollout/<name> on a cluster without Argo Rollouts says so', async () => {
    const error = await rejection(resolve('rollout/orders'));
    assert.ok(error instanceof TargetNotFoundError);
    assert.match(error.message, /this cluster has no Argo Rollouts/);
  });

  it('cronjob/<name> starts a Job from its template, targets its pod, and deletes the Job on release', async () => {
    const cronJob = loadFixture('cronjob-nightly.json') as { metadata: { uid: string } };
    const migratePods = loadFixture('pods-by-label-migrate.json') as { items: { metadata: { name: string; labels: Record<string, string> } }[] };
    let created: { metadata: { name: string }; spec: Record<string, unknown> } | undefined;
    const removers = [
      api.override('POST', '/apis/batch/v1/namespaces/shop/jobs', (request) => {
        created = request.body as typeof created;
        return { status: 201, body: { ...created, spec: { ...created!.spec, selector: { matchLabels: { 'job-name': created!.metadata.name } } } } };
      }),
      api.override('GET', /^\/api\/v1\/namespaces\/shop\/pods\?labelSelector=job-name/, () => ({ status: 200, body: migratePods })),
      api.override('DELETE', /^\/apis\/batch\/v1\/namespaces\/shop\/jobs\//, () => ({ status: 200, body: { kind: 'Status', apiVersion: 'v1', status: 'Success' } })),
    ];
    try {
      const resolved = (await resolve('cronjob/nightly')) as ResolvedPod;
      assert.ok(created !== undefined);
      assert.match(created.metadata.name, /^nightly-remocal-[0-9a-f]{6}$/);
      assert.deepEqual(validateAgainstOpenApi(created, 'io.k8s.api.batch.v1.Job'), []);
      assert.deepEqual((created.metadata as unknown as { ownerReferences: unknown[] }).ownerReferences, [
        { apiVersion: 'batch/v1', kind: 'CronJob', name: 'nightly', uid: cronJob.metadata.uid, controller: true },
      ]);
      assert.match(resolved.description, new RegExp(`^pod/${migratePods.items[0]!.metadata.name} \\(of job/nightly-remocal-[0-9a-f]{6}, started from cronjob/nightly\\)`));
      await resolved.release();
      const deletion = api.requests.findLast((entry) => entry.method === 'DELETE');
      assert.equal(deletion?.pathname, `/apis/batch/v1/namespaces/shop/jobs/${created.metadata.name}`);
      assert.equal(deletion?.query.get('propagationPolicy'), 'Background');
    } finally {
      for (const remove of removers) remove();
    }
  });

  it('targetless needs no object', async () => {
    const resolved = await resolve('targetless');
    assert.deepEqual({ kind: resolved.kind, namespace: resolved.namespace }, { kind: 'targetless', namespace: 'shop' });
  });

  it('label selectors are written as the API takes them', () => {
    assert.equal(
      selectorQuery({ matchLabels: { app: 'orders' }, matchExpressions: [{ key: 'tier', operator: 'In', values: ['web', 'api'] }, { key: 'canary', operator: 'DoesNotExist' }] }),
      'app=orders,tier in (web,api),!canary',
    );
  });
});

describe('Kubernetes access errors', () => {
  it('a 403 names the missing permission and how to check it', async () => {
    const alice = connectKube({ kubeconfig: api.kubeconfig('dev-alice', 'default') });
    const error = await rejection(resolve('deployment/orders', alice));
    assert.ok(error instanceof KubeForbiddenError, String(error));
    assert.match(error.message, /^missing permission: get deployments\.apps in namespace default\./);
    assert.match(error.message, /The API server said: .*dev-alice/);
    assert.match((error as KubeForbiddenError).hint!, /kubectl auth can-i get deployments\.apps -n default/);
  });

  it('an unreachable API server is named, with its context', async () => {
    const kubeconfig = api.kubeconfig('admin');
    const { readFileSync, writeFileSync } = await import('node:fs');
    writeFileSync(kubeconfig, readFileSync(kubeconfig, 'utf8').replace(/127\.0\.0\.1:\d+/, '127.0.0.1:9'));
    const error = await rejection(resolve('pod/orders-6497447b6f-2d76r', connectKube({ kubeconfig })));
    assert.ok(error instanceof ClusterUnreachableError, String(error));
    assert.match(error.message, /Could not reach the Kubernetes API server http:\/\/127\.0\.0\.1:9 \(context fake-admin\) to get pods "orders-6497447b6f-2d76r"/);
  });

  it('kubeconfig problems: a missing file, an unknown context', () => {
    assert.throws(() => connectKube({ kubeconfig: '/nonexistent/kubeconfig' }), (error: unknown) => error instanceof KubeConfigError && /does not exist/.test((error as Error).message));
    assert.throws(
      () => connectKube({ kubeconfig: api.kubeconfig('admin'), context: 'prod' }),
      (error: unknown) => error instanceof KubeConfigError && /no context named "prod"; it has: fake-admin/.test((error as Error).message),
    );
  });

  it('no kubeconfig at all is said plainly, not as a refused connection to localhost:8080', () => {
    const saved = process.env.KUBECONFIG;
    process.env.KUBECONFIG = '/nonexistent/a:/nonexistent/b';
    try {
      assert.throws(() => connectKube({}), (error: unknown) => error instanceof KubeConfigError && /KUBECONFIG names no file that exists/.test((error as Error).message));
    } finally {
      if (saved === undefined) delete process.env.KUBECONFIG;
      else process.env.KUBECONFIG = saved;
    }
  });

  it('-n and the context namespace choose the namespace, as kubectl does', () => {
    assert.equal(connectKube({ kubeconfig: api.kubeconfig('admin', 'shop') }).namespace, 'shop');
    assert.equal(connectKube({ kubeconfig: api.kubeconfig('admin', 'shop'), namespace: 'other' }).namespace, 'other');
  });
});

describe('remocal ls', () => {
  it('lists every kind as -t takes it, with readiness; multi-container pods per container, sidecars left out', async () => {
    const list = await listTargets(admin);
    const targets = list.targets.map((target) => target.target);
    for (const expected of ['deployment/orders', 'statefulset/ledger', 'job/migrate', 'cronjob/nightly', 'service/orders', 'pod/orders-6497447b6f-2d76r', 'pod/multi/container/app', 'pod/multi/container/worker']) {
      assert.ok(targets.includes(expected), `${expected} in ${targets.join(', ')}`);
    }
    assert.ok(!targets.some((target) => target.includes('istio-proxy')));
    assert.ok(!targets.includes('pod/stuck'), 'a Pending pod is no target');
    assert.deepEqual(list.skipped, [{ kind: 'rollout', reason: 'not served by this cluster' }]);
    assert.equal(list.targets.find((target) => target.target === 'deployment/orders')?.detail, '2/2 ready');
    const text = formatTargetList(list);
    assert.match(text, /^deployment\/orders\s+2\/2 ready$/m);
    assert.match(text, /remocal exec -t <target> -n shop/);
  });

  it('a user who may list only some kinds gets those, and a note for the rest', async () => {
    const list = await listTargets(connectKube({ kubeconfig: api.kubeconfig('dev-alice') }));
    assert.ok(list.targets.some((target) => target.target === 'deployment/orders'));
    const skipped = Object.fromEntries(list.skipped.map((entry) => [entry.kind, entry.reason]));
    assert.equal(skipped.job, 'no permission to list jobs.batch');
    assert.equal(skipped.service, 'no permission to list services');
    assert.match(formatTargetList(list), /\(jobs left out: no permission to list jobs\.batch\)/);
  });
});
