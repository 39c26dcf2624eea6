// The messages of remocal's two links, as data.
//
//   layer ──(LayerToIntproxy / IntproxyToLayer)── intproxy ──(IntproxyToAgent / AgentToIntproxy)── agent
//
// One discriminated union per direction. The unions are append-only: a new capability adds a new member
// (and, if the peer must know it, a protocol version bump), it never changes the shape of an existing one.
// Remote failures are values ({ ok: false, error }), never exceptions on the wire.
//
// Byte streams (an outgoing TCP connection, say) are not messages: they travel as DATA/CREDIT/END/RESET
// frames of the link (see frames.ts and link.ts) under a stream id chosen by the side that opens them.

import { constants as fsConstants } from 'node:fs';

/** Bumped when a peer of the previous version could misread what this version sends. */
export const PROTOCOL_VERSION = 1;
/** The oldest peer version this code still speaks to. */
export const PROTOCOL_MIN_VERSION = 1;

export type Role = 'layer' | 'intproxy' | 'agent' | 'operator';

export interface Hello {
  type: 'hello';
  protocol: 'remocal';
  role: Role;
  version: number;
  minVersion: number;
  /** Free-form facts for logs: pid, remocal version, node version. */
  info?: Record<string, string | number>;
}

/** A failure on the remote side, shaped so that the layer can rebuild the native Node error from it. */
export interface RemoteFailure {
  /** An errno name (ECONNREFUSED, ENOTFOUND, ENOENT…) or a REMOCAL_… code. */
  code: string;
  message: string;
  errno?: number;
  syscall?: string;
  /** What the user can do about it, for failures the CLI shows as they are (a port held by another session). */
  hint?: string;
}

export type Result<T> = { ok: true; value: T } | { ok: false; error: RemoteFailure };

export interface SocketAddress {
  address: string;
  family: 'IPv4' | 'IPv6';
  port: number;
}

export interface LookupAddress {
  address: string;
  family: 4 | 6;
}

// --- operations ------------------------------------------------------------------------------------------
// Each operation is a request and its result. The same operation can travel both links (the layer asks the
// intproxy, which asks the agent), so they are declared once here.

export interface GetAddrInfoRequest {
  op: 'dns.getaddrinfo';
  host: string;
  /** 0: any family, as getaddrinfo's AF_UNSPEC. */
  family: 0 | 4 | 6;
}
export interface GetAddrInfoResult {
  addresses: LookupAddress[];
}

/** The record types of dns.resolve*, with the same names Node uses. */
export type DnsRecordType = 'A' | 'AAAA' | 'ANY' | 'CAA' | 'CNAME' | 'MX' | 'NAPTR' | 'NS' | 'PTR' | 'SOA' | 'SRV' | 'TXT';

export interface DnsQueryRequest {
  op: 'dns.query';
  name: string;
  rrtype: DnsRecordType;
  /** resolve4/resolve6 with { ttl: true }. */
  ttl?: boolean;
}
export interface DnsQueryResult {
  /** Exactly what Node's resolver would return for this rrtype (string[], MxRecord[], SoaRecord…). */
  records: unknown;
}

export interface DnsReverseRequest {
  op: 'dns.reverse';
  address: string;
}
export interface DnsReverseResult {
  hostnames: string[];
}

export interface EnvGetRequest {
  op: 'env.get';
}
export interface EnvGetResult {
  /** Undefined when the target has no process (netns targets). */
  env: Record<string, string> | null;
}

/** Agent side of an outgoing connection: the agent connects, and on success the stream carries the bytes. */
export interface TcpConnectRequest {
  op: 'tcp.connect';
  host: string;
  port: number;
  /** The stream id the intproxy allocated for the connection's bytes. */
  stream: number;
}
export interface TcpConnectResult {
  /** The agent's end of the connection, as the app would see it from inside the target. */
  local: SocketAddress;
  remote: SocketAddress;
}

