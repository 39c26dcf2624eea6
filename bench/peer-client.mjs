// One benchmark run from the app's side: connect latency, request latency on an open connection, and
// single-stream throughput, against HOST. Prints one JSON line. Run plain (direct or through socat) or
// under `remocal exec` (through the agent): the code is the same, only the path differs.
import { connect } from 'node:net';

const [host, echoPortText, bulkPortText, connectsText, requestsText, bulkRunsText] = process.argv.slice(2);
const echoPort = Number(echoPortText);
const bulkPort = Number(bulkPortText);

function once(socket, event) {
  return new Promise((resolve, reject) => {
    socket.once(event, resolve);
    socket.once('error', reject);
  });
}

function percentile(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function connectLatency(count) {
  const times = [];
  for (let i = 0; i < count; i++) {
    const started = process.hrtime.bigint();
    const socket = connect({ host, port: echoPort, noDelay: true });
    await once(socket, 'connect');
    times.push(Number(process.hrtime.bigint() - started) / 1000);
    socket.destroy();
  }
  return times.sort((a, b) => a - b);
}

async function requestLatency(count) {
  const socket = connect({ host, port: echoPort, noDelay: true });
  await once(socket, 'connect');
  const payload = Buffer.alloc(64, 0x62);
  const times = [];
  for (let i = 0; i < count; i++) {
    const started = process.hrtime.bigint();
    let received = 0;
    const done = new Promise((resolve) => {
      const onData = (chunk) => {
        received += chunk.length;
        if (received >= payload.length) {
          socket.off('data', onData);
          resolve();
        }
      };
      socket.on('data', onData);
    });
    socket.write(payload);
    await done;
    times.push(Number(process.hrtime.bigint() - started) / 1000);
  }
  socket.destroy();
  return times.sort((a, b) => a - b);
}

async function throughput() {
  const started = process.hrtime.bigint();
  const socket = connect({ host, port: bulkPort });
  let bytes = 0;
  socket.on('data', (chunk) => {
    bytes += chunk.length;
  });
  await once(socket, 'end');
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  socket.destroy();
  return bytes / seconds;
}

const connects = await connectLatency(Number(connectsText));
const requests = await requestLatency(Number(requestsText));
const rates = [];
for (let i = 0; i < Number(bulkRunsText); i++) rates.push(await throughput());
rates.sort((a, b) => a - b);
process.stdout.write(
  `${JSON.stringify({
    connectP50Us: percentile(connects, 50),
    requestP50Us: percentile(requests, 50),
    requestP99Us: percentile(requests, 99),
    bytesPerSecond: rates[Math.floor(rates.length / 2)],
  })}\n`,
);
