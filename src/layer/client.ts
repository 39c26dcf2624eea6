// The layer's side of the session: a link to the intproxy over its unix socket, opened on the first remote
// operation (a process that never does one costs nothing). The socket never keeps the app alive by itself:
// it is ref'd only while a request is pending, as a native getaddrinfo or connect would hold the event loop.

import type { Socket } from 'node:net';
import { join } from 'node:path';
import { LINK_LOST_CODE, type LayerSettings } from '../protocol/contracts.js';
import type { LayerRequest, LayerResults, Result } from '../protocol/messages.js';
import { RpcClient } from '../protocol/rpc.js';
import { SyncChannel } from './fs/sync.js';
import { openLayerLink, type LayerLink } from './link.js';
import type { Remote, UdpRemote } from './remote.js';

/** A sync fs call blocks the app's main thread: past this, it fails (ETIMEDOUT) rather than hang the app. */
const SYNC_TIMEOUT_MS = 60_000;

export function createRemoteClient(settings: LayerSettings): Remote {
  let rpc: Promise<{ rpc: RpcClient<LayerRequest, LayerResults>; socket: Socket }> | null = null;
  let pending = 0;
  // The link UDP datagrams go out on: only the link their twin was opened on knows the twin.
  let currentLink: LayerLink | null = null;
  let udpHandlers: Parameters<UdpRemote['listen']>[0] | null = null;

  function connect(): Promise<{ rpc: RpcClient<LayerRequest, LayerResults>; socket: Socket }> {
    rpc ??= (async () => {
      const { link, socket } = openLayerLink(settings.socket, { node: process.version });
      currentLink = link;
      link.on('message', (message) => {
        if (message.type === 'udp') udpHandlers?.onDatagram(message);
      });
      link.once('close', () => {
        // A later request reconnects (the intproxy may still be there); if it is not, that request fails.
        rpc = null;
        if (currentLink === link) currentLink = null;
        udpHandlers?.onLinkLost();
      });
      await link.handshake(5000);
      return { rpc: new RpcClient<LayerRequest, LayerResults>(link), socket };
    })();
    return rpc;
  }

  async function request<R extends LayerRequest>(req: R): Promise<Result<LayerResults[R['op']]>> {
    pending += 1;
    let socket: Socket | undefined;
    try {
      const session = await connect();
      socket = session.socket;
      socket.ref();
      return await session.rpc.request(req);
    } catch (error) {
      return {
        ok: false,
        error: { code: LINK_LOST_CODE, message: `remocal: the session's intproxy is unreachable (${(error as Error).message})` },
      };
    } finally {
      pending -= 1;
      if (pending === 0) socket?.unref();
    }
  }

  // The sync worker is a bundle of its own, next to the layer's (both are in dist/).
  const files = new SyncChannel({ workerScript: join(__dirname, 'layer-fs-worker.cjs'), socket: settings.socket, timeoutMs: SYNC_TIMEOUT_MS });

  return {
    connect: (host, port) => request({ op: 'tcp.connect', host, port }),
    getaddrinfo: (host, family) => request({ op: 'dns.getaddrinfo', host, family }),
    query: (name, rrtype, ttl) => request({ op: 'dns.query', name, rrtype, ...(ttl === undefined ? {} : { ttl }) }),
    reverse: (address) => request({ op: 'dns.reverse', address }),
    subscribe: (subscription) => request({ op: 'incoming.subscribe', ...subscription }),
    unsubscribe: (subscription) => request({ op: 'incoming.unsubscribe', subscription }),
    udp: {
      open: (options) => request({ op: 'udp.open', ...options }),
      close: (socket) => request({ op: 'udp.close', socket }),
      send: (datagram) => {
        if (currentLink === null || currentLink.closed) return false;
        try {
          return currentLink.send({ type: 'udp.send', ...datagram });
        } catch {
          return false;
        }
      },
      listen: (handlers) => {
        udpHandlers = handlers;
      },
    },
    files: {
      request: (fileRequest) => request(fileRequest),
      requestSync: (fileRequest) => files.request(fileRequest),
    },
  };
}
