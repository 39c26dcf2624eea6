// policies.remocal.dev/v1alpha1 on the fake API server, as a cluster with remocal's policy CRDs installed serves it,
// so that the operator's policy watch is tested against the API it will meet. Stateful, unlike the recordings, but
// shaped by them (test/fixtures/k8s/operator/policy*-*.json, policies-watch.jsonl):
// - objects are stored as the server encodes unstructured objects: every key sorted, metadata with
//   creationTimestamp, generation, name, namespace, resourceVersion and uid (managedFields are left out: nothing of
//   remocal reads them); one resourceVersion counter for both kinds, starting at the recorded empty list's 3179;
// - a create is pruned and validated with the CRD's own schema by src/operator/structural.ts, which words a 422
//   as the recorded ones; `?dryRun=All` answers without storing (no resourceVersion); `fieldValidation` is ignored,
//   as that server ignored it;
// - lists carry full items (kind and apiVersion included, unlike built-in lists) and `continue: ""`;
// - `?watch` streams one JSON event per line and chunk: ADDED, MODIFIED, DELETED (with the deletion's
//   resourceVersion), from after `resourceVersion`, or every current object first as ADDED when it is absent or 0;
// - a merge patch bumps generation only when the spec changes; a delete answers a Status with no code.
// Not recorded, built like the recorded answers, and marked in the request's `note` as `added: <what from>`: the
// 404 of a missing policy on delete, the 409 of an existing name, the metadata.name 422s, the 410 Expired of a
// watch from a compacted resourceVersion. What it does not model (another patch type, label or field selectors, a paged list)
// is left unanswered, so the fake reports it as unmatched. dev-alice is refused as her recording shows: RBAC is the
// fake's own, before this.

import { randomUUID } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { POLICY_GROUP, POLICY_VERSION, type PolicyKind } from '../../src/protocol/policy.js';
import { POLICY_RESOURCES, POLICY_SCHEMA } from '../../src/operator/policy-crd.js';
import { invalidObjectMessage, validateAgainstSchema, type StatusCause } from '../../src/operator/structural.js';
import { loadFixture, notFoundBody, parseResourcePath, type FakeKubeApi, type KubeRequest, type KubeResponse } from './kube-api.js';

/** A policy as the server returns it. */
export interface StoredPolicy {
  apiVersion: string;
  kind: PolicyKind;
  metadata: { name: string; namespace?: string; uid: string; resourceVersion: string; generation: number; creationTimestamp: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  spec: Record<string, unknown>;
}

/** What a test writes: a policy as an admin would send it. */
export interface PolicyInput {
  kind: PolicyKind;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  spec: unknown;
}

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED';

export interface FakePolicies {
  /** The resourceVersion of the last write (what a list reports). */
  readonly resourceVersion: string;
  /**
   * Creates or replaces a policy as an admin's write would: pruned and validated with the CRD's schema (an invalid
   * one throws the 422's message), a new resourceVersion, and an ADDED or MODIFIED event for the watches. A
   * replacement that changes nothing is a no-op, as on the server.
   */
  apply(policy: PolicyInput): StoredPolicy;
  /** Deletes a policy; the watches see DELETED. False when there was none. A RemocalPolicy's namespace is `shop` unless given. */
  delete(kind: PolicyKind, name: string, namespace?: string): boolean;
  get(kind: PolicyKind, name: string, namespace?: string): StoredPolicy | undefined;
  /** In the server's order (namespace, then name); all namespaces when `namespace` is undefined. */
  list(kind: PolicyKind, namespace?: string): StoredPolicy[];
  /** Forgets the events so far, as etcd's compaction does: a watch from an older resourceVersion gets 410 Expired. */
  compact(): void;
  /** Ends every open watch, as the server's watch timeout does; a client then watches again from its last resourceVersion. */
  endWatches(): void;
  /** How many watches are open: a test waits on it rather than sleeping until a client has connected. */
  readonly openWatches: number;
  /** Stops serving the group: the fake answers as a cluster without the CRDs again. */
  remove(): void;
}

/** The answers this serves that no recording shows, with what each was built from (as index.json's `added`). */
const ADDED = {
  deleteNotFound: 'added: policy-get-not-found, the NotFound Status of a missing name, for a DELETE',
  createExists: "added: the API server's AlreadyExists Status (409), worded like policy-get-not-found",
  createName: "added: the API server's metadata.name 422 (missing, or not a DNS subdomain), shaped like policy-create-*",
  watchExpired: 'added: the ERROR event with the 410 Expired Status the watch cache sends for a compacted resourceVersion',
};

interface HistoryEvent {
  resourceVersion: number;
  type: WatchEventType;
  object: StoredPolicy;
}

interface OpenWatch {
  kind: PolicyKind;
  namespace: string | undefined;
  response: ServerResponse;
}

const apiVersion = `${POLICY_GROUP}/${POLICY_VERSION}`;
const kindOf = new Map<string, PolicyKind>(Object.entries(POLICY_RESOURCES).map(([kind, resource]) => [resource.plural, kind as PolicyKind]));
// The recorded empty list, before the recorded creates (3180…).
const FIRST_RESOURCE_VERSION = 3179;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** Go's encoding of a map[string]interface{}: keys sorted at every level. */
function sortKeys<T>(value: T): T {
  if (Array.isArray(value)) return value.map(sortKeys) as T;
  if (typeof value !== 'object' || value === null) return value;
  return Object.fromEntries(Object.keys(value).sort().map((key) => [key, sortKeys((value as Record<string, unknown>)[key])])) as T;
}

function status(code: number, reason: string, message: string, details?: object): object {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, ...(details === undefined ? {} : { details }), code };
}

