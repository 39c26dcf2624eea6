// What the layer's hooks may ask of the session. The hooks and their ops depend only on this interface; the
// real implementation (client.ts) speaks the protocol to the intproxy over a unix socket, and unit tests can
// give the ops an in-process implementation backed by real local servers.

import type {
  DnsQueryRequest,
  DnsQueryResult,
  DnsReverseResult,
  GetAddrInfoResult,
  LayerConnectResult,
  LayerSubscribeRequest,
  Result,
  SubscribeResult,
  UdpCloseResult,
  UdpDatagram,
  UdpOpenRequest,
  UdpOpenResult,
  UnsubscribeResult,
} from '../protocol/messages.js';
import type { FileRemote } from './fs/ops.js';

export interface Remote {
  /** Opens a connection from the target. On success, connect to 127.0.0.1:proxyPort to reach it. */
  connect(host: string, port: number): Promise<Result<LayerConnectResult>>;
  /** getaddrinfo as the target would run it (hosts file, resolv.conf search and ndots). */
  getaddrinfo(host: string, family: 0 | 4 | 6): Promise<Result<GetAddrInfoResult>>;
  /** A DNS query of one record type against the target's nameservers. */
  query(name: string, rrtype: DnsQueryRequest['rrtype'], ttl?: boolean): Promise<Result<DnsQueryResult>>;
  reverse(address: string): Promise<Result<DnsReverseResult>>;
  /** Sends the target's traffic for remotePort to the app's real listening port. */
  subscribe(request: Omit<LayerSubscribeRequest, 'op'>): Promise<Result<SubscribeResult>>;
  unsubscribe(subscription: number): Promise<Result<UnsubscribeResult>>;
  /** Outgoing UDP; a Remote without it keeps every dgram socket local. */
  udp?: UdpRemote;
  /** The target's files; a Remote without it keeps every file local. */
  files?: FileRemote;
}

/** Twin UDP sockets in the target (see the outgoing UDP part of protocol/messages.ts). */
export interface UdpRemote {
  open(request: Omit<UdpOpenRequest, 'op' | 'socket'>): Promise<Result<UdpOpenResult>>;
  close(socket: number): Promise<Result<UdpCloseResult>>;
  /** Fire and forget, as UDP itself: false when there is no link to send it on. */
  send(datagram: UdpDatagram): boolean;
  /** Datagrams the twins received; `onLinkLost` says every twin is gone (the intproxy closes them with the link). */
  listen(handlers: { onDatagram(datagram: UdpDatagram): void; onLinkLost(): void }): void;
}
