// The one process that runs inside the demo pod (see DESIGN §5). It plays three parts at once:
//   1. the cluster DNS server, on the pod's DNS service IP, UDP and TCP port 53, answering from a fixed zone;
//   2. a dependency service ("orders-api") on the pod-only service IPs: HTTP, a raw TCP echo (and a UDP echo
//      on the same ports), and a port that refuses;
//   3. the target app, an HTTP server on 0.0.0.0:8080 whose traffic later work mirrors or steals.
// The builder (pod.ts) starts it inside the pod's network, mount and UTS namespaces, with the pod's own
// environment, and passes its configuration as one JSON argument so that environment stays exactly as given.
//
// It talks to the builder in JSON lines on stdout (`PodEvent`): one `listening` per server, then `ready`;
// `failed` if a server cannot start. It exits on SIGTERM/SIGINT, and also when stdin closes, which means the
// process that built the pod is gone and nothing would ever stop it otherwise.

import dgram from 'node:dgram';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import os from 'node:os';
import dnsPacket from 'dns-packet';

// --- The contract with pod.ts (type-only imports there, so importing it never starts this program) ------

export interface DnsZoneRecords {
  A?: string[];
  AAAA?: string[];
  SRV?: { priority: number; weight: number; port: number; target: string }[];
  TXT?: string[];
  MX?: { preference: number; exchange: string }[];
  PTR?: string[];
}

export interface PodProcessConfig {
  dns: {
    address: string;
    port: number;
    /** The domain this server is authoritative for; its SOA goes into negative answers. */
    zone: string;
    /** Lower-case fully qualified names without the trailing dot. */
    records: Record<string, DnsZoneRecords>;
  };
  api: {
    /** Every pod-only address the dependency service listens on (the api IP, the hosts-only IP, IPv6…). */
    addresses: string[];
    httpPort: number;
    /** Raw TCP echo ports (one stands in for the database of DATABASE_URL). */
    echoPorts: number[];
  };
  target: { host: string; port: number };
}

export type PodEvent =
  | { event: 'listening'; service: string; address: string; port: number }
  | { event: 'ready'; pid: number; hostname: string }
  | { event: 'failed'; service: string; address: string; port: number; message: string; code?: string }
  | {
      event: 'dns-query';
      transport: 'udp' | 'tcp';
      name: string;
      type: string;
      rcode: 'NOERROR' | 'NXDOMAIN' | 'FORMERR';
      answers: number;
      client: string;
    }
  | { event: 'http-request'; service: 'api' | 'target'; method: string; path: string; remoteAddress: string }
  | { event: 'stopping'; signal: string };

// --- Output ------------------------------------------------------------------------------------------------

function emit(event: PodEvent): void {
  process.stdout.write(`${JSON.stringify(event)}\n`);
}

// When the builder dies its end of the pipe goes away; a write then fails with EPIPE, which must not crash us
// before the stdin watch below gets to shut down cleanly.
process.stdout.on('error', () => {});

// --- DNS -----------------------------------------------------------------------------------------------------

const RCODE_NXDOMAIN = 3;
const RCODE_FORMERR = 1;
const ANSWER_TTL = 5;

function soaRecord(zone: string): dnsPacket.Answer {
  return {
    type: 'SOA',
    name: zone,
    ttl: ANSWER_TTL,
    data: {
      mname: `ns.dns.${zone}`,
      rname: `hostmaster.${zone}`,
      serial: 1,
      refresh: 7200,
      retry: 1800,
      expire: 86400,
      minimum: ANSWER_TTL,
    },
  };
}

function answersFor(name: string, type: string, records: DnsZoneRecords): dnsPacket.Answer[] {
  const base = { name, ttl: ANSWER_TTL };
  switch (type) {
    case 'A':
      return (records.A ?? []).map((data) => ({ ...base, type: 'A', data }));
    case 'AAAA':
      return (records.AAAA ?? []).map((data) => ({ ...base, type: 'AAAA', data }));
    case 'SRV':
      return (records.SRV ?? []).map((data) => ({ ...base, type: 'SRV', data }));
    case 'TXT':
      return (records.TXT ?? []).map((data) => ({ ...base, type: 'TXT', data }));
    case 'MX':
      return (records.MX ?? []).map((data) => ({ ...base, type: 'MX', data }));
    case 'PTR':
      return (records.PTR ?? []).map((data) => ({ ...base, type: 'PTR', data }));
    case 'ANY':
      return ['A', 'AAAA', 'SRV', 'TXT', 'MX', 'PTR'].flatMap((one) => answersFor(name, one, records));
    default:
      return [];
  }
}

