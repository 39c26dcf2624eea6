// A fake Kubernetes API server that answers with what a real v1.23 server answered (test/fixtures/k8s), so
// remocal's Kubernetes code is tested against real bodies, real errors and the real port-forward protocol,
// not against what we believe the API says. Anything it has no recording for is a 404 *and* an entry in
// `unmatched`: a test asserts `unmatched` is empty, so an unexpected call cannot pass unnoticed.

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, STATUS_CODES, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { isDeepStrictEqual } from 'node:util';
import { gunzipSync } from 'node:zlib';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';

export const fixturesDir = new URL('../fixtures/k8s/', import.meta.url);

export type KubeUser = 'admin' | 'dev-alice';

/** The bearer tokens the fake knows; any other token (or none) is 401, as with a real server. */
export const kubeTokens: Readonly<Record<KubeUser, string>> = { admin: 'admin-token', 'dev-alice': 'alice-token' };

/** One entry of test/fixtures/k8s/index.json. */
export interface RecordedExchange {
  name: string;
  method: string;
  /** Path and, when there was one, the exact query string sent. */
  path: string;
  user: KubeUser;
  status: number;
  response: string;
  /** The request body file, for writes. */
  request?: string;
  /** The request's content type for writes; for a `.txt` response, the response's. */
  contentType?: string;
  /** Set on answers built from recorded ones rather than recorded themselves: says how and why. */
  added?: string;
  /** Explains an odd recording. */
  note?: string;
}

export interface KubeRequest {
  method: string;
  /** As received, query included. */
  path: string;
  pathname: string;
  query: URLSearchParams;
  /** null: no token or an unknown one. */
  user: KubeUser | null;
  /** The request's Content-Type header, as sent. */
  contentType: string | undefined;
  headers: IncomingHttpHeaders;
  /** Parsed when it is JSON, the text otherwise; undefined when there was none. */
  body: unknown;
  rawBody: string;
  /** The recorded exchange that answered, `override`, `portforward`, `rbac`, `unauthorized`, or null when unmatched. */
  answeredBy: string | null;
  status: number | undefined;
  /** Why the request did not match a recording that looked close, or what a synthesized answer was derived from. */
  note?: string;
}

export interface KubeResponse {
  status: number;
  /** An object is sent as JSON; a string or Buffer as is. */
  body?: unknown;
  /** application/json unless given. */
  contentType?: string;
  headers?: Record<string, string>;
  /**
   * Instead of a body, a stream (a watch): called once the head is written, chunked as the server writes a watch;
   * it writes and ends the response when it likes.
   */
  stream?: (response: ServerResponse) => void;
}

/** Returns an answer, or undefined to let the next override, then the recordings, answer. */
export type OverrideHandler = (request: KubeRequest) => KubeResponse | undefined | Promise<KubeResponse | undefined>;

export interface FakeKubeApiOptions {
  /**
   * Opens the stream a port-forward to `pod:port` carries, as the kubelet would connect to the pod's port. A
   * rejection is reported to the client on the error channel, as the kubelet reports a refused connection.
   */
  portForward?: (namespace: string, pod: string, port: number) => Promise<Duplex>;
  /** Where unmatched requests are reported; stderr unless given. */
  log?: (line: string) => void;
}

export interface FakeKubeApi {
  /** http://127.0.0.1:PORT */
  readonly url: string;
  readonly port: number;
  readonly exchanges: readonly RecordedExchange[];
  /** Every request received, in order, port-forward upgrades included. */
  readonly requests: KubeRequest[];
  /** Requests nothing answered (each also got a 404); tests assert this stays empty. */
  readonly unmatched: KubeRequest[];
  /**
   * Adds behaviour in front of the recordings; later overrides are asked first. A string path matches the
   * path without its query, or, when it has a `?`, path and query (in any order); a RegExp is tested against
   * the path as received. `*` matches every method. Returns a function that removes the override.
   */
  override(method: string, path: string | RegExp, handler: OverrideHandler): () => void;
  /** A recorded answer by exchange name, for an override to serve (e.g. the pod after a PATCH). */
  recorded(name: string): KubeResponse;
  /**
   * Serves `/apis/<group>/…` by handing the request to `backend`, as the kube-aggregator hands an APIService's
   * group to its Service. The caller is authenticated first (401 otherwise); the rest is the backend's.
   */
  aggregate(backend: AggregatedBackend): () => void;
  /** Writes a kubeconfig for `user` with its token and namespace and returns its path. */
  kubeconfig(user: KubeUser, namespace?: string): string;
  close(): Promise<void>;
}

