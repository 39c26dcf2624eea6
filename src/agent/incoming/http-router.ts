// Routes one stolen client connection request by request: each request goes to the subscriber whose filter
// matches it (a developer's app; several developers may share one port, each with a filter), the others to the
// original server, and the client sees one ordinary HTTP/1.1 connection. Who gets a request is asked per
// request, so a session that subscribes or leaves while the connection is open takes effect on its next one.
//
// Parsing is Node's own: the client socket is handed to a private http.Server with `emit('connection')`, and
// each upstream is an http.request over a socket we supply. Node's server already answers pipelined requests
// in request order (a response waits until the one before it has finished), so ordering needs no code here.
// Bodies are piped, never collected, and headers travel as rawHeaders so their case and order survive.
//
// h2c with prior knowledge (the client opens with `PRI * HTTP/2.0`) is routed per stream: a node:http2 server
// takes the client, the non-matching streams go over one HTTP/2 session to the original server, and each
// matching stream is sent to the app as one HTTP/1.1 request, the protocol a local app surely speaks.
// Anything else is passed through untouched.

import http from 'node:http';
import http2 from 'node:http2';
import type net from 'node:net';
import { Duplex } from 'node:stream';
import type { FilterableRequest } from './http-filter.js';

export interface HttpRequestHead extends FilterableRequest {
  httpVersion: string;
}

/** Where matching requests go: one developer's app. The same object for the same subscription, always. */
export interface HttpSubscriber {
  /**
   * A fresh byte stream to the app. On HTTP/1.1 it is kept alive for this client's following requests to the
   * same subscriber; an h2c stream or an upgraded connection gets one of its own.
   */
  open(head: HttpRequestHead): Promise<Duplex>;
}

export interface HttpRouterOptions {
  /** The subscriber this request goes to, or undefined for the original server. */
  route(request: HttpRequestHead): HttpSubscriber | undefined;
  /** A new connection to the original server; reused for the following non-matching requests. */
  connectOriginal(): Promise<Duplex>;
  /**
   * True once the session is over and the agent only finishes what it accepted: every further response says
   * `Connection: close`, so the client ends the connection itself instead of racing a close from us.
   */
  draining?(): boolean;
  /** What to do with a connection that is not HTTP/1.x; by default its bytes are piped to `connectOriginal()`. */
  passThrough?(client: net.Socket): void;
  /**
   * Pass the connection through when the client sends nothing for this long, for protocols where the server
   * speaks first. Unset: wait for the client forever, because an idle preconnected HTTP client must not lose
   * its filtering.
   */
  passThroughSilentClientAfterMs?: number;
}

const HTTP1_REQUEST_LINE = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+ \S+ HTTP\/1\.[01]\r?\n/;
const H2C_PREFACE_FIRST_LINE = 'PRI * HTTP/2.0\r\n';
/** The request line must fit in this much for the connection to count as HTTP. */
const MAX_PEEK_BYTES = 16 * 1024;

export const LOCAL_APP_DID_NOT_ANSWER = 'remocal: the local app did not answer this request (is it listening?)\n';
export const ORIGINAL_DID_NOT_ANSWER = 'remocal: the original server did not answer this request\n';

export function routeHttpConnection(client: net.Socket, options: HttpRouterOptions): void {
  client.on('error', () => client.destroy());
  const passThrough = options.passThrough ?? ((socket: net.Socket) => pipeToOriginal(socket, options.connectOriginal));
  void peekFirstLine(client, options.passThroughSilentClientAfterMs).then((firstBytes) => {
    if (client.destroyed) return;
    const text = firstBytes?.toString('latin1') ?? '';
    if (HTTP1_REQUEST_LINE.test(text)) {
      serveHttp1(client, options);
    } else if (text.startsWith(H2C_PREFACE_FIRST_LINE)) {
      serveH2c(client, options);
    } else {
      passThrough(client);
    }
  });
}

/**
 * Reads until the first line is complete (or enough bytes to say it is not HTTP), then puts every byte back
 * with `unshift` so that whoever takes the connection next sees it from the start.
 */
function peekFirstLine(client: net.Socket, silenceMs: number | undefined): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    let peeked = Buffer.alloc(0);
    let timer: NodeJS.Timeout | undefined;
    const finish = (result: Buffer | undefined) => {
      client.off('readable', onReadable);
      client.off('end', onEnd);
      client.off('close', onEnd);
      if (timer !== undefined) clearTimeout(timer);
      if (peeked.length > 0) client.unshift(peeked);
      resolve(result);
    };
    const onEnd = () => finish(peeked);
    const onReadable = () => {
      let chunk: Buffer | null;
      while ((chunk = client.read() as Buffer | null) !== null) peeked = Buffer.concat([peeked, chunk]);
      if (peeked.includes(0x0a) || peeked.length >= MAX_PEEK_BYTES) finish(peeked);
    };
    if (silenceMs !== undefined) timer = setTimeout(() => peeked.length === 0 && finish(undefined), silenceMs);
    client.on('readable', onReadable);
    client.on('end', onEnd);
    client.on('close', onEnd);
  });
}

