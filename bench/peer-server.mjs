// The far end of the outgoing benchmarks, run inside the pod's network namespace.
//   ECHO_PORT: echoes every byte (connect and request latency)
//   BULK_PORT: on each connection, sends BULK_BYTES bytes and closes (throughput)
import { createServer } from 'node:net';

const [echoPort, bulkPort, bulkBytes] = process.argv.slice(2).map(Number);
const block = Buffer.alloc(1024 * 1024, 0x61);

createServer({ noDelay: true }, (socket) => {
  socket.on('error', () => undefined);
  socket.pipe(socket);
}).listen(echoPort, '0.0.0.0');

createServer((socket) => {
  socket.on('error', () => undefined);
  let left = bulkBytes;
  const pump = () => {
    while (left > 0) {
      const chunk = left >= block.length ? block : block.subarray(0, left);
      left -= chunk.length;
      if (!socket.write(chunk)) return socket.once('drain', pump);
    }
    socket.end();
  };
  pump();
}).listen(bulkPort, '0.0.0.0', () => process.stdout.write('ready\n'));

process.on('SIGTERM', () => process.exit(0));
