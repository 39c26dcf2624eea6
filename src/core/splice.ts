// Joins a TCP socket and a link stream in both directions. Half-closes pass through (each side ends when its
// source ends), and a reset on one side becomes a reset on the other, so the app sees ECONNRESET where it
// would have without remocal.

import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';

export function splice(socket: Socket, stream: Duplex): void {
  // Nagle on the inner hops would only add latency: the app's own socket already decides how its writes
  // are coalesced.
  socket.setNoDelay(true);
  socket.pipe(stream);
  stream.pipe(socket);
  socket.on('error', () => stream.destroy());
  stream.on('error', () => {
    if (!socket.destroyed) socket.resetAndDestroy();
  });
}