function pipeToOriginal(client: net.Socket, connectOriginal: () => Promise<Duplex>): void {
  connectOriginal().then(
    (original) => splice(client, original),
    () => client.destroy(),
  );
}

/** Joins two byte streams both ways; either side closing or failing closes the other. */
function splice(a: Duplex, b: Duplex): void {
  a.pipe(b);
  b.pipe(a);
  const closeBoth = () => {
    a.destroy();
    b.destroy();
  };
  a.on('error', closeBoth);
  b.on('error', closeBoth);
  a.on('close', () => b.destroy());
  b.on('close', () => a.destroy());
}

function isSafeWithoutBody(head: HttpRequestHead): boolean {
  if (!['GET', 'HEAD', 'OPTIONS'].includes(head.method.toUpperCase())) return false;
  for (let i = 0; i + 1 < head.rawHeaders.length; i += 2) {
    const name = head.rawHeaders[i]!.toLowerCase();
    if (name === 'transfer-encoding' || (name === 'content-length' && head.rawHeaders[i + 1] !== '0')) return false;
  }
  return true;
}

/** The upstream's headers with its Connection header replaced by `Connection: close`. */
function withConnectionClose(rawHeaders: readonly string[]): string[] {
  const kept: string[] = [];
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    if (rawHeaders[i]!.toLowerCase() === 'connection' || rawHeaders[i]!.toLowerCase() === 'keep-alive') continue;
    kept.push(rawHeaders[i]!, rawHeaders[i + 1]!);
  }
  kept.push('Connection', 'close');
  return kept;
}