/** Layer side of an outgoing connection: the intproxy answers with a loopback port to connect to. */
export interface LayerConnectRequest {
  op: 'tcp.connect';
  host: string;
  port: number;
}
export interface LayerConnectResult extends TcpConnectResult {
  /** Connect here (127.0.0.1); the intproxy splices that connection to the remote one. */
  proxyPort: number;
}

// --- incoming traffic ---------------------------------------------------------------------------------
// The app listens on a local port; the layer subscribes the target's port to it. The agent redirects the
// target's port to itself and, for each connection (or, with an HTTP filter, each matching request), opens a
// stream to the intproxy and announces it with an IncomingEvent; the intproxy connects that stream to the
// app's real local port.

export type IncomingMode = 'mirror' | 'steal';

/** mirrord's http_filter, as the config module validated it (one of the kinds, or all_of/any_of of them). */
export type HttpFilterPart = { header: string } | { path: string } | { method: string };
export interface HttpFilterSpec {
  header_filter?: string | undefined;
  path_filter?: string | undefined;
  method_filter?: string | undefined;
  all_of?: HttpFilterPart[] | undefined;
  any_of?: HttpFilterPart[] | undefined;
  /** Ports the filter applies to; other ports are stolen whole. Unset: all ports. */
  ports?: number[] | undefined;
}

/** Layer → intproxy: the app listens on localPort; subscribe the target's remotePort to it. */
export interface LayerSubscribeRequest {
  op: 'incoming.subscribe';
  /** The target's port, after port_mapping. */
  remotePort: number;
  /** Where the app really listens (127.0.0.1 or the address it bound). */
  localPort: number;
  localAddress: string;
}
export interface SubscribeResult {
  subscription: number;
  mode: IncomingMode;
  /** The sessions this one took the port from (on_concurrent_steal: override); each of them was told. */
  displaced?: { session: string; owner: string }[];
}

/** Intproxy → agent. */
export interface AgentSubscribeRequest {
  op: 'incoming.subscribe';
  port: number;
  mode: IncomingMode;
  filter: HttpFilterSpec | null;
  /**
   * When another session already steals the port (behind the operator): `abort` (unset) refuses this one, `continue`
   * refuses it too (the session goes on without the port), `override` takes the port from the others. A filtered
   * steal of a locked port, and a filter the same as another session's on the port, are refused whatever this says.
   */
  onConcurrentSteal?: OnConcurrentSteal;
}

export type OnConcurrentSteal = 'abort' | 'continue' | 'override';

export interface UnsubscribeRequest {
  op: 'incoming.unsubscribe';
  subscription: number;
}
export type UnsubscribeResult = Record<string, never>;

/** Agent → intproxy: a new stream of incoming traffic for a subscription. */
export interface IncomingEvent {
  subscription: number;
  /** The agent-allocated stream that carries it. */
  stream: number;
  /**
   * connection: the whole connection's bytes (steal) or a copy of what the client sent (mirror: what the app
   * writes back is discarded); request: one HTTP request that matched the filter, the app's response goes back.
   */
  kind: 'connection' | 'request';
  source: SocketAddress;
  destination: SocketAddress;
}

/**
 * Intproxy → agent, as the session ends: stop taking the target's traffic now (rules removed before the answer),
 * and say how many accepted connections the agent still finishes on its own. The agent then drains them after
 * the link closes, so a session ending never cuts a connection that was not the session's.
 */
export interface SessionCloseRequest {
  op: 'session.close';
}
export interface SessionCloseResult {
  draining: number;
}

// --- outgoing UDP -----------------------------------------------------------------------------------------
// The app's dgram socket gets a twin in the target: udp.open binds it (the intproxy picks the socket id, unique
// on the agent link), datagrams travel as messages both ways (UDP has no stream to flow-control, and a datagram
// must stay whole), udp.close or the layer's link closing ends it.

/** The largest datagram relayed, in bytes: what fits one IPv4 UDP packet (a larger send fails with EMSGSIZE). */
export const MAX_UDP_DATAGRAM_BYTES = 65_507;

