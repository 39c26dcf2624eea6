// A link from a layer (the app's main thread, or its sync fs worker) to the session's intproxy: one unix socket
// connection, speaking the layer's side of the protocol. The caller adds its own listeners, then handshakes.

import { Socket } from 'node:net';
import { Link } from '../protocol/link.js';
import type { IntproxyToLayer, LayerToIntproxy } from '../protocol/messages.js';

export type LayerLink = Link<LayerToIntproxy, IntproxyToLayer>;

export function openLayerLink(socketPath: string, info: Record<string, string | number>): { link: LayerLink; socket: Socket } {
  const socket = new Socket();
  socket.connect({ path: socketPath });
  const link: LayerLink = new Link({ readable: socket, writable: socket }, { role: 'layer', streamIdParity: 'odd', info: { pid: process.pid, ...info } });
  return { link, socket };
}
