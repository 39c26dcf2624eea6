// The fake API server is only worth testing against if the real client sees it as the real server: these tests
// drive it with @kubernetes/client-node 1.4, the client remocal ships, and check it answers with the recordings
// (bodies, errors, the port-forward protocol) and flags whatever it has no recording for.

import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import { connect } from 'node:net';
import { PassThrough } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import {
  ApiException,
  AppsV1Api,
  AuthorizationV1Api,
  BatchV1Api,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  PatchStrategy,
  PortForward,
  setHeaderOptions,
  type V1Pod,
} from '@kubernetes/client-node';
import { loadFixture, startFakeKubeApi, type FakeKubeApi, type KubeUser } from '../helpers/kube-api.js';
import { validateAgainstOpenApi } from '../helpers/openapi.js';

const ordersPod = 'orders-6497447b6f-2d76r';
const patchedPod = 'orders-6497447b6f-4zv9l';

function configFor(api: FakeKubeApi, user: KubeUser, namespace?: string): KubeConfig {
  const config = new KubeConfig();
  config.loadFromFile(api.kubeconfig(user, namespace));
  return config;
}

/** The ApiException a call fails with; the test fails if it succeeds or fails otherwise. */
async function apiError(call: Promise<unknown>): Promise<ApiException<unknown>> {
  try {
    await call;
  } catch (error) {
    assert.ok(error instanceof ApiException, `expected an ApiException, got ${String(error)}`);
    return error as ApiException<unknown>;
  }
  assert.fail('the call succeeded');
}

/** client-node hands the body of an error answer over as the raw text. */
function statusOf(error: ApiException<unknown>): { kind: string; reason: string; message: string; code: number; details?: unknown } {
  assert.equal(typeof error.body, 'string');
  return JSON.parse(error.body as string) as { kind: string; reason: string; message: string; code: number; details?: unknown };
}

function clone<T>(value: T): T {
  return structuredClone(value);
}

