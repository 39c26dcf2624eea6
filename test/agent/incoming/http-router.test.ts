// routeHttpConnection between a raw-socket client, an "original" server and a "developer app" server, all real
// sockets on 127.0.0.1. The client writes exact bytes so keep-alive, pipelining, chunking and header case are
// what the test says they are, and reads the responses back with a small parser of its own.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { once } from 'node:events';
import v8 from 'node:v8';
import vm from 'node:vm';
import { compileHttpFilter, type HttpFilterConfig } from '../../../src/agent/incoming/http-filter.js';
import { LOCAL_APP_DID_NOT_ANSWER, routeHttpConnection } from '../../../src/agent/incoming/http-router.js';

interface Echo {
  who: string;
  method: string;
  url: string;
  rawHeaders: string[];
  body: string;
  bodyBytes: number;
  rawTrailers: string[];
  connection: number;
}

const SLOW_READER_PAUSE_EVERY = 512 * 1024;

/** An HTTP server that answers every request with what it received, and echoes upgraded connections. */
async function echoServer(who: string, options: { delayMs?: (request: http.IncomingMessage) => number } = {}) {
  let connections = 0;
  const sockets = new Set<net.Socket>();
  const server = http.createServer((request, response) => {
    const connection = (request.socket as net.Socket & { testId?: number }).testId ?? -1;
    let body = '';
    let bodyBytes = 0;
    let nextPauseAt = SLOW_READER_PAUSE_EVERY;
    request.on('data', (chunk: Buffer) => {
      bodyBytes += chunk.length;
      if (body.length < 4096) body += chunk.toString('latin1');
      // /big is read more slowly than the client sends it, so that a router ignoring backpressure piles it up.
      if (request.url === '/big' && bodyBytes >= nextPauseAt) {
        nextPauseAt += SLOW_READER_PAUSE_EVERY;
        request.pause();
        setTimeout(() => request.resume(), 5);
      }
    });
    request.on('end', () => {
      const echo: Echo = { who, method: request.method!, url: request.url!, rawHeaders: request.rawHeaders, body, bodyBytes, rawTrailers: request.rawTrailers, connection };
      const text = JSON.stringify(echo);
      setTimeout(() => {
        response.writeHead(200, ['X-Answered-By', who, 'X-MiXeD-CaSe', 'kept', 'Content-Type', 'application/json', 'Content-Length', String(Buffer.byteLength(text))]);
        response.end(text);
      }, options.delayMs?.(request) ?? 0);
    });
  });
  server.on('connection', (socket: net.Socket & { testId?: number }) => {
    socket.testId = connections++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  server.on('upgrade', (_request, socket: net.Socket, head: Buffer) => {
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nX-Answered-By: ${who}\r\n\r\n`);
    if (head.length > 0) socket.write(Buffer.concat([Buffer.from(`${who}:`), head]));
    socket.on('data', (chunk: Buffer) => socket.write(Buffer.concat([Buffer.from(`${who}:`), chunk])));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    server,
    port: (server.address() as net.AddressInfo).port,
    connections: () => connections,
    close: () => {
      for (const socket of sockets) socket.destroy();
      server.close();
    },
  };
}

function connect(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.off('error', reject);
      resolve(socket);
    });
    socket.once('error', reject);
  });
}

/** A port on which nothing listens: bound, then closed. */
async function deadPort(): Promise<number> {
  const server = net.createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  server.close();
  await once(server, 'close');
  return port;
}

/** The agent's listener for one redirected port, routing with the given filter. */
async function router(filter: Partial<HttpFilterConfig>, upstreams: { originalPort: number; appPort: number }) {
  const matches = compileHttpFilter(filter as HttpFilterConfig);
  const app = { open: () => connect(upstreams.appPort) };
  const clients = new Set<net.Socket>();
  const server = net.createServer((client) => {
    clients.add(client);
    client.on('close', () => clients.delete(client));
    routeHttpConnection(client, {
      route: (head) => (matches(head) ? app : undefined),
      connectOriginal: () => connect(upstreams.originalPort),
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () => {
      for (const client of clients) client.destroy();
      server.close();
    },
  };
}

interface ParsedResponse {
  status: number;
  rawHeaders: string[];
  body: string;
  trailers: string[];
}

/** Reads responses off a raw socket: Content-Length and chunked bodies, as many as asked for. */
class ResponseReader {
  private buffer = Buffer.alloc(0);
  private waiters: (() => void)[] = [];
  private ended = false;

  constructor(readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.buffer = Buffer.concat([this.buffer, chunk]);
      this.wake();
    });
    socket.on('close', () => {
      this.ended = true;
      this.wake();
    });
  }

  private wake() {
    for (const waiter of this.waiters.splice(0)) waiter();
  }

  private async need(predicate: () => boolean, what: string): Promise<void> {
    const deadline = Date.now() + 10_000;
    while (!predicate()) {
      if (this.ended) throw new Error(`connection closed while waiting for ${what}; have ${JSON.stringify(this.buffer.toString('latin1').slice(0, 300))}`);
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 200);
      });
    }
  }

  private take(length: number): string {
    const text = this.buffer.subarray(0, length).toString('latin1');
    this.buffer = this.buffer.subarray(length);
    return text;
  }

  async line(): Promise<string> {
    await this.need(() => this.buffer.includes('\r\n'), 'a line');
    const line = this.take(this.buffer.indexOf('\r\n') + 2);
    return line.slice(0, -2);
  }

  async bytes(length: number): Promise<string> {
    await this.need(() => this.buffer.length >= length, `${length} bytes`);
    return this.take(length);
  }

  async response(): Promise<ParsedResponse> {
    const statusLine = await this.line();
    const status = Number(statusLine.split(' ')[1]);
    const rawHeaders: string[] = [];
    for (let line = await this.line(); line !== ''; line = await this.line()) {
      const colon = line.indexOf(':');
      rawHeaders.push(line.slice(0, colon), line.slice(colon + 1).trim());
    }
    const header = (name: string) => rawHeaders.find((_, index) => index % 2 === 0 && rawHeaders[index]!.toLowerCase() === name) && rawHeaders[rawHeaders.findIndex((value, index) => index % 2 === 0 && value.toLowerCase() === name) + 1];
    if (status === 101 || status === 100) return { status, rawHeaders, body: '', trailers: [] };
    let body = '';
    const trailers: string[] = [];
    if (header('transfer-encoding')?.toLowerCase() === 'chunked') {
      for (;;) {
        const size = parseInt(await this.line(), 16);
        if (size === 0) break;
        body += await this.bytes(size);
        await this.bytes(2);
      }
      for (let line = await this.line(); line !== ''; line = await this.line()) {
        const colon = line.indexOf(':');
        trailers.push(line.slice(0, colon), line.slice(colon + 1).trim());
      }
    } else {
      body = await this.bytes(Number(header('content-length') ?? 0));
    }
    return { status, rawHeaders, body, trailers };
  }

  async echo(): Promise<Echo & { response: ParsedResponse }> {
    const response = await this.response();
    assert.equal(response.status, 200, response.body);
    return { ...(JSON.parse(response.body) as Echo), response };
  }
}

async function client(port: number) {
  const socket = await connect(port);
  return { socket, reader: new ResponseReader(socket) };
}

const get = (path: string, extra = '') => `GET ${path} HTTP/1.1\r\nHost: test\r\n${extra}\r\n`;

let original: Awaited<ReturnType<typeof echoServer>>;
let app: Awaited<ReturnType<typeof echoServer>>;
const toClose: { close(): void }[] = [];

before(async () => {
  original = await echoServer('original');
  // The app answers /slow late, so that pipelined answers after it come back first if ordering is wrong.
  app = await echoServer('app', { delayMs: (request) => (request.url === '/slow' ? 150 : 0) });
});

after(() => {
  for (const closable of toClose) closable.close();
  original.close();
  app.close();
});

async function routed(filter: Partial<HttpFilterConfig>, appPort = app.port) {
  const route = await router(filter, { originalPort: original.port, appPort });
  toClose.push(route);
  const connection = await client(route.port);
  toClose.push({ close: () => connection.socket.destroy() });
  return connection;
}

test('one keep-alive connection mixes matching and non-matching requests by header, path and method (any_of)', async () => {
  const { socket, reader } = await routed({ any_of: [{ header: '^x-route: app$' }, { path: '^/to-app' }, { method: 'DELETE' }] });
  const originalConnectionsBefore = original.connections();
  const sent: [string, string][] = [
    [get('/a'), 'original'],
    [get('/b', 'X-Route: app\r\n'), 'app'],
    [get('/c', 'X-Route: elsewhere\r\n'), 'original'],
    [get('/to-app?x=1'), 'app'],
    [`DELETE /d HTTP/1.1\r\nHost: test\r\n\r\n`, 'app'],
    [`POST /e HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\n\r\nhello`, 'original'],
  ];
  for (const [bytes, who] of sent) {
    socket.write(bytes);
    const echo = await reader.echo();
    assert.equal(echo.who, who, bytes);
  }
  // The non-matching requests shared one connection to the original server.
  assert.equal(original.connections() - originalConnectionsBefore, 1);
});

test('all_of routes only requests matching every part', async () => {
  const { socket, reader } = await routed({ all_of: [{ header: '^x-user: alice$' }, { method: 'POST' }] });
  socket.write(`POST /1 HTTP/1.1\r\nHost: t\r\nX-User: alice\r\nContent-Length: 0\r\n\r\n`);
  assert.equal((await reader.echo()).who, 'app');
  socket.write(get('/2', 'X-User: alice\r\n'));
  assert.equal((await reader.echo()).who, 'original');
  socket.write(`POST /3 HTTP/1.1\r\nHost: t\r\nX-User: bob\r\nContent-Length: 0\r\n\r\n`);
  assert.equal((await reader.echo()).who, 'original');
});

test('pipelined requests in one write are answered in request order', async () => {
  const { socket, reader } = await routed({ path_filter: '^/slow$' });
  socket.write(get('/first') + get('/slow') + get('/third') + get('/slow') + get('/fifth'));
  const answers = [];
  for (let index = 0; index < 5; index += 1) {
    const echo = await reader.echo();
    answers.push(`${echo.who} ${echo.url}`);
  }
  assert.deepEqual(answers, ['original /first', 'app /slow', 'original /third', 'app /slow', 'original /fifth']);
});

test('a chunked request body and its trailers reach the app and the original server', async () => {
  const { socket, reader } = await routed({ header_filter: '^x-route: app$' });
  const chunked = (extra: string) =>
    `POST /upload HTTP/1.1\r\nHost: t\r\n${extra}Transfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n` +
    `5\r\nhello\r\n6\r\n world\r\n0\r\nX-Checksum: abc123\r\n\r\n`;
  for (const [extra, who] of [['X-Route: app\r\n', 'app'], ['', 'original']] as const) {
    socket.write(chunked(extra));
    const echo = await reader.echo();
    assert.equal(echo.who, who);
    assert.equal(echo.body, 'hello world');
    assert.deepEqual(echo.rawTrailers, ['X-Checksum', 'abc123']);
  }
});

test('header case and order are kept both ways', async () => {
  const { socket, reader } = await routed({ header_filter: '^x-route: app$' });
  const headers = 'X-Route: app\r\nx-lower: 1\r\nX-UPPER: 2\r\nX-MiXeD: 3\r\nX-MiXeD: 4\r\n';
  for (const extra of [headers, headers.replace('X-Route: app', 'X-Route: no')]) {
    socket.write(get('/case', extra));
    const echo = await reader.echo();
    assert.deepEqual(echo.rawHeaders.slice(2, 12), extra.split('\r\n').filter(Boolean).flatMap((line) => line.split(': ')));
    assert.ok(echo.response.rawHeaders.includes('X-MiXeD-CaSe'), JSON.stringify(echo.response.rawHeaders));
    assert.ok(echo.response.rawHeaders.includes('X-Answered-By'));
  }
});

test('app down: matching requests get 502, non-matching ones on the same connection still succeed', async () => {
  const { socket, reader } = await routed({ path_filter: '^/app' }, await deadPort());
  socket.write(get('/before'));
  assert.equal((await reader.echo()).who, 'original');
  socket.write(`POST /app HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\nhello world`);
  const failed = await reader.response();
  assert.equal(failed.status, 502);
  assert.equal(failed.body, LOCAL_APP_DID_NOT_ANSWER);
  socket.write(get('/after') + get('/app') + get('/last'));
  assert.equal((await reader.echo()).url, '/after');
  assert.equal((await reader.response()).status, 502);
  assert.equal((await reader.echo()).url, '/last');
});

// Memory that survives a full collection: a buffered body would be live, while streamed chunks are garbage
// (RSS alone also counts garbage the collector has not reached yet, so it says little in one process). Chunks
// in flight between the four sockets account for a few MiB even when sending straight to the server.
v8.setFlagsFromString('--expose-gc');
const collectGarbage = vm.runInNewContext('gc') as () => void;
function liveBytes(): number {
  collectGarbage();
  const usage = process.memoryUsage();
  return usage.arrayBuffers + usage.heapUsed;
}

test('a 20 MiB body is streamed, not buffered', async () => {
  const { socket, reader } = await routed({ header_filter: '^x-route: app$' });
  const size = 20 * 1024 * 1024;
  const chunk = Buffer.alloc(64 * 1024, 'x');
  for (const extra of ['X-Route: app\r\n', '']) {
    const before = liveBytes();
    let peak = before;
    socket.write(`POST /big HTTP/1.1\r\nHost: t\r\n${extra}Content-Length: ${size}\r\n\r\n`);
    for (let sent = 0; sent < size; sent += chunk.length) {
      if (!socket.write(chunk)) await once(socket, 'drain');
      if (sent % (2 * 1024 * 1024) === 0) peak = Math.max(peak, liveBytes());
    }
    peak = Math.max(peak, liveBytes());
    const echo = await reader.echo();
    assert.equal(echo.bodyBytes, size);
    const growth = peak - before;
    assert.ok(growth < size / 2, `live memory grew by ${(growth / 1024 / 1024).toFixed(1)} MiB while sending ${size / 1024 / 1024} MiB`);
  }
});

test('a matching websocket upgrade moves the rest of the connection to the app; a non-matching one passes through', async () => {
  for (const [path, who] of [['/ws-app', 'app'], ['/ws-other', 'original']] as const) {
    const { socket, reader } = await routed({ path_filter: '^/ws-app' });
    socket.write(get(path, 'Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n'));
    const switching = await reader.response();
    assert.equal(switching.status, 101);
    assert.ok(switching.rawHeaders.includes(who));
    socket.write('ping\n');
    assert.equal(await reader.bytes(`${who}:ping\n`.length), `${who}:ping\n`);
    socket.write('GET /not-http-anymore HTTP/1.1\r\n\r\n');
    const echoed = `${who}:GET /not-http-anymore HTTP/1.1\r\n\r\n`;
    assert.equal(await reader.bytes(echoed.length), echoed);
  }
});

test('a connection that is not HTTP passes through untouched', async () => {
  const tcpEcho = net.createServer((socket) => socket.pipe(socket)).listen(0, '127.0.0.1');
  await once(tcpEcho, 'listening');
  toClose.push(tcpEcho);
  const route = await router({ path_filter: '/' }, { originalPort: (tcpEcho.address() as net.AddressInfo).port, appPort: app.port });
  toClose.push(route);
  const { socket, reader } = await client(route.port);
  toClose.push({ close: () => socket.destroy() });
  socket.write('\x00\x01binary\nmore');
  assert.equal(await reader.bytes(13), '\x00\x01binary\nmore');
});

test('a client that stays silent is passed through after passThroughSilentClientAfterMs, for server-first protocols', async () => {
  const banner = net.createServer((socket) => socket.end('220 banner from the original server\r\n')).listen(0, '127.0.0.1');
  await once(banner, 'listening');
  toClose.push(banner);
  const route = net.createServer((client) =>
    routeHttpConnection(client, {
      route: () => ({ open: () => connect(app.port) }),
      connectOriginal: () => connect((banner.address() as net.AddressInfo).port),
      passThroughSilentClientAfterMs: 50,
    }),
  );
  route.listen(0, '127.0.0.1');
  await once(route, 'listening');
  toClose.push(route);
  const { socket, reader } = await client((route.address() as net.AddressInfo).port);
  toClose.push({ close: () => socket.destroy() });
  assert.equal(await reader.line(), '220 banner from the original server');
});

test('Expect: 100-continue is answered by the upstream, not by the router', async () => {
  const { socket, reader } = await routed({ header_filter: '^x-route: app$' });
  for (const [extra, who] of [['X-Route: app\r\n', 'app'], ['', 'original']] as const) {
    socket.write(`POST /continue HTTP/1.1\r\nHost: t\r\n${extra}Expect: 100-continue\r\nContent-Length: 4\r\n\r\n`);
    assert.equal(await reader.line(), 'HTTP/1.1 100 Continue');
    assert.equal(await reader.line(), '');
    socket.write('body');
    const echo = await reader.echo();
    assert.equal(echo.who, who);
    assert.equal(echo.body, 'body');
  }
});
