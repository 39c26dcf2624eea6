// A view of a client connection whose bytes are also copied elsewhere (to mirroring sessions) while another
// consumer (the HTTP router, for filtered steals) reads it. The router must not read the socket itself:
// Node's HTTP server consumes a real socket's handle directly, below any 'data' listener, so a copy taken
// there would see nothing. The view is an ordinary Duplex, which Node's servers read through its events.

import type { Socket } from 'node:net';
import { Duplex } from 'node:stream';
import { socketLike } from './http-router.js';

export function teeClient(client: Socket, copy: (chunk: Buffer) => void): Socket {
  const view = new Duplex({
    allowHalfOpen: true,
    read() {
      client.resume();
    },
    write(chunk: Buffer, _encoding, callback) {
      client.write(chunk, callback);
    },
    final(callback) {
      client.end(callback);
    },
    destroy(error, callback) {
      client.destroy(error ?? undefined);
      callback(error);
    },
  });
  client.on('data', (chunk: Buffer) => {
    copy(chunk);
    if (!view.push(chunk)) client.pause();
  });
  client.once('end', () => view.push(null));
  client.once('error', (error) => view.destroy(error));
  client.once('close', () => view.destroy());
  // Servers and the router ask the connection for these; they describe the client's real socket.
  for (const key of ['remoteAddress', 'remotePort', 'localAddress', 'localPort', 'remoteFamily'] as const) {
    Object.defineProperty(view, key, { get: () => client[key] });
  }
  return socketLike(view);
}