describe('fake Kubernetes API server, through @kubernetes/client-node 1.4', () => {
  let api: FakeKubeApi;
  let admin: KubeConfig;
  let alice: KubeConfig;
  const logged: string[] = [];

  before(async () => {
    api = await startFakeKubeApi({ log: (line) => logged.push(line) });
    admin = configFor(api, 'admin');
    alice = configFor(api, 'dev-alice');
  });
  after(async () => {
    await api.close();
  });

  /** Takes what these requests left unmatched, so one test's deliberate misses do not fail the next. */
  function takeUnmatched(): string[] {
    return api.unmatched.splice(0).map((request) => `${request.method} ${request.path}`);
  }

  it('writes a kubeconfig client-node loads: the server, a context per user, the token and the namespace', () => {
    assert.equal(admin.getCurrentContext(), 'fake-admin');
    assert.equal(admin.getCurrentCluster()?.server, api.url);
    assert.equal(admin.getCurrentUser()?.token, 'admin-token');
    assert.equal(alice.getCurrentContext(), 'fake-alice');
    assert.equal(alice.getContextObject('fake-alice')?.namespace, 'shop');
    assert.equal(configFor(api, 'admin', 'default').getContextObject('fake-admin')?.namespace, 'default');
  });

  it('reads a pod: the recorded object, asked for by the recorded path as admin', async () => {
    const pod = await admin.makeApiClient(CoreV1Api).readNamespacedPod({ name: ordersPod, namespace: 'shop' });
    const recorded = loadFixture('pod-orders.json') as V1Pod;
    assert.equal(pod.metadata?.name, ordersPod);
    assert.equal(pod.metadata?.resourceVersion, recorded.metadata?.resourceVersion);
    assert.equal(pod.spec?.containers[0]?.ports?.[0]?.name, 'http');
    assert.equal(pod.status?.phase, 'Running');
    const request = api.requests.at(-1)!;
    assert.deepEqual(
      { method: request.method, path: request.path, user: request.user, answeredBy: request.answeredBy, status: request.status },
      { method: 'GET', path: `/api/v1/namespaces/shop/pods/${ordersPod}`, user: 'admin', answeredBy: 'pod-orders', status: 200 },
    );
    assert.deepEqual(takeUnmatched(), []);
  });

  it('lists pods by label selector with the query client-node builds', async () => {
    const list = await admin.makeApiClient(CoreV1Api).listNamespacedPod({ namespace: 'shop', labelSelector: 'app=orders' });
    assert.deepEqual(list.items.map((pod) => pod.metadata?.name).sort(), [ordersPod, patchedPod]);
    assert.equal(api.requests.at(-1)!.path, '/api/v1/namespaces/shop/pods?labelSelector=app%3Dorders');
    assert.deepEqual(takeUnmatched(), []);
  });

  it('matches a query whatever the order of its parameters, and not with a parameter it was not recorded with', async () => {
    const headers = { Authorization: 'Bearer admin-token' };
    const reordered = await fetch(`${api.url}/api/v1/namespaces/shop/pods?labelSelector=app%3Dorders`, { headers });
    assert.equal(reordered.status, 200);
    const extra = await fetch(`${api.url}/api/v1/namespaces/shop/pods?limit=1&labelSelector=app%3Dorders`, { headers });
    assert.equal(extra.status, 404);
    assert.deepEqual(takeUnmatched(), ['GET /api/v1/namespaces/shop/pods?limit=1&labelSelector=app%3Dorders']);
    assert.match(logged.at(-1)!, /unmatched GET .*limit=1/);
  });

  it('reads a deployment through AppsV1Api', async () => {
    const deployment = await admin.makeApiClient(AppsV1Api).readNamespacedDeployment({ name: 'orders', namespace: 'shop' });
    assert.equal(deployment.spec?.replicas, 2);
    assert.deepEqual(deployment.spec?.selector.matchLabels, { app: 'orders' });
    assert.deepEqual(takeUnmatched(), []);
  });

  it('answers a missing pod with the recorded 404 Status, which client-node hands over as text in ApiException.body', async () => {
    const error = await apiError(admin.makeApiClient(CoreV1Api).readNamespacedPod({ name: 'nope', namespace: 'shop' }));
    assert.equal(error.code, 404);
    assert.deepEqual(statusOf(error), loadFixture('pod-not-found.json'));
    assert.equal(error.headers['content-type'], 'application/json');
    assert.deepEqual(takeUnmatched(), []);
  });

  it('answers what the recordings lack with a 404 Status naming the resource, and records it as unmatched', async () => {
    const error = await apiError(admin.makeApiClient(CoreV1Api).readNamespacedConfigMap({ name: 'settings', namespace: 'shop' }));
    assert.equal(error.code, 404);
    const status = statusOf(error);
    assert.equal(status.reason, 'NotFound');
    assert.equal(status.message, 'configmaps "settings" not found');
    assert.deepEqual(status.details, { name: 'settings', kind: 'configmaps' });
    assert.deepEqual(takeUnmatched(), ['GET /api/v1/namespaces/shop/configmaps/settings']);
  });

  it('serves the added lists and 404s of kinds recorded only as single objects', async () => {
    const apps = admin.makeApiClient(AppsV1Api);
    const statefulSets = await apps.listNamespacedStatefulSet({ namespace: 'shop' });
    assert.deepEqual(statefulSets.items.map((set) => set.metadata?.name), ['ledger']);
    const jobs = await admin.makeApiClient(BatchV1Api).listNamespacedJob({ namespace: 'shop' });
    assert.deepEqual(jobs.items.map((job) => job.metadata?.name), ['migrate']);
    const ledgerPods = await admin.makeApiClient(CoreV1Api).listNamespacedPod({ namespace: 'shop', labelSelector: 'app=ledger' });
    assert.deepEqual(ledgerPods.items.map((pod) => pod.metadata?.name), ['ledger-0']);
    const error = await apiError(apps.readNamespacedStatefulSet({ name: 'nope', namespace: 'shop' }));
    assert.equal(statusOf(error).message, 'statefulsets.apps "nope" not found');
    assert.deepEqual(takeUnmatched(), []);
  });

  it('answers the absent Argo Rollouts API group with the recorded plain-text 404', async () => {
    const error = await apiError(
      admin.makeApiClient(CustomObjectsApi).getNamespacedCustomObject({ group: 'argoproj.io', version: 'v1alpha1', namespace: 'shop', plural: 'rollouts', name: 'orders' }),
    );
    assert.equal(error.code, 404);
    assert.equal(error.body, '404 page not found\n');
    assert.match(error.headers['content-type'] ?? '', /^text\/plain/);
    assert.deepEqual(takeUnmatched(), []);
  });

  it('gives dev-alice her own recorded list, and her recorded 403 in another namespace', async () => {
    const core = alice.makeApiClient(CoreV1Api);
    const list = await core.listNamespacedPod({ namespace: 'shop' });
    assert.equal(list.metadata?.resourceVersion, '1405');
    const error = await apiError(core.listNamespacedPod({ namespace: 'default' }));
    assert.equal(error.code, 403);
    assert.deepEqual(statusOf(error), loadFixture('alice-forbidden-other-namespace.json'));
    assert.equal(api.requests.at(-1)!.user, 'dev-alice');
    assert.deepEqual(takeUnmatched(), []);
  });

  it('lets dev-alice read what admin recorded where her role allows it, and forbids the rest as the server words it', async () => {
    const deployment = await alice.makeApiClient(AppsV1Api).readNamespacedDeployment({ name: 'orders', namespace: 'shop' });
    assert.equal(deployment.metadata?.name, 'orders');
    const error = await apiError(alice.makeApiClient(BatchV1Api).readNamespacedJob({ name: 'migrate', namespace: 'shop' }));
    assert.equal(error.code, 403);
    assert.equal(statusOf(error).message, 'jobs.batch "migrate" is forbidden: User "dev-alice" cannot get resource "jobs" in API group "batch" in the namespace "shop"');
    assert.deepEqual(takeUnmatched(), []);
  });

  it('answers requests without a known token with 401 Unauthorized', async () => {
    for (const headers of [{}, { Authorization: 'Bearer stolen' }] as Record<string, string>[]) {
      const response = await fetch(`${api.url}/api/v1/namespaces/shop/pods`, { headers });
      assert.equal(response.status, 401);
      assert.deepEqual(await response.json(), { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: 'Unauthorized', reason: 'Unauthorized', code: 401 });
    }
    assert.equal(api.requests.at(-1)!.user, null);
    assert.deepEqual(takeUnmatched(), []);
  });

  it('serves the OpenAPI document unzipped, and the discovery answers', async () => {
    const response = await fetch(`${api.url}/openapi/v2`, { headers: { Authorization: 'Bearer admin-token' } });
    assert.equal(response.headers.get('content-type'), 'application/json');
    const document = (await response.json()) as { info: { version: string } };
    assert.equal(document.info.version, 'v1.23.16');
    const version = await fetch(`${api.url}/version`, { headers: { Authorization: 'Bearer alice-token' } });
    assert.equal(((await version.json()) as { gitVersion: string }).gitVersion, 'v1.23.16');
    assert.deepEqual(takeUnmatched(), []);
  });

  it('records an ephemeral-container PATCH with the strategic-merge content type client-node must be told to use', async () => {
    const body = loadFixture('ephemeral-patch.request.json');
    const core = admin.makeApiClient(CoreV1Api);
    const pod = await core.patchNamespacedPodEphemeralcontainers(
      { name: patchedPod, namespace: 'shop', body },
      setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch),
    );
    assert.equal(pod.spec?.ephemeralContainers?.[0]?.name, 'agent-probe');
    const request = api.requests.at(-1)!;
    assert.equal(request.method, 'PATCH');
    assert.equal(request.contentType, 'application/strategic-merge-patch+json');
    assert.deepEqual(request.body, body);
    assert.equal(request.answeredBy, 'ephemeral-patch');
    assert.deepEqual(takeUnmatched(), []);

    // Left to itself, client-node sends the first media type the API lists, a JSON patch, which the
    // server would read differently: that must not pass for the recorded exchange.
    const error = await apiError(core.patchNamespacedPodEphemeralcontainers({ name: patchedPod, namespace: 'shop', body }));
    assert.equal(error.code, 404);
    assert.equal(api.requests.at(-1)!.contentType, 'application/json-patch+json');
    assert.match(api.unmatched[0]?.note ?? '', /recorded with content-type application\/strategic-merge-patch\+json/);
    assert.deepEqual(takeUnmatched(), [`PATCH /api/v1/namespaces/shop/pods/${patchedPod}/ephemeralcontainers`]);

    const forbidden = await apiError(
      alice.makeApiClient(CoreV1Api).patchNamespacedPodEphemeralcontainers(
        { name: patchedPod, namespace: 'shop', body },
        setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch),
      ),
    );
    assert.deepEqual(statusOf(forbidden), loadFixture('alice-forbidden-ephemeral.json'));
    assert.deepEqual(takeUnmatched(), []);
  });

  it('lets a test add state: the pod shows its ephemeral container running only after the PATCH', async () => {
    const local = await startFakeKubeApi({ log: () => {} });
    try {
      let patched = false;
      local.override('PATCH', `/api/v1/namespaces/shop/pods/${patchedPod}/ephemeralcontainers`, () => {
        patched = true;
        return undefined;
      });
      local.override('GET', `/api/v1/namespaces/shop/pods/${patchedPod}`, () => (patched ? local.recorded('pod-orders-with-ephemeral-running') : undefined));
      const core = configFor(local, 'admin').makeApiClient(CoreV1Api);
      const before = await core.readNamespacedPod({ name: patchedPod, namespace: 'shop' });
      assert.equal(before.status?.ephemeralContainerStatuses, undefined);
      await core.patchNamespacedPodEphemeralcontainers(
        { name: patchedPod, namespace: 'shop', body: loadFixture('ephemeral-patch.request.json') },
        setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch),
      );
      const afterPatch = await core.readNamespacedPod({ name: patchedPod, namespace: 'shop' });
      const status = afterPatch.status?.ephemeralContainerStatuses?.[0];
      assert.equal(status?.name, 'agent-probe');
      assert.ok(status?.state?.running !== undefined);
      assert.match(status?.containerID ?? '', /^containerd:\/\//);
      assert.deepEqual(
        local.requests.map((request) => request.answeredBy),
        ['pod-orders-before-ephemeral', 'ephemeral-patch', 'override'],
      );

      // An override can also answer what was never recorded, e.g. creating a Job.
      local.override('POST', '/apis/batch/v1/namespaces/shop/jobs', (request) => ({
        status: 201,
        body: { ...(request.body as object), metadata: { ...(request.body as { metadata: object }).metadata, uid: 'u-1', resourceVersion: '2000' } },
      }));
      const job = await configFor(local, 'admin').makeApiClient(BatchV1Api).createNamespacedJob({
        namespace: 'shop',
        body: { apiVersion: 'batch/v1', kind: 'Job', metadata: { name: 'probe' }, spec: { template: { spec: { restartPolicy: 'Never', containers: [{ name: 'probe', image: 'busybox' }] } } } },
      });
      assert.equal(job.metadata?.uid, 'u-1');
      assert.equal(local.requests.at(-1)!.contentType, 'application/json');
      assert.deepEqual(validateAgainstOpenApi(local.requests.at(-1)!.body, 'io.k8s.api.batch.v1.Job'), []);
      assert.deepEqual(local.unmatched, []);
    } finally {
      await local.close();
    }
  });

  it('creates and deletes the agent pod as recorded, and forbids it to dev-alice', async () => {
    const body = loadFixture('agent-pod-create.request.json') as V1Pod;
    const created = await admin.makeApiClient(CoreV1Api).createNamespacedPod({ namespace: 'shop', body });
    assert.equal(created.metadata?.name, 'agent-probe-wrv4p');
    const request = api.requests.at(-1)!;
    assert.equal(request.status, 201);
    assert.equal(request.contentType, 'application/json');
    assert.deepEqual(request.body, body);
    assert.equal(request.note, undefined);
    const deleted = await admin.makeApiClient(CoreV1Api).deleteNamespacedPod({ name: 'agent-probe-wrv4p', namespace: 'shop' });
    assert.equal(deleted.metadata?.name, 'agent-probe-wrv4p');
    const error = await apiError(alice.makeApiClient(CoreV1Api).createNamespacedPod({ namespace: 'shop', body }));
    assert.deepEqual(statusOf(error), loadFixture('alice-forbidden-pod-create.json'));
    assert.deepEqual(takeUnmatched(), []);
  });

  it('answers each of dev-alice\'s self access reviews by its body', async () => {
    const authorization = alice.makeApiClient(AuthorizationV1Api);
    const forward = await authorization.createSelfSubjectAccessReview({
      body: { spec: { resourceAttributes: { namespace: 'shop', verb: 'create', resource: 'pods', subresource: 'portforward' } }, apiVersion: 'authorization.k8s.io/v1', kind: 'SelfSubjectAccessReview' },
    });
    assert.equal(forward.status?.allowed, false);
    const get = await authorization.createSelfSubjectAccessReview({
      body: { apiVersion: 'authorization.k8s.io/v1', kind: 'SelfSubjectAccessReview', spec: { resourceAttributes: { namespace: 'shop', verb: 'get', resource: 'pods' } } },
    });
    assert.equal(get.status?.allowed, true);
    assert.deepEqual(takeUnmatched(), []);
  });
});

