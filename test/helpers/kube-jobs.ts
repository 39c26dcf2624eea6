// The Jobs of a namespace as the fake API server serves them to the operator's job steps: create (validated
// against the server's OpenAPI types; answered with the body and the metadata the server adds), get, delete, the
// cluster-wide list by label, and what the operator reads beside a Job: its events, its pods, a pod's log. The
// test decides how each Job goes (`state`), as the Job controller and the kubelet would; nothing else is invented.

import { randomUUID } from 'node:crypto';
import type { FakeKubeApi } from './kube-api.js';
import { validateAgainstOpenApi } from './openapi.js';

export interface FakeJob {
  namespace: string;
  name: string;
  /** The Job as the server stored it. */
  object: { metadata: { name: string; namespace: string; labels?: Record<string, string> }; spec: Record<string, unknown>; status: Record<string, unknown> };
  events: object[];
  pods: object[];
  log: string;
}

export interface FakeJobs {
  /** Each created Job's request body, in order. */
  readonly created: unknown[];
  /** Problems the OpenAPI types found in created bodies (such a create is answered 422). */
  readonly invalid: string[];
  /** `namespace/name?propagationPolicy=…` of each delete. */
  readonly deleted: string[];
  readonly jobs: Map<string, FakeJob>;
  /** Called on each create, to set how the Job goes from there. */
  onCreate: (job: FakeJob) => void;
  /** A Job that exists before the operator starts (a previous run's). */
  add(namespace: string, name: string, labels: Record<string, string>): void;
}

const key = (namespace: string, name: string): string => `${namespace}/${name}`;

export function serveJobs(api: FakeKubeApi): FakeJobs {
  const jobs = new Map<string, FakeJob>();
  const fake: FakeJobs = { created: [], invalid: [], deleted: [], jobs, onCreate: () => undefined, add: () => undefined };
  const store = (namespace: string, body: { metadata: { name: string; labels?: Record<string, string> }; spec: Record<string, unknown> }): FakeJob => {
    const uid = randomUUID();
    const job: FakeJob = {
      namespace,
      name: body.metadata.name,
      object: {
        ...body,
        metadata: { ...body.metadata, namespace, uid, resourceVersion: '3441', generation: 1, creationTimestamp: new Date().toISOString() } as FakeJob['object']['metadata'],
        status: {},
      },
      events: [],
      pods: [],
      log: '',
    };
    jobs.set(key(namespace, job.name), job);
    return job;
  };
  fake.add = (namespace, name, labels) => void store(namespace, { metadata: { name, labels }, spec: { template: {} } });

  api.override('POST', /^\/apis\/batch\/v1\/namespaces\/[^/]+\/jobs(\?|$)/, (request) => {
    const namespace = request.pathname.split('/')[5]!;
    fake.created.push(request.body);
    const problems = validateAgainstOpenApi(request.body, 'io.k8s.api.batch.v1.Job');
    if (problems.length > 0) {
      fake.invalid.push(...problems);
      return { status: 422, body: { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: `Job is invalid: ${problems.join(', ')}`, reason: 'Invalid', code: 422 } };
    }
    const job = store(namespace, request.body as { metadata: { name: string }; spec: Record<string, unknown> });
    fake.onCreate(job);
    return { status: 201, body: job.object };
  });
  api.override('*', /^\/apis\/batch\/v1\/namespaces\/[^/]+\/jobs\/[^/?]+(\?|$)/, (request) => {
    const [, , , , , namespace, , name] = request.pathname.split('/');
    const job = jobs.get(key(namespace!, name!));
    const notFound = { status: 404, body: { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: `jobs.batch "${name}" not found`, reason: 'NotFound', details: { name, group: 'batch', kind: 'jobs' }, code: 404 } };
    if (request.method === 'GET') return job === undefined ? notFound : { status: 200, body: job.object };
    if (request.method === 'DELETE') {
      fake.deleted.push(`${namespace}/${name}?propagationPolicy=${request.query.get('propagationPolicy') ?? (request.body as { propagationPolicy?: string } | undefined)?.propagationPolicy ?? ''}`);
      if (job === undefined) return notFound;
      jobs.delete(key(namespace!, name!));
      return { status: 200, body: job.object };
    }
    return undefined;
  });
  api.override('GET', /^\/apis\/batch\/v1\/jobs(\?|$)/, (request) => {
    const selector = request.query.get('labelSelector') ?? '';
    const items = [...jobs.values()].filter((job) => selector === '' || Object.hasOwn(job.object.metadata.labels ?? {}, selector)).map((job) => job.object);
    return { status: 200, body: { kind: 'JobList', apiVersion: 'batch/v1', metadata: { resourceVersion: '3500' }, items } };
  });
  api.override('GET', /^\/api\/v1\/namespaces\/[^/]+\/events(\?|$)/, (request) => {
    const namespace = request.pathname.split('/')[4]!;
    const name = /involvedObject\.name=([^,]+)/.exec(request.query.get('fieldSelector') ?? '')?.[1];
    const job = name === undefined ? undefined : jobs.get(key(namespace, name));
    return job === undefined ? undefined : { status: 200, body: { kind: 'EventList', apiVersion: 'v1', metadata: { resourceVersion: '3458' }, items: job.events } };
  });
  api.override('GET', /^\/api\/v1\/namespaces\/[^/]+\/pods\?/, (request) => {
    const namespace = request.pathname.split('/')[4]!;
    const name = /^job-name=(.+)$/.exec(request.query.get('labelSelector') ?? '')?.[1];
    const job = name === undefined ? undefined : jobs.get(key(namespace, name));
    return job === undefined ? undefined : { status: 200, body: { kind: 'PodList', apiVersion: 'v1', metadata: { resourceVersion: '3460' }, items: job.pods } };
  });
  api.override('GET', /^\/api\/v1\/namespaces\/[^/]+\/pods\/[^/]+\/log(\?|$)/, (request) => {
    const [, , , , namespace, , pod] = request.pathname.split('/');
    const job = [...jobs.values()].find((each) => each.namespace === namespace && each.pods.some((entry) => (entry as { metadata?: { name?: string } }).metadata?.name === pod));
    return job === undefined ? undefined : { status: 200, body: job.log, contentType: 'text/plain' };
  });
  return fake;
}

/** A pod of `job` in `phase`, as the Job controller names and labels it. */
export function jobPod(job: FakeJob, phase: 'Pending' | 'Running' | 'Succeeded' | 'Failed', status: Record<string, unknown> = {}): object {
  return {
    kind: 'Pod',
    apiVersion: 'v1',
    metadata: { name: `${job.name}-x7k2p`, namespace: job.namespace, labels: { 'job-name': job.name }, creationTimestamp: new Date().toISOString() },
    spec: { containers: [{ name: 'app', image: 'busybox' }] },
    status: { phase, ...status },
  };
}