export interface UdpOpenRequest {
  op: 'udp.open';
  /** udp4 or udp6, as the app's socket. */
  family: 4 | 6;
  /** Set by the intproxy on its way to the agent; the layer leaves it out. */
  socket?: number;
  /** dgram's connect(): the target's socket is connected too, so only this peer's datagrams come back. */
  connect?: { address: string; port: number };
}
export interface UdpOpenResult {
  socket: number;
  /** The twin's own address in the target. */
  local: SocketAddress;
  /** The connected peer, when connect was asked. */
  remote?: SocketAddress;
}

export interface UdpCloseRequest {
  op: 'udp.close';
  socket: number;
}
export type UdpCloseResult = Record<string, never>;

/** One datagram of a twin socket; `peer` is the destination going out, the source coming back. */
export interface UdpDatagram {
  socket: number;
  peer: SocketAddress;
  /** base64 */
  data: string;
}

export type AgentRequest =
  | SessionCloseRequest
  | TcpConnectRequest
  | GetAddrInfoRequest
  | DnsQueryRequest
  | DnsReverseRequest
  | EnvGetRequest
  | AgentSubscribeRequest
  | UnsubscribeRequest
  | UdpOpenRequest
  | UdpCloseRequest
  | FsRequest;
export type LayerRequest =
  | LayerConnectRequest
  | GetAddrInfoRequest
  | DnsQueryRequest
  | DnsReverseRequest
  | EnvGetRequest
  | LayerSubscribeRequest
  | UnsubscribeRequest
  | UdpOpenRequest
  | UdpCloseRequest
  | FsRequest;

export interface AgentResults extends FsResults {
  'tcp.connect': TcpConnectResult;
  'dns.getaddrinfo': GetAddrInfoResult;
  'dns.query': DnsQueryResult;
  'dns.reverse': DnsReverseResult;
  'env.get': EnvGetResult;
  'incoming.subscribe': SubscribeResult;
  'incoming.unsubscribe': UnsubscribeResult;
  'session.close': SessionCloseResult;
  'udp.open': UdpOpenResult;
  'udp.close': UdpCloseResult;
}
export interface FsResults {
  'fs.stat': FsStatResult;
  'fs.lstat': FsStatResult;
  'fs.fstat': FsStatResult;
  'fs.access': FsAccessResult;
  'fs.readdir': FsReaddirResult;
  'fs.realpath': FsPathResult;
  'fs.readlink': FsPathResult;
  'fs.open': FsOpenResult;
  'fs.read': FsReadResult;
  'fs.write': FsWriteResult;
  'fs.close': FsCloseResult;
  'fs.readFile': FsReadFileResult;
  'fs.writeFile': FsWriteFileResult;
  'fs.appendFile': FsWriteFileResult;
  'fs.mkdir': FsMkdirResult;
  'fs.rm': FsDoneResult;
  'fs.unlink': FsDoneResult;
  'fs.rename': FsDoneResult;
  'fs.truncate': FsDoneResult;
}
export type FsOp = keyof FsResults;

// A Record, so that the compiler insists on every op of FsResults and on no other.
const FS_OP_SET: Record<FsOp, true> = {
  'fs.stat': true,
  'fs.lstat': true,
  'fs.fstat': true,
  'fs.access': true,
  'fs.readdir': true,
  'fs.realpath': true,
  'fs.readlink': true,
  'fs.open': true,
  'fs.read': true,
  'fs.write': true,
  'fs.close': true,
  'fs.readFile': true,
  'fs.writeFile': true,
  'fs.appendFile': true,
  'fs.mkdir': true,
  'fs.rm': true,
  'fs.unlink': true,
  'fs.rename': true,
  'fs.truncate': true,
};
/** Every file operation, for the places that treat them all alike (pass them on, refuse them all). */
export const FS_OPS = Object.keys(FS_OP_SET) as FsOp[];

export interface LayerResults extends Omit<AgentResults, 'tcp.connect' | 'session.close'> {
  'tcp.connect': LayerConnectResult;
}