/** Answers one query; never throws, a packet we cannot read gets FORMERR. */
function answerDnsQuery(
  config: PodProcessConfig['dns'],
  message: Buffer,
  transport: 'udp' | 'tcp',
  client: string,
): Buffer | undefined {
  let query: dnsPacket.DecodedPacket;
  try {
    query = dnsPacket.decode(message);
  } catch {
    // Without a readable header there is not even an id to answer to.
    if (message.length < 2) return undefined;
    const id = message.readUInt16BE(0);
    emit({ event: 'dns-query', transport, name: '', type: '', rcode: 'FORMERR', answers: 0, client });
    return dnsPacket.encode({ type: 'response', id, flags: RCODE_FORMERR });
  }
  const question = query.questions?.[0];
  if (question === undefined) {
    emit({ event: 'dns-query', transport, name: '', type: '', rcode: 'FORMERR', answers: 0, client });
    return dnsPacket.encode({ type: 'response', id: query.id ?? 0, flags: RCODE_FORMERR });
  }
  // DNS names are case-insensitive, and resolvers may randomise the case of queries (0x20 encoding); the
  // question goes back exactly as asked.
  const name = question.name.toLowerCase().replace(/\.$/, '');
  const records = config.records[name];
  const answers = records === undefined ? [] : answersFor(question.name, question.type, records);
  const inZone = name === config.zone || name.endsWith(`.${config.zone}`);
  // A name we know with no record of the asked type is NODATA (NOERROR, empty), not NXDOMAIN: that is what
  // lets getaddrinfo take the A answer when the AAAA query comes back empty.
  const rcode = records === undefined ? RCODE_NXDOMAIN : 0;
  emit({
    event: 'dns-query',
    transport,
    name,
    type: question.type,
    rcode: rcode === 0 ? 'NOERROR' : 'NXDOMAIN',
    answers: answers.length,
    client,
  });
  return dnsPacket.encode({
    type: 'response',
    id: query.id ?? 0,
    // Authoritative for the cluster zone, like CoreDNS; recursion is not offered, so nothing ever leaves the
    // pod: a name outside the zone is simply NXDOMAIN.
    flags:
      (inZone ? dnsPacket.AUTHORITATIVE_ANSWER : 0) |
      (query.flag_rd ? dnsPacket.RECURSION_DESIRED : 0) |
      rcode,
    questions: [question],
    answers,
    authorities: answers.length === 0 && inZone ? [soaRecord(config.zone)] : [],
  });
}

function startDnsUdp(config: PodProcessConfig['dns']): Promise<dgram.Socket> {
  const family = net.isIPv6(config.address) ? 'udp6' : 'udp4';
  const socket = dgram.createSocket(family);
  socket.on('message', (message, remote) => {
    const response = answerDnsQuery(config, message, 'udp', remote.address);
    if (response !== undefined) socket.send(response, remote.port, remote.address);
  });
  return listenOnce('dns-udp', config.address, config.port, socket, () => socket.bind(config.port, config.address));
}

function startDnsTcp(config: PodProcessConfig['dns']): Promise<net.Server> {
  const server = net.createServer((socket) => {
    // DNS over TCP frames each message with a two-byte length; a client may pipeline several queries.
    let pending = Buffer.alloc(0);
    socket.on('data', (chunk) => {
      pending = Buffer.concat([pending, chunk]);
      while (pending.length >= 2) {
        const length = pending.readUInt16BE(0);
        if (pending.length < 2 + length) break;
        const message = pending.subarray(2, 2 + length);
        pending = pending.subarray(2 + length);
        const response = answerDnsQuery(config, message, 'tcp', socket.remoteAddress ?? '');
        if (response === undefined) continue;
        const frame = Buffer.alloc(2 + response.length);
        frame.writeUInt16BE(response.length, 0);
        response.copy(frame, 2);
        socket.write(frame);
      }
    });
    socket.on('error', () => {});
  });
  return listenOnce('dns-tcp', config.address, config.port, server, () => server.listen(config.port, config.address));
}

// --- The dependency service and the target app --------------------------------------------------------------

/** Headers the dependency service echoes: enough to see what reached it, and stable enough to assert on. */
function selectedHeaders(headers: http.IncomingHttpHeaders): Record<string, string | string[]> {
  const selected: Record<string, string | string[]> = {};
  for (const [key, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    if (['host', 'user-agent', 'content-type', 'content-length'].includes(key) || key.startsWith('x-')) {
      selected[key] = value;
    }
  }
  return selected;
}

const MAX_ECHOED_BODY = 64 * 1024;

function readBody(request: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    request.on('data', (chunk: Buffer) => {
      // Only the start is echoed; the rest is still read so that big uploads complete.
      if (size < MAX_ECHOED_BODY) chunks.push(chunk);
      size += chunk.length;
    });
    request.on('end', () => resolve(Buffer.concat(chunks).toString('utf8').slice(0, MAX_ECHOED_BODY)));
    request.on('error', reject);
  });
}

function jsonHandler(
  service: 'api' | 'target',
  describe: (request: http.IncomingMessage, body: string) => Record<string, unknown>,
): http.RequestListener {
  return (request, response) => {
    const remoteAddress = request.socket.remoteAddress ?? '';
    emit({ event: 'http-request', service, method: request.method ?? '', path: request.url ?? '', remoteAddress });
    readBody(request).then(
      (body) => {
        const payload = JSON.stringify(describe(request, body));
        response.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) });
        response.end(payload);
      },
      () => response.destroy(),
    );
  };
}

