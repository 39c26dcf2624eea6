// The hooks on dgram.Socket.prototype: send, connect, disconnect and remoteAddress. They translate dgram's
// call shapes (lib/dgram.js, unchanged in what matters from v20 to v24) into UdpOps calls and the answers back.
//
// A remote datagram never touches the app's kernel socket; the socket is still bound as Node would bind it
// on a first send (so address(), 'listening' and keeping the process alive behave as usual), and replies are
// emitted on it as 'message' events with the real sender as rinfo. A remote connect leaves the kernel socket
// unconnected (the pod-only address is unreachable from here) and the layer keeps the connected state: send
// without an address, remoteAddress(), disconnect() and the errors for misuse follow Node's rules.

import dgram from 'node:dgram';
import type { SocketAddress } from '../../protocol/messages.js';
import type { LayerLog } from '../log.js';
import type { PatchRegistry } from '../patches.js';
import type { UdpOps, UdpTwin } from './ops.js';
import { validPort } from '../validate.js';

type Callback = ((error: Error | null, bytes?: number) => void) | undefined;
type Method = (this: dgram.Socket, ...args: unknown[]) => unknown;

/** Node's dgram state fields the hooks read (lib/internal/dgram.js: kStateSymbol, BIND_STATE_*, CONNECT_STATE_*). */
interface DgramState {
  bindState: number;
  connectState: number;
  handle: unknown;
  type?: string;
}
const BIND_STATE_UNBOUND = 0;
const CONNECT_STATE_DISCONNECTED = 0;

interface RemoteConnection {
  /** Settled once the twin is connected; sends made before wait for it. */
  ready: Promise<SocketAddress | null>;
  peer: SocketAddress | null;
}

export interface UdpHookContext {
  ops: UdpOps;
  log: LayerLog;
}

export function defineUdpHooks(registry: PatchRegistry, context: UdpHookContext): void {
  const { ops, log } = context;
  const twins = new WeakMap<dgram.Socket, UdpTwin>();
  const connections = new WeakMap<dgram.Socket, RemoteConnection>();

  function twinOf(socket: dgram.Socket): UdpTwin {
    let twin = twins.get(socket);
    if (twin === undefined) {
      const created = ops.createTwin(familyOf(socket), (data, rinfo) => {
        if (stateOf(socket)?.handle === null) return;
        socket.emit('message', data, rinfo);
      });
      twin = created;
      twins.set(socket, created);
      socket.once('close', () => {
        created.close();
        connections.delete(socket);
      });
    }
    return twin;
  }

  /** What Node's send does for an unbound socket: bind to an ephemeral port on every interface. */
  function ensureBound(socket: dgram.Socket): void {
    const state = stateOf(socket);
    if (state !== undefined && state.bindState === BIND_STATE_UNBOUND) socket.bind({ port: 0, exclusive: true });
  }

  function sendRemotely(
    socket: dgram.Socket,
    original: Method,
    data: Buffer,
    host: string,
    port: number,
    callback: Callback,
    connection: RemoteConnection | undefined,
  ): void {
    const twin = twinOf(socket);
    const sent = async (): Promise<{ localAddress?: string }> => {
      if (connection !== undefined) {
        const peer = await connection.ready;
        if (peer === null) throw notConnectedError();
        await twin.send(data, peer.address, peer.port);
        return {};
      }
      const destination = await ops.destination(host, port, twin.family);
      if (destination.route === 'local') return { localAddress: destination.address };
      await twin.send(data, destination.address, port);
      return {};
    };
    sent().then(
      // Out of the promise chain, so an exception in the app's callback surfaces as it would without the layer.
      (outcome) =>
        process.nextTick(() => {
          if (outcome.localAddress !== undefined) original.call(socket, data, port, outcome.localAddress, callback);
          else callback?.(null, data.length);
        }),
      (error: Error) =>
        process.nextTick(() => {
          if (callback !== undefined) callback(error);
          else socket.emit('error', error);
        }),
    );
  }

  registry.define({
    target: dgram.Socket.prototype,
    key: 'send',
    replace: (original) =>
      function send(this: dgram.Socket, ...args: unknown[]): void {
        const connection = connections.get(this);
        if (connection !== undefined) {
          // Node's shapes for a connected socket: (msg[, offset, length][, callback]).
          let [buffer, offset, length, port, address, callback] = args;
          if (typeof length === 'number') {
            buffer = sliceBuffer(buffer, offset, length);
            if (typeof port === 'function') {
              callback = port;
              port = null;
            }
          } else {
            callback = offset;
          }
          if (port || address) throw isConnectedError();
          const data = toBuffer(buffer);
          if (data === null) return (original as Method).apply(this, args) as void;
          ensureBound(this);
          sendRemotely(this, original as Method, data, '', 0, callbackOf(callback), connection);
          return;
        }

        // Node's shapes for an unconnected socket: (msg, offset, length, port, address[, callback]) or
        // (msg, port[, address][, callback]).
        let [buffer, offset, length, port, address, callback] = args;
        if (stateOf(this)?.connectState !== CONNECT_STATE_DISCONNECTED) return (original as Method).apply(this, args) as void;
        if (address || (port && typeof port !== 'function')) {
          buffer = sliceBuffer(buffer, offset, length);
        } else {
          callback = port;
          port = offset;
          address = length;
        }
        if (typeof address === 'function') {
          callback = address;
          address = undefined;
        }
        const portNumber = validPort(port, false);
        if (typeof address !== 'string' || portNumber === null || ops.route(address, portNumber) === 'local') {
          return (original as Method).apply(this, args) as void;
        }
        const data = toBuffer(buffer);
        if (data === null) return (original as Method).apply(this, args) as void;
        log.debug(`udp send ${address}:${portNumber}: remote`);
        ensureBound(this);
        sendRemotely(this, original as Method, data, address, portNumber, callbackOf(callback), undefined);
      } as unknown as dgram.Socket['send'],
  });

  registry.define({
    target: dgram.Socket.prototype,
    key: 'connect',
    replace: (original) =>
      function connect(this: dgram.Socket, ...args: unknown[]): void {
        let [port, address, callback] = args;
        if (typeof address === 'function') {
          callback = address;
          address = '';
        }
        const portNumber = validPort(port, false);
        if (connections.has(this)) throw isConnectedError();
        if (typeof address !== 'string' || portNumber === null || ops.route(address, portNumber) === 'local') {
          return (original as Method).apply(this, args) as void;
        }
        if (stateOf(this)?.connectState !== CONNECT_STATE_DISCONNECTED) throw isConnectedError();
        log.debug(`udp connect ${address}:${portNumber}: remote`);
        const socket = this;
        const host = address;
        if (typeof callback === 'function') socket.once('connect', callback as () => void);
        ensureBound(socket);
        const twin = twinOf(socket);
        const connection: RemoteConnection = { ready: Promise.resolve(null), peer: null };
        connection.ready = (async (): Promise<{ local: string } | { peer: SocketAddress }> => {
          const destination = await ops.destination(host, portNumber, twin.family);
          if (destination.route === 'local') return { local: destination.address };
          return { peer: await twin.connect(destination.address, portNumber) };
        })().then(
          (outcome) => {
            process.nextTick(() => {
              if (connections.get(socket) !== connection) return;
              if ('local' in outcome) {
                // The name resolved to an address that stays local: connect the kernel socket after all.
                connections.delete(socket);
                if (typeof callback === 'function') socket.removeListener('connect', callback as () => void);
                (original as Method).call(socket, portNumber, outcome.local, callback);
                return;
              }
              connection.peer = outcome.peer;
              socket.emit('connect');
            });
            return 'peer' in outcome ? outcome.peer : null;
          },
          (error: Error) => {
            process.nextTick(() => {
              if (connections.get(socket) !== connection) return;
              connections.delete(socket);
              if (typeof callback === 'function') {
                socket.removeListener('connect', callback as () => void);
                (callback as (error: Error) => void)(error);
              } else {
                socket.emit('error', error);
              }
            });
            return null;
          },
        );
        connections.set(socket, connection);
      } as unknown as dgram.Socket['connect'],
  });

  registry.define({
    target: dgram.Socket.prototype,
    key: 'disconnect',
    replace: (original) =>
      function disconnect(this: dgram.Socket): void {
        const connection = connections.get(this);
        if (connection === undefined) return (original as Method).call(this) as void;
        if (connection.peer === null) throw notConnectedError();
        connections.delete(this);
        twins.get(this)?.disconnect();
      } as unknown as dgram.Socket['disconnect'],
  });

  registry.define({
    target: dgram.Socket.prototype,
    key: 'remoteAddress',
    replace: (original) =>
      function remoteAddress(this: dgram.Socket): dgram.RemoteInfo | SocketAddress {
        const connection = connections.get(this);
        if (connection === undefined) return (original as Method).call(this) as SocketAddress;
        if (connection.peer === null) throw notConnectedError();
        return { ...connection.peer };
      } as unknown as dgram.Socket['remoteAddress'],
  });
}