export type Op = AgentRequest['op'];

// --- events the agent reports without being asked ---------------------------------------------------
export type AgentEvent =
  | { kind: 'target_gone'; reason: string }
  | { kind: 'warning'; message: string }
  /**
   * A shared agent (behind the operator) ends this session on its own: a limit was reached, or someone killed
   * it. `code` is the error code the CLI shows it with; `reason` says what happened and `hint` what to do.
   */
  | { kind: 'session_closed'; code: string; reason: string; hint?: string }
  /**
   * Something the session's user should know, and the session goes on: another session took a port over, a request
   * matched the filters of several sessions, a policy refused an operation. The CLI prints it.
   */
  | { kind: 'notice'; code: string; message: string; hint?: string };

// --- the unions, one per direction --------------------------------------------------------------------

export interface RequestMessage<R> {
  type: 'request';
  id: number;
  request: R;
}

export type ResponseMessage<Results> = {
  [K in keyof Results]: { type: 'response'; id: number; op: K; result: Result<Results[K]> };
}[keyof Results];

export type IntproxyToAgent =
  | Hello
  | RequestMessage<AgentRequest>
  | { type: 'ping'; id: number }
  | ({ type: 'udp.send' } & UdpDatagram);
export type AgentToIntproxy =
  | Hello
  | ResponseMessage<AgentResults>
  | { type: 'pong'; id: number }
  | { type: 'event'; event: AgentEvent }
  | ({ type: 'incoming' } & IncomingEvent)
  | ({ type: 'udp' } & UdpDatagram);

export type LayerToIntproxy = Hello | RequestMessage<LayerRequest> | ({ type: 'udp.send' } & UdpDatagram);
export type IntproxyToLayer = Hello | ResponseMessage<LayerResults> | ({ type: 'udp' } & UdpDatagram);

// --- remote files ------------------------------------------------------------------------------------------
// The agent reads (and, where the session allows it, changes) the target's files under /proc/<pid>/root. The
// layer asks, the intproxy passes the request on unchanged. Paths are the target's own absolute paths; file
// contents travel base64-encoded, as UDP datagrams do. Handles are the agent's, valid for the whole session
// until fs.close (the intproxy closes those a layer leaves open when its link closes).

/**
 * The most file content one message carries, raw: base64 makes it 4/3 larger, and a message must stay within
 * the link's frame limit. Larger reads and writes are split into chunks of this size.
 */
export const MAX_FILE_CHUNK_BYTES = 512 * 1024;

/** A file operation's failure: `path` (and `dest` for rename) as the target sees them, never the host path. */
export interface FileFailure extends RemoteFailure {
  path: string;
  dest?: string;
}
export type FileResult<T> = { ok: true; value: T } | { ok: false; error: FileFailure };

/** `fs.Stats` without its methods; the kind is in `mode` (S_IFMT bits), as the layer rebuilds Stats from it. */
export interface FileStats {
  dev: number;
  ino: number;
  mode: number;
  nlink: number;
  uid: number;
  gid: number;
  rdev: number;
  size: number;
  blksize: number;
  blocks: number;
  atimeMs: number;
  mtimeMs: number;
  ctimeMs: number;
  birthtimeMs: number;
}

export type DirentType = 'file' | 'directory' | 'symlink' | 'block-device' | 'character-device' | 'fifo' | 'socket' | 'unknown';
export interface DirEntry {
  name: string;
  type: DirentType;
}

export interface FsStatRequest {
  op: 'fs.stat';
  path: string;
}
export interface FsLstatRequest {
  op: 'fs.lstat';
  path: string;
}
export type FsStatResult = FileStats;

export interface FsAccessRequest {
  op: 'fs.access';
  path: string;
  /** fs.constants F_OK/R_OK/W_OK/X_OK bits. */
  mode: number;
}
export type FsAccessResult = Record<string, never>;

export interface FsReaddirRequest {
  op: 'fs.readdir';
  path: string;
}
export interface FsReaddirResult {
  entries: DirEntry[];
}