/** The 422 of an invalid policy, exactly as policy-create-*.json. */
function invalidBody(kind: PolicyKind, name: string, errors: string[], causes: StatusCause[]): object {
  return status(422, 'Invalid', invalidObjectMessage(`${kind}.${POLICY_GROUP}`, name, errors), { name, group: POLICY_GROUP, kind, causes });
}

function nameProblem(name: unknown): StatusCause | undefined {
  if (typeof name !== 'string' || name === '') return { reason: 'FieldValueRequired', message: 'Required value: name or generateName is required', field: 'metadata.name' };
  if (name.length > 253 || !DNS_SUBDOMAIN.test(name)) {
    const detail = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
    return { reason: 'FieldValueInvalid', message: `Invalid value: ${JSON.stringify(name)}: ${detail}`, field: 'metadata.name' };
  }
  return undefined;
}

/** RFC 7386. */
function mergePatch(target: unknown, patch: unknown): unknown {
  if (typeof patch !== 'object' || patch === null || Array.isArray(patch)) return patch;
  const result: Record<string, unknown> = typeof target === 'object' && target !== null && !Array.isArray(target) ? { ...(target as Record<string, unknown>) } : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete result[key];
    else result[key] = mergePatch(result[key], value);
  }
  return result;
}

class PolicyStore {
  private readonly objects = new Map<string, StoredPolicy>();
  private history: HistoryEvent[] = [];
  /** Events at or before this are forgotten. */
  private compactedAt = FIRST_RESOURCE_VERSION;
  readonly watches = new Set<OpenWatch>();
  version = FIRST_RESOURCE_VERSION;

  private static key(kind: PolicyKind, name: string, namespace: string | undefined): string {
    return `${kind}/${namespace ?? ''}/${name}`;
  }

  get(kind: PolicyKind, name: string, namespace: string | undefined): StoredPolicy | undefined {
    return this.objects.get(PolicyStore.key(kind, name, namespace));
  }

  list(kind: PolicyKind, namespace: string | undefined): StoredPolicy[] {
    return [...this.objects.values()]
      .filter((object) => object.kind === kind && (namespace === undefined || object.metadata.namespace === namespace))
      .sort((a, b) => (a.metadata.namespace ?? '').localeCompare(b.metadata.namespace ?? '') || a.metadata.name.localeCompare(b.metadata.name));
  }

