// The env patches of queue splitting on the recorded fake API server: deployment/orders (from the operator lab's
// deployment-orders-before) and statefulset/ledger kept as state between requests, and changed by strategic-merge
// patches the way the recorded ones changed deployment/orders (test/fixtures/k8s/operator/deployment-env-*-patch-
// strategic, deployment-annotation-*-patch-merge):
// - containers merge by name, and so do their env items; an env item that is new goes **first**, before the
//   existing ones (as deployment-env-patch-strategic shows), `$patch: delete` removes one, a null field is removed;
// - labels and annotations merge, a null removes one;
// - a `metadata.resourceVersion` that is not the current one is the recorded 409 (scale-put-stale-resourceversion,
//   whose wording is the same for any update of deployments.apps "orders");
// - a change of the template bumps `generation`; every write bumps `resourceVersion`;
// - every object after a patch is validated against the server's OpenAPI types, plus the one rule of env items the
//   types cannot say (`value` and `valueFrom` exclude each other), into `problems`.
// A patch with anything else in it is left unanswered, so the fake reports it as unmatched. The lists by the
// `remocal.dev/split-queues` label are answered from the same state.

import { loadFixture, type FakeKubeApi, type KubeResponse } from './kube-api.js';
import { validateAgainstOpenApi } from './openapi.js';

type Json = Record<string, any>;

export interface FakeWorkloads {
  /** The object as it is now. */
  get(kind: 'deployments' | 'statefulsets', name: string): Json;
  /** Changes the object as someone's `kubectl edit` would (a test's starting point), with a new resourceVersion. */
  edit(kind: 'deployments' | 'statefulsets', name: string, change: (object: Json) => void): void;
  /** The strategic-merge patches received, in order, with their bodies as sent. */
  patches: { path: string; body: Json }[];
  /** The next `n` patches get the recorded 409 even with a fresh resourceVersion: someone else wrote meanwhile. */
  conflictNext(n: number): void;
  conflicts: number;
  /** OpenAPI problems of patched objects; a test asserts it stays empty. */
  problems: string[];
  uninstall(): void;
}

const clone = <T>(value: T): T => structuredClone(value);
const LABEL = 'remocal.dev/split-queues';

/** Merges `patch` into the map `into` as a merge patch does: null removes the key. */
function mergeMap(into: Json, patch: Json): void {
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete into[key];
    else into[key] = value;
  }
}

/** The env list after the patch's items, or a reason the fake does not model the patch. */
function mergeEnv(env: Json[], items: Json[]): Json[] | string {
  const result = [...env];
  const added: Json[] = [];
  for (const item of items) {
    const at = result.findIndex((entry) => entry.name === item.name);
    if (item.$patch === 'delete') {
      if (at >= 0) result.splice(at, 1);
      continue;
    }
    if (item.$patch !== undefined) return `$patch ${String(item.$patch)}`;
    if (at >= 0) {
      const merged = { ...result[at] };
      mergeMap(merged, item);
      result[at] = merged;
    } else {
      const fresh = { ...item };
      for (const [key, value] of Object.entries(fresh)) if (value === null) delete fresh[key];
      added.push(fresh);
    }
  }
  return [...added, ...result];
}

