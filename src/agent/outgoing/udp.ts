// Outgoing UDP from inside the target: one dgram socket (a "twin") per app socket that sent remotely. The twin
// is bound to an ephemeral port in the target's namespace, so the peer sees the pod as the sender; what comes
// back is reported to the intproxy with its source address. A connected twin is connect(2)ed for real, so the
// kernel drops datagrams from other peers exactly as it would for the app's socket inside the pod.

import dgram from 'node:dgram';
import { isIP } from 'node:net';
import {
  MAX_UDP_DATAGRAM_BYTES,
  type RemoteFailure,
  type Result,
  type UdpCloseRequest,
  type UdpCloseResult,
  type UdpDatagram,
  type UdpOpenRequest,
  type UdpOpenResult,
} from '../../protocol/messages.js';

/** A bound against a misbehaving session: an app needs a handful of sockets, not thousands. */
const MAX_TWINS = 1024;

export class UdpTwins {
  private readonly twins = new Map<number, dgram.Socket>();

  constructor(
    private readonly deliver: (datagram: UdpDatagram) => void,
    /** Why the session may not send to `peer` (a policy), or null; a refused datagram is dropped. */
    private readonly refuse: (peer: { address: string; port: number }) => RemoteFailure | null = () => null,
  ) {}

  async open(request: UdpOpenRequest): Promise<Result<UdpOpenResult>> {
    const id = request.socket;
    if (id === undefined || this.twins.has(id)) {
      return { ok: false, error: { code: 'REMOCAL_INTERNAL', message: `udp.open needs a new socket id (got ${id})` } };
    }
    if (this.twins.size >= MAX_TWINS) return { ok: false, error: { code: 'EMFILE', message: 'too many UDP sockets', syscall: 'socket' } };
    const refused = request.connect === undefined ? null : this.refuse(request.connect);
    if (refused !== null) return { ok: false, error: refused };
    const socket = dgram.createSocket(request.family === 6 ? 'udp6' : 'udp4');
    try {
      await new Promise<void>((resolve, reject) => {
        socket.once('error', reject);
        socket.bind(0, () => {
          socket.off('error', reject);
          resolve();
        });
      });
      if (request.connect !== undefined) {
        const { address, port } = request.connect;
        await new Promise<void>((resolve, reject) => socket.connect(port, address, (error?: Error) => (error ? reject(error) : resolve())));
      }
    } catch (error) {
      socket.close();
      return { ok: false, error: failureOf(error as NodeJS.ErrnoException, request.connect === undefined ? 'bind' : 'connect') };
    }
    // An ICMP error (port unreachable) surfaces here on a connected socket; UDP carries on, and so does the twin.
    socket.on('error', () => undefined);
    socket.on('message', (data, rinfo) => {
      this.deliver({ socket: id, peer: { address: rinfo.address, port: rinfo.port, family: rinfo.family === 'IPv6' ? 'IPv6' : 'IPv4' }, data: data.toString('base64') });
    });
    this.twins.set(id, socket);
    const local = socket.address();
    const result: UdpOpenResult = { socket: id, local: { address: local.address, port: local.port, family: local.family === 'IPv6' ? 'IPv6' : 'IPv4' } };
    if (request.connect !== undefined) {
      const remote = socket.remoteAddress();
      result.remote = { address: remote.address, port: remote.port, family: remote.family === 'IPv6' ? 'IPv6' : 'IPv4' };
    }
    return { ok: true, value: result };
  }

  /** Datagrams are fire and forget, as on the wire: one that cannot be sent is dropped. */
  send(datagram: UdpDatagram): void {
    const socket = this.twins.get(datagram.socket);
    if (socket === undefined) return;
    const data = Buffer.from(datagram.data, 'base64');
    if (data.length > MAX_UDP_DATAGRAM_BYTES) return;
    const done = () => undefined;
    if (isConnected(socket)) {
      // Checked again: the policies may have changed since the socket was connected.
      if (this.refuse(socket.remoteAddress()) === null) socket.send(data, done);
    } else if (isIP(datagram.peer.address) !== 0 && this.refuse(datagram.peer) === null) {
      socket.send(data, datagram.peer.port, datagram.peer.address, done);
    }
  }

  close(request: UdpCloseRequest): Result<UdpCloseResult> {
    const socket = this.twins.get(request.socket);
    this.twins.delete(request.socket);
    socket?.close();
    return { ok: true, value: {} };
  }

  closeAll(): void {
    for (const socket of this.twins.values()) socket.close();
    this.twins.clear();
  }
}

function isConnected(socket: dgram.Socket): boolean {
  try {
    socket.remoteAddress();
    return true;
  } catch {
    return false;
  }
}

function failureOf(error: NodeJS.ErrnoException, syscall: string) {
  return {
    code: error.code ?? 'EINVAL',
    message: error.message,
    ...(error.errno === undefined ? {} : { errno: error.errno }),
    syscall: error.syscall ?? syscall,
  };
}
