// Copy targets on the recorded fake API server: the pods the operator creates and deletes, and the scale and
// annotations of deployment/orders, kept as state between requests and answered in the shape of the recorded
// answers (test/fixtures/k8s/operator/copy-pod-*, scale-*, deployment-annotation-*). A created pod is validated
// against the server's OpenAPI types, as the real server would refuse a bad one; a scale PUT or a patch with a stale
// resourceVersion gets the recorded 409. Each copy's fate is the test's choice: it runs (`copy-pod-running`), its
// image cannot be pulled (`copy-pod-missing-image`), or no node fits it (`pod-stuck-pending`).

import { loadFixture, type FakeKubeApi, type KubeResponse } from './kube-api.js';
import { validateAgainstOpenApi } from './openapi.js';

type Json = Record<string, any>;
export type CopyFate = 'running' | 'missing-image' | 'unschedulable';

export interface FakeCopies {
  /** The pods created, by name, as sent (before the server's defaults). */
  created: Map<string, Json>;
  /** The pods that exist now. */
  pods: Map<string, Json>;
  /** A pod as a GET answers it now, or undefined when there is none (for the fake kubelet to play it). */
  answer(name: string): Json | undefined;
  deleted: string[];
  /** deployment/orders as it is now. */
  deployment(): Json;
  replicas(): number;
  /** Scale PUTs and patches answered 409, for the test to count. */
  conflicts: number;
  /** The next `n` scale PUTs get the recorded 409 even with a fresh resourceVersion: someone else wrote meanwhile. */
  conflictNext(n: number): void;
  fate: CopyFate;
  /** OpenAPI problems of created pods; a test asserts it stays empty. */
  problems: string[];
  uninstall(): void;
}

const clone = <T>(value: T): T => structuredClone(value);