function serveHttp1(client: net.Socket, options: HttpRouterOptions): void {
  const server = http.createServer({
    // Timeouts are the original server's business: ours must never be the reason a connection ends.
    keepAliveTimeout: 0,
    headersTimeout: 0,
    requestTimeout: 0,
    // Requests without Host reach the original server as they are; it decides whether to refuse them.
    requireHostHeader: false,
    maxHeaderSize: 64 * 1024,
  });
  server.keepAliveTimeout = 0;
  server.maxHeadersCount = 0;
  server.timeout = 0;

  // One connection to the original server, kept alive and shared by this client's non-matching requests;
  // maxSockets 1 queues them in order, as pipelined requests on one connection must be.
  const originalAgent = agentOver(() => options.connectOriginal());
  // Likewise one connection to each subscriber's app, kept alive across this client's requests to it: a new
  // stream and a new connection to the app per request cost more than the request itself.
  const subscriberAgents = new Map<HttpSubscriber, { agent: http.Agent; head: HttpRequestHead | undefined }>();
  const subscriberAgent = (subscriber: HttpSubscriber, head: HttpRequestHead): http.Agent => {
    let entry = subscriberAgents.get(subscriber);
    if (entry === undefined) {
      const created: { agent: http.Agent; head: HttpRequestHead | undefined } = { agent: agentOver(() => subscriber.open(created.head!)), head };
      entry = created;
      subscriberAgents.set(subscriber, entry);
    }
    // The stream is opened lazily by the agent, for the request that needs it: it is announced with that head.
    entry.head = head;
    return entry.agent;
  };
  client.on('close', () => {
    originalAgent.destroy();
    for (const { agent } of subscriberAgents.values()) agent.destroy();
    server.close();
  });

  const onRequest = (request: http.IncomingMessage, response: http.ServerResponse) => {
    response.sendDate = false;
    const head = requestHead(request);
    const subscriber = options.route(head);
    if (subscriber !== undefined) {
      forwardRequest(request, response, head, subscriberAgent(subscriber, head), LOCAL_APP_DID_NOT_ANSWER, options.draining);
    } else {
      forwardRequest(request, response, head, originalAgent, ORIGINAL_DID_NOT_ANSWER, options.draining);
    }
  };
  server.on('request', onRequest);
  // With these listeners Node neither answers `100 Continue` nor `417` itself: the upstream decides.
  server.on('checkContinue', onRequest);
  server.on('checkExpectation', onRequest);

  const onUpgrade = (request: http.IncomingMessage, socket: Duplex, upgradeHead: Buffer) => {
    // Node leaves the upgraded socket flowing with no 'data' listener: bytes the client sends before the upstream
    // is connected would be dropped.
    socket.pause();
    const head = requestHead(request);
    const subscriber = options.route(head);
    const toSubscriber = subscriber !== undefined;
    const open = toSubscriber ? subscriber.open(head) : options.connectOriginal();
    open.then(
      (upstream) => {
        upstream.write(serializeHead(head));
        if (upgradeHead.length > 0) upstream.write(upgradeHead);
        splice(socket, upstream);
      },
      () => {
        const body = toSubscriber ? LOCAL_APP_DID_NOT_ANSWER : ORIGINAL_DID_NOT_ANSWER;
        socket.end(`HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
      },
    );
  };
  // After an upgrade (or CONNECT) the bytes are no longer HTTP/1.1, so the rest of the connection goes whole.
  server.on('upgrade', onUpgrade);
  server.on('connect', onUpgrade);

  server.emit('connection', client);
}

function requestHead(request: http.IncomingMessage): HttpRequestHead {
  return { method: request.method ?? 'GET', path: request.url ?? '/', httpVersion: request.httpVersion, rawHeaders: request.rawHeaders };
}

function serializeHead(head: HttpRequestHead): string {
  let text = `${head.method} ${head.path} HTTP/${head.httpVersion}\r\n`;
  for (let index = 0; index + 1 < head.rawHeaders.length; index += 2) text += `${head.rawHeaders[index]}: ${head.rawHeaders[index + 1]}\r\n`;
  return `${text}\r\n`;
}

/**
 * An agent with one kept-alive connection, opened by `open`; maxSockets 1 queues requests in order, as
 * pipelined requests on one connection must be.
 */
function agentOver(open: () => Promise<Duplex>): http.Agent {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1, maxFreeSockets: 1 });
  agent.createConnection = (_options, callback) => {
    open().then(
      (connection) => callback?.(null, socketLike(connection)),
      (error: unknown) => callback?.(error instanceof Error ? error : new Error(String(error)), undefined as unknown as net.Socket),
    );
    return undefined as unknown as net.Socket;
  };
  return agent;
}

/**
 * Node's HTTP client treats the connection it is given as a net.Socket and calls its socket methods (keep-alive,
 * no-delay, timeouts) along the way. An upstream may be any byte stream (the app's is a link stream, whose real
 * socket is on the other side), and those calls then have nothing to do.
 */
export function socketLike(connection: Duplex): net.Socket {
  for (const method of ['setKeepAlive', 'setNoDelay', 'setTimeout', 'ref', 'unref'] as const) {
    if (typeof (connection as unknown as Record<string, unknown>)[method] !== 'function') {
      Object.defineProperty(connection, method, { value: () => connection, configurable: true });
    }
  }
  return connection as net.Socket;
}

function forwardRequest(
  request: http.IncomingMessage,
  response: http.ServerResponse,
  head: HttpRequestHead,
  agent: http.Agent,
  failureBody: string,
  closing?: () => boolean,
): void {
  let answered = false;
  const fail = () => {
    if (answered) return;
    answered = true;
    if (response.headersSent) {
      // Part of the response is already on its way: the client can only learn of the failure by the close.
      response.destroy();
      return;
    }
    // Drain what is left of the request body so that the next request on this connection parses.
    request.unpipe();
    request.resume();
    response.writeHead(502, 'Bad Gateway', ['Content-Type', 'text/plain; charset=utf-8', 'Content-Length', String(Buffer.byteLength(failureBody))]);
    response.end(failureBody);
  };

  let retried = false;
  const send = (connection: http.RequestOptions) => {
    const outgoing = http.request({ method: head.method, path: head.path, headers: [...head.rawHeaders] as unknown as http.OutgoingHttpHeaders, setHost: false, ...connection });
    let responded = false;
    outgoing.on('error', () => {
      // A kept-alive connection the upstream closed just as this request went out: nothing was processed,
      // and a safe request without a body can go again on a new connection, as browsers and undici do.
      if (outgoing.reusedSocket && !responded && !retried && isSafeWithoutBody(head)) {
        retried = true;
        send(connection);
        return;
      }
      fail();
    });
    // The client went away mid-exchange: a half-sent request must not stay on the kept-alive upstream.
    response.on('close', () => {
      if (!response.writableFinished) outgoing.destroy();
    });
    outgoing.on('continue', () => response.writeContinue());
    outgoing.on('response', (upstreamResponse) => {
      responded = true;
      const rawHeaders = closing?.() ? withConnectionClose(upstreamResponse.rawHeaders) : upstreamResponse.rawHeaders;
      response.writeHead(upstreamResponse.statusCode ?? 502, upstreamResponse.statusMessage, rawHeaders);
      upstreamResponse.pipe(response, { end: false });
      upstreamResponse.on('end', () => {
        answered = true;
        if (upstreamResponse.rawTrailers.length > 0) response.addTrailers(pairs(upstreamResponse.rawTrailers));
        response.end();
      });
      upstreamResponse.on('error', fail);
      upstreamResponse.on('aborted', fail);
    });
    request.pipe(outgoing, { end: false });
    request.on('end', () => {
      if (request.rawTrailers.length > 0) outgoing.addTrailers(pairs(request.rawTrailers));
      outgoing.end();
    });
  };

  send({ agent });
}

function pairs(flat: readonly string[]): [string, string][] {
  const result: [string, string][] = [];
  for (let index = 0; index + 1 < flat.length; index += 2) result.push([flat[index]!, flat[index + 1]!]);
  return result;
}

/** Headers that describe one HTTP/1.1 connection and that HTTP/2 forbids (RFC 9113 §8.2.2). */
const CONNECTION_SPECIFIC = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade']);

function serveH2c(client: net.Socket, options: HttpRouterOptions): void {
  // Node's HTTP/2 server sets no idle timeout by default, so none is imposed on the client.
  const server = http2.createServer();
  let originalSession: http2.ClientHttp2Session | undefined;
  const original = (): http2.ClientHttp2Session => {
    if (originalSession === undefined || originalSession.closed || originalSession.destroyed) {
      const session = http2.connect('http://original.invalid', {
        createConnection: () => {
          // http2.connect wants the socket at once, so the connection is opened behind a stand-in stream.
          const placeholder = new DeferredSocket();
          options.connectOriginal().then(
            (socket) => placeholder.attach(socket),
            (error: unknown) => placeholder.destroy(error instanceof Error ? error : new Error(String(error))),
          );
          return placeholder as unknown as net.Socket;
        },
      });
      session.on('error', () => session.destroy());
      originalSession = session;
    }
    return originalSession;
  };
  server.on('sessionError', () => client.destroy());
  client.on('close', () => {
    originalSession?.destroy();
    server.close();
  });

  server.on('stream', (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, flags: number, rawHeaders: string[]) => {
    stream.on('error', () => stream.destroy());
    const head: HttpRequestHead = {
      method: String(headers[':method'] ?? 'GET'),
      path: String(headers[':path'] ?? '/'),
      httpVersion: '2.0',
      rawHeaders: withoutPseudoHeaders(rawHeaders, String(headers[':authority'] ?? '')),
    };
    const subscriber = options.route(head);
    if (subscriber !== undefined) streamToSubscriber(stream, head, subscriber);
    else streamToOriginal(stream, headers, (flags & http2.constants.NGHTTP2_FLAG_END_STREAM) !== 0, original());
  });
  server.emit('connection', client);
}

/** The HTTP/1.1 view of an HTTP/2 request's headers: pseudo-headers out, `:authority` as Host. */
function withoutPseudoHeaders(rawHeaders: readonly string[], authority: string): string[] {
  const result: string[] = [];
  let hasHost = false;
  for (let index = 0; index + 1 < rawHeaders.length; index += 2) {
    const name = rawHeaders[index]!;
    if (name.startsWith(':')) continue;
    if (name === 'host') hasHost = true;
    result.push(name, rawHeaders[index + 1]!);
  }
  return hasHost || authority === '' ? result : ['host', authority, ...result];
}

function streamToOriginal(downstream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, requestHasNoBody: boolean, session: http2.ClientHttp2Session): void {
  const requestHeaders: http2.OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) if (value !== undefined) requestHeaders[name] = value;
  let upstream: http2.ClientHttp2Stream;
  try {
    upstream = session.request(requestHeaders, { endStream: requestHasNoBody, waitForTrailers: !requestHasNoBody });
  } catch {
    respondH2Failure(downstream, ORIGINAL_DID_NOT_ANSWER);
    return;
  }
  let requestTrailers: http2.OutgoingHttpHeaders = {};
  downstream.on('trailers', (trailers: http2.IncomingHttpHeaders) => {
    requestTrailers = withoutPseudo(trailers);
  });
  upstream.on('wantTrailers', () => upstream.sendTrailers(requestTrailers));
  downstream.pipe(upstream);
  downstream.on('close', () => upstream.close(downstream.rstCode));

  let responseTrailers: http2.OutgoingHttpHeaders = {};
  upstream.on('response', (responseHeaders) => {
    downstream.respond(withoutPseudo(responseHeaders, [':status']), { waitForTrailers: true });
    downstream.on('wantTrailers', () => downstream.sendTrailers(responseTrailers));
    upstream.pipe(downstream);
  });
  upstream.on('trailers', (trailers: http2.IncomingHttpHeaders) => {
    responseTrailers = withoutPseudo(trailers);
  });
  upstream.on('error', () => respondH2Failure(downstream, ORIGINAL_DID_NOT_ANSWER));
  upstream.on('close', () => {
    if (!downstream.headersSent) respondH2Failure(downstream, ORIGINAL_DID_NOT_ANSWER);
    else if (!downstream.writableEnded && upstream.rstCode !== http2.constants.NGHTTP2_NO_ERROR) downstream.close(upstream.rstCode);
  });
}

function streamToSubscriber(downstream: http2.ServerHttp2Stream, head: HttpRequestHead, subscriber: HttpSubscriber): void {
  subscriber.open(head).then(
    (stream) => {
      const streamAgent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      streamAgent.createConnection = () => socketLike(stream);
      const done = () => {
        streamAgent.destroy();
        stream.destroy();
      };
      downstream.on('close', done);
      const outgoing = http.request({ agent: streamAgent, method: head.method, path: head.path, headers: [...head.rawHeaders] as unknown as http.OutgoingHttpHeaders, setHost: false });
      outgoing.on('error', () => respondH2Failure(downstream, LOCAL_APP_DID_NOT_ANSWER));
      outgoing.on('response', (response) => {
        const responseHeaders: http2.OutgoingHttpHeaders = { ':status': response.statusCode ?? 502 };
        for (let index = 0; index + 1 < response.rawHeaders.length; index += 2) {
          const name = response.rawHeaders[index]!.toLowerCase();
          if (CONNECTION_SPECIFIC.has(name)) continue;
          const previous = responseHeaders[name];
          const value = response.rawHeaders[index + 1]!;
          responseHeaders[name] = previous === undefined ? value : ([] as string[]).concat(previous as string | string[], value);
        }
        downstream.respond(responseHeaders, { waitForTrailers: true });
        downstream.on('wantTrailers', () => downstream.sendTrailers(response.rawTrailers.length > 0 ? Object.fromEntries(pairs(response.rawTrailers).map(([name, value]) => [name.toLowerCase(), value])) : {}));
        response.pipe(downstream);
        response.on('error', () => downstream.close(http2.constants.NGHTTP2_INTERNAL_ERROR));
      });
      downstream.pipe(outgoing, { end: false });
      downstream.on('trailers', (trailers: http2.IncomingHttpHeaders) => outgoing.addTrailers(withoutPseudo(trailers) as Record<string, string>));
      downstream.on('end', () => outgoing.end());
    },
    () => respondH2Failure(downstream, LOCAL_APP_DID_NOT_ANSWER),
  );
}

function withoutPseudo(headers: http2.IncomingHttpHeaders, keep: string[] = []): http2.OutgoingHttpHeaders {
  const result: http2.OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || (name.startsWith(':') && !keep.includes(name)) || CONNECTION_SPECIFIC.has(name)) continue;
    result[name] = value;
  }
  return result;
}

function respondH2Failure(stream: http2.ServerHttp2Stream, body: string): void {
  if (stream.destroyed || stream.closed) return;
  if (stream.headersSent) {
    stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
    return;
  }
  stream.respond({ ':status': 502, 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body) });
  stream.end(body);
  // The rest of the request body has nowhere to go.
  stream.resume();
}

/**
 * A Duplex that stands in for a socket until the real one is connected: writes wait, then both directions are
 * joined to it.
 */
class DeferredSocket extends Duplex {
  private target: Duplex | undefined;
  private pendingWrite: (() => void) | undefined;

  attach(target: Duplex): void {
    this.target = target;
    target.on('data', (chunk: Buffer) => {
      if (!this.push(chunk)) target.pause();
    });
    target.on('end', () => this.push(null));
    target.on('error', (error) => this.destroy(error));
    target.on('close', () => this.destroy());
    const resume = this.pendingWrite;
    this.pendingWrite = undefined;
    resume?.();
  }

  override _read(): void {
    this.target?.resume();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    if (this.target === undefined) {
      this.pendingWrite = () => this._write(chunk, _encoding, callback);
      return;
    }
    this.target.write(chunk, callback);
  }

  override _final(callback: (error?: Error | null) => void): void {
    if (this.target === undefined) {
      this.pendingWrite = () => this._final(callback);
      return;
    }
    this.target.end(callback);
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.target?.destroy();
    callback(error);
  }
}
