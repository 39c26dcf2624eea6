// Outgoing UDP, the intproxy's part: it numbers the twins (the ids must be unique on the one agent link that
// all layers share), remembers which layer owns each one, and relays datagrams between the two links. A layer
// only ever reaches its own twins, and its twins are closed when its link closes.

import type { Logger } from '../core/log.js';
import { LINK_LOST_CODE } from '../protocol/contracts.js';
import {
  MAX_UDP_DATAGRAM_BYTES,
  type IntproxyToLayer,
  type Result,
  type UdpCloseResult,
  type UdpDatagram,
  type UdpOpenRequest,
  type UdpOpenResult,
} from '../protocol/messages.js';
import type { AgentConnection } from './agent-link.js';

/** What the relay needs of a layer's link. */
export interface UdpOwner {
  send(message: IntproxyToLayer): boolean;
  readonly closed: boolean;
}

/** base64 of the largest datagram, and a little room: anything longer is not a datagram we relay. */
const MAX_DATA_CHARS = Math.ceil(MAX_UDP_DATAGRAM_BYTES / 3) * 4 + 4;

export class UdpRelay {
  private readonly owners = new Map<number, UdpOwner>();
  private nextSocket = 1;

  constructor(
    private readonly agent: AgentConnection,
    private readonly log: Logger,
  ) {
    agent.link.on('message', (message) => {
      if (message.type !== 'udp') return;
      // A twin closed meanwhile, or its layer gone: the datagram is dropped, as the kernel would for a closed socket.
      this.owners.get(message.socket)?.send({ type: 'udp', socket: message.socket, peer: message.peer, data: message.data });
    });
  }

  async open(request: UdpOpenRequest, owner: UdpOwner): Promise<Result<UdpOpenResult>> {
    const socket = this.nextSocket++;
    const { family, connect } = request;
    const answer = await this.agent.rpc
      .request({ op: 'udp.open', family, socket, ...(connect === undefined ? {} : { connect }) })
      .catch((error: Error) => ({ ok: false as const, error: { code: LINK_LOST_CODE, message: error.message } }));
    if (answer.ok) {
      this.owners.set(socket, owner);
      // The layer went away while the agent opened it: nobody will ever close it otherwise.
      if (owner.closed) void this.close(socket, owner);
      this.log.debug({ socket, family, connect }, 'udp socket opened in the target');
    }
    return answer;
  }

  /** A datagram of a layer, for one of its own twins. */
  send(datagram: UdpDatagram, owner: UdpOwner): void {
    if (this.owners.get(datagram.socket) !== owner) return;
    if (typeof datagram.data !== 'string' || datagram.data.length > MAX_DATA_CHARS) return;
    this.agent.link.send({ type: 'udp.send', socket: datagram.socket, peer: datagram.peer, data: datagram.data });
  }

  async close(socket: number, owner: UdpOwner): Promise<Result<UdpCloseResult>> {
    if (this.owners.get(socket) !== owner) return { ok: true, value: {} };
    this.owners.delete(socket);
    return this.agent.rpc.request({ op: 'udp.close', socket }).catch(() => ({ ok: true as const, value: {} }));
  }

  releaseOwner(owner: UdpOwner): void {
    for (const [socket, current] of [...this.owners]) {
      if (current === owner) void this.close(socket, owner);
    }
  }
}