export function serveCopies(api: FakeKubeApi): FakeCopies {
  const created = new Map<string, Json>();
  const pods = new Map<string, Json>();
  const deleted: string[] = [];
  const problems: string[] = [];
  let resourceVersion = 5000;
  let forcedConflicts = 0;
  const deployment = clone(loadFixture('deployment-orders.json')) as Json;
  deployment.metadata.resourceVersion = String(resourceVersion);
  let replicas = deployment.spec.replicas as number;
  const state: FakeCopies = {
    created,
    pods,
    answer: (name) => (pods.has(name) ? podAnswer(name) : undefined),
    deleted,
    deployment: () => clone(deployment),
    replicas: () => replicas,
    conflicts: 0,
    conflictNext: (n) => (forcedConflicts = n),
    fate: 'running',
    problems,
    uninstall: () => removers.forEach((remove) => remove()),
  };
  const conflict = (): KubeResponse => {
    state.conflicts++;
    return { status: 409, body: loadFixture('operator/scale-put-stale-resourceversion.json') };
  };
  const bump = (): string => String(++resourceVersion);
  const scaleBody = (): Json => {
    const scale = clone(loadFixture('operator/scale-get.json')) as Json;
    scale.metadata.resourceVersion = deployment.metadata.resourceVersion;
    // As recorded: a Scale at 0 replicas comes back as `spec: {}`.
    scale.spec = replicas === 0 ? {} : { replicas };
    return scale;
  };
  const podAnswer = (name: string): Json => {
    const sent = pods.get(name)!;
    const base = clone(loadFixture(state.fate === 'running' ? 'operator/copy-pod-running.json' : state.fate === 'missing-image' ? 'operator/copy-pod-missing-image.json' : 'pod-stuck-pending.json')) as Json;
    base.metadata = { ...base.metadata, name, namespace: 'shop', labels: sent.metadata.labels, annotations: sent.metadata.annotations };
    base.spec = { ...sent.spec, ...(state.fate === 'unschedulable' ? {} : { nodeName: 'k8s-lab-node' }) };
    if (base.status.containerStatuses !== undefined) {
      base.status.containerStatuses = sent.spec.containers.map((container: Json) => ({ ...base.status.containerStatuses[0], name: container.name, image: container.image }));
    }
    return base;
  };

  const removers = [
    api.override('POST', '/api/v1/namespaces/shop/pods', (request) => {
      const body = request.body as Json;
      problems.push(...validateAgainstOpenApi(body, 'io.k8s.api.core.v1.Pod').map((problem) => `${body?.metadata?.name}: ${problem}`));
      const name = body.metadata.name as string;
      created.set(name, clone(body));
      pods.set(name, clone(body));
      const answer = clone(loadFixture('operator/copy-pod-create.json')) as Json;
      answer.metadata = { ...answer.metadata, name, labels: body.metadata.labels, annotations: body.metadata.annotations, resourceVersion: bump() };
      answer.spec = { ...answer.spec, ...body.spec };
      return { status: 201, body: answer };
    }),
    api.override('GET', /^\/api\/v1\/namespaces\/shop\/pods\/[^/?]+-copy-[^/?]+$/, (request) => {
      const name = request.pathname.split('/').pop()!;
      if (!pods.has(name)) return { status: 404, body: { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: `pods "${name}" not found`, reason: 'NotFound', details: { name, kind: 'pods' }, code: 404 } };
      return { status: 200, body: podAnswer(name) };
    }),
    api.override('DELETE', /^\/api\/v1\/namespaces\/shop\/pods\/[^/?]+-copy-[^/?]+/, (request) => {
      const name = request.pathname.split('/').pop()!;
      if (!pods.has(name)) return { status: 404, body: { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: `pods "${name}" not found`, reason: 'NotFound', details: { name, kind: 'pods' }, code: 404 } };
      const answer = clone(loadFixture('operator/copy-pod-delete.json')) as Json;
      answer.metadata = { ...answer.metadata, name, labels: pods.get(name)!.metadata.labels };
      pods.delete(name);
      deleted.push(name);
      return { status: 200, body: answer };
    }),
    api.override('GET', /^\/api\/v1\/namespaces\/shop\/events\?fieldSelector=involvedObject\.name%3D[^&]+-copy-/, (request) => {
      const name = (request.query.get('fieldSelector') ?? '').split('=')[1]!;
      const events = clone(loadFixture(state.fate === 'missing-image' ? 'operator/copy-pod-missing-image-events.json' : 'operator/copy-pod-events.json')) as Json;
      if (state.fate === 'unschedulable') {
        events.items = [{ ...events.items[0], reason: 'FailedScheduling', type: 'Warning', source: { component: 'default-scheduler' }, message: "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector." }];
      }
      for (const event of events.items) event.involvedObject.name = name;
      return { status: 200, body: events };
    }),
    api.override('GET', '/api/v1/pods', (request) => {
      if (request.query.get('labelSelector') !== 'remocal.dev/copy-of') return undefined;
      return { status: 200, body: { kind: 'PodList', apiVersion: 'v1', metadata: { resourceVersion: String(resourceVersion) }, items: [...pods.keys()].map(podAnswer) } };
    }),
    api.override('GET', '/apis/apps/v1/deployments', (request) => {
      if (request.query.get('labelSelector') !== 'remocal.dev/scaled-down') return undefined;
      const items = deployment.metadata.labels?.['remocal.dev/scaled-down'] === undefined ? [] : [clone(deployment)];
      return { status: 200, body: { kind: 'DeploymentList', apiVersion: 'apps/v1', metadata: { resourceVersion: String(resourceVersion) }, items } };
    }),
    api.override('GET', '/apis/apps/v1/namespaces/shop/deployments/orders', () => ({ status: 200, body: clone(deployment) })),
    api.override('PATCH', '/apis/apps/v1/namespaces/shop/deployments/orders', (request) => {
      if (request.contentType !== 'application/merge-patch+json') return undefined;
      const patch = request.body as { metadata?: { resourceVersion?: string; labels?: Record<string, string | null>; annotations?: Record<string, string | null> } };
      const wanted = patch.metadata?.resourceVersion;
      if (wanted !== undefined && wanted !== deployment.metadata.resourceVersion) return conflict();
      for (const field of ['labels', 'annotations'] as const) {
        for (const [key, value] of Object.entries(patch.metadata?.[field] ?? {})) {
          deployment.metadata[field] ??= {};
          if (value === null) delete deployment.metadata[field][key];
          else deployment.metadata[field][key] = value;
        }
      }
      deployment.metadata.resourceVersion = bump();
      return { status: 200, body: clone(deployment) };
    }),
    api.override('GET', '/apis/apps/v1/namespaces/shop/deployments/orders/scale', () => ({ status: 200, body: scaleBody() })),
    api.override('PUT', '/apis/apps/v1/namespaces/shop/deployments/orders/scale', (request) => {
      const body = request.body as Json;
      problems.push(...validateAgainstOpenApi(body, 'io.k8s.api.autoscaling.v1.Scale').map((problem) => `scale: ${problem}`));
      if (forcedConflicts > 0) {
        forcedConflicts--;
        deployment.metadata.resourceVersion = bump();
        return conflict();
      }
      if (body.metadata?.resourceVersion !== deployment.metadata.resourceVersion) return conflict();
      replicas = body.spec?.replicas ?? 0;
      deployment.spec.replicas = replicas;
      deployment.metadata.resourceVersion = bump();
      return { status: 200, body: scaleBody() };
    }),
  ];
  return state;
}