  /** Pruned and validated, or the 422 Status that refuses it. */
  check(kind: PolicyKind, body: Record<string, unknown>): { spec: Record<string, unknown> } | { refusal: object } {
    const metadata = (body.metadata ?? {}) as Record<string, unknown>;
    const name = typeof metadata.name === 'string' ? metadata.name : '';
    const problem = nameProblem(metadata.name);
    const checked = validateAgainstSchema(POLICY_SCHEMA, body);
    // The server checks the object's metadata before its schema.
    const causes = [...(problem === undefined ? [] : [problem]), ...checked.causes];
    if (causes.length > 0) return { refusal: invalidBody(kind, name, causes.map((cause) => `${cause.field}: ${cause.message}`), causes) };
    return { spec: (checked.value as { spec: Record<string, unknown> }).spec };
  }

  /** A new object (create) or the next state of a stored one (update, patch); undefined when nothing changed. */
  write(kind: PolicyKind, input: PolicyInput['metadata'], spec: Record<string, unknown>, dryRun = false): StoredPolicy | undefined {
    const previous = this.get(kind, input.name, input.namespace);
    const metadata = {
      name: input.name,
      ...(input.namespace === undefined ? {} : { namespace: input.namespace }),
      ...(input.labels === undefined ? {} : { labels: input.labels }),
      ...(input.annotations === undefined ? {} : { annotations: input.annotations }),
    };
    if (previous !== undefined) {
      const { uid: _uid, resourceVersion: _version, generation: _generation, creationTimestamp: _created, ...kept } = previous.metadata;
      if (JSON.stringify(sortKeys(kept)) === JSON.stringify(sortKeys(metadata)) && JSON.stringify(previous.spec) === JSON.stringify(sortKeys(spec))) return undefined;
    }
    const specChanged = previous === undefined || JSON.stringify(previous.spec) !== JSON.stringify(sortKeys(spec));
    const object = sortKeys({
      apiVersion,
      kind,
      metadata: {
        ...metadata,
        uid: previous?.metadata.uid ?? randomUUID(),
        creationTimestamp: previous?.metadata.creationTimestamp ?? `${new Date().toISOString().slice(0, 19)}Z`,
        generation: (previous?.metadata.generation ?? 0) + (specChanged ? 1 : 0),
        resourceVersion: String(this.version + 1),
      },
      spec,
    }) as StoredPolicy;
    if (dryRun) {
      const { resourceVersion: _unset, ...rest } = object.metadata;
      return { ...object, metadata: rest as StoredPolicy['metadata'] };
    }
    this.version += 1;
    this.objects.set(PolicyStore.key(kind, input.name, input.namespace), object);
    this.emit(previous === undefined ? 'ADDED' : 'MODIFIED', object);
    return object;
  }

  remove(kind: PolicyKind, name: string, namespace: string | undefined): StoredPolicy | undefined {
    const previous = this.get(kind, name, namespace);
    if (previous === undefined) return undefined;
    this.version += 1;
    this.objects.delete(PolicyStore.key(kind, name, namespace));
    // The DELETED event carries the deletion's resourceVersion (policies-watch.jsonl).
    const gone = sortKeys({ ...previous, metadata: { ...previous.metadata, resourceVersion: String(this.version) } });
    this.emit('DELETED', gone);
    return gone;
  }

  private emit(type: WatchEventType, object: StoredPolicy): void {
    this.history.push({ resourceVersion: this.version, type, object });
    for (const watch of this.watches) {
      if (this.concerns(watch, object)) watch.response.write(`${JSON.stringify({ type, object })}\n`);
    }
  }

  private concerns(watch: Omit<OpenWatch, 'response'>, object: StoredPolicy): boolean {
    return object.kind === watch.kind && (watch.namespace === undefined || object.metadata.namespace === watch.namespace);
  }

  compact(): void {
    this.history = [];
    this.compactedAt = this.version;
  }

  /** Whether a watch from this resourceVersion asks for events compaction forgot. */
  expired(from: string | null): boolean {
    return from !== null && from !== '' && from !== '0' && Number(from) < this.compactedAt;
  }