function stateOf(socket: dgram.Socket): DgramState | undefined {
  const symbol = Object.getOwnPropertySymbols(socket).find((key) => key.description === 'state symbol');
  return symbol === undefined ? undefined : ((socket as unknown as Record<symbol, DgramState>)[symbol] ?? undefined);
}

function familyOf(socket: dgram.Socket): 4 | 6 {
  return stateOf(socket)?.type === 'udp6' ? 6 : 4;
}

function callbackOf(value: unknown): Callback {
  return typeof value === 'function' ? (value as Callback) : undefined;
}

/** dgram's sliceBuffer: offset and length apply to one buffer or string, never to a list. */
function sliceBuffer(buffer: unknown, offset: unknown, length: unknown): unknown {
  if (typeof buffer === 'string') buffer = Buffer.from(buffer);
  if (!ArrayBuffer.isView(buffer) || typeof offset !== 'number' || typeof length !== 'number') return buffer;
  const start = offset >>> 0;
  const end = start + (length >>> 0);
  return Buffer.from(buffer.buffer, buffer.byteOffset, buffer.byteLength).subarray(start, end);
}

/** The datagram's bytes as one Buffer, or null for a shape Node would reject (it then throws its own error). */
function toBuffer(message: unknown): Buffer | null {
  if (typeof message === 'string') return Buffer.from(message);
  if (ArrayBuffer.isView(message)) return Buffer.from(message.buffer, message.byteOffset, message.byteLength);
  if (Array.isArray(message)) {
    const parts = message.map(toBuffer);
    return parts.every((part): part is Buffer => part !== null) ? Buffer.concat(parts) : null;
  }
  return null;
}

function isConnectedError(): Error {
  return Object.assign(new Error('Already connected'), { code: 'ERR_SOCKET_DGRAM_IS_CONNECTED' });
}

function notConnectedError(): Error {
  return Object.assign(new Error('Not connected'), { code: 'ERR_SOCKET_DGRAM_NOT_CONNECTED' });
}
