// The agent's second way to reach its client: a TCP listener (on the Kubernetes platform the CLI comes in
// through a port-forward to 127.0.0.1:<port> in the pod) instead of stdio.
//
// Anything in the pod can reach that port, so every connection must first prove it holds the session's private key
// (protocol/agent-auth.ts); a connection that fails is dropped and the agent keeps waiting. The first one that
// succeeds is the agent's only client: the listener closes at once, so nobody can connect after it.

import { createServer, isIPv6, type Server, type Socket } from 'node:net';
import type { Logger } from '../core/log.js';
import { AGENT_AUTH_MAGIC, AGENT_PROOF_BYTES, AUTH_ACCEPTED, newNonce, proofMatches } from '../protocol/agent-auth.js';

export const DEFAULT_AUTH_TIMEOUT_MS = 10_000;

export interface ListenAddress {
  host: string;
  port: number;
}

/** `127.0.0.1:7000`, `[::1]:7000`; port 0 lets the kernel choose (the listening line says which). */
export function parseListenAddress(text: string): ListenAddress | null {
  const match = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text);
  if (match === null) return null;
  const port = Number(match[3]);
  if (port > 65_535) return null;
  return { host: (match[1] ?? match[2])!, port };
}

export function formatListenAddress(address: ListenAddress): string {
  return isIPv6(address.host) ? `[${address.host}]:${address.port}` : `${address.host}:${address.port}`;
}

export interface AcceptOptions extends ListenAddress {
  /** The session's Ed25519 public key; the client proves it holds the private key. */
  publicKey: string;
  log: Logger;
  /** Without a client by then, the agent gives up: a session whose CLI died before connecting leaves nothing. */
  ttlMs: number;
  /** How long one connection may take to send its proof. */
  authTimeoutMs?: number;
  /** Called once, with the address really bound. */
  onListening?: (address: ListenAddress) => void;
}

/**
 * Listens until one connection proves it holds the session's private key, and resolves with that socket (AUTH_ACCEPTED already
 * written, the listener closed), or with null when the ttl passes first. Rejects if it cannot listen at all.
 *
 * Bytes the client sent after its proof (its hello, typically in the same segment) stay in the socket's buffer
 * and reach the first 'data' listener: the proof is taken with read(n), which consumes exactly n bytes.
 */
export function acceptOneClient(options: AcceptOptions): Promise<Socket | null> {
  const { log, publicKey } = options;
  const authTimeoutMs = options.authTimeoutMs ?? DEFAULT_AUTH_TIMEOUT_MS;
  const pending = new Set<Socket>();
  let settled = false;

  return new Promise<Socket | null>((resolve, reject) => {
    const server: Server = createServer({ noDelay: true }, (socket) => {
      if (settled) {
        socket.destroy();
        return;
      }
      pending.add(socket);
      const peer = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
      void authenticate(socket, publicKey, authTimeoutMs).then((failure) => {
        pending.delete(socket);
        if (settled) {
          socket.destroy();
          return;
        }
        if (failure !== null) {
          log.warn({ peer, reason: failure }, 'a connection failed to authenticate; still waiting for the client');
          socket.destroy();
          return;
        }
        socket.write(Buffer.of(AUTH_ACCEPTED));
        log.info({ peer }, 'client authenticated');
        finish(socket);
      });
    });

    const ttlTimer = setTimeout(() => finish(null), options.ttlMs);

    function finish(client: Socket | null): void {
      settled = true;
      clearTimeout(ttlTimer);
      server.close();
      // Half-done attempts from others would otherwise hold their 10 s; none of them can become the client now.
      for (const socket of pending) socket.destroy();
      pending.clear();
      resolve(client);
    }

    server.once('error', (error) => {
      if (settled) return;
      settled = true;
      clearTimeout(ttlTimer);
      reject(error);
    });
    server.listen({ host: options.host, port: options.port }, () => {
      const bound = server.address();
      const port = typeof bound === 'object' && bound !== null ? bound.port : options.port;
      options.onListening?.({ host: options.host, port });
    });
  });
}

/** null when the peer proved it holds the session's private key, else why not. */
export async function authenticate(socket: Socket, publicKey: string, timeoutMs: number): Promise<string | null> {
  // A reset from a prober must not become an uncaught 'error' (the read below sees the close). It stays on: the
  // accepted socket has no other listener until the link takes it over.
  socket.on('error', () => undefined);
  const nonce = newNonce();
  socket.write(Buffer.concat([AGENT_AUTH_MAGIC, nonce]));
  const proof = await readExactly(socket, AGENT_PROOF_BYTES, timeoutMs);
  if (proof === 'timeout') return `no proof within ${timeoutMs} ms`;
  if (proof === 'closed') return 'closed before sending a proof';
  return proofMatches(publicKey, nonce, proof) ? null : 'wrong proof';
}

function readExactly(socket: Socket, bytes: number, timeoutMs: number): Promise<Buffer | 'timeout' | 'closed'> {
  return new Promise((resolve) => {
    const done = (result: Buffer | 'timeout' | 'closed'): void => {
      clearTimeout(timer);
      socket.off('readable', onReadable);
      socket.off('end', onClosed);
      socket.off('close', onClosed);
      resolve(result);
    };
    // read(n) returns null until n bytes are buffered, and then exactly n of them; at the end of the stream it
    // returns what is left, which is too short.
    const onReadable = (): void => {
      const chunk = socket.read(bytes) as Buffer | null;
      if (chunk === null) return;
      done(chunk.length === bytes ? chunk : 'closed');
    };
    const onClosed = (): void => done('closed');
    const timer = setTimeout(() => done('timeout'), timeoutMs);
    socket.on('readable', onReadable);
    socket.once('end', onClosed);
    socket.once('close', onClosed);
  });
}

/**
 * Calls onIdle once when nothing at all has arrived on the socket for idleMs. The client pings every few
 * seconds, so silence means the link is gone even where TCP cannot tell (a port-forward whose far end vanished
 * keeps the local connection open). Reads socket.bytesRead instead of listening for 'data', which would start
 * the socket flowing before the link has its own listener. Returns a function that stops watching.
 */
export function watchIdle(socket: Socket, idleMs: number, onIdle: () => void): () => void {
  let lastBytes = socket.bytesRead;
  let lastArrival = Date.now();
  const timer = setInterval(
    () => {
      const bytes = socket.bytesRead;
      const now = Date.now();
      if (bytes !== lastBytes) {
        lastBytes = bytes;
        lastArrival = now;
        return;
      }
      if (now - lastArrival >= idleMs) {
        stop();
        onIdle();
      }
    },
    Math.max(50, Math.min(1000, Math.floor(idleMs / 4))),
  );
  timer.unref();
  const stop = (): void => clearInterval(timer);
  socket.once('close', stop);
  return stop;
}