  /** Opens a watch: first what it missed (or the current state), then live events until the timeout or `endWatches`. */
  watch(watch: OpenWatch, from: string | null, timeoutSeconds: number | undefined): void {
    const { response } = watch;
    const since = from === null || from === '' || from === '0' ? undefined : Number(from);
    if (since !== undefined && this.expired(from)) {
      const expired = status(410, 'Expired', `too old resource version: ${since} (${this.compactedAt + 1})`);
      response.end(`${JSON.stringify({ type: 'ERROR', object: expired })}\n`);
      return;
    }
    const backlog =
      since === undefined
        ? this.list(watch.kind, watch.namespace).map((object) => ({ type: 'ADDED' as const, object }))
        : this.history.filter((event) => event.resourceVersion > since && this.concerns(watch, event.object));
    for (const event of backlog) response.write(`${JSON.stringify({ type: event.type, object: event.object })}\n`);
    this.watches.add(watch);
    const timer = timeoutSeconds === undefined ? undefined : setTimeout(() => response.end(), timeoutSeconds * 1000);
    timer?.unref();
    response.on('close', () => {
      clearTimeout(timer);
      this.watches.delete(watch);
    });
  }
}

/** The query parameters a request may carry that this models; any other leaves it unmatched. */
const LIST_PARAMETERS = new Set(['watch', 'resourceVersion', 'timeoutSeconds', 'allowWatchBookmarks', 'limit']);
const CREATE_PARAMETERS = new Set(['dryRun', 'fieldManager', 'fieldValidation']);

function only(request: KubeRequest, allowed: Set<string>): boolean {
  return [...request.query.keys()].every((key) => allowed.has(key));
}

function isWatch(request: KubeRequest): boolean {
  const watch = request.query.get('watch');
  return watch === 'true' || watch === '1';
}

