// Outgoing UDP: where a datagram goes, and the app socket's twin in the target. The hooks hand this module a
// destination (a name or an IP and a port) and the datagram's bytes; a remote datagram leaves through the twin,
// opened on the first one, and what the twin receives comes back through `deliver` with the real sender as
// rinfo. A connected app socket gets a connected twin, so only its peer's datagrams come back.

import { isIP } from 'node:net';
import { LINK_LOST_CODE } from '../../protocol/contracts.js';
import { MAX_UDP_DATAGRAM_BYTES, type LookupAddress, type RemoteFailure, type SocketAddress, type UdpDatagram } from '../../protocol/messages.js';
import { getaddrinfoError, uvErrno, type NodeSystemError } from '../errors.js';
import type { UdpPolicy } from '../policy.js';
import type { UdpRemote } from '../remote.js';

/** dns.lookup as the app would get it (the DNS hook's, when DNS is remote), for one family. */
export type UdpLookup = (hostname: string, family: 4 | 6) => Promise<LookupAddress>;

export interface ReceivedInfo {
  address: string;
  family: 'IPv4' | 'IPv6';
  port: number;
  size: number;
}

/** Where a datagram (or a connect) ended up: sent locally after all (the name resolved to a local address), or remotely. */
export type UdpOutcome = { kind: 'local'; address: string } | { kind: 'remote' };

export class UdpOps {
  private readonly twinsById = new Map<number, UdpTwin>();

  constructor(
    private readonly remote: UdpRemote,
    private readonly policy: UdpPolicy,
    private readonly lookup: UdpLookup,
  ) {
    remote.listen({
      onDatagram: (datagram) => this.twinsById.get(datagram.socket)?.receive(datagram),
      onLinkLost: () => {
        const twins = [...this.twinsById.values()];
        this.twinsById.clear();
        for (const twin of twins) twin.forgetRemote();
      },
    });
  }

  /** Decided synchronously, at call time: 'local' hands the call to Node untouched. */
  route(host: string | undefined, port: number): 'local' | 'remote' {
    if (host === undefined || host === '') return 'local';
    return this.policy.send({ hostname: host, port }) === 'local' ? 'local' : 'remote';
  }

  /** The twin of one app socket; `deliver` is how its datagrams reach the app. */
  createTwin(family: 4 | 6, deliver: (data: Buffer, rinfo: ReceivedInfo) => void): UdpTwin {
    return new UdpTwin(family, deliver, {
      remote: this.remote,
      register: (id, twin) => this.twinsById.set(id, twin),
      unregister: (id) => this.twinsById.delete(id),
    });
  }

  /**
   * The address to send to, and whether it stays remote once known. A name is resolved the way the app's own
   * dgram socket would resolve it (dns.lookup, the DNS hook's when DNS is remote), in the socket's family.
   */
  async destination(host: string, port: number, family: 4 | 6): Promise<{ route: 'local' | 'remote'; address: string }> {
    if (isIP(host) !== 0) return { route: this.route(host, port), address: host };
    const resolved = await this.lookup(host, family);
    const decision = this.policy.send({ hostname: host, address: resolved.address, port });
    return { route: decision === 'local' ? 'local' : 'remote', address: resolved.address };
  }
}

interface TwinHost {
  remote: UdpRemote;
  register(id: number, twin: UdpTwin): void;
  unregister(id: number): void;
}

export class UdpTwin {
  /** The twin's id once opened; a pending open is shared by every datagram sent meanwhile. */
  private opened: Promise<number> | null = null;
  private currentId: number | null = null;
  /** Bumped by each release, so an open that was under way then knows it is stale. */
  private generation = 0;
  private peer: SocketAddress | null = null;
  private closed = false;

  constructor(
    readonly family: 4 | 6,
    private readonly deliver: (data: Buffer, rinfo: ReceivedInfo) => void,
    private readonly host: TwinHost,
  ) {}

  /** The connected peer, as remoteAddress() reports it. */
  get connectedPeer(): SocketAddress | null {
    return this.peer;
  }

