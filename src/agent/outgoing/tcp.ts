// Outgoing TCP from inside the target: connect, then splice the socket to a link stream. Names are resolved
// with the target's resolver (the agent's own node would read the host's /etc/resolv.conf), and each address
// is tried in order, as a client inside the target would.

import { isIP, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { splice } from '../../core/splice.js';
import type { RemoteFailure, Result, SocketAddress, TcpConnectRequest, TcpConnectResult } from '../../protocol/messages.js';

export interface TcpConnectDeps {
  resolve(host: string): Promise<Result<{ addresses: { address: string }[] }>>;
  acceptStream(id: number): Duplex;
  /** Why the session may not dial `address` (a policy), or null. */
  refuse?(address: string, port: number): RemoteFailure | null;
}

export async function connectOutgoing(request: TcpConnectRequest, deps: TcpConnectDeps): Promise<Result<TcpConnectResult>> {
  let addresses: string[];
  if (isIP(request.host) !== 0) {
    addresses = [request.host];
  } else {
    const resolved = await deps.resolve(request.host);
    if (!resolved.ok) return resolved;
    addresses = resolved.value.addresses.map((entry) => entry.address);
  }
  let failure: RemoteFailure = { code: 'ENOTFOUND', message: `getaddrinfo ENOTFOUND ${request.host}`, syscall: 'getaddrinfo' };
  for (const address of addresses) {
    const refused = deps.refuse?.(address, request.port) ?? null;
    if (refused !== null) {
      failure = refused;
      continue;
    }
    const attempt = await connectOnce(address, request.port);
    if ('failure' in attempt) {
      failure = attempt.failure;
      continue;
    }
    const socket = attempt.socket;
    const result: TcpConnectResult = { local: socketAddress(socket, 'local'), remote: socketAddress(socket, 'remote') };
    splice(socket, deps.acceptStream(request.stream));
    return { ok: true, value: result };
  }
  return { ok: false, error: failure };
}

function connectOnce(address: string, port: number): Promise<{ socket: Socket } | { failure: RemoteFailure }> {
  return new Promise((resolve) => {
    // Half-open allowed: the app decides when its side ends, exactly as its own socket would in the target.
    const socket = new Socket({ allowHalfOpen: true });
    const onError = (error: NodeJS.ErrnoException) => {
      socket.destroy();
      resolve({
        failure: {
          code: error.code ?? 'ECONNREFUSED',
          message: error.message,
          ...(error.errno === undefined ? {} : { errno: error.errno }),
          syscall: error.syscall ?? 'connect',
        },
      });
    };
    socket.once('error', onError);
    socket.connect({ host: address, port }, () => {
      socket.off('error', onError);
      resolve({ socket });
    });
  });
}

function socketAddress(socket: Socket, side: 'local' | 'remote'): SocketAddress {
  const address = side === 'local' ? socket.localAddress : socket.remoteAddress;
  const port = side === 'local' ? socket.localPort : socket.remotePort;
  const family = side === 'local' ? (isIP(address ?? '') === 6 ? 'IPv6' : 'IPv4') : socket.remoteFamily;
  return { address: address ?? '', port: port ?? 0, family: family === 'IPv6' ? 'IPv6' : 'IPv4' };
}