/** Serves policies.remocal.dev/v1alpha1 on `api` until `remove()`. */
export function servePolicies(api: FakeKubeApi): FakePolicies {
  const store = new PolicyStore();

  const handle = (request: KubeRequest): KubeResponse | undefined => {
    // dev-alice has no RBAC on policies: the fake's RBAC answers her as her recording shows.
    if (request.user !== 'admin') return undefined;
    if (request.pathname === `/apis/${POLICY_GROUP}/${POLICY_VERSION}` && request.method === 'GET') {
      return { status: 200, body: loadFixture('operator/crd-group-discovery.json') };
    }
    const info = parseResourcePath(request.pathname);
    const kind = info === null ? undefined : kindOf.get(info.resource);
    if (info === null || kind === undefined || info.version !== POLICY_VERSION || info.subresource !== undefined) return undefined;
    // A cluster-scoped kind has no namespaced path; a namespaced one is listed cluster-wide, never written there.
    if (POLICY_RESOURCES[kind].namespaced ? info.namespace === undefined && !(request.method === 'GET' && info.name === undefined) : info.namespace !== undefined) return undefined;

    if (info.name === undefined) {
      if (request.method === 'GET') {
        if (!only(request, LIST_PARAMETERS)) return undefined;
        if (isWatch(request)) {
          const timeout = request.query.get('timeoutSeconds');
          const from = request.query.get('resourceVersion');
          if (store.expired(from)) request.note = ADDED.watchExpired;
          return { status: 200, stream: (response) => store.watch({ kind, namespace: info.namespace, response }, from, timeout === null ? undefined : Number(timeout)) };
        }
        const items = store.list(kind, info.namespace);
        const limit = Number(request.query.get('limit') ?? Infinity);
        if (items.length > limit) return undefined;
        return { status: 200, body: { apiVersion, items, kind: `${kind}List`, metadata: { continue: '', resourceVersion: String(store.version) } } };
      }
      if (request.method !== 'POST' || !only(request, CREATE_PARAMETERS)) return undefined;
      const body = request.body as Record<string, unknown> | undefined;
      const metadata = (body?.metadata ?? {}) as PolicyInput['metadata'];
      // The server refuses another kind or a body for another namespace with errors this does not model.
      if (body?.kind !== kind || body.apiVersion !== apiVersion || (metadata.namespace !== undefined && metadata.namespace !== info.namespace)) return undefined;
      const checked = store.check(kind, body);
      if (nameProblem(metadata.name) !== undefined) request.note = ADDED.createName;
      if ('refusal' in checked) return { status: 422, body: checked.refusal };
      if (store.get(kind, metadata.name, info.namespace) !== undefined) {
        request.note = ADDED.createExists;
        return { status: 409, body: status(409, 'AlreadyExists', `${info.resource}.${POLICY_GROUP} "${metadata.name}" already exists`, { name: metadata.name, group: POLICY_GROUP, kind: info.resource }) };
      }
      const created = store.write(kind, { ...metadata, ...(info.namespace === undefined ? {} : { namespace: info.namespace }) }, checked.spec, request.query.get('dryRun') === 'All');
      return { status: 201, body: created };
    }

    const stored = store.get(kind, info.name, info.namespace);
    switch (request.method) {
      case 'GET':
        return stored === undefined ? { status: 404, body: notFoundBody(info) } : { status: 200, body: stored };
      case 'DELETE': {
        const gone = store.remove(kind, info.name, info.namespace);
        if (gone === undefined) {
          request.note = ADDED.deleteNotFound;
          return { status: 404, body: notFoundBody(info) };
        }
        return { status: 200, body: { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success', details: { name: info.name, group: POLICY_GROUP, kind: info.resource, uid: gone.metadata.uid } } };
      }
      case 'PATCH': {
        if (request.contentType?.split(';')[0]?.trim() !== 'application/merge-patch+json' || !only(request, CREATE_PARAMETERS)) return undefined;
        if (stored === undefined) return { status: 404, body: notFoundBody(info) };
        const patched = mergePatch(stored, request.body) as Record<string, unknown>;
        const checked = store.check(kind, { ...patched, metadata: { ...(patched.metadata as object), name: info.name } });
        if ('refusal' in checked) return { status: 422, body: checked.refusal };
        const metadata = patched.metadata as PolicyInput['metadata'];
        const written = store.write(kind, { name: info.name, namespace: info.namespace, labels: metadata.labels, annotations: metadata.annotations }, checked.spec, request.query.get('dryRun') === 'All');
        return { status: 200, body: written ?? stored };
      }
      default:
        return undefined;
    }
  };

  const removeOverride = api.override('*', new RegExp(`^/apis/${POLICY_GROUP.replaceAll('.', '\\.')}(/|$)`), handle);

  const namespaceOf = (kind: PolicyKind, namespace: string | undefined): string | undefined => (POLICY_RESOURCES[kind].namespaced ? (namespace ?? 'shop') : undefined);

  return {
    get resourceVersion() {
      return String(store.version);
    },
    apply(policy) {
      const namespace = namespaceOf(policy.kind, policy.metadata.namespace);
      const checked = store.check(policy.kind, { apiVersion, kind: policy.kind, metadata: policy.metadata, spec: policy.spec });
      if ('refusal' in checked) throw new Error((checked.refusal as { message: string }).message);
      const metadata = { ...policy.metadata, ...(namespace === undefined ? {} : { namespace }) };
      return store.write(policy.kind, metadata, checked.spec) ?? store.get(policy.kind, policy.metadata.name, namespace)!;
    },
    delete(kind, name, namespace) {
      return store.remove(kind, name, namespaceOf(kind, namespace)) !== undefined;
    },
    get(kind, name, namespace) {
      return store.get(kind, name, namespaceOf(kind, namespace));
    },
    list(kind, namespace) {
      return store.list(kind, namespace);
    },
    compact() {
      store.compact();
    },
    endWatches() {
      for (const watch of store.watches) watch.response.end();
    },
    get openWatches() {
      return store.watches.size;
    },
    remove() {
      removeOverride();
      for (const watch of store.watches) watch.response.end();
    },
  };
}