export function serveWorkloadEnv(api: FakeKubeApi): FakeWorkloads {
  let resourceVersion = 6000;
  let forced = 0;
  const problems: string[] = [];
  const patches: { path: string; body: Json }[] = [];
  const objects = new Map<string, Json>([
    ['deployments/orders', clone(loadFixture('operator/deployment-orders-before.json')) as Json],
    ['statefulsets/ledger', clone(loadFixture('statefulset-ledger.json')) as Json],
  ]);
  for (const object of objects.values()) object.metadata.resourceVersion = String(++resourceVersion);
  const state: FakeWorkloads = {
    get: (kind, name) => clone(objects.get(`${kind}/${name}`)!),
    edit: (kind, name, change) => {
      const object = objects.get(`${kind}/${name}`)!;
      change(object);
      object.metadata.resourceVersion = String(++resourceVersion);
    },
    patches,
    conflictNext: (n) => (forced = n),
    conflicts: 0,
    problems,
    uninstall: () => removers.forEach((remove) => remove()),
  };
  const conflict = (): KubeResponse => {
    state.conflicts++;
    return { status: 409, body: loadFixture('operator/scale-put-stale-resourceversion.json') };
  };

  const patch = (key: string, body: Json): KubeResponse | undefined => {
    const object = objects.get(key)!;
    const { metadata = {}, spec, ...rest } = body;
    const { resourceVersion: wanted, labels, annotations, ...otherMetadata } = metadata as Json;
    const containers = spec?.template?.spec?.containers as Json[] | undefined;
    const unmodelled = Object.keys(rest).length > 0 || Object.keys(otherMetadata).length > 0 || (spec !== undefined && (Object.keys(spec).length !== 1 || Object.keys(spec.template).length !== 1 || Object.keys(spec.template.spec).length !== 1 || !Array.isArray(containers)));
    if (unmodelled) return undefined;
    if (forced > 0) {
      forced--;
      object.metadata.resourceVersion = String(++resourceVersion);
      return conflict();
    }
    if (wanted !== undefined && wanted !== object.metadata.resourceVersion) return conflict();
    const next = clone(object);
    for (const container of containers ?? []) {
      const { name, env, ...others } = container;
      const target = (next.spec.template.spec.containers as Json[]).find((each) => each.name === name);
      if (target === undefined || Object.keys(others).length > 0 || !Array.isArray(env)) return undefined;
      const merged = mergeEnv(target.env ?? [], env as Json[]);
      if (typeof merged === 'string') return undefined;
      if (merged.length > 0) target.env = merged;
      else delete target.env;
    }
    if (labels !== undefined) mergeMap((next.metadata.labels ??= {}), labels);
    if (annotations !== undefined) mergeMap((next.metadata.annotations ??= {}), annotations);
    if (JSON.stringify(next.spec) !== JSON.stringify(object.spec)) next.metadata.generation = (next.metadata.generation ?? 1) + 1;
    next.metadata.resourceVersion = String(++resourceVersion);
    problems.push(...validateAgainstOpenApi(next, next.kind === 'StatefulSet' ? 'io.k8s.api.apps.v1.StatefulSet' : 'io.k8s.api.apps.v1.Deployment').map((problem) => `${key}: ${problem}`));
    for (const container of next.spec.template.spec.containers as Json[]) {
      for (const entry of (container.env ?? []) as Json[]) {
        if (entry.value !== undefined && entry.value !== '' && entry.valueFrom !== undefined) problems.push(`${key}: env ${entry.name}: valueFrom may not be specified when value is not empty`);
      }
    }
    objects.set(key, next);
    return { status: 200, body: clone(next) };
  };

  const removers = [
    ...[...objects.keys()].flatMap((key) => {
      const path = `/apis/apps/v1/namespaces/shop/${key}`;
      return [
        api.override('GET', path, () => ({ status: 200, body: clone(objects.get(key)) })),
        api.override('PATCH', path, (request) => {
          if (request.contentType !== 'application/strategic-merge-patch+json') return undefined;
          patches.push({ path, body: clone(request.body as Json) });
          return patch(key, request.body as Json);
        }),
      ];
    }),
    ...(['deployments', 'statefulsets'] as const).map((plural) =>
      api.override('GET', `/apis/apps/v1/${plural}`, (request) => {
        if (request.query.get('labelSelector') !== LABEL) return undefined;
        const items = [...objects].filter(([key, object]) => key.startsWith(`${plural}/`) && object.metadata.labels?.[LABEL] !== undefined).map(([, object]) => clone(object));
        return { status: 200, body: { kind: plural === 'deployments' ? 'DeploymentList' : 'StatefulSetList', apiVersion: 'apps/v1', metadata: { resourceVersion: String(resourceVersion) }, items } };
      }),
    ),
  ];
  return state;
}