function startApiHttp(address: string, port: number): Promise<http.Server> {
  const server = http.createServer(
    jsonHandler('api', (request, body) => ({
      from: 'orders-api',
      message: 'pod-only service: reachable only from inside the pod',
      podOnly: true,
      hostname: os.hostname(),
      method: request.method,
      path: request.url,
      headers: selectedHeaders(request.headers),
      body,
      localAddress: request.socket.localAddress,
      localPort: request.socket.localPort,
      remoteAddress: request.socket.remoteAddress,
    })),
  );
  return listenOnce('api-http', address, port, server, () => server.listen(port, address));
}

function startEcho(address: string, port: number): Promise<net.Server> {
  const server = net.createServer((socket) => {
    socket.on('error', () => {});
    socket.pipe(socket);
  });
  return listenOnce('api-echo', address, port, server, () => server.listen(port, address));
}

/** Answers each datagram with the same bytes, to the sender's address: what a UDP client sees as its peer. */
function startUdpEcho(address: string, port: number): Promise<dgram.Socket> {
  const socket = dgram.createSocket(net.isIPv6(address) ? 'udp6' : 'udp4');
  socket.on('message', (message, remote) => socket.send(message, remote.port, remote.address));
  return listenOnce('api-udp-echo', address, port, socket, () => socket.bind(port, address));
}

function startTarget(config: PodProcessConfig['target']): Promise<net.Server> {
  const handler = jsonHandler('target', (request, body) => ({
    from: 'target',
    hostname: os.hostname(),
    pid: process.pid,
    method: request.method,
    path: request.url,
    headers: request.headers,
    body,
    remoteAddress: request.socket.remoteAddress,
  }));
  // Like many real services (gRPC gateways, say), the target speaks HTTP/1.1 and h2c with prior knowledge on
  // one port, so that HTTP/2 clients can be tested against it too.
  const http1 = http.createServer(handler);
  const h2c = http2.createServer(handler as unknown as (request: http2.Http2ServerRequest, response: http2.Http2ServerResponse) => void);
  const server = net.createServer((socket) => {
    socket.on('error', () => {});
    socket.once('readable', () => {
      const head: Buffer | null = socket.read();
      if (head === null) return;
      socket.unshift(head);
      (head.toString('latin1').startsWith('PRI * HTTP/2.0') ? h2c : http1).emit('connection', socket);
    });
  });
  return listenOnce('target-http', config.host, config.port, server, () => server.listen(config.port, config.host));
}

/** Starts one listener and reports it, so a readiness timeout can name the server that never came up. */
function listenOnce<T extends net.Server | dgram.Socket>(
  service: string,
  address: string,
  port: number,
  server: T,
  listen: () => void,
): Promise<T> {
  return new Promise((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException) => {
      emit({ event: 'failed', service, address, port, message: error.message, ...(error.code ? { code: error.code } : {}) });
      reject(error);
    };
    server.once('error', onError);
    server.once('listening', () => {
      server.off('error', onError);
      server.on('error', () => {});
      emit({ event: 'listening', service, address, port });
      resolve(server);
    });
    listen();
  });
}

// --- Main ----------------------------------------------------------------------------------------------------

function parseConfig(argv: readonly string[]): PodProcessConfig {
  const raw = argv[0];
  if (raw === undefined) throw new Error('usage: pod-process <config-json>');
  return JSON.parse(raw) as PodProcessConfig;
}

async function main(): Promise<void> {
  const config = parseConfig(process.argv.slice(2));
  const started: (net.Server | dgram.Socket)[] = [];
  let stopping = false;

  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    emit({ event: 'stopping', signal });
    for (const server of started) {
      if (server instanceof http.Server) server.closeAllConnections();
      server.close();
    }
    process.stdin.destroy();
    // Echo and DNS-over-TCP sockets may still be open; a stopped pod must not linger because of a client.
    // This program is an entry point of its own, so ending the process here is its call to make.
    setTimeout(() => process.exit(), 500).unref();
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  process.stdin.on('end', () => stop('stdin closed'));
  process.stdin.on('error', () => stop('stdin closed'));
  process.stdin.resume();

  const track = <T extends net.Server | dgram.Socket>(promise: Promise<T>) =>
    promise.then((server) => {
      started.push(server);
      return server;
    });
  const listeners: Promise<unknown>[] = [
    track(startDnsUdp(config.dns)),
    track(startDnsTcp(config.dns)),
    ...config.api.addresses.flatMap((address) => [
      track(startApiHttp(address, config.api.httpPort)),
      ...config.api.echoPorts.map((port) => track(startEcho(address, port))),
      ...config.api.echoPorts.map((port) => track(startUdpEcho(address, port))),
    ]),
    track(startTarget(config.target)),
  ];
  const results = await Promise.allSettled(listeners);
  if (results.some((result) => result.status === 'rejected')) {
    // Each failure was already reported as a `failed` event naming the server.
    process.exitCode = 1;
    stop('startup failed');
    return;
  }
  emit({ event: 'ready', pid: process.pid, hostname: os.hostname() });
}

main().catch((error: unknown) => {
  process.stderr.write(`pod-process: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exitCode = 1;
});
