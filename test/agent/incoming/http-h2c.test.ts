// h2c with prior knowledge through routeHttpConnection: one HTTP/2 client session whose streams are routed one
// by one, the matching ones to an HTTP/1.1 app, the others over HTTP/2 to an h2c original server.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { once } from 'node:events';
import { compileHttpFilter, type HttpFilterConfig } from '../../../src/agent/incoming/http-filter.js';
import { LOCAL_APP_DID_NOT_ANSWER, routeHttpConnection } from '../../../src/agent/incoming/http-router.js';

function connect(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => resolve(socket));
    socket.once('error', reject);
  });
}

const portOf = (server: net.Server | http.Server | http2.Http2Server) => (server.address() as net.AddressInfo).port;

let originalSessions = 0;
const original = http2.createServer();
original.on('session', () => (originalSessions += 1));
original.on('stream', (stream, headers) => {
  const chunks: Buffer[] = [];
  stream.on('data', (chunk: Buffer) => chunks.push(chunk));
  stream.on('end', () => {
    stream.respond({ ':status': 200, 'x-answered-by': 'original' }, { waitForTrailers: true });
    stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
    stream.end(`original ${String(headers[':method'])} ${String(headers[':path'])} ${Buffer.concat(chunks).toString()}`);
  });
});

const app = http.createServer((request, response) => {
  const chunks: Buffer[] = [];
  request.on('data', (chunk: Buffer) => chunks.push(chunk));
  request.on('end', () => {
    const delay = request.url === '/slow' ? 100 : 0;
    setTimeout(() => {
      response.writeHead(200, { 'X-Answered-By': 'app', 'X-Saw-Route': String(request.headers['x-route']) });
      response.end(`app ${request.method!} ${request.url!} ${Buffer.concat(chunks).toString()}`);
    }, delay);
  });
});

const routers: net.Server[] = [];
async function router(filter: Partial<HttpFilterConfig>, appPort: number): Promise<number> {
  const matches = compileHttpFilter(filter as HttpFilterConfig);
  const app = { open: () => connect(appPort) };
  const server = net.createServer((client) =>
    routeHttpConnection(client, { route: (head) => (matches(head) ? app : undefined), connectOriginal: () => connect(portOf(original)) }),
  );
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  routers.push(server);
  return portOf(server);
}

const sessions: http2.ClientHttp2Session[] = [];
function request(session: http2.ClientHttp2Session, headers: http2.OutgoingHttpHeaders, body?: string) {
  return new Promise<{ headers: http2.IncomingHttpHeaders; body: string; trailers: http2.IncomingHttpHeaders }>((resolve, reject) => {
    const stream = session.request(headers);
    let responseHeaders: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders = {};
    let text = '';
    stream.on('response', (received) => (responseHeaders = received));
    stream.on('trailers', (received) => (trailers = received));
    stream.on('data', (chunk: Buffer) => (text += chunk.toString()));
    stream.on('end', () => resolve({ headers: responseHeaders, body: text, trailers }));
    stream.on('error', reject);
    stream.end(body);
  });
}

before(async () => {
  original.listen(0, '127.0.0.1');
  app.listen(0, '127.0.0.1');
  await Promise.all([once(original, 'listening'), once(app, 'listening')]);
});

after(() => {
  for (const session of sessions) session.destroy();
  for (const server of routers) server.close();
  original.close();
  app.close();
});

test('h2c streams on one session are routed one by one, concurrently', async () => {
  const port = await router({ any_of: [{ header: '^x-route: app$' }, { path: '^/slow' }] }, portOf(app));
  const session = http2.connect(`http://127.0.0.1:${port}`);
  sessions.push(session);
  const sessionsBefore = originalSessions;
  const [slow, toApp, toOriginal, posted] = await Promise.all([
    request(session, { ':path': '/slow' }),
    request(session, { ':path': '/a', 'x-route': 'app' }),
    request(session, { ':path': '/b', 'x-route': 'other' }),
    request(session, { ':path': '/c', ':method': 'POST' }, 'payload'),
  ]);
  assert.equal(slow.body, 'app GET /slow ');
  assert.equal(toApp.body, 'app GET /a ');
  assert.equal(toApp.headers['x-saw-route'], 'app');
  assert.equal(toOriginal.body, 'original GET /b ');
  assert.equal(toOriginal.trailers['grpc-status'], '0');
  assert.equal(posted.body, 'original POST /c payload');
  assert.equal(originalSessions - sessionsBefore, 1);
});

test('h2c: app down gives 502 on that stream, other streams still reach the original', async () => {
  const dead = net.createServer().listen(0, '127.0.0.1');
  await once(dead, 'listening');
  const deadPort = portOf(dead);
  dead.close();
  const port = await router({ path_filter: '^/app' }, deadPort);
  const session = http2.connect(`http://127.0.0.1:${port}`);
  sessions.push(session);
  const failed = await request(session, { ':path': '/app' });
  assert.equal(failed.headers[':status'], 502);
  assert.equal(failed.body, LOCAL_APP_DID_NOT_ANSWER);
  assert.equal((await request(session, { ':path': '/other' })).body, 'original GET /other ');
});
