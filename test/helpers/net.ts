// Small clients and probes the end-to-end tests share. They only reach loopback and the fixture pod's addresses.

import http from 'node:http';
import { connect, createServer } from 'node:net';

/** A port nothing listens on right now, on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

/** Sends `text`, half-closes, and resolves with everything that came back once the connection closed. */
export function echoThrough(port: number, text: string, host = '127.0.0.1'): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, host);
    let data = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (data += chunk));
    socket.on('close', () => resolve(data));
    socket.on('error', reject);
    socket.end(text);
  });
}

export interface HttpAnswer {
  status: number;
  body: string;
}

/** One request on a fresh connection (no keep-alive agent), the whole body as text. */
export function httpRequest(options: { host: string; port: number; path: string; method?: string; headers?: Record<string, string>; timeoutMs?: number }): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const { host, port, path, method = 'GET', headers = {}, timeoutMs = 10_000 } = options;
    const req = http.request({ host, port, path, method, headers, agent: false, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer from ${host}:${port}${path} within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

/** Who answered, for apps that answer `{"from": …}`; the raw body otherwise. */
export function answeredFrom(body: string): string {
  try {
    return (JSON.parse(body) as { from: string }).from;
  } catch {
    return body;
  }
}