describe('fake port-forward, through client-node 1.4 PortForward', () => {
  let echo: Server;
  let echoPort: number;
  const echoSockets = new Set<Socket>();
  let echoEnded = 0;

  before(async () => {
    echo = createServer((socket) => {
      echoSockets.add(socket);
      socket.on('data', (data) => {
        // `bye` asks the target to hang up, to show its end closes the websocket.
        if (data.toString().includes('bye')) socket.end(data);
        else socket.write(data);
      });
      socket.on('end', () => {
        echoEnded += 1;
        socket.end();
      });
      socket.on('close', () => echoSockets.delete(socket));
    });
    await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', resolve));
    echoPort = (echo.address() as { port: number }).port;
  });
  after(async () => {
    for (const socket of echoSockets) socket.destroy();
    await new Promise<void>((resolve) => echo.close(() => resolve()));
  });

  async function withApi(body: (api: FakeKubeApi, calls: string[]) => Promise<void>, fail = false): Promise<void> {
    const calls: string[] = [];
    const api = await startFakeKubeApi({
      log: () => {},
      portForward: async (namespace, pod, port) => {
        calls.push(`${namespace}/${pod}:${port}`);
        if (fail) throw new Error(`failed to connect to localhost:${port} inside namespace "${pod}": connection refused`);
        const socket = connect(echoPort, '127.0.0.1');
        await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
        return socket;
      },
    });
    try {
      await body(api, calls);
    } finally {
      await api.close();
    }
  }

  function readUntil(stream: PassThrough, text: string, timeoutMs = 5000): Promise<string> {
    return new Promise((resolve, reject) => {
      let seen = '';
      const timer = setTimeout(() => reject(new Error(`timed out waiting for ${JSON.stringify(text)}; got ${JSON.stringify(seen)}`)), timeoutMs);
      const onData = (chunk: Buffer): void => {
        seen += chunk.toString();
        if (seen.includes(text)) {
          clearTimeout(timer);
          stream.off('data', onData);
          resolve(seen);
        }
      };
      stream.on('data', onData);
    });
  }

  async function open(api: FakeKubeApi, user: KubeUser, pod = ordersPod) {
    const output = new PassThrough();
    const errors = new PassThrough();
    const input = new PassThrough();
    const ws = await new PortForward(configFor(api, user)).portForward('shop', pod, [8080], output, errors, input);
    assert.ok(typeof ws !== 'function');
    return { ws, output, errors, input };
  }

  it('carries bytes both ways on channel 0 and ends the target when the client closes', async () => {
    await withApi(async (api, calls) => {
      const { ws, output, errors, input } = await open(api, 'admin');
      assert.equal(ws.protocol, 'v4.channel.k8s.io');
      const echoed = readUntil(output, 'hello over the tunnel');
      input.write('hello over the tunnel');
      assert.equal(await echoed, 'hello over the tunnel');
      assert.deepEqual(calls, [`shop/${ordersPod}:8080`]);
      const closed = new Promise((resolve) => ws.once('close', resolve));
      const endedBefore = echoEnded;
      input.end();
      await closed;
      for (let i = 0; i < 100 && echoEnded === endedBefore; i++) await new Promise((resolve) => setTimeout(resolve, 10));
      assert.equal(echoEnded, endedBefore + 1);
      assert.equal(errors.read(), null);
      const request = api.requests.at(-1)!;
      assert.deepEqual([request.path, request.user, request.status], [`/api/v1/namespaces/shop/pods/${ordersPod}/portforward?ports=8080`, 'admin', 101]);
      assert.deepEqual(api.unmatched, []);
    });
  });

  it('closes the websocket when the target hangs up', async () => {
    await withApi(async (api) => {
      const { ws, output, input } = await open(api, 'admin');
      const closed = new Promise((resolve) => ws.once('close', resolve));
      const echoed = readUntil(output, 'bye');
      input.write('bye');
      await echoed;
      await closed;
    });
  });

  it('reports a failed connection on the error channel', async () => {
    await withApi(async (api) => {
      const { ws, errors } = await open(api, 'admin');
      const closed = new Promise((resolve) => ws.once('close', resolve));
      const text = await readUntil(errors, 'connection refused');
      assert.match(text, /^error forwarding port 8080 to pod orders-6497447b6f-2d76r, uid : failed to connect to localhost:8080/);
      await closed;
    }, true);
  });

  it('refuses dev-alice (403) and a pod no recording shows (404)', async () => {
    await withApi(async (api, calls) => {
      // client-node rejects with the websocket's ErrorEvent, not an Error.
      const refusedWith = (code: number) => (event: unknown) => (event as { message?: string }).message === `Unexpected server response: ${code}`;
      await assert.rejects(open(api, 'dev-alice'), refusedWith(403));
      assert.equal(api.requests.at(-1)!.status, 403);
      await assert.rejects(open(api, 'admin', 'ghost'), refusedWith(404));
      assert.deepEqual(calls, []);
      assert.deepEqual(api.unmatched.map((request) => request.path), ['/api/v1/namespaces/shop/pods/ghost/portforward?ports=8080']);
    });
  });
});