/** An aggregated API behind the fake (see aggregator.ts). */
export interface AggregatedBackend {
  group: string;
  request(request: KubeRequest & { user: KubeUser }, incoming: IncomingMessage, body: Buffer, response: ServerResponse): void;
  upgrade(request: KubeRequest & { user: KubeUser }, incoming: IncomingMessage, socket: Duplex, head: Buffer): void;
}

export function loadFixtureIndex(): RecordedExchange[] {
  return JSON.parse(readFileSync(new URL('index.json', fixturesDir), 'utf8')) as RecordedExchange[];
}

/** A fixture file, parsed when it is JSON (gunzipped first when it is `.gz`), the text otherwise (`.txt`, and a watch's `.jsonl`). */
export function loadFixture(file: string): unknown {
  const raw = fixtureBytes(file).toString('utf8');
  return file.endsWith('.txt') || file.endsWith('.jsonl') ? raw : JSON.parse(raw);
}

function fixtureBytes(file: string): Buffer {
  const bytes = readFileSync(new URL(file, fixturesDir));
  return file.endsWith('.gz') ? gunzipSync(bytes) : bytes;
}

/** The API server's answer to a missing or bad token (anonymous auth off), byte for byte. */
const unauthorizedBody = { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: 'Unauthorized', reason: 'Unauthorized', code: 401 };

/** How the kubelet reports a failed port-forward dial; remocal shows this text to users. */
function portForwardError(port: number, pod: string, error: unknown): string {
  return `error forwarding port ${port} to pod ${pod}, uid : ${error instanceof Error ? error.message : String(error)}`;
}

/** The API path split the way the API server's request-info resolver splits it. */
export interface ResourcePath {
  group: string;
  version: string;
  namespace: string | undefined;
  resource: string;
  name: string | undefined;
  subresource: string | undefined;
}

export function parseResourcePath(pathname: string): ResourcePath | null {
  const parts = pathname.split('/').filter((part) => part !== '').map((part) => decodeURIComponent(part));
  let group: string;
  let rest: string[];
  if (parts[0] === 'api' && parts.length >= 3) {
    group = '';
    rest = parts.slice(1);
  } else if (parts[0] === 'apis' && parts.length >= 4) {
    group = parts[1]!;
    rest = parts.slice(2);
  } else {
    return null;
  }
  const version = rest[0]!;
  rest = rest.slice(1);
  let namespace: string | undefined;
  // `namespaces/<ns>` alone is the namespace object itself, not a scope.
  if (rest[0] === 'namespaces' && rest.length >= 3) {
    namespace = rest[1];
    rest = rest.slice(2);
  }
  const [resource, name, subresource] = rest;
  if (resource === undefined) return null;
  return { group, version, namespace, resource, name, subresource };
}

function resourceWithGroup(info: ResourcePath): string {
  return info.group === '' ? info.resource : `${info.resource}.${info.group}`;
}

/** The NotFound Status the server words for a path (a resource it does not serve, or a name it does not have). */
export function notFoundBody(info: ResourcePath | null): object {
  if (info === null) {
    return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: 'the server could not find the requested resource', reason: 'NotFound', details: {}, code: 404 };
  }
  const details = { ...(info.name === undefined ? {} : { name: info.name }), ...(info.group === '' ? {} : { group: info.group }), kind: info.resource };
  const message =
    info.name === undefined
      ? `the server could not find the requested resource (get ${resourceWithGroup(info)})`
      : `${resourceWithGroup(info)} "${info.name}" not found`;
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason: 'NotFound', details, code: 404 };
}

