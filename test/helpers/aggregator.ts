// The kube-aggregator, played by the fake API server for one APIService, from the facts in OPERATOR-NOTES:
// - the caller is authenticated by the API server (its token), and RBAC on the aggregated resources is checked
//   before anything is proxied (a WebSocket GET needs `get`, a POST `create`); a refusal is the API server's
//   own 403 Status, worded as the recorded ones;
// - the request goes to the backend over TLS, verified against the APIService's caBundle, presenting the front
//   proxy's client certificate, with the caller in X-Remote-User and X-Remote-Group (one header per group),
//   the caller's own X-Remote-* and Authorization removed;
// - an upgrade is dialled with HTTP/1.1 and then spliced byte for byte;
// - a backend that cannot be reached gets the plain-text 503 the aggregator writes itself.

import { request as httpsRequest } from 'node:https';
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { connect as tlsConnect } from 'node:tls';
import type { AggregatedBackend, KubeRequest, KubeUser } from './kube-api.js';

/** What RBAC is asked about one aggregated request. */
export interface AggregatedAccess {
  user: KubeUser;
  verb: string;
  namespace: string | undefined;
  resource: string;
  subresource: string | undefined;
  name: string | undefined;
}

export interface AggregatorOptions {
  group: string;
  /** https://127.0.0.1:PORT of the backend. */
  backend: string;
  /** The APIService's caBundle. */
  caBundle: string;
  /** The front proxy's client certificate (requestheader-client-ca signed it). */
  clientCert: { cert: string; key: string };
  /** Groups of each user, as the authenticator of the API server gives them. */
  groups: Record<KubeUser, string[]>;
  /** RBAC on the group's resources; discovery is open to every authenticated user. */
  allows: (access: AggregatedAccess) => boolean;
  /** Where what was proxied is written; a fresh list unless given (one list across an operator's restarts). */
  proxied?: AggregatedAccess[];
}

const HOP_BY_HOP = new Set(['authorization', 'host', 'connection', 'keep-alive', 'transfer-encoding', 'proxy-authorization']);

function forwardedHeaders(headers: IncomingHttpHeaders, user: KubeUser, groups: string[], upgrade: boolean): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || name.startsWith('x-remote-') || HOP_BY_HOP.has(name)) continue;
    out[name] = value;
  }
  if (upgrade) out.connection = 'Upgrade';
  out['X-Remote-User'] = user;
  out['X-Remote-Group'] = groups;
  return out;
}

function access(request: KubeRequest & { user: KubeUser }, upgrade: boolean): AggregatedAccess | null {
  const parts = request.pathname.split('/').filter((part) => part !== '').map(decodeURIComponent);
  // apis, group, version, …
  const rest = parts.slice(3);
  if (rest.length === 0) return null;
  const namespaced = rest[0] === 'namespaces';
  const [resource, name, subresource] = namespaced ? [rest[2], rest[3], rest[4]] : [rest[0], rest[1], rest[2]];
  if (resource === undefined) return null;
  const verb =
    upgrade ? 'get'
    : request.method === 'GET' ? (name === undefined ? (request.query.get('watch') === 'true' ? 'watch' : 'list') : 'get')
    : request.method === 'POST' ? 'create'
    : request.method === 'DELETE' ? (name === undefined ? 'deletecollection' : 'delete')
    : request.method.toLowerCase();
  return { user: request.user, verb, namespace: namespaced ? rest[1] : undefined, resource, subresource, name };
}

function forbidden(group: string, info: AggregatedAccess): string {
  const what = info.subresource === undefined ? info.resource : `${info.resource}/${info.subresource}`;
  const subject = `${info.resource}.${group}${info.name === undefined ? '' : ` "${info.name}"`}`;
  const where = info.namespace === undefined ? 'at the cluster scope' : `in the namespace "${info.namespace}"`;
  return JSON.stringify({
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message: `${subject} is forbidden: User "${info.user}" cannot ${info.verb} resource "${what}" in API group "${group}" ${where}`,
    reason: 'Forbidden',
    details: { ...(info.name === undefined ? {} : { name: info.name }), group, kind: info.resource },
    code: 403,
  });
}

export function aggregator(options: AggregatorOptions): AggregatedBackend & { proxied: AggregatedAccess[] } {
  const backend = new URL(options.backend);
  const tls = { ca: options.caBundle, cert: options.clientCert.cert, key: options.clientCert.key, servername: backend.hostname === '127.0.0.1' ? undefined : backend.hostname };
  const proxied: AggregatedAccess[] = options.proxied ?? [];
  const check = (request: KubeRequest & { user: KubeUser }, upgrade: boolean): { ok: true } | { ok: false; body: string } => {
    const info = access(request, upgrade);
    if (info === null) return { ok: true };
    if (!options.allows(info)) return { ok: false, body: forbidden(options.group, info) };
    proxied.push(info);
    return { ok: true };
  };

  return {
    group: options.group,
    proxied,
    request(request, incoming: IncomingMessage, body: Buffer, response: ServerResponse) {
      const verdict = check(request, false);
      if (!verdict.ok) {
        request.status = 403;
        response.writeHead(403, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(verdict.body) }).end(verdict.body);
        return;
      }
      const outgoing = httpsRequest(
        { host: backend.hostname, port: backend.port, method: request.method, path: request.path, headers: forwardedHeaders(incoming.headers, request.user, options.groups[request.user], false), ...tls },
        (answer) => {
          request.status = answer.statusCode;
          response.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(response);
        },
      );
      outgoing.on('error', (error) => {
        request.status = 503;
        if (response.headersSent) return void response.destroy();
        const text = `error trying to reach service: ${error.message}\n`;
        response.writeHead(503, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(text) }).end(text);
      });
      outgoing.end(body);
    },
    upgrade(request, incoming: IncomingMessage, socket: Duplex, head: Buffer) {
      const verdict = check(request, true);
      if (!verdict.ok) {
        request.status = 403;
        socket.end(`HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(verdict.body)}\r\nConnection: close\r\n\r\n${verdict.body}`);
        return;
      }
      const upstream = tlsConnect({ host: backend.hostname, port: Number(backend.port), ALPNProtocols: ['http/1.1'], ...tls });
      let connected = false;
      upstream.once('error', (error) => {
        if (connected) return;
        const text = `error trying to reach service: ${error.message}\n`;
        socket.end(`HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(text)}\r\nConnection: close\r\n\r\n${text}`);
      });
      upstream.once('secureConnect', () => {
        connected = true;
        const headers = forwardedHeaders(incoming.headers, request.user, options.groups[request.user], true);
        const lines = [`${request.method} ${request.path} HTTP/1.1`, `Host: ${backend.host}`];
        for (const [name, value] of Object.entries(headers)) for (const one of Array.isArray(value) ? value : [value]) lines.push(`${name}: ${one}`);
        upstream.write(`${lines.join('\r\n')}\r\n\r\n`);
        if (head.length > 0) upstream.write(head);
        upstream.pipe(socket);
        socket.pipe(upstream);
        upstream.on('error', () => socket.destroy());
        socket.on('error', () => upstream.destroy());
        upstream.on('close', () => socket.destroy());
        socket.on('close', () => upstream.destroy());
      });
    },
  };
}
