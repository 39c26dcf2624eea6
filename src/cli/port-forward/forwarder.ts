// The process `remocal port-forward` runs inside the session: plain sockets, made remote by the layer like any
// app's. A -L listener is local (its port is not subscribed); its connections are opened from the target. A -R
// listener is subscribed to the target's port; its connections go to the local port, which the outgoing filter
// keeps on this machine.

import { createServer, connect, type Server, type Socket } from 'node:net';
import { FORWARDS_ENV, type LocalForward, type RemoteForward } from './specs.js';

const forwards = JSON.parse(process.env[FORWARDS_ENV] ?? '{"local":[],"remote":[]}') as { local: LocalForward[]; remote: RemoteForward[] };

/** Both directions, half-closes included (a client that ends its request still gets the answer). */
function splice(from: Socket, to: Socket): void {
  from.pipe(to);
  to.pipe(from);
  // A reset on one side ends the other at once, as a direct connection would.
  from.on('error', () => to.destroy());
  to.on('error', () => from.destroy());
}

function listen(server: Server, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
}

async function main(): Promise<void> {
  for (const forward of forwards.local) {
    const server = createServer({ allowHalfOpen: true }, (client) => splice(client, connect({ port: forward.port, host: forward.host, allowHalfOpen: true })));
    await listen(server, forward.localPort);
    process.stderr.write(`remocal: forwarding 127.0.0.1:${forward.localPort} → ${forward.host}:${forward.port} (opened from the target)\n`);
  }
  for (const forward of forwards.remote) {
    const server = createServer({ allowHalfOpen: true }, (client) => splice(client, connect({ port: forward.localPort, host: '127.0.0.1', allowHalfOpen: true })));
    await listen(server, forward.remotePort);
    process.stderr.write(`remocal: forwarding the target's port ${forward.remotePort} → 127.0.0.1:${forward.localPort}\n`);
  }
  process.stderr.write('remocal: press Ctrl-C to stop\n');
}

main().catch((error: unknown) => {
  const failure = error as NodeJS.ErrnoException;
  process.stderr.write(`remocal: cannot listen: ${failure.code === 'EADDRINUSE' ? `127.0.0.1:${(failure as { port?: number }).port} is taken here; pick another local port` : failure.message}\n`);
  // Listeners opened before the failure would keep the process alive.
  process.exit(1);
});