function rbacVerb(method: string, info: ResourcePath, query: URLSearchParams): string {
  switch (method) {
    case 'GET':
      if (info.name !== undefined) return 'get';
      return query.get('watch') === 'true' || query.get('watch') === '1' ? 'watch' : 'list';
    case 'POST':
      return 'create';
    case 'PUT':
      return 'update';
    case 'PATCH':
      return 'patch';
    case 'DELETE':
      return info.name === undefined ? 'deletecollection' : 'delete';
    default:
      return method.toLowerCase();
  }
}

/** The Forbidden Status exactly as the recorded ones word it (alice-forbidden-*.json). */
function forbiddenBody(user: KubeUser, verb: string, info: ResourcePath): object {
  const resource = info.subresource === undefined ? info.resource : `${info.resource}/${info.subresource}`;
  const subject = info.name === undefined ? resourceWithGroup(info) : `${resourceWithGroup(info)} "${info.name}"`;
  const scope = info.namespace === undefined ? 'at the cluster scope' : `in the namespace "${info.namespace}"`;
  const details = { ...(info.name === undefined ? {} : { name: info.name }), ...(info.group === '' ? {} : { group: info.group }), kind: info.resource };
  return {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message: `${subject} is forbidden: User "${user}" cannot ${verb} resource "${resource}" in API group "${info.group}" ${scope}`,
    reason: 'Forbidden',
    details,
    code: 403,
  };
}

/**
 * What dev-alice may do, per the fixtures' README and her recorded answers: get and list pods and apps
 * objects in `shop`, plus what every authenticated user may (discovery, version, openapi, self access
 * reviews). Everything else is a 403 from the real server, before it even looks whether the object exists.
 */
function aliceMay(method: string, info: ResourcePath | null, verb: string): boolean {
  if (info === null) return method === 'GET';
  if (info.group === 'authorization.k8s.io' && (info.resource === 'selfsubjectaccessreviews' || info.resource === 'selfsubjectrulesreviews')) return verb === 'create';
  if (!['get', 'list', 'watch'].includes(verb) || info.namespace !== 'shop' || info.subresource !== undefined) return false;
  return (info.group === '' && info.resource === 'pods') || info.group === 'apps';
}

/** A non-resource path (/version, /healthz) is authorized by HTTP verb and path. */
function forbiddenPathBody(user: KubeUser, method: string, path: string): object {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: `forbidden: User "${user}" cannot ${method.toLowerCase()} path "${path}"`, reason: 'Forbidden', details: {}, code: 403 };
}

function canonicalQuery(query: URLSearchParams): string[] {
  return [...query.entries()].map(([key, value]) => `${key}=${value}`).sort();
}

function mediaType(contentType: string | undefined): string | undefined {
  return contentType?.split(';')[0]?.trim().toLowerCase();
}

function isJsonMedia(type: string | undefined): boolean {
  return type !== undefined && (type === 'application/json' || type.endsWith('+json'));
}

