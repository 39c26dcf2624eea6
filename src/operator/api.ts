// The operator's HTTP API, shaped as the Kubernetes aggregated API `operator.remocal.dev/v1` so that the same
// routes serve kubectl through the API server and remocal's own clients in local mode:
//
//   GET    /apis/operator.remocal.dev/v1                                     discovery (APIResourceList)
//   GET    /apis/operator.remocal.dev/v1[/namespaces/NS]/sessions            SessionList, or a Table for kubectl
//   GET    /apis/operator.remocal.dev/v1/namespaces/NS/sessions/ID           Session
//   DELETE /apis/operator.remocal.dev/v1/namespaces/NS/sessions/ID           ends it; the owner, or an admin
//   GET    /apis/operator.remocal.dev/v1[/namespaces/NS]/targets             the targets in use, with their sessions
//   GET    /apis/operator.remocal.dev/v1/namespaces/NS/targets/NAME          one target (resolved), with its sessions
//   GET    /apis/operator.remocal.dev/v1/namespaces/NS/targets/NAME/portforward   (WebSocket) a session's stream
//   GET    /apis/operator.remocal.dev/v1/namespaces/NS/jobsteps/TEMPLATE/run       (WebSocket) a job step's events;
//                                                                           its Job lives while the socket does
//   GET    /apis/operator.remocal.dev/v1[/namespaces/NS]/splitqueues         the queues being split, with counts per destination
//   GET    /apis/operator.remocal.dev/v1[/namespaces/NS]/copytargets         the copies of copy-target sessions, or a Table
//   GET    /apis/operator.remocal.dev/v1/namespaces/NS/copytargets/NAME      one copy (NAME is the copy pod's)
//   GET    /apis/operator.remocal.dev/v1/agents                              the shared agents (operator status)
//   GET    /healthz                                                          liveness, without identity
//
// Every answer that is not a success is a Kubernetes `Status`, whose `details.causes[0]` carries remocal's error
// code and hint, so the CLI shows the same error it would have met without the operator.

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { createWebSocketStream, WebSocketServer, type WebSocket } from 'ws';
import { isRemocalError, type RemocalError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { packageVersion } from '../core/paths.js';
import { formatTarget, parseTarget, type Target } from '../platform/target.js';
import type { AppliedPolicy } from '../protocol/policy.js';
import type { AgentPool } from './agents.js';
import type { Authenticator, Identity } from './identity.js';
import { NotServedError } from './not-served.js';
import type { JobSteps } from './job-steps.js';
import { parseJobStepQuery, type JobStepEvent } from '../protocol/job-step.js';
import { MAX_CLOSE_REASON_BYTES, SESSION_ENDED_CLOSE_CODE } from '../protocol/contracts.js';
import { checkPurpose, type ClientStream, type SessionOptions, type SessionRecord, type SessionRegistry } from './sessions.js';
import type { SubscriptionStats } from '../protocol/shared-agent.js';
import { targetFromResourceName, targetResourceName } from '../platform/operator/target-names.js';
import { COPY_TARGET_PARAM, parseCopyTargetRequest, type CopyTargetRequest } from '../protocol/copy-target.js';
import { parseSplitQueuesRequest, SPLIT_QUEUES_PARAM, type SplitQueuesRequest } from '../protocol/split-queues.js';
import type { CopyRecord } from './copy-targets.js';
import type { SplitStatus } from './queues/split-sessions.js';

export const API_GROUP = 'operator.remocal.dev';
export const API_VERSION = 'v1';
const PREFIX = `/apis/${API_GROUP}/${API_VERSION}`;
const GROUP_VERSION = `${API_GROUP}/${API_VERSION}`;

export interface ApiContext<T> {
  sessions: SessionRegistry<T>;
  agents: AgentPool<T>;
  auth: Authenticator;
  jobSteps: JobSteps;
  log: Logger;
}

class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly reason: string,
    message: string,
    readonly remocal?: { code: string; hint?: string | undefined },
  ) {
    super(message);
  }
}