describe('OpenAPI v2 validation against the recorded server\'s document', () => {
  const podDefinition = 'io.k8s.api.core.v1.Pod';

  it('accepts the recorded pod, the recorded agent pod request, and every recorded object of the kinds it checks', () => {
    assert.deepEqual(validateAgainstOpenApi(loadFixture('pod-orders.json'), podDefinition), []);
    assert.deepEqual(validateAgainstOpenApi(loadFixture('agent-pod-create.request.json'), podDefinition), []);
    assert.deepEqual(validateAgainstOpenApi(loadFixture('pods-list.json'), 'io.k8s.api.core.v1.PodList'), []);
    assert.deepEqual(validateAgainstOpenApi(loadFixture('job-migrate.json'), 'io.k8s.api.batch.v1.Job'), []);
    assert.deepEqual(validateAgainstOpenApi(loadFixture('deployment-orders.json'), 'io.k8s.api.apps.v1.Deployment'), []);
    assert.deepEqual(validateAgainstOpenApi(loadFixture('service-orders.json'), 'io.k8s.api.core.v1.Service'), []);
    const patch = loadFixture('ephemeral-patch.request.json') as { spec: { ephemeralContainers: unknown[] } };
    assert.deepEqual(validateAgainstOpenApi(patch.spec.ephemeralContainers[0], 'io.k8s.api.core.v1.EphemeralContainer'), []);
  });

  it('names the path of an unknown field', () => {
    const pod = clone(loadFixture('agent-pod-create.request.json')) as { spec: { containers: { securityContext: { capabilities: Record<string, unknown> } }[] } };
    pod.spec.containers[0]!.securityContext.capabilities.ad = ['NET_ADMIN'];
    assert.deepEqual(validateAgainstOpenApi(pod, podDefinition), ['spec.containers[0].securityContext.capabilities.ad: unknown field']);
  });

  it('names the path of a wrong type', () => {
    const pod = clone(loadFixture('agent-pod-create.request.json')) as { spec: Record<string, unknown> & { containers: { securityContext: { capabilities: { add: unknown[] } } }[] } };
    pod.spec.containers[0]!.securityContext.capabilities.add[0] = 12;
    pod.spec.hostPID = 'true';
    assert.deepEqual(validateAgainstOpenApi(pod, podDefinition), [
      'spec.hostPID: expected boolean, got "true"',
      'spec.containers[0].securityContext.capabilities.add[0]: expected string, got integer 12',
    ]);
  });

  it('names the path of a missing required field, absent or null', () => {
    const pod = clone(loadFixture('agent-pod-create.request.json')) as { spec: { containers: Record<string, unknown>[] } };
    delete pod.spec.containers[0]!.name;
    assert.deepEqual(validateAgainstOpenApi(pod, podDefinition), ['spec.containers[0].name: missing required field']);
    pod.spec.containers = null as unknown as [];
    assert.deepEqual(validateAgainstOpenApi(pod, podDefinition), ['spec.containers: missing required field']);
  });

  it('knows int-or-string and quantities, and checks maps and the kind', () => {
    const pod = clone(loadFixture('pod-orders.json')) as V1Pod & { kind: string };
    const container = pod.spec!.containers[0]!;
    container.resources = { limits: { cpu: '500m', memory: '1Gi' }, requests: { cpu: 0.25 as unknown as string } };
    container.readinessProbe = { httpGet: { port: 'http', path: '/ready' }, tcpSocket: { port: 8080 } };
    assert.deepEqual(validateAgainstOpenApi(pod, podDefinition), []);
    container.resources = { limits: { cpu: 'lots', memory: true as unknown as string } };
    container.readinessProbe = { httpGet: { port: 1.5 as unknown as number } };
    pod.metadata!.labels = { app: 7 as unknown as string };
    pod.kind = 'Job';
    assert.deepEqual(validateAgainstOpenApi(pod, podDefinition).sort(), [
      'kind: expected "Pod", got "Job"',
      'metadata.labels.app: expected string, got integer 7',
      'spec.containers[0].resources.limits.cpu: expected a quantity (a string like "500m" or "1Gi", or a number), got "lots"',
      'spec.containers[0].resources.limits.memory: expected a quantity (a string like "500m" or "1Gi", or a number), got boolean',
      'spec.containers[0].readinessProbe.httpGet.port: expected an integer (int32) or a string, got number 1.5',
    ].sort());
  });
});