export interface FsRealpathRequest {
  op: 'fs.realpath';
  path: string;
}
export interface FsReadlinkRequest {
  op: 'fs.readlink';
  path: string;
}
export interface FsPathResult {
  path: string;
}

export interface FsOpenRequest {
  op: 'fs.open';
  path: string;
  /** open(2) flags as a number (fs.constants O_*); absent: read only. */
  flags?: number;
  /** Permission bits for a file that gets created. */
  mode?: number;
  /** Read up to this many bytes from offset 0 with the open, so that small files cost one round trip. */
  prefetch?: number;
}
/**
 * Whether open(2) flags can change the file (write access, create, truncate, append): the layer sends such opens
 * to the target only where writes go there, and the agent refuses them unless the session may write.
 */
export function opensForWriting(flags: number): boolean {
  const { O_WRONLY, O_RDWR, O_CREAT, O_TRUNC, O_APPEND } = fsConstants;
  return (flags & (O_WRONLY | O_RDWR | O_CREAT | O_TRUNC | O_APPEND)) !== 0;
}
export interface FsOpenResult {
  /** Valid for this session until fs.close. */
  handle: number;
  /** With `prefetch`: the first bytes (base64), fewer when the file is shorter. */
  head?: string;
}

export interface FsReadRequest {
  op: 'fs.read';
  handle: number;
  length: number;
  /** Absent: from the handle's current position, which then advances. */
  position?: number;
}
export interface FsReadResult {
  /** base64; fewer bytes than asked at the end of the file, none past it. */
  data: string;
}

export interface FsWriteRequest {
  op: 'fs.write';
  handle: number;
  /** base64 */
  data: string;
  /** Absent: at the handle's current position (the end, for a handle opened to append). */
  position?: number;
}
export interface FsWriteResult {
  written: number;
}

export interface FsFstatRequest {
  op: 'fs.fstat';
  handle: number;
}

export interface FsCloseRequest {
  op: 'fs.close';
  handle: number;
}
export type FsCloseResult = Record<string, never>;

export interface FsReadFileRequest {
  op: 'fs.readFile';
  path: string;
}
export interface FsReadFileResult {
  /** base64 */
  data: string;
}

export interface FsWriteFileRequest {
  op: 'fs.writeFile';
  path: string;
  /** base64 */
  data: string;
  /** Permission bits for a file that gets created. */
  mode?: number;
}
export interface FsAppendFileRequest extends Omit<FsWriteFileRequest, 'op'> {
  op: 'fs.appendFile';
}
export type FsWriteFileResult = Record<string, never>;

export interface FsMkdirRequest {
  op: 'fs.mkdir';
  path: string;
  recursive?: boolean;
  mode?: number;
}
export interface FsMkdirResult {
  /** With `recursive`: the first directory created (as fs.mkdir returns it), null when all existed. */
  first: string | null;
}

export interface FsRmRequest {
  op: 'fs.rm';
  path: string;
  recursive?: boolean;
  force?: boolean;
}
export interface FsUnlinkRequest {
  op: 'fs.unlink';
  path: string;
}
export interface FsRenameRequest {
  op: 'fs.rename';
  path: string;
  dest: string;
}
export interface FsTruncateRequest {
  op: 'fs.truncate';
  path: string;
  length: number;
}
export type FsDoneResult = Record<string, never>;

export type FsRequest =
  | FsStatRequest
  | FsLstatRequest
  | FsAccessRequest
  | FsReaddirRequest
  | FsRealpathRequest
  | FsReadlinkRequest
  | FsOpenRequest
  | FsReadRequest
  | FsWriteRequest
  | FsFstatRequest
  | FsCloseRequest
  | FsReadFileRequest
  | FsWriteFileRequest
  | FsAppendFileRequest
  | FsMkdirRequest
  | FsRmRequest
  | FsUnlinkRequest
  | FsRenameRequest
  | FsTruncateRequest;