const HTTP_REASON: Record<number, string> = { 400: 'BadRequest', 401: 'Unauthorized', 403: 'Forbidden', 404: 'NotFound', 405: 'MethodNotAllowed', 409: 'Conflict', 500: 'InternalError', 503: 'ServiceUnavailable' };

function fromRemocalError(error: RemocalError): ApiError {
  const forbidden = ['REMOCAL_PERMISSION_DENIED', 'REMOCAL_OPERATOR_FORBIDDEN', 'REMOCAL_POLICY_BLOCKED'];
  const status = error.code === 'REMOCAL_TARGET_NOT_FOUND' ? 404 : forbidden.includes(error.code) ? 403 : error.category === 'user' || error.category === 'config' ? 400 : 503;
  return new ApiError(status, HTTP_REASON[status]!, error.message, { code: error.code, hint: error.hint });
}

function statusBody(error: ApiError): object {
  return {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message: error.message,
    reason: error.reason,
    code: error.status,
    ...(error.remocal === undefined ? {} : { details: { causes: [{ reason: error.remocal.code, message: error.remocal.hint ?? '', field: 'remocal' }] } }),
  };
}

function sendJson(response: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  response.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'x-remocal-version': packageVersion() });
  response.end(text);
}

export function createApi<T>(context: ApiContext<T>): { onRequest(request: IncomingMessage, response: ServerResponse): void; onUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void } {
  const wss = new WebSocketServer({ noServer: true, maxPayload: 4 * 1024 * 1024, perMessageDeflate: false });

  const { catalog } = context.sessions;
  const authenticate = (request: IncomingMessage): Identity => {
    const result = context.auth.authenticate(request);
    if (!result.ok) throw new ApiError(401, 'Unauthorized', `Unauthorized: ${result.message}`, { code: 'REMOCAL_OPERATOR_UNAUTHORIZED' });
    return result.identity;
  };

  const onRequest = (request: IncomingMessage, response: ServerResponse): void => {
    // Liveness for probes and load balancers: it says nothing about sessions, so it needs no identity.
    if (request.method === 'GET' && request.url === '/healthz') {
      response.writeHead(200, { 'content-type': 'text/plain', 'content-length': 3 });
      response.end('ok\n');
      return;
    }
    void (async () => {
      const identity = authenticate(request);
      const url = new URL(request.url ?? '/', 'https://operator.invalid');
      const answer = await route(request.method ?? 'GET', url, identity, request.headers.accept ?? '');
      sendJson(response, answer.status, answer.body);
    })().catch((error: unknown) => {
      const apiError = toApiError(error, context.log);
      if (!response.headersSent) sendJson(response, apiError.status, statusBody(apiError));
    });
  };

  const route = async (method: string, url: URL, identity: Identity, accept: string): Promise<{ status: number; body: unknown }> => {
    const parts = url.pathname.startsWith(`${PREFIX}`) ? url.pathname.slice(PREFIX.length).split('/').filter((part) => part !== '').map(decodeURIComponent) : null;
    if (parts === null) throw new ApiError(404, 'NotFound', `the operator serves only ${PREFIX}`);
    if (parts.length === 0 && method === 'GET') return { status: 200, body: discovery() };
    if (parts.length === 1 && parts[0] === 'agents' && method === 'GET') return { status: 200, body: agentList(context.agents) };
    const [scope, namespace, resource, name, sub] = parts[0] === 'namespaces' ? ['namespaced', parts[1], parts[2], parts[3], parts[4]] : ['all', undefined, parts[0], parts[1], parts[2]];
    if (scope === 'all' && name !== undefined) throw new ApiError(404, 'NotFound', `${resource} are namespaced: use ${PREFIX}/namespaces/<namespace>/${resource}/${name}`);
    if (namespace !== undefined) catalog.checkNamespace(namespace);
    const inScope = (record: SessionRecord): boolean => namespace === undefined || record.namespace === namespace;
    if (resource === 'sessions') {
      if (name === undefined && method === 'GET') {
        // `?owner=me`: the caller's own, as the operator knows the caller (`remocal session kill --mine`).
        const records = context.sessions.list().filter((record) => inScope(record) && (url.searchParams.get('owner') !== 'me' || record.owner === identity.user));
        return { status: 200, body: wantsTable(accept) ? sessionTable(records) : sessionList(records) };
      }
      if (name !== undefined && sub === undefined) {
        const found = context.sessions.get(name);
        const record = found !== undefined && inScope(found) ? found : undefined;
        if (record === undefined) throw new ApiError(404, 'NotFound', `sessions "${name}" not found`);
        if (method === 'GET') return { status: 200, body: sessionObject(record) };
        if (method === 'DELETE') {
          if (record.phase === 'Closed') throw new ApiError(409, 'Conflict', `session ${name} is already closed (${record.closeReason ?? 'no reason'})`);
          if (record.owner !== identity.user && !(await catalog.mayEndOthers(identity, record.namespace))) {
            throw new ApiError(403, 'Forbidden', `session ${name} belongs to ${record.owner}: only its owner or an admin may end it`, { code: 'REMOCAL_OPERATOR_FORBIDDEN', hint: `Ask ${record.owner} to end it, or an admin of the operator.` });
          }
          context.sessions.kill(name, identity);
          return { status: 200, body: { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success', details: { name, group: API_GROUP, kind: 'sessions' } } };
        }
      }
    }
    if (resource === 'targets' && method === 'GET' && sub === undefined) {
      if (name === undefined) return { status: 200, body: targetList(context.sessions.list().filter(inScope)) };
      const target = parseTargetName(name, url.searchParams.get('container'));
      const copy = copyOf(url);
      if (copy !== undefined) {
        // Nothing is copied yet: the answer says whether the copy may be made, and the policies its session would meet.
        const { policies } = await context.sessions.checkCopy(identity, namespace!, target, copy);
        checkPurpose(policies, purposeOf(url), target);
        const description = `a copy of ${formatTarget(target)}, made when the session starts${copy.scaleDown ? `, with ${formatTarget(target)} scaled down meanwhile` : ''}`;
        return { status: 200, body: targetObject(target, description, true, [], policies) };
      }
      const { resolved, policies } = await context.sessions.policiesFor(identity, namespace!, target);
      // Asked before a session starts, so that a refused one is refused before anything runs.
      checkPurpose(policies, purposeOf(url), target);
      return { status: 200, body: targetObject(target, resolved.description, resolved.hasProcess, context.sessions.list().filter(inScope), policies) };
    }
    if (resource === 'splitqueues' && method === 'GET' && name === undefined) {
      const splits = (await catalog.splits?.status()) ?? [];
      const items = splits.filter((split) => namespace === undefined || split.namespace === namespace);
      return { status: 200, body: wantsTable(accept) ? splitTable(items) : splitList(items) };
    }
    if (resource === 'copytargets' && method === 'GET' && sub === undefined) {
      const copies = context.sessions.copies().filter((copy) => namespace === undefined || copy.namespace === namespace);
      if (name === undefined) return { status: 200, body: wantsTable(accept) ? copyTable(copies) : copyList(copies) };
      const found = copies.find((copy) => copy.name === name);
      if (found === undefined) throw new ApiError(404, 'NotFound', `copytargets "${name}" not found`);
      return { status: 200, body: copyObject(found) };
    }
    if (resource === 'targets' && sub === 'portforward') throw new ApiError(400, 'BadRequest', 'portforward is a WebSocket: send the GET with `Upgrade: websocket`');
    throw new ApiError(404, 'NotFound', `the operator has no ${method} ${url.pathname}`);
  };

  const onUpgrade = (request: IncomingMessage, socket: Duplex, head: Buffer): void => {
    socket.on('error', () => socket.destroy());
    void (async () => {
      const identity = authenticate(request);
      const url = new URL(request.url ?? '/', 'https://operator.invalid');
      const jobStep = new RegExp(`^${PREFIX.replaceAll('.', '\\.')}/namespaces/([^/]+)/jobsteps/([^/]+)/run$`).exec(url.pathname);
      if (jobStep !== null) {
        await runJobStep(identity, decodeURIComponent(jobStep[1]!), decodeURIComponent(jobStep[2]!), url.searchParams, request, socket, head);
        return;
      }
      const match = new RegExp(`^${PREFIX.replaceAll('.', '\\.')}/namespaces/([^/]+)/targets/([^/]+)/portforward$`).exec(url.pathname);
      if (match === null) throw new ApiError(404, 'NotFound', `no WebSocket at ${url.pathname}: sessions connect to ${PREFIX}/namespaces/<namespace>/targets/<target>/portforward`);
      const namespace = decodeURIComponent(match[1]!);
      catalog.checkNamespace(namespace);
      const target = parseTargetName(decodeURIComponent(match[2]!), url.searchParams.get('container'));
      const files = url.searchParams.get('files') ?? 'read';
      if (files !== 'off' && files !== 'read' && files !== 'write') throw new ApiError(400, 'BadRequest', `files must be off, read or write, not ${JSON.stringify(files)}`);
      await context.sessions.open(identity, namespace, target, { files, purpose: purposeOf(url), copy: copyOf(url), split: splitOf(url) }, () => new Promise<ClientStream>((resolve, reject) => {
        // A request ws refuses (a bad Sec-WebSocket-Key, say) is answered and closed without the callback: the
        // session must not wait for it.
        socket.once('close', () => reject(new Error('the client went away before its WebSocket was open')));
        wss.handleUpgrade(request, socket, head, (ws) =>
          resolve({
            stream: createWebSocketStream(ws),
            endWith: (code, reason) => ws.close(SESSION_ENDED_CLOSE_CODE, closeReason(`${code} ${reason}`)),
          }),
        );
      }));
    })().catch((error: unknown) => {
      const apiError = toApiError(error, context.log);
      if (!socket.writable) return;
      const body = JSON.stringify(statusBody(apiError));
      socket.end(`HTTP/1.1 ${apiError.status} ${apiError.reason}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
    });
  };

  /** A job step: refused with a Status before the upgrade, otherwise its events on the socket until the client closes it. */
  const runJobStep = async (identity: Identity, namespace: string, template: string, query: URLSearchParams, request: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> => {
    catalog.checkNamespace(namespace);
    const parsed = parseJobStepQuery(template, query);
    if ('refused' in parsed) throw new ApiError(400, 'BadRequest', `job step refused: ${parsed.refused}`);
    const prepared = await context.jobSteps.prepare(identity, namespace, parsed);
    const ws = await new Promise<WebSocket>((resolve, reject) => {
      socket.once('close', () => reject(new Error('the client went away before its WebSocket was open')));
      wss.handleUpgrade(request, socket, head, resolve);
    });
    const released = new Promise<void>((resolve) => ws.once('close', () => resolve()));
    // The client speaks only by closing; anything else it sends is ignored.
    ws.on('error', () => ws.terminate());
    const send = (event: JobStepEvent): void => {
      if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(event));
    };
    await prepared.run({ send, released }).catch((error: unknown) => {
      const apiError = toApiError(error, context.log);
      send({ type: 'failed', error: { code: apiError.remocal?.code ?? 'REMOCAL_INTERNAL', message: apiError.message, ...(apiError.remocal?.hint === undefined ? {} : { hint: apiError.remocal.hint }) }, logTail: [] });
      ws.close();
    });
  };

  return { onRequest, onUpgrade };
}

/** `text` cut to what a WebSocket close reason holds, on a character boundary. */
function closeReason(text: string): string {
  let cut = text;
  while (Buffer.byteLength(cut) > MAX_CLOSE_REASON_BYTES) cut = cut.slice(0, -1);
  return cut;
}

function toApiError(error: unknown, log: Logger): ApiError {
  if (error instanceof ApiError) return error;
  if (error instanceof NotServedError) return new ApiError(error.status, HTTP_REASON[error.status]!, error.message);
  if (isRemocalError(error)) return fromRemocalError(error);
  log.error({ err: error }, 'request failed');
  return new ApiError(500, 'InternalError', `the operator failed: ${(error as Error).message}`);
}

/** What the session is for (`?purpose=`): `remocal port-forward` says so, since a policy may forbid it. */
function purposeOf(url: URL): SessionOptions['purpose'] {
  const purpose = url.searchParams.get('purpose') ?? 'exec';
  if (purpose !== 'exec' && purpose !== 'port-forward') throw new ApiError(400, 'BadRequest', `purpose must be exec or port-forward, not ${JSON.stringify(purpose)}`);
  return purpose;
}

/** The split-queues request (`?splitQueues=`), read as hostile input: bounded and checked field by field. */
function splitOf(url: URL): SplitQueuesRequest | undefined {
  const text = url.searchParams.get(SPLIT_QUEUES_PARAM);
  if (text === null) return undefined;
  const parsed = parseSplitQueuesRequest(text);
  if (!parsed.ok) throw new ApiError(400, 'BadRequest', `bad ${SPLIT_QUEUES_PARAM} parameter: ${parsed.error}`);
  return parsed.value;
}

/** The copy-target request (`?copy=`), read as hostile input: bounded and checked field by field. */
function copyOf(url: URL): CopyTargetRequest | undefined {
  const text = url.searchParams.get(COPY_TARGET_PARAM);
  if (text === null) return undefined;
  const parsed = parseCopyTargetRequest(text);
  if (!parsed.ok) throw new ApiError(400, 'BadRequest', `bad ${COPY_TARGET_PARAM} parameter: ${parsed.error}`);
  return parsed.value;
}

function parseTargetName(name: string, container: string | null): Target {
  const target = targetFromResourceName(name, container);
  if (target === null) {
    throw new ApiError(400, 'BadRequest', `"${name}" is not a target name: targets are named <kind>.<name> (pid.4242, container.api, deployment.orders), with a Kubernetes target's container in ?container=`);
  }
  return target;
}

function wantsTable(accept: string): boolean {
  return /as=Table/.test(accept);
}

function discovery(): object {
  return {
    kind: 'APIResourceList',
    apiVersion: 'v1',
    groupVersion: GROUP_VERSION,
    resources: [
      // No watch: the garbage collector would then list and watch sessions cluster-wide (see OPERATOR-NOTES).
      { name: 'sessions', singularName: 'session', namespaced: true, kind: 'Session', verbs: ['get', 'list', 'delete'], shortNames: ['rms'], categories: ['remocal'] },
      { name: 'targets', singularName: 'target', namespaced: true, kind: 'Target', verbs: ['get', 'list'], categories: ['remocal'] },
      { name: 'targets/portforward', singularName: '', namespaced: true, kind: 'Target', verbs: ['get', 'create'] },
      // `create` is what an admin grants per template (resourceNames); the run itself is a WebSocket GET.
      { name: 'jobsteps', singularName: 'jobstep', namespaced: true, kind: 'JobStep', verbs: ['create'], categories: ['remocal'] },
      { name: 'jobsteps/run', singularName: '', namespaced: true, kind: 'JobStep', verbs: ['get'] },
      // Read-only: a copy goes with its session (`remocal session kill` ends both); no watch, for the same reason as sessions.
      // Read-only, like copytargets: a split goes with its sessions.
      { name: 'splitqueues', singularName: 'splitqueue', namespaced: true, kind: 'SplitQueue', verbs: ['list'], categories: ['remocal'] },
      { name: 'copytargets', singularName: 'copytarget', namespaced: true, kind: 'CopyTarget', verbs: ['get', 'list'], shortNames: ['rmct'], categories: ['remocal'] },
    ],
  };
}

function iso(ms: number | undefined): string | null {
  return ms === undefined ? null : new Date(ms).toISOString();
}

function sessionObject(record: SessionRecord): object {
  return {
    apiVersion: GROUP_VERSION,
    kind: 'Session',
    metadata: { name: record.id, namespace: record.namespace, creationTimestamp: iso(record.startedAt) },
    spec: { owner: record.owner, target: record.target, resolvedTo: record.resolvedTo, files: record.files, policies: record.policies, ...(record.copy === undefined ? {} : { copy: record.copy }) },
    status: {
      phase: record.phase,
      readyAt: iso(record.readyAt),
      lastActivity: iso(record.lastActivity),
      routedRequests: record.routed,
      ports: record.subscriptions.map((subscription) => ({ ...subscription, since: iso(subscription.since) })),
      closedAt: iso(record.closedAt),
      closeReason: record.closeReason ?? null,
      ...(record.splitQueues === undefined ? {} : { splitQueues: record.splitQueues.map(({ queueId, queueType, queue, sessionQueue, counts }) => ({ queueId, queueType, queue, sessionQueue, forwarded: counts.forwarded, redelivered: counts.redelivered, drainedBack: counts.drainedBack })) }),
    },
  };
}

function sessionList(records: SessionRecord[]): object {
  return { apiVersion: GROUP_VERSION, kind: 'SessionList', metadata: {}, items: records.map(sessionObject) };
}

/** The columns kubectl shows; the server formats Age itself from creationTimestamp. */
function sessionTable(records: SessionRecord[]): object {
  return {
    kind: 'Table',
    apiVersion: 'meta.k8s.io/v1',
    metadata: {},
    columnDefinitions: [
      { name: 'Name', type: 'string', format: 'name', description: 'The session id' },
      { name: 'Owner', type: 'string', description: 'Who opened it' },
      { name: 'Target', type: 'string', description: 'What it runs against' },
      { name: 'Phase', type: 'string', description: 'Starting, Ready or Closed' },
      { name: 'Ports', type: 'string', description: 'What it holds' },
      { name: 'Routed', type: 'integer', description: 'Connections and requests routed to it' },
      { name: 'Age', type: 'string', description: 'Since it started' },
    ],
    rows: records.map((record) => ({
      cells: [record.id, record.owner, record.target, record.phase, record.subscriptions.map(formatSubscription).join(', ') || '-', record.routed, iso(record.startedAt)],
      object: { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: { name: record.id, namespace: record.namespace, creationTimestamp: iso(record.startedAt) } },
    })),
  };
}

function formatSubscription(subscription: SubscriptionStats): string {
  if (subscription.filter === null) return `${subscription.port}:${subscription.mode === 'steal' ? 'steal(locked)' : subscription.mode}`;
  const overlaps = subscription.overlaps?.map((other) => other.owner).join(' ');
  return `${subscription.port}:steal(filter${overlaps === undefined ? '' : `, overlaps ${overlaps}`})`;
}

/** One target as its caller may use it: what it resolves to, who is on it, and the policies a session would meet. */
function targetObject(target: Target, description: string, hasProcess: boolean, records: SessionRecord[], policies: AppliedPolicy[]): object {
  const key = formatTarget(target);
  return {
    apiVersion: GROUP_VERSION,
    kind: 'Target',
    metadata: { name: targetResourceName(target) },
    spec: { target: key, description, hasProcess },
    status: {
      sessions: records.filter((record) => record.target === key && record.phase !== 'Closed').map((record) => ({ id: record.id, owner: record.owner, ports: record.subscriptions })),
      policies,
    },
  };
}

function targetList(records: SessionRecord[]): object {
  const targets = new Map<string, SessionRecord[]>();
  for (const record of records) if (record.phase !== 'Closed') targets.set(record.target, [...(targets.get(record.target) ?? []), record]);
  return {
    apiVersion: GROUP_VERSION,
    kind: 'TargetList',
    metadata: {},
    items: [...targets].map(([key, held]) => {
      const target = parseTarget(key);
      return { apiVersion: GROUP_VERSION, kind: 'Target', metadata: { name: targetResourceName(target) }, spec: { target: key }, status: { sessions: held.map((record) => ({ id: record.id, owner: record.owner, ports: record.subscriptions })) } };
    }),
  };
}

function agentList<T>(agents: AgentPool<T>): object {
  return {
    apiVersion: GROUP_VERSION,
    kind: 'AgentList',
    metadata: {},
    version: packageVersion(),
    items: agents.running().map((agent) => ({ target: agent.key, agent: agent.description, startedAt: iso(agent.startedAt), sessions: agent.users })),
  };
}

function splitList(splits: SplitStatus[]): object {
  return {
    apiVersion: GROUP_VERSION,
    kind: 'SplitQueueList',
    metadata: {},
    items: splits.map((split) => ({
      apiVersion: GROUP_VERSION,
      kind: 'SplitQueue',
      metadata: { name: `${split.workload.replace('/', '.')}.${split.queueId}`, namespace: split.namespace },
      spec: { workload: split.workload, queueId: split.queueId, queue: split.queue },
      status: { destinations: split.destinations },
    })),
  };
}

/** `kubectl get splitqueues`: one row per destination of each split queue, with its counts. */
function splitTable(splits: SplitStatus[]): object {
  return {
    kind: 'Table',
    apiVersion: 'meta.k8s.io/v1',
    metadata: {},
    columnDefinitions: [
      { name: 'Workload', type: 'string', description: 'Whose queue it is' },
      { name: 'Queue', type: 'string', description: 'The queue id, and the queue' },
      { name: 'Destination', type: 'string', description: 'The deployed app, or a session' },
      { name: 'Forwarded', type: 'integer', description: 'Messages the broker confirmed to it' },
      { name: 'Redelivered', type: 'integer', description: 'Of those, how many the broker had delivered before: possible duplicates' },
      { name: 'Drained back', type: 'integer', description: 'Messages returned to the queue when it ended' },
      { name: 'Active', type: 'boolean', description: 'Whether it still gets messages' },
    ],
    rows: splits.flatMap((split) =>
      split.destinations.map((destination) => ({
        cells: [split.workload, `${split.queueId} (${split.queue})`, destination.id, destination.forwarded, destination.redelivered, destination.drainedBack, destination.active],
        object: { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: { name: `${split.workload.replace('/', '.')}.${split.queueId}`, namespace: split.namespace } },
      })),
    ),
  };
}

function copyObject(copy: CopyRecord): object {
  return {
    apiVersion: GROUP_VERSION,
    kind: 'CopyTarget',
    metadata: { name: copy.name, namespace: copy.namespace, creationTimestamp: iso(copy.createdAt) },
    spec: { source: copy.source, session: copy.session, owner: copy.owner, scaleDown: copy.scaledDown },
    status: { phase: copy.phase },
  };
}

function copyList(copies: CopyRecord[]): object {
  return { apiVersion: GROUP_VERSION, kind: 'CopyTargetList', metadata: {}, items: copies.map(copyObject) };
}

/** `kubectl get copytargets`: the copy pod, what it copies, for whom, and whether the original is scaled down. */
function copyTable(copies: CopyRecord[]): object {
  return {
    kind: 'Table',
    apiVersion: 'meta.k8s.io/v1',
    metadata: {},
    columnDefinitions: [
      { name: 'Name', type: 'string', format: 'name', description: 'The copy pod' },
      { name: 'Source', type: 'string', description: 'What it is a copy of' },
      { name: 'Session', type: 'string', description: 'The session it belongs to' },
      { name: 'Owner', type: 'string', description: 'Who opened the session' },
      { name: 'Scaled-Down', type: 'boolean', description: 'Whether the source is scaled to 0 meanwhile' },
      { name: 'Phase', type: 'string', description: 'Creating, Pending (…), Running or Deleting' },
      { name: 'Age', type: 'string', description: 'Since the copy was made' },
    ],
    rows: copies.map((copy) => ({
      cells: [copy.name, copy.source, copy.session, copy.owner, copy.scaledDown, copy.phase, iso(copy.createdAt)],
      object: { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: { name: copy.name, namespace: copy.namespace, creationTimestamp: iso(copy.createdAt) } },
    })),
  };
}