  /** Sends one datagram from the target; rejects with a native-looking error when the twin cannot be had. */
  async send(data: Buffer, address: string, port: number): Promise<void> {
    if (data.length > MAX_UDP_DATAGRAM_BYTES) throw sendError('EMSGSIZE', address, port);
    const id = await this.open(undefined);
    const peer: SocketAddress = { address, port, family: isIP(address) === 6 ? 'IPv6' : 'IPv4' };
    if (!this.host.remote.send({ socket: id, peer, data: data.toString('base64') })) {
      // The link went away between the open and now: the next datagram opens a new twin.
      this.forgetRemote();
      throw sendError(LINK_LOST_CODE, address, port);
    }
  }

  /** dgram's connect: a new twin connected to this peer replaces any unconnected one. */
  async connect(address: string, port: number): Promise<SocketAddress> {
    this.release();
    await this.open({ address, port });
    if (this.peer === null) throw new Error('remocal: the connected twin has no peer');
    return this.peer;
  }

  disconnect(): void {
    this.release();
  }

  close(): void {
    this.closed = true;
    this.release();
  }

  receive(datagram: UdpDatagram): void {
    if (this.closed) return;
    const data = Buffer.from(datagram.data, 'base64');
    this.deliver(data, { address: datagram.peer.address, family: datagram.peer.family, port: datagram.peer.port, size: data.length });
  }

  /** The intproxy link is gone and the twin with it; a connected socket keeps its peer and reconnects on the next send. */
  forgetRemote(): void {
    this.generation += 1;
    this.opened = null;
    this.currentId = null;
  }

  private open(connect: { address: string; port: number } | undefined): Promise<number> {
    if (this.closed) return Promise.reject(sendError('EBADF', connect?.address ?? '', connect?.port ?? 0));
    if (this.opened !== null) return this.opened;
    const target = connect ?? (this.peer === null ? undefined : { address: this.peer.address, port: this.peer.port });
    const generation = this.generation;
    const opening: Promise<number> = (async () => {
      const answer = await this.host.remote.open({ family: this.family, ...(target === undefined ? {} : { connect: target }) });
      if (!answer.ok) throw failureError(answer.error, target);
      const id = answer.value.socket;
      if (this.closed || this.generation !== generation) {
        // Closed or replaced while it opened: it must not outlive the answer.
        void this.host.remote.close(id);
        throw sendError('EBADF', target?.address ?? '', target?.port ?? 0);
      }
      if (answer.value.remote !== undefined) this.peer = answer.value.remote;
      this.host.register(id, this);
      this.currentId = id;
      return id;
    })();
    this.opened = opening;
    opening.catch(() => {
      if (this.opened === opening) this.opened = null;
    });
    return opening;
  }

  private release(): void {
    this.generation += 1;
    this.peer = null;
    this.opened = null;
    const id = this.currentId;
    this.currentId = null;
    if (id !== null) {
      this.host.unregister(id);
      void this.host.remote.close(id);
    }
  }
}

function failureError(failure: RemoteFailure, target: { address: string; port: number } | undefined): NodeSystemError {
  if (target !== undefined && isIP(target.address) === 0 && failure.syscall === 'getaddrinfo') return getaddrinfoError(failure.code, target.address);
  return sendError(failure.code, target?.address ?? '', target?.port ?? 0, target === undefined ? 'send' : 'connect');
}

/** As dgram reports a failed send or connect: `send EMSGSIZE 10.0.0.1:53`. */
export function sendError(code: string, address: string, port: number, syscall = 'send'): NodeSystemError {
  const details = address === '' ? '' : port > 0 ? ` ${address}:${port}` : ` ${address}`;
  const error = new Error(`${syscall} ${code}${details}`) as NodeSystemError;
  error.errno = uvErrno(code);
  error.code = code;
  error.syscall = syscall;
  if (address !== '') error.address = address;
  if (port > 0) error.port = port;
  return error;
}