function parseBody(raw: string, contentType: string | undefined): unknown {
  if (raw === '') return undefined;
  if (isJsonMedia(mediaType(contentType)) || /^\s*[[{]/.test(raw)) {
    try {
      return JSON.parse(raw) as unknown;
    } catch {
      return raw;
    }
  }
  return raw;
}

function userFor(headers: IncomingHttpHeaders): KubeUser | null {
  const token = /^Bearer\s+(\S+)\s*$/i.exec(headers.authorization ?? '')?.[1];
  if (token === undefined) return null;
  for (const [user, known] of Object.entries(kubeTokens) as [KubeUser, string][]) {
    if (token === known) return user;
  }
  return null;
}

interface Override {
  method: string;
  path: string | RegExp;
  handler: OverrideHandler;
}

interface Candidate {
  exchange: RecordedExchange;
  pathname: string;
  query: string[];
  requestBody: unknown;
}

export async function startFakeKubeApi(options: FakeKubeApiOptions = {}): Promise<FakeKubeApi> {
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const exchanges = loadFixtureIndex();
  const candidates: Candidate[] = exchanges.map((exchange) => {
    const url = new URL(exchange.path, 'http://recorded');
    return {
      exchange,
      pathname: url.pathname,
      query: canonicalQuery(url.searchParams),
      requestBody: exchange.request === undefined ? undefined : loadFixture(exchange.request),
    };
  });
  const answers = new Map<string, KubeResponse>();
  const recorded = (name: string): KubeResponse => {
    const known = answers.get(name);
    if (known !== undefined) return known;
    const exchange = exchanges.find((candidate) => candidate.name === name);
    if (exchange === undefined) throw new Error(`no recorded exchange named ${name}`);
    const contentType = exchange.response.endsWith('.txt') ? `${exchange.contentType ?? 'text/plain'}; charset=utf-8` : 'application/json';
    const answer: KubeResponse = { status: exchange.status, body: fixtureBytes(exchange.response), contentType };
    answers.set(name, answer);
    return answer;
  };

  // Pods a port-forward may reach: those the recordings show, plus any an override has served since.
  const knownPods = new Set<string>();
  const notePods = (body: unknown): void => {
    if (typeof body !== 'object' || body === null || Buffer.isBuffer(body)) return;
    const { kind, items } = body as { kind?: unknown; items?: unknown };
    const pods = kind === 'Pod' ? [body] : kind === 'PodList' && Array.isArray(items) ? (items as unknown[]) : [];
    for (const pod of pods) {
      const metadata = (pod as { metadata?: { name?: unknown; namespace?: unknown } } | null)?.metadata;
      if (typeof metadata?.name === 'string' && typeof metadata.namespace === 'string') knownPods.add(`${metadata.namespace}/${metadata.name}`);
    }
  };
  for (const { exchange } of candidates) {
    if (exchange.status < 300 && exchange.response.endsWith('.json')) notePods(loadFixture(exchange.response));
  }

  const requests: KubeRequest[] = [];
  const unmatched: KubeRequest[] = [];
  const overrides: Override[] = [];
  const targets = new Set<Duplex>();
  let tempDir: string | undefined;

  const reportUnmatched = (request: KubeRequest): void => {
    unmatched.push(request);
    log(`fake-kube-api: unmatched ${request.method} ${request.path} (${request.user ?? 'no user'})${request.note === undefined ? '' : `: ${request.note}`}`);
  };

  const overrideMatches = (override: Override, request: KubeRequest): boolean => {
    if (override.method !== '*' && override.method.toUpperCase() !== request.method) return false;
    if (override.path instanceof RegExp) return override.path.test(request.path);
    if (!override.path.includes('?')) return override.path === request.pathname;
    const url = new URL(override.path, 'http://override');
    return url.pathname === request.pathname && isDeepStrictEqual(canonicalQuery(url.searchParams), canonicalQuery(request.query));
  };

  /** The recorded exchange for this request as `user`, or a reason it has none. */
  const findRecorded = (request: KubeRequest, user: KubeUser): { exchange?: RecordedExchange; note?: string } => {
    const query = canonicalQuery(request.query);
    const same = candidates.filter(
      (candidate) =>
        candidate.exchange.method === request.method &&
        candidate.exchange.user === user &&
        candidate.pathname === request.pathname &&
        isDeepStrictEqual(candidate.query, query),
    );
    if (same.length === 0) return {};
    const writes = same.filter((candidate) => candidate.exchange.request !== undefined);
    // Authorization comes before the server reads the body: a recorded 403 answers any body.
    if (writes.length === 0 || writes.every((candidate) => candidate.exchange.status === 403)) return { exchange: same[0]!.exchange };
    // A recorded write only answers a write the server would have read the same way: same media type.
    const sameType = writes.filter((candidate) => mediaType(candidate.exchange.contentType) === mediaType(request.contentType));
    if (sameType.length === 0) {
      return { note: `recorded with content-type ${writes[0]!.exchange.contentType}, received ${request.contentType ?? 'none'}` };
    }
    const exact = sameType.find((candidate) => isDeepStrictEqual(candidate.requestBody, request.body));
    if (exact !== undefined) return { exchange: exact.exchange };
    // One recording answers whatever body the client built (remocal's pod need not be the recorded one); when
    // several were recorded the body is what chose the answer, so a body matching none matches nothing.
    if (sameType.length === 1) {
      request.note = `body differs from ${sameType[0]!.exchange.request}`;
      return { exchange: sameType[0]!.exchange };
    }
    return { note: `body matches none of ${sameType.map((candidate) => candidate.exchange.request).join(', ')}` };
  };

  const answer = async (request: KubeRequest): Promise<KubeResponse> => {
    if (request.user === null) {
      request.answeredBy = 'unauthorized';
      return { status: 401, body: unauthorizedBody };
    }
    for (const override of [...overrides].reverse()) {
      if (!overrideMatches(override, request)) continue;
      const response = await override.handler(request);
      if (response !== undefined) {
        request.answeredBy = 'override';
        if (response.status < 300) notePods(response.body);
        return response;
      }
    }
    const found = findRecorded(request, request.user);
    if (found.exchange !== undefined) {
      request.answeredBy = found.exchange.name;
      return recorded(found.exchange.name);
    }
    const info = parseResourcePath(request.pathname);
    if (request.user === 'dev-alice' && found.note === undefined) {
      const verb = info === null ? '' : rbacVerb(request.method, info, request.query);
      if (!aliceMay(request.method, info, verb)) {
        request.answeredBy = 'rbac';
        request.note = 'dev-alice lacks this permission (fixtures README)';
        return { status: 403, body: info === null ? forbiddenPathBody('dev-alice', request.method, request.pathname) : forbiddenBody('dev-alice', verb, info) };
      }
      // What she may read reads the same as admin's recording of it.
      const asAdmin = findRecorded(request, 'admin');
      if (asAdmin.exchange !== undefined) {
        request.answeredBy = asAdmin.exchange.name;
        request.note = `admin's recording; dev-alice may ${verb || 'read'} this`;
        return recorded(asAdmin.exchange.name);
      }
    }
    if (found.note !== undefined) request.note = found.note;
    request.answeredBy = null;
    reportUnmatched(request);
    return { status: 404, body: notFoundBody(info) };
  };

  const send = (response: ServerResponse, reply: KubeResponse): void => {
    if (reply.stream !== undefined) {
      // No Content-Length: Node then sends the body chunked, one chunk per write, as the server streams a watch.
      response.writeHead(reply.status, { 'Content-Type': reply.contentType ?? 'application/json', 'Cache-Control': 'no-cache, private', ...reply.headers });
      response.flushHeaders();
      reply.stream(response);
      return;
    }
    const body =
      reply.body === undefined ? Buffer.alloc(0)
      : Buffer.isBuffer(reply.body) ? reply.body
      : typeof reply.body === 'string' ? Buffer.from(reply.body)
      : Buffer.from(JSON.stringify(reply.body));
    response.writeHead(reply.status, {
      'Content-Type': reply.contentType ?? 'application/json',
      'Content-Length': String(body.length),
      'Cache-Control': 'no-cache, private',
      ...reply.headers,
    });
    response.end(body);
  };

  const describe = (incoming: IncomingMessage, rawBody: string): KubeRequest => {
    const url = new URL(incoming.url ?? '/', 'http://fake');
    const contentType = incoming.headers['content-type'];
    return {
      method: (incoming.method ?? 'GET').toUpperCase(),
      path: incoming.url ?? '/',
      pathname: url.pathname,
      query: url.searchParams,
      user: userFor(incoming.headers),
      contentType,
      headers: incoming.headers,
      body: parseBody(rawBody, contentType),
      rawBody,
      answeredBy: null,
      status: undefined,
    };
  };

  let aggregated: AggregatedBackend | undefined;
  const aggregatedHere = (request: KubeRequest): boolean =>
    aggregated !== undefined && (request.pathname === `/apis/${aggregated.group}` || request.pathname.startsWith(`/apis/${aggregated.group}/`));

  const server = createServer((incoming, response) => {
    const chunks: Buffer[] = [];
    incoming.on('data', (chunk: Buffer) => chunks.push(chunk));
    incoming.on('end', () => {
      const request = describe(incoming, Buffer.concat(chunks).toString('utf8'));
      requests.push(request);
      if (aggregatedHere(request)) {
        if (request.user === null) {
          request.answeredBy = 'unauthorized';
          request.status = 401;
          send(response, { status: 401, body: unauthorizedBody });
          return;
        }
        request.answeredBy = 'aggregated';
        aggregated!.request(request as KubeRequest & { user: KubeUser }, incoming, Buffer.concat(chunks), response);
        return;
      }
      answer(request).then(
        (reply) => {
          request.status = reply.status;
          send(response, reply);
        },
        (error: unknown) => {
          // An override that throws is a broken test; make it loud rather than a hung request.
          log(`fake-kube-api: override for ${request.method} ${request.path} threw: ${String(error)}`);
          request.status = 500;
          const message = error instanceof Error ? error.message : String(error);
          send(response, { status: 500, body: { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason: 'InternalError', code: 500 } });
        },
      );
    });
  });

  const wss = new WebSocketServer({
    noServer: true,
    // The v1.23 kubelet speaks v4 of the channel protocol; client-node offers v5 first, and a 1.23 server ignores it.
    handleProtocols: (protocols) => (protocols.has('v4.channel.k8s.io') ? 'v4.channel.k8s.io' : false),
  });

  const refuseUpgrade = (socket: Duplex, request: KubeRequest, status: number, body: object): void => {
    request.status = status;
    const text = JSON.stringify(body);
    socket.end(
      `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(text)}\r\nConnection: close\r\n\r\n${text}`,
    );
  };

  server.on('upgrade', (incoming: IncomingMessage, socket: Duplex, head: Buffer) => {
    const request = describe(incoming, '');
    requests.push(request);
    socket.on('error', () => socket.destroy());
    if (request.user === null) {
      request.answeredBy = 'unauthorized';
      refuseUpgrade(socket, request, 401, unauthorizedBody);
      return;
    }
    if (aggregatedHere(request)) {
      request.answeredBy = 'aggregated';
      aggregated!.upgrade(request as KubeRequest & { user: KubeUser }, incoming, socket, head);
      return;
    }
    const match = /^\/api\/v1\/namespaces\/([^/]+)\/pods\/([^/]+)\/portforward$/.exec(request.pathname);
    const info = parseResourcePath(request.pathname);
    if (match === null || info === null) {
      reportUnmatched(request);
      refuseUpgrade(socket, request, 404, notFoundBody(info));
      return;
    }
    const namespace = decodeURIComponent(match[1]!);
    const pod = decodeURIComponent(match[2]!);
    // A websocket connect is a GET, so RBAC asks for `get pods/portforward` (the SSAR recording shows alice
    // lacks even `create`).
    if (request.user === 'dev-alice') {
      request.answeredBy = 'rbac';
      refuseUpgrade(socket, request, 403, forbiddenBody('dev-alice', 'get', info));
      return;
    }
    if (!knownPods.has(`${namespace}/${pod}`)) {
      request.note = 'no recording shows this pod';
      reportUnmatched(request);
      refuseUpgrade(socket, request, 404, notFoundBody({ ...info, subresource: undefined }));
      return;
    }
    const ports = request.query.getAll('ports').flatMap((value) => value.split(',')).map((value) => Number(value));
    if (ports.length === 0 || ports.some((port) => !Number.isInteger(port) || port < 1 || port > 65535)) {
      request.answeredBy = 'portforward';
      refuseUpgrade(socket, request, 400, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: 'query parameter "ports" is required', reason: 'BadRequest', code: 400 });
      return;
    }
    const offered = (incoming.headers['sec-websocket-protocol'] ?? '').split(',').map((part) => part.trim());
    if (!offered.includes('v4.channel.k8s.io')) {
      request.note = `offered subprotocols: ${offered.join(', ')}`;
      reportUnmatched(request);
      refuseUpgrade(socket, request, 400, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: 'this fake speaks only v4.channel.k8s.io', reason: 'BadRequest', code: 400 });
      return;
    }
    request.answeredBy = 'portforward';
    request.status = 101;
    wss.handleUpgrade(incoming, socket, head, (ws) => forward(ws, namespace, pod, ports));
  });

  const forward = (ws: WebSocket, namespace: string, pod: string, ports: number[]): void => {
    const streams = new Map<number, Duplex>();
    const pending = new Map<number, Buffer[]>();
    const sendOn = (channel: number, data: Buffer): void => {
      if (ws.readyState === ws.OPEN) ws.send(Buffer.concat([Buffer.from([channel]), data]));
    };
    ws.on('message', (data: RawData, isBinary: boolean) => {
      const message = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
      if (!isBinary || message.length < 1) return;
      const channel = message[0]!;
      // Odd channels are the error channels; the kubelet ignores what a client writes there.
      if (channel % 2 === 1 || channel / 2 >= ports.length) return;
      const index = channel / 2;
      const target = streams.get(index);
      if (target !== undefined) target.write(message.subarray(1));
      else pending.get(index)?.push(message.subarray(1));
    });
    ws.on('close', () => {
      for (const target of streams.values()) target.end();
      streams.clear();
    });
    ws.on('error', () => ws.terminate());
    ports.forEach((port, index) => {
      const portBytes = Buffer.alloc(2);
      portBytes.writeUInt16LE(port);
      sendOn(index * 2, portBytes);
      sendOn(index * 2 + 1, portBytes);
      pending.set(index, []);
      const fail = (error: unknown): void => {
        sendOn(index * 2 + 1, Buffer.from(portForwardError(port, pod, error)));
        ws.close();
      };
      if (options.portForward === undefined) {
        fail(new Error('the fake API server was started without a portForward handler'));
        return;
      }
      options.portForward(namespace, pod, port).then(
        (target) => {
          if (ws.readyState !== ws.OPEN) {
            target.destroy();
            return;
          }
          targets.add(target);
          streams.set(index, target);
          for (const chunk of pending.get(index) ?? []) target.write(chunk);
          pending.delete(index);
          target.on('data', (chunk: Buffer | string) => sendOn(index * 2, Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk)));
          target.on('end', () => ws.close());
          target.on('error', (error) => {
            fail(error);
            target.destroy();
          });
          target.on('close', () => {
            targets.delete(target);
            ws.close();
          });
        },
        fail,
      );
    });
  };

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const url = `http://127.0.0.1:${port}`;

  return {
    url,
    port,
    exchanges,
    requests,
    unmatched,
    override(method, path, handler) {
      const entry: Override = { method, path, handler };
      overrides.push(entry);
      return () => {
        const at = overrides.indexOf(entry);
        if (at >= 0) overrides.splice(at, 1);
      };
    },
    recorded,
    aggregate(backend) {
      aggregated = backend;
      return () => {
        if (aggregated === backend) aggregated = undefined;
      };
    },
    kubeconfig(user, namespace = 'shop') {
      tempDir ??= mkdtempSync(join(tmpdir(), 'remocal-fake-kube-'));
      const short = user === 'admin' ? 'admin' : 'alice';
      const file = join(tempDir, `kubeconfig-${short}-${namespace}.yaml`);
      writeFileSync(
        file,
        [
          'apiVersion: v1',
          'kind: Config',
          'clusters:',
          '- name: fake',
          '  cluster:',
          `    server: ${url}`,
          // client-node 1.4 refuses an http:// server unless TLS verification is off (there is no TLS to verify).
          '    insecure-skip-tls-verify: true',
          'users:',
          `- name: ${user}`,
          '  user:',
          `    token: ${kubeTokens[user]}`,
          'contexts:',
          `- name: fake-${short}`,
          '  context:',
          '    cluster: fake',
          `    user: ${user}`,
          `    namespace: ${namespace}`,
          `current-context: fake-${short}`,
          '',
        ].join('\n'),
        { mode: 0o600 },
      );
      return file;
    },
    async close() {
      for (const client of wss.clients) client.terminate();
      for (const target of targets) target.destroy();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      wss.close();
      if (tempDir !== undefined) rmSync(tempDir, { recursive: true, force: true });
    },
  };
}
